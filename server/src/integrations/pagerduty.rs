//! PagerDuty change events (Events API v2, `POST /v2/change/enqueue`): a
//! hotfix merged and a hotfix reverted show on the service's timeline
//! beside its incidents, so responders see what changed and when.
//!
//! The request is `{"routing_key", "payload": {"summary", "timestamp",
//! "source", "custom_details"}, "links": [{"href", "text"}]}`; PagerDuty
//! answers 202 `{"status": "success", "message": "Change event
//! processed"}`, 400 for an invalid event, 429 when rate limited.

use std::time::Duration;

use serde_json::json;

use super::{NotTaken, deliver, delivery_client};

#[derive(Debug, Clone)]
pub struct PagerDutySettings {
    /// The change events endpoint (default
    /// <https://events.pagerduty.com/v2/change/enqueue>).
    pub url: String,
    /// The service integration's routing key (a secret: from env or
    /// file); without one nothing is sent, and start-up says so.
    pub routing_key: Option<String>,
    pub timeout: Duration,
}

/// PagerDuty's own endpoint.
pub const CHANGE_EVENTS: &str = "https://events.pagerduty.com/v2/change/enqueue";

/// One change event.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// At most 1024 characters (PagerDuty's limit); cut to it.
    pub summary: String,
    pub timestamp: chrono::DateTime<chrono::Utc>,
    pub incident_id: String,
    pub kind: String,
    pub actor: String,
    /// The PR, when known.
    pub link: Option<(String, String)>,
}

pub struct PagerDuty {
    http: reqwest::Client,
    settings: PagerDutySettings,
    calls: crate::metrics::Calls,
}

impl PagerDuty {
    pub fn new(
        settings: PagerDutySettings,
        calls: crate::metrics::Calls,
    ) -> Result<PagerDuty, String> {
        let http = delivery_client("PagerDuty", settings.timeout)?;
        Ok(PagerDuty {
            http,
            settings,
            calls,
        })
    }

    /// The request body for `c`.
    pub fn body(&self, c: &Change) -> serde_json::Value {
        let summary: String = c.summary.chars().take(1024).collect();
        let mut body = json!({
            "routing_key": self.settings.routing_key.as_deref().unwrap_or_default(),
            "payload": {
                "summary": summary,
                "timestamp": c.timestamp.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "source": "hotfixd",
                "custom_details": {
                    "incident_id": c.incident_id,
                    "event": c.kind,
                    "by": c.actor,
                },
            },
        });
        if let Some((href, text)) = &c.link {
            body["links"] = json!([{ "href": href, "text": text }]);
        }
        body
    }

    /// Sends `c`; Ok once PagerDuty answered 2xx.
    pub async fn change(&self, c: &Change) -> Result<(), NotTaken> {
        self.calls
            .time("pagerduty", "change", async {
                deliver(self.http.post(&self.settings.url).json(&self.body(c))).await
            })
            .await
    }
}

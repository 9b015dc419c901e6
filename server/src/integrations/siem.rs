//! The audit trail's sink: every audit record POSTed to the SIEM, in one
//! of two formats.
//!
//! - `json-lines`: the body is the records as `hotfixctl audit export`
//!   writes them, one JSON object per line (`application/x-ndjson`), with
//!   `Authorization: Bearer TOKEN` when a token is set.
//! - `splunk-hec`: Splunk's HTTP Event Collector
//!   (`POST …/services/collector/event`, `Authorization: Splunk TOKEN`):
//!   one event object per record, `{"time": <epoch seconds>, "source":
//!   "hotfixd", "sourcetype": "hotfixd:audit", "event": <the record>}`,
//!   several in one body, as Splunk's "Format events for HTTP Event
//!   Collector" describes; HEC answers `{"text": "Success", "code": 0}`.
//!
//! Each signed checkpoint travels in the trail as its own record (action
//! `audit-checkpoint`, the signed note its detail); in HEC its sourcetype
//! is `hotfixd:checkpoint`, so the SIEM can check, with the verifier key
//! alone, that the records it holds up to the checkpoint's size end in the
//! signed head.
//!
//! A 2xx is delivered; a connection failure, 429 or 5xx is worth retrying;
//! any other answer is the sink's configuration (a wrong token, a wrong
//! URL) and is retried too, more slowly, since the trail must arrive
//! whole. The caller (`app::relay::run_audit_sink`) keeps the cursor.

use std::time::Duration;

use super::{NotTaken, deliver, delivery_client};
use crate::domain::log::AuditRecord;

/// How the records are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SiemFormat {
    JsonLines,
    SplunkHec,
}

#[derive(Debug, Clone)]
pub struct SiemSettings {
    /// Where the records are POSTed (for Splunk, the collector's
    /// `/services/collector/event` URL).
    pub url: String,
    pub format: SiemFormat,
    /// The bearer or HEC token (a secret: from env or file).
    pub token: Option<String>,
    pub timeout: Duration,
    /// At most this many records per request.
    pub batch: usize,
    /// The first wait after a failure; doubled each time, up to a minute.
    pub backoff: Duration,
}

pub struct Siem {
    http: reqwest::Client,
    settings: SiemSettings,
    calls: crate::metrics::Calls,
}

impl Siem {
    pub fn new(settings: SiemSettings, calls: crate::metrics::Calls) -> Result<Siem, String> {
        let http = delivery_client("SIEM", settings.timeout)?;
        Ok(Siem {
            http,
            settings,
            calls,
        })
    }

    pub fn settings(&self) -> &SiemSettings {
        &self.settings
    }

    /// The request body for `records`.
    pub fn body(&self, records: &[AuditRecord]) -> String {
        let mut body = String::new();
        for r in records {
            let record = serde_json::to_value(r).expect("an audit record serializes");
            let line = match self.settings.format {
                SiemFormat::JsonLines => record,
                SiemFormat::SplunkHec => serde_json::json!({
                    "time": r.at.timestamp_millis() as f64 / 1000.0,
                    "source": "hotfixd",
                    "sourcetype": if r.action == crate::app::checkpoints::ACTION {
                        "hotfixd:checkpoint"
                    } else {
                        "hotfixd:audit"
                    },
                    "event": record,
                }),
            };
            body.push_str(&line.to_string());
            body.push('\n');
        }
        body
    }

    /// POSTs `records`; Ok once the SIEM answered 2xx.
    pub async fn send(&self, records: &[AuditRecord]) -> Result<(), NotTaken> {
        self.calls
            .time("siem", "send", async {
                let mut req = self.http.post(&self.settings.url).body(self.body(records));
                req = match self.settings.format {
                    SiemFormat::JsonLines => req.header("content-type", "application/x-ndjson"),
                    SiemFormat::SplunkHec => req.header("content-type", "application/json"),
                };
                if let Some(token) = &self.settings.token {
                    req = match self.settings.format {
                        SiemFormat::JsonLines => req.bearer_auth(token),
                        SiemFormat::SplunkHec => {
                            req.header("authorization", format!("Splunk {token}"))
                        }
                    };
                }
                deliver(req).await
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64) -> AuditRecord {
        AuditRecord {
            seq,
            at: chrono::DateTime::from_timestamp(1_780_000_000, 0).unwrap(),
            actor: "bob".into(),
            incident_id: "INC-2026-05-20-001".into(),
            action: "declare".into(),
            outcome: "ok".into(),
            detail: "line one\nline two".into(),
            event_seq: Some(seq),
            hash: "ab".repeat(32),
            v: 2,
        }
    }

    fn sink(format: SiemFormat) -> Siem {
        Siem::new(
            SiemSettings {
                url: "http://127.0.0.1:9/".into(),
                format,
                token: None,
                timeout: Duration::from_secs(1),
                batch: 10,
                backoff: Duration::from_secs(1),
            },
            Default::default(),
        )
        .unwrap()
    }

    #[test]
    fn json_lines_are_the_export_records_one_per_line() {
        let body = sink(SiemFormat::JsonLines).body(&[record(1), record(2)]);
        let lines: Vec<serde_json::Value> = body
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines.len(),
            2,
            "a newline in a detail stays inside its line"
        );
        assert_eq!(lines[1]["seq"], 2);
        assert_eq!(lines[0]["detail"], "line one\nline two");
        assert_eq!(lines[0]["hash"], "ab".repeat(32));
    }

    #[test]
    fn splunk_events_carry_the_record_and_its_time() {
        let body = sink(SiemFormat::SplunkHec).body(&[record(7)]);
        let e: serde_json::Value = serde_json::from_str(body.trim()).unwrap();
        assert_eq!(e["time"], 1_780_000_000.0);
        assert_eq!(e["sourcetype"], "hotfixd:audit");
        assert_eq!(e["event"]["seq"], 7);
    }
}

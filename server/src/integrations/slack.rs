//! Slack incoming webhooks: `POST {"text": ...}` answered `200 ok`, or a
//! plain-text error such as `400 invalid_payload` or `404 channel_not_found`.
//!
//! Transient failures (network errors, timeouts, 429 and 5xx) are retried
//! with exponential backoff a bounded number of times; a 4xx other than 429
//! will not get better by retrying and is returned at once.

use std::time::Duration;

use crate::domain::notify::ChatChannel;

use super::Chat;

/// Where and how to post.
#[derive(Debug, Clone)]
pub struct SlackSettings {
    /// The status channel's webhook (declarations, overdue obligations).
    pub status_webhook: Option<String>,
    /// The audit channel's webhook (admin merges, breakglass).
    pub audit_webhook: Option<String>,
    pub timeout: Duration,
    pub attempts: u32,
    pub backoff: Duration,
}

pub struct SlackWebhooks {
    http: reqwest::Client,
    settings: SlackSettings,
    /// Counted in /metrics.
    calls: crate::metrics::Calls,
}

impl SlackWebhooks {
    /// Counts its calls in `calls` (the daemon's, which /metrics shows).
    pub fn measured(mut self, calls: crate::metrics::Calls) -> Self {
        self.calls = calls;
        self
    }

    pub fn new(settings: SlackSettings) -> Result<SlackWebhooks, String> {
        super::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()
            .map_err(|e| format!("building the Slack HTTP client: {e}"))?;
        Ok(SlackWebhooks {
            http,
            settings,
            calls: Default::default(),
        })
    }

    async fn attempt(&self, url: &str, text: &str) -> Result<(), (bool, String)> {
        let resp = self
            .http
            .post(url)
            .json(&serde_json::json!({ "text": text }))
            .send()
            .await
            // reqwest's error names the URL, which is the webhook's key.
            .map_err(|e| (true, format!("request failed: {}", e.without_url())))?;
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        if status.is_success() {
            return Ok(());
        }
        let retry = status.as_u16() == 429 || status.is_server_error();
        Err((retry, format!("{} {}", status.as_u16(), body.trim())))
    }
}

#[async_trait::async_trait]
impl Chat for SlackWebhooks {
    async fn post(&self, channel: ChatChannel, text: &str) -> Result<(), String> {
        self.calls
            .time("slack", "post", async {
                let url = match channel {
                    ChatChannel::Status => &self.settings.status_webhook,
                    ChatChannel::Audit => &self.settings.audit_webhook,
                };
                let Some(url) = url else {
                    return Ok(()); // that channel is not configured
                };
                let mut delay = self.settings.backoff;
                let mut last = String::new();
                for attempt in 1..=self.settings.attempts.max(1) {
                    match self.attempt(url, text).await {
                        Ok(()) => return Ok(()),
                        Err((retry, why)) => {
                            tracing::warn!(%channel, attempt, error = %why, "Slack webhook failed");
                            last = format!("attempt {attempt}: {why}");
                            if !retry {
                                break;
                            }
                        }
                    }
                    if attempt < self.settings.attempts {
                        tokio::time::sleep(delay).await;
                        delay = delay.saturating_mul(2);
                    }
                }
                Err(last)
            })
            .await
    }
}

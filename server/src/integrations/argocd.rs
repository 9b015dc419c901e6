//! Argo CD's API server: `POST /api/v1/applications/{name}/sync` and
//! `GET /api/v1/applications/{name}`, with a bearer token.
//!
//! "Another operation is already in progress" is its own error kind: the
//! caller waits it out instead of failing.

use std::time::Duration;

use serde::Deserialize;

use super::{AppStatus, Attempt, Deployer, SyncError};

#[derive(Debug, Clone)]
pub struct ArgoCdSettings {
    /// Base URL of the API server, e.g. `https://argocd.example.com`.
    pub url: String,
    /// Bearer token (a secret: from env or file).
    pub token: Option<String>,
    pub timeout: Duration,
}

pub struct ArgoCd {
    http: reqwest::Client,
    settings: ArgoCdSettings,
    /// Counted in /metrics.
    calls: crate::metrics::Calls,
}

#[derive(Deserialize, Default)]
struct RuntimeError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    error: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Application {
    status: Status,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Status {
    sync: SyncStatus,
    health: Health,
    #[serde(rename = "operationState")]
    operation_state: Option<OperationState>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SyncStatus {
    status: String,
    revision: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Health {
    status: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct OperationState {
    phase: String,
    message: String,
}

impl ArgoCd {
    /// Counts its calls in `calls` (the daemon's, which /metrics shows).
    pub fn measured(mut self, calls: crate::metrics::Calls) -> Self {
        self.calls = calls;
        self
    }

    pub fn new(settings: ArgoCdSettings) -> Result<ArgoCd, String> {
        super::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()
            .map_err(|e| format!("building the Argo CD HTTP client: {e}"))?;
        Ok(ArgoCd {
            http,
            settings,
            calls: Default::default(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.settings.url.trim_end_matches('/'))
    }

    fn auth(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.settings.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }
}

fn app_path(app: &str) -> String {
    // Application names are DNS labels (validated at declaration): no escaping needed.
    format!("/api/v1/applications/{app}")
}

#[async_trait::async_trait]
impl Deployer for ArgoCd {
    async fn sync(&self, app: &str, revision: &str, dry_run: bool) -> Result<(), SyncError> {
        self.calls
            .time("argocd", "sync", async {
                let body = serde_json::json!({
                    "name": app,
                    "revision": revision,
                    "prune": true,
                    "dryRun": dry_run,
                });
                // A repeated sync request is harmless: Argo CD answers "another
                // operation is already in progress", which is waited out.
                let sent = super::with_retries("starting an Argo CD sync", || async {
                    let resp = self
                        .auth(
                            self.http
                                .post(self.url(&format!("{}/sync", app_path(app))))
                                .json(&body),
                        )
                        .send()
                        .await
                        .map_err(|e| {
                            Attempt::Transient(format!("Argo CD sync request failed: {e}"))
                        })?;
                    let status = resp.status();
                    let text = resp.text().await.unwrap_or_default();
                    if super::transient_status(status.as_u16()) {
                        return Err(Attempt::Transient(format!(
                            "Argo CD answered {status}: {text}"
                        )));
                    }
                    Ok((status, text))
                })
                .await;
                let (status, text) = sent.map_err(SyncError::Failed)?;
                if status.is_success() {
                    return Ok(());
                }
                let err: RuntimeError = serde_json::from_str(&text).unwrap_or_default();
                let message = if err.message.is_empty() {
                    err.error
                } else {
                    err.message
                };
                if message.contains("another operation is already in progress") {
                    return Err(SyncError::InProgress);
                }
                Err(SyncError::Failed(format!(
                    "Argo CD answered {status}: {}",
                    if message.is_empty() { text } else { message }
                )))
            })
            .await
    }

    async fn status(&self, app: &str) -> Result<AppStatus, String> {
        self.calls
            .time("argocd", "status", async {
                let text = super::with_retries("reading an Argo CD application", || async {
                    let resp = self
                        .auth(self.http.get(self.url(&app_path(app))))
                        .send()
                        .await
                        .map_err(|e| {
                            Attempt::Transient(format!("Argo CD status request failed: {e}"))
                        })?;
                    let status = resp.status();
                    let text = resp.text().await.unwrap_or_default();
                    if status.is_success() {
                        return Ok(text);
                    }
                    let err: RuntimeError = serde_json::from_str(&text).unwrap_or_default();
                    let msg = format!("Argo CD answered {status}: {}", err.message);
                    Err(if super::transient_status(status.as_u16()) {
                        Attempt::Transient(msg)
                    } else {
                        Attempt::Final(msg)
                    })
                })
                .await?;
                let a: Application = serde_json::from_str(&text).map_err(|e| {
                    format!("Argo CD's application is not what its API describes: {e}")
                })?;
                let op = a.status.operation_state.unwrap_or_default();
                Ok(AppStatus {
                    sync: a.status.sync.status,
                    health: a.status.health.status,
                    revision: a.status.sync.revision,
                    phase: op.phase,
                    message: op.message,
                })
            })
            .await
    }
}

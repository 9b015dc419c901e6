//! Step 6 measured for real: evaluates the app's symptom query in
//! Prometheus every `interval` until it has been below the threshold for
//! `consecutive` samples (MITIGATED) or the `window` ends (REVERT_REQUIRED
//! with the last value). Each sample is an event, so `watch` and
//! `hotfixctl verify --measure --wait` show progress.
//!
//! A verification runs in the background under the daemon's task tracker;
//! shutdown interrupts it (recorded), and the hotfix stays SYNCED so it can
//! be started again.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::domain::{Command, EventDraft, Hotfix, Principal, Step};
use crate::error::Result;
use crate::integrations::Metrics;
use crate::lane::{Lane, Mutation};

/// The runbook's symptom query; `{app}` is the hotfix's Argo CD app.
pub const DEFAULT_QUERY: &str = r#"sum(rate(http_requests_total{service="{app}",code=~"5.."}[5m])) / sum(rate(http_requests_total{service="{app}"}[5m]))"#;

#[derive(Debug, Clone)]
pub struct VerifySettings {
    /// Template with `{app}`; used for apps without their own query.
    pub query: String,
    /// Per-app queries.
    pub queries: BTreeMap<String, String>,
    pub interval: Duration,
    pub consecutive: u32,
    pub window: Duration,
}

impl Default for VerifySettings {
    fn default() -> Self {
        VerifySettings {
            query: DEFAULT_QUERY.to_string(),
            queries: BTreeMap::new(),
            interval: Duration::from_secs(5),
            consecutive: 3,
            window: Duration::from_secs(180),
        }
    }
}

impl VerifySettings {
    pub fn query_for(&self, app: &str) -> String {
        self.queries
            .get(app)
            .cloned()
            .unwrap_or_else(|| self.query.replace("{app}", app))
    }
}

pub struct Verifier {
    lane: Arc<Lane>,
    metrics: Arc<dyn Metrics>,
    settings: VerifySettings,
    running: Mutex<HashSet<String>>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

fn draft(kind: &str, summary: String) -> EventDraft {
    EventDraft {
        kind: kind.to_string(),
        summary,
    }
}

impl Verifier {
    pub fn new(
        lane: Arc<Lane>,
        metrics: Arc<dyn Metrics>,
        settings: VerifySettings,
        tasks: TaskTracker,
        shutdown: CancellationToken,
    ) -> Verifier {
        Verifier {
            lane,
            metrics,
            settings,
            running: Mutex::new(HashSet::new()),
            tasks,
            shutdown,
        }
    }

    /// Starts measuring; answers at once with the query being evaluated.
    pub async fn start(
        self: &Arc<Self>,
        actor: &Principal,
        incident_id: &str,
    ) -> Result<(Hotfix, String)> {
        let h = self.lane.precheck(actor, incident_id, Step::Verify)?;
        if !self
            .running
            .lock()
            .expect("verifier lock")
            .insert(incident_id.to_string())
        {
            return Err(crate::domain::Refusal::Refused {
                step: Step::Verify,
                reason: format!(
                    "a verification of {incident_id} is already running; watch its events"
                ),
            }
            .into());
        }
        let query = self.settings.query_for(&h.declaration.argocd_app);
        let started = self
            .lane
            .note(
                incident_id,
                draft(
                    "verification_started",
                    format!(
                        "@{} started verification: {query} must stay below {} for {} samples within {}",
                        actor.handle,
                        self.lane.policy().verify_threshold,
                        self.settings.consecutive,
                        humantime::format_duration(self.settings.window)
                    ),
                ),
                None,
            )
            .await;
        if let Err(e) = started {
            self.running
                .lock()
                .expect("verifier lock")
                .remove(incident_id);
            return Err(e);
        }
        let me = self.clone();
        let (actor, inc, q) = (actor.clone(), incident_id.to_string(), query.clone());
        self.tasks.spawn(async move {
            me.measure(&actor, &inc, &q).await;
            me.running.lock().expect("verifier lock").remove(&inc);
        });
        let h = self.lane.get(incident_id)?.hotfix;
        Ok((h, query))
    }

    async fn measure(&self, actor: &Principal, inc: &str, query: &str) {
        let threshold = self.lane.policy().verify_threshold;
        let deadline = tokio::time::Instant::now() + self.settings.window;
        let mut below = 0;
        let mut last: Option<f64> = None;
        let mut ticker = tokio::time::interval(self.settings.interval);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = self.shutdown.cancelled() => {
                    self.note(inc, "verification_interrupted", "hotfixd shut down during verification; start it again".into()).await;
                    return;
                }
            }
            let summary = match self.metrics.instant(query).await {
                Ok(v) => {
                    last = Some(v);
                    below = if v < threshold { below + 1 } else { 0 };
                    format!(
                        "sample {v} ({} threshold {threshold}; {below}/{} consecutive)",
                        if v < threshold { "below" } else { "not below" },
                        self.settings.consecutive
                    )
                }
                Err(e) => {
                    below = 0;
                    format!("sample failed: {e}")
                }
            };
            self.note(inc, "verification_sample", summary).await;
            let recovered = below >= self.settings.consecutive;
            if recovered || tokio::time::Instant::now() >= deadline {
                let Some(value) = last else {
                    self.note(
                        inc,
                        "verification_failed",
                        "no sample could be read within the window; check the query, or record the \
                         observed value with `hotfixctl verify INC --recovered|--not-recovered --value V`"
                            .into(),
                    )
                    .await;
                    return;
                };
                let cmd = Command::Verify {
                    recovered,
                    observed_value: value,
                };
                if let Err(e) = self
                    .lane
                    .command(actor, &Mutation::default(), inc, cmd)
                    .await
                {
                    self.note(
                        inc,
                        "verification_failed",
                        format!("recording the outcome was refused: {e}"),
                    )
                    .await;
                }
                return;
            }
        }
    }

    async fn note(&self, inc: &str, kind: &str, summary: String) {
        if let Err(e) = self.lane.note(inc, draft(kind, summary), None).await {
            tracing::error!(error = %e, incident = inc, "recording a verification event failed");
        }
    }
}

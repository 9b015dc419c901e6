//! Step 6 measured for real: evaluates the app's symptom query in
//! Prometheus every `interval` until it has been below the threshold for
//! `consecutive` samples (MITIGATED) or the `window` ends (REVERT_REQUIRED
//! with the last value). Each sample is an event, so `watch` and
//! `hotfixctl verify --measure --wait` show progress.
//!
//! A verification runs in the background under the daemon's task tracker;
//! shutdown interrupts it (recorded), and the hotfix stays SYNCED so it can
//! be started again.

use crate::domain::EventKind;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::jobs::Jobs;
use super::lane::Mutation;
use crate::domain::{Command, EventDraft, Hotfix, Principal, Samples, Step};
use crate::error::Result;
use crate::integrations::Metrics;

/// The runbook's symptom query (its step 6). In a template, `{service}`
/// is the service: the name of the hotfix's repository (`catalog` for
/// `bookstore/catalog`), as the runbook's query names it; `{app}` is the
/// hotfix's Argo CD app.
pub const DEFAULT_QUERY: &str = r#"sum(rate(http_requests_total{service="{service}",code=~"5.."}[5m])) / sum(rate(http_requests_total{service="{service}"}[5m]))"#;

#[derive(Debug, Clone)]
pub struct VerifySettings {
    /// Template with `{service}` and/or `{app}` (see `DEFAULT_QUERY`);
    /// used for apps without their own query.
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
    /// The symptom query of the hotfix deployed as Argo CD `app` from
    /// `repository` (OWNER/NAME).
    pub fn query_for(&self, app: &str, repository: &str) -> String {
        let service = repository.rsplit('/').next().unwrap_or(repository);
        self.queries.get(app).cloned().unwrap_or_else(|| {
            self.query
                .replace("{app}", app)
                .replace("{service}", service)
        })
    }
}

pub struct Verifier {
    jobs: Arc<Jobs>,
    metrics: Arc<dyn Metrics>,
    settings: VerifySettings,
}

impl Verifier {
    pub fn new(jobs: Arc<Jobs>, metrics: Arc<dyn Metrics>, settings: VerifySettings) -> Verifier {
        Verifier {
            jobs,
            metrics,
            settings,
        }
    }

    /// Starts measuring; answers at once with the query being evaluated.
    pub async fn start(
        self: &Arc<Self>,
        actor: &Principal,
        incident_id: &str,
    ) -> Result<(Hotfix, String)> {
        let lane = &self.jobs.lane;
        let h = lane.precheck(actor, incident_id, Step::Verify)?;
        let query = self
            .settings
            .query_for(&h.declaration.argocd_app, &h.declaration.repository);
        let started = EventDraft::new(
            EventKind::VerificationStarted,
            format!(
                "@{} started verification: {query} must stay below {} for {} samples within {}",
                actor.handle,
                lane.policy().verify_threshold,
                self.settings.consecutive,
                humantime::format_duration(self.settings.window)
            ),
        );
        let me = self.clone();
        let (who, inc, q) = (actor.clone(), incident_id.to_string(), query.clone());
        self.jobs
            .spawn(
                incident_id,
                Step::Verify,
                lane.note(incident_id, started),
                async move {
                    me.measure(&who, &inc, &q).await;
                },
            )
            .await?;
        Ok((lane.hotfix(incident_id)?, query))
    }

    async fn measure(&self, actor: &Principal, inc: &str, query: &str) {
        let threshold = self.jobs.lane.policy().verify_threshold;
        let deadline = tokio::time::Instant::now() + self.settings.window;
        let mut samples = Samples::default();
        let mut ticker = tokio::time::interval(self.settings.interval);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = self.jobs.shutdown.cancelled() => {
                    self.note(inc, EventKind::VerificationInterrupted, "hotfixd shut down during verification; start it again".into()).await;
                    return;
                }
            }
            let read = self.metrics.instant(query).await;
            let below = samples.observe(read.as_ref().ok().copied(), threshold);
            let summary = match read {
                Ok(v) => format!(
                    "sample {v} ({} threshold {threshold}; {}/{} consecutive)",
                    if below { "below" } else { "not below" },
                    samples.below,
                    self.settings.consecutive
                ),
                Err(e) => format!("sample failed: {e}"),
            };
            self.note(inc, EventKind::VerificationSample, summary).await;
            let recovered = samples.recovered(self.settings.consecutive);
            if recovered || tokio::time::Instant::now() >= deadline {
                let Some(value) = samples.last else {
                    self.note(
                        inc,
                        EventKind::VerificationFailed,
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
                    .jobs
                    .lane
                    .command(actor, &Mutation::default(), inc, cmd)
                    .await
                {
                    self.note(
                        inc,
                        EventKind::VerificationFailed,
                        format!("recording the outcome was refused: {e}"),
                    )
                    .await;
                }
                return;
            }
        }
    }

    async fn note(&self, inc: &str, kind: EventKind, summary: String) {
        self.jobs.note(inc, kind, summary).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The runbook's step 6 query, word for word, for the hotfix it walks
    /// through (repository bookstore/catalog, Argo CD app
    /// bookstore-catalog-us-east): the service is the repository's name,
    /// not the app's.
    #[test]
    fn the_default_query_is_the_runbooks_for_the_service() {
        let runbook = r#"sum(rate(http_requests_total{service="catalog",code=~"5.."}[5m])) / sum(rate(http_requests_total{service="catalog"}[5m]))"#;
        let s = VerifySettings::default();
        assert_eq!(
            s.query_for("bookstore-catalog-us-east", "bookstore/catalog"),
            runbook
        );
        // An app's own query wins; {app} still names the app.
        let mut s = VerifySettings {
            query: "x{app=\"{app}\",svc=\"{service}\"}".into(),
            ..VerifySettings::default()
        };
        assert_eq!(
            s.query_for("bookstore-catalog-us-east", "bookstore/catalog"),
            "x{app=\"bookstore-catalog-us-east\",svc=\"catalog\"}"
        );
        s.queries
            .insert("bookstore-catalog-us-east".into(), "own".into());
        assert_eq!(
            s.query_for("bookstore-catalog-us-east", "bookstore/catalog"),
            "own"
        );
    }
}

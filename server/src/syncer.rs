//! Step 5's sync performed by hotfixd: an Argo CD sync with prune of the
//! hotfix's app to the merged revision, then a wait until it is Synced and
//! Healthy or the timeout passes. Progress arrives as events.
//!
//! The intent (`sync_requested`, with an index entry) is recorded before
//! Argo CD is asked, and the outcome after. At start-up an intent still
//! present is reconciled against Argo CD: Synced and Healthy at the revision
//! → the sync is recorded; otherwise it is reported and may be started
//! again (a sync is idempotent). "Another operation is already in
//! progress" is waited out. A drill asks Argo CD for a dry run only and
//! records what it would have done.

use std::sync::Arc;
use std::time::Duration;

use crate::domain::{Command, EventDraft, Hotfix, Principal, Step};
use crate::error::Result;
use crate::integrations::{Deployer, SyncError};
use crate::jobs::Jobs;
use crate::lane::Mutation;
use crate::store::Store;

const INTENT: &str = "sync";

/// What a restart needs to settle a sync that was sent.
#[derive(serde::Serialize, serde::Deserialize)]
struct SyncIntent {
    actor: String,
    revision: String,
    skip_canary: bool,
    request_id: String,
}

#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// How often the app's status is read while waiting.
    pub poll: Duration,
    /// Give up waiting for Synced + Healthy after this long.
    pub timeout: Duration,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            poll: Duration::from_secs(5),
            timeout: Duration::from_secs(600),
        }
    }
}

pub struct Syncer {
    jobs: Arc<Jobs>,
    argo: Arc<dyn Deployer>,
    settings: SyncSettings,
}

impl Syncer {
    pub fn new(jobs: Arc<Jobs>, argo: Arc<dyn Deployer>, settings: SyncSettings) -> Syncer {
        Syncer {
            jobs,
            argo,
            settings,
        }
    }

    /// Starts the sync; answers at once.
    pub async fn start(
        self: &Arc<Self>,
        actor: &Principal,
        m: &Mutation,
        incident_id: &str,
        revision: &str,
        skip_canary: bool,
    ) -> Result<Hotfix> {
        crate::domain::validate::check_line(
            "revision",
            revision,
            crate::domain::validate::MAX_NAME,
        )?;
        let lane = &self.jobs.lane;
        let cmd = Command::Sync {
            revision: revision.to_string(),
            skip_canary,
        };
        // A retry of a sync that completed answers as the first time did.
        if let Some(first) = lane.replayed(actor, m, incident_id, &cmd)? {
            return Ok(first);
        }
        let h = lane.precheck(actor, incident_id, Step::Sync)?;
        let app = h.declaration.argocd_app.clone();
        let started = EventDraft {
            kind: "sync_requested".into(),
            summary: format!(
                "@{} requested an Argo CD sync{} of {app} to {revision} with prune{}",
                actor.handle,
                if h.is_drill() {
                    " (drill: dry run)"
                } else {
                    ""
                },
                if skip_canary { ", canary skipped" } else { "" }
            ),
        };
        // A real sync's intent survives a restart and is reconciled then.
        let intent = (!h.is_drill()).then(|| {
            let record = SyncIntent {
                actor: actor.handle.clone(),
                revision: revision.to_string(),
                skip_canary,
                request_id: m.request_id.clone(),
            };
            (
                Store::intent_key(INTENT, incident_id),
                serde_json::to_vec(&record).expect("intents serialize"),
            )
        });
        let me = self.clone();
        let (who, m, inc, drill) = (
            actor.clone(),
            m.clone(),
            incident_id.to_string(),
            h.is_drill(),
        );
        self.jobs
            .spawn(incident_id, Step::Sync, started, intent, async move {
                me.run(&who, &m, &inc, &app, cmd, drill).await;
            })
            .await?;
        Ok(lane.get(incident_id)?.hotfix)
    }

    async fn run(
        &self,
        actor: &Principal,
        m: &Mutation,
        inc: &str,
        app: &str,
        cmd: Command,
        drill: bool,
    ) {
        let Command::Sync { revision, .. } = &cmd else {
            return;
        };
        if self.sync_and_wait(inc, app, revision, drill).await
            && let Err(e) = self.jobs.lane.command(actor, m, inc, cmd.clone()).await
        {
            self.jobs
                .note(
                    inc,
                    "sync_failed",
                    format!("recording the sync was refused: {e}"),
                )
                .await;
        }
        // Interrupted by shutdown: the intent stays for the next start.
        if !self.jobs.shutdown.is_cancelled()
            && let Err(e) = self.jobs.lane.store().clear_intent(INTENT, inc)
        {
            tracing::error!(error = %e, incident = inc, "clearing a sync intent failed");
        }
    }

    /// Syncs `app` to `revision` and waits for Synced and Healthy (a drill:
    /// a dry run); progress and failures are events. True when it got there.
    async fn sync_and_wait(&self, inc: &str, app: &str, revision: &str, drill: bool) -> bool {
        let deadline = tokio::time::Instant::now() + self.settings.timeout;
        // Start the sync, waiting out another operation in progress.
        loop {
            match self.argo.sync(app, revision, drill).await {
                Ok(()) => break,
                Err(SyncError::InProgress) => {
                    self.jobs
                        .note(
                            inc,
                            "sync_waiting",
                            format!("another Argo CD operation on {app} is in progress; waiting"),
                        )
                        .await;
                }
                Err(SyncError::Failed(why)) => {
                    self.jobs.note(inc, "sync_failed", why).await;
                    return false;
                }
            }
            if !self.pause(deadline).await {
                self.give_up(
                    inc,
                    format!("{app}: gave up waiting for the other operation"),
                )
                .await;
                return false;
            }
        }
        if drill {
            self.jobs
                .note(inc, "sync_dry_run", format!("drill: Argo CD dry-ran the sync of {app} to {revision}; nothing was deployed"))
                .await;
        } else {
            let mut last = String::new();
            loop {
                match self.argo.status(app).await {
                    Ok(s) => {
                        let now = format!(
                            "{}/{} (operation {})",
                            s.sync,
                            s.health,
                            if s.phase.is_empty() { "-" } else { &s.phase }
                        );
                        if now != last {
                            self.jobs
                                .note(inc, "sync_progress", format!("{app}: {now}"))
                                .await;
                            last = now;
                        }
                        if matches!(s.phase.as_str(), "Failed" | "Error") {
                            self.jobs
                                .note(
                                    inc,
                                    "sync_failed",
                                    format!("{app}: operation {}: {}", s.phase, s.message),
                                )
                                .await;
                            return false;
                        }
                        if s.sync == "Synced" && s.health == "Healthy" && s.phase != "Running" {
                            break;
                        }
                    }
                    Err(e) => self.jobs.note(inc, "sync_progress", e).await,
                }
                if !self.pause(deadline).await {
                    let why = format!(
                        "{app} was not Synced and Healthy within {}",
                        humantime::format_duration(self.settings.timeout)
                    );
                    self.give_up(inc, why).await;
                    return false;
                }
            }
        }
        true
    }

    /// Step 6's "revert + sync": deploys the revert's merge commit in the
    /// background. The hotfix is already REVERTED; the outcome is an event
    /// (`revert_synced` or `sync_failed`).
    pub async fn sync_revert(
        self: &Arc<Self>,
        incident_id: &str,
        revision: &str,
        drill: bool,
    ) -> Result<()> {
        let h = self.jobs.lane.get(incident_id)?.hotfix;
        let app = h.declaration.argocd_app.clone();
        let started = EventDraft {
            kind: "sync_requested".into(),
            summary: format!(
                "hotfixd requested an Argo CD sync{} of {app} to the revert {revision} with prune",
                if drill { " (drill: dry run)" } else { "" },
            ),
        };
        let me = self.clone();
        let (inc, revision) = (incident_id.to_string(), revision.to_string());
        self.jobs
            .spawn(incident_id, Step::Sync, started, None, async move {
                if me.sync_and_wait(&inc, &app, &revision, drill).await {
                    me.jobs
                        .note(
                            &inc,
                            "revert_synced",
                            format!("{app} runs the revert {revision}: Synced and Healthy"),
                        )
                        .await;
                }
            })
            .await
    }

    /// Settles syncs that were sent before a restart: recorded if Argo CD
    /// shows the app Synced and Healthy at the revision, otherwise reported
    /// (sync again). An unreachable Argo CD leaves the intent for next time.
    pub async fn reconcile(&self) -> Result<()> {
        let lane = &self.jobs.lane;
        for (inc, value) in lane.store().intents(INTENT)? {
            let Ok(intent) = serde_json::from_str::<SyncIntent>(&value) else {
                lane.store().clear_intent(INTENT, &inc)?;
                continue;
            };
            let Some(h) = lane.store().hotfix(&inc)? else {
                lane.store().clear_intent(INTENT, &inc)?;
                continue;
            };
            if h.sync.is_some() {
                lane.store().clear_intent(INTENT, &inc)?;
                continue;
            }
            let app = &h.declaration.argocd_app;
            let status = match self.argo.status(app).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(incident = %inc, error = %e, "cannot reconcile a sync intent yet");
                    continue;
                }
            };
            let done = status.sync == "Synced"
                && status.health == "Healthy"
                && status.revision == intent.revision;
            match (done, lane.principal(&intent.actor)) {
                (true, Some(actor)) => {
                    let summary = format!(
                        "Argo CD shows {app} Synced and Healthy at {}; recording the sync @{} requested before the restart",
                        intent.revision, intent.actor
                    );
                    self.jobs.note(&inc, "sync_reconciled", summary).await;
                    let m = Mutation {
                        request_id: intent.request_id.clone(),
                        expected_version: None,
                    };
                    let cmd = Command::Sync {
                        revision: intent.revision.clone(),
                        skip_canary: intent.skip_canary,
                    };
                    lane.command(&actor, &m, &inc, cmd).await?;
                }
                _ => {
                    let summary = format!(
                        "the sync of {app} to {} did not complete before the restart ({}/{}); sync again",
                        intent.revision, status.sync, status.health
                    );
                    self.jobs.note(&inc, "sync_not_completed", summary).await;
                }
            }
            lane.store().clear_intent(INTENT, &inc)?;
        }
        Ok(())
    }

    async fn give_up(&self, inc: &str, why: String) {
        if self.jobs.shutdown.is_cancelled() {
            let msg =
                "hotfixd shut down while syncing; it is reconciled with Argo CD at the next start"
                    .to_string();
            self.jobs.note(inc, "sync_interrupted", msg).await;
        } else {
            self.jobs.note(inc, "sync_failed", why).await;
        }
    }

    /// Sleeps one poll interval; false at the deadline or on shutdown.
    async fn pause(&self, deadline: tokio::time::Instant) -> bool {
        if self.jobs.shutdown.is_cancelled() {
            return false;
        }
        if tokio::time::Instant::now() + self.settings.poll > deadline {
            return false;
        }
        tokio::select! {
            _ = tokio::time::sleep(self.settings.poll) => true,
            _ = self.jobs.shutdown.cancelled() => false,
        }
    }
}

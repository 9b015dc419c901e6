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

use crate::domain::EventKind;
use std::sync::Arc;
use std::time::Duration;

use super::intent::{Intent, Intents, Reconcile};
use super::jobs::Jobs;
use super::lane::{Begun, Mutation};
use crate::domain::{Command, EventDraft, Hotfix, Principal, Step};
use crate::error::Result;
use crate::integrations::{Deployer, SyncError};
use crate::store::IntentKind;

/// What a restart needs to settle a sync that was sent.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct SyncDetail {
    revision: String,
    skip_canary: bool,
    request_id: String,
}

/// How waiting for Argo CD ended.
enum Waited {
    /// Synced and Healthy (a drill: dry-ran).
    Done,
    /// It will not get there: why (a `sync_failed` event).
    Failed(String),
    /// hotfixd is shutting down: the intent stays for the next start.
    Interrupted,
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

    fn intents(&self) -> Intents<'_> {
        Intents::new(&self.jobs.lane, IntentKind::Sync)
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
        let h = match lane.begin_step(actor, m, incident_id, &cmd)? {
            Begun::Replayed(first) => return Ok(first),
            Begun::Fresh(h) => h,
        };
        let app = h.declaration.argocd_app.clone();
        let drill = h.is_drill();
        let started = EventDraft::new(
            EventKind::SyncRequested,
            format!(
                "@{} requested an Argo CD sync{} of {app} to {revision} with prune{}",
                actor.handle,
                if drill { " (drill: dry run)" } else { "" },
                if skip_canary { ", canary skipped" } else { "" }
            ),
        );
        // A real sync's intent survives a restart and is reconciled then;
        // a drill's dry run leaves nothing to settle.
        let intent = Intent {
            actor: actor.handle.clone(),
            detail: SyncDetail {
                revision: revision.to_string(),
                skip_canary,
                request_id: m.request_id.clone(),
            },
        };
        let begin = async {
            if drill {
                lane.note(incident_id, started).await
            } else {
                self.intents().begin(incident_id, started, &intent).await
            }
        };
        let me = self.clone();
        let (who, m, inc) = (actor.clone(), m.clone(), incident_id.to_string());
        self.jobs
            .spawn(incident_id, Step::Sync, begin, async move {
                me.run(&who, &m, &inc, &app, cmd, drill).await;
            })
            .await?;
        lane.hotfix(incident_id)
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
        let lane = &self.jobs.lane;
        let waited = self.sync_and_wait(inc, app, revision, drill).await;
        let recorded = match (waited, drill) {
            (Waited::Done, false) => self
                .intents()
                .complete_or_report(actor, m, inc, &cmd, cmd.clone(), EventKind::SyncFailed)
                .await
                .map(drop),
            (Waited::Done, true) => match lane.command(actor, m, inc, cmd.clone()).await {
                Err(e) => {
                    let why = format!("recording the sync was refused: {e}");
                    lane.note(inc, EventDraft::new(EventKind::SyncFailed, why))
                        .await
                }
                Ok(_) => Ok(()),
            },
            (Waited::Failed(why), false) => {
                self.intents()
                    .abandon(inc, EventDraft::new(EventKind::SyncFailed, why))
                    .await
            }
            (Waited::Failed(why), true) => {
                lane.note(inc, EventDraft::new(EventKind::SyncFailed, why))
                    .await
            }
            (Waited::Interrupted, _) => self.interrupted(inc).await,
        };
        if let Err(e) = recorded {
            tracing::error!(error = %e, incident = inc, "recording a sync's outcome failed");
        }
    }

    async fn interrupted(&self, inc: &str) -> Result<()> {
        let msg =
            "hotfixd shut down while syncing; it is reconciled with Argo CD at the next start";
        self.jobs
            .lane
            .note(inc, EventDraft::new(EventKind::SyncInterrupted, msg))
            .await
    }

    /// Syncs `app` to `revision` and waits for Synced and Healthy (a drill:
    /// a dry run); progress is recorded as events, the end is the caller's
    /// to record.
    async fn sync_and_wait(&self, inc: &str, app: &str, revision: &str, drill: bool) -> Waited {
        let deadline = tokio::time::Instant::now() + self.settings.timeout;
        // Start the sync, waiting out another operation in progress.
        loop {
            if let Err(e) = self.jobs.lane.may_act() {
                // The intent stays for the leader that acts next.
                tracing::warn!(incident = inc, error = %e, "not syncing");
                return Waited::Interrupted;
            }
            match self.argo.sync(app, revision, drill).await {
                Ok(()) => break,
                Err(SyncError::InProgress) => {
                    let summary =
                        format!("another Argo CD operation on {app} is in progress; waiting");
                    self.jobs.note(inc, EventKind::SyncWaiting, summary).await;
                }
                Err(SyncError::Failed(why)) => return Waited::Failed(why),
            }
            if let Some(end) = self.pause(deadline).await {
                return end(format!("{app}: gave up waiting for the other operation"));
            }
        }
        if drill {
            let summary = format!(
                "drill: Argo CD dry-ran the sync of {app} to {revision}; nothing was deployed"
            );
            self.jobs.note(inc, EventKind::SyncDryRun, summary).await;
            return Waited::Done;
        }
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
                            .note(inc, EventKind::SyncProgress, format!("{app}: {now}"))
                            .await;
                        last = now;
                    }
                    if matches!(s.phase.as_str(), "Failed" | "Error") {
                        return Waited::Failed(format!(
                            "{app}: operation {}: {}",
                            s.phase, s.message
                        ));
                    }
                    if s.sync == "Synced" && s.health == "Healthy" && s.phase != "Running" {
                        return Waited::Done;
                    }
                }
                Err(e) => self.jobs.note(inc, EventKind::SyncProgress, e).await,
            }
            if let Some(end) = self.pause(deadline).await {
                return end(format!(
                    "{app} was not Synced and Healthy within {}",
                    humantime::format_duration(self.settings.timeout)
                ));
            }
        }
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
        let lane = &self.jobs.lane;
        let app = lane.hotfix(incident_id)?.declaration.argocd_app;
        let started = EventDraft::new(
            EventKind::SyncRequested,
            format!(
                "hotfixd requested an Argo CD sync{} of {app} to the revert {revision} with prune",
                if drill { " (drill: dry run)" } else { "" },
            ),
        );
        let me = self.clone();
        let (inc, revision) = (incident_id.to_string(), revision.to_string());
        let begin = lane.note(incident_id, started);
        self.jobs
            .spawn(incident_id, Step::Sync, begin, async move {
                match me.sync_and_wait(&inc, &app, &revision, drill).await {
                    Waited::Done => {
                        let summary = format!("{app} runs the revert {revision}: Synced and Healthy");
                        me.jobs.note(&inc, EventKind::RevertSynced, summary).await;
                    }
                    Waited::Failed(why) => me.jobs.note(&inc, EventKind::SyncFailed, why).await,
                    Waited::Interrupted => {
                        if let Err(e) = me.interrupted(&inc).await {
                            tracing::error!(error = %e, incident = %inc, "recording an interrupted sync failed");
                        }
                    }
                }
            })
            .await
    }

    /// Sleeps one poll interval; at the deadline or on shutdown, how the
    /// wait ends (given why, at the deadline).
    async fn pause(&self, deadline: tokio::time::Instant) -> Option<fn(String) -> Waited> {
        let failed: fn(String) -> Waited = Waited::Failed;
        let interrupted: fn(String) -> Waited = |_| Waited::Interrupted;
        if self.jobs.shutdown.is_cancelled() {
            return Some(interrupted);
        }
        if tokio::time::Instant::now() + self.settings.poll > deadline {
            return Some(failed);
        }
        tokio::select! {
            _ = tokio::time::sleep(self.settings.poll) => None,
            _ = self.jobs.shutdown.cancelled() => Some(interrupted),
        }
    }
}

#[async_trait::async_trait]
impl Reconcile for Syncer {
    /// Settles syncs that were sent before a restart: recorded if Argo CD
    /// shows the app Synced and Healthy at the revision, otherwise reported
    /// (sync again). An unreachable Argo CD leaves the intent for next time.
    async fn reconcile(&self) -> Result<()> {
        let lane = &self.jobs.lane;
        let unsettled = self
            .intents()
            .unsettled::<SyncDetail>(|h| h.sync.is_some(), EventKind::SyncReconciled)
            .await?;
        for (p, h) in unsettled {
            let (inc, intent) = (&p.incident_id, &p.intent);
            let app = &h.declaration.argocd_app;
            let status = match self.argo.status(app).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(incident = %inc, error = %e, "cannot reconcile a sync intent yet");
                    continue;
                }
            };
            let revision = &intent.detail.revision;
            let done = status.sync == "Synced"
                && status.health == "Healthy"
                && &status.revision == revision;
            match (done, lane.principal(&intent.actor)) {
                (true, Some(actor)) => {
                    let summary = format!(
                        "Argo CD shows {app} Synced and Healthy at {revision}; recording the sync @{} requested before the restart",
                        intent.actor
                    );
                    let found = EventDraft::new(EventKind::SyncReconciled, summary);
                    let m = Mutation {
                        request_id: intent.detail.request_id.clone(),
                        expected_version: None,
                    };
                    let cmd = Command::Sync {
                        revision: revision.clone(),
                        skip_canary: intent.detail.skip_canary,
                    };
                    self.intents()
                        .complete_found(
                            found,
                            &actor,
                            &m,
                            inc,
                            &cmd,
                            cmd.clone(),
                            EventKind::SyncFailed,
                        )
                        .await?;
                }
                _ => {
                    let summary = format!(
                        "the sync of {app} to {revision} did not complete before the restart ({}/{}); sync again",
                        status.sync, status.health
                    );
                    self.intents()
                        .abandon(inc, EventDraft::new(EventKind::SyncNotCompleted, summary))
                        .await?;
                }
            }
        }
        Ok(())
    }
}

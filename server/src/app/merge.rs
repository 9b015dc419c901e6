//! Step 5's admin merge performed on GitHub, crash-safe.
//!
//! Order: the intent (`merge_requested`, with an index entry naming the
//! actor) is recorded and flushed before GitHub is asked; the merge is
//! recorded after GitHub answers; then the intent is forgotten. At start-up
//! every intent still present is reconciled against GitHub before anything
//! is retried: merged there → the merge is recorded (once: a hotfix already
//! showing its merge is left alone); not merged → `merge_not_completed`, and
//! the admin may merge again. So no double merge, no lost merge.
//!
//! The merge is pinned to the approved SHA: GitHub refuses (409) if the
//! PR's head moved since approval, and so does hotfixd. A drill records the
//! merge it would have made and sends nothing.

use crate::domain::EventKind;
use std::sync::Arc;

use super::intent::{Intent, Intents, NoDetail, Reconcile};
use super::lane::{Begun, Lane, Mutation};
use crate::domain::{Command, EventDraft, Hotfix, Principal, Refusal, Step};
use crate::error::{Error, Result};
use crate::integrations::{CodeHost, MergeError};
use crate::store::IntentKind;

pub struct Merger {
    lane: Arc<Lane>,
    github: Arc<dyn CodeHost>,
    /// Merges are rare: one at a time, so two admins cannot both send one.
    one_at_a_time: tokio::sync::Mutex<()>,
}

impl Merger {
    pub fn new(lane: Arc<Lane>, github: Arc<dyn CodeHost>) -> Merger {
        Merger {
            lane,
            github,
            one_at_a_time: tokio::sync::Mutex::new(()),
        }
    }

    fn intents(&self) -> Intents<'_> {
        Intents::new(&self.lane, IntentKind::Merge)
    }

    pub async fn merge(
        &self,
        actor: &Principal,
        m: &Mutation,
        incident_id: &str,
    ) -> Result<Hotfix> {
        let _one = self.one_at_a_time.lock().await;
        let asked = Command::Merge;
        if self.intents().is_pending(incident_id)? {
            // An earlier merge's outcome is unknown (GitHub was unreachable
            // at start-up): settle it before anything else.
            self.reconcile_locked().await?;
            if self.intents().is_pending(incident_id)? {
                return Err(Refusal::Refused {
                    step: Step::Merge,
                    reason: format!(
                        "an earlier merge of {incident_id} was sent to GitHub and its outcome is \
                         still unknown (GitHub unreachable?); retry once GitHub answers"
                    ),
                }
                .into());
            }
        }
        let h = match self.lane.begin_step(actor, m, incident_id, &asked)? {
            Begun::Replayed(first) => return Ok(first),
            Begun::Fresh(h) => h,
        };
        let pr = h.pull_request.as_ref().map_or(0, |p| p.number);
        let sha = h.current_sha().unwrap_or_default().to_string();
        let repo = h.declaration.repository.clone();
        if h.is_drill() {
            let summary =
                format!("drill: would squash-merge {repo}#{pr} at {sha}; nothing was sent");
            self.lane
                .note(
                    incident_id,
                    EventDraft::new(EventKind::MergeDryRun, summary),
                )
                .await?;
            return self.lane.command(actor, m, incident_id, asked).await;
        }
        let requested = EventDraft::new(
            EventKind::MergeRequested,
            format!(
                "@{} asked GitHub to squash-merge {repo}#{pr} at {sha}",
                actor.handle
            ),
        );
        let intent = Intent {
            actor: actor.handle.clone(),
            detail: NoDetail {},
        };
        self.intents()
            .begin(incident_id, requested, &intent)
            .await?;
        let title = h
            .pull_request
            .as_ref()
            .map(|p| p.title.clone())
            .unwrap_or_default();
        self.lane.may_act()?;
        let why = match self.github.merge(&repo, pr, &sha, &title).await {
            Ok(_) => {
                return self
                    .intents()
                    .complete_or_report(
                        actor,
                        m,
                        incident_id,
                        &asked,
                        asked.clone(),
                        EventKind::MergeFailed,
                    )
                    .await;
            }
            Err(e) => e,
        };
        let (kind, why, outage) = match why {
            MergeError::HeadMoved(msg) => (
                EventKind::MergeRefused,
                format!(
                    "GitHub refused: the PR head is no longer the approved {sha} ({msg}); \
                     submit the new fix and have it approved"
                ),
                false,
            ),
            MergeError::NotMergeable(msg) => (
                EventKind::MergeRefused,
                format!("GitHub cannot merge it: {msg}"),
                false,
            ),
            MergeError::Failed(f) => (EventKind::MergeFailed, f.message, f.transient),
        };
        self.intents()
            .abandon(incident_id, EventDraft::new(kind, why.clone()))
            .await?;
        if outage {
            // GitHub is down or failing: retrying later may merge.
            return Err(Error::Upstream(why));
        }
        Err(Error::from(Refusal::Refused {
            step: Step::Merge,
            reason: why,
        }))
    }

    async fn reconcile_locked(&self) -> Result<()> {
        let unsettled = self
            .intents()
            .unsettled::<NoDetail>(|h| h.merge.is_some(), EventKind::MergeReconciled)
            .await?;
        for (p, h) in unsettled {
            let (inc, handle) = (&p.incident_id, &p.intent.actor);
            let pr = h.pull_request.as_ref().map_or(0, |p| p.number);
            match self.github.is_merged(&h.declaration.repository, pr).await {
                Ok(true) => {
                    let Some(actor) = self.lane.principal(handle) else {
                        tracing::error!(incident = %inc, %handle, "merge intent names a principal no longer in the roster");
                        continue;
                    };
                    let summary = format!(
                        "GitHub shows PR #{pr} merged; recording the merge @{handle} requested before the restart"
                    );
                    let found = EventDraft::new(EventKind::MergeReconciled, summary);
                    let m = Mutation::default();
                    self.intents()
                        .complete_found(
                            found,
                            &actor,
                            &m,
                            inc,
                            &Command::Merge,
                            Command::Merge,
                            EventKind::MergeFailed,
                        )
                        .await?;
                }
                Ok(false) => {
                    let summary =
                        format!("PR #{pr} was not merged before the restart; merge again");
                    self.intents()
                        .abandon(inc, EventDraft::new(EventKind::MergeNotCompleted, summary))
                        .await?;
                }
                Err(e) => {
                    tracing::warn!(incident = %inc, error = %e, "cannot reconcile a merge intent yet; will retry at the next start");
                }
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Reconcile for Merger {
    /// Settles merges that were sent before a crash or restart.
    async fn reconcile(&self) -> Result<()> {
        let _one = self.one_at_a_time.lock().await;
        self.reconcile_locked().await
    }
}

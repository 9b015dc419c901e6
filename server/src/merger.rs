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

use std::sync::Arc;

use crate::domain::{Command, EventDraft, Hotfix, Principal, Refusal, Step};
use crate::error::{Error, Result};
use crate::integrations::{CodeHost, MergeError};
use crate::lane::{Lane, Mutation};
use crate::store::Store;

const INTENT: &str = "merge";

pub struct Merger {
    lane: Arc<Lane>,
    github: Arc<dyn CodeHost>,
    /// Merges are rare: one at a time, so two admins cannot both send one.
    one_at_a_time: tokio::sync::Mutex<()>,
}

fn draft(kind: &str, summary: String) -> EventDraft {
    EventDraft {
        kind: kind.into(),
        summary,
    }
}

impl Merger {
    pub fn new(lane: Arc<Lane>, github: Arc<dyn CodeHost>) -> Merger {
        Merger {
            lane,
            github,
            one_at_a_time: tokio::sync::Mutex::new(()),
        }
    }

    pub async fn merge(
        &self,
        actor: &Principal,
        m: &Mutation,
        incident_id: &str,
    ) -> Result<Hotfix> {
        let _one = self.one_at_a_time.lock().await;
        // A retry (same request id) answers as the first time did.
        if let Some(first) = self.lane.replayed(actor, m, incident_id, &Command::Merge)? {
            return Ok(first);
        }
        let pending = |store: &Store| -> Result<bool> {
            Ok(store.intents(INTENT)?.iter().any(|(i, _)| i == incident_id))
        };
        if pending(self.lane.store())? {
            // An earlier merge's outcome is unknown (GitHub was unreachable
            // at start-up): settle it before anything else.
            self.reconcile_locked().await?;
            if pending(self.lane.store())? {
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
        let h = self.lane.precheck(actor, incident_id, Step::Merge)?;
        let pr = h.pull_request.as_ref().map_or(0, |p| p.number);
        let sha = h.current_sha().unwrap_or_default().to_string();
        let repo = h.declaration.repository.clone();
        if h.is_drill() {
            self.lane
                .note(
                    incident_id,
                    draft(
                        "merge_dry_run",
                        format!("drill: would squash-merge {repo}#{pr} at {sha}; nothing was sent"),
                    ),
                    None,
                )
                .await?;
            return self
                .lane
                .command(actor, m, incident_id, Command::Merge)
                .await;
        }
        let intent = (
            Store::intent_key(INTENT, incident_id),
            actor.handle.clone().into_bytes(),
        );
        self.lane
            .note(
                incident_id,
                draft(
                    "merge_requested",
                    format!(
                        "@{} asked GitHub to squash-merge {repo}#{pr} at {sha}",
                        actor.handle
                    ),
                ),
                Some(intent),
            )
            .await?;
        let title = h
            .pull_request
            .as_ref()
            .map(|p| p.title.clone())
            .unwrap_or_default();
        let outcome = self.github.merge(&repo, pr, &sha, &title).await;
        let result = match outcome {
            Ok(_) => {
                self.lane
                    .command(actor, m, incident_id, Command::Merge)
                    .await
            }
            Err(e) => {
                let mut outage = false;
                let (kind, why) = match e {
                    MergeError::HeadMoved(msg) => (
                        "merge_refused",
                        format!(
                            "GitHub refused: the PR head is no longer the approved {sha} ({msg}); \
                             submit the new fix and have it approved"
                        ),
                    ),
                    MergeError::NotMergeable(msg) => {
                        ("merge_refused", format!("GitHub cannot merge it: {msg}"))
                    }
                    MergeError::Failed(f) => {
                        outage = f.transient;
                        ("merge_failed", f.message)
                    }
                };
                self.lane
                    .note(incident_id, draft(kind, why.clone()), None)
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
        };
        self.lane.store().clear_intent(INTENT, incident_id)?;
        result
    }

    /// Settles merges that were sent before a crash or restart.
    pub async fn reconcile(&self) -> Result<()> {
        let _one = self.one_at_a_time.lock().await;
        self.reconcile_locked().await
    }

    async fn reconcile_locked(&self) -> Result<()> {
        for (inc, handle) in self.lane.store().intents(INTENT)? {
            let Some(h) = self.lane.store().hotfix(&inc)? else {
                self.lane.store().clear_intent(INTENT, &inc)?;
                continue;
            };
            if h.merge.is_some() {
                self.lane.store().clear_intent(INTENT, &inc)?;
                continue;
            }
            let pr = h.pull_request.as_ref().map_or(0, |p| p.number);
            match self.github.is_merged(&h.declaration.repository, pr).await {
                Ok(true) => {
                    let Some(actor) = self.lane.principal(&handle) else {
                        tracing::error!(incident = %inc, %handle, "merge intent names a principal no longer in the roster");
                        continue;
                    };
                    self.lane
                        .note(&inc, draft("merge_reconciled", format!("GitHub shows PR #{pr} merged; recording the merge @{handle} requested before the restart")), None)
                        .await?;
                    self.lane
                        .command(&actor, &Mutation::default(), &inc, Command::Merge)
                        .await?;
                }
                Ok(false) => {
                    self.lane
                        .note(
                            &inc,
                            draft(
                                "merge_not_completed",
                                format!("PR #{pr} was not merged before the restart; merge again"),
                            ),
                            None,
                        )
                        .await?;
                }
                Err(e) => {
                    tracing::warn!(incident = %inc, error = %e, "cannot reconcile a merge intent yet; will retry at the next start");
                    continue;
                }
            }
            self.lane.store().clear_intent(INTENT, &inc)?;
        }
        Ok(())
    }
}

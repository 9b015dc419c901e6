//! The one protocol of every step hotfixd performs outside itself (a merge,
//! a PR, a revert, a sync), so that a crash, a restart or a lost answer
//! never makes it act twice or lose what it did:
//!
//! 1. **begin**: the intent (who asked, and what reconciling needs) is
//!    committed with the step's `…_requested` event, durably, before the
//!    outside service is asked. [`Intents::begin`] again moves it on (a
//!    revert PR, once opened).
//! 2. **act**: the outside call.
//! 3. **complete**: the outcome is recorded and the intent cleared in one
//!    change ([`Intents::complete`]), or, when the action did not happen,
//!    its failure recorded and the intent cleared in one change
//!    ([`Intents::abandon`]).
//! 4. **reconcile**: an intent still present was interrupted between 1 and
//!    3; [`Reconcile::reconcile`] asks the outside service what happened
//!    and completes or abandons it. It runs at start-up before anything is
//!    served, and must run whenever this daemon becomes the one that acts
//!    (a replica taking over leadership).
//!
//! Every intent's payload is JSON with the acting principal's handle in
//! `actor` plus the step's own fields; an intent written before payloads
//! were JSON holds the bare handle.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::domain::{Command, EventDraft, EventKind, Hotfix, Principal};
use crate::error::Result;
use crate::store::{IntentKind, Mark};

use super::lane::{Lane, Mutation};

/// A pending intent as stored: who asked, and the step's own fields.
#[derive(Debug, Default, Serialize, serde::Deserialize)]
pub struct Intent<T> {
    /// The handle of the principal the action is taken for.
    pub actor: String,
    #[serde(flatten)]
    pub detail: T,
}

/// No fields beyond the actor (a merge, a PR).
#[derive(Debug, Default, Serialize, serde::Deserialize)]
pub struct NoDetail {}

/// An intent found pending, for [`Reconcile`].
pub struct Pending<T> {
    pub incident_id: String,
    pub intent: Intent<T>,
}

/// The protocol for one kind of external action, over [`Lane`].
pub struct Intents<'a> {
    lane: &'a Lane,
    kind: IntentKind,
}

impl<'a> Intents<'a> {
    pub fn new(lane: &'a Lane, kind: IntentKind) -> Self {
        Intents { lane, kind }
    }

    /// Commits `event` and the intent together, before the action.
    pub async fn begin<T: Serialize>(
        &self,
        incident_id: &str,
        event: EventDraft,
        intent: &Intent<T>,
    ) -> Result<()> {
        let mark = Mark::Intent {
            kind: self.kind,
            incident_id: incident_id.to_string(),
            payload: serde_json::to_vec(intent).expect("intents serialize"),
        };
        self.lane.note_marked(incident_id, event, vec![mark]).await
    }

    /// Records the action's outcome as the step `cmd` (the request id bound
    /// to what the caller `asked`) and clears the intent, in one change.
    pub async fn complete(
        &self,
        actor: &Principal,
        m: &Mutation,
        incident_id: &str,
        asked: &Command,
        cmd: Command,
    ) -> Result<Hotfix> {
        let done = self.done(incident_id);
        self.lane
            .step_marked(actor, m, incident_id, asked, cmd, vec![done])
            .await
    }

    /// Records why the action did not happen (`event`) and clears the
    /// intent, in one change: the step may be taken again.
    pub async fn abandon(&self, incident_id: &str, event: EventDraft) -> Result<()> {
        let done = self.done(incident_id);
        self.lane.note_marked(incident_id, event, vec![done]).await
    }

    /// [`Intents::complete`]; when recording is refused, the refusal is
    /// recorded instead (`failed` event kind) and the intent cleared: the
    /// action happened but the lane would not take it, which only a person
    /// can settle.
    pub async fn complete_or_report(
        &self,
        actor: &Principal,
        m: &Mutation,
        incident_id: &str,
        asked: &Command,
        cmd: Command,
        failed: EventKind,
    ) -> Result<Hotfix> {
        match self.complete(actor, m, incident_id, asked, cmd).await {
            Err(crate::error::Error::Refused(r)) => {
                let why = format!("recording the {} was refused: {r}", asked.step());
                self.abandon(incident_id, EventDraft::new(failed, why))
                    .await?;
                Err(r.into())
            }
            other => other,
        }
    }

    /// Reconciling found the action done: records what was `found`, then
    /// completes the intent as `cmd` ([`Intents::complete_or_report`]). A
    /// failure to record is logged; the intent then stays for the next
    /// reconcile.
    #[allow(clippy::too_many_arguments)]
    pub async fn complete_found(
        &self,
        found: EventDraft,
        actor: &Principal,
        m: &Mutation,
        incident_id: &str,
        asked: &Command,
        cmd: Command,
        failed: EventKind,
    ) -> Result<()> {
        self.lane.note(incident_id, found).await?;
        if let Err(e) = self
            .complete_or_report(actor, m, incident_id, asked, cmd, failed)
            .await
        {
            let kind = self.kind.action();
            tracing::warn!(incident = %incident_id, error = %e, "recording a reconciled {kind} failed");
        }
        Ok(())
    }

    /// Whether an intent of this kind is pending for the incident.
    pub fn is_pending(&self, incident_id: &str) -> Result<bool> {
        Ok(self
            .lane
            .intents(self.kind)?
            .iter()
            .any(|(i, _)| i == incident_id))
    }

    /// The pending intent of the incident, if any.
    pub fn get<T: DeserializeOwned + Default>(
        &self,
        incident_id: &str,
    ) -> Result<Option<Intent<T>>> {
        Ok(self
            .pending::<T>()?
            .into_iter()
            .find(|p| p.incident_id == incident_id)
            .map(|p| p.intent))
    }

    /// Every pending intent of this kind, oldest incident id first.
    pub fn pending<T: DeserializeOwned + Default>(&self) -> Result<Vec<Pending<T>>> {
        Ok(self
            .lane
            .intents(self.kind)?
            .into_iter()
            .map(|(incident_id, payload)| Pending {
                incident_id,
                intent: decode(&payload),
            })
            .collect())
    }

    /// The pending intents reconciling must ask the outside service about,
    /// with their hotfix. An intent whose outcome the hotfix already shows
    /// (`recorded`; left by an older daemon that cleared intents apart from
    /// the outcome) is settled here with a `settled` event; one of no
    /// readable hotfix is logged and skipped.
    pub async fn unsettled<T: DeserializeOwned + Default>(
        &self,
        recorded: impl Fn(&Hotfix) -> bool,
        settled: EventKind,
    ) -> Result<Vec<(Pending<T>, Hotfix)>> {
        let mut out = Vec::new();
        for p in self.pending::<T>()? {
            let h = match self.lane.hotfix(&p.incident_id) {
                Ok(h) => h,
                Err(e) => {
                    let (inc, kind) = (&p.incident_id, self.kind.action());
                    tracing::error!(incident = %inc, error = %e, "a {kind} intent of no readable hotfix");
                    continue;
                }
            };
            if recorded(&h) {
                let summary = format!(
                    "the {} is recorded; the intent is settled",
                    self.kind.action()
                );
                self.abandon(&p.incident_id, EventDraft::new(settled, summary))
                    .await?;
                continue;
            }
            out.push((p, h));
        }
        Ok(out)
    }

    fn done(&self, incident_id: &str) -> Mark {
        Mark::IntentDone {
            kind: self.kind,
            incident_id: incident_id.to_string(),
        }
    }
}

/// A payload as stored: JSON, or (written before payloads were JSON) the
/// bare handle of the actor.
fn decode<T: DeserializeOwned + Default>(payload: &[u8]) -> Intent<T> {
    serde_json::from_slice(payload).unwrap_or_else(|_| Intent {
        actor: String::from_utf8_lossy(payload).into_owned(),
        detail: T::default(),
    })
}

/// Step 4 of the protocol, for one performer of external steps.
#[async_trait::async_trait]
pub trait Reconcile: Send + Sync {
    /// Settles every pending intent with the outside service: completes
    /// what happened, abandons what did not, and leaves for the next call
    /// what cannot be known yet (the service unreachable).
    async fn reconcile(&self) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_read_back_and_bare_handles_are_the_actor() {
        #[derive(Debug, Default, PartialEq, Serialize, serde::Deserialize)]
        struct Revert {
            pr: u64,
        }
        let stored = serde_json::to_vec(&Intent {
            actor: "carol".into(),
            detail: Revert { pr: 7 },
        })
        .unwrap();
        assert_eq!(
            String::from_utf8(stored.clone()).unwrap(),
            r#"{"actor":"carol","pr":7}"#
        );
        let back: Intent<Revert> = decode(&stored);
        assert_eq!((back.actor.as_str(), back.detail.pr), ("carol", 7));
        let legacy: Intent<NoDetail> = decode(b"dave");
        assert_eq!(legacy.actor, "dave");
    }
}

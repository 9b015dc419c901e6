//! Signed audit checkpoints (format: `hotfix_api::audit`): every
//! `checkpoint_every` new audit records or `checkpoint_interval`, and at
//! shutdown, the daemon signs the trail's size and chain head with its
//! Ed25519 key and commits the note as an `audit_checkpoint` event (which
//! the relay posts to the Slack audit channel: an anchor outside hotfixd)
//! with the checkpoint stored beside it. Anyone with the verifier key can
//! then prove that the trail up to that size was never rewritten, however
//! the disk was edited afterwards.

use crate::domain::EventKind;
use std::sync::Arc;
use std::time::Duration;

use hotfix_api::audit::SigningKey;
use tokio_util::sync::CancellationToken;

use super::lane::{Lane, SYSTEM_ACTOR};
use crate::domain::EventDraft;
use crate::error::Result;
use crate::store::{Commit, Outcome, Request, Write};

/// When checkpoints are written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CheckpointSettings {
    /// After this many new audit records ...
    pub every: u64,
    /// ... or this long, if there is anything new.
    pub interval: Duration,
}

impl Default for CheckpointSettings {
    fn default() -> Self {
        CheckpointSettings {
            every: 1000,
            interval: Duration::from_secs(300),
        }
    }
}

pub const EVENT_KIND: EventKind = EventKind::AuditCheckpoint;
/// The action of a checkpoint's own audit record, whose detail is the
/// signed note (so the audit sink streams each checkpoint with the trail).
pub const ACTION: &str = "audit-checkpoint";

/// Signs and commits a checkpoint of the trail as it is, unless nothing but
/// the previous checkpoint's own record was added since. Returns its size.
pub async fn checkpoint(lane: &Lane, key: &SigningKey) -> Result<Option<u64>> {
    let store = lane.store();
    let last = store.latest_checkpoint()?.map_or(0, |(size, _)| size);
    // Nothing new since the last one but that checkpoint's own record.
    if last > 0 && store.audit_size() <= last + 1 {
        return Ok(None);
    }
    let req = Request {
        actor: SYSTEM_ACTOR,
        action: ACTION,
        incident_id: "",
        now: lane.now(),
        request_id: "",
        fingerprint: String::new(),
    };
    let outcome = store
        .execute(
            req,
            Box::new(|snap| {
                let (size, head) = snap.audit_position();
                let note = key.checkpoint(size, &head);
                Ok(Commit {
                    write: Write::Checkpoint {
                        size,
                        note: note.clone(),
                    },
                    state: None,
                    events: vec![EventDraft {
                        kind: EVENT_KIND,
                        summary: note,
                    }],
                    exercise: None,
                    marks: Vec::new(),
                })
            }),
        )
        .await?;
    match outcome {
        Outcome::Checkpoint { size, .. } => Ok(Some(size)),
        _ => Ok(None),
    }
}

/// Writes checkpoints until `stop`, then one last one.
pub async fn run(
    lane: Arc<Lane>,
    key: Arc<SigningKey>,
    settings: CheckpointSettings,
    stop: CancellationToken,
) {
    let mut doorbell = lane.store().subscribe();
    let mut tick = tokio::time::interval(settings.interval);
    tick.tick().await;
    let mut at = lane
        .store()
        .latest_checkpoint()
        .ok()
        .flatten()
        .map_or(0, |(size, _)| size);
    loop {
        let due = tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => true,
            r = doorbell.changed() => {
                if r.is_err() {
                    break;
                }
                let size = lane.store().audit_size();
                size >= at + settings.every
            }
        };
        if due {
            match checkpoint(&lane, &key).await {
                Ok(Some(size)) => at = size,
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "writing an audit checkpoint failed"),
            }
        }
    }
    if let Err(e) = checkpoint(&lane, &key).await {
        tracing::error!(error = %e, "writing the shutdown audit checkpoint failed");
    }
}

//! The store interface the application layer uses: what any engine (sled,
//! embedded; etcd, replicated) must provide, and nothing of how.
//!
//! The promises, which `server/tests/conformance` checks on every engine:
//!
//! - **A change is atomic**: [`Engine::execute`] commits the facts, their
//!   events, the audit record, the index entries, the marks and the
//!   request record as one change, or nothing (a refusal: its audit
//!   record only).
//! - **Decisions see every earlier change**: `decide` runs against
//!   [`Reads`] that include every change answered before; concurrent
//!   callers are serialized, so no update is lost.
//! - **Sequences are gap-free**: events and audit records are numbered 1,
//!   2, 3… in commit order, with no number skipped or reused, across
//!   restarts.
//! - **Answered means durable**: `execute` returns only after the change
//!   is durable (fsync, or a quorum), and the event log's durable end
//!   ([`Engine::durable_seq`], [`Engine::subscribe`]) moves only then. A
//!   change that cannot be made durable is an error, and the engine then
//!   refuses changes until restarted.
//! - **A request id answers once**: a change carrying a request id seen
//!   before returns the stored first answer and writes nothing; the same id
//!   with another request is INVALID_ARGUMENT.
//! - **Reads after restart** return what was answered before it.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::watch;

use super::{AuditRecord, Commit, IntentKind, Outcome, Request, StoredEvent, chain};
use crate::domain::{Exercise, GateView, Hotfix, Mitigation, Time};
use crate::error::Result;

/// What deciding a change may read: a view that includes every change
/// answered before, and that nothing else changes until the decision is
/// committed or dropped.
pub trait Reads {
    fn hotfix(&self, incident_id: &str) -> Result<Option<Hotfix>>;
    fn mitigation(&self, incident_id: &str) -> Result<Option<Mitigation>>;
    /// Non-drill declarations in `[since, now]` and the latest team review.
    fn gate_view(&self, since: Time) -> Result<GateView>;
    /// Hotfixes `author` declared in `quarter` (drills excluded).
    fn author_quarter_count(&self, quarter: &str, author: &str) -> Result<u32>;
    /// The audit trail's size and chain head before this change.
    fn audit_position(&self) -> (u64, chain::Hash);
}

/// Decides one change from what it reads (see [`Engine::execute`]). It may
/// run more than once: a replicated engine whose change lost a race with
/// another replica's decides again on the newer view, and commits only the
/// last decision.
pub type Decide<'a> = Box<dyn FnMut(&dyn Reads) -> Result<Commit> + Send + 'a>;

/// Resolves, with why, once the engine can no longer make changes durable.
pub type Failure = Pin<Box<dyn Future<Output = String> + Send + 'static>>;

/// A store engine. See the module's promises.
#[async_trait::async_trait]
pub trait Engine: Send + Sync + 'static {
    // The change.

    /// Decides and commits one change, durably. `decide` runs with a
    /// consistent view (once on sled; again after a lost race on etcd);
    /// its refusal is audited and returned, and nothing
    /// else is written. A request id seen before returns the first answer.
    async fn execute(&self, req: Request<'_>, decide: Decide<'_>) -> Result<Outcome>;
    /// The stored first answer to `request_id` from `actor`, if any; the
    /// same id with another request (`fingerprint`) is INVALID_ARGUMENT.
    fn replay(&self, actor: &str, request_id: &str, fingerprint: &str) -> Result<Option<Outcome>>;
    /// Waits until this engine's reads hold every change answered before
    /// the call, by any replica (sled: at once; etcd: a quorum read of the
    /// head, and the mirror reaching it).
    async fn catch_up(&self) -> Result<()> {
        Ok(())
    }
    /// Makes everything written so far durable (at shutdown).
    async fn flush(&self) -> Result<()>;
    /// See [`Failure`].
    fn failure(&self) -> Failure;
    /// How many changes each flush (sled) or transaction (etcd) made
    /// durable, for `/metrics`.
    fn batches(&self) -> prometheus_client::metrics::histogram::Histogram;
    /// A consistent backup of the whole store (an audit record itself).
    async fn backup(&self, actor: &str, now: Time) -> Result<Vec<u8>>;
    /// Appends an audit record of its own (no event, no fact: e.g. the
    /// roster reloaded), durably.
    async fn record(&self, actor: &str, action: &str, detail: &str, now: Time) -> Result<()>;

    // Reads by key and by index.

    fn hotfix(&self, incident_id: &str) -> Result<Option<Hotfix>>;
    fn mitigation(&self, incident_id: &str) -> Result<Option<Mitigation>>;
    /// Every hotfix, in incident-id order.
    fn hotfixes(&self) -> Result<Vec<Hotfix>>;
    /// Every incident mitigated without a hotfix, in incident-id order.
    fn mitigations(&self) -> Result<Vec<Mitigation>>;
    /// The events of one incident, in order.
    fn timeline(&self, incident_id: &str) -> Result<Vec<StoredEvent>>;
    fn gate_view(&self, since: Time) -> Result<GateView>;
    fn author_quarter_count(&self, quarter: &str, author: &str) -> Result<u32>;
    /// Per-author counts for one quarter, by author.
    fn quarter_counts(&self, quarter: &str) -> Result<Vec<(String, u32)>>;
    /// Outstanding obligations due before `now`: (incident, kind, due).
    fn overdue(&self, now: Time) -> Result<Vec<(String, String, Time)>>;
    /// Overdue obligations not yet reported: (incident, kind).
    fn overdue_unreported(&self, now: Time) -> Result<Vec<(String, String)>>;
    /// The newest `n` exercises ("When this runbook last worked").
    fn exercises(&self, n: usize) -> Result<Vec<Exercise>>;
    /// Whether the hotfix lane was exercised at or after `since`.
    fn lane_exercised_since(&self, since: Time) -> Result<bool>;
    /// (postmortems, of which "yes, but a rollback would have worked").
    fn postmortem_counts(&self) -> Result<(u32, u32)>;

    // The event log, read forward.

    /// The sequence of the last durable event.
    fn durable_seq(&self) -> u64;
    /// A doorbell carrying [`Engine::durable_seq`] as it moves.
    fn subscribe(&self) -> watch::Receiver<u64>;
    /// Durable events with `seq > from`, at most `limit`, in order.
    fn events_after(&self, from: u64, limit: usize) -> Result<Vec<StoredEvent>>;

    // Cursors and intents.

    /// A named reader's position in the event log (0: none).
    fn cursor(&self, name: &str) -> Result<u64>;
    /// Moves a cursor; durable with the next change (at-least-once).
    fn set_cursor(&self, name: &str, seq: u64) -> Result<()>;
    /// Pending intents of `kind`: (incident, payload).
    fn intents(&self, kind: IntentKind) -> Result<Vec<(String, Vec<u8>)>>;

    // The audit trail.

    /// Audit records with `seq > from`, at most `limit`.
    fn audit_after(&self, from: u64, limit: usize) -> Result<Vec<AuditRecord>>;
    /// The audit records of one incident, oldest first.
    fn audit_of(&self, incident_id: &str, limit: usize) -> Result<Vec<AuditRecord>>;
    /// How many audit records the trail holds.
    fn audit_size(&self) -> u64;
    /// The chain hash of record `seq`.
    fn audit_hash(&self, seq: u64) -> Result<Option<String>>;
    /// Walks the whole chain from its first record.
    fn verify_audit(&self) -> chain::Report;
    /// The first stored checkpoint the trail does not match (or, with
    /// `key`, whose signature does not verify): (size, why).
    fn verify_checkpoints(
        &self,
        key: Option<&hotfix_api::audit::VerifierKey>,
    ) -> Result<Option<(u64, String)>>;
    /// The newest stored signed checkpoint: (size, note).
    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>>;
}

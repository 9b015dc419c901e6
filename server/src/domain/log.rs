//! The lane's two logs, as every layer reads them: the event log (what
//! happened to each hotfix, streamed to watchers and chat) and the audit
//! trail (every change and every refusal, hash-chained by the store).

use serde::{Deserialize, Serialize};

use super::{State, Time};

/// The state an event records beside it: its hotfix's after the change, or
/// an incident's mitigated without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventState {
    /// The hotfix's state after the change.
    Hotfix(State),
    /// An incident resolved by a flag flip or a rollback.
    MitigatedWithoutHotfix,
}

impl EventState {
    /// As `StoredEvent::state` and the proto's `State` names spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            EventState::Hotfix(s) => s.as_str(),
            EventState::MitigatedWithoutHotfix => "MITIGATED_WITHOUT_HOTFIX",
        }
    }
}

/// An event as stored and streamed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Its place in the log: gap-free, from 1, in commit order.
    pub seq: u64,
    /// The hotfix it belongs to ("" for none, e.g. a team review).
    pub incident_id: String,
    /// When it was committed, by the lane's clock.
    pub at: Time,
    /// Who took the step (`hotfixd` for the daemon's own events).
    pub actor: String,
    /// `EventKind::as_str`; a kind a newer daemon wrote is kept as it is.
    pub kind: String,
    /// One line for people, secrets redacted.
    pub summary: String,
    /// The hotfix state after the event ("" for events of no hotfix).
    pub state: String,
    /// The hotfix's version after the change.
    pub version: u64,
    /// A game-day drill's event (not relayed to chat).
    pub drill: bool,
}

/// One line of the audit trail: every change and every refusal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Its place in the trail: gap-free, from 1.
    pub seq: u64,
    /// When, by the lane's clock.
    pub at: Time,
    /// The authenticated principal's handle.
    pub actor: String,
    /// The hotfix concerned ("" for none).
    pub incident_id: String,
    /// What was asked (a step, "declare", "backup", "audit-export", …).
    pub action: String,
    /// "ok", or the refusal's kind ("denied", "refused", ...).
    pub outcome: String,
    /// The change's event summaries, or the refusal's message (redacted).
    pub detail: String,
    /// The first event this change produced, if it changed anything.
    pub event_seq: Option<u64>,
    /// Chain hash (hex) over this record and the one before (see
    /// `store::chain`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hash: String,
    /// The leaf encoding it was sealed with: 2, the canonical one; absent
    /// (0) in records sealed before it, which hash their JSON.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub v: u32,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

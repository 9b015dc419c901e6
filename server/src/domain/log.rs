//! The lane's two logs, as every layer reads them: the event log (what
//! happened to each hotfix, streamed to watchers and chat) and the audit
//! trail (every change and every refusal, hash-chained by the store).

use serde::{Deserialize, Serialize};

use super::{State, Time};

/// The state an event records beside it: its hotfix's after the change, or
/// an incident's mitigated without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventState {
    Hotfix(State),
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
    pub seq: u64,
    pub incident_id: String,
    pub at: Time,
    pub actor: String,
    pub kind: String,
    pub summary: String,
    /// The hotfix state after the event ("" for events of no hotfix).
    pub state: String,
    pub version: u64,
    pub drill: bool,
}

/// One line of the audit trail: every change and every refusal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: u64,
    pub at: Time,
    pub actor: String,
    pub incident_id: String,
    pub action: String,
    /// "ok", or the refusal's kind ("denied", "refused", ...).
    pub outcome: String,
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

//! The hotfix lane as a pure state machine: the runbook lives here.
//!
//! No tonic, no sled, no clock reads: callers pass the authenticated actor,
//! the current time, the policy and what the store read (the hotfix, the
//! rate-limit window). Every decision is either a [`Decision`] to persist or
//! a [`Refusal`] that says why and what would unblock it.

pub mod facts;
pub mod lane;
pub mod log;
pub mod model;
pub mod notify;
pub mod policy;
pub mod steps;
pub mod validate;

#[cfg(test)]
mod model_tests;

#[cfg(test)]
pub(crate) mod model_tests_support {
    use super::*;

    /// A declared hotfix: author bob, approver alice, cleanup owner bob.
    pub fn hotfix() -> Hotfix {
        let now = chrono::DateTime::parse_from_rfc3339("2026-05-20T09:00:00Z")
            .unwrap()
            .to_utc();
        super::model_tests::declared(&Policy::default(), &super::model_tests::roster(), now)
    }
}

pub use facts::{CheckFacts, CheckState, Review, Samples};
pub use hotfix_api::kinds::EventKind;
pub use lane::*;
pub use model::*;
pub use policy::*;
pub use steps::apply;

/// Why the lane refused a request. Each variant maps to one gRPC code.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    /// Bad input: names the field. Nothing was changed.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// The caller's role or identity may not do what it asked.
    #[error("{reason}")]
    Denied { reason: String },
    #[error("no hotfix or mitigation is recorded for incident {incident}")]
    NotFound { incident: String },
    /// The incident already has a hotfix or mitigation (no chaining).
    #[error("{reason}")]
    AlreadyExists { reason: String },
    /// The step is not allowed from the current state.
    #[error("{}", wrong_state_message(*state, *step, allowed, reason))]
    WrongState {
        state: State,
        step: Step,
        allowed: Vec<Step>,
        reason: String,
    },
    /// The runbook forbids this now; the message says what would unblock it.
    #[error("{reason}")]
    Refused { step: Step, reason: String },
    /// The rolling-window gate is closed.
    #[error("{reason}")]
    RateLimited { reason: String },
    /// `expected_version` did not match.
    #[error("version conflict: expected version {expected}, the hotfix is at version {current}")]
    Conflict { expected: u64, current: u64 },
}

impl Refusal {
    /// The refusal's kind as the audit trail and the metrics name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::Invalid { .. } => "invalid",
            Refusal::Denied { .. } => "denied",
            Refusal::NotFound { .. } => "not-found",
            Refusal::AlreadyExists { .. } => "already-exists",
            Refusal::WrongState { .. } => "wrong-state",
            Refusal::Refused { .. } => "refused",
            Refusal::RateLimited { .. } => "rate-limited",
            Refusal::Conflict { .. } => "conflict",
        }
    }
}

fn wrong_state_message(state: State, step: Step, allowed: &[Step], reason: &str) -> String {
    let allowed = if allowed.is_empty() {
        "none (the hotfix is final)".to_string()
    } else {
        allowed
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut msg = format!("step '{step}' is not allowed in state {state}");
    if !reason.is_empty() {
        msg.push_str(": ");
        msg.push_str(reason);
    }
    msg.push_str(&format!("; steps allowed from {state}: {allowed}"));
    msg
}

//! Which events reach which chat channel, and with what text.
//!
//! Pure: the relay (server/src/relay.rs) reads the event log and asks here.
//! The runbook's channels: the status channel hears declarations and
//! overdue obligations; the audit channel hears every admin merge and every
//! breakglass action.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatChannel {
    Status,
    Audit,
}

impl fmt::Display for ChatChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            ChatChannel::Status => "status",
            ChatChannel::Audit => "audit",
        })
    }
}

/// Event kinds the relay itself writes; never relayed again.
pub const RELAY_KINDS: [&str; 2] = ["notification_failed", "notification_skipped"];

/// The message for an event, if it is one the runbook wants posted.
pub fn message_for(kind: &str, incident_id: &str, summary: &str) -> Option<(ChatChannel, String)> {
    match kind {
        "declared" => Some((ChatChannel::Status, summary.to_string())),
        "obligation_overdue" => Some((ChatChannel::Status, format!("{incident_id}: {summary}"))),
        "merged" | "breakglass_granted" | "breakglass_cleaned" => {
            Some((ChatChannel::Audit, format!("{incident_id}: {summary}")))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_follow_the_runbook() {
        assert_eq!(
            message_for("declared", "I", "DECLARING HOTFIX").unwrap().0,
            ChatChannel::Status
        );
        assert_eq!(
            message_for("merged", "I", "m").unwrap().0,
            ChatChannel::Audit
        );
        assert_eq!(
            message_for("breakglass_granted", "I", "b").unwrap().0,
            ChatChannel::Audit
        );
        assert_eq!(
            message_for("obligation_overdue", "I", "o").unwrap().0,
            ChatChannel::Status
        );
        assert!(message_for("approved", "I", "a").is_none());
        for k in RELAY_KINDS {
            assert!(message_for(k, "I", "x").is_none());
        }
    }
}

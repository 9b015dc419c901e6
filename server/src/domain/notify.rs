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

use super::EventKind;

/// Event kinds the relay itself writes; never relayed again.
pub const RELAY_KINDS: [EventKind; 2] = [
    EventKind::NotificationFailed,
    EventKind::NotificationSkipped,
];

/// The message for an event, if it is one the runbook wants posted.
///
/// Summaries quote what people typed (a symptom, a role), and Slack reads
/// `<...>` as a mention or a link and `&` as the start of an entity: every
/// message is escaped as Slack documents (`&amp;`, `&lt;`, `&gt;`), so
/// `<!channel>` arrives as text, not as a page to everyone. An audit
/// channel post is one record and one line.
pub fn message_for(
    kind: EventKind,
    incident_id: &str,
    summary: &str,
) -> Option<(ChatChannel, String)> {
    use EventKind::*;
    let (channel, text) = match kind {
        Declared => (ChatChannel::Status, summary.to_string()),
        ObligationOverdue => (ChatChannel::Status, format!("{incident_id}: {summary}")),
        Merged | BreakglassGranted | BreakglassCleaned => (
            ChatChannel::Audit,
            format!("{incident_id}: {}", one_line(summary)),
        ),
        // A signed note, whole (its lines are its format): an anchor of
        // the trail outside hotfixd.
        AuditCheckpoint => (ChatChannel::Audit, format!("audit checkpoint:\n{summary}")),
        _ => return None,
    };
    Some((channel, slack_escape(&text)))
}

/// Slack's three control characters in message text, escaped.
pub fn slack_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Line breaks folded into spaces (input checks refuse them in one-line
/// fields; this keeps it true of anything stored before they did).
fn one_line(text: &str) -> String {
    text.split(['\n', '\r', '\u{2028}', '\u{2029}'])
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(wire: &str) -> EventKind {
        EventKind::parse(wire).expect("a known kind")
    }

    #[test]
    fn routes_follow_the_runbook() {
        assert_eq!(
            message_for(kind("declared"), "I", "DECLARING HOTFIX")
                .unwrap()
                .0,
            ChatChannel::Status
        );
        assert_eq!(
            message_for(kind("merged"), "I", "m").unwrap().0,
            ChatChannel::Audit
        );
        assert_eq!(
            message_for(kind("breakglass_granted"), "I", "b").unwrap().0,
            ChatChannel::Audit
        );
        assert_eq!(
            message_for(kind("obligation_overdue"), "I", "o").unwrap().0,
            ChatChannel::Status
        );
        assert!(message_for(kind("approved"), "I", "a").is_none());
        // A signed checkpoint goes out whole, lines and all: an anchor of
        // the trail outside hotfixd.
        let (channel, text) = message_for(
            kind("audit_checkpoint"),
            "",
            "origin\n7\nAAAA\n\n\u{2014} origin sig\n",
        )
        .unwrap();
        assert_eq!(channel, ChatChannel::Audit);
        assert!(
            text.ends_with("origin\n7\nAAAA\n\n\u{2014} origin sig\n"),
            "{text}"
        );
        for k in RELAY_KINDS {
            assert!(message_for(k, "I", "x").is_none());
        }
    }

    #[test]
    fn typed_text_cannot_mention_link_or_add_a_line() {
        let (_, text) = message_for(
            kind("declared"),
            "I",
            "Symptom: <!channel> <https://evil|the runbook> & more.",
        )
        .unwrap();
        assert_eq!(
            text,
            "Symptom: &lt;!channel&gt; &lt;https://evil|the runbook&gt; &amp; more."
        );
        let (_, text) = message_for(
            kind("breakglass_granted"),
            "I",
            "breakglass db\nINC-1: breakglass cleaned by @carol",
        )
        .unwrap();
        assert!(!text.contains('\n'), "{text}");
        assert_eq!(text, "I: breakglass db INC-1: breakglass cleaned by @carol");
    }
}

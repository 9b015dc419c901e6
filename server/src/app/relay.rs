//! Background work that reads the event log and the audit trail: the chat
//! relay, the overdue sweeper, PagerDuty change events and the audit sink.
//!
//! The relay is a watcher with a persisted cursor: it posts what the runbook
//! wants posted, in order, and never blocks the lane. A post that still
//! fails after its retries is recorded as a `notification_failed` event; a
//! drill's messages are not sent but recorded as `notification_skipped`.
//! Delivery is at least once: a crash between a post and the cursor's next
//! flush posts that message again.

use crate::domain::EventKind;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::lane::Lane;
use crate::domain::EventDraft;
use crate::domain::notify::{RELAY_KINDS, message_for};
use crate::integrations::Chat;

const CURSOR: &str = "chat-relay";
const BATCH: usize = 64;

/// A reader of the event log with a persisted cursor: the chat relay, the
/// PagerDuty change events and the `hotfixd/gate` keeper each hold one.
/// [`LogReader::next`] hands out the events after the cursor in order,
/// waiting for more; [`LogReader::done`] moves the cursor past one dealt
/// with. A crash between the two hands that event out again: readers are
/// at least once.
pub struct LogReader {
    store: Arc<dyn crate::store::Engine>,
    name: &'static str,
    what: &'static str,
    doorbell: tokio::sync::watch::Receiver<u64>,
    read: std::collections::VecDeque<crate::domain::log::StoredEvent>,
}

impl LogReader {
    /// The reader of cursor `name`; `what` names it in log lines.
    pub fn new(lane: &Lane, name: &'static str, what: &'static str) -> LogReader {
        let store = lane.store().clone();
        let doorbell = store.subscribe();
        LogReader {
            store,
            name,
            what,
            doorbell,
            read: Default::default(),
        }
    }

    /// The next event after the cursor, once there is one; None when
    /// `shutdown` is cancelled or the store fails (logged).
    pub async fn next(
        &mut self,
        shutdown: &CancellationToken,
    ) -> Option<crate::domain::log::StoredEvent> {
        loop {
            if shutdown.is_cancelled() {
                return None;
            }
            if let Some(e) = self.read.pop_front() {
                return Some(e);
            }
            let batch = self
                .store
                .cursor(self.name)
                .and_then(|c| self.store.events_after(c, BATCH));
            match batch {
                Ok(b) if !b.is_empty() => {
                    self.read = b.into();
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "{} cannot read the event log; stopping", self.what);
                    return None;
                }
            }
            tokio::select! {
                changed = self.doorbell.changed() => if changed.is_err() { return None },
                _ = shutdown.cancelled() => return None,
            }
        }
    }

    /// `e` is dealt with: the cursor moves past it. False when the store
    /// failed (logged): the reader stops.
    pub fn done(&self, e: &crate::domain::log::StoredEvent) -> bool {
        match self.store.set_cursor(self.name, e.seq) {
            Ok(()) => true,
            Err(err) => {
                tracing::error!(error = %err, "{} cannot move its cursor; stopping", self.what);
                false
            }
        }
    }
}

pub async fn run_relay(lane: Arc<Lane>, chat: Arc<dyn Chat>, shutdown: CancellationToken) {
    let mut log = LogReader::new(&lane, CURSOR, "the chat relay");
    while let Some(e) = log.next(&shutdown).await {
        if let Some(kind) = EventKind::parse(&e.kind)
            && !RELAY_KINDS.contains(&kind)
            && let Some((channel, text)) = message_for(kind, &e.incident_id, &e.summary)
        {
            let note = if e.drill {
                Some(EventDraft {
                    kind: EventKind::NotificationSkipped,
                    summary: format!("drill: would post to the {channel} channel: {text}"),
                })
            } else {
                match chat.post(channel, &text).await {
                    Ok(()) => None,
                    Err(why) => Some(EventDraft {
                        kind: EventKind::NotificationFailed,
                        summary: format!(
                            "could not post event #{} to the {channel} channel: {why}",
                            e.seq
                        ),
                    }),
                }
            };
            if let Some(n) = note
                && let Err(err) = lane.note(&e.incident_id, n).await
            {
                tracing::error!(error = %err, "recording a relay outcome failed");
            }
        }
        if !log.done(&e) {
            return;
        }
    }
}

/// Reports overdue obligations every `every`.
pub async fn run_overdue_sweeper(lane: Arc<Lane>, every: Duration, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        match lane.sweep_overdue().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(reported = n, "overdue obligations reported"),
            Err(e) => tracing::warn!(error = %e, "overdue sweep failed"),
        }
    }
}

/// The audit sink's cursor: the last audit record the SIEM took.
pub const SINK_CURSOR: &str = "siem-sink";

/// Streams every audit record to the SIEM, in order, at least once: the
/// cursor moves only after the SIEM answered 2xx, so a crash resends the
/// last batch at most. A SIEM that is down or refuses never blocks the
/// lane (the store stays the record): the sink waits (backing off to a
/// minute) and sends again from where it was; `hotfixd_siem_lag_records`
/// says how far behind it is, and an alert watches it.
pub async fn run_audit_sink(
    lane: Arc<Lane>,
    siem: Arc<crate::integrations::siem::Siem>,
    shutdown: CancellationToken,
) {
    let store = lane.store().clone();
    let mut doorbell = store.subscribe();
    let first = siem.settings().backoff;
    let mut backoff = first;
    let lag = &lane.metrics().siem_lag;
    loop {
        let cursor = match store.cursor(SINK_CURSOR) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "audit sink cannot read its cursor; stopping");
                return;
            }
        };
        lag.set(store.audit_size().saturating_sub(cursor) as i64);
        let batch = match store.audit_after(cursor, siem.settings().batch.max(1)) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "audit sink cannot read the audit trail; stopping");
                return;
            }
        };
        let Some(last) = batch.last().map(|r| r.seq) else {
            // A refusal writes an audit record and no event, which rings
            // no doorbell: look again within a second.
            tokio::select! {
                changed = doorbell.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.cancelled() => return,
            }
            continue;
        };
        match siem.send(&batch).await {
            Ok(()) => {
                if let Err(e) = store.set_cursor(SINK_CURSOR, last) {
                    tracing::error!(error = %e, "audit sink cannot move its cursor; stopping");
                    return;
                }
                backoff = first;
            }
            Err(e) => {
                tracing::warn!(
                    error = %e.why,
                    transient = e.transient,
                    after_record = cursor,
                    "the SIEM did not take the audit records; sending again in {}s",
                    backoff.as_secs_f64()
                );
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.cancelled() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
    }
}

/// The change events' cursor: the last event told to PagerDuty.
pub const CHANGES_CURSOR: &str = "pagerduty-changes";

/// Tells PagerDuty of each hotfix merged and each reverted (not drills),
/// at least once, in order: a change PagerDuty could not take for now (no
/// answer, 429, 5xx) is sent again, backing off to a minute; one it
/// refuses (400) is recorded in the hotfix's timeline as
/// `notification_failed` and skipped. Never blocks the lane.
pub async fn run_change_events(
    lane: Arc<Lane>,
    pagerduty: Arc<crate::integrations::pagerduty::PagerDuty>,
    shutdown: CancellationToken,
) {
    use crate::integrations::pagerduty::Change;
    let mut log = LogReader::new(&lane, CHANGES_CURSOR, "PagerDuty change events");
    'events: while let Some(e) = log.next(&shutdown).await {
        let kind = EventKind::parse(&e.kind);
        if matches!(kind, Some(EventKind::Merged | EventKind::Reverted)) && !e.drill {
            let link = lane.hotfix(&e.incident_id).ok().and_then(|h| {
                h.pull_request
                    .map(|p| (p.url, format!("hotfix PR #{}", p.number)))
            });
            let change = Change {
                summary: format!("{}: {}", e.incident_id, e.summary),
                timestamp: e.at,
                incident_id: e.incident_id.clone(),
                kind: e.kind.clone(),
                actor: e.actor.clone(),
                link,
            };
            let mut backoff = Duration::from_secs(1);
            loop {
                match pagerduty.change(&change).await {
                    Ok(()) => break,
                    Err(not) if not.transient => {
                        tracing::warn!(error = %not.why, "PagerDuty did not take a change event; sending again");
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = shutdown.cancelled() => break 'events,
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(60));
                    }
                    Err(not) => {
                        let note = EventDraft {
                            kind: EventKind::NotificationFailed,
                            summary: format!(
                                "PagerDuty refused the change event of #{}: {}",
                                e.seq, not.why
                            ),
                        };
                        if let Err(err) = lane.note(&e.incident_id, note).await {
                            tracing::error!(error = %err, "recording a refused change event failed");
                        }
                        break;
                    }
                }
            }
        }
        if !log.done(&e) {
            return;
        }
    }
}

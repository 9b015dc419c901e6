//! Background work that reads the event log: the chat relay and the
//! overdue sweeper.
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

pub async fn run_relay(lane: Arc<Lane>, chat: Arc<dyn Chat>, shutdown: CancellationToken) {
    let store = lane.store().clone();
    let mut doorbell = store.subscribe();
    loop {
        let cursor = match store.cursor(CURSOR) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "chat relay cannot read its cursor; stopping");
                return;
            }
        };
        let batch = match store.events_after(cursor, BATCH) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "chat relay cannot read the event log; stopping");
                return;
            }
        };
        for e in &batch {
            if shutdown.is_cancelled() {
                return;
            }
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
            if let Err(err) = store.set_cursor(CURSOR, e.seq) {
                tracing::error!(error = %err, "chat relay cannot move its cursor; stopping");
                return;
            }
        }
        if batch.len() == BATCH {
            continue;
        }
        tokio::select! {
            changed = doorbell.changed() => if changed.is_err() { return },
            _ = shutdown.cancelled() => return,
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

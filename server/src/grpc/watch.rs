//! `Watch`: the event log, replayed from the store and then followed live.
//!
//! Every watcher waits on one thing, the [`Bell`]: a single task rings it
//! when an event becomes durable, when a heartbeat is due and when the
//! server shuts down. (Before, each watcher waited on its own timer, the
//! store's doorbell and the shutdown token at once; with 10,000 watchers,
//! setting up and tearing down those three waits on every event was a
//! tenth of the daemon's CPU; BENCHMARKS.md.)

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hotfix_api::pb;
use hotfix_api::pb::event_service_server::EventService;
use tokio::sync::watch;
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::auth::principal;
use crate::domain;
use crate::error::Error;
use crate::lane::Lane;
use crate::store::{Store, StoredEvent};

use super::Reply;
use super::convert::to_pb_event;

/// Events read from the store per batch, for a watcher that is behind.
const WATCH_BATCH: usize = 256;

/// What the bell says; watchers compare it with what they saw last.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Bell {
    /// Heartbeats due so far; a watcher sends one when this moves.
    beats: u64,
    /// The server is shutting down: send a closing heartbeat and end.
    closing: bool,
}

/// Rings the bell until every receiver is gone: for each new durable event, every `heartbeat`, and once more (closing) when `shutdown` is
/// cancelled.
fn ring(store: &Store, heartbeat: Duration, shutdown: CancellationToken) -> watch::Receiver<Bell> {
    let mut doorbell = store.subscribe();
    let (bell, rx) = watch::channel(Bell::default());
    tokio::spawn(async move {
        let start = tokio::time::Instant::now() + heartbeat;
        let mut ticker = tokio::time::interval_at(start, heartbeat);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                changed = doorbell.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    // Nothing to change: a new durable event only wakes
                    // the watchers, which read the store themselves.
                    bell.send_modify(|_| ());
                }
                _ = ticker.tick() => bell.send_modify(|b| b.beats += 1),
                _ = shutdown.cancelled() => {
                    bell.send_modify(|b| b.closing = true);
                    break;
                }
                _ = bell.closed() => return,
            }
        }
        // Keep the last word (closing) readable until the last watcher is
        // gone, rather than ending the channel under them.
        bell.closed().await;
    });
    rx
}

/// The event log service.
#[derive(Clone)]
pub struct EventsApi {
    lane: Arc<Lane>,
    bell: watch::Receiver<Bell>,
}

impl EventsApi {
    /// Starts the bell (a task) on the current runtime: heartbeats every
    /// `heartbeat`; watchers close when `shutdown` is cancelled.
    pub fn new(lane: Arc<Lane>, heartbeat: Duration, shutdown: CancellationToken) -> Self {
        let bell = ring(lane.store(), heartbeat, shutdown);
        EventsApi { lane, bell }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchResponse, Status>> + Send>>;

fn heartbeat(latest_seq: u64, closing: bool) -> pb::WatchResponse {
    pb::WatchResponse {
        kind: Some(pb::watch_response::Kind::Heartbeat(pb::Heartbeat {
            latest_seq,
            closing,
        })),
    }
}

#[tonic::async_trait]
impl EventService for EventsApi {
    type WatchStream = WatchStream;

    async fn watch(&self, request: Request<pb::WatchRequest>) -> Reply<WatchStream> {
        principal(&request)?;
        let r = request.into_inner();
        if !r.incident_id.is_empty() {
            domain::validate::check_incident_id("incident_id", &r.incident_id)
                .map_err(Error::from)?;
        }
        let state = Watcher {
            store: self.lane.store().clone(),
            bell: self.bell.clone(),
            beats: None,
            cursor: r.from_seq,
            incident_id: r.incident_id,
            read: VecDeque::new(),
            sent_from_read: 0,
            ended: false,
        };
        // The response stream does the reading itself when the connection
        // asks for the next message: no task or channel per watcher, and a
        // slow watcher is never skipped, only delayed (it reads forward
        // from the store at its own pace).
        let stream = futures_util::stream::unfold(state, |mut w| async move {
            let msg = w.next().await?;
            Some((msg, w))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

/// One `Watch` call's position in the event log.
struct Watcher {
    store: Arc<Store>,
    bell: watch::Receiver<Bell>,
    /// The bell's beat count at this watcher's latest heartbeat (None
    /// before the first: a watcher's first message once caught up is a
    /// heartbeat, so it learns the latest sequence at once).
    beats: Option<u64>,
    cursor: u64,
    /// Only this incident's events ("" for all).
    incident_id: String,
    /// Read from the store, not yet sent.
    read: VecDeque<StoredEvent>,
    /// Events sent from the latest batch read.
    sent_from_read: usize,
    ended: bool,
}

impl Watcher {
    /// The next message, or None once the stream is over.
    async fn next(&mut self) -> Option<Result<pb::WatchResponse, Status>> {
        loop {
            if self.ended {
                return None;
            }
            while let Some(e) = self.read.pop_front() {
                self.cursor = e.seq;
                if self.incident_id.is_empty() || e.incident_id == self.incident_id {
                    self.sent_from_read += 1;
                    if self.sent_from_read == 2 {
                        // With a backlog this stream is always ready, and
                        // hyper polls it for as long as the flow-control
                        // window lasts before the connection task writes
                        // any of it. Pause twice after a batch's first
                        // event: once for tonic to hand over what it
                        // encoded, once for hyper to see the stream idle,
                        // so the first event goes out at once.
                        tokio::task::yield_now().await;
                        tokio::task::yield_now().await;
                    }
                    return Some(Ok(pb::WatchResponse {
                        kind: Some(pb::watch_response::Kind::Event(to_pb_event(&e))),
                    }));
                }
            }
            // What the bell says now, taken before reading the store: an
            // event that becomes durable after this read rings it again.
            let bell = *self.bell.borrow_and_update();
            match self.store.events_after(self.cursor, WATCH_BATCH) {
                Err(e) => {
                    self.ended = true;
                    return Some(Err(Status::from(e)));
                }
                Ok(batch) if !batch.is_empty() => {
                    self.read.extend(batch);
                    self.sent_from_read = 0;
                    continue;
                }
                Ok(_) => {}
            }
            // Caught up.
            if bell.closing {
                self.ended = true;
                return Some(Ok(heartbeat(self.cursor, true)));
            }
            if self.beats != Some(bell.beats) {
                self.beats = Some(bell.beats);
                return Some(Ok(heartbeat(self.cursor, false)));
            }
            if self.bell.changed().await.is_err() {
                return None;
            }
        }
    }
}

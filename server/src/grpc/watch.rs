//! `Watch`: the event log, replayed from the store and then followed live.
//!
//! Every watcher waits on one thing, its connection's [`Bell`]: a single
//! task rings the bells when an event becomes durable (after encoding it
//! once for everyone), when a heartbeat is due and when the server shuts
//! down. (Before, each watcher waited on its own timer, the store's
//! doorbell and the shutdown token at once; with 10,000 watchers, setting
//! up and tearing down those three waits on every event was a tenth of the
//! daemon's CPU.) The bells are rung one connection after the other, and
//! a watcher that sends a live event spends its task's budget
//! ([`spend_budget`]): together they make each connection write an event
//! to all its watchers in one go. BENCHMARKS.md has the measurements.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use hotfix_api::events_server::event_service_server::EventService;
use hotfix_api::{Encoded, pb};
use tokio::sync::watch;
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::app::Lane;
use crate::app::lane::EventLog;
use crate::auth::principal;
use crate::domain;
use crate::domain::log::StoredEvent;
use crate::error::Error;

use super::Reply;
use super::convert::to_pb_event;

/// Events read from the store per batch, for a watcher that is behind.
const WATCH_BATCH: usize = 256;

/// Encoded events kept for watchers that keep up.
const FRAMES: usize = 4096;

type Frame = Encoded<pb::WatchResponse>;

/// What the bell says; watchers compare it with what they saw last.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Bell {
    /// Ticks of the heartbeat interval so far; a watcher that sent
    /// nothing in the interval a tick ends sends a heartbeat.
    beats: u64,
    /// The server is shutting down: send a closing heartbeat and end.
    closing: bool,
}

/// What the bell task shares with the watchers.
#[derive(Default)]
struct Feed {
    frames: RwLock<Frames>,
    bells: Mutex<Bells>,
}

/// One bell per client connection, rung one connection after the other,
/// so that the watchers of one connection are woken together and their
/// connection writes their messages at once (see `spend_budget`); one
/// shared channel woke them in random order.
#[derive(Default)]
struct Bells {
    now: Bell,
    /// By the client's address; each watcher holds a receiver.
    by_connection: HashMap<Option<SocketAddr>, watch::Sender<Bell>>,
}

impl Feed {
    /// Rings every connection's bell with `change` applied.
    fn ring(&self, change: impl FnOnce(&mut Bell)) {
        let mut bells = self.bells.lock().expect("bells lock");
        change(&mut bells.now);
        let now = bells.now;
        for bell in bells.by_connection.values() {
            bell.send_replace(now);
        }
    }

    /// Whether any `Watch` stream is open; with none, nothing is encoded.
    fn watched(&self) -> bool {
        !self
            .bells
            .lock()
            .expect("bells lock")
            .by_connection
            .is_empty()
    }

    /// A new watcher on the connection from `peer`: its bell.
    fn join(self: &Arc<Self>, peer: Option<SocketAddr>) -> Membership {
        let mut bells = self.bells.lock().expect("bells lock");
        let now = bells.now;
        let bell = bells
            .by_connection
            .entry(peer)
            .or_insert_with(|| watch::channel(now).0)
            .subscribe();
        Membership {
            feed: self.clone(),
            peer,
            bell,
        }
    }
}

/// A watcher's place in the feed; leaving when dropped.
struct Membership {
    feed: Arc<Feed>,
    peer: Option<SocketAddr>,
    bell: watch::Receiver<Bell>,
}

impl Drop for Membership {
    fn drop(&mut self) {
        let mut bells = self.feed.bells.lock().expect("bells lock");
        // This member's receiver is still alive here: the last one out
        // sees a count of one.
        if bells
            .by_connection
            .get(&self.peer)
            .is_some_and(|bell| bell.receiver_count() == 1)
        {
            bells.by_connection.remove(&self.peer);
        }
    }
}

/// The latest durable events, each encoded once for every watcher: a run
/// of consecutive sequence numbers, oldest first.
#[derive(Default)]
struct Frames {
    ring: VecDeque<(u64, Arc<str>, Frame)>,
}

impl Frames {
    /// Up to `limit` frames after `cursor` (of `incident_id` only, unless
    /// it is empty), and the last sequence number looked at; None when
    /// the ring does not reach back to `cursor`.
    fn after(&self, cursor: u64, incident_id: &str, limit: usize) -> Option<(Vec<Frame>, u64)> {
        let first = self.ring.front()?.0;
        if cursor + 1 < first {
            return None;
        }
        let from = self.ring.partition_point(|(seq, _, _)| *seq <= cursor);
        let mut out = Vec::new();
        let mut upto = cursor;
        for (seq, incident, frame) in self.ring.range(from..) {
            if out.len() == limit {
                break;
            }
            upto = *seq;
            if incident_id.is_empty() || **incident == *incident_id {
                out.push(frame.clone());
            }
        }
        Some((out, upto))
    }

    fn push(&mut self, frame: (u64, Arc<str>, Frame)) {
        if self.ring.len() == FRAMES {
            self.ring.pop_front();
        }
        self.ring.push_back(frame);
    }
}

fn encode(e: &StoredEvent) -> Frame {
    Encoded::of(&pb::WatchResponse {
        kind: Some(pb::watch_response::Kind::Event(to_pb_event(e))),
    })
}

/// Rings the bells until `done`: for each new durable event (after
/// encoding it into the feed's frames), every `heartbeat`, and once more
/// (closing) when `shutdown` is cancelled.
fn ring(
    store: EventLog,
    feed: Arc<Feed>,
    heartbeat: Duration,
    shutdown: CancellationToken,
    done: CancellationToken,
) {
    let mut doorbell = store.subscribe();
    tokio::spawn(async move {
        let mut encoded = store.durable_seq();
        let start = tokio::time::Instant::now() + heartbeat;
        let mut ticker = tokio::time::interval_at(start, heartbeat);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                changed = doorbell.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    encoded = encode_new(&store, &feed, encoded);
                    feed.ring(|_| ());
                }
                _ = ticker.tick() => feed.ring(|b| b.beats += 1),
                _ = shutdown.cancelled() => {
                    feed.ring(|b| b.closing = true);
                    return;
                }
                _ = done.cancelled() => return,
            }
        }
    });
}

/// Encodes the events after `encoded` into the feed's frames; returns the
/// last one encoded. With no watcher, or on a read error, the ring is
/// emptied instead: watchers then read the store themselves (and get the
/// error), and the next event starts a new run.
fn encode_new(store: &EventLog, feed: &Feed, mut encoded: u64) -> u64 {
    loop {
        if !feed.watched() {
            feed.frames.write().expect("frames lock").ring.clear();
            return store.durable_seq();
        }
        match store.events_after(encoded, WATCH_BATCH) {
            Ok(batch) if batch.is_empty() => return encoded,
            Ok(batch) => {
                let batch: Vec<_> = batch
                    .iter()
                    .map(|e| (e.seq, e.incident_id.as_str().into(), encode(e)))
                    .collect();
                encoded = batch.last().map_or(encoded, |f| f.0);
                let mut frames = feed.frames.write().expect("frames lock");
                for f in batch {
                    frames.push(f);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading new events for watchers");
                feed.frames.write().expect("frames lock").ring.clear();
                return store.durable_seq();
            }
        }
    }
}

/// The event log service.
#[derive(Clone)]
pub struct EventsApi {
    lane: Arc<Lane>,
    feed: Arc<Feed>,
    /// Stops the bell task when the last clone of the service is gone.
    _done: Arc<tokio_util::sync::DropGuard>,
}

impl EventsApi {
    /// Starts the bell (a task) on the current runtime: heartbeats every
    /// `heartbeat`; watchers close when `shutdown` is cancelled.
    pub fn new(lane: Arc<Lane>, heartbeat: Duration, shutdown: CancellationToken) -> Self {
        let feed = Arc::new(Feed::default());
        let done = CancellationToken::new();
        ring(lane.log(), feed.clone(), heartbeat, shutdown, done.clone());
        EventsApi {
            lane,
            feed,
            _done: Arc::new(done.drop_guard()),
        }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<Frame, Status>> + Send>>;

/// A heartbeat; `caught_up` on a stream's first (the replay is over).
fn heartbeat(latest_seq: u64, closing: bool, caught_up: bool) -> Frame {
    Encoded::of(&pb::WatchResponse {
        kind: Some(pb::watch_response::Kind::Heartbeat(pb::Heartbeat {
            latest_seq,
            closing,
            caught_up,
        })),
    })
}

#[tonic::async_trait]
impl EventService for EventsApi {
    type WatchStream = WatchStream;

    async fn watch(&self, request: Request<pb::WatchRequest>) -> Reply<WatchStream> {
        principal(&request)?;
        let peer = request.remote_addr();
        let r = request.into_inner();
        if !r.incident_id.is_empty() {
            domain::validate::check_incident_id("incident_id", &r.incident_id)
                .map_err(Error::from)?;
        }
        // A cursor past the end is a client resuming against a store that
        // holds less than it saw (a restored backup, another daemon):
        // following it would be silent forever.
        let log = self.lane.log();
        let latest = log.durable_seq();
        if r.from_now && r.from_seq != 0 {
            return Err(Error::from(domain::Refusal::Invalid {
                field: "from_now".into(),
                reason: format!(
                    "from_now starts after the latest event; it cannot be given with from_seq {}",
                    r.from_seq
                ),
            })
            .into());
        }
        if r.from_seq > latest {
            return Err(Status::out_of_range(format!(
                "from_seq {} is beyond the end of the event log (latest sequence {latest}); \
                 resume from {latest} or lower",
                r.from_seq
            )));
        }
        let member = self.feed.join(peer);
        let state = Watcher {
            store: log,
            member,
            beats: None,
            cursor: if r.from_now { latest } else { r.from_seq },
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
    store: EventLog,
    /// Its connection's bell, and the feed.
    member: Membership,
    /// The latest tick of the bell this watcher has answered (None before
    /// its first heartbeat: a watcher's first message once caught up is a
    /// heartbeat, so it learns the latest sequence at once). A heartbeat
    /// answers the tick it is sent for; an event also answers the tick
    /// that ends the interval it went out in. So only a stream quiet for a
    /// whole interval gets a heartbeat: with 10,000 busy watchers, a
    /// heartbeat to each on every tick doubled the delay of the events it
    /// met (BENCHMARKS.md).
    beats: Option<u64>,
    /// The last sequence number read (sent, or skipped by the filter).
    cursor: u64,
    /// Only this incident's events ("" for all).
    incident_id: String,
    /// Read, not yet sent.
    read: VecDeque<Frame>,
    /// Events sent from the latest batch read.
    sent_from_read: usize,
    ended: bool,
}

impl Watcher {
    /// The next message, or None once the stream is over.
    async fn next(&mut self) -> Option<Result<Frame, Status>> {
        loop {
            if self.ended {
                return None;
            }
            if let Some(frame) = self.read.pop_front() {
                self.sent_from_read += 1;
                if self.sent_from_read == 1 {
                    // Many watchers share a connection, and an event
                    // wakes them all. See `spend_budget`.
                    spend_budget().await;
                }
                if self.sent_from_read == 2 {
                    // With a backlog this stream is always ready, and
                    // hyper polls it for as long as the flow-control
                    // window lasts before the connection task writes any
                    // of it. Pause twice after a batch's first event: once
                    // for tonic to hand over what it encoded, once for
                    // hyper to see the stream idle, so the first event
                    // goes out at once.
                    tokio::task::yield_now().await;
                    tokio::task::yield_now().await;
                }
                if self.beats.is_some() {
                    // The interval this event goes out in was not quiet:
                    // it answers the tick that ends it too.
                    self.beats = Some(self.member.bell.borrow().beats + 1);
                }
                return Some(Ok(frame));
            }
            // What the bell says now, taken before reading: an event that
            // becomes durable after this read rings it again.
            let bell = *self.member.bell.borrow_and_update();
            if let Err(e) = self.read_more() {
                self.ended = true;
                return Some(Err(Status::from(e)));
            }
            if !self.read.is_empty() {
                self.sent_from_read = 0;
                continue;
            }
            // Caught up.
            let first = self.beats.is_none();
            if bell.closing {
                self.ended = true;
                return Some(Ok(heartbeat(self.cursor, true, first)));
            }
            if self.beats.is_none_or(|answered| bell.beats > answered) {
                self.beats = Some(bell.beats);
                return Some(Ok(heartbeat(self.cursor, false, first)));
            }
            if self.member.bell.changed().await.is_err() {
                return None;
            }
        }
    }

    /// Reads the next events after the cursor: encoded already if they are
    /// recent, else from the store.
    fn read_more(&mut self) -> crate::error::Result<()> {
        let recent = self.member.feed.frames.read().expect("frames lock").after(
            self.cursor,
            &self.incident_id,
            WATCH_BATCH,
        );
        if let Some((frames, upto)) = recent {
            self.read.extend(frames);
            self.cursor = upto;
            // Past the ring's end: events durable but not yet encoded are
            // read once the bell rings for them.
            return Ok(());
        }
        for e in self.store.events_after(self.cursor, WATCH_BATCH)? {
            self.cursor = e.seq;
            if self.incident_id.is_empty() || e.incident_id == self.incident_id {
                self.read.push_back(encode(&e));
            }
        }
        Ok(())
    }
}

/// Uses up this task's cooperative budget, so that the connection task the
/// next message wakes is queued behind the other woken watchers instead of
/// running straight after this one.
///
/// Each watcher is its own task (hyper runs every HTTP/2 stream as one);
/// when its message reaches the connection, the connection task is woken,
/// and tokio runs a task woken that way next, in the slot of the task that
/// woke it, unless that task has spent its budget. With 100 watchers on a
/// connection, the connection then wrote (one `writev`) after every few
/// watchers; now it is queued behind its other watchers (woken together:
/// one bell per connection) and writes once for all. Measured with 10,000
/// watchers (BENCHMARKS.md): with the budget spent, `writev` calls halved
/// and daemon CPU per delivery went 10.4 → 7.3 µs, although spending the
/// budget (one unit at a time: tokio has no call to spend it all) costs
/// ~0.7 µs itself; with a bell per connection too, 4.5 µs. Nothing depends
/// on it for correctness: were tokio to schedule differently, only the
/// number of writes would change.
async fn spend_budget() {
    std::future::poll_fn(|cx| {
        while tokio::task::coop::has_budget_remaining() {
            match tokio::task::coop::poll_proceed(cx) {
                std::task::Poll::Ready(r) => r.made_progress(),
                std::task::Poll::Pending => break,
            }
        }
        std::task::Poll::Ready(())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn event(seq: u64, incident_id: &str) -> StoredEvent {
        StoredEvent {
            seq,
            incident_id: incident_id.into(),
            at: chrono::DateTime::UNIX_EPOCH,
            actor: "bob".into(),
            kind: "declared".into(),
            summary: String::new(),
            state: String::new(),
            version: 1,
            drill: false,
        }
    }

    fn frame(e: &StoredEvent) -> (u64, Arc<str>, Frame) {
        (e.seq, e.incident_id.as_str().into(), encode(e))
    }

    fn seqs(frames: &[Frame]) -> Vec<u64> {
        frames
            .iter()
            .map(
                |f| match pb::WatchResponse::decode(f.bytes().clone()).unwrap().kind {
                    Some(pb::watch_response::Kind::Event(e)) => e.seq,
                    other => panic!("{other:?}"),
                },
            )
            .collect()
    }

    const A: &str = "INC-2026-05-20-001";
    const B: &str = "INC-2026-05-20-002";

    #[test]
    fn frames_serve_what_follows_a_cursor_they_reach_back_to() {
        let mut f = Frames::default();
        assert!(f.after(0, "", 10).is_none(), "empty: read the store");
        for seq in 5..=9 {
            f.push(frame(&event(seq, if seq % 2 == 0 { A } else { B })));
        }
        assert!(f.after(3, "", 10).is_none(), "seq 4 is not here");
        let (frames, upto) = f.after(4, "", 10).unwrap();
        assert_eq!((seqs(&frames), upto), (vec![5, 6, 7, 8, 9], 9));
        let (frames, upto) = f.after(6, "", 2).unwrap();
        assert_eq!((seqs(&frames), upto), (vec![7, 8], 8));
        let (frames, upto) = f.after(9, "", 10).unwrap();
        assert_eq!((seqs(&frames), upto), (vec![], 9), "caught up");
        // Filtered: the cursor moves past other incidents' events.
        let (frames, upto) = f.after(4, A, 10).unwrap();
        assert_eq!((seqs(&frames), upto), (vec![6, 8], 9));
        let (frames, upto) = f.after(4, A, 1).unwrap();
        assert_eq!((seqs(&frames), upto), (vec![6], 6), "stops at the limit");
    }

    #[test]
    fn each_connection_has_one_bell_and_leaves_none_behind() {
        let feed = Arc::new(Feed::default());
        let (a, b) = ("127.0.0.1:1000".parse().ok(), "127.0.0.1:1001".parse().ok());
        let (m1, m2, m3) = (feed.join(a), feed.join(a), feed.join(b));
        let connections = |feed: &Feed| feed.bells.lock().unwrap().by_connection.len();
        assert_eq!(connections(&feed), 2);
        assert!(feed.watched());
        feed.ring(|b| b.beats += 1);
        for m in [&m1, &m2, &m3] {
            assert!(m.bell.has_changed().unwrap());
            assert_eq!(m.bell.borrow().beats, 1);
        }
        drop(m1);
        assert_eq!(connections(&feed), 2);
        drop(m2);
        assert_eq!(connections(&feed), 1);
        let m4 = feed.join(a);
        assert_eq!(
            m4.bell.borrow().beats,
            1,
            "a new bell starts where the others are"
        );
        drop((m3, m4));
        assert_eq!(connections(&feed), 0);
        assert!(!feed.watched());
    }

    #[test]
    fn frames_keep_the_latest_and_forget_the_oldest() {
        let mut f = Frames::default();
        for seq in 1..=(FRAMES as u64 + 10) {
            f.push(frame(&event(seq, A)));
        }
        assert!(f.after(9, "", 1).is_none(), "seq 10 is forgotten");
        let (frames, upto) = f.after(10, "", 1).unwrap();
        assert_eq!((seqs(&frames), upto), (vec![11], 11));
    }
}

//! Group commit on one dedicated thread.
//!
//! Every committed write takes a ticket; `wait` returns once a flush that
//! started after the ticket was taken has finished. Concurrent writers share
//! flushes: while one flush runs, the tickets taken meanwhile are all covered
//! by the next one.
//!
//! Under concurrency a flush is also held back until [`GROUP_INTERVAL`] has
//! passed since the previous one started (PostgreSQL's `commit_delay` with
//! `commit_siblings = 1`): on a CPU-bound daemon, back-to-back flushes each
//! covering one or two commits spend on the disk's system calls the CPU that
//! would have decided the next commits. A lone caller is flushed at once, so
//! its latency is the disk's.
//!
//! Why not `sled::Tree::flush_async`: in sled 0.34 it runs the flush on the
//! same small thread pool that performs log writes, so concurrent calls can
//! occupy every pool thread while waiting for a write that can then never run
//! (spacejam/sled#1308; reproduced here with 32 concurrent clients). One
//! flushing thread outside that pool cannot starve it.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Default, PartialEq)]
struct Durable {
    /// Every ticket up to this one is on disk.
    upto: u64,
    /// Set once a flush failed; nothing is acknowledged after that.
    failed: Option<String>,
}

/// The least time between the starts of two flushes while more than one
/// caller is committing. Bounds the extra latency of a commit; measured in
/// BENCHMARKS.md.
pub const GROUP_INTERVAL: Duration = Duration::from_millis(1);

#[derive(Default)]
struct Requests {
    wanted: u64,
    stop: bool,
    /// Callers between [`Flusher::begin`] and the end of their wait.
    active: usize,
}

struct Shared {
    requests: Mutex<Requests>,
    wake: Condvar,
}

pub struct Flusher {
    shared: Arc<Shared>,
    durable: watch::Sender<Durable>,
    thread: Option<JoinHandle<()>>,
}

/// Makes the written data durable (`sled::Db::flush`, or a test's fault).
pub type FlushFn = Box<dyn FnMut() -> std::result::Result<(), String> + Send>;

impl Flusher {
    pub fn start(db: sled::Db) -> Flusher {
        let flush_db = db.clone();
        Self::start_with(
            db,
            Box::new(move || flush_db.flush().map(|_| ()).map_err(|e| e.to_string())),
        )
    }

    pub fn start_with(db: sled::Db, flush: FlushFn) -> Flusher {
        let shared = Arc::new(Shared {
            requests: Mutex::new(Requests::default()),
            wake: Condvar::new(),
        });
        let durable = watch::Sender::new(Durable::default());
        let thread = {
            let shared = shared.clone();
            let durable = durable.clone();
            std::thread::Builder::new()
                .name("hotfixd-flusher".into())
                .spawn(move || run(db, flush, shared, durable))
                .expect("spawning the flusher thread")
        };
        Flusher {
            shared,
            durable,
            thread: Some(thread),
        }
    }

    /// Counts the caller as committing until the guard drops; the flusher
    /// holds flushes back only while more than one caller is.
    pub fn begin(&self) -> Active<'_> {
        self.shared.requests.lock().expect("flusher lock").active += 1;
        Active {
            shared: &self.shared,
        }
    }

    /// Waits until `ticket` is durable.
    pub async fn wait(&self, ticket: u64) -> Result<()> {
        {
            let mut r = self.shared.requests.lock().expect("flusher lock");
            if r.wanted < ticket {
                r.wanted = ticket;
                self.shared.wake.notify_one();
            }
        }
        let mut rx = self.durable.subscribe();
        let state = rx
            .wait_for(|d| d.upto >= ticket || d.failed.is_some())
            .await
            .map_err(|_| Error::ShuttingDown)?;
        match &state.failed {
            Some(e) => Err(Error::Storage(format!("flush failed: {e}"))),
            None => Ok(()),
        }
    }

    pub fn failed(&self) -> bool {
        self.durable.borrow().failed.is_some()
    }
}

/// See [`Flusher::begin`].
pub struct Active<'a> {
    shared: &'a Shared,
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.shared.requests.lock().expect("flusher lock").active -= 1;
    }
}

fn run(db: sled::Db, mut flush: FlushFn, shared: Arc<Shared>, durable: watch::Sender<Durable>) {
    let mut done = 0;
    let mut last_start: Option<Instant> = None;
    loop {
        let target = {
            let mut r = shared.requests.lock().expect("flusher lock");
            while r.wanted <= done && !r.stop {
                r = shared.wake.wait(r).expect("flusher lock");
            }
            if r.stop && r.wanted <= done {
                break;
            }
            if r.active > 1
                && let Some(until) = last_start.map(|t| t + GROUP_INTERVAL)
            {
                // Others are committing: let their commits join this flush.
                loop {
                    let now = Instant::now();
                    if now >= until || r.stop {
                        break;
                    }
                    r = shared
                        .wake
                        .wait_timeout(r, until - now)
                        .expect("flusher lock")
                        .0;
                }
            }
            r.wanted
        };
        last_start = Some(Instant::now());
        match flush() {
            Ok(()) => {
                done = target;
                durable.send_modify(|d| d.upto = target);
            }
            Err(e) => {
                tracing::error!(error = %e, "flush failed; refusing further changes");
                durable.send_modify(|d| d.failed = Some(e));
                // Nothing more is flushed or acknowledged; what sled wrote
                // is whatever it recovers at the next start.
                return;
            }
        }
    }
    let _ = db.flush();
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.shared.requests.lock().expect("flusher lock").stop = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

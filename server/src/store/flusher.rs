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
//! What a flush is: `sled::Db::flush`, then `fdatasync` of sled's log file
//! (`DIR/db`), then `fsync` of any blob file sled wrote since the last
//! flush and of the `blobs` directory. sled 0.34 ends its own log writes
//! with `sync_file_range` on Linux (`pagecache/iobuf.rs`), which by its man
//! page makes no promise on power loss: it neither writes the file's
//! metadata nor flushes the disk's write cache; and it writes blob files
//! (values over a quarter of a segment) with no sync at all. `fdatasync`
//! acts on the file, not on the descriptor, so our own descriptor of `db`
//! covers every byte sled wrote before the call: everything `flush`
//! returned for, plus the file size if the log grew. Nothing is
//! acknowledged before that returns (`server/tests/durability.rs` checks
//! the order of the system calls under strace). Then the position the
//! flush covers is recorded outside sled (see [`watermark`]), also before
//! anything is acknowledged.
//!
//! Why not `sled::Tree::flush_async`: in sled 0.34 it runs the flush on the
//! same small thread pool that performs log writes, so concurrent calls can
//! occupy every pool thread while waiting for a write that can then never run
//! (spacejam/sled#1308; reproduced here with 32 concurrent clients). One
//! flushing thread outside that pool cannot starve it.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::watch;

use super::watermark;
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
    /// Tickets wanted by [`Flusher::wait_all`] since the last flush began:
    /// taken to flush, not for a change of their own.
    barriers: u64,
}

struct Shared {
    requests: Mutex<Requests>,
    wake: Condvar,
}

pub struct Flusher {
    shared: Arc<Shared>,
    /// Commits each flush made durable.
    batches: Histogram,
    durable: watch::Sender<Durable>,
    thread: Option<JoinHandle<()>>,
}

/// Makes the written data durable (`Durable::flush`, or a test's fault).
pub type FlushFn = Box<dyn FnMut() -> std::result::Result<(), String> + Send>;

/// sled's files in one data directory, made durable by system calls of our
/// own (see the module header for why sled's flush is not enough).
pub struct DiskSync {
    db: sled::Db,
    dir: PathBuf,
    log: File,
    /// Blob files already synced (sled names them by log sequence number
    /// and never rewrites one).
    synced_blobs: HashSet<std::ffi::OsString>,
    /// How far the committed writes reach (set by the store under its
    /// writer lock; None until the store was opened and checked, so that a
    /// refused store's watermark is left as it was), and what the
    /// watermark file says now.
    mark: Arc<Mutex<Option<watermark::Mark>>>,
    written: Option<watermark::Mark>,
    /// Opened at the first mark it writes.
    watermark: Option<watermark::Watermark>,
}

impl DiskSync {
    /// Opens sled's log file in `dir` and makes the directory entries of
    /// the store durable (the files sled created at open).
    pub fn open(
        db: sled::Db,
        dir: &Path,
        mark: Arc<Mutex<Option<watermark::Mark>>>,
    ) -> std::io::Result<DiskSync> {
        let log = File::open(dir.join("db"))?;
        log.sync_all()?;
        File::open(dir.join("conf"))?.sync_all()?;
        sync_dir(dir)?;
        let mut sync = DiskSync {
            db,
            dir: dir.to_path_buf(),
            log,
            synced_blobs: HashSet::new(),
            mark,
            written: None,
            watermark: None,
        };
        sync.sync_blobs()?;
        Ok(sync)
    }

    /// Everything written to the store before the call is durable when it
    /// returns `Ok`.
    pub fn flush(&mut self) -> std::result::Result<(), String> {
        // Taken before the flush: every write it counts is in sled already,
        // so the flush covers it.
        let mark = self.mark.lock().expect("mark lock").clone();
        self.db.flush().map_err(|e| format!("sled flush: {e}"))?;
        self.log
            .sync_data()
            .map_err(|e| format!("fdatasync {}: {e}", self.dir.join("db").display()))?;
        self.sync_blobs()
            .map_err(|e| format!("fsync {}: {e}", self.dir.join("blobs").display()))?;
        if let Some(mark) = mark
            && self.written.as_ref() != Some(&mark)
        {
            let failed = |e: std::io::Error| {
                format!("writing {}: {e}", self.dir.join(watermark::FILE).display())
            };
            if self.watermark.is_none() {
                self.watermark = Some(watermark::Watermark::open(&self.dir).map_err(failed)?);
            }
            if let Some(w) = self.watermark.as_mut() {
                w.write(&mark).map_err(failed)?;
            }
            self.written = Some(mark);
        }
        Ok(())
    }

    fn sync_blobs(&mut self) -> std::io::Result<()> {
        let blobs = self.dir.join("blobs");
        let mut new = false;
        for entry in std::fs::read_dir(&blobs)? {
            let entry = entry?;
            if !self.synced_blobs.contains(&entry.file_name()) {
                File::open(entry.path())?.sync_all()?;
                self.synced_blobs.insert(entry.file_name());
                new = true;
            }
        }
        if new {
            sync_dir(&blobs)?;
        }
        Ok(())
    }
}

/// `fsync` of a directory: its entries (files created, renamed, removed)
/// survive power loss.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Flusher {
    pub fn start(
        db: sled::Db,
        dir: &Path,
        mark: Arc<Mutex<Option<watermark::Mark>>>,
    ) -> std::io::Result<Flusher> {
        let mut sync = DiskSync::open(db.clone(), dir, mark)?;
        Ok(Self::start_with(db, Box::new(move || sync.flush())))
    }

    pub fn start_with(db: sled::Db, flush: FlushFn) -> Flusher {
        let shared = Arc::new(Shared {
            requests: Mutex::new(Requests::default()),
            wake: Condvar::new(),
        });
        let durable = watch::Sender::new(Durable::default());
        let batches = crate::metrics::batch_histogram();
        let thread = {
            let shared = shared.clone();
            let durable = durable.clone();
            let batches = batches.clone();
            std::thread::Builder::new()
                .name("hotfixd-flusher".into())
                .spawn(move || run(db, flush, shared, durable, batches))
                .expect("spawning the flusher thread")
        };
        Flusher {
            shared,
            batches,
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
        self.want(ticket, false).await
    }

    /// Waits until `ticket`, taken for no change but to have everything
    /// before it flushed (at start and shutdown), is durable.
    pub async fn wait_all(&self, ticket: u64) -> Result<()> {
        self.want(ticket, true).await
    }

    async fn want(&self, ticket: u64, barrier: bool) -> Result<()> {
        {
            let mut r = self.shared.requests.lock().expect("flusher lock");
            r.barriers += u64::from(barrier);
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
            Some(e) => Err(Error::NotDurable(format!("flush failed: {e}"))),
            None => Ok(()),
        }
    }

    /// How many changes each flush made durable.
    pub fn batches(&self) -> &Histogram {
        &self.batches
    }

    pub fn failed(&self) -> bool {
        self.durable.borrow().failed.is_some()
    }

    /// Marks the store failed (a write that did not land whole): nothing
    /// is acknowledged from now on, as after a failed flush.
    pub fn poison(&self, why: String) {
        self.durable.send_modify(|d| {
            d.failed.get_or_insert(why);
        });
    }

    /// Resolves with the reason once a flush or write has failed.
    pub fn failure(&self) -> impl std::future::Future<Output = String> + Send + 'static {
        let mut rx = self.durable.subscribe();
        async move {
            let why = rx
                .wait_for(|d| d.failed.is_some())
                .await
                .map(|d| d.failed.clone().unwrap_or_default());
            match why {
                Ok(why) => why,
                // The flusher is gone: the store closed.
                Err(_) => std::future::pending().await,
            }
        }
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

fn run(
    db: sled::Db,
    mut flush: FlushFn,
    shared: Arc<Shared>,
    durable: watch::Sender<Durable>,
    batches: Histogram,
) {
    let mut done = 0;
    let mut last_start: Option<Instant> = None;
    loop {
        let (target, barriers) = {
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
            (r.wanted, std::mem::take(&mut r.barriers))
        };
        last_start = Some(Instant::now());
        match flush() {
            Ok(()) => {
                let changes = (target - done).saturating_sub(barriers);
                if changes > 0 {
                    batches.observe(changes as f64);
                }
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
    let _ = flush();
    drop(db);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// sled writes values over a quarter of a segment as blob files with
    /// no sync of its own; a flush syncs each new one once.
    #[test]
    fn a_flush_syncs_the_blob_files_sled_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let mut sync = DiskSync::open(db.clone(), dir.path(), Default::default()).unwrap();
        assert!(sync.synced_blobs.is_empty());
        db.insert(b"big", vec![7u8; 300 * 1024]).unwrap();
        sync.flush().unwrap();
        let blobs: Vec<_> = std::fs::read_dir(dir.path().join("blobs"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(!blobs.is_empty(), "sled wrote the value as a blob");
        assert!(blobs.iter().all(|b| sync.synced_blobs.contains(b)));
    }
}

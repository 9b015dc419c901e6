//! The only module that names sled.
//!
//! Invariants:
//! - One writer at a time (`writer` mutex): a command is read, decided and
//!   committed as one change that holds the new facts, their events, the
//!   audit record, the index entries and the idempotency record. A change
//!   is atomic through its redo record (see `redo`), not a sled
//!   transaction: one insert holds it whole, and opening the store finishes
//!   a change a crash interrupted.
//! - Nobody is told a change happened before it is flushed: `execute` flushes
//!   after the change (concurrent callers share flushes: group commit), and
//!   only then raises the durable watermark that watchers read up to.
//! - Event sequence numbers are global, gap-free and increasing; they are
//!   assigned under the writer lock and only consumed by a committed change.
//! - A failed flush or write poisons the store: every later change answers
//!   UNAVAILABLE rather than acknowledging what may not be on disk.
//!
//! Trees: `records` (h/INC → hotfix, m/INC → mitigation), `events` (seq →
//! event), `audit` (seq → audit record), `index` (prefixed keys, see
//! `keys`), `requests` (handle NUL request id → first answer), `meta`.

mod audit;
pub mod backup;
pub mod chain;
mod change;
pub mod engine;
pub mod etcd;
pub mod flusher;
mod keys;
mod mirror;
mod reads;
mod redo;
mod sled_engine;
mod view;
pub mod watermark;

use std::path::Path;
use std::sync::Mutex;

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tokio::sync::watch;

use crate::domain::{
    EventDraft, Exercise, GateView, Hotfix, Mitigation, ObligationKind, Refusal, TeamReview, Time,
    quarter_of,
};
use crate::error::{Error, Result};
use crate::redact::redact;

pub use crate::domain::log::{AuditRecord, StoredEvent};
pub use audit::{check_checkpoints, verify_audit_dir};
pub use engine::{Decide, Engine, Reads};

/// The committed result of a change, as answered (and replayed).
// Short-lived, one per request: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    /// The hotfix after the change, `last_seq` its change's last event.
    Hotfix(Hotfix),
    /// The mitigation recorded, `seq` its event.
    Mitigation(Mitigation),
    /// The team review recorded.
    TeamReview(TeamReview),
    /// A signed audit checkpoint: the trail's size it covers, and the note.
    Checkpoint { size: u64, note: String },
}

/// What a decided change writes.
#[allow(clippy::large_enum_variant)]
pub enum Write {
    /// A hotfix declared (`before` None) or moved on by a step.
    Hotfix {
        /// The hotfix as the decision read it.
        before: Option<Hotfix>,
        /// The hotfix after the step.
        after: Hotfix,
        /// Outstanding obligations (due, kind) before and after, for the
        /// overdue index.
        open_before: Vec<(Time, ObligationKind)>,
        open_after: Vec<(Time, ObligationKind)>,
    },
    /// An incident resolved by a flag flip or a rollback.
    Mitigation(Mitigation),
    /// The platform team's review (reopens the rate gate).
    TeamReview(TeamReview),
    /// A signed checkpoint of the trail's first `size` records.
    Checkpoint { size: u64, note: String },
    /// Events only (the daemon's own observations) on a hotfix that does
    /// not change.
    Note { hotfix: Hotfix },
}

/// The external actions whose intent the store keeps until their outcome
/// is recorded (see `app::intent`). The names are the stored keys'.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntentKind {
    /// Step 5's admin merge on GitHub.
    Merge,
    /// Step 3's PR opened on GitHub.
    PullRequest,
    /// Step 6's revert PR opened and merged on GitHub.
    Revert,
    /// Step 5's Argo CD sync.
    Sync,
}

impl IntentKind {
    /// The kind as the store's keys spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            IntentKind::Merge => "merge",
            IntentKind::PullRequest => "pr",
            IntentKind::Revert => "revert",
            IntentKind::Sync => "sync",
        }
    }

    /// The action as people read it in events and logs.
    pub fn action(self) -> &'static str {
        match self {
            IntentKind::Merge => "merge",
            IntentKind::PullRequest => "PR",
            IntentKind::Revert => "revert",
            IntentKind::Sync => "sync",
        }
    }
}

/// A fact a change sets or clears beside its records, in the same change.
#[derive(Debug, Clone, PartialEq)]
pub enum Mark {
    /// An external action is sent (or about to be); `payload` is what
    /// reconciling it needs.
    Intent {
        /// Which action.
        kind: IntentKind,
        /// The hotfix it is taken on.
        incident_id: String,
        /// JSON: the acting principal and the step's own fields.
        payload: Vec<u8>,
    },
    /// The action's outcome is recorded: the intent is gone.
    IntentDone {
        /// Which action.
        kind: IntentKind,
        /// The hotfix it was taken on.
        incident_id: String,
    },
    /// An overdue obligation was reported, so it is reported once.
    OverdueReported {
        /// The hotfix that owes it.
        incident_id: String,
        /// The obligation's kind (`ObligationKind::as_str`).
        obligation: String,
    },
}

/// A decided change: what [`Engine::execute`]'s decision returns, and the
/// engine commits whole or not at all.
pub struct Commit {
    /// The facts it writes.
    pub write: Write,
    /// The state after the change, as its events record it (None: events
    /// of no hotfix).
    pub state: Option<crate::domain::log::EventState>,
    /// Its events, numbered by the engine in this order.
    pub events: Vec<EventDraft>,
    /// A row of "When this runbook last worked", if it resolved an incident.
    pub exercise: Option<Exercise>,
    /// Set or cleared with the change.
    pub marks: Vec<Mark>,
}

/// Who is asking, for the audit record and the idempotency key.
pub struct Request<'a> {
    /// The authenticated principal's handle (`hotfixd` for its own).
    pub actor: &'a str,
    /// What is asked, as the audit record names it (a step, "declare", …).
    pub action: &'a str,
    /// The hotfix it concerns ("" for none).
    pub incident_id: &'a str,
    /// When, by the lane's clock: the events' and audit record's time.
    pub now: Time,
    /// Empty: not idempotent.
    pub request_id: &'a str,
    /// Identifies the request's content, to detect a reused request id.
    pub fingerprint: String,
}

#[derive(Serialize, Deserialize)]
struct RequestRecord {
    fingerprint: String,
    outcome: Outcome,
}

struct Counters {
    next_event: u64,
    next_audit: u64,
    /// Chain hash of the last audit record.
    audit_head: chain::Hash,
    /// Group-commit tickets: one per write, taken under the writer lock.
    tickets: u64,
    /// On the etcd engine's mirror, the etcd revision at which the head
    /// these counters came from was written (0: none; always 0 on sled).
    head_rev: i64,
}

pub struct Store {
    db: sled::Db,
    records: sled::Tree,
    events: sled::Tree,
    audit: sled::Tree,
    index: sled::Tree,
    requests: sled::Tree,
    meta: sled::Tree,
    writer: Mutex<Counters>,
    /// Tests: stop each change after its redo record, as a crash would.
    #[cfg(test)]
    halt_after_redo: std::sync::atomic::AtomicBool,
    durable: watch::Sender<u64>,
    /// How far the committed writes reach, for the watermark (see
    /// [`watermark`]); set under the writer lock.
    mark: std::sync::Arc<Mutex<Option<watermark::Mark>>>,
    flusher: flusher::Flusher,
}

/// How to open a store.
#[derive(Default)]
pub struct OpenOptions {
    /// Open a store that holds less than its watermark records (an older
    /// copy the operator restored on purpose); the choice is an audit
    /// record.
    pub accept_rollback: bool,
    /// Flush with this instead of syncing the disk (a fault, in tests).
    pub flush: Option<flusher::FlushFn>,
}

/// Read access for deciding a change, under the writer lock.
pub struct Snapshot<'a> {
    view: view::View<'a>,
    /// The audit trail's size and chain head before this change.
    audit: (u64, chain::Hash),
}

/// Opens sled, waiting out (2 s at most) a directory lock that the same
/// process's previous handle still holds: sled's I/O threads drop their
/// last reference a moment after the `Db` is dropped, so a restart in the
/// same process (or a supervisor's quick restart) would otherwise find its
/// own store locked. Another process holding it still fails, after the wait.
pub(crate) fn open_sled(config: sled::Config) -> sled::Result<sled::Db> {
    let mut waited = std::time::Duration::ZERO;
    loop {
        match config.open() {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && waited < std::time::Duration::from_secs(2) =>
            {
                let pause = std::time::Duration::from_millis(20);
                std::thread::sleep(pause);
                waited += pause;
            }
            other => return other,
        }
    }
}

impl From<sled::Error> for Error {
    fn from(e: sled::Error) -> Self {
        Error::Storage(e.to_string())
    }
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("store records serialize")
}

fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Corrupt(format!("{what}: {e}")))
}

/// Creates `dir` for this user alone (0700), or makes an existing one so:
/// it holds every hotfix and the audit trail.
pub(crate) fn private_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let fail = |e: std::io::Error| Error::Storage(format!("{}: {e}", dir.display()));
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(fail)?;
        }
        let mode = std::fs::metadata(dir).map_err(fail)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                dir = %dir.display(),
                "data directory was mode {mode:04o}, open to other users; making it 0700"
            );
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(fail)?;
        }
    }
    Ok(())
}

fn last_seq(tree: &sled::Tree) -> Result<u64> {
    Ok(match tree.last()? {
        Some((k, _)) => keys::u64_of(&k),
        None => 0,
    })
}

/// Runs `f` on the store in `dir`, turning a panic inside sled (it panics
/// on some damaged files) into an error that names the directory.
fn without_panics<T>(dir: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            Err(Error::Damaged(format!(
                "the store in {} is damaged: sled failed reading it ({what}); restore it from a \
                 backup (`hotfixd restore`) or a copy",
                dir.display()
            )))
        }
    }
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Store> {
        Self::open_with_options(dir, OpenOptions::default())
    }

    /// Like `open`, flushing with `flush` (a fault, in tests) instead of
    /// syncing the disk.
    pub fn open_with(dir: &Path, flush: Option<flusher::FlushFn>) -> Result<Store> {
        Self::open_with_options(
            dir,
            OpenOptions {
                flush,
                ..OpenOptions::default()
            },
        )
    }

    /// Opens the store in `dir`: finishes a change a crash cut short, then
    /// checks it against its watermark (see [`watermark`]).
    pub fn open_with_options(dir: &Path, options: OpenOptions) -> Result<Store> {
        private_dir(dir)?;
        without_panics(dir, || Self::open_checked(dir, options))
    }

    fn open_checked(dir: &Path, options: OpenOptions) -> Result<Store> {
        let flush = options.flush;
        let mark = std::sync::Arc::new(Mutex::new(None));
        let db = open_sled(
            sled::Config::new()
                .path(dir)
                .mode(sled::Mode::HighThroughput),
        )?;
        let flusher = match flush {
            Some(f) => flusher::Flusher::start_with(db.clone(), f),
            None => flusher::Flusher::start(db.clone(), dir, mark.clone())
                .map_err(|e| Error::Storage(format!("making {} durable: {e}", dir.display())))?,
        };
        let store = Store::over(db, flusher, mark)?;
        // A change interrupted by a crash is finished before anything is
        // counted.
        if let Some(bytes) = store.meta.get(keys::META_REDO)? {
            let w = redo::Writes::decode(&bytes)?;
            if !store.landed(&w)? {
                tracing::warn!("finishing the last change, cut short by a crash");
                store.apply(&w)?;
            }
        }
        let last_event = last_seq(&store.events)?;
        let last_audit = last_seq(&store.audit)?;
        let audit_head = match store.audit.last()? {
            Some((_, v)) => {
                let rec: AuditRecord = decode("audit", &v)?;
                chain::parse(&rec.hash).ok_or_else(|| {
                    Error::Corrupt(format!(
                        "audit record {} has no chain hash; run `hotfixd audit verify`",
                        rec.seq
                    ))
                })?
            }
            None => chain::GENESIS,
        };
        {
            let mut c = store.writer.lock().expect("writer lock");
            c.next_event = last_event + 1;
            c.next_audit = last_audit + 1;
            c.audit_head = audit_head;
        }
        store.durable.send_replace(last_event);
        let accepted = store.check_watermark(dir, options.accept_rollback)?;
        // Checked: from now on the watermark follows the store.
        store.set_mark(&store.writer.lock().expect("writer lock"));
        if let Some(why) = accepted {
            tracing::warn!("{why}; started anyway (--accept-rollback)");
            store.append_audit(
                "hotfixd",
                "accept-rollback",
                &format!("{why}; accepted with --accept-rollback"),
            )?;
        }
        Ok(store)
    }

    /// The store over `db`'s trees, its counters not yet read.
    fn over(
        db: sled::Db,
        flusher: flusher::Flusher,
        mark: std::sync::Arc<Mutex<Option<watermark::Mark>>>,
    ) -> Result<Store> {
        let open = |name: &str| db.open_tree(name);
        Ok(Store {
            records: open("records")?,
            events: open("events")?,
            audit: open("audit")?,
            index: open("index")?,
            requests: open("requests")?,
            meta: open("meta")?,
            db,
            writer: Mutex::new(Counters {
                next_event: 1,
                next_audit: 1,
                audit_head: chain::GENESIS,
                tickets: 0,
                head_rev: 0,
            }),
            #[cfg(test)]
            halt_after_redo: Default::default(),
            durable: watch::Sender::new(0),
            mark,
            flusher,
        })
    }

    /// Records in [`Self::mark`] how far the committed writes reach.
    fn set_mark(&self, c: &Counters) {
        *self.mark.lock().expect("mark lock") = Some(watermark::Mark {
            audit_seq: c.next_audit - 1,
            audit_head: hex::encode(c.audit_head),
            event_seq: c.next_event - 1,
        });
    }

    /// Compares the store with its watermark. Err: refused, and why;
    /// Ok(Some(why)): short of it, but `accept_rollback`.
    fn check_watermark(&self, dir: &Path, accept_rollback: bool) -> Result<Option<String>> {
        let kept = self.meta.get(keys::META_WATERMARKED)?.is_some();
        let recorded = watermark::read(dir).map_err(|e| {
            Error::Damaged(format!(
                "{e}; the store's position cannot be checked. Restore the data directory from a \
                 backup, or start with --accept-rollback to trust the store as it is"
            ))
        });
        let recorded = match recorded {
            Ok(r) => r,
            Err(_) if accept_rollback => None,
            Err(e) => return Err(e),
        };
        let Some(m) = recorded else {
            if kept && !accept_rollback {
                return Err(Error::Damaged(format!(
                    "{} is missing, but this store has kept one: without it a rolled-back store \
                     cannot be told from a current one. Restore it with the data directory, or \
                     start with --accept-rollback to trust the store as it is",
                    dir.join(watermark::FILE).display()
                )));
            }
            // A first start keeping one: the first flush writes it.
            return Ok(kept.then(|| "the watermark was missing".to_string()));
        };
        if !kept {
            // Only once the file exists, so that a crash before it was
            // written cannot make its absence a refusal.
            self.meta.insert(keys::META_WATERMARKED, b"1".as_slice())?;
        }
        let report = self.verify_audit();
        if let Some((seq, why)) = report.first_bad {
            return Err(Error::Damaged(format!(
                "the audit trail in {} is broken at record {seq} ({why}); nothing was started. \
                 Restore the data directory from a backup (`hotfixd restore`)",
                dir.display()
            )));
        }
        if let Some((_, why)) = check_checkpoints(&self.index, &self.audit, None)? {
            return Err(Error::Damaged(format!(
                "{}: {why}; nothing was started. Restore the data directory from a backup \
                 (`hotfixd restore`)",
                dir.display()
            )));
        }
        let last_event = last_seq(&self.events)?;
        let short = match audit::short_of(&self.audit, &report, &m)? {
            Some(why) => Some(why),
            None if last_event < m.event_seq => Some(format!(
                "the store ends at event {last_event} but its watermark records {}",
                m.event_seq
            )),
            None => None,
        };
        let Some(why) = short else {
            return Ok(None);
        };
        let why = format!("{}: {why}", dir.display());
        if accept_rollback {
            return Ok(Some(why));
        }
        Err(Error::Damaged(format!(
            "{why}. Nothing was started. Restore the newest backup (`hotfixd restore`); or, if \
             this older state is what you mean to run, start once with --accept-rollback (the \
             choice is recorded in the audit trail)"
        )))
    }

    /// A consistent backup of the whole store (see [`backup`]), taken by
    /// `actor`: the backup is itself an audit record, durable before it is
    /// returned, and the backup holds it.
    pub async fn backup(&self, actor: &str, now: Time) -> Result<Vec<u8>> {
        self.refuse_if_failed()?;
        let (bytes, ticket) = {
            let mut c = self.writer.lock().expect("writer lock");
            self.append_audit_locked(&mut c, now, actor, "backup", "a backup of the whole store")?;
            let header = backup::Header {
                format: backup::FORMAT.into(),
                version: backup::VERSION,
                taken_by: actor.to_string(),
                taken_at: now,
                mark: self
                    .mark
                    .lock()
                    .expect("mark lock")
                    .clone()
                    .unwrap_or_default(),
            };
            (backup::write(&self.db, &header)?, c.tickets)
        };
        self.flusher.wait(ticket).await?;
        Ok(bytes)
    }

    /// Appends an audit record of its own, durably (see `Engine::record`).
    pub async fn record(&self, actor: &str, action: &str, detail: &str, now: Time) -> Result<()> {
        self.refuse_if_failed()?;
        let ticket = {
            let mut c = self.writer.lock().expect("writer lock");
            self.append_audit_locked(&mut c, now, actor, action, detail)?;
            c.tickets
        };
        self.flusher.wait(ticket).await
    }

    /// NOT_DURABLE once a flush or write failed: nothing more is accepted.
    fn refuse_if_failed(&self) -> Result<()> {
        if self.flusher.failed() {
            return Err(Error::NotDurable(
                "an earlier flush or write failed; refusing changes until restarted".into(),
            ));
        }
        Ok(())
    }

    /// Resolves with the reason once the store has stopped accepting
    /// changes (a failed flush or write); health reports NOT_SERVING then.
    pub fn failure(&self) -> impl std::future::Future<Output = String> + Send + 'static {
        self.flusher.failure()
    }

    /// How many changes each flush made durable.
    pub fn batches(&self) -> prometheus_client::metrics::histogram::Histogram {
        self.flusher.batches().clone()
    }

    /// The highest sequence number that is on disk.
    pub fn durable_seq(&self) -> u64 {
        *self.durable.borrow()
    }

    /// A doorbell that carries the durable watermark.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.durable.subscribe()
    }

    /// Decides and commits one change, durably.
    ///
    /// `decide` runs under the writer lock with a consistent view. A refusal
    /// is audited and returned; nothing else is written. A request id seen
    /// before returns the stored first answer.
    pub async fn execute(
        &self,
        req: Request<'_>,
        decide: impl FnOnce(&Snapshot) -> Result<Commit>,
    ) -> Result<Outcome> {
        self.refuse_if_failed()?;
        let _committing = self.flusher.begin();
        let (answer, ticket) = self.execute_locked(&req, decide);
        // Whatever was written, refusals included, is flushed before the
        // answer; concurrent callers share flushes.
        self.flusher.wait(ticket).await?;
        let (outcome, last) = answer?;
        if let Some(seq) = last {
            self.durable.send_if_modified(|d| {
                if seq > *d {
                    *d = seq;
                    true
                } else {
                    false
                }
            });
        }
        Ok(outcome)
    }

    /// The stored first answer to `request_id` from `actor`, if any; the same
    /// id with another request is INVALID_ARGUMENT.
    pub fn replay(
        &self,
        actor: &str,
        request_id: &str,
        fingerprint: &str,
    ) -> Result<Option<Outcome>> {
        if request_id.is_empty() {
            return Ok(None);
        }
        let Some(bytes) = self.requests.get(keys::request(actor, request_id))? else {
            return Ok(None);
        };
        let rec: RequestRecord = decode("request", &bytes)?;
        if rec.fingerprint != fingerprint {
            return Err(Refusal::Invalid {
                field: "request_id".into(),
                reason: format!("'{request_id}' was already used for a different request"),
            }
            .into());
        }
        Ok(Some(rec.outcome))
    }

    /// Flushes everything; used at shutdown.
    pub async fn flush(&self) -> Result<()> {
        let ticket = {
            let mut c = self.writer.lock().expect("writer lock");
            c.tickets += 1;
            c.tickets
        };
        self.flusher.wait_all(ticket).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::EventKind;
    use std::sync::atomic::Ordering;

    fn review(store: &Store, n: u32) -> Result<Outcome> {
        let now = chrono::DateTime::UNIX_EPOCH + chrono::Duration::days(20_000 + i64::from(n));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(store.execute(
            Request {
                actor: "erin",
                action: "team_review",
                incident_id: "",
                now,
                request_id: "",
                fingerprint: String::new(),
            },
            |_| {
                let r = TeamReview {
                    by: "erin".into(),
                    notes: format!("review {n}"),
                    at: now,
                };
                Ok(Commit {
                    write: Write::TeamReview(r),
                    state: None,
                    events: vec![EventDraft {
                        kind: EventKind::TeamReview,
                        summary: format!("review {n}"),
                    }],
                    exercise: None,
                    marks: Vec::new(),
                })
            },
        ))
    }

    #[test]
    fn a_change_cut_after_its_redo_record_is_finished_at_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            review(&store, 1).unwrap();
            // The second change stops after its redo record, as if the
            // process died there: its event, audit record and index entry
            // are not written.
            store.halt_after_redo.store(true, Ordering::Release);
            review(&store, 2).unwrap();
            assert!(store.events.get(keys::seq(2)).unwrap().is_none());
            assert!(store.audit.get(keys::seq(2)).unwrap().is_none());
        }
        let store = Store::open(dir.path()).unwrap();
        let events = store.events_after(0, 10).unwrap();
        assert_eq!(
            events
                .iter()
                .map(|e| e.summary.as_str())
                .collect::<Vec<_>>(),
            ["review 1", "review 2"]
        );
        assert_eq!(store.audit_after(0, 10).unwrap().len(), 2);
        assert_eq!(
            store
                .gate_view(chrono::DateTime::UNIX_EPOCH)
                .unwrap()
                .last_review_seq,
            Some(2)
        );
        let report = store.verify_audit();
        assert!(report.first_bad.is_none(), "{report:?}");
        // Applying it again changes nothing, and the next change follows on.
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        review(&store, 3).unwrap();
        let seqs: Vec<u64> = store
            .events_after(0, 10)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, [1, 2, 3]);
        assert!(store.verify_audit().first_bad.is_none());
        // A change that landed is not written again at open: what was
        // written since (here, by hand) stays.
        store.events.insert(keys::seq(3), b"{}".as_slice()).unwrap();
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(&*store.events.get(keys::seq(3)).unwrap().unwrap(), b"{}");
    }

    #[test]
    fn opening_waits_out_a_lock_the_last_handle_is_about_to_release() {
        let dir = tempfile::tempdir().unwrap();
        let held = sled::Config::new().path(dir.path()).open().unwrap();
        let releasing = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            drop(held);
        });
        // Opened while the first handle still holds the lock, which it
        // drops 200 ms later: the open waits instead of failing.
        let store = Store::open(dir.path());
        releasing.join().unwrap();
        assert!(store.is_ok(), "{:?}", store.err());
    }

    #[test]
    fn a_damaged_redo_record_stops_the_store_from_opening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            review(&store, 1).unwrap();
            store
                .meta
                .insert(keys::META_REDO, b"HFR1\x09".as_slice())
                .unwrap();
            store.meta.flush().unwrap();
        }
        let err = Store::open(dir.path()).err().expect("refused");
        assert!(err.to_string().contains("meta/redo"), "{err}");
    }
}

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

pub mod backup;
pub mod chain;
pub mod engine;
pub mod flusher;
mod keys;
mod redo;
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
pub use engine::{Decide, Engine, Reads};

/// The committed result of a change, as answered (and replayed).
// Short-lived, one per request: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    Hotfix(Hotfix),
    Mitigation(Mitigation),
    TeamReview(TeamReview),
    /// A signed audit checkpoint: the trail's size it covers, and the note.
    Checkpoint {
        size: u64,
        note: String,
    },
}

/// What a decided change writes.
#[allow(clippy::large_enum_variant)]
pub enum Write {
    Hotfix {
        before: Option<Hotfix>,
        after: Hotfix,
        /// Outstanding obligations (due, kind) before and after, for the
        /// overdue index.
        open_before: Vec<(Time, ObligationKind)>,
        open_after: Vec<(Time, ObligationKind)>,
    },
    Mitigation(Mitigation),
    TeamReview(TeamReview),
    /// A signed checkpoint of the trail's first `size` records.
    Checkpoint {
        size: u64,
        note: String,
    },
    /// Events only (the daemon's own observations) on a hotfix that does
    /// not change.
    Note {
        hotfix: Hotfix,
    },
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
    pub fn as_str(self) -> &'static str {
        match self {
            IntentKind::Merge => "merge",
            IntentKind::PullRequest => "pr",
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
        kind: IntentKind,
        incident_id: String,
        payload: Vec<u8>,
    },
    /// The action's outcome is recorded: the intent is gone.
    IntentDone {
        kind: IntentKind,
        incident_id: String,
    },
    /// An overdue obligation was reported, so it is reported once.
    OverdueReported {
        incident_id: String,
        obligation: String,
    },
}

pub struct Commit {
    pub write: Write,
    /// The state after the change, as its events record it (None: events
    /// of no hotfix).
    pub state: Option<crate::domain::log::EventState>,
    pub events: Vec<EventDraft>,
    pub exercise: Option<Exercise>,
    /// Set or cleared with the change.
    pub marks: Vec<Mark>,
}

/// Who is asking, for the audit record and the idempotency key.
pub struct Request<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub incident_id: &'a str,
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
}

/// How many of the latest events are kept in memory for watchers.
const RECENT_EVENTS: usize = 8192;

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
    /// The latest committed events, in order, for watchers that keep up.
    recent: std::sync::RwLock<std::collections::VecDeque<StoredEvent>>,
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
    store: &'a Store,
    /// The audit trail's size and chain head before this change.
    audit: (u64, chain::Hash),
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

/// Walks the audit chain of the store in `dir` without starting anything
/// else (offline verification of a copy), and compares it with the
/// watermark: a store that ends before it, or whose chain does not
/// reproduce its head, is reported broken there. `dir` must hold a store.
pub fn verify_audit_dir(
    dir: &Path,
    key: Option<&hotfix_api::audit::VerifierKey>,
) -> Result<chain::Report> {
    if !dir.join("conf").exists() && !dir.join("db").exists() {
        return Err(Error::Damaged(format!(
            "{} holds no hotfixd store",
            dir.display()
        )));
    }
    without_panics(dir, || {
        let db = sled::Config::new().path(dir).open()?;
        let audit = db.open_tree("audit")?;
        let mut report = chain::verify(audit.iter().map(|r| {
            let (_, v) = r.map_err(|e| format!("reading the audit tree: {e}"))?;
            decode::<AuditRecord>("audit", &v).map_err(|e| e.to_string())
        }));
        if report.first_bad.is_none()
            && let Some((size, why)) = check_checkpoints(&db.open_tree("index")?, &audit, key)?
        {
            report.first_bad = Some((size, why));
        }
        if report.first_bad.is_none() {
            let mark = watermark::read(dir).map_err(Error::Damaged)?;
            if let Some(m) = mark
                && let Some(why) = short_of(&audit, &report, &m)?
            {
                report.first_bad = Some((report.verified + 1, why));
            }
        }
        Ok(report)
    })
}

fn stored_checkpoints(index: &sled::Tree) -> Result<Vec<(u64, String)>> {
    let mut out = Vec::new();
    for r in index.scan_prefix(keys::CHECKPOINT) {
        let (k, v) = r?;
        out.push((
            keys::u64_of(&k[keys::CHECKPOINT.len()..]),
            String::from_utf8_lossy(&v).into_owned(),
        ));
    }
    Ok(out)
}

/// Checks every stored checkpoint of a store against its audit tree: its
/// signature (with `key`, when given) and that the record at its size has
/// its head. The first that fails: (size, why).
pub fn check_checkpoints(
    index: &sled::Tree,
    audit: &sled::Tree,
    key: Option<&hotfix_api::audit::VerifierKey>,
) -> Result<Option<(u64, String)>> {
    for (size, note) in stored_checkpoints(index)? {
        let head = match key {
            Some(k) => match k.verify(&note) {
                Ok(c) => hex::encode(c.head),
                Err(e) => return Ok(Some((size, format!("checkpoint at size {size}: {e}")))),
            },
            None => match checkpoint_head(&note) {
                Some(h) => h,
                None => {
                    return Ok(Some((
                        size,
                        format!("checkpoint at size {size} does not parse"),
                    )));
                }
            },
        };
        let stored = match audit.get(keys::seq(size))? {
            Some(v) => decode::<AuditRecord>("audit", &v)?.hash,
            None => String::new(),
        };
        if stored != head {
            return Ok(Some((
                size,
                format!(
                    "the signed checkpoint at size {size} records chain head {head}, but the \
                     trail has {}: records up to {size} were rewritten",
                    if stored.is_empty() {
                        "no such record"
                    } else {
                        &stored
                    }
                ),
            )));
        }
    }
    Ok(None)
}

/// The chain head (hex) a checkpoint note records, unverified.
fn checkpoint_head(note: &str) -> Option<String> {
    use base64::Engine;
    let line = note.lines().nth(2)?;
    base64::engine::general_purpose::STANDARD
        .decode(line)
        .ok()
        .map(hex::encode)
}

/// Why a store whose chain verified as `report` falls short of the
/// watermark `m`, if it does.
fn short_of(
    audit: &sled::Tree,
    report: &chain::Report,
    m: &watermark::Mark,
) -> Result<Option<String>> {
    if report.verified < m.audit_seq {
        return Ok(Some(format!(
            "the store ends at audit record {} but its watermark records {} (head {}): \
             records were lost or an older copy was restored",
            report.verified, m.audit_seq, m.audit_head
        )));
    }
    if m.audit_seq > 0 {
        let stored = match audit.get(keys::seq(m.audit_seq))? {
            Some(v) => decode::<AuditRecord>("audit", &v)?.hash,
            None => String::new(),
        };
        if stored != m.audit_head {
            return Ok(Some(format!(
                "audit record {} has chain hash {stored}, but the watermark records {}: \
                 this is not the history that was acknowledged",
                m.audit_seq, m.audit_head
            )));
        }
    }
    Ok(None)
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
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .open()?;
        let open = |name: &str| db.open_tree(name);
        let store = Store {
            db: db.clone(),
            records: open("records")?,
            events: open("events")?,
            audit: open("audit")?,
            index: open("index")?,
            requests: open("requests")?,
            meta: open("meta")?,
            writer: Mutex::new(Counters {
                next_event: 0,
                next_audit: 0,
                audit_head: chain::GENESIS,
                tickets: 0,
            }),
            #[cfg(test)]
            halt_after_redo: Default::default(),
            recent: Default::default(),
            durable: watch::Sender::new(0),
            mark: mark.clone(),
            flusher: match flush {
                Some(f) => flusher::Flusher::start_with(db, f),
                None => flusher::Flusher::start(db, dir, mark).map_err(|e| {
                    Error::Storage(format!("making {} durable: {e}", dir.display()))
                })?,
            },
        };
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
        let short = match short_of(&self.audit, &report, &m)? {
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

    /// Appends an audit record of the daemon's own (no change to any
    /// hotfix), durable with the next flush.
    fn append_audit(&self, actor: &str, action: &str, detail: &str) -> Result<()> {
        let mut c = self.writer.lock().expect("writer lock");
        self.append_audit_locked(&mut c, chrono::Utc::now(), actor, action, detail)
    }

    fn append_audit_locked(
        &self,
        c: &mut Counters,
        at: Time,
        actor: &str,
        action: &str,
        detail: &str,
    ) -> Result<()> {
        let mut rec = AuditRecord {
            seq: c.next_audit,
            at,
            actor: actor.to_string(),
            incident_id: String::new(),
            action: action.to_string(),
            outcome: "ok".into(),
            detail: detail.to_string(),
            event_seq: None,
            hash: String::new(),
            v: 0,
        };
        let head = chain::seal(&mut rec, &c.audit_head);
        self.audit.insert(keys::seq(rec.seq), encode(&rec))?;
        c.next_audit += 1;
        c.audit_head = head;
        c.tickets += 1;
        self.set_mark(c);
        Ok(())
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

    /// Runs under the writer lock; returns the answer and the group-commit
    /// ticket that covers whatever it wrote.
    fn execute_locked(
        &self,
        req: &Request<'_>,
        decide: impl FnOnce(&Snapshot) -> Result<Commit>,
    ) -> (Result<(Outcome, Option<u64>)>, u64) {
        let mut counters = self.writer.lock().expect("writer lock");
        let answer = self.write_locked(&mut counters, req, decide);
        counters.tickets += 1;
        self.set_mark(&counters);
        (answer, counters.tickets)
    }

    fn write_locked(
        &self,
        counters: &mut Counters,
        req: &Request<'_>,
        decide: impl FnOnce(&Snapshot) -> Result<Commit>,
    ) -> Result<(Outcome, Option<u64>)> {
        let req_key =
            (!req.request_id.is_empty()).then(|| keys::request(req.actor, req.request_id));
        if let Some(k) = &req_key
            && let Some(bytes) = self.requests.get(k)?
        {
            let rec: RequestRecord = decode("request", &bytes)?;
            if rec.fingerprint != req.fingerprint {
                return Err(Refusal::Invalid {
                    field: "request_id".into(),
                    reason: format!(
                        "'{}' was already used for a different request",
                        req.request_id
                    ),
                }
                .into());
            }
            return Ok((rec.outcome, None));
        }

        let snapshot = Snapshot {
            store: self,
            audit: (counters.next_audit - 1, counters.audit_head),
        };
        let commit = match decide(&snapshot) {
            Ok(c) => c,
            Err(Error::Refused(refusal)) => {
                let mut rec = AuditRecord {
                    seq: counters.next_audit,
                    at: req.now,
                    actor: req.actor.to_string(),
                    incident_id: req.incident_id.to_string(),
                    action: req.action.to_string(),
                    outcome: refusal_kind(&refusal).to_string(),
                    detail: redact(&refusal.to_string()).into_owned(),
                    event_seq: None,
                    hash: String::new(),
                    v: 0,
                };
                let head = chain::seal(&mut rec, &counters.audit_head);
                self.audit.insert(keys::seq(rec.seq), encode(&rec))?;
                counters.next_audit += 1;
                counters.audit_head = head;
                return Err(refusal.into());
            }
            Err(other) => return Err(other),
        };

        // Assign sequence numbers and build every record of the change.
        let first = counters.next_event;
        let last = first + commit.events.len() as u64 - 1;
        let state = commit.state.map_or("", |s| s.as_str());
        let (incident, version, drill, mut outcome) = match &commit.write {
            Write::Hotfix { after, .. } => {
                let mut h = after.clone();
                h.last_seq = last;
                (
                    h.incident_id().to_string(),
                    h.version,
                    h.is_drill(),
                    Outcome::Hotfix(h),
                )
            }
            Write::Mitigation(m) => {
                let mut m = m.clone();
                m.seq = last;
                (m.incident_id.clone(), 1, false, Outcome::Mitigation(m))
            }
            Write::TeamReview(r) => (String::new(), 0, false, Outcome::TeamReview(r.clone())),
            Write::Checkpoint { size, note } => (
                String::new(),
                0,
                false,
                Outcome::Checkpoint {
                    size: *size,
                    note: note.clone(),
                },
            ),
            Write::Note { hotfix, .. } => (
                hotfix.incident_id().to_string(),
                hotfix.version,
                hotfix.is_drill(),
                Outcome::Hotfix(hotfix.clone()),
            ),
        };
        let events: Vec<StoredEvent> = commit
            .events
            .iter()
            .enumerate()
            .map(|(i, d)| StoredEvent {
                seq: first + i as u64,
                incident_id: incident.clone(),
                at: req.now,
                actor: req.actor.to_string(),
                kind: d.kind.as_str().to_string(),
                summary: redact(&d.summary).into_owned(),
                state: state.to_string(),
                version,
                drill,
            })
            .collect();
        let mut audit = AuditRecord {
            seq: counters.next_audit,
            at: req.now,
            actor: req.actor.to_string(),
            incident_id: incident.clone(),
            action: req.action.to_string(),
            outcome: "ok".into(),
            detail: events
                .iter()
                .map(|e| e.summary.as_str())
                .collect::<Vec<_>>()
                .join(" | "),
            event_seq: Some(first),
            hash: String::new(),
            v: 0,
        };

        use redo::TreeId::{Audit, Events, Index, Meta, Records, Requests};
        let mut w = redo::Writes::default();
        for e in &events {
            w.put(Events, keys::seq(e.seq), encode(e));
            if !e.incident_id.is_empty() {
                w.put(Index, keys::by_incident(&e.incident_id, e.seq), Vec::new());
            }
        }
        match (&commit.write, &mut outcome) {
            (
                Write::Hotfix {
                    before,
                    open_before,
                    open_after,
                    ..
                },
                Outcome::Hotfix(h),
            ) => {
                w.put(Records, keys::hotfix(h.incident_id()), encode(h));
                if before.is_none() && !h.is_drill() {
                    w.put(
                        Index,
                        keys::declared(h.declared_at, h.incident_id()),
                        keys::seq(first),
                    );
                    w.put(
                        Index,
                        keys::quarter(&quarter_of(h.declared_at), &h.author, h.incident_id()),
                        Vec::new(),
                    );
                }
                // Only the obligations that changed.
                for (due, kind) in open_before.iter().filter(|o| !open_after.contains(o)) {
                    w.delete(Index, keys::due(*due, h.incident_id(), *kind));
                }
                for (due, kind) in open_after.iter().filter(|o| !open_before.contains(o)) {
                    w.put(Index, keys::due(*due, h.incident_id(), *kind), Vec::new());
                }
                if let Some(yes_but_rollback) =
                    crate::domain::facts::first_postmortem(before.as_ref(), h)
                {
                    // Absolute counts, not increments: applying the change
                    // again after a crash must not count it twice.
                    let (all, ybr) = self.postmortem_counts()?;
                    w.put(Meta, keys::META_POSTMORTEMS, keys::seq(u64::from(all) + 1));
                    if yes_but_rollback {
                        w.put(
                            Meta,
                            keys::META_POSTMORTEMS_YBR,
                            keys::seq(u64::from(ybr) + 1),
                        );
                    }
                }
            }
            (Write::Mitigation(_), Outcome::Mitigation(m)) => {
                w.put(Records, keys::mitigation(&m.incident_id), encode(m));
            }
            (Write::TeamReview(_), Outcome::TeamReview(r)) => {
                w.put(Index, keys::review(r.at, first), encode(r));
            }
            (Write::Checkpoint { size, note }, Outcome::Checkpoint { .. }) => {
                w.put(Index, keys::checkpoint(*size), note.as_bytes().to_vec());
            }
            (Write::Note { .. }, Outcome::Hotfix(_)) => {}
            _ => unreachable!("outcome mirrors the write"),
        }
        for mark in &commit.marks {
            match mark {
                Mark::Intent {
                    kind,
                    incident_id,
                    payload,
                } => w.put(
                    Index,
                    keys::intent(kind.as_str(), incident_id),
                    payload.clone(),
                ),
                Mark::IntentDone { kind, incident_id } => {
                    w.delete(Index, keys::intent(kind.as_str(), incident_id))
                }
                Mark::OverdueReported {
                    incident_id,
                    obligation,
                } => w.put(
                    Index,
                    keys::overdue_mark(incident_id, obligation),
                    Vec::new(),
                ),
            }
        }
        if let Some(x) = &commit.exercise {
            w.put(Index, keys::exercise(x.at, &x.incident_id), encode(x));
        }
        if let Some(k) = req_key {
            w.put(
                Requests,
                k,
                encode(&RequestRecord {
                    fingerprint: req.fingerprint.clone(),
                    outcome: outcome.clone(),
                }),
            );
        }
        let audit_head = chain::seal(&mut audit, &counters.audit_head);
        w.put(Audit, keys::seq(audit.seq), encode(&audit));
        self.commit_writes(&w)?;
        counters.next_event = last + 1;
        counters.next_audit += 1;
        counters.audit_head = audit_head;
        // Under the writer lock: the cache stays in sequence order.
        let mut recent = self.recent.write().expect("recent lock");
        for e in events {
            if recent.len() == RECENT_EVENTS {
                recent.pop_front();
            }
            recent.push_back(e);
        }
        Ok((outcome, Some(last)))
    }

    /// Makes `w` one change: the whole of it in `meta/redo` (one insert,
    /// atomic on its own), then each write. See [`redo`].
    fn commit_writes(&self, w: &redo::Writes) -> Result<()> {
        let written = self
            .meta
            .insert(keys::META_REDO, w.encode())
            .map_err(Error::from)
            .and_then(|_| {
                #[cfg(test)]
                if self
                    .halt_after_redo
                    .load(std::sync::atomic::Ordering::Acquire)
                {
                    return Ok(());
                }
                self.apply(w)
            });
        if let Err(e) = &written {
            // Part of the change may be applied; the next start applies
            // the redo record again. Until then, change nothing more.
            self.flusher.poison(format!("writing a change: {e}"));
            return Err(Error::NotDurable(format!("writing a change: {e}")));
        }
        written
    }

    fn tree(&self, id: redo::TreeId) -> &sled::Tree {
        match id {
            redo::TreeId::Records => &self.records,
            redo::TreeId::Events => &self.events,
            redo::TreeId::Audit => &self.audit,
            redo::TreeId::Index => &self.index,
            redo::TreeId::Requests => &self.requests,
            redo::TreeId::Meta => &self.meta,
        }
    }

    /// Whether every write of `w` is on disk. A change's last write is its
    /// audit record, under a sequence number no earlier change used; sled
    /// recovers a prefix of its log, so if that record is there, so is the
    /// rest. (Comparing values instead would undo anything written since,
    /// e.g. a re-sealed audit chain that `audit verify --against` must see.)
    fn landed(&self, w: &redo::Writes) -> Result<bool> {
        match w.ops.last() {
            Some(op) if op.tree == redo::TreeId::Audit && op.value.is_some() => {
                Ok(self.audit.contains_key(&op.key)?)
            }
            _ => Err(Error::Corrupt(
                "meta/redo: a change must end with its audit record".into(),
            )),
        }
    }

    fn apply(&self, w: &redo::Writes) -> Result<()> {
        for op in &w.ops {
            let tree = self.tree(op.tree);
            match &op.value {
                Some(v) => tree.insert(op.key.as_slice(), v.as_slice())?,
                None => tree.remove(op.key.as_slice())?,
            };
        }
        Ok(())
    }

    /// Reads one hotfix.
    pub fn hotfix(&self, incident_id: &str) -> Result<Option<Hotfix>> {
        self.records
            .get(keys::hotfix(incident_id))?
            .map(|b| decode("hotfix", &b))
            .transpose()
    }

    pub fn mitigation(&self, incident_id: &str) -> Result<Option<Mitigation>> {
        self.records
            .get(keys::mitigation(incident_id))?
            .map(|b| decode("mitigation", &b))
            .transpose()
    }

    /// Every hotfix, in incident-id order.
    pub fn hotfixes(&self) -> impl Iterator<Item = Result<Hotfix>> + '_ {
        self.records.scan_prefix(keys::HOTFIX).map(|r| {
            r.map_err(Error::from)
                .and_then(|(_, v)| decode("hotfix", &v))
        })
    }

    /// Durable events with `seq > from`, at most `limit`. Recent events
    /// come from memory (every live watcher asks for the same few), older
    /// ones from disk.
    pub fn events_after(&self, from: u64, limit: usize) -> Result<Vec<StoredEvent>> {
        let upto = self.durable_seq();
        let mut out = Vec::new();
        if from >= upto {
            return Ok(out);
        }
        {
            let recent = self.recent.read().expect("recent lock");
            if recent.front().is_some_and(|e| e.seq <= from + 1) {
                let skip = (from + 1 - recent[0].seq) as usize;
                out.extend(
                    recent
                        .iter()
                        .skip(skip)
                        .take_while(|e| e.seq <= upto)
                        .take(limit)
                        .cloned(),
                );
                return Ok(out);
            }
        }
        for r in self.events.range(keys::seq(from + 1)..=keys::seq(upto)) {
            let (_, v) = r?;
            out.push(decode("event", &v)?);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// The events of one incident, in order.
    pub fn timeline(&self, incident_id: &str) -> Result<Vec<StoredEvent>> {
        let mut out = Vec::new();
        for r in self
            .index
            .scan_prefix(keys::by_incident_prefix(incident_id))
        {
            let (k, _) = r?;
            let seq = keys::u64_of(&k[k.len() - 8..]);
            if let Some(v) = self.events.get(keys::seq(seq))? {
                out.push(decode("event", &v)?);
            }
        }
        Ok(out)
    }

    /// Walks the whole audit chain from its first record.
    pub fn verify_audit(&self) -> chain::Report {
        chain::verify(self.audit.iter().map(|r| {
            let (_, v) = r.map_err(|e| format!("reading the audit tree: {e}"))?;
            decode::<AuditRecord>("audit", &v).map_err(|e| e.to_string())
        }))
    }

    /// The audit records of one incident, oldest first (a full scan).
    pub fn audit_of(&self, incident_id: &str, limit: usize) -> Result<Vec<AuditRecord>> {
        let mut out = Vec::new();
        for r in self.audit.iter() {
            let (_, v) = r?;
            let rec: AuditRecord = decode("audit", &v)?;
            if rec.incident_id == incident_id {
                out.push(rec);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Audit records with `seq > from`, at most `limit`.
    pub fn audit_after(&self, from: u64, limit: usize) -> Result<Vec<AuditRecord>> {
        let mut out = Vec::new();
        for r in self.audit.range(keys::seq(from.saturating_add(1))..) {
            let (_, v) = r?;
            out.push(decode("audit", &v)?);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// How many audit records the trail holds.
    pub fn audit_size(&self) -> u64 {
        self.writer.lock().expect("writer lock").next_audit - 1
    }

    /// The first stored checkpoint the trail does not match (or, with
    /// `key`, whose signature does not verify): (size, why).
    pub fn verify_checkpoints(
        &self,
        key: Option<&hotfix_api::audit::VerifierKey>,
    ) -> Result<Option<(u64, String)>> {
        check_checkpoints(&self.index, &self.audit, key)
    }

    /// Every stored checkpoint: (size, signed note), oldest first.
    pub fn checkpoints(&self) -> Result<Vec<(u64, String)>> {
        stored_checkpoints(&self.index)
    }

    /// The newest stored checkpoint.
    pub fn latest_checkpoint(&self) -> Result<Option<(u64, String)>> {
        Ok(self.checkpoints()?.pop())
    }

    /// The chain hash of audit record `seq` (None: no such record).
    pub fn audit_hash(&self, seq: u64) -> Result<Option<String>> {
        self.audit
            .get(keys::seq(seq))?
            .map(|v| decode::<AuditRecord>("audit", &v).map(|r| r.hash))
            .transpose()
    }

    /// Non-drill declarations in `[since, now]` and the latest team review.
    pub fn gate_view(&self, since: Time) -> Result<GateView> {
        let mut view = GateView::default();
        for r in self
            .index
            .range(keys::declared_from(since)..keys::declared_end())
        {
            let (_, v) = r?;
            view.count_in_window += 1;
            let seq = keys::u64_of(&v);
            view.latest_in_window_seq = Some(view.latest_in_window_seq.map_or(seq, |s| s.max(seq)));
        }
        if let Some(r) = self.index.scan_prefix(keys::REVIEW).next_back() {
            let (k, v) = r?;
            view.last_review = Some(decode("team review", &v)?);
            view.last_review_seq = Some(keys::u64_of(&k[k.len() - 8..]));
        }
        Ok(view)
    }

    /// Hotfixes `author` declared in `quarter` (drills excluded).
    pub fn author_quarter_count(&self, quarter: &str, author: &str) -> Result<u32> {
        let n = self
            .index
            .scan_prefix(keys::quarter_author_prefix(quarter, author))
            .count();
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Per-author counts for one quarter.
    pub fn quarter_counts(&self, quarter: &str) -> Result<Vec<(String, u32)>> {
        let mut out: Vec<(String, u32)> = Vec::new();
        for r in self.index.scan_prefix(keys::quarter_prefix(quarter)) {
            let (k, _) = r?;
            let author = keys::quarter_author_of(&k, quarter);
            match out.last_mut() {
                Some((a, n)) if *a == author => *n += 1,
                _ => out.push((author, 1)),
            }
        }
        Ok(out)
    }

    /// Outstanding obligations due before `now`: (incident, kind, due).
    pub fn overdue(&self, now: Time) -> Result<Vec<(String, String, Time)>> {
        let mut out = Vec::new();
        for r in self.index.range(keys::DUE.to_vec()..keys::due_until(now)) {
            let (k, _) = r?;
            out.push(keys::due_of(&k));
        }
        Ok(out)
    }

    /// Overdue obligations not yet reported: (incident, kind).
    pub fn overdue_unreported(&self, now: Time) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for (inc, kind, _) in self.overdue(now)? {
            if !self.index.contains_key(keys::overdue_mark(&inc, &kind))? {
                out.push((inc, kind));
            }
        }
        Ok(out)
    }

    /// External actions of `kind` recorded as sent whose outcome is not
    /// recorded yet: (incident, payload).
    pub fn intents(&self, kind: IntentKind) -> Result<Vec<(String, Vec<u8>)>> {
        let prefix = keys::intent_prefix(kind.as_str());
        let mut out = Vec::new();
        for r in self.index.scan_prefix(&prefix) {
            let (k, v) = r?;
            out.push((
                String::from_utf8_lossy(&k[prefix.len()..]).into_owned(),
                v.to_vec(),
            ));
        }
        Ok(out)
    }

    /// A named cursor into the event log (e.g. the chat relay's).
    pub fn cursor(&self, name: &str) -> Result<u64> {
        Ok(self
            .meta
            .get(keys::cursor(name))?
            .map_or(0, |v| keys::u64_of(&v)))
    }

    /// Moves a cursor. Flushed with the next change: a crash may replay the
    /// events after the last flushed position (at-least-once).
    pub fn set_cursor(&self, name: &str, seq: u64) -> Result<()> {
        self.meta.insert(keys::cursor(name), &keys::seq(seq))?;
        Ok(())
    }

    /// The newest `n` rows of "When this runbook last worked".
    pub fn exercises(&self, n: usize) -> Result<Vec<Exercise>> {
        let mut out = Vec::new();
        for r in self.index.scan_prefix(keys::EXERCISE).rev().take(n) {
            let (_, v) = r?;
            out.push(decode("exercise", &v)?);
        }
        Ok(out)
    }

    /// Whether the hotfix lane (drill or real) was exercised at or after
    /// `since`: reads the exercise index backwards from now to `since` only.
    pub fn lane_exercised_since(&self, since: Time) -> Result<bool> {
        for r in self
            .index
            .range(keys::exercise_from(since)..keys::exercise_end())
            .rev()
        {
            let (_, v) = r?;
            let x: Exercise = decode("exercise", &v)?;
            if x.by_hotfix_lane() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// (postmortems, of which "yes, but a rollback would have worked").
    pub fn postmortem_counts(&self) -> Result<(u32, u32)> {
        let get = |k: &[u8]| -> Result<u32> {
            Ok(self.meta.get(k)?.map_or(0, |v| keys::u64_of(&v) as u32))
        };
        Ok((
            get(keys::META_POSTMORTEMS)?,
            get(keys::META_POSTMORTEMS_YBR)?,
        ))
    }

    /// Flushes everything; used at shutdown.
    pub async fn flush(&self) -> Result<()> {
        let ticket = {
            let mut c = self.writer.lock().expect("writer lock");
            c.tickets += 1;
            c.tickets
        };
        self.flusher.wait(ticket).await
    }
}

fn refusal_kind(r: &Refusal) -> &'static str {
    match r {
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

impl Reads for Snapshot<'_> {
    fn audit_position(&self) -> (u64, chain::Hash) {
        self.audit
    }

    fn hotfix(&self, incident_id: &str) -> Result<Option<Hotfix>> {
        self.store.hotfix(incident_id)
    }

    fn mitigation(&self, incident_id: &str) -> Result<Option<Mitigation>> {
        self.store.mitigation(incident_id)
    }

    fn gate_view(&self, since: Time) -> Result<GateView> {
        self.store.gate_view(since)
    }

    fn author_quarter_count(&self, quarter: &str, author: &str) -> Result<u32> {
        self.store.author_quarter_count(quarter, author)
    }
}

/// The sled engine: every method is the inherent one of the same name.
#[async_trait::async_trait]
impl Engine for Store {
    async fn execute(&self, req: Request<'_>, decide: Decide<'_>) -> Result<Outcome> {
        Store::execute(self, req, |snap| decide(snap)).await
    }
    fn replay(&self, actor: &str, request_id: &str, fp: &str) -> Result<Option<Outcome>> {
        Store::replay(self, actor, request_id, fp)
    }
    async fn flush(&self) -> Result<()> {
        Store::flush(self).await
    }
    fn failure(&self) -> engine::Failure {
        Box::pin(Store::failure(self))
    }
    async fn backup(&self, actor: &str, now: Time) -> Result<Vec<u8>> {
        Store::backup(self, actor, now).await
    }
    fn hotfix(&self, incident_id: &str) -> Result<Option<Hotfix>> {
        Store::hotfix(self, incident_id)
    }
    fn mitigation(&self, incident_id: &str) -> Result<Option<Mitigation>> {
        Store::mitigation(self, incident_id)
    }
    fn hotfixes(&self) -> Result<Vec<Hotfix>> {
        Store::hotfixes(self).collect()
    }
    fn timeline(&self, incident_id: &str) -> Result<Vec<StoredEvent>> {
        Store::timeline(self, incident_id)
    }
    fn gate_view(&self, since: Time) -> Result<GateView> {
        Store::gate_view(self, since)
    }
    fn author_quarter_count(&self, quarter: &str, author: &str) -> Result<u32> {
        Store::author_quarter_count(self, quarter, author)
    }
    fn quarter_counts(&self, quarter: &str) -> Result<Vec<(String, u32)>> {
        Store::quarter_counts(self, quarter)
    }
    fn overdue(&self, now: Time) -> Result<Vec<(String, String, Time)>> {
        Store::overdue(self, now)
    }
    fn overdue_unreported(&self, now: Time) -> Result<Vec<(String, String)>> {
        Store::overdue_unreported(self, now)
    }
    fn exercises(&self, n: usize) -> Result<Vec<Exercise>> {
        Store::exercises(self, n)
    }
    fn lane_exercised_since(&self, since: Time) -> Result<bool> {
        Store::lane_exercised_since(self, since)
    }
    fn postmortem_counts(&self) -> Result<(u32, u32)> {
        Store::postmortem_counts(self)
    }
    fn durable_seq(&self) -> u64 {
        Store::durable_seq(self)
    }
    fn subscribe(&self) -> watch::Receiver<u64> {
        Store::subscribe(self)
    }
    fn events_after(&self, from: u64, limit: usize) -> Result<Vec<StoredEvent>> {
        Store::events_after(self, from, limit)
    }
    fn cursor(&self, name: &str) -> Result<u64> {
        Store::cursor(self, name)
    }
    fn set_cursor(&self, name: &str, seq: u64) -> Result<()> {
        Store::set_cursor(self, name, seq)
    }
    fn intents(&self, kind: IntentKind) -> Result<Vec<(String, Vec<u8>)>> {
        Store::intents(self, kind)
    }
    fn audit_after(&self, from: u64, limit: usize) -> Result<Vec<AuditRecord>> {
        Store::audit_after(self, from, limit)
    }
    fn audit_of(&self, incident_id: &str, limit: usize) -> Result<Vec<AuditRecord>> {
        Store::audit_of(self, incident_id, limit)
    }
    fn audit_size(&self) -> u64 {
        Store::audit_size(self)
    }
    fn audit_hash(&self, seq: u64) -> Result<Option<String>> {
        Store::audit_hash(self, seq)
    }
    fn verify_audit(&self) -> chain::Report {
        Store::verify_audit(self)
    }
    fn verify_checkpoints(
        &self,
        key: Option<&hotfix_api::audit::VerifierKey>,
    ) -> Result<Option<(u64, String)>> {
        Store::verify_checkpoints(self, key)
    }
    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>> {
        Store::latest_checkpoint(self)
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

//! The etcd engine: [`Engine`] over an etcd cluster, so that several
//! hotfixd replicas share one store.
//!
//! - **Reads** come from a local mirror of the keyspace (see
//!   `store::mirror`), loaded by one range read at a single revision and
//!   kept current by one etcd watch from the revision after it. A watch
//!   etcd cancels (its history compacted) falls back to a range read of the
//!   whole keyspace, never to silence. [`Engine::catch_up`] waits until the
//!   mirror holds every change etcd committed before it was called (a
//!   quorum read of the head): reads after it see every answered change,
//!   whichever replica answered it.
//! - **A change** is planned on the mirror (the sled engine's own code)
//!   and committed in **one etcd transaction** with the changes planned
//!   beside it (the group commit, see `group`): every put and delete, and
//!   the head's new counters, if the head is still at the revision the plan
//!   read, and every request id is still unanswered. A lost compare
//!   (another replica committed first) waits for the mirror to hold the
//!   winner and decides again; the answer waits until the mirror holds the
//!   change, so that this replica's next read sees it.
//! - **Sequences** are hotfixd's own counters in the head, gap-free (etcd's
//!   revisions also move for leases and the election).
//! - **Answered means committed by a quorum**: etcd answers a transaction
//!   only then. A transaction etcd did not answer may or may not have
//!   committed: UNAVAILABLE, and a retry with the same request id replays
//!   the first answer or commits once.
//! - **Fencing**: changes made while acting as the leader (inside
//!   `term::scope`) carry a compare on the election key's creation
//!   revision; a replica that lost its lease finds them refused.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt;

use super::Connection;
use super::api::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RangeResponse, RequestOp, TxnRequest,
    WatchCreateRequest, WatchRequest, compare, kv_client::KvClient, request_op, response_op,
    watch_client::WatchClient, watch_request,
};
use super::api::mvccpb::{self, KeyValue};
use super::group::{Queue, Sending, Sent, Settled};
use super::keyspace::{self, Key, Keyspace};
use crate::domain::{Exercise, GateView, Hotfix, Mitigation, Time};
use crate::error::{Error, Result};
use crate::store::mirror::MirrorHead;
use crate::store::redo::{self, Op};
use crate::store::{
    AuditRecord, Decide, Engine, IntentKind, Outcome, Request, Store, StoredEvent, chain, engine,
};

/// etcd refuses a transaction of more than 128 operations (its
/// `--max-txn-ops` default); a change stays well below.
pub const MAX_OPS: usize = 64;
/// etcd refuses a request of more than 1.5 MiB (`--max-request-bytes`); a
/// change stays well below.
pub const MAX_BYTES: usize = 1024 * 1024;
/// How often a change that lost its compare decides again before it is
/// answered ABORTED.
const ATTEMPTS: usize = 32;
/// Keys per range read page.
const PAGE: i64 = 512;

pub struct EtcdStore {
    mirror: Arc<Store>,
    committer: Arc<Committer>,
    cursors: mpsc::UnboundedSender<(Vec<u8>, u64)>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for EtcdStore {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

pub(super) fn unavailable(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!(
        "etcd did not answer {what} ({e}); the store is unavailable: nothing is acknowledged \
         until a quorum of etcd answers, and a retry with the same request id is safe"
    ))
}

/// One range read within the connection's deadline.
pub(super) async fn range(
    conn: &Connection,
    what: &str,
    req: RangeRequest,
) -> Result<RangeResponse> {
    conn.call(what, req, |r| {
        let mut kv = KvClient::new(conn.channel.clone());
        async move { kv.range(r).await }
    })
    .await
}

/// One mirrored revision's worth of writes: tree writes and the head.
#[derive(Default)]
struct Batch {
    ops: Vec<Op>,
    head: Option<MirrorHead>,
}

impl Batch {
    fn put(&mut self, keys: &Keyspace, kv: &KeyValue) -> Result<()> {
        match keys.parse(&kv.key) {
            Key::Tree(tree, k) => self.ops.push(Op {
                tree,
                key: k.to_vec(),
                value: Some(kv.value.clone()),
            }),
            Key::Head => self.head = Some(keyspace::decode_head(&kv.value, kv.mod_revision)?),
            Key::Other => {}
        }
        Ok(())
    }

    fn delete(&mut self, keys: &Keyspace, key: &[u8]) {
        if let Key::Tree(tree, k) = keys.parse(key) {
            self.ops.push(Op {
                tree,
                key: k.to_vec(),
                value: None,
            });
        }
    }
}

impl EtcdStore {
    /// Opens the store under `prefix` on the etcd that `conn` reaches:
    /// loads the mirror, checks it (the audit chain, the checkpoints, the
    /// head against what it counts) and starts following etcd.
    pub async fn open(conn: Connection, prefix: &str) -> Result<EtcdStore> {
        let keys = Keyspace::new(prefix)?;
        let mirror = Arc::new(Store::mirror()?);
        let rev = load(&conn, &keys, &mirror, false).await?;
        check(&mirror, prefix)?;
        let (heads_tx, heads) = watch::channel(mirror.mirrored_head_rev());
        let follow = tokio::spawn(follow(
            conn.clone(),
            keys.clone(),
            mirror.clone(),
            heads_tx,
            rev,
        ));
        let (cursors, rx) = mpsc::unbounded_channel();
        let writer = tokio::spawn(write_cursors(conn.clone(), keys.clone(), rx));
        let committer = Arc::new(Committer {
            conn,
            keys,
            heads,
            queue: Mutex::new(Queue::default()),
            flight: Arc::new(tokio::sync::Mutex::new(())),
            batches: crate::metrics::batch_histogram(),
        });
        Ok(EtcdStore {
            mirror,
            committer,
            cursors,
            tasks: vec![follow, writer],
        })
    }

    /// The audit trail's size and chain head, as the head counts them.
    pub(super) fn mirror_position(&self) -> (u64, chain::Hash) {
        self.mirror.audit_position()
    }

    /// A change whose group did not commit: Ok (decide again, once the
    /// mirror holds what came first), or why it is not retried here.
    async fn not_committed(&self, settled: Settled, fenced: bool) -> Result<()> {
        match settled {
            Settled::Committed => Ok(()),
            Settled::Lost(rev) => self.committer.mirrored(rev).await,
            Settled::Fenced(_) if fenced => Err(Error::Fenced(
                "this replica is no longer the leader (its etcd lease ended), so it may not \
                 act; the change was not written. The new leader acts instead"
                    .into(),
            )),
            Settled::Fenced(rev) => self.committer.mirrored(rev).await,
            Settled::Failed(why) => Err(Error::Unavailable(why)),
        }
    }
}

/// Sends the queued groups (see `group`), one at a time.
struct Committer {
    conn: Connection,
    keys: Keyspace,
    /// The revision of the head the mirror holds, as it moves.
    heads: watch::Receiver<i64>,
    queue: Mutex<Queue>,
    /// Held while a group is in flight (one at a time).
    flight: Arc<tokio::sync::Mutex<()>>,
    /// Changes per committed transaction.
    batches: Histogram,
}

impl Committer {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().expect("group queue lock")
    }

    /// Waits until the mirror holds the head written at `rev` or later.
    async fn mirrored(&self, rev: i64) -> Result<()> {
        let mut heads = self.heads.clone();
        let timeout = self.conn.timeout;
        let reached = tokio::time::timeout(timeout, heads.wait_for(|h| *h >= rev)).await;
        match reached {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(Error::Unavailable("the etcd watch stopped".into())),
            Err(_) => Err(Error::Unavailable(format!(
                "etcd committed revision {rev} but this replica's watch did not deliver it in \
                 {timeout:?}; a retry with the same request id answers it"
            ))),
        }
    }

    /// The head's revision now, by a quorum read.
    async fn head_rev(&self) -> Result<i64> {
        let req = RangeRequest {
            key: self.keys.head(),
            ..Default::default()
        };
        let r = range(&self.conn, "a read of the head", req).await?;
        Ok(r.kvs.first().map_or(0, |kv| kv.mod_revision))
    }

    /// Waits until the group behind `done` is settled, sending the oldest
    /// waiting group whenever none is in flight. The send runs in a task
    /// of its own, so a caller that goes away (its RPC cancelled) never
    /// leaves a group half sent.
    async fn settle(
        self: &Arc<Self>,
        mut done: watch::Receiver<Option<Settled>>,
    ) -> Result<Settled> {
        loop {
            if let Some(s) = done.borrow_and_update().clone() {
                return Ok(s);
            }
            let flight = self.flight.clone().lock_owned().await;
            if let Some(s) = done.borrow_and_update().clone() {
                return Ok(s);
            }
            let me = self.clone();
            tokio::spawn(async move {
                me.send_front().await;
                drop(flight);
            })
            .await
            .map_err(|e| Error::Unavailable(format!("sending a change to etcd: {e}")))?;
        }
    }

    /// Sends the oldest waiting group as one transaction and settles it.
    async fn send_front(&self) {
        let Some(sending) = self.queue().seal_front() else {
            return;
        };
        let sent = match self.commit(&sending).await {
            Ok(Sent::Committed(rev)) => {
                self.batches.observe(sending.changes as f64);
                match self.mirrored(rev).await {
                    Ok(()) => Sent::Committed(rev),
                    Err(e) => Sent::Unmirrored(rev, e.to_string()),
                }
            }
            Ok(other) => other,
            Err(e) => Sent::Failed(e.to_string()),
        };
        self.queue().settle_front(sent);
    }

    /// Commits a group's writes and the head after it, if the head is
    /// still at the revision it was planned on, every request it answers
    /// is still unanswered and (inside a term) the election key is still
    /// the one the term holds.
    async fn commit(&self, g: &Sending) -> Result<Sent> {
        let mut success: Vec<RequestOp> = g
            .ops
            .iter()
            .map(|op| {
                let key = self.keys.key(op.tree, &op.key);
                RequestOp {
                    request: Some(match &op.value {
                        Some(v) => request_op::Request::RequestPut(PutRequest {
                            key,
                            value: v.clone(),
                            ..Default::default()
                        }),
                        None => request_op::Request::RequestDeleteRange(DeleteRangeRequest {
                            key,
                            ..Default::default()
                        }),
                    }),
                }
            })
            .collect();
        success.push(RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: self.keys.head(),
                value: keyspace::encode_head(&g.head),
                ..Default::default()
            })),
        });
        let mut compares = vec![Compare {
            result: compare::CompareResult::Equal as i32,
            target: compare::CompareTarget::Mod as i32,
            key: self.keys.head(),
            target_union: Some(compare::TargetUnion::ModRevision(g.guard)),
            ..Default::default()
        }];
        for k in &g.request_keys {
            compares.push(Compare {
                result: compare::CompareResult::Equal as i32,
                target: compare::CompareTarget::Create as i32,
                key: self.keys.key(redo::TreeId::Requests, k),
                target_union: Some(compare::TargetUnion::CreateRevision(0)),
                ..Default::default()
            });
        }
        if let Some(f) = &g.fence {
            compares.push(Compare {
                result: compare::CompareResult::Equal as i32,
                target: compare::CompareTarget::Create as i32,
                key: f.key.clone(),
                target_union: Some(compare::TargetUnion::CreateRevision(f.create_rev)),
                ..Default::default()
            });
        }
        let range = |key: Vec<u8>| RequestOp {
            request: Some(request_op::Request::RequestRange(RangeRequest {
                key,
                ..Default::default()
            })),
        };
        let mut failure = vec![range(self.keys.head())];
        if let Some(f) = &g.fence {
            failure.push(range(f.key.clone()));
        }
        let txn = TxnRequest {
            compare: compares,
            success,
            failure,
        };
        let r = self
            .conn
            .call("the change", txn, |t| {
                let mut kv = KvClient::new(self.conn.channel.clone());
                async move { kv.txn(t).await }
            })
            .await?;
        if r.succeeded {
            return Ok(Sent::Committed(r.header.map_or(0, |h| h.revision)));
        }
        let ranged = |i: usize| -> Option<KeyValue> {
            match r.responses.get(i)?.response.as_ref()? {
                response_op::Response::ResponseRange(rr) => rr.kvs.first().cloned(),
                _ => None,
            }
        };
        let now = ranged(0).map_or(0, |kv| kv.mod_revision);
        if let Some(f) = &g.fence
            && ranged(1).is_none_or(|kv| kv.create_revision != f.create_rev)
        {
            return Ok(Sent::Fenced(now));
        }
        Ok(Sent::Lost(now))
    }
}

/// Loads every key under the prefix at one revision into `mirror` (with
/// `prune`, also removing what the mirror holds that etcd no longer does).
/// Returns the revision read.
async fn load(conn: &Connection, keys: &Keyspace, mirror: &Store, prune: bool) -> Result<i64> {
    let end = keys.end();
    let mut from = keys.prefix().to_vec();
    let mut rev = 0;
    let mut batch = Batch::default();
    let mut seen = std::collections::HashSet::new();
    loop {
        let req = RangeRequest {
            key: from.clone(),
            range_end: end.clone(),
            limit: PAGE,
            revision: rev,
            ..Default::default()
        };
        let r = range(conn, "a read of the store", req).await?;
        if rev == 0 {
            rev = r.header.map_or(0, |h| h.revision);
        }
        for kv in &r.kvs {
            batch.put(keys, kv)?;
            if prune && let Key::Tree(t, k) = keys.parse(&kv.key) {
                seen.insert((t, k.to_vec()));
            }
        }
        match r.kvs.last() {
            Some(last) if r.more => from = [last.key.as_slice(), &[0]].concat(),
            _ => break,
        }
    }
    if prune {
        for (tree, key) in mirror.mirrored_keys()? {
            if !seen.contains(&(tree, key.clone())) {
                batch.ops.push(Op {
                    tree,
                    key,
                    value: None,
                });
            }
        }
    }
    mirror.apply_mirrored(&batch.ops, batch.head)?;
    Ok(rev)
}

/// The checks the sled engine makes at start-up, on what etcd holds.
fn check(mirror: &Store, prefix: &str) -> Result<()> {
    if mirror.mirrored_head_rev() == 0
        && mirror
            .mirrored_keys()?
            .iter()
            .any(|(tree, _)| *tree != redo::TreeId::Meta)
    {
        return Err(Error::Damaged(format!(
            "etcd under {prefix} holds a store's keys but no head key (an unfinished `hotfixd \
             migrate` or restore?); nothing was started. Delete the prefix (etcdctl del \
             --prefix {prefix}) and migrate again"
        )));
    }
    let report = mirror.verify_audit();
    if let Some((seq, why)) = report.first_bad {
        return Err(Error::Damaged(format!(
            "the audit trail in etcd under {prefix} is broken at record {seq} ({why}); nothing \
             was started. Restore it from a backup"
        )));
    }
    if let Some((_, why)) = mirror.verify_checkpoints(None)? {
        return Err(Error::Damaged(format!(
            "etcd under {prefix}: {why}; nothing was started. Restore it from a backup"
        )));
    }
    let events = mirror
        .events_after(0, usize::MAX)?
        .last()
        .map_or(0, |e| e.seq);
    let (durable, audit) = (mirror.durable_seq(), mirror.audit_size());
    let (head_seq, head) = mirror.audit_position();
    if events != durable || report.verified != audit || report.head != hex::encode(head) {
        return Err(Error::Damaged(format!(
            "etcd under {prefix} holds events to {events} and {} audit records (chain head {}), \
             but its head key counts {durable} events and {head_seq} records (chain head {}); \
             nothing was started. Restore it from a backup",
            report.verified,
            report.head,
            hex::encode(head)
        )));
    }
    Ok(())
}

/// Keeps the mirror current: etcd's watch from `rev + 1`; a cancelled
/// (compacted) watch reloads the whole keyspace; a broken one resumes
/// after the last revision it delivered.
async fn follow(
    conn: Connection,
    keys: Keyspace,
    mirror: Arc<Store>,
    heads: watch::Sender<i64>,
    mut rev: i64,
) {
    let mut pause = Duration::from_millis(50);
    loop {
        match watch_from(&conn, &keys, &mirror, &heads, &mut rev).await {
            Ok(()) => {
                tracing::warn!(
                    revision = rev,
                    "etcd compacted the history the watch needed; reloading the store"
                );
                match load(&conn, &keys, &mirror, true).await {
                    Ok(r) => {
                        rev = r;
                        heads.send_replace(mirror.mirrored_head_rev());
                    }
                    Err(e) => tracing::warn!(error = %e, "reloading the store from etcd"),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, revision = rev, "the etcd watch broke; resuming");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
                continue;
            }
        }
        pause = Duration::from_millis(50);
    }
}

/// One watch. Ok: etcd cancelled it (compaction); Err: it broke.
async fn watch_from(
    conn: &Connection,
    keys: &Keyspace,
    mirror: &Store,
    heads: &watch::Sender<i64>,
    rev: &mut i64,
) -> Result<()> {
    let (tx, rx) = mpsc::channel(1);
    let create = WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(
            WatchCreateRequest {
                key: keys.prefix().to_vec(),
                range_end: keys.end(),
                start_revision: *rev + 1,
                progress_notify: true,
                ..Default::default()
            },
        )),
    };
    tx.send(create).await.expect("the request stream is open");
    let requests = conn.request(tokio_stream::wrappers::ReceiverStream::new(rx));
    let mut stream = match WatchClient::new(conn.channel.clone()).watch(requests).await {
        Ok(s) => s.into_inner(),
        Err(s) => {
            if super::token_expired(&s) {
                conn.authenticate().await?;
            }
            return Err(unavailable("the watch", s.message()));
        }
    };
    while let Some(r) = stream.next().await {
        let r = r.map_err(|s| unavailable("the watch", s.message()))?;
        if r.canceled {
            if r.compact_revision > 0 {
                return Ok(());
            }
            return Err(unavailable("the watch", r.cancel_reason));
        }
        let mut batch = Batch::default();
        let mut last = *rev;
        for ev in &r.events {
            let Some(kv) = &ev.kv else { continue };
            if ev.r#type == mvccpb::event::EventType::Delete as i32 {
                batch.delete(keys, &kv.key);
            } else {
                batch.put(keys, kv)?;
            }
            last = last.max(kv.mod_revision);
        }
        if !r.events.is_empty() {
            mirror.apply_mirrored(&batch.ops, batch.head)?;
            *rev = last;
            heads.send_replace(mirror.mirrored_head_rev());
        }
    }
    Err(unavailable("the watch", "the stream ended"))
}

/// Writes cursor moves to etcd, the latest of each, in the background
/// (at-least-once: a cursor lost with a replica replays a few events).
async fn write_cursors(
    conn: Connection,
    keys: Keyspace,
    mut rx: mpsc::UnboundedReceiver<(Vec<u8>, u64)>,
) {
    while let Some(first) = rx.recv().await {
        let mut latest = std::collections::BTreeMap::from([first]);
        while let Ok((k, v)) = rx.try_recv() {
            latest.insert(k, v);
        }
        for (key, seq) in latest {
            let put = PutRequest {
                key: keys.key(redo::TreeId::Meta, &key),
                value: seq.to_be_bytes().to_vec(),
                ..Default::default()
            };
            let written = conn
                .call("a cursor", put, |p| {
                    let mut kv = KvClient::new(conn.channel.clone());
                    async move { kv.put(p).await }
                })
                .await;
            if let Err(e) = written {
                tracing::warn!(error = %e, "moving a cursor in etcd");
            }
        }
    }
}

#[async_trait::async_trait]
impl Engine for EtcdStore {
    async fn execute(&self, req: Request<'_>, mut decide: Decide<'_>) -> Result<Outcome> {
        let request_key = (!req.request_id.is_empty())
            .then(|| crate::store::keys::request(req.actor, req.request_id));
        let fence = crate::term::fence();
        for _ in 0..ATTEMPTS {
            let (answer, done) = {
                let mut queue = self.committer.queue();
                let (planned, rev) = self
                    .mirror
                    .plan_mirrored(queue.planned(), &req, |snap| decide(snap))?;
                if queue.stale(rev) {
                    continue;
                }
                let done = if planned.writes.ops.is_empty() {
                    // The first answer to this request id, replayed: once
                    // whatever it may have been read from is committed.
                    queue.newest()
                } else {
                    let next = MirrorHead {
                        next_event: planned.next_event,
                        next_audit: planned.next_audit,
                        audit_head: planned.audit_head,
                        rev,
                    };
                    let ops = &planned.writes.ops;
                    Some(queue.join(ops, next, request_key.clone(), fence.clone(), rev)?)
                };
                (planned.answer, done)
            };
            let Some(done) = done else {
                return answer.map(|(o, _)| o);
            };
            match self.committer.settle(done).await? {
                Settled::Committed => return answer.map(|(o, _)| o),
                settled => self.not_committed(settled, fence.is_some()).await?,
            }
        }
        Err(Error::Contended(format!(
            "other replicas committed first {ATTEMPTS} times in a row; nothing was written, \
             retry"
        )))
    }
    fn replay(&self, actor: &str, request_id: &str, fp: &str) -> Result<Option<Outcome>> {
        self.mirror.replay(actor, request_id, fp)
    }
    async fn catch_up(&self) -> Result<()> {
        let rev = self.committer.head_rev().await?;
        self.committer.mirrored(rev).await
    }
    async fn flush(&self) -> Result<()> {
        Ok(())
    }
    fn failure(&self) -> engine::Failure {
        Box::pin(std::future::pending())
    }
    fn batches(&self) -> Histogram {
        self.committer.batches.clone()
    }
    async fn backup(&self, actor: &str, now: Time) -> Result<Vec<u8>> {
        self.record(actor, "backup", "a backup of the whole store", now)
            .await?;
        self.mirror.backup_mirrored(actor, now)
    }
    async fn record(&self, actor: &str, action: &str, detail: &str, now: Time) -> Result<()> {
        let fence = crate::term::fence();
        for _ in 0..ATTEMPTS {
            let done = {
                let mut queue = self.committer.queue();
                let after = queue.planned().map(|(_, h)| *h);
                let (writes, next, rev) =
                    self.mirror
                        .plan_audit_mirrored(after.as_ref(), now, actor, action, detail);
                if queue.stale(rev) {
                    continue;
                }
                queue.join(&writes.ops, next, None, fence.clone(), rev)?
            };
            match self.committer.settle(done).await? {
                Settled::Committed => return Ok(()),
                settled => self.not_committed(settled, fence.is_some()).await?,
            }
        }
        Err(Error::Unavailable(format!(
            "other replicas kept changing the store; the {action} record was not written, retry"
        )))
    }
    fn hotfix(&self, incident_id: &str) -> Result<Option<Hotfix>> {
        self.mirror.hotfix(incident_id)
    }
    fn mitigation(&self, incident_id: &str) -> Result<Option<Mitigation>> {
        self.mirror.mitigation(incident_id)
    }
    fn hotfixes(&self) -> Result<Vec<Hotfix>> {
        self.mirror.hotfixes().collect()
    }
    fn mitigations(&self) -> Result<Vec<Mitigation>> {
        self.mirror.mitigations().collect()
    }
    fn timeline(&self, incident_id: &str) -> Result<Vec<StoredEvent>> {
        self.mirror.timeline(incident_id)
    }
    fn gate_view(&self, since: Time) -> Result<GateView> {
        self.mirror.gate_view(since)
    }
    fn author_quarter_count(&self, quarter: &str, author: &str) -> Result<u32> {
        self.mirror.author_quarter_count(quarter, author)
    }
    fn quarter_counts(&self, quarter: &str) -> Result<Vec<(String, u32)>> {
        self.mirror.quarter_counts(quarter)
    }
    fn overdue(&self, now: Time) -> Result<Vec<(String, String, Time)>> {
        self.mirror.overdue(now)
    }
    fn overdue_unreported(&self, now: Time) -> Result<Vec<(String, String)>> {
        self.mirror.overdue_unreported(now)
    }
    fn exercises(&self, n: usize) -> Result<Vec<Exercise>> {
        self.mirror.exercises(n)
    }
    fn lane_exercised_since(&self, since: Time) -> Result<bool> {
        self.mirror.lane_exercised_since(since)
    }
    fn postmortem_counts(&self) -> Result<(u32, u32)> {
        self.mirror.postmortem_counts()
    }
    fn durable_seq(&self) -> u64 {
        self.mirror.durable_seq()
    }
    fn subscribe(&self) -> watch::Receiver<u64> {
        self.mirror.subscribe()
    }
    fn events_after(&self, from: u64, limit: usize) -> Result<Vec<StoredEvent>> {
        self.mirror.events_after(from, limit)
    }
    fn cursor(&self, name: &str) -> Result<u64> {
        self.mirror.cursor(name)
    }
    fn set_cursor(&self, name: &str, seq: u64) -> Result<()> {
        // In the mirror now; in etcd by the cursor writer.
        self.mirror.set_cursor(name, seq)?;
        let _ = self.cursors.send((crate::store::keys::cursor(name), seq));
        Ok(())
    }
    fn intents(&self, kind: IntentKind) -> Result<Vec<(String, Vec<u8>)>> {
        self.mirror.intents(kind)
    }
    fn audit_after(&self, from: u64, limit: usize) -> Result<Vec<AuditRecord>> {
        self.mirror.audit_after(from, limit)
    }
    fn audit_of(&self, incident_id: &str, limit: usize) -> Result<Vec<AuditRecord>> {
        self.mirror.audit_of(incident_id, limit)
    }
    fn audit_size(&self) -> u64 {
        self.mirror.audit_size()
    }
    fn audit_hash(&self, seq: u64) -> Result<Option<String>> {
        self.mirror.audit_hash(seq)
    }
    fn verify_audit(&self) -> chain::Report {
        self.mirror.verify_audit()
    }
    fn verify_checkpoints(
        &self,
        key: Option<&hotfix_api::audit::VerifierKey>,
    ) -> Result<Option<(u64, String)>> {
        self.mirror.verify_checkpoints(key)
    }
    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>> {
        self.mirror.latest_checkpoint()
    }
}

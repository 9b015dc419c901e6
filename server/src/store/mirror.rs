//! A `Store` as the etcd engine's local mirror: an in-memory copy of the
//! keyspace under the engine's prefix, with the same trees and keys as the
//! sled engine, fed only by etcd (a range read, then etcd's watch), so that
//! every read and every decision is the sled engine's own code.
//!
//! The mirror is never written by a decision: [`Store::plan_mirrored`]
//! builds a change against it (under the writes of the changes planned
//! before it, in the etcd engine's group commit) and the etcd engine
//! commits the group as one transaction; the change reaches the mirror when etcd's watch
//! delivers it ([`Store::apply_mirrored`]). Nothing here is durable, and
//! nothing needs to be: etcd is the store, the mirror is rebuilt from it at
//! every start.

use super::change::Planned;
use super::*;

/// The counters a mirror holds, as etcd's head key records them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MirrorHead {
    pub next_event: u64,
    pub next_audit: u64,
    pub audit_head: chain::Hash,
    /// The revision at which etcd wrote the head.
    pub rev: i64,
}

impl Store {
    /// An empty mirror (in memory; dropped with the store).
    pub(super) fn mirror() -> Result<Store> {
        let db = sled::Config::new().temporary(true).open()?;
        let flusher = flusher::Flusher::start_with(db.clone(), Box::new(|| Ok(())));
        Store::over(db, flusher, Default::default())
    }

    /// The counters a plan starts from: `after` (those after the changes
    /// planned before it and not yet in the mirror), or the mirror's own.
    fn counters_from(c: &Counters, after: Option<&MirrorHead>) -> Counters {
        match after {
            Some(h) => Counters {
                next_event: h.next_event,
                next_audit: h.next_audit,
                audit_head: h.audit_head,
                tickets: 0,
                head_rev: c.head_rev,
            },
            None => Counters {
                next_event: c.next_event,
                next_audit: c.next_audit,
                audit_head: c.audit_head,
                tickets: 0,
                head_rev: c.head_rev,
            },
        }
    }

    /// Plans a change against the mirror as it is now, under `over` (the
    /// etcd engine's group commit: the writes of the changes planned before
    /// it and not yet in the mirror, and the counters after them): the
    /// change, and the revision of the head the mirror holds.
    pub(super) fn plan_mirrored(
        &self,
        over: Option<(&view::Overlay, &MirrorHead)>,
        req: &Request<'_>,
        decide: impl FnOnce(&Snapshot) -> Result<Commit>,
    ) -> Result<(Planned, i64)> {
        let c = self.writer.lock().expect("writer lock");
        let counters = Self::counters_from(&c, over.map(|(_, h)| h));
        let planned = self.plan(&counters, over.map(|(o, _)| o), req, decide)?;
        Ok((planned, c.head_rev))
    }

    /// Plans an audit record of its own (a backup) after the counters
    /// `after` (see [`Store::plan_mirrored`]): its writes, the counters
    /// after it, and the revision of the head the mirror holds.
    pub(super) fn plan_audit_mirrored(
        &self,
        after: Option<&MirrorHead>,
        now: Time,
        actor: &str,
        action: &str,
        detail: &str,
    ) -> (redo::Writes, MirrorHead, i64) {
        let c = self.writer.lock().expect("writer lock");
        let counters = Self::counters_from(&c, after);
        let (rec, audit_head) = super::audit::own_record(&counters, now, actor, action, detail);
        let mut writes = redo::Writes::default();
        writes.put(redo::TreeId::Audit, keys::seq(rec.seq), encode(&rec));
        let next = MirrorHead {
            next_event: counters.next_event,
            next_audit: counters.next_audit + 1,
            audit_head,
            rev: c.head_rev,
        };
        (writes, next, c.head_rev)
    }

    /// Applies writes etcd committed (one watch response, or a range read),
    /// and the head they carry, under the writer lock: a decision sees a
    /// revision whole or not at all. Returns the durable end of the log.
    pub(super) fn apply_mirrored(&self, ops: &[redo::Op], head: Option<MirrorHead>) -> Result<u64> {
        let mut c = self.writer.lock().expect("writer lock");
        self.apply(&redo::Writes { ops: ops.to_vec() })?;
        if let Some(h) = head
            && h.rev >= c.head_rev
        {
            c.next_event = h.next_event;
            c.next_audit = h.next_audit;
            c.audit_head = h.audit_head;
            c.head_rev = h.rev;
        }
        let durable = c.next_event - 1;
        self.durable.send_if_modified(|d| {
            let moved = durable > *d;
            *d = durable.max(*d);
            moved
        });
        Ok(durable)
    }

    /// The audit trail's size and chain head as the mirrored head counts
    /// them.
    pub(super) fn audit_position(&self) -> (u64, chain::Hash) {
        let c = self.writer.lock().expect("writer lock");
        (c.next_audit - 1, c.audit_head)
    }

    /// The revision of the head the mirror holds (0: none).
    pub(super) fn mirrored_head_rev(&self) -> i64 {
        self.writer.lock().expect("writer lock").head_rev
    }

    /// Every key the mirror holds, by tree (to find those etcd no longer
    /// has, after etcd compacted the history a watch needed).
    pub(super) fn mirrored_keys(&self) -> Result<Vec<(redo::TreeId, Vec<u8>)>> {
        use redo::TreeId::*;
        let mut out = Vec::new();
        for id in [Records, Events, Audit, Index, Requests, Meta] {
            for k in self.tree(id).iter().keys() {
                out.push((id, k?.to_vec()));
            }
        }
        Ok(out)
    }

    /// A consistent backup of the mirror as it is (see [`backup`]).
    pub(super) fn backup_mirrored(&self, actor: &str, now: Time) -> Result<Vec<u8>> {
        let c = self.writer.lock().expect("writer lock");
        let header = backup::Header {
            format: backup::FORMAT.into(),
            version: backup::VERSION,
            taken_by: actor.to_string(),
            taken_at: now,
            mark: watermark::Mark {
                audit_seq: c.next_audit - 1,
                audit_head: hex::encode(c.audit_head),
                event_seq: c.next_event - 1,
            },
        };
        backup::write(&self.db, &header)
    }
}

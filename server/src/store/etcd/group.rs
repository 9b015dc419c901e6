//! The etcd engine's group commit: the bookkeeping, no I/O.
//!
//! Every change moves the one head key, so a replica's changes are one
//! after another. Sent one transaction each, a replica answers one change
//! per round trip to a quorum. Instead, changes that arrive while a
//! transaction is in flight are **planned one after another** on the
//! mirror under an [`Overlay`] of the writes planned before them (so each
//! decides as if those had landed, exactly as on sled), and **committed
//! together** as one transaction per [`Group`], guarded once by the head's
//! revision. Groups are sent one at a time, oldest first.
//!
//! - A group's writes leave the overlay only once the mirror holds them.
//! - A group that loses its compare (another replica committed first), or
//!   whose transaction etcd did not answer, takes every group planned
//!   after it with it: their changes were decided on it, so they decide
//!   again ([`Settled::Lost`]). No group is committed on a base it was not
//!   planned on.
//! - A group stays within etcd's limits: at most [`MAX_OPS`] writes (one
//!   per key: a key written twice in a group is written once, with its
//!   last value) and [`MAX_BYTES`]; a change that does not fit joins the
//!   next group, and one that could never fit is refused.

use std::collections::VecDeque;

use tokio::sync::watch;

use super::engine::{MAX_BYTES, MAX_OPS};
use crate::error::{Error, Result};
use crate::store::mirror::MirrorHead;
use crate::store::redo::Op;
use crate::store::view::Overlay;
use crate::term::Fence;

/// How a group ended, as each of its changes is told.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Settled {
    /// Committed by etcd and held by the mirror.
    Committed,
    /// Not committed: another change came first (the head is now at this
    /// revision, 0: unknown); decide again once the mirror holds it.
    Lost(i64),
    /// Not committed: the fencing compare failed (this replica's term
    /// ended); the head is at this revision.
    Fenced(i64),
    /// etcd did not answer (it may or may not have committed), or the
    /// mirror did not receive it in time: UNAVAILABLE, with why.
    Failed(String),
}

/// One transaction's worth of changes.
pub(super) struct Group {
    /// Every write of its changes, one per key.
    writes: Overlay,
    bytes: usize,
    /// The request records its changes create (each compared absent).
    request_keys: Vec<Vec<u8>>,
    fence: Option<Fence>,
    /// How many changes joined it.
    changes: usize,
    /// The counters after its last change.
    head: MirrorHead,
    /// The head revision it was planned on: known once every group before
    /// it left the queue.
    base: Option<i64>,
    /// Being sent: no change joins it any more.
    sealed: bool,
    done: watch::Sender<Option<Settled>>,
}

/// A group as sent: one transaction.
pub(super) struct Sending {
    pub ops: Vec<Op>,
    pub head: MirrorHead,
    pub guard: i64,
    pub request_keys: Vec<Vec<u8>>,
    pub fence: Option<Fence>,
    /// How many changes it commits.
    pub changes: usize,
}

/// How a sent group's transaction went.
pub(super) enum Sent {
    /// Committed at this revision, and the mirror holds it.
    Committed(i64),
    /// Committed at this revision, but the mirror did not receive it in
    /// time (why).
    Unmirrored(i64, String),
    Lost(i64),
    Fenced(i64),
    /// No answer from etcd (why).
    Failed(String),
}

/// The groups planned and not yet in the mirror, oldest first; the front
/// one may be in flight.
#[derive(Default)]
pub(super) struct Queue {
    groups: VecDeque<Group>,
    /// Every queued group's writes, newest over oldest.
    overlay: Overlay,
}

fn size(ops: &[Op]) -> usize {
    ops.iter()
        .map(|o| o.key.len() + o.value.as_ref().map_or(0, Vec::len) + 16)
        .sum()
}

impl Queue {
    /// What a change plans under: the queued writes and the counters after
    /// them (None: nothing queued, the mirror alone).
    pub(super) fn planned(&self) -> Option<(&Overlay, &MirrorHead)> {
        self.groups.back().map(|g| (&self.overlay, &g.head))
    }

    /// Whether a change planned with the mirror's head at `mirror_rev` is
    /// stale: the oldest unsent group was planned on another head (another
    /// replica committed since), so nothing queued can commit. Every queued
    /// change is then told to decide again, and so is this one.
    pub(super) fn stale(&mut self, mirror_rev: i64) -> bool {
        match self.groups.front() {
            Some(front) if !front.sealed && front.base != Some(mirror_rev) => {
                self.clear(Settled::Lost(mirror_rev));
                true
            }
            _ => false,
        }
    }

    /// Adds one planned change (`ops`, the counters after it `head`, its
    /// request record's key, its fence), planned with the mirror's head at
    /// `mirror_rev`; returns where its group's end is told.
    pub(super) fn join(
        &mut self,
        ops: &[Op],
        head: MirrorHead,
        request_key: Option<Vec<u8>>,
        fence: Option<Fence>,
        mirror_rev: i64,
    ) -> Result<watch::Receiver<Option<Settled>>> {
        let bytes = size(ops);
        let alone = Overlay::default().new_keys(ops) + 1;
        if alone > MAX_OPS || bytes > MAX_BYTES {
            return Err(Error::TooLarge(format!(
                "this change needs {alone} writes and {bytes} bytes; one etcd transaction \
                 carries at most {MAX_OPS} writes and {MAX_BYTES} bytes here, so nothing was \
                 written"
            )));
        }
        let fits = self.groups.back().is_some_and(|g| {
            !g.sealed
                && (g.fence.is_none() || fence.is_none() || g.fence == fence)
                && g.writes.len() + g.writes.new_keys(ops) < MAX_OPS
                && g.bytes + bytes <= MAX_BYTES
        });
        if !fits {
            let base = self.groups.is_empty().then_some(mirror_rev);
            self.groups.push_back(Group {
                writes: Overlay::default(),
                bytes: 0,
                request_keys: Vec::new(),
                fence: None,
                changes: 0,
                head,
                base,
                sealed: false,
                done: watch::channel(None).0,
            });
        }
        let g = self.groups.back_mut().expect("a group to join");
        g.writes.add(ops);
        g.bytes += bytes;
        g.changes += 1;
        g.request_keys.extend(request_key);
        g.fence = g.fence.take().or(fence);
        g.head = head;
        self.overlay.add(ops);
        Ok(g.done.subscribe())
    }

    /// Where the newest queued group's end is told (a replayed answer
    /// found under the overlay waits for it), if any is queued.
    pub(super) fn newest(&self) -> Option<watch::Receiver<Option<Settled>>> {
        self.groups.back().map(|g| g.done.subscribe())
    }

    /// Seals the oldest group for sending, if one waits. Its guard is the
    /// head it was planned on.
    pub(super) fn seal_front(&mut self) -> Option<Sending> {
        let g = self.groups.front_mut()?;
        if g.sealed {
            return None;
        }
        g.sealed = true;
        Some(Sending {
            ops: g.writes.ops().collect(),
            head: g.head,
            guard: g.base.expect("the oldest group knows its base"),
            request_keys: g.request_keys.clone(),
            fence: g.fence.clone(),
            changes: g.changes,
        })
    }

    /// Records how the sealed front group's transaction went, and tells
    /// its changes (and, if it did not commit, every later one).
    pub(super) fn settle_front(&mut self, sent: Sent) {
        let Some(front) = self.groups.pop_front() else {
            return;
        };
        debug_assert!(front.sealed, "only a sent group is settled");
        let (told, later) = match sent {
            Sent::Committed(rev) => {
                front.done.send_replace(Some(Settled::Committed));
                if let Some(next) = self.groups.front_mut() {
                    next.base = Some(rev);
                }
                self.overlay = Overlay::default();
                for g in &self.groups {
                    self.overlay.add(&g.writes.ops().collect::<Vec<_>>());
                }
                return;
            }
            // Committed, but not in the mirror: what was planned on it
            // cannot be read back here yet, so it decides again.
            Sent::Unmirrored(rev, why) => (Settled::Failed(why), Settled::Lost(rev)),
            Sent::Lost(rev) => (Settled::Lost(rev), Settled::Lost(rev)),
            Sent::Fenced(rev) => (Settled::Fenced(rev), Settled::Lost(rev)),
            Sent::Failed(why) => (Settled::Failed(why), Settled::Lost(0)),
        };
        front.done.send_replace(Some(told));
        self.clear(later);
    }

    fn clear(&mut self, how: Settled) {
        for g in self.groups.drain(..) {
            g.done.send_replace(Some(how.clone()));
        }
        self.overlay = Overlay::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::redo::TreeId;

    fn put(key: &str) -> Op {
        Op {
            tree: TreeId::Index,
            key: key.as_bytes().to_vec(),
            value: Some(b"v".to_vec()),
        }
    }

    fn head(next_event: u64) -> MirrorHead {
        MirrorHead {
            next_event,
            next_audit: next_event,
            audit_head: [0; 32],
            rev: 0,
        }
    }

    fn told(rx: &watch::Receiver<Option<Settled>>) -> Option<Settled> {
        rx.borrow().clone()
    }

    #[test]
    fn changes_queue_behind_a_group_in_flight_and_commit_in_order() {
        let mut q = Queue::default();
        let a = q.join(&[put("a")], head(2), None, None, 10).unwrap();
        let sending = q.seal_front().unwrap();
        assert_eq!(sending.guard, 10);
        // Arrives while the first is in flight: a new group, planned over
        // the first one's writes and counters.
        assert!(!q.stale(10));
        let b = q.join(&[put("b")], head(3), None, None, 10).unwrap();
        let c = q
            .join(&[put("b"), put("c")], head(4), None, None, 10)
            .unwrap();
        assert_eq!(q.planned().unwrap().1.next_event, 4);
        assert!(q.seal_front().is_none(), "one group in flight at a time");
        q.settle_front(Sent::Committed(11));
        assert_eq!(told(&a), Some(Settled::Committed));
        assert_eq!(told(&b), None);
        let second = q.seal_front().unwrap();
        assert_eq!(second.guard, 11, "planned on the first group's commit");
        // b written twice in the group: once, with its last value.
        let keys: Vec<_> = second.ops.iter().map(|o| o.key.clone()).collect();
        assert_eq!(keys, vec![b"b".to_vec(), b"c".to_vec()]);
        assert_eq!(second.head.next_event, 4);
        q.settle_front(Sent::Committed(12));
        assert_eq!(told(&b), Some(Settled::Committed));
        assert_eq!(told(&c), Some(Settled::Committed));
        assert!(q.planned().is_none());
    }

    #[test]
    fn a_lost_group_takes_every_later_one_with_it() {
        let mut q = Queue::default();
        let a = q.join(&[put("a")], head(2), None, None, 10).unwrap();
        q.seal_front().unwrap();
        let b = q.join(&[put("b")], head(3), None, None, 10).unwrap();
        q.settle_front(Sent::Lost(15));
        assert_eq!(told(&a), Some(Settled::Lost(15)));
        assert_eq!(told(&b), Some(Settled::Lost(15)));
        assert!(q.planned().is_none(), "nothing planned on it is left");

        let a = q.join(&[put("a")], head(2), None, None, 15).unwrap();
        q.seal_front().unwrap();
        let b = q.join(&[put("b")], head(3), None, None, 15).unwrap();
        q.settle_front(Sent::Failed("no answer".into()));
        assert_eq!(told(&a), Some(Settled::Failed("no answer".into())));
        assert_eq!(told(&b), Some(Settled::Lost(0)));

        let a = q.join(&[put("a")], head(2), None, None, 15).unwrap();
        q.seal_front().unwrap();
        let b = q.join(&[put("b")], head(3), None, None, 15).unwrap();
        q.settle_front(Sent::Unmirrored(16, "slow watch".into()));
        assert_eq!(told(&a), Some(Settled::Failed("slow watch".into())));
        assert_eq!(told(&b), Some(Settled::Lost(16)));
    }

    #[test]
    fn a_group_planned_on_a_head_that_moved_is_stale() {
        let mut q = Queue::default();
        let a = q.join(&[put("a")], head(2), None, None, 10).unwrap();
        // Another replica committed: the mirror's head is at 12 now.
        assert!(q.stale(12));
        assert_eq!(told(&a), Some(Settled::Lost(12)));
        assert!(q.planned().is_none());
        // A group in flight is not stale by the mirror: its compare tells.
        q.join(&[put("a")], head(2), None, None, 12).unwrap();
        q.seal_front().unwrap();
        assert!(!q.stale(13));
    }

    #[test]
    fn groups_stay_within_the_transaction_limits() {
        let mut q = Queue::default();
        let many: Vec<Op> = (0..MAX_OPS).map(|i| put(&format!("k{i}"))).collect();
        let e = q.join(&many, head(2), None, None, 1).unwrap_err();
        assert!(e.to_string().contains("at most 64 writes"), "{e}");
        assert!(q.planned().is_none(), "a refused change queues nothing");
        let half: Vec<Op> = (0..40).map(|i| put(&format!("a{i}"))).collect();
        let other: Vec<Op> = (0..40).map(|i| put(&format!("b{i}"))).collect();
        q.join(&half, head(2), None, None, 1).unwrap();
        q.join(&other, head(3), None, None, 1).unwrap();
        let first = q.seal_front().unwrap();
        assert_eq!(first.ops.len(), 40, "the second did not fit beside it");
        q.settle_front(Sent::Committed(2));
        assert_eq!(q.seal_front().unwrap().ops.len(), 40);
    }

    #[test]
    fn changes_of_two_terms_never_share_a_transaction() {
        let mut q = Queue::default();
        let f = |rev| Fence {
            key: b"election/x".to_vec(),
            create_rev: rev,
        };
        q.join(&[put("a")], head(2), None, Some(f(5)), 1).unwrap();
        q.join(&[put("b")], head(3), None, None, 1).unwrap();
        q.join(&[put("c")], head(4), None, Some(f(9)), 1).unwrap();
        let first = q.seal_front().unwrap();
        assert_eq!(first.fence, Some(f(5)));
        assert_eq!(first.ops.len(), 2);
        q.settle_front(Sent::Committed(2));
        assert_eq!(q.seal_front().unwrap().fence, Some(f(9)));
    }
}

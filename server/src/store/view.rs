//! What a decision reads: the trees as they are, or (the etcd engine's
//! group commit) the trees under an [`Overlay`] of the writes of changes
//! planned before it and not committed yet, so that a change is decided
//! as if those had landed.
//!
//! Every read a decision makes (`Reads`, the request record, the
//! postmortem counts) goes through [`View`], on both engines: one
//! definition of each read, with or without an overlay.

use std::collections::BTreeMap;

use super::redo::{Op, TreeId};
use super::*;

/// Writes not yet in the trees, by tree and key: the newest write of a key
/// wins (a put's value, or a delete).
#[derive(Default)]
pub(super) struct Overlay {
    writes: BTreeMap<(u8, Vec<u8>), Option<Vec<u8>>>,
}

impl Overlay {
    /// Lays `ops` over what the overlay holds, in order.
    pub(super) fn add(&mut self, ops: &[Op]) {
        for op in ops {
            self.writes
                .insert((op.tree as u8, op.key.clone()), op.value.clone());
        }
    }

    /// How many keys it writes.
    pub(super) fn len(&self) -> usize {
        self.writes.len()
    }

    /// Whether `ops` would add any key it does not write yet, and how many.
    pub(super) fn new_keys(&self, ops: &[Op]) -> usize {
        let mut seen = std::collections::HashSet::new();
        ops.iter()
            .filter(|op| {
                !self.writes.contains_key(&(op.tree as u8, op.key.clone()))
                    && seen.insert((op.tree as u8, op.key.as_slice()))
            })
            .count()
    }

    /// Its writes, one per key, in key order.
    pub(super) fn ops(&self) -> impl Iterator<Item = Op> + '_ {
        self.writes.iter().map(|((tree, key), value)| Op {
            tree: tree_of(*tree),
            key: key.clone(),
            value: value.clone(),
        })
    }

    fn get(&self, tree: TreeId, key: &[u8]) -> Option<Option<&[u8]>> {
        self.writes
            .get(&(tree as u8, key.to_vec()))
            .map(|v| v.as_deref())
    }

    /// Its writes to `tree` with keys in `[from, to)`.
    fn range<'a>(
        &'a self,
        tree: TreeId,
        from: &[u8],
        to: &[u8],
    ) -> impl DoubleEndedIterator<Item = (&'a [u8], Option<&'a [u8]>)> + 'a {
        let t = tree as u8;
        self.writes
            .range((t, from.to_vec())..(t, to.to_vec()))
            .map(|((_, k), v)| (k.as_slice(), v.as_deref()))
    }
}

fn tree_of(b: u8) -> TreeId {
    use TreeId::*;
    [Records, Events, Audit, Index, Requests, Meta]
        .into_iter()
        .find(|t| *t as u8 == b)
        .expect("an overlay holds only the trees' own ids")
}

/// The first key after every key that starts with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return end;
        }
    }
    vec![u8::MAX; prefix.len() + 1]
}

/// The trees, under an overlay or not.
pub(super) struct View<'a> {
    pub(super) store: &'a Store,
    pub(super) over: Option<&'a Overlay>,
}

impl View<'_> {
    fn get(&self, tree: TreeId, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(pending) = self.over.and_then(|o| o.get(tree, key)) {
            return Ok(pending.map(<[u8]>::to_vec));
        }
        Ok(self.store.tree(tree).get(key)?.map(|v| v.to_vec()))
    }

    /// Calls `f` with every key of `tree` in `[from, to)` and its value, in
    /// no particular order.
    fn visit(
        &self,
        tree: TreeId,
        from: &[u8],
        to: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> Result<()>,
    ) -> Result<()> {
        for r in self.store.tree(tree).range(from..to) {
            let (k, v) = r?;
            if self.over.and_then(|o| o.get(tree, &k)).is_none() {
                f(&k, &v)?;
            }
        }
        if let Some(o) = self.over {
            for (k, v) in o.range(tree, from, to) {
                if let Some(v) = v {
                    f(k, v)?;
                }
            }
        }
        Ok(())
    }

    /// The last key of `tree` that starts with `prefix`, and its value.
    fn last(&self, tree: TreeId, prefix: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let end = prefix_end(prefix);
        let mut stored = None;
        for r in self.store.tree(tree).range(prefix..end.as_slice()).rev() {
            let (k, v) = r?;
            match self.over.and_then(|o| o.get(tree, &k)) {
                None => {
                    stored = Some((k.to_vec(), v.to_vec()));
                    break;
                }
                // Written since: the overlay's write counts instead.
                Some(_) => continue,
            }
        }
        let pending = self.over.and_then(|o| {
            o.range(tree, prefix, &end)
                .rev()
                .find_map(|(k, v)| v.map(|v| (k.to_vec(), v.to_vec())))
        });
        Ok(match (stored, pending) {
            (Some(s), Some(p)) => Some(if p.0 > s.0 { p } else { s }),
            (s, p) => s.or(p),
        })
    }

    pub(super) fn hotfix(&self, incident_id: &str) -> Result<Option<Hotfix>> {
        self.get(TreeId::Records, &keys::hotfix(incident_id))?
            .map(|b| decode("hotfix", &b))
            .transpose()
    }

    pub(super) fn mitigation(&self, incident_id: &str) -> Result<Option<Mitigation>> {
        self.get(TreeId::Records, &keys::mitigation(incident_id))?
            .map(|b| decode("mitigation", &b))
            .transpose()
    }

    /// Non-drill declarations in `[since, now]` and the latest team review.
    pub(super) fn gate_view(&self, since: Time) -> Result<GateView> {
        let mut view = GateView::default();
        self.visit(
            TreeId::Index,
            &keys::declared_from(since),
            &keys::declared_end(),
            |_, v| {
                view.count_in_window += 1;
                let seq = keys::u64_of(v);
                view.latest_in_window_seq =
                    Some(view.latest_in_window_seq.map_or(seq, |s| s.max(seq)));
                Ok(())
            },
        )?;
        if let Some((k, v)) = self.last(TreeId::Index, keys::REVIEW)? {
            view.last_review = Some(decode("team review", &v)?);
            view.last_review_seq = Some(keys::u64_of(&k[k.len() - 8..]));
        }
        Ok(view)
    }

    /// Hotfixes `author` declared in `quarter` (drills excluded).
    pub(super) fn author_quarter_count(&self, quarter: &str, author: &str) -> Result<u32> {
        let prefix = keys::quarter_author_prefix(quarter, author);
        let mut n = 0u32;
        self.visit(TreeId::Index, &prefix, &prefix_end(&prefix), |_, _| {
            n = n.saturating_add(1);
            Ok(())
        })?;
        Ok(n)
    }

    /// (postmortems, of which "yes, but a rollback would have worked").
    pub(super) fn postmortem_counts(&self) -> Result<(u32, u32)> {
        let get = |k: &[u8]| -> Result<u32> {
            Ok(self
                .get(TreeId::Meta, k)?
                .map_or(0, |v| keys::u64_of(&v) as u32))
        };
        Ok((
            get(keys::META_POSTMORTEMS)?,
            get(keys::META_POSTMORTEMS_YBR)?,
        ))
    }

    /// The stored request record under `key`, if any.
    pub(super) fn request(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get(TreeId::Requests, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(tree: TreeId, key: &[u8], value: Option<&[u8]>) -> Op {
        Op {
            tree,
            key: key.to_vec(),
            value: value.map(<[u8]>::to_vec),
        }
    }

    #[test]
    fn prefix_end_is_the_first_key_after_the_prefix() {
        assert_eq!(prefix_end(b"r/"), b"r0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0xff; 3]);
    }

    #[test]
    fn reads_see_the_overlay_over_the_trees() {
        let store = Store::mirror().unwrap();
        let index = store.tree(TreeId::Index);
        for k in [&b"r/1"[..], b"r/3", b"q/x"] {
            index.insert(k, &b"stored"[..]).unwrap();
        }
        let mut over = Overlay::default();
        over.add(&[
            op(TreeId::Index, b"r/3", None),
            op(TreeId::Index, b"r/2", Some(b"pending")),
            op(TreeId::Index, b"r/4", Some(b"first")),
            op(TreeId::Index, b"r/4", None),
            op(TreeId::Meta, b"r/9", Some(b"other tree")),
        ]);
        let view = View {
            store: &store,
            over: Some(&over),
        };
        let mut seen = Vec::new();
        view.visit(TreeId::Index, b"r/", b"r0", |k, v| {
            seen.push((k.to_vec(), v.to_vec()));
            Ok(())
        })
        .unwrap();
        seen.sort();
        assert_eq!(
            seen,
            vec![
                (b"r/1".to_vec(), b"stored".to_vec()),
                (b"r/2".to_vec(), b"pending".to_vec())
            ]
        );
        // r/4 was put then deleted, r/3 deleted: the last left is r/2.
        assert_eq!(
            view.last(TreeId::Index, b"r/").unwrap(),
            Some((b"r/2".to_vec(), b"pending".to_vec()))
        );
        assert_eq!(view.get(TreeId::Index, b"r/3").unwrap(), None);
        assert_eq!(
            view.get(TreeId::Index, b"q/x").unwrap(),
            Some(b"stored".to_vec())
        );
        assert_eq!(over.len(), 4);
        assert_eq!(
            over.new_keys(&[
                op(TreeId::Index, b"r/2", None),
                op(TreeId::Index, b"r/5", None),
                op(TreeId::Index, b"r/5", Some(b"x"))
            ]),
            1
        );
        // Without the overlay: the trees alone.
        let bare = View {
            store: &store,
            over: None,
        };
        assert_eq!(
            bare.last(TreeId::Index, b"r/").unwrap(),
            Some((b"r/3".to_vec(), b"stored".to_vec()))
        );
    }
}

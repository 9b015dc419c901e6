//! How the store's trees lie in etcd's one keyspace, under the engine's
//! prefix (default `/hotfixd/`):
//!
//! - `PREFIX` + tree letter + `/` + the sled engine's own key, for the trees
//!   `r`ecords, `e`vents, `a`udit, `i`ndex, re`q`uests and `m`eta (see
//!   `store::keys`): the same keys, so that the mirror is the sled code's;
//! - `PREFIX` + `head`: the counters (next event, next audit record, the
//!   audit chain's head) that every change moves, and that every change's
//!   transaction compares: one change after another, never two on one head;
//! - `PREFIX` + `leader/`: the election (etcd's election API), whose key's
//!   creation revision is the fencing token.

use serde::{Deserialize, Serialize};

use super::super::chain;
use super::super::mirror::MirrorHead;
use super::super::redo::TreeId;
use crate::error::{Error, Result};

/// The keys of one hotfixd store in etcd.
#[derive(Debug, Clone)]
pub struct Keyspace {
    prefix: Vec<u8>,
}

const TREES: [(TreeId, u8); 6] = [
    (TreeId::Records, b'r'),
    (TreeId::Events, b'e'),
    (TreeId::Audit, b'a'),
    (TreeId::Index, b'i'),
    (TreeId::Requests, b'q'),
    (TreeId::Meta, b'm'),
];

/// What a key under the prefix is.
#[derive(Debug, PartialEq, Eq)]
pub enum Key<'a> {
    Tree(TreeId, &'a [u8]),
    Head,
    /// The election's, or anything else hotfixd does not mirror.
    Other,
}

impl Keyspace {
    /// The keyspace under `prefix`, which must end in `/`.
    pub fn new(prefix: &str) -> Result<Keyspace> {
        if !prefix.starts_with('/') || !prefix.ends_with('/') || prefix.len() < 2 {
            return Err(Error::Storage(format!(
                "--etcd-prefix '{prefix}' must start and end with '/' (e.g. /hotfixd/)"
            )));
        }
        Ok(Keyspace {
            prefix: prefix.as_bytes().to_vec(),
        })
    }

    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// The end of the prefix's range (etcd's `range_end`).
    pub fn end(&self) -> Vec<u8> {
        range_end(&self.prefix)
    }

    pub fn key(&self, tree: TreeId, key: &[u8]) -> Vec<u8> {
        let letter = TREES.iter().find(|(t, _)| *t == tree).map(|(_, l)| *l);
        let mut k = self.prefix.clone();
        k.push(letter.expect("every tree has a letter"));
        k.push(b'/');
        k.extend_from_slice(key);
        k
    }

    pub fn head(&self) -> Vec<u8> {
        [self.prefix.as_slice(), b"head"].concat()
    }

    /// The election's name (etcd's election API puts each candidate's key
    /// at the name, `/`, its lease).
    pub fn election(&self) -> Vec<u8> {
        [self.prefix.as_slice(), b"leader"].concat()
    }

    pub fn parse<'a>(&self, key: &'a [u8]) -> Key<'a> {
        let Some(rest) = key.strip_prefix(self.prefix.as_slice()) else {
            return Key::Other;
        };
        if rest == b"head" {
            return Key::Head;
        }
        match rest {
            [letter, b'/', tail @ ..] => TREES
                .iter()
                .find(|(_, l)| l == letter)
                .map_or(Key::Other, |(t, _)| Key::Tree(*t, tail)),
            _ => Key::Other,
        }
    }
}

/// The smallest key after every key that starts with `prefix`.
pub fn range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// The head key's value.
#[derive(Serialize, Deserialize)]
struct HeadValue {
    next_event: u64,
    next_audit: u64,
    audit_head: String,
}

pub fn encode_head(h: &MirrorHead) -> Vec<u8> {
    serde_json::to_vec(&HeadValue {
        next_event: h.next_event,
        next_audit: h.next_audit,
        audit_head: hex::encode(h.audit_head),
    })
    .expect("the head serializes")
}

pub fn decode_head(value: &[u8], rev: i64) -> Result<MirrorHead> {
    let corrupt = |why: String| Error::Corrupt(format!("the etcd head key: {why}"));
    let v: HeadValue = serde_json::from_slice(value).map_err(|e| corrupt(e.to_string()))?;
    let audit_head = chain::parse(&v.audit_head).ok_or_else(|| corrupt("bad chain hash".into()))?;
    if v.next_event == 0 || v.next_audit == 0 {
        return Err(corrupt("counters start at 1".into()));
    }
    Ok(MirrorHead {
        next_event: v.next_event,
        next_audit: v.next_audit,
        audit_head,
        rev,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tree_key_parses_back_and_nothing_else_is_a_tree() {
        let ks = Keyspace::new("/hotfixd/").unwrap();
        for (tree, _) in TREES {
            let k = ks.key(tree, b"h/INC-1\x00\xff");
            assert_eq!(ks.parse(&k), Key::Tree(tree, b"h/INC-1\x00\xff"));
        }
        assert_eq!(ks.parse(&ks.head()), Key::Head);
        assert_eq!(
            ks.parse(&[ks.election(), b"abc".to_vec()].concat()),
            Key::Other
        );
        assert_eq!(ks.parse(b"/other/e/x"), Key::Other);
        assert_eq!(ks.parse(b"/hotfixd/z/x"), Key::Other);
        // Another prefix that starts like this one is not this store's.
        assert_eq!(
            Keyspace::new("/hotfixd/").unwrap().parse(b"/hotfixd2/e/x"),
            Key::Other
        );
    }

    #[test]
    fn the_range_end_covers_the_prefix_and_nothing_after() {
        assert_eq!(range_end(b"/hotfixd/"), b"/hotfixd0");
        assert_eq!(range_end(b"a\xff"), b"b");
        assert_eq!(range_end(b"\xff\xff"), vec![0]);
    }

    #[test]
    fn a_prefix_must_be_a_directory() {
        for bad in ["hotfixd/", "/hotfixd", "/", ""] {
            assert!(Keyspace::new(bad).is_err(), "{bad}");
        }
    }
}

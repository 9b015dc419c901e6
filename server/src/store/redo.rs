//! One change's writes as a single record: what makes a change atomic
//! without a sled transaction.
//!
//! sled 0.34 seals and writes its IO buffer twice for every transaction or
//! batch (`PageCache::pin_log`), each write handed to its IO thread pool:
//! on a 2-core machine that cost more CPU than everything else a
//! transition does. A single-key insert needs none of that, and sled
//! recovers a prefix of its log after a crash. So a change is committed as:
//!
//! 1. one insert of the whole change (every put and delete, in this
//!    encoding) under `meta/redo`, replacing the previous change's;
//! 2. the puts and deletes themselves, as plain inserts and removes.
//!
//! A crash after 1 and before the end of 2 leaves `meta/redo` holding the
//! change; [`super::Store::open`] applies it again. Applying is idempotent
//! (puts of whole values, deletes), so re-applying a change that did land
//! changes nothing. Every write of the previous change precedes step 1 in
//! the log, so it is whole in any recovered prefix that holds step 1.
//!
//! Encoding: `HFR1`, then per write `tree: u8, op: u8 (0 put, 1 delete),
//! key len: u32 BE, key, [value len: u32 BE, value]`.

use crate::error::{Error, Result};

const MAGIC: &[u8; 4] = b"HFR1";

/// The trees a change writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TreeId {
    Records = 0,
    Events = 1,
    Audit = 2,
    Index = 3,
    Requests = 4,
    Meta = 5,
}

impl TreeId {
    /// The tree a backup names (see `backup::TREES`).
    pub fn named(name: &str) -> Option<TreeId> {
        Some(match name {
            "records" => TreeId::Records,
            "events" => TreeId::Events,
            "audit" => TreeId::Audit,
            "index" => TreeId::Index,
            "requests" => TreeId::Requests,
            "meta" => TreeId::Meta,
            _ => return None,
        })
    }

    fn from_u8(b: u8) -> Option<TreeId> {
        Some(match b {
            0 => TreeId::Records,
            1 => TreeId::Events,
            2 => TreeId::Audit,
            3 => TreeId::Index,
            4 => TreeId::Requests,
            5 => TreeId::Meta,
            _ => return None,
        })
    }
}

/// One write: a put (`Some` value) or a delete (`None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    pub tree: TreeId,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// Every write of one change, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Writes {
    pub ops: Vec<Op>,
}

impl Writes {
    pub fn put(&mut self, tree: TreeId, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(Op {
            tree,
            key: key.into(),
            value: Some(value.into()),
        });
    }

    pub fn delete(&mut self, tree: TreeId, key: impl Into<Vec<u8>>) {
        self.ops.push(Op {
            tree,
            key: key.into(),
            value: None,
        });
    }

    pub fn encode(&self) -> Vec<u8> {
        let size: usize = self
            .ops
            .iter()
            .map(|o| 10 + o.key.len() + o.value.as_ref().map_or(0, Vec::len))
            .sum();
        let mut out = Vec::with_capacity(MAGIC.len() + size);
        out.extend_from_slice(MAGIC);
        for o in &self.ops {
            out.push(o.tree as u8);
            out.push(u8::from(o.value.is_none()));
            put_bytes(&mut out, &o.key);
            if let Some(v) = &o.value {
                put_bytes(&mut out, v);
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Writes> {
        let corrupt = |what: &str| Error::Corrupt(format!("meta/redo: {what}"));
        let mut rest = bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or_else(|| corrupt("not a hotfixd change record"))?;
        let mut ops = Vec::new();
        while let [tree, op, tail @ ..] = rest {
            let tree = TreeId::from_u8(*tree).ok_or_else(|| corrupt("unknown tree"))?;
            let (key, tail) = take_bytes(tail).ok_or_else(|| corrupt("truncated key"))?;
            let (value, tail) = match op {
                0 => {
                    let (v, t) = take_bytes(tail).ok_or_else(|| corrupt("truncated value"))?;
                    (Some(v.to_vec()), t)
                }
                1 => (None, tail),
                _ => return Err(corrupt("unknown operation")),
            };
            ops.push(Op {
                tree,
                key: key.to_vec(),
                value,
            });
            rest = tail;
        }
        if !rest.is_empty() {
            return Err(corrupt("trailing byte"));
        }
        Ok(Writes { ops })
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    let len = u32::try_from(b.len()).expect("a stored key or value under 4 GiB");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(b);
}

fn take_bytes(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = b.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
    (rest.len() >= len).then(|| rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Writes {
        let mut w = Writes::default();
        w.put(TreeId::Events, 7u64.to_be_bytes(), b"{\"seq\":7}".to_vec());
        w.put(TreeId::Index, b"i/INC/x".to_vec(), Vec::new());
        w.delete(TreeId::Index, b"o/old".to_vec());
        w.put(TreeId::Meta, b"postmortems".to_vec(), 3u64.to_be_bytes());
        w
    }

    #[test]
    fn round_trips() {
        let w = sample();
        assert_eq!(Writes::decode(&w.encode()).unwrap(), w);
        assert_eq!(
            Writes::decode(&Writes::default().encode()).unwrap(),
            Writes::default()
        );
    }

    #[test]
    fn every_truncation_and_stray_byte_is_refused() {
        let bytes = sample().encode();
        // Cutting the record anywhere but at a write's end is corrupt; at
        // a write's end it is a shorter, valid record, never a panic.
        for cut in 0..bytes.len() {
            match Writes::decode(&bytes[..cut]) {
                Ok(w) => assert!(w.ops.len() < 4, "cut at {cut}"),
                Err(e) => assert!(e.to_string().contains("meta/redo"), "{e}"),
            }
        }
        let mut bad = bytes.clone();
        bad[4] = 9; // tree
        assert!(Writes::decode(&bad).is_err());
        let mut bad = bytes;
        bad[5] = 2; // operation
        assert!(Writes::decode(&bad).is_err());
    }
}

//! The audit chain. Every audit record carries a hash over its own content
//! and the hash of the record before it, with domain separation as in
//! RFC 6962: a record's chain hash is `SHA-256(0x01 || previous chain hash
//! || leaf hash)`; the first record links to 32 zero bytes. The leaf hash
//! is the canonical encoding of `hotfix_api::audit` (the same bytes for
//! every verifier, in any language) for records sealed with it (`v` = 2),
//! and `SHA-256(0x00 || the record's JSON without its hash)` for records
//! sealed before it. Rewriting, dropping or reordering any record changes
//! every chain hash after it, so a copy of one hash (an export, a signed
//! checkpoint) proves the whole history before it.

use sha2::{Digest, Sha256};

pub use hotfix_api::audit::{GENESIS, Hash, LEAF_VERSION};

use super::AuditRecord;

fn leaf(record: &AuditRecord) -> Hash {
    if record.v == LEAF_VERSION {
        return hotfix_api::audit::leaf(&hotfix_api::audit::Leaf {
            seq: record.seq,
            at_seconds: record.at.timestamp(),
            at_nanos: record.at.timestamp_subsec_nanos(),
            actor: &record.actor,
            incident_id: &record.incident_id,
            action: &record.action,
            outcome: &record.outcome,
            detail: &record.detail,
            event_seq: record.event_seq,
        });
    }
    // Sealed before the canonical encoding: its JSON, as it was then.
    let mut body = record.clone();
    body.hash = String::new();
    let bytes = serde_json::to_vec(&body).expect("audit records serialize");
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(&bytes);
    h.finalize().into()
}

use hotfix_api::audit::link;

/// The chain hash `record` must carry after `prev`.
pub fn expected(record: &AuditRecord, prev: &Hash) -> Hash {
    link(prev, &leaf(record))
}

/// Sets `record.hash` for its place after `prev` (in the canonical leaf
/// encoding); returns it.
pub fn seal(record: &mut AuditRecord, prev: &Hash) -> Hash {
    record.v = LEAF_VERSION;
    let h = expected(record, prev);
    record.hash = hex::encode(h);
    h
}

/// The hash a record carries, if it is 64 hex digits.
pub fn parse(hash: &str) -> Option<Hash> {
    let mut h = GENESIS;
    hex::decode_to_slice(hash, &mut h).ok()?;
    Some(h)
}

/// The result of walking the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Records that matched, from the first.
    pub verified: u64,
    /// Chain hash of the last matching record (hex; zeros when none).
    pub head: String,
    /// The first record that does not match: its sequence number and why.
    pub first_bad: Option<(u64, String)>,
}

/// Walks `records` (in sequence order) from the genesis.
pub fn verify(records: impl Iterator<Item = Result<AuditRecord, String>>) -> Report {
    let mut prev = GENESIS;
    let mut verified = 0;
    let bad = |verified, prev: &Hash, seq, why: String| Report {
        verified,
        head: hex::encode(prev),
        first_bad: Some((seq, why)),
    };
    for (want_seq, r) in (1..).zip(records) {
        let rec = match r {
            Ok(rec) => rec,
            Err(why) => return bad(verified, &prev, want_seq, why),
        };
        if rec.seq != want_seq {
            let why = format!("expected record {want_seq} next, found {}", rec.seq);
            return bad(verified, &prev, want_seq, why);
        }
        let want = expected(&rec, &prev);
        if parse(&rec.hash) != Some(want) {
            let why = format!(
                "hash {} does not match its content and the record before (expected {})",
                if rec.hash.is_empty() {
                    "(none)"
                } else {
                    &rec.hash
                },
                hex::encode(want)
            );
            return bad(verified, &prev, rec.seq, why);
        }
        prev = want;
        verified += 1;
    }
    Report {
        verified,
        head: hex::encode(prev),
        first_bad: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64, detail: &str) -> AuditRecord {
        AuditRecord {
            seq,
            at: chrono::DateTime::UNIX_EPOCH,
            actor: "bob".into(),
            incident_id: "INC-2026-05-20-001".into(),
            action: "fix".into(),
            outcome: "ok".into(),
            detail: detail.into(),
            event_seq: Some(seq),
            hash: String::new(),
            v: LEAF_VERSION,
        }
    }

    fn chain(n: u64) -> Vec<AuditRecord> {
        let mut prev = GENESIS;
        (1..=n)
            .map(|i| {
                let mut r = rec(i, &format!("change {i}"));
                prev = seal(&mut r, &prev);
                r
            })
            .collect()
    }

    fn walk(v: &[AuditRecord]) -> Report {
        verify(v.iter().cloned().map(Ok))
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let c = chain(5);
        let r = walk(&c);
        assert_eq!((r.verified, r.first_bad), (5, None));
        assert_eq!(r.head, c[4].hash);
    }

    #[test]
    fn any_rewrite_names_the_first_bad_record() {
        let mut c = chain(5);
        c[2].detail = "rewritten".into();
        let r = walk(&c);
        assert_eq!(r.verified, 2);
        assert_eq!(r.first_bad.unwrap().0, 3);
        // Re-sealing the rewritten record breaks the next one.
        let mut c = chain(5);
        c[2].detail = "rewritten".into();
        let prev = parse(&c[1].hash).unwrap();
        seal(&mut c[2], &prev);
        assert_eq!(walk(&c).first_bad.unwrap().0, 4);
    }

    #[test]
    fn a_dropped_or_reordered_record_is_found() {
        let mut c = chain(5);
        c.remove(1);
        assert_eq!(walk(&c).first_bad.unwrap().0, 2);
        let mut c = chain(5);
        c.swap(3, 4);
        assert_eq!(walk(&c).first_bad.unwrap().0, 4);
    }

    #[test]
    fn leaves_and_links_are_separated() {
        // A leaf can never pose as a link: the prefixes differ.
        let r = rec(1, "x");
        let l = leaf(&r);
        assert_ne!(link(&GENESIS, &l), l);
        assert_ne!(expected(&r, &GENESIS), leaf(&r));
    }
}

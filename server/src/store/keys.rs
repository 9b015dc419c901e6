//! Key layouts. Numbers and instants are big-endian so that sled's byte
//! order is numeric and chronological order; every index is a prefix.
//!
//! records: `h/INC` hotfix, `m/INC` mitigation
//! index:   `i/INC/<seq>` events of one incident
//!          `d/<ms>INC` non-drill declarations (the rolling window)
//!          `q/<quarter>/<author>/INC` per-author quarterly counts
//!          `o/<due ms>INC/<kind>` outstanding obligations
//!          `x/<ms>INC` exercises ("When this runbook last worked")
//!          `r/<ms><seq>` team reviews
//!          `n/INC/<kind>` overdue obligations already reported
//!          `a/<kind>/INC` external actions sent, outcome not yet recorded
//! meta:    `cursor/<name>` positions of event-log readers
//!          `redo` the latest change, whole (see `redo`)
//!          `postmortems`, `postmortems_yes_but_rollback` counts

use chrono::{DateTime, Utc};

use crate::domain::{ObligationKind, Time};

pub const HOTFIX: &[u8] = b"h/";
pub const MITIGATION: &[u8] = b"m/";
const BY_INCIDENT: &[u8] = b"i/";
pub const DECLARED: &[u8] = b"d/";
const QUARTER: &[u8] = b"q/";
pub const DUE: &[u8] = b"o/";
pub const EXERCISE: &[u8] = b"x/";
pub const REVIEW: &[u8] = b"r/";
const OVERDUE_MARK: &[u8] = b"n/";
/// Signed audit checkpoints by trail size (see `hotfix_api::audit`).
pub const CHECKPOINT: &[u8] = b"k/";
pub const META_POSTMORTEMS: &[u8] = b"postmortems";
pub const META_POSTMORTEMS_YBR: &[u8] = b"postmortems_yes_but_rollback";
/// The latest change, whole (see `redo`).
pub const META_REDO: &[u8] = b"redo";
/// Set once the store keeps a watermark file (see `store::watermark`): from
/// then on a missing file is a refusal, not a first start.
pub const META_WATERMARKED: &[u8] = b"watermarked";

pub fn seq(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

pub fn u64_of(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    let n = b.len().min(8);
    a[..n].copy_from_slice(&b[..n]);
    u64::from_be_bytes(a)
}

fn time(t: Time) -> [u8; 8] {
    // Instants before 1970 do not occur here; clamp rather than wrap.
    u64::try_from(t.timestamp_millis())
        .unwrap_or(0)
        .to_be_bytes()
}

pub fn time_of(b: &[u8]) -> Time {
    let ms = i64::try_from(u64_of(&b[..8])).unwrap_or(i64::MAX);
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

pub fn hotfix(inc: &str) -> Vec<u8> {
    cat(&[HOTFIX, inc.as_bytes()])
}

pub fn mitigation(inc: &str) -> Vec<u8> {
    cat(&[MITIGATION, inc.as_bytes()])
}

pub fn request(actor: &str, request_id: &str) -> Vec<u8> {
    cat(&[actor.as_bytes(), b"\0", request_id.as_bytes()])
}

pub fn by_incident_prefix(inc: &str) -> Vec<u8> {
    cat(&[BY_INCIDENT, inc.as_bytes(), b"/"])
}

pub fn by_incident(inc: &str, s: u64) -> Vec<u8> {
    cat(&[&by_incident_prefix(inc), &seq(s)])
}

pub fn declared(at: Time, inc: &str) -> Vec<u8> {
    cat(&[DECLARED, &time(at), inc.as_bytes()])
}

pub fn declared_from(since: Time) -> Vec<u8> {
    cat(&[DECLARED, &time(since)])
}

pub fn declared_end() -> Vec<u8> {
    cat(&[DECLARED, &[0xff; 9]])
}

pub fn quarter_prefix(q: &str) -> Vec<u8> {
    cat(&[QUARTER, q.as_bytes(), b"/"])
}

pub fn quarter_author_prefix(q: &str, author: &str) -> Vec<u8> {
    cat(&[&quarter_prefix(q), author.as_bytes(), b"/"])
}

pub fn quarter(q: &str, author: &str, inc: &str) -> Vec<u8> {
    cat(&[&quarter_author_prefix(q, author), inc.as_bytes()])
}

/// The author in a `q/` key (handles contain no '/').
pub fn quarter_author_of(key: &[u8], q: &str) -> String {
    let rest = &key[quarter_prefix(q).len()..];
    let end = rest.iter().position(|b| *b == b'/').unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end]).into_owned()
}

pub fn due(at: Time, inc: &str, kind: ObligationKind) -> Vec<u8> {
    cat(&[
        DUE,
        &time(at),
        inc.as_bytes(),
        b"/",
        kind.as_str().as_bytes(),
    ])
}

/// The end (exclusive) of obligations due strictly before `now`.
pub fn due_until(now: Time) -> Vec<u8> {
    cat(&[DUE, &time(now)])
}

/// (incident, kind, due) of a `o/` key.
pub fn due_of(key: &[u8]) -> (String, String, Time) {
    let at = time_of(&key[DUE.len()..]);
    let rest = String::from_utf8_lossy(&key[DUE.len() + 8..]).into_owned();
    let (inc, kind) = rest.rsplit_once('/').unwrap_or((&rest, ""));
    (inc.to_string(), kind.to_string(), at)
}

pub fn exercise(at: Time, inc: &str) -> Vec<u8> {
    cat(&[EXERCISE, &time(at), inc.as_bytes()])
}

pub fn exercise_from(since: Time) -> Vec<u8> {
    cat(&[EXERCISE, &time(since)])
}

pub fn exercise_end() -> Vec<u8> {
    cat(&[EXERCISE, &[0xff; 9]])
}

pub fn review(at: Time, s: u64) -> Vec<u8> {
    cat(&[REVIEW, &time(at), &seq(s)])
}

pub fn checkpoint(size: u64) -> Vec<u8> {
    cat(&[CHECKPOINT, &seq(size)])
}

pub fn overdue_mark(inc: &str, kind: &str) -> Vec<u8> {
    cat(&[OVERDUE_MARK, inc.as_bytes(), b"/", kind.as_bytes()])
}

pub fn cursor(name: &str) -> Vec<u8> {
    cat(&[b"cursor/", name.as_bytes()])
}

pub fn intent_prefix(kind: &str) -> Vec<u8> {
    cat(&[b"a/", kind.as_bytes(), b"/"])
}

pub fn intent(kind: &str, inc: &str) -> Vec<u8> {
    cat(&[&intent_prefix(kind), inc.as_bytes()])
}

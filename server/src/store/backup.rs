//! Backups: every tree of a store, taken under the writer lock (so that no
//! change is half in it), and restored into an empty data directory.
//!
//! The format is JSON lines, so that an operator can look into one: a
//! header (format, version, who took it and when, the position it reaches),
//! one line per entry (`tree`, hex `key`, hex `value`), and a trailer with
//! the number of entries and the SHA-256 of every byte before it. A restore
//! checks the trailer, writes the entries, makes them durable, walks the
//! audit chain and checks that it reaches the header's position, and
//! writes the watermark: the restored store starts like the one backed up.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{AuditRecord, decode, keys, watermark};
use crate::error::{Error, Result};

pub const FORMAT: &str = "hotfixd-backup";
pub const VERSION: u32 = 1;

/// The trees a backup holds (all of them).
pub const TREES: [&str; 6] = ["records", "events", "audit", "index", "requests", "meta"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    pub version: u32,
    pub taken_by: String,
    pub taken_at: crate::domain::Time,
    /// How far the backed-up store reached.
    pub mark: watermark::Mark,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    tree: String,
    key: String,
    value: String,
}

#[derive(Serialize, Deserialize)]
struct Trailer {
    entries: u64,
    sha256: String,
}

/// Writes `header` and every entry of `db`'s trees.
pub fn write(db: &sled::Db, header: &Header) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    line(&mut out, header);
    let mut entries = 0u64;
    for name in TREES {
        let tree = db.open_tree(name)?;
        for r in tree.iter() {
            let (k, v) = r?;
            if name == "meta" && &*k == keys::META_REDO {
                // Landed already (the writer lock is held); a restore must
                // not apply it again.
                continue;
            }
            line(
                &mut out,
                &Entry {
                    tree: name.to_string(),
                    key: hex::encode(&k),
                    value: hex::encode(&v),
                },
            );
            entries += 1;
        }
    }
    let sha256 = hex::encode(Sha256::digest(&out));
    line(&mut out, &Trailer { entries, sha256 });
    Ok(out)
}

fn line<T: Serialize>(out: &mut Vec<u8>, v: &T) {
    serde_json::to_writer(&mut *out, v).expect("backup lines serialize");
    out.push(b'\n');
}

fn bad(why: impl std::fmt::Display) -> Error {
    Error::Damaged(format!("not a usable hotfixd backup: {why}"))
}

/// One stored entry of a backup: (tree, key, value).
pub type Item = (String, Vec<u8>, Vec<u8>);

/// Reads a backup whole: its trailer's checksum and count, its header's
/// format, every entry's tree. Nothing is written anywhere.
pub fn read(backup: &[u8]) -> Result<(Header, Vec<Item>)> {
    let body_end = backup[..backup.len().saturating_sub(1)]
        .iter()
        .rposition(|b| *b == b'\n')
        .map(|i| i + 1)
        .ok_or_else(|| bad("no trailer"))?;
    let trailer: Trailer =
        serde_json::from_slice(&backup[body_end..]).map_err(|e| bad(format!("trailer: {e}")))?;
    if hex::encode(Sha256::digest(&backup[..body_end])) != trailer.sha256 {
        return Err(bad("its checksum does not match (truncated or altered)"));
    }
    let mut lines = backup[..body_end]
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty());
    let header: Header = serde_json::from_slice(lines.next().ok_or_else(|| bad("empty"))?)
        .map_err(|e| bad(format!("header: {e}")))?;
    if header.format != FORMAT || header.version != VERSION {
        return Err(bad(format!(
            "format {} version {} (this hotfixd reads {FORMAT} version {VERSION})",
            header.format, header.version
        )));
    }
    let mut items = Vec::new();
    for (n, l) in lines.enumerate() {
        let e: Entry = serde_json::from_slice(l).map_err(|e| bad(format!("entry {n}: {e}")))?;
        if !TREES.contains(&e.tree.as_str()) {
            return Err(bad(format!("entry {n}: unknown tree {}", e.tree)));
        }
        let key = hex::decode(&e.key).map_err(|e| bad(format!("entry {n}: {e}")))?;
        let value = hex::decode(&e.value).map_err(|e| bad(format!("entry {n}: {e}")))?;
        items.push((e.tree, key, value));
    }
    if items.len() as u64 != trailer.entries {
        return Err(bad(format!(
            "{} entries, the trailer says {}",
            items.len(),
            trailer.entries
        )));
    }
    Ok((header, items))
}

/// Restores `backup` into `dir`, which must be empty or absent. Returns the
/// header of what was restored.
pub fn restore(dir: &Path, backup: &[u8]) -> Result<Header> {
    if dir.exists()
        && std::fs::read_dir(dir)
            .map_err(|e| Error::Storage(format!("{}: {e}", dir.display())))?
            .next()
            .is_some()
    {
        return Err(Error::Damaged(format!(
            "{} is not empty: restore into an empty (or new) data directory",
            dir.display()
        )));
    }
    let (header, items) = read(backup)?;
    super::private_dir(dir)?;
    let db = super::open_sled(sled::Config::new().path(dir))?;
    for (tree, key, value) in items {
        db.open_tree(&tree)?.insert(key, value)?;
    }
    let audit = db.open_tree("audit")?;
    let report = super::chain::verify(audit.iter().map(|r| {
        let (_, v) = r.map_err(|e| format!("reading the audit tree: {e}"))?;
        decode::<AuditRecord>("audit", &v).map_err(|e| e.to_string())
    }));
    if let Some((seq, why)) = &report.first_bad {
        return Err(bad(format!(
            "its audit chain is broken at record {seq}: {why}"
        )));
    }
    if report.verified != header.mark.audit_seq || report.head != header.mark.audit_head {
        return Err(bad(format!(
            "it holds audit records up to {} (head {}) but says {}",
            report.verified, report.head, header.mark
        )));
    }
    let mark = std::sync::Arc::new(std::sync::Mutex::new(Some(header.mark.clone())));
    let mut sync = super::flusher::DiskSync::open(db.clone(), dir, mark)
        .map_err(|e| Error::Storage(format!("{}: {e}", dir.display())))?;
    sync.flush().map_err(Error::NotDurable)?;
    Ok(header)
}

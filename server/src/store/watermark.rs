//! How far the log reached, kept outside sled's files: `DIR/watermark`.
//!
//! sled recovers whatever prefix of its log it finds, and an old copy of its
//! files looks as healthy as a current one; a truncated or restored store
//! would start and serve less than was acknowledged. So after every group
//! commit's sync (`flusher::DiskSync`) and before anything it covers is
//! acknowledged, the position it reached (last audit record and its chain
//! hash, last event) is recorded here. At start-up (`Store::open`) a store
//! that holds less than this, or whose audit chain does not reproduce the
//! recorded head, is refused, unless the operator says it is a restore they
//! mean (`--accept-rollback`, itself an audit record).
//!
//! The file is two 512-byte slots written in turn, each holding a counter,
//! the mark and a SHA-256 of both, like a file system's pair of
//! superblocks: a record is overwritten in place and made durable by one
//! `fdatasync` (the file's size and name never change, so no metadata has
//! to reach the disk). A torn write spoils only the slot being written;
//! its checksum fails and the other slot, the mark before, is read, which
//! claims less, never more, than is on disk. (Write to a temporary file,
//! rename and sync the directory costs a journal commit per group commit:
//! measured at 1.6 ms of the 3 ms a lone commit took on this project's
//! disk; see BENCHMARKS.md.) The file itself is created once, synced, and
//! its directory synced.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The file's name in the data directory.
pub const FILE: &str = "watermark";
const SLOT: usize = 512;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// The last audit record's sequence number ...
    pub audit_seq: u64,
    /// ... and its chain hash (hex; zeros for none).
    pub audit_head: String,
    /// The last event's sequence number.
    pub event_seq: u64,
}

impl std::fmt::Display for Mark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "audit record {} (chain head {}), event {}",
            self.audit_seq,
            &self.audit_head[..self.audit_head.len().min(16)],
            self.event_seq
        )
    }
}

#[derive(Serialize, Deserialize)]
struct Slot {
    counter: u64,
    mark: Mark,
}

fn encode(slot: &Slot) -> [u8; SLOT] {
    let json = serde_json::to_vec(slot).expect("marks serialize");
    let sum = hex::encode(Sha256::digest(&json));
    let mut out = [b' '; SLOT];
    let body = [sum.as_bytes(), b"\n", &json, b"\n"].concat();
    assert!(body.len() <= SLOT, "a mark fits its slot");
    out[..body.len()].copy_from_slice(&body);
    out
}

fn decode(bytes: &[u8]) -> Option<Slot> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (sum, rest) = text.split_once('\n')?;
    let json = rest.trim_end();
    (hex::encode(Sha256::digest(json.as_bytes())) == sum)
        .then(|| serde_json::from_str(json).ok())
        .flatten()
}

/// The newest whole slot of `bytes` (the file's contents).
fn newest(bytes: &[u8]) -> Option<Slot> {
    bytes
        .chunks(SLOT)
        .take(2)
        .filter_map(decode)
        .max_by_key(|s| s.counter)
}

/// The recorded mark, if there is one; a file with no whole slot is an
/// error.
pub fn read(dir: &Path) -> Result<Option<Mark>, String> {
    let path = dir.join(FILE);
    match std::fs::read(&path) {
        // Created, and no mark written yet (a crash in between).
        Ok(bytes) if bytes.iter().all(|b| *b == b' ') => Ok(None),
        Ok(bytes) => newest(&bytes).map(|s| Some(s.mark)).ok_or_else(|| {
            format!(
                "{} is damaged: neither of its records is whole",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("reading {}: {e}", path.display())),
    }
}

/// The open watermark file, for writing one mark after another.
pub struct Watermark {
    file: std::fs::File,
    counter: u64,
}

impl Watermark {
    /// Opens `DIR/watermark`, creating it (synced, directory synced) if it
    /// is not there.
    pub fn open(dir: &Path) -> std::io::Result<Watermark> {
        let path = dir.join(FILE);
        let mut file = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut f = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(&path)?;
                f.write_all(&[b' '; 2 * SLOT])?;
                f.sync_all()?;
                super::flusher::sync_dir(dir)?;
                f
            }
            Err(e) => return Err(e),
        };
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let counter = newest(&bytes).map_or(0, |s| s.counter);
        Ok(Watermark { file, counter })
    }

    /// Records `mark` durably: the older slot overwritten, then
    /// `fdatasync`.
    pub fn write(&mut self, mark: &Mark) -> std::io::Result<()> {
        let counter = self.counter + 1;
        let slot = encode(&Slot {
            counter,
            mark: mark.clone(),
        });
        self.file
            .seek(SeekFrom::Start((counter % 2) * SLOT as u64))?;
        self.file.write_all(&slot)?;
        self.file.sync_data()?;
        self.counter = counter;
        Ok(())
    }
}

/// Records `mark` in `dir` (opening the file for one write).
pub fn write(dir: &Path, mark: &Mark) -> std::io::Result<()> {
    Watermark::open(dir)?.write(mark)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(n: u64) -> Mark {
        Mark {
            audit_seq: n,
            audit_head: "ab".repeat(32),
            event_seq: n + 1,
        }
    }

    #[test]
    fn the_newest_whole_slot_is_the_mark() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        let mut w = Watermark::open(dir.path()).unwrap();
        assert_eq!(
            read(dir.path()).unwrap(),
            None,
            "created, nothing written yet"
        );
        for n in 1..=5 {
            w.write(&mark(n)).unwrap();
            assert_eq!(read(dir.path()).unwrap(), Some(mark(n)));
        }
        assert_eq!(
            std::fs::metadata(dir.path().join(FILE)).unwrap().len(),
            2 * SLOT as u64
        );
        // Reopened, it goes on from the newest.
        let mut w = Watermark::open(dir.path()).unwrap();
        w.write(&mark(6)).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(mark(6)));
    }

    #[test]
    fn a_torn_write_leaves_the_mark_before() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Watermark::open(dir.path()).unwrap();
        w.write(&mark(1)).unwrap();
        w.write(&mark(2)).unwrap();
        // Mark 2 went to slot 0; half of it torn.
        let path = dir.path().join(FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[100..200].fill(0);
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(mark(1)));
        // Both spoiled: an error, not "no mark".
        bytes[SLOT + 100..SLOT + 200].fill(0);
        std::fs::write(&path, &bytes).unwrap();
        assert!(read(dir.path()).unwrap_err().contains("damaged"));
    }
}

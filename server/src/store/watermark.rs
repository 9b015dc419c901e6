//! How far the log reached, kept outside sled's files: `DIR/watermark`.
//!
//! sled recovers whatever prefix of its log it finds, and an old copy of its
//! files looks as healthy as a current one; a truncated or restored store
//! would start and serve less than was acknowledged. So after every group
//! commit's sync (`flusher::DiskSync`) and before anything it covers is
//! acknowledged, the position it reached (last audit record and its chain
//! hash, last event) is written here: to a temporary file, synced, renamed
//! over the old one, and the directory synced, so the file is always one
//! whole record, old or new. At start-up (`Store::open`) a store that holds
//! less than this, or whose audit chain does not reproduce the recorded
//! head, is refused, unless the operator says it is a restore they mean
//! (`--accept-rollback`, itself an audit record).

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The file's name in the data directory.
pub const FILE: &str = "watermark";
const TMP: &str = "watermark.tmp";

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

/// The recorded mark, if there is one; an unreadable file is an error.
pub fn read(dir: &Path) -> Result<Option<Mark>, String> {
    let path = dir.join(FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{} is damaged: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("reading {}: {e}", path.display())),
    }
}

/// Replaces the recorded mark durably (write, sync, rename, sync the
/// directory).
pub fn write(dir: &Path, mark: &Mark) -> std::io::Result<()> {
    let tmp = dir.join(TMP);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(mark).expect("marks serialize"))?;
        f.sync_data()?;
    }
    std::fs::rename(&tmp, dir.join(FILE))?;
    super::flusher::sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_round_trips_and_a_damaged_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        let m = Mark {
            audit_seq: 7,
            audit_head: "ab".repeat(32),
            event_seq: 9,
        };
        write(dir.path(), &m).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(m));
        assert!(!dir.path().join(TMP).exists());
        std::fs::write(dir.path().join(FILE), b"{\"audit_seq\": 7").unwrap();
        assert!(read(dir.path()).unwrap_err().contains("damaged"));
    }
}

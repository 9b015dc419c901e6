//! `hotfixd migrate`: a store moved between engines as a backup taken on
//! one and restored on the other (`store::backup`'s format is the same on
//! both), so that every sequence number, record and the audit chain come
//! across, and the copy is checked as a start-up checks it.
//!
//! The backup is an audit record of its own ("backup" by `migrate`), in
//! the source and in the copy alike. The source is left as it was: the
//! operator retires it once the copy serves.

use std::path::Path;

use crate::config::EtcdSettings;
use crate::domain::Time;
use crate::error::{Error, Result};
use crate::store::etcd::{self, keyspace::Keyspace};
use crate::store::{Engine, Store, backup};

/// Who the migration's own audit record names.
pub const ACTOR: &str = "migrate";

/// What a migration copied.
#[derive(Debug, Clone, PartialEq)]
pub struct Moved {
    pub header: backup::Header,
}

/// Copies the sled store in `data_dir` into `etcd`'s (empty) prefix.
pub async fn to_etcd(data_dir: &Path, etcd: &EtcdSettings, now: Time) -> Result<Moved> {
    if !data_dir.is_dir() {
        return Err(Error::Storage(format!(
            "--from-data-dir {}: not a directory",
            data_dir.display()
        )));
    }
    let taken = {
        let store = Store::open(data_dir).map_err(|e| match e {
            Error::Storage(why) if why.contains("lock") => Error::Storage(format!(
                "--from-data-dir {}: in use ({why}); stop the hotfixd running on it first: \
                 changes made after the copy would not be in it",
                data_dir.display()
            )),
            other => other,
        })?;
        let bytes = Engine::backup(&store, ACTOR, now).await?;
        Engine::flush(&store).await?;
        bytes
    };
    let conn = etcd::connect(&etcd.options).await?;
    let (header, _store) = etcd::restore::restore(conn, &etcd.prefix, &taken).await?;
    Ok(Moved { header })
}

/// Copies the store under `etcd`'s prefix into `data_dir` (empty or new).
pub async fn from_etcd(etcd: &EtcdSettings, data_dir: &Path, now: Time) -> Result<Moved> {
    let conn = etcd::connect(&etcd.options).await?;
    let keys = Keyspace::new(&etcd.prefix)?;
    let running = etcd::election::replicas(&conn, &keys).await?;
    if !running.is_empty() {
        let urls: Vec<&str> = running.iter().map(|r| r.url.as_str()).collect();
        return Err(Error::Storage(format!(
            "{} hotfixd replicas are running on {} ({}); stop them first: changes made after \
             the copy would not be in it",
            running.len(),
            etcd.prefix,
            urls.join(", ")
        )));
    }
    let store = etcd::EtcdStore::open(conn, &etcd.prefix).await?;
    if store.audit_size() == 0 {
        return Err(Error::Storage(format!(
            "etcd holds no hotfixd store under {} (--etcd-prefix)",
            etcd.prefix
        )));
    }
    let taken = store.backup(ACTOR, now).await?;
    let header = backup::restore(data_dir, &taken)?;
    Ok(Moved { header })
}

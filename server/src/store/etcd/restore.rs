//! A backup (`store::backup`'s format, which either engine writes) restored
//! into an empty prefix of etcd: how `hotfixd migrate` moves a sled store
//! onto etcd, and how a backup taken on either engine comes back on etcd.
//!
//! The entries go in transactions of at most [`MAX_OPS`] writes, each
//! guarded by the head's absence; the head goes last, in a transaction of
//! its own. Until it is there, the prefix is no store: a hotfixd started on
//! it refuses ("keys but no head"), and so does a second restore. Then the
//! store is opened as a replica opens it (the audit chain walked, the
//! checkpoints and the head checked) and compared with the backup's
//! header.

use super::Connection;
use super::api::etcdserverpb::{
    Compare, PutRequest, RangeRequest, RequestOp, TxnRequest, compare, kv_client::KvClient,
    request_op,
};
use super::engine::{EtcdStore, MAX_BYTES, MAX_OPS};
use super::keyspace::{self, Keyspace};
use crate::error::{Error, Result};
use crate::store::backup::{self, Header};
use crate::store::mirror::MirrorHead;
use crate::store::redo::TreeId;
use crate::store::{Engine, chain};

/// Restores `backup` under `prefix`, which must hold no key at all. Returns
/// the backup's header and the store, opened and checked.
pub async fn restore(conn: Connection, prefix: &str, backup: &[u8]) -> Result<(Header, EtcdStore)> {
    let (header, items) = backup::read(backup)?;
    let keys = Keyspace::new(prefix)?;
    let held = keys_under(&conn, &keys).await?;
    if held > 0 {
        return Err(Error::Damaged(format!(
            "etcd already holds {held} keys under {prefix}: restore into an empty prefix \
             (another --etcd-prefix), or delete that one first (etcdctl del --prefix {prefix}) \
             once you are sure nothing there is needed"
        )));
    }
    let audit_head = chain::parse(&header.mark.audit_head)
        .ok_or_else(|| Error::Damaged(format!("the backup's header: {}", header.mark)))?;
    let mut txn = Vec::new();
    let mut bytes = 0;
    for (tree, key, value) in items {
        let tree = TreeId::named(&tree).expect("backup::read checked the tree");
        let size = key.len() + value.len() + 16;
        if txn.len() == MAX_OPS || (bytes + size > MAX_BYTES && !txn.is_empty()) {
            put_unless_headed(&conn, &keys, std::mem::take(&mut txn)).await?;
            bytes = 0;
        }
        txn.push((keys.key(tree, &key), value));
        bytes += size;
    }
    if !txn.is_empty() {
        put_unless_headed(&conn, &keys, txn).await?;
    }
    let head = MirrorHead {
        next_event: header.mark.event_seq + 1,
        next_audit: header.mark.audit_seq + 1,
        audit_head,
        rev: 0,
    };
    put_unless_headed(
        &conn,
        &keys,
        vec![(keys.head(), keyspace::encode_head(&head))],
    )
    .await?;

    let store = EtcdStore::open(conn, prefix).await?;
    let (audit, head) = store.mirror_position();
    let events = store.durable_seq();
    if audit != header.mark.audit_seq
        || hex::encode(head) != header.mark.audit_head
        || events != header.mark.event_seq
    {
        return Err(Error::Damaged(format!(
            "etcd under {prefix} now holds {events} events and {audit} audit records (head {}), \
             but the backup says {}",
            hex::encode(head),
            header.mark
        )));
    }
    Ok((header, store))
}

/// How many keys etcd holds under the prefix.
async fn keys_under(conn: &Connection, keys: &Keyspace) -> Result<i64> {
    let req = RangeRequest {
        key: keys.prefix().to_vec(),
        range_end: keys.end(),
        count_only: true,
        ..Default::default()
    };
    Ok(super::engine::range(conn, "a count of the prefix", req)
        .await?
        .count)
}

/// Puts `kvs` in one transaction if the prefix has no head yet.
async fn put_unless_headed(
    conn: &Connection,
    keys: &Keyspace,
    kvs: Vec<(Vec<u8>, Vec<u8>)>,
) -> Result<()> {
    let txn = TxnRequest {
        compare: vec![Compare {
            result: compare::CompareResult::Equal as i32,
            target: compare::CompareTarget::Create as i32,
            key: keys.head(),
            target_union: Some(compare::TargetUnion::CreateRevision(0)),
            ..Default::default()
        }],
        success: kvs
            .into_iter()
            .map(|(key, value)| RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key,
                    value,
                    ..Default::default()
                })),
            })
            .collect(),
        failure: vec![],
    };
    let r = conn
        .call("the restore", txn, |t| {
            let mut kv = KvClient::new(conn.channel.clone());
            async move { kv.txn(t).await }
        })
        .await?;
    if !r.succeeded {
        return Err(Error::Damaged(
            "a store appeared under the prefix while restoring into it (a hotfixd started \
             there?); stop it, delete the prefix and restore again"
                .into(),
        ));
    }
    Ok(())
}

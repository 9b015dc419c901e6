//! The generated etcd client against a real etcd: the primitives the etcd
//! store engine is built on, as etcd 3.4 (Debian's) answers them. A change
//! is a transaction guarded by compares on what it read; a stale compare
//! commits nothing.

mod etcd;

use hotfixd::store::etcd::api::etcdserverpb::{
    Compare, PutRequest, RangeRequest, RequestOp, TxnRequest, compare, kv_client::KvClient,
    request_op,
};

fn put(key: &str, value: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
            ..Default::default()
        })),
    }
}

/// `key` still at modification revision `rev` (0: absent).
fn unchanged(key: &str, rev: i64) -> Compare {
    Compare {
        result: compare::CompareResult::Equal as i32,
        target: compare::CompareTarget::Mod as i32,
        key: key.as_bytes().to_vec(),
        target_union: Some(compare::TargetUnion::ModRevision(rev)),
        ..Default::default()
    }
}

async fn value(kv: &mut KvClient<tonic::transport::Channel>, key: &str) -> Option<(String, i64)> {
    let r = kv
        .range(RangeRequest {
            key: key.as_bytes().to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    r.kvs.first().map(|kv| {
        (
            String::from_utf8_lossy(&kv.value).into_owned(),
            kv.mod_revision,
        )
    })
}

#[tokio::test]
async fn a_guarded_transaction_commits_whole_once_and_a_stale_one_commits_nothing() {
    let etcd = etcd::Etcd::start().await;
    let mut kv = KvClient::connect(etcd.endpoint.clone()).await.unwrap();

    // Two writers read the same head (absent) and both try to append.
    let first = TxnRequest {
        compare: vec![unchanged("/t/head", 0)],
        success: vec![put("/t/head", "1"), put("/t/events/1", "declared")],
        failure: vec![],
    };
    let second = TxnRequest {
        compare: vec![unchanged("/t/head", 0)],
        success: vec![put("/t/head", "1"), put("/t/events/1", "approved")],
        failure: vec![],
    };
    assert!(kv.txn(first).await.unwrap().into_inner().succeeded);
    let lost = kv.txn(second).await.unwrap().into_inner();
    assert!(!lost.succeeded, "the second read a head that moved");

    // The winner's change is there whole; the loser wrote nothing.
    let (head, rev) = value(&mut kv, "/t/head").await.unwrap();
    assert_eq!(head, "1");
    assert_eq!(
        value(&mut kv, "/t/events/1").await.map(|v| v.0).as_deref(),
        Some("declared")
    );

    // Read again at the new head, the loser's retry commits after it.
    let retry = TxnRequest {
        compare: vec![unchanged("/t/head", rev)],
        success: vec![put("/t/head", "2"), put("/t/events/2", "approved")],
        failure: vec![],
    };
    assert!(kv.txn(retry).await.unwrap().into_inner().succeeded);
    assert_eq!(value(&mut kv, "/t/head").await.unwrap().0, "2");
}

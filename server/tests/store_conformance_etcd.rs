//! The store conformance suite (`conformance/`) on the etcd engine,
//! against a real etcd (each store under a prefix of its own).

mod conformance;
mod etcd;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use hotfixd::error::Error;
use hotfixd::store::Engine;
use hotfixd::store::etcd::api::etcdserverpb::{RangeRequest, kv_client::KvClient};
use hotfixd::store::etcd::{EtcdOptions, EtcdStore, connect};

struct Etcd {
    etcd: etcd::Etcd,
    stores: AtomicUsize,
}

fn open_at(endpoint: &str, prefix: &str) -> Arc<dyn Engine> {
    let options = EtcdOptions {
        endpoints: vec![endpoint.to_string()],
        timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let store = tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current()
            .block_on(async { EtcdStore::open(connect(&options).await?, prefix).await })
    });
    Arc::new(store.unwrap())
}

impl conformance::Engines for Etcd {
    type Place = String;
    const RECOVERS: bool = true;

    fn fresh(&self) -> String {
        format!("/t{}/", self.stores.fetch_add(1, Ordering::SeqCst))
    }

    fn open(&self, prefix: &String) -> Arc<dyn Engine> {
        open_at(&self.etcd.endpoint, prefix)
    }

    fn replica(&self, prefix: &String) -> Option<Arc<dyn Engine>> {
        Some(self.open(prefix))
    }

    fn open_failing(&self, prefix: &String) -> (Arc<dyn Engine>, Arc<AtomicBool>) {
        let on = Arc::new(AtomicBool::new(false));
        let cut = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current()
                .block_on(etcd::Cut::new(&self.etcd.endpoint, on.clone()))
        });
        let store = open_at(&cut.endpoint, prefix);
        // The proxy lives as long as the test process: the suite drops the
        // store, not the place.
        std::mem::forget(cut);
        (store, on)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_etcd_engine_keeps_the_store_promises() {
    let engines = Etcd {
        etcd: etcd::Etcd::start().await,
        stores: AtomicUsize::new(0),
    };
    conformance::run(&engines).await;
}

/// etcd's revision: it moves by one per committed transaction.
async fn revision(endpoint: &str) -> i64 {
    let mut kv = KvClient::connect(endpoint.to_string()).await.unwrap();
    let r = kv
        .range(RangeRequest {
            key: b"probe".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    r.header.unwrap().revision
}

/// Concurrent changes on one replica share transactions (the group
/// commit), each still decided on every change before it: no update lost,
/// one gap-free history. A change too large for one transaction is refused
/// whole, and the changes beside it are not disturbed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_changes_on_one_replica_share_transactions() {
    let etcd = etcd::Etcd::start().await;
    let store = open_at(&etcd.endpoint, "/group/");
    let h = conformance::declare(store.as_ref(), conformance::at(0)).await;
    let before = revision(&etcd.endpoint).await;
    let changes = 48usize;
    let mut tasks = Vec::new();
    for c in 0..changes {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            // One change in twelve has more events than a transaction
            // carries.
            let events = if c % 12 == 5 { 70 } else { 1 };
            conformance::bump(store.as_ref(), conformance::at(1), events, "").await
        }));
    }
    let (mut ok, mut too_large) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(Error::TooLarge(why)) => {
                assert!(why.contains("at most 64 writes"), "{why}");
                too_large += 1;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!((ok, too_large), (44, 4));
    let txns = revision(&etcd.endpoint).await - before;
    assert!(
        txns < ok as i64,
        "{ok} changes in {txns} transactions: concurrent changes share them"
    );
    assert_eq!(
        store.hotfix(conformance::INC).unwrap().unwrap().version,
        h.version + ok as u64,
        "every change decided on the ones before it"
    );
    let seqs: Vec<u64> = store
        .events_after(0, 1000)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, (1..=2 + ok as u64).collect::<Vec<_>>());
    assert!(store.verify_audit().first_bad.is_none());
    // A fresh replica reads the same.
    let other = open_at(&etcd.endpoint, "/group/");
    assert_eq!(
        other.events_after(0, 1000).unwrap(),
        store.events_after(0, 1000).unwrap()
    );
    assert!(matches!(
        other.hotfix(conformance::INC).unwrap(),
        Some(h2) if h2.version == h.version + ok as u64
    ));
}

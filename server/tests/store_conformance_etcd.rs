//! The store conformance suite (`conformance/`) on the etcd engine,
//! against a real etcd (each store under a prefix of its own).

mod conformance;
mod etcd;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use hotfixd::store::Engine;
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

//! The store conformance suite (`conformance/`) on the sled engine.

mod conformance;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hotfixd::store::{Engine, OpenOptions, Store};

struct Sled;

impl conformance::Engines for Sled {
    type Place = tempfile::TempDir;
    const RECOVERS: bool = false;

    fn fresh(&self) -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    fn open(&self, place: &tempfile::TempDir) -> Arc<dyn Engine> {
        Arc::new(Store::open(place.path()).unwrap())
    }

    fn replica(&self, _: &tempfile::TempDir) -> Option<Arc<dyn Engine>> {
        None
    }

    fn open_failing(&self, place: &tempfile::TempDir) -> (Arc<dyn Engine>, Arc<AtomicBool>) {
        let on = Arc::new(AtomicBool::new(false));
        let switch = on.clone();
        let flush = Box::new(move || {
            if switch.load(Ordering::SeqCst) {
                Err("No space left on device (os error 28)".to_string())
            } else {
                Ok(())
            }
        });
        let options = OpenOptions {
            flush: Some(flush),
            ..OpenOptions::default()
        };
        let store = Store::open_with_options(place.path(), options).unwrap();
        (Arc::new(store), on)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sled_engine_keeps_the_store_promises() {
    conformance::run(&Sled).await;
}

//! A failed flush (a full disk, an I/O error): the change is not
//! acknowledged, the answer is UNAVAILABLE, and every later change is
//! refused without being written, until a restart.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hotfixd::clock::SystemClock;
use hotfixd::domain::{Policy, Principal, Role};
use hotfixd::lane::{Lane, Mutation};
use hotfixd::roles::Roles;
use hotfixd::store::Store;

fn lane(store: Store) -> Lane {
    let erin: BTreeSet<Role> = [Role::EngManager].into();
    let roles = Roles::from_roster([("erin".to_string(), erin)].into());
    Lane::new(
        Arc::new(store),
        Policy::default(),
        Arc::new(roles),
        Arc::new(SystemClock),
    )
}

fn erin() -> Principal {
    Principal {
        handle: "erin".into(),
        roles: [Role::EngManager].into(),
    }
}

#[tokio::test]
async fn a_failed_flush_is_never_acknowledged_and_stops_all_changes() {
    let dir = tempfile::tempdir().unwrap();
    let disk_full = Arc::new(AtomicBool::new(false));
    let flush: hotfixd::store::flusher::FlushFn = {
        let disk_full = disk_full.clone();
        Box::new(move || {
            if disk_full.load(Ordering::SeqCst) {
                Err("No space left on device (os error 28)".into())
            } else {
                Ok(())
            }
        })
    };
    let l = lane(Store::open_with(dir.path(), Some(flush)).unwrap());
    let m = Mutation::default();
    l.team_review(&erin(), &m, "before")
        .await
        .expect("a healthy disk acknowledges");

    disk_full.store(true, Ordering::SeqCst);
    let e = l.team_review(&erin(), &m, "during").await.unwrap_err();
    let status = tonic::Status::from(e);
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(
        status.message().contains("not acknowledged"),
        "{}",
        status.message()
    );

    // Even with the disk back, nothing more is accepted: what was written
    // since the failure may not be on disk, so hotfixd stops pretending.
    disk_full.store(false, Ordering::SeqCst);
    let e = l.team_review(&erin(), &m, "after").await.unwrap_err();
    assert_eq!(tonic::Status::from(e).code(), tonic::Code::Unavailable);
    // Reads still answer.
    assert!(!l.store().audit_after(0, 10).unwrap().is_empty());
    let written = l.store().audit_after(0, 100).unwrap().len();
    assert!(
        written <= 2,
        "the refusal after the failure wrote nothing: {written} records"
    );
    drop(l);

    // After a restart on a working disk the acknowledged change is there
    // and the chain is whole.
    let l = lane(Store::open(dir.path()).unwrap());
    let report = l.store().verify_audit();
    assert!(report.first_bad.is_none(), "{report:?}");
    assert!(report.verified >= 1);
    l.team_review(&erin(), &m, "restarted").await.unwrap();
}

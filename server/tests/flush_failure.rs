//! A failed flush (a full disk, an I/O error): the change is not
//! acknowledged, the answer is UNAVAILABLE, and every later change is
//! refused without being written, until a restart.

mod harness;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hotfixd::app::{Lane, Mutation};
use hotfixd::clock::SystemClock;
use hotfixd::domain::{Policy, Principal, Role};
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

/// A flush that fails with `error` while the switch is on.
fn failing_flush(error: &'static str) -> (Arc<AtomicBool>, hotfixd::store::flusher::FlushFn) {
    let on = Arc::new(AtomicBool::new(false));
    let switch = on.clone();
    let flush = Box::new(move || {
        if switch.load(Ordering::SeqCst) {
            Err(error.to_string())
        } else {
            Ok(())
        }
    });
    (on, flush)
}

#[tokio::test]
async fn a_failed_flush_is_never_acknowledged_and_stops_all_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (disk_full, flush) = failing_flush("No space left on device (os error 28)");
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
    assert!(!l.audit_after(0, 10).unwrap().is_empty());
    let written = l.audit_after(0, 100).unwrap().len();
    assert!(
        written <= 2,
        "the refusal after the failure wrote nothing: {written} records"
    );
    drop(l);

    // After a restart on a working disk the acknowledged change is there
    // and the chain is whole.
    let l = lane(Store::open(dir.path()).unwrap());
    let report = l.verify_audit(None).unwrap();
    assert!(report.first_bad.is_none(), "{report:?}");
    assert!(report.verified >= 1);
    l.team_review(&erin(), &m, "restarted").await.unwrap();
}

/// A daemon whose store refuses every change is not healthy: health says
/// NOT_SERVING, so a supervisor restarts it (reads still answer).
#[tokio::test]
async fn health_says_not_serving_once_a_flush_failed() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

    let dir = tempfile::tempdir().unwrap();
    let (disk_full, flush) = failing_flush("Input/output error (os error 5)");
    let store = Arc::new(Store::open_with(&dir.path().join("data"), Some(flush)).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut settings = hotfixd::config::Settings::dev(addr, dir.path().join("data"));
    let http = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    settings.http_listen = Some(http);
    let readyz = format!("http://{http}/readyz");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let served = tokio::spawn(hotfixd::serve_store(
        listener,
        settings,
        store,
        Arc::new(SystemClock),
        shutdown.clone(),
    ));
    let endpoint = format!("http://{addr}");
    let mut client = loop {
        if let Ok(c) = hotfixctl::Client::connect(&endpoint, Some("dev-erin")).await {
            break c;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    let channel = tonic::transport::Endpoint::from_shared(endpoint.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    let status = |h: &mut HealthClient<tonic::transport::Channel>| {
        let mut h = h.clone();
        async move {
            h.check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .status()
        }
    };
    assert_eq!(status(&mut health).await, ServingStatus::Serving);
    hotfixd::integrations::install_crypto_provider();
    let ready = || async {
        let r = reqwest::get(&readyz).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!(ready().await, (200, "ready\n".to_string()));
    // `hotfixctl health` (the image's HEALTHCHECK) says the same.
    let healthy = harness::ctl(&endpoint, "erin", &["health"]).await.unwrap();
    assert_eq!(healthy, "SERVING\n");

    let review = |notes: &str| hotfixctl::pb::RecordTeamReviewRequest {
        notes: notes.into(),
        ..Default::default()
    };
    client
        .policy
        .record_team_review(review("ok"))
        .await
        .unwrap();
    disk_full.store(true, Ordering::SeqCst);
    let e = client
        .policy
        .record_team_review(review("lost"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while status(&mut health).await != ServingStatus::NotServing {
        assert!(
            tokio::time::Instant::now() < deadline,
            "health still SERVING after the failed flush"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let e = harness::ctl(&endpoint, "erin", &["health"])
        .await
        .unwrap_err();
    assert_eq!(e.code, 24, "{e}");
    assert!(e.message.contains("NOT_SERVING"), "{e}");
    // /readyz tells the same, and why.
    let (code, why) = ready().await;
    assert_eq!(code, 503, "{why}");
    assert!(
        why.contains("the store refuses changes until hotfixd is restarted"),
        "{why}"
    );
    assert!(why.contains("Input/output error"), "{why}");
    shutdown.cancel();
    let _ = served.await;
}

/// A read that fails says it could not read; it does not claim a change
/// was lost.
#[test]
fn a_failed_read_says_it_was_a_read() {
    let s = tonic::Status::from(hotfixd::error::Error::Storage("disk".into()));
    assert_eq!(s.code(), tonic::Code::Unavailable);
    assert!(s.message().contains("could not read"), "{}", s.message());
    assert!(!s.message().contains("durable"), "{}", s.message());
    let s = tonic::Status::from(hotfixd::error::Error::NotDurable("disk".into()));
    assert!(s.message().contains("not acknowledged"), "{}", s.message());
}

//! Readiness on etcd: a replica cut off from etcd (a proxy in front of it
//! that cuts every connection) is not ready, and ready again once etcd
//! answers. A binary of its own, so that it never runs beside the quorum
//! tests on a 2-core machine (their changes must be answered within the
//! store timeout).

mod etcd;
mod harness;

use std::process::Command;
use std::time::{Duration, Instant};

use harness::{Binary, HOTFIXD, free_port};

/// hotfixctl's exit code for UNAVAILABLE (10 + 14).
const UNAVAILABLE: i32 = 24;

/// A replica cut off from etcd is not ready (`/readyz` 503 saying why,
/// gRPC health NOT_SERVING, `/healthz` still up: a probe takes it out of
/// rotation without restarting it), and ready again once etcd answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_cut_off_from_etcd_is_not_ready_until_etcd_answers() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let etcd = etcd::Etcd::start().await;
    let switch = Arc::new(AtomicBool::new(false));
    let cut = etcd::Cut::new(&etcd.endpoints[0], switch.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cut.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nengine = \"etcd\"\nendpoints = [\"{}\"]\nlease_ttl = \"3s\"\ntimeout = \"2s\"\n",
            cut.endpoint
        ),
    )
    .unwrap();
    let http = format!("127.0.0.1:{}", free_port());
    let d = Binary::spawn_logged(
        Command::new(HOTFIXD),
        &config,
        &dir.path().join("cut"),
        free_port(),
        &[("HOTFIXD_LOG", "warn"), ("HOTFIXD_HTTP_LISTEN", &http)],
        &dir.path().join("cut.log"),
    )
    .ready()
    .await;
    hotfixd::integrations::install_crypto_provider();
    let get = |page: &'static str| {
        let url = format!("http://{http}{page}");
        async move {
            let r = reqwest::get(&url).await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let health = || d.ctl("bob", &["health"]);
    // Waits (up to `within`) until /readyz answers `code`.
    let readyz_becomes = |code: u16, within: Duration| async move {
        let start = Instant::now();
        loop {
            let (got, body) = get("/readyz").await;
            if got == code {
                return body;
            }
            assert!(
                start.elapsed() < within,
                "/readyz still {got} ({body}) after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    assert_eq!(get("/readyz").await, (200, "ready\n".to_string()));
    assert_eq!(health().await.unwrap(), "SERVING\n");

    switch.store(true, Ordering::SeqCst);
    // A probe every 2 s, each given store.timeout (2 s).
    let why = readyz_becomes(503, Duration::from_secs(15)).await;
    assert!(why.contains("etcd"), "{why}");
    assert!(
        why.contains("store.timeout") || why.contains("does not answer"),
        "{why}"
    );
    let e = health().await.unwrap_err();
    assert_eq!(e.code, UNAVAILABLE, "{e}");
    assert!(e.message.contains("NOT_SERVING"), "{e}");
    assert_eq!(get("/healthz").await, (200, "ok\n".to_string()));

    switch.store(false, Ordering::SeqCst);
    readyz_becomes(200, Duration::from_secs(20)).await;
    assert_eq!(health().await.unwrap(), "SERVING\n");
    // And it takes changes again (once it leads again, within a lease).
    let start = Instant::now();
    let args = [
        "--request-id",
        "r-1",
        "mitigated",
        "INC-2026-05-20-001",
        "--by",
        "flag",
    ];
    loop {
        match d.ctl("bob", &args).await {
            Ok(_) => break,
            Err(e) if e.code == UNAVAILABLE && start.elapsed() < Duration::from_secs(15) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("not answered after etcd came back: {e:?}"),
        }
    }
    drop(cut);
}

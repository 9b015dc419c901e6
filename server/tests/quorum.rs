//! Two `hotfixd` replicas (the real binary) on a real three-member etcd
//! cluster, losing members: with one down changes go on; with two down
//! (no quorum) changes answer UNAVAILABLE and nothing is acknowledged; with
//! the members back, everything answered is there, once, the chain
//! verifies, and a retry of what was not acknowledged commits once.

mod etcd;
mod harness;

use std::process::Command;
use std::time::{Duration, Instant};

use harness::{Binary, HOTFIXD, free_port};

/// hotfixctl's exit code for UNAVAILABLE (10 + 14).
const UNAVAILABLE: i32 = 24;

async fn replica(dir: &std::path::Path, name: &str, etcd: &etcd::Etcd) -> Binary {
    let config = dir.join(format!("{name}.toml"));
    let endpoints: Vec<String> = etcd.endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    std::fs::write(
        &config,
        format!(
            "[store]\nengine = \"etcd\"\nendpoints = [{}]\nlease_ttl = \"3s\"\ntimeout = \"2s\"\n",
            endpoints.join(", ")
        ),
    )
    .unwrap();
    Binary::spawn_logged(
        Command::new(HOTFIXD),
        &config,
        &dir.join(name),
        free_port(),
        &[("HOTFIXD_LOG", "warn")],
        &dir.join(format!("{name}.log")),
    )
    .ready()
    .await
}

fn incident(n: usize) -> String {
    format!("INC-2026-05-20-{n:03}")
}

/// `mitigated INC-n` through `d`, with request id `r-n`.
async fn mitigate(d: &Binary, n: usize) -> Result<String, hotfixctl::cli::CliError> {
    let id = format!("r-{n}");
    d.ctl(
        "bob",
        &[
            "--request-id",
            &id,
            "mitigated",
            &incident(n),
            "--by",
            "flag",
        ],
    )
    .await
}

/// Like [`mitigate`], retried (same request id) while it answers
/// UNAVAILABLE, for up to `within`. Returns how many tries it took.
async fn mitigate_within(d: &Binary, n: usize, within: Duration) -> usize {
    let start = Instant::now();
    let mut tries = 0;
    loop {
        tries += 1;
        match mitigate(d, n).await {
            Ok(_) => return tries,
            Err(e) if e.code == UNAVAILABLE && start.elapsed() < within => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{} not answered in {within:?}: {e:?}", incident(n)),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_etcd_members_loses_no_answered_change() {
    let dir = tempfile::tempdir().unwrap();
    let mut etcd = etcd::Etcd::cluster(3).await;
    let a = replica(dir.path(), "a", &etcd).await;
    let b = replica(dir.path(), "b", &etcd).await;
    let through = |n: usize| if n.is_multiple_of(2) { &a } else { &b };
    let mut answered = Vec::new();
    for n in 1..=4 {
        mitigate_within(through(n), n, Duration::from_secs(10)).await;
        answered.push(n);
    }

    // One member down: a quorum of two remains, and changes go on (a call
    // caught on the dying member's connection may need its retry).
    etcd.kill(0);
    for n in 5..=10 {
        let tries = mitigate_within(through(n), n, Duration::from_secs(10)).await;
        if n > 6 {
            assert_eq!(tries, 1, "{}: with a quorum, answered at once", incident(n));
        }
        answered.push(n);
    }

    // Two down: no quorum. Nothing is acknowledged.
    etcd.kill(1);
    let lost = Instant::now();
    let mut refused = Vec::new();
    for n in 11..=13 {
        let started = Instant::now();
        let e = mitigate(through(n), n).await.unwrap_err();
        assert_eq!(e.code, UNAVAILABLE, "{}: {e:?}", incident(n));
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "UNAVAILABLE is answered, not waited out forever"
        );
        refused.push(n);
    }
    // Once the leader's lease is over, a read cannot know it sees every
    // answered change: it answers UNAVAILABLE too, never a stale copy.
    for d in [&a, &b] {
        loop {
            match d.ctl("bob", &["report"]).await {
                Err(e) if e.code == UNAVAILABLE => break,
                Err(e) => panic!("{e:?}"),
                Ok(_) => assert!(
                    lost.elapsed() < Duration::from_secs(10),
                    "reads still answered 10 s after the quorum was lost"
                ),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Back: everything answered is there, and what was refused commits
    // once when retried with its request id.
    etcd.restart(0);
    etcd.restart(1);
    for n in &refused {
        mitigate_within(through(*n + 1), *n, Duration::from_secs(30)).await;
    }
    // A retry of an answered change replays it.
    mitigate(through(2), 1).await.unwrap();

    for d in [&a, &b] {
        let events = harness::events(&d.endpoint).await;
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(
            seqs,
            (1..=events.len() as u64).collect::<Vec<_>>(),
            "gap-free"
        );
        for n in answered.iter().chain(&refused) {
            let of = events
                .iter()
                .filter(|e| e.incident_id == incident(*n))
                .count();
            assert_eq!(of, 1, "{} recorded once", incident(*n));
        }
        assert_eq!(events.len(), answered.len() + refused.len());
        let verified = d.ctl("dave", &["audit", "verify"]).await.unwrap();
        assert!(verified.contains("intact"), "{verified}");
    }
    assert_eq!(
        harness::events(&a.endpoint).await,
        harness::events(&b.endpoint).await
    );
}

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
    mitigate_within(&d, 1, Duration::from_secs(15)).await;
    drop(cut);
}

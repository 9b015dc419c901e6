//! Crash test: concurrent clients declare hotfixes while the real `hotfixd`
//! binary is killed with SIGKILL at random moments and restarted, again and
//! again. A client whose call got no answer retries it with the same
//! request id until it is answered. Afterwards every request is in the log
//! exactly once, nothing else is, the event sequence has no gap, and the
//! audit chain verifies (through the API and offline).
//!
//! The same on the etcd engine, with two replicas on a three-member etcd.
//!
//! Bounded for `cargo test` (4 kills each); `HOTFIXD_CRASH_ROUNDS=200` runs a
//! longer one.

mod etcd;
mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use harness::{Binary, HOTFIXD, free_port, ready};
use rand::Rng;

const CLIENTS: u32 = 8;

fn spawn(config: &std::path::Path, data: &std::path::Path, port: u16) -> Binary {
    Binary::spawn(HOTFIXD, config, data, port, &[])
}

fn declaration(inc: &str) -> hotfixctl::pb::DeclareRequest {
    use hotfixctl::pb;
    pb::DeclareRequest {
        mutation: Some(pb::Mutation {
            request_id: format!("declare-{inc}"),
            expected_version: None,
        }),
        incident_id: inc.to_string(),
        severity: pb::Severity::P0 as i32,
        criteria: vec![pb::Criterion::CustomersDown as i32],
        symptom: "catalog returns 500".into(),
        approver: "alice".into(),
        cleanup_owner: "bob".into(),
        merge_eta: "09:30".into(),
        repository: "bookstore/catalog".into(),
        argocd_app: "catalog".into(),
        ..Default::default()
    }
}

/// One client: declares its incidents in order; each is retried (same
/// request id, fresh connection) until answered, however often hotfixd dies.
async fn client(
    n: u32,
    endpoints: Vec<String>,
    stop: Arc<AtomicBool>,
    answered: Arc<Mutex<Vec<String>>>,
    attempted: Arc<Mutex<BTreeSet<String>>>,
) {
    let mut i = 1;
    // A client whose replica gives no answer tries the next one.
    let mut at = n as usize;
    while !stop.load(Ordering::SeqCst) {
        let inc = format!("INC-2026-05-{:02}-{i:03}", n + 1);
        attempted.lock().unwrap().insert(inc.clone());
        loop {
            let endpoint = &endpoints[at % endpoints.len()];
            let r = match hotfixctl::Client::connect(endpoint, Some("dev-bob")).await {
                Ok(mut c) => c.lane.declare(declaration(&inc)).await.map(|_| ()),
                Err(e) => Err(tonic::Status::unavailable(e.to_string())),
            };
            match r {
                Ok(()) => break,
                Err(s)
                    if s.code() == tonic::Code::Unavailable
                        || s.code() == tonic::Code::Unknown
                        || s.code() == tonic::Code::Cancelled
                        || s.code() == tonic::Code::Internal =>
                {
                    at += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(s) => panic!("{inc}: unexpected answer {s:?}"),
            }
        }
        answered.lock().unwrap().push(inc);
        i += 1;
    }
}

async fn events(endpoint: &str) -> Vec<serde_json::Value> {
    harness::ctl(endpoint, "bob", &["--output", "json", "watch", "--once"])
        .await
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter_map(|v| v.get("event").cloned())
        .collect()
}

/// Limits out of the way: the test is about the store.
const UNLIMITED: &str = "[policy]\nrate_window_max = 1000000\nquarter_process_bug_over = 1000000\nquarter_code_yellow_over = 1000000\n\
     [limits]\nper_principal_rate = 1000000.0\nper_principal_burst = 1000000\n";

fn rounds() -> u32 {
    std::env::var("HOTFIXD_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_nothing_and_applies_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hotfixd.toml");
    std::fs::write(&config, UNLIMITED).unwrap();
    let data = dir.path().join("data");
    crash(&[(config, data.clone())], rounds()).await;
    let out = Command::new(env!("CARGO_BIN_EXE_hotfixd"))
        .args(["audit", "verify", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The same on the etcd engine: two replicas on a three-member etcd, a
/// random one killed each round (the leader too: the other takes over
/// within the lease), clients moving to the other replica when theirs
/// gives no answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_etcd_replicas_loses_nothing_and_applies_nothing_twice() {
    let etcd = etcd::Etcd::cluster(3).await;
    let endpoints: Vec<String> = etcd.endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hotfixd.toml");
    std::fs::write(
        &config,
        format!(
            "{UNLIMITED}[store]\nengine = \"etcd\"\nendpoints = [{}]\nlease_ttl = \"2s\"\n",
            endpoints.join(", ")
        ),
    )
    .unwrap();
    let replicas = [
        (config.clone(), dir.path().join("a")),
        (config, dir.path().join("b")),
    ];
    crash(&replicas, rounds()).await;
}

/// Runs the clients against `replicas` (config, data) while one, at
/// random, is SIGKILLed and restarted each round; then checks the log as
/// every replica serves it.
async fn crash(replicas: &[(std::path::PathBuf, std::path::PathBuf)], rounds: u32) {
    let ports: Vec<u16> = replicas.iter().map(|_| free_port()).collect();
    let endpoints: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();

    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(Mutex::new(Vec::new()));
    let attempted = Arc::new(Mutex::new(BTreeSet::new()));
    let mut running: Vec<Option<Binary>> = replicas
        .iter()
        .zip(&ports)
        .map(|((config, data), port)| Some(spawn(config, data, *port)))
        .collect();
    for e in &endpoints {
        ready(e).await;
    }
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| {
            tokio::spawn(client(
                n,
                endpoints.clone(),
                stop.clone(),
                answered.clone(),
                attempted.clone(),
            ))
        })
        .collect();
    for _ in 0..rounds {
        let wait = rand::rng().random_range(100..500);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let i = rand::rng().random_range(0..replicas.len());
        let (config, data) = &replicas[i];
        // SIGKILL mid-traffic, then the same replica again.
        running[i] = None;
        running[i] = Some(spawn(config, data, ports[i]));
        ready(&endpoints[i]).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        tokio::time::timeout(Duration::from_secs(60), c)
            .await
            .expect("a client never got its answer")
            .unwrap();
    }

    let answered: Vec<String> = answered.lock().unwrap().clone();
    let attempted = attempted.lock().unwrap().clone();
    assert!(
        answered.len() as u32 > CLIENTS,
        "too little traffic to mean anything"
    );
    let log = events(&endpoints[0]).await;
    for e in &endpoints[1..] {
        assert_eq!(events(e).await, log, "one history, whichever replica");
    }
    let seqs: Vec<u64> = log
        .iter()
        .map(|e| {
            e["seq"]
                .as_str()
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, (1..=log.len() as u64).collect::<Vec<_>>(), "gap-free");
    let mut declared: BTreeMap<String, u32> = BTreeMap::new();
    for e in log.iter().filter(|e| e["kind"] == "declared") {
        *declared
            .entry(e["incidentId"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert!(
        declared.values().all(|n| *n == 1),
        "a declaration applied twice"
    );
    for inc in &answered {
        assert!(
            declared.contains_key(inc),
            "answered {inc} is not in the log"
        );
    }
    for inc in declared.keys() {
        assert!(attempted.contains(inc), "{inc} in the log was never sent");
    }
    // Every attempt was retried until answered: all of them are in.
    assert_eq!(declared.len(), answered.len());

    for endpoint in &endpoints {
        harness::ctl(endpoint, "bob", &["audit", "verify"])
            .await
            .expect("the audit chain verifies");
    }
    drop(running);
}

/// SIGTERM: a watcher's last message is a closing heartbeat with the
/// sequence to resume from, the process exits 0, and everything answered is
/// there after the restart.
#[tokio::test]
async fn sigterm_drains_watchers_and_exits_cleanly() {
    use tokio_stream::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hotfixd.toml");
    std::fs::write(&config, "heartbeat_interval = \"200ms\"\n").unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut d = spawn(&config, &data, port);
    ready(&endpoint).await;
    let mut c = hotfixctl::Client::connect(&endpoint, Some("dev-bob"))
        .await
        .unwrap();
    c.lane
        .declare(declaration("INC-2026-05-20-001"))
        .await
        .unwrap();
    let mut watch = c
        .events
        .watch(hotfixctl::pb::WatchRequest {
            from_seq: 0,
            incident_id: String::new(),
            from_now: false,
        })
        .await
        .unwrap()
        .into_inner();
    let term = Command::new("kill")
        .args(["-TERM", &d.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let mut last = None;
    while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(20), watch.next()).await {
        match msg {
            Ok(m) => last = m.kind,
            Err(_) => break,
        }
    }
    match last {
        Some(hotfixctl::pb::watch_response::Kind::Heartbeat(hb)) => {
            assert!(hb.closing, "{hb:?}");
            assert_eq!(hb.latest_seq, 1);
        }
        other => panic!("the last message was not a closing heartbeat: {other:?}"),
    }
    // A client that keeps its connection open does not keep hotfixd alive
    // (drain timeout); the runtime keeps running while we wait.
    let status = loop {
        if let Some(s) = d.child.try_wait().unwrap() {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status.code(), Some(0), "clean exit on SIGTERM");
    drop((watch, c));
    let _d = spawn(&config, &data, port);
    ready(&endpoint).await;
    let mut c = hotfixctl::Client::connect(&endpoint, Some("dev-bob"))
        .await
        .unwrap();
    c.lane
        .get_hotfix(hotfixctl::pb::GetHotfixRequest {
            incident_id: "INC-2026-05-20-001".into(),
        })
        .await
        .expect("the declaration survived");
}

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

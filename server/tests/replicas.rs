//! Several `hotfixd` replicas (the real binary) on a real three-member etcd, with
//! GitHub faked to its published contract: one history whichever replica
//! is asked, a leader killed mid-merge replaced within its lease, and a
//! paused leader fenced off when it wakes.

#[path = "../../tests/common/github.rs"]
mod github;

mod etcd;
mod harness;

use std::process::Command;
use std::time::{Duration, Instant};

use github::FakeGitHub;
use harness::{Binary, HOTFIXD, free_port};
use serde_json::Value;

const INC: &str = "INC-2026-05-20-001";
const SHA: &str = "1111111111111111111111111111111111111111";
/// The leader's lease in these tests (etcd's smallest is about 2 s).
const TTL: Duration = Duration::from_secs(2);

/// A replica on `etcd` with GitHub on (the fake; calls time out in 1 s, so
/// that a lease of 2 s outlasts them). `wait`: until it answers.
async fn replica(dir: &std::path::Path, name: &str, gh: &FakeGitHub, etcd: &etcd::Etcd) -> Binary {
    let config = dir.join(format!("{name}.toml"));
    let endpoints: Vec<String> = etcd.endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    let store = format!(
        "[store]\nengine = \"etcd\"\nendpoints = [{}]\nlease_ttl = \"{}s\"\n",
        endpoints.join(", "),
        TTL.as_secs()
    );
    std::fs::write(&config, gh.config("timeout = \"1s\"") + &store).unwrap();
    let env = [
        ("HOTFIXD_GITHUB_TOKEN", github::TOKEN),
        ("HOTFIXD_LOG", "warn"),
    ];
    Binary::spawn_logged(
        Command::new(HOTFIXD),
        &config,
        &dir.join(name),
        free_port(),
        &env,
        &dir.join(format!("{name}.log")),
    )
    .ready()
    .await
}

async fn show(d: &Binary) -> Value {
    serde_json::from_str(
        &d.ctl("bob", &["--output", "json", "show", INC])
            .await
            .unwrap(),
    )
    .unwrap()
}

fn kinds(h: &Value) -> Vec<String> {
    h["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap().to_string())
        .collect()
}

/// `hotfixctl --output json cluster` as asked of `d`.
async fn cluster(d: &Binary) -> Value {
    serde_json::from_str(
        &d.ctl("bob", &["--output", "json", "cluster"])
            .await
            .unwrap(),
    )
    .unwrap()
}

/// The replicas' URLs, the leader first, as `cluster` lists them.
fn urls(c: &Value) -> Vec<(String, bool)> {
    c["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["url"].as_str().unwrap().to_string(),
                r["leader"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn count(kinds: &[String], kind: &str) -> usize {
    kinds.iter().filter(|k| *k == kind).count()
}

/// The lane up to the merge, each step through the next replica in turn.
async fn ready_to_merge(replicas: &[&Binary], gh: &FakeGitHub) {
    let branch = format!("hotfix/{INC}-fix");
    gh.world().branches.insert(
        branch.clone(),
        github::fix_branch(SHA, &format!("fix\n{INC}\napprover: @alice")),
    );
    let at = |i: usize| replicas[i % replicas.len()];
    at(0)
        .ctl("bob", &harness::declare_args(INC, "bookstore/catalog"))
        .await
        .unwrap();
    at(1)
        .ctl("bob", &["fix", INC, "--branch", &branch])
        .await
        .unwrap();
    at(2)
        .ctl("alice", &["approve", INC, "--sha", SHA])
        .await
        .unwrap();
    at(3).ctl("bob", &["pr", INC]).await.unwrap();
    gh.world().finish_checks(SHA, "success");
    at(4).ctl("bob", &["check", INC, "--wait"]).await.unwrap();
}

/// Runs `hotfixctl merge INC` as carol against `d` in the background.
fn merge_in_background(
    d: &Binary,
) -> tokio::task::JoinHandle<Result<String, hotfixctl::cli::CliError>> {
    let endpoint = d.endpoint.clone();
    tokio::spawn(async move { harness::ctl(&endpoint, "carol", &["merge", INC]).await })
}

/// Until `d` answers a change (a team review by alice, an sre-lead: harmless),
/// or `within`: how long that took.
async fn first_change(d: &Binary, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let r = d
            .ctl("alice", &["team-review", "--notes", "after failover"])
            .await;
        match r {
            Ok(_) => return start.elapsed(),
            Err(e) => assert!(
                start.elapsed() < within,
                "no change answered in {within:?}: {e:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn signal(d: &Binary, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &d.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_serve_one_lane_and_one_history() {
    let dir = tempfile::tempdir().unwrap();
    let (gh, etcd) = (FakeGitHub::start().await, etcd::Etcd::cluster(3).await);
    let a = replica(dir.path(), "a", &gh, &etcd).await;
    let b = replica(dir.path(), "b", &gh, &etcd).await;
    // Every step alternately through each: the follower forwards its
    // changes to the leader.
    ready_to_merge(&[&a, &b], &gh).await;
    b.ctl("carol", &["merge", INC]).await.unwrap();
    // Read right after the change, from either: the same hotfix, the same
    // events in the same order.
    let (ha, hb) = (show(&a).await, show(&b).await);
    assert_eq!(ha["hotfix"]["state"], "STATE_MERGED");
    assert_eq!(ha, hb);
    let (ea, eb) = (
        harness::events(&a.endpoint).await,
        harness::events(&b.endpoint).await,
    );
    assert_eq!(ea, eb);
    let seqs: Vec<u64> = ea.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "gap-free"
    );
    assert_eq!(gh.world().merge_calls, 1);
    let audit = a.ctl("dave", &["audit", "verify"]).await.unwrap();
    assert!(audit.contains("intact"), "{audit}");
    // The first replica has led all along (its lease kept alive for many
    // TTLs), the other follows; each one's lease has time left.
    let c = cluster(&b).await;
    assert_eq!(c["engine"], "etcd");
    assert_eq!(c["answeredBy"], b.endpoint.as_str());
    assert_eq!(
        urls(&c),
        [(a.endpoint.clone(), true), (b.endpoint.clone(), false)]
    );
    for r in c["replicas"].as_array().unwrap() {
        let left = r["leaseLeftMs"]
            .as_str()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap();
        assert!(left > 0 && left <= TTL.as_millis() as u64, "{c}");
    }
    let table = a.ctl("bob", &["cluster"]).await.unwrap();
    assert!(
        table.contains("leader") && table.contains("(answered)"),
        "{table}"
    );
    gh.assert_contract_kept();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_mid_merge_is_replaced_within_its_lease_and_the_merge_recorded_once() {
    let dir = tempfile::tempdir().unwrap();
    let (gh, etcd) = (FakeGitHub::start().await, etcd::Etcd::cluster(3).await);
    let a = replica(dir.path(), "a", &gh, &etcd).await; // first: the leader
    let b = replica(dir.path(), "b", &gh, &etcd).await;
    ready_to_merge(&[&a, &b], &gh).await;
    gh.world().hang = Some("put /repos/{owner}/{repo}/pulls/{pull_number}/merge");
    // Asked of the follower, performed by the leader.
    let merging = merge_in_background(&b);
    tokio::time::timeout(Duration::from_secs(30), gh.held())
        .await
        .expect("the merge reached GitHub");
    drop(a); // SIGKILL between "merge sent" and "merge recorded"
    let killed = Instant::now();
    assert!(merging.await.unwrap().is_err(), "nobody was told it merged");
    first_change(&b, TTL + Duration::from_secs(5)).await;
    // Bounded by the lease (plus the retry loop's own latency); the
    // figure itself is measured in BENCHMARKS.md, not asserted here.
    let unavailable = killed.elapsed();
    assert!(
        unavailable < TTL + Duration::from_secs(5),
        "changes came back only {unavailable:?} after the kill"
    );
    // The new leader reconciles the open merge intent in its term, beside
    // serving (other changes on this hotfix wait for it): within seconds.
    let settled = Instant::now();
    let h = loop {
        let h = show(&b).await;
        if h["hotfix"]["state"] == "STATE_MERGED" || settled.elapsed() > Duration::from_secs(10) {
            break h;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(h["hotfix"]["state"], "STATE_MERGED", "{h}");
    assert_eq!(h["hotfix"]["merge"]["by"], "carol");
    let k = kinds(&h);
    for kind in ["merge_requested", "merge_reconciled", "merged"] {
        assert_eq!(count(&k, kind), 1, "{kind} once in {k:?}");
    }
    assert_eq!(gh.world().merge_calls, 1, "one merge reached GitHub");
    assert_eq!(
        urls(&cluster(&b).await),
        [(b.endpoint.clone(), true)],
        "the dead one is gone"
    );
    gh.assert_contract_kept();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_is_fenced_off_when_it_wakes() {
    let dir = tempfile::tempdir().unwrap();
    let (gh, etcd) = (FakeGitHub::start().await, etcd::Etcd::cluster(3).await);
    let a = replica(dir.path(), "a", &gh, &etcd).await; // the leader
    let b = replica(dir.path(), "b", &gh, &etcd).await;
    ready_to_merge(&[&a, &b], &gh).await;
    gh.world().hang = Some("put /repos/{owner}/{repo}/pulls/{pull_number}/merge");
    let merging = merge_in_background(&a);
    tokio::time::timeout(Duration::from_secs(30), gh.held())
        .await
        .expect("the merge reached GitHub");
    // Paused past its lease while GitHub holds its merge: the other
    // replica is elected, finds the merge done on GitHub and records it.
    signal(&a, "-STOP");
    first_change(&b, TTL + Duration::from_secs(5)).await;
    let h = show(&b).await;
    assert_eq!(h["hotfix"]["state"], "STATE_MERGED", "{h}");
    let (writes_before, timeline_before) = (gh.world().writes.clone(), kinds(&h));
    // The old leader wakes: its GitHub call times out, it believes it may
    // still lead. It must not act, and what it tries to record is refused.
    signal(&a, "-CONT");
    let _ = tokio::time::timeout(Duration::from_secs(10), merging).await;
    tokio::time::sleep(TTL).await;
    assert_eq!(
        gh.world().writes,
        writes_before,
        "the old leader sent nothing more to GitHub"
    );
    let h = show(&b).await;
    let k = kinds(&h);
    assert_eq!(count(&k, "merged"), 1, "{k:?}");
    // Its merge call failed (GitHub held the answer past its timeout) and
    // it tried to record that: the fence refused it.
    assert_eq!(k, timeline_before, "the old leader recorded nothing");
    assert_eq!(gh.world().merge_calls, 1);
    // And it serves on as a follower: its reads and forwarded changes work.
    assert_eq!(show(&a).await, show(&b).await);
    first_change(&a, TTL + Duration::from_secs(5)).await;
    gh.assert_contract_kept();
}

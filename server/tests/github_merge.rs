//! The admin merge performed on GitHub, against the fake of GitHub shared
//! with the workspace tests (tests/common/github.rs, which validates every
//! request and response against GitHub's published contracts), with the
//! real `hotfixd` binary, killed with SIGKILL between "merge sent" and
//! "merge recorded".

#[path = "../../tests/common/github.rs"]
mod github;

mod harness;

use std::time::Duration;

use github::FakeGitHub;
use harness::{Binary, HOTFIXD, free_port};
use serde_json::Value;

const INC: &str = "INC-2026-05-20-001";
const SHA: &str = "1111111111111111111111111111111111111111";

/// The binary with GitHub on (the fake), its merge timeout long enough
/// for the tests that kill it mid-merge.
async fn hotfixd(dir: &std::path::Path, gh: &FakeGitHub) -> Binary {
    let config = dir.join("hotfixd.toml");
    std::fs::write(&config, gh.config("timeout = \"90s\"")).unwrap();
    let env = [("HOTFIXD_GITHUB_TOKEN", github::TOKEN)];
    Binary::spawn(HOTFIXD, &config, &dir.join("data"), free_port(), &env)
        .ready()
        .await
}

/// Runs `hotfixctl STEP INC` as `handle` in the background: the test kills
/// hotfixd while it waits for GitHub.
fn in_background(
    d: &Binary,
    handle: &str,
    step: &'static str,
) -> tokio::task::JoinHandle<Result<(), hotfixctl::cli::CliError>> {
    let (endpoint, handle) = (d.endpoint.clone(), handle.to_string());
    tokio::spawn(async move {
        harness::ctl(&endpoint, &handle, &[step, INC])
            .await
            .map(drop)
    })
}

async fn show(d: &Binary) -> Value {
    serde_json::from_str(
        &d.ctl("bob", &["--output", "json", "show", INC])
            .await
            .unwrap(),
    )
    .unwrap()
}

/// Declared, fix read from GitHub, approved, PR opened by hotfixd, every
/// check passed on GitHub.
async fn ready(d: &Binary, gh: &FakeGitHub, drill: bool) {
    let branch = format!("hotfix/{INC}-fix");
    gh.world().branches.insert(
        branch.clone(),
        github::fix_branch(SHA, &format!("fix\n{INC}\napprover: @alice")),
    );
    let mut declare = harness::declare_args(INC, "bookstore/catalog");
    if drill {
        declare.push("--drill");
    }
    d.ctl("bob", &declare).await.unwrap();
    d.ctl("bob", &["fix", INC, "--branch", &branch])
        .await
        .unwrap();
    d.ctl("alice", &["approve", INC, "--sha", SHA])
        .await
        .unwrap();
    d.ctl("bob", &["pr", INC]).await.unwrap();
    gh.world().finish_checks(SHA, "success");
    d.ctl("bob", &["check", INC, "--wait"]).await.unwrap();
}

fn kinds(h: &Value) -> Vec<String> {
    h["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn killed_between_merge_sent_and_merge_recorded_records_it_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let gh = FakeGitHub::start().await;
    let d = hotfixd(dir.path(), &gh).await;
    ready(&d, &gh, false).await;
    gh.world().hang = Some("put /repos/{owner}/{repo}/pulls/{pull_number}/merge");
    let merging = in_background(&d, "carol", "merge");
    tokio::time::timeout(Duration::from_secs(30), gh.held())
        .await
        .expect("merge reached GitHub");
    drop(d); // SIGKILL while hotfixd waits for GitHub's answer
    assert!(
        merging.await.unwrap().is_err(),
        "the caller was never told it merged"
    );
    let d = hotfixd(dir.path(), &gh).await;
    let h = show(&d).await;
    assert_eq!(h["hotfix"]["state"], "STATE_MERGED");
    assert_eq!(h["hotfix"]["merge"]["by"], "carol");
    let k = kinds(&h);
    for kind in ["merge_requested", "merge_reconciled", "merged"] {
        assert_eq!(
            k.iter().filter(|x| *x == kind).count(),
            1,
            "{kind} once in {k:?}"
        );
    }
    // A second merge is refused by the lane and never reaches GitHub.
    let e = d.ctl("carol", &["merge", INC]).await.unwrap_err();
    assert_eq!(e.code, 19, "{}", e.message);
    assert_eq!(gh.world().merge_calls, 1, "no double merge");
    gh.assert_contract_kept();
}

#[tokio::test]
async fn a_head_that_moved_since_approval_is_not_merged() {
    let dir = tempfile::tempdir().unwrap();
    let gh = FakeGitHub::start().await;
    let d = hotfixd(dir.path(), &gh).await;
    ready(&d, &gh, false).await;
    // Someone pushed to the PR after the approval.
    gh.world().pull_mut(4321).unwrap().head_sha = "2222222222222222222222222222222222222222".into();
    let e = d.ctl("carol", &["merge", INC]).await.unwrap_err();
    assert_eq!(e.code, 19);
    assert!(
        e.message.contains("no longer the approved"),
        "{}",
        e.message
    );
    let h = show(&d).await;
    assert_eq!(h["hotfix"]["state"], "STATE_READY_TO_MERGE");
    assert!(kinds(&h).contains(&"merge_refused".to_string()));
    // Non-admins never reach GitHub.
    assert_eq!(d.ctl("bob", &["merge", INC]).await.unwrap_err().code, 17);
    assert_eq!(gh.world().merge_calls, 1);
    gh.assert_contract_kept();
}

#[tokio::test]
async fn a_drill_merge_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let gh = FakeGitHub::start().await;
    let d = hotfixd(dir.path(), &gh).await;
    ready(&d, &gh, true).await;
    d.ctl("carol", &["merge", INC]).await.unwrap();
    let h = show(&d).await;
    assert_eq!(h["hotfix"]["state"], "STATE_MERGED");
    assert!(kinds(&h).contains(&"merge_dry_run".to_string()));
    assert!(gh.world().writes.is_empty(), "{:?}", gh.world().writes);
}

#[tokio::test]
async fn a_retried_merge_is_sent_to_github_once() {
    let dir = tempfile::tempdir().unwrap();
    let gh = FakeGitHub::start().await;
    let d = hotfixd(dir.path(), &gh).await;
    ready(&d, &gh, false).await;
    let merge = ["--request-id", "merge-1", "--output", "json", "merge", INC];
    let first: Value = serde_json::from_str(&d.ctl("carol", &merge).await.unwrap()).unwrap();
    let again: Value = serde_json::from_str(&d.ctl("carol", &merge).await.unwrap()).unwrap();
    assert_eq!(first["hotfix"]["state"], "STATE_MERGED");
    assert_eq!(first, again, "the retry answers the first answer");
    assert_eq!(gh.world().merge_calls, 1);
}

/// Killed after GitHub created the PR but before hotfixd heard back: the
/// restart finds the branch's open PR and records it; none is created twice.
#[tokio::test]
async fn killed_while_opening_the_pr_records_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let gh = FakeGitHub::start().await;
    let d = hotfixd(dir.path(), &gh).await;
    let branch = format!("hotfix/{INC}-fix");
    gh.world().branches.insert(
        branch.clone(),
        github::fix_branch(SHA, &format!("fix\n{INC}\napprover: @alice")),
    );
    d.ctl("bob", &harness::declare_args(INC, "bookstore/catalog"))
        .await
        .unwrap();
    d.ctl("bob", &["fix", INC, "--branch", &branch])
        .await
        .unwrap();
    d.ctl("alice", &["approve", INC, "--sha", SHA])
        .await
        .unwrap();
    gh.world().hang = Some("post /repos/{owner}/{repo}/pulls");
    let opening = in_background(&d, "bob", "pr");
    tokio::time::timeout(Duration::from_secs(30), gh.held())
        .await
        .expect("the PR reached GitHub");
    drop(d); // SIGKILL while hotfixd waits for GitHub's answer
    assert!(opening.await.unwrap().is_err());

    let d = hotfixd(dir.path(), &gh).await;
    let h = show(&d).await;
    assert_eq!(h["hotfix"]["state"], "STATE_PR_OPEN");
    assert_eq!(h["hotfix"]["pullRequest"]["number"], "4321");
    let k = kinds(&h);
    for kind in ["pr_requested", "pr_reconciled", "pr_opened"] {
        assert_eq!(
            k.iter().filter(|x| *x == kind).count(),
            1,
            "{kind} once in {k:?}"
        );
    }
    // Asking again creates nothing either.
    assert_eq!(d.ctl("bob", &["pr", INC]).await.unwrap_err().code, 19);
    let w = gh.world();
    assert_eq!(w.pulls.len(), 1, "one PR");
    assert_eq!(w.pulls[0].labels, vec!["hotfix".to_string()]);
    assert_eq!(
        w.writes.iter().filter(|x| x.ends_with("/pulls")).count(),
        1,
        "{:?}",
        w.writes
    );
    drop(w);
    gh.assert_contract_kept();
}

/// Killed while GitHub merges the revert PR: the restart finds it merged and
/// records the revert once; no second revert PR is opened.
#[tokio::test]
async fn killed_while_merging_the_revert_records_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let gh = FakeGitHub::start().await;
    let d = hotfixd(dir.path(), &gh).await;
    ready(&d, &gh, false).await;
    d.ctl("carol", &["merge", INC]).await.unwrap();
    d.ctl("svc-ci", &["sync", INC, "--revision", SHA])
        .await
        .unwrap();
    d.ctl(
        "svc-ci",
        &["verify", INC, "--not-recovered", "--value", "0.3"],
    )
    .await
    .unwrap();
    gh.world().hang = Some("put /repos/{owner}/{repo}/pulls/{pull_number}/merge");
    let reverting = in_background(&d, "carol", "revert");
    tokio::time::timeout(Duration::from_secs(30), gh.held())
        .await
        .expect("the revert merge reached GitHub");
    drop(d); // SIGKILL
    assert!(reverting.await.unwrap().is_err());

    let d = hotfixd(dir.path(), &gh).await;
    let h = show(&d).await;
    assert_eq!(h["hotfix"]["state"], "STATE_REVERTED");
    assert_eq!(h["hotfix"]["revertPr"], "4322");
    let k = kinds(&h);
    for kind in [
        "revert_requested",
        "revert_pr_opened",
        "revert_reconciled",
        "reverted",
    ] {
        assert_eq!(
            k.iter().filter(|x| *x == kind).count(),
            1,
            "{kind} once in {k:?}"
        );
    }
    let w = gh.world();
    assert_eq!(w.pulls.len(), 2, "the hotfix PR and one revert PR");
    assert_eq!(
        w.writes.iter().filter(|x| x.starts_with("graphql")).count(),
        1,
        "{:?}",
        w.writes
    );
    drop(w);
    gh.assert_contract_kept();
}

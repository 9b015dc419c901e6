//! Steps 2–4, the revert and the cleanup taken on GitHub by hotfixd, against
//! the fake of `common::github`, which validates every request and response
//! against GitHub's published REST description and GraphQL schema.

mod common;

use common::github::{CheckRun, FakeGitHub, REPO, fix_branch};
use common::*;

async fn daemon(fake: &FakeGitHub) -> Daemon {
    let gh = github_settings(fake);
    Daemon::start_configured(|s| s.github = Some(gh)).await
}

#[tokio::test]
async fn the_fix_is_read_from_github_not_typed() {
    let fake = FakeGitHub::start().await;
    let d = daemon(&fake).await;
    let b = declared_on_github(&fake, &d, INC, &[]).await;

    // What GitHub knows may not be typed in.
    let msg = d
        .ctl_err(
            "bob",
            &["fix", INC, "--branch", &b, "--message", "anything"],
            INVALID,
        )
        .await;
    assert!(msg.contains("--message/--message-file: "), "{msg}");
    let msg = d
        .ctl_err(
            "bob",
            &["fix", INC, "--branch", &b, "--file", "x.go:1:1"],
            INVALID,
        )
        .await;
    assert!(msg.contains("--file: "), "{msg}");
    // A stale expectation of the head is refused, not recorded.
    let msg = d
        .ctl_err(
            "bob",
            &["fix", INC, "--branch", &b, "--sha", SHA2],
            PRECONDITION,
        )
        .await;
    assert!(msg.contains("111111111111"), "{msg}");
    // A branch GitHub does not have.
    let msg = d
        .ctl_err(
            "bob",
            &["fix", INC, "--branch", &format!("hotfix/{INC}-nope")],
            PRECONDITION,
        )
        .await;
    assert!(msg.contains("404"), "{msg}");
    assert_eq!(d.state(INC).await, "DECLARED");

    // A GitHub that stays down is UNAVAILABLE, so scripts retry; it is
    // not the runbook refusing the step.
    fake.world().unavailable = 100;
    let msg = d
        .ctl_err(
            "bob",
            &["fix", INC, "--branch", &b, "--sha", SHA1],
            UNAVAILABLE,
        )
        .await;
    assert!(msg.contains("503") && msg.contains("retry"), "{msg}");
    assert_eq!(d.state(INC).await, "DECLARED");

    // A GitHub that stumbles twice is retried, not given up on.
    fake.world().unavailable = 2;
    let h = d
        .ctl_hotfix("bob", &["fix", INC, "--branch", &b, "--sha", SHA1])
        .await;
    assert_eq!(fake.world().unavailable, 0);
    assert_eq!(h["state"], "STATE_FIX_SUBMITTED");
    assert_eq!(h["fix"]["sha"], SHA1);
    assert_eq!(h["fix"]["changedLines"], 4);
    let shown = d.ctl("bob", &["show", INC]).await.unwrap();
    assert!(shown.contains("read from GitHub"), "{shown}");

    // The core checks run on GitHub's facts: a commit message without the
    // approver is refused.
    let inc2 = incident(2);
    let b2 = branch(&inc2);
    fake.world().branches.insert(
        b2.clone(),
        fix_branch(SHA2, &format!("hotfix(catalog): fix\n\n{inc2}")),
    );
    declare(&d, &inc2, &[]).await.unwrap();
    let msg = d
        .ctl_err("bob", &["fix", &inc2, "--branch", &b2], INVALID)
        .await;
    assert!(msg.contains("approver"), "{msg}");
    fake.assert_contract_kept();
}

#[tokio::test]
async fn the_pr_is_opened_labelled_once_and_its_checks_followed() {
    let fake = FakeGitHub::start().await;
    let d = daemon(&fake).await;
    let pr = pr_opened_on_github(&fake, &d, INC, &[]).await;
    {
        let w = fake.world();
        assert_eq!(w.pulls.len(), 1, "one PR");
        let p = w.pull(pr).unwrap();
        assert!(
            p.title.starts_with(&format!("HOTFIX: {INC}")),
            "{}",
            p.title
        );
        assert!(p.body.contains("Approver: @alice"), "{}", p.body);
        assert!(p.body.contains("Cleanup-owner: @bob"), "{}", p.body);
        assert!(
            p.body.contains("Postmortem: <will follow within 2days>"),
            "{}",
            p.body
        );
        assert_eq!(p.labels, vec!["hotfix".to_string()]);
        assert_eq!(p.head_ref, branch(INC));
    }
    // Asking again creates nothing.
    d.ctl_err("bob", &["pr", INC], PRECONDITION).await;
    assert_eq!(fake.world().pulls.len(), 1);

    // Checks are read from GitHub, never reported by hand.
    let msg = d
        .ctl_err(
            "svc-ci",
            &["check", INC, "--name", "scan", "--result", "success"],
            PRECONDITION,
        )
        .await;
    assert!(msg.contains("read from GitHub"), "{msg}");

    fake.world().check_runs.insert(
        SHA1.into(),
        vec![CheckRun::running("lint"), CheckRun::running("scan")],
    );
    let endpoint = d.endpoint.clone();
    let waiting = tokio::spawn(async move {
        let cli = clap::Parser::try_parse_from([
            "hotfixctl",
            "--endpoint",
            &endpoint,
            "--token",
            "dev-bob",
            "check",
            INC,
            "--wait",
        ])
        .unwrap();
        let mut out = Vec::new();
        let r = hotfixctl::cli::run(cli, &mut out).await;
        (r, String::from_utf8(out).unwrap())
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(d.state(INC).await, "PR_OPEN");
    fake.world().finish_checks(SHA1, "success");
    let (r, out) = waiting.await.unwrap();
    r.unwrap_or_else(|e| panic!("check --wait failed: {e}\n{out}"));
    assert!(out.contains("lint on 111111111111: in_progress"), "{out}");
    assert!(
        out.contains("scan on 111111111111: completed (success)"),
        "{out}"
    );
    assert_eq!(d.state(INC).await, "READY_TO_MERGE");
    let h = d.ctl_hotfix("bob", &["show", INC]).await;
    assert!(
        h["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["by"] == "hotfixd" && c["result"] == "CHECK_RESULT_SUCCESS"),
        "{h}"
    );
    fake.assert_contract_kept();
}

#[tokio::test]
async fn an_open_pr_of_the_branch_is_reused() {
    let fake = FakeGitHub::start().await;
    let d = daemon(&fake).await;
    let b = declared_on_github(&fake, &d, INC, &[]).await;
    let existing = fake
        .world()
        .open_pull(&b, &format!("HOTFIX: {INC} by hand"), "bob");
    d.ctl("bob", &["fix", INC, "--branch", &b]).await.unwrap();
    d.ctl("alice", &["approve", INC, "--sha", SHA1])
        .await
        .unwrap();
    let h = d.ctl_hotfix("bob", &["pr", INC]).await;
    assert_eq!(h["pullRequest"]["number"], existing.to_string());
    let w = fake.world();
    assert_eq!(w.pulls.len(), 1, "no second PR");
    assert!(
        !w.writes.iter().any(|x| x.ends_with("/pulls")),
        "{:?}",
        w.writes
    );
    assert_eq!(w.pull(existing).unwrap().labels, vec!["hotfix".to_string()]);
}

#[tokio::test]
async fn a_failed_scan_on_github_ends_the_hotfix() {
    let fake = FakeGitHub::start().await;
    let d = daemon(&fake).await;
    pr_opened_on_github(&fake, &d, INC, &[]).await;
    fake.world().check_runs.insert(
        SHA1.into(),
        vec![
            CheckRun::done("lint", "success"),
            CheckRun::done("scan", "failure"),
        ],
    );
    let e = d.ctl("bob", &["check", INC, "--wait"]).await.unwrap_err();
    assert_eq!(e.code, 1, "{}", e.message);
    assert_eq!(d.state(INC).await, "ABORTED");
    d.ctl_err("carol", &["merge", INC], PRECONDITION).await;
    assert_eq!(fake.world().merge_calls, 0);
    // The gate on the PR head says so.
    let w = fake
        .clone_world_when(|w| {
            w.status_posts
                .last()
                .is_some_and(|(_, c, s, _)| c == "hotfixd/gate" && s == "failure")
        })
        .await;
    let (sha, _, _, why) = w.status_posts.last().unwrap().clone();
    assert_eq!(sha, SHA1);
    assert!(why.starts_with("hotfix aborted: "), "{why}");
    fake.assert_contract_kept();
}

#[tokio::test]
async fn the_gate_is_pending_with_what_is_missing_then_success_on_the_pr_head() {
    let fake = FakeGitHub::start().await;
    let d = daemon(&fake).await;
    pr_opened_on_github(&fake, &d, INC, &[]).await;
    let gates = |posts: &Vec<(String, String, String, String)>| -> Vec<(String, String, String)> {
        posts
            .iter()
            .filter(|(_, c, _, _)| c == "hotfixd/gate")
            .map(|(sha, _, s, why)| (sha.clone(), s.clone(), why.clone()))
            .collect()
    };
    let w = fake
        .clone_world_when(|w| {
            gates(&w.status_posts)
                .iter()
                .any(|(_, s, _)| s == "pending")
        })
        .await;
    let (sha, _, why) = gates(&w.status_posts)[0].clone();
    assert_eq!(sha, SHA1, "on the PR's head");
    assert!(
        why.starts_with("waiting: checks not passed on 111111111111: ") && why.contains("scan"),
        "says what the runbook waits for: {why}"
    );
    assert!(why.chars().count() <= 140, "{why}");
    fake.world().finish_checks(SHA1, "success");
    d.ctl("bob", &["check", INC, "--wait"]).await.unwrap();
    let w = fake
        .clone_world_when(|w| {
            gates(&w.status_posts)
                .last()
                .is_some_and(|(_, s, _)| s == "success")
        })
        .await;
    // Set when what it says changes, not at every event.
    let said: Vec<String> = gates(&w.status_posts)
        .iter()
        .map(|(_, s, _)| s.clone())
        .collect();
    assert_eq!(
        said.iter().filter(|s| *s == "success").count(),
        1,
        "{said:?}"
    );
    // The merge conditions hold on GitHub as in hotfixd.
    let (_, state) = w.statuses[SHA1]
        .iter()
        .find(|(c, _)| c == "hotfixd/gate")
        .unwrap()
        .clone();
    assert_eq!(state, "success");
    // Its own status is not a required check: the merge goes on.
    d.ctl("carol", &["merge", INC]).await.expect("merge");
    fake.assert_contract_kept();
}

#[tokio::test]
async fn a_skipped_scan_is_not_a_passed_scan() {
    let fake = FakeGitHub::start().await;
    let d = daemon(&fake).await;
    pr_opened_on_github(&fake, &d, INC, &[]).await;
    fake.world().finish_checks(SHA1, "success");
    fake.world().check_runs.get_mut(SHA1).unwrap()[2] = CheckRun::done("scan", "skipped");
    let e = d.ctl("bob", &["check", INC, "--wait"]).await.unwrap_err();
    assert_eq!(e.code, 1, "{}", e.message);
    assert_eq!(d.state(INC).await, "ABORTED");
}

#[tokio::test]
async fn commit_statuses_count_as_checks() {
    let fake = FakeGitHub::start().await;
    let d = daemon(&fake).await;
    pr_opened_on_github(&fake, &d, INC, &[]).await;
    {
        let mut w = fake.world();
        w.check_runs.insert(
            SHA1.into(),
            vec![
                CheckRun::done("lint", "success"),
                CheckRun::done("unit-changed-package", "success"),
            ],
        );
        w.statuses.insert(
            SHA1.into(),
            vec![
                ("scan".into(), "success".into()),
                ("build-sign-push".into(), "success".into()),
            ],
        );
    }
    d.ctl("bob", &["check", INC, "--wait"]).await.unwrap();
    assert_eq!(d.state(INC).await, "READY_TO_MERGE");
    fake.assert_contract_kept();
}

/// Merge, then a symptom that does not recover: hotfixd opens the revert
/// PR with GraphQL `revertPullRequest` and merges it.
#[tokio::test]
async fn a_hotfix_that_did_not_recover_is_reverted_on_github() {
    let fake = FakeGitHub::start().await;
    let d = daemon(&fake).await;
    let pr = pr_opened_on_github(&fake, &d, INC, &[]).await;
    fake.world().finish_checks(SHA1, "success");
    d.ctl("bob", &["check", INC, "--wait"]).await.unwrap();
    d.ctl("carol", &["merge", INC]).await.unwrap();
    assert!(fake.world().pull(pr).unwrap().merged);
    d.ctl("svc-ci", &["sync", INC, "--revision", SHA1])
        .await
        .unwrap();
    d.ctl(
        "svc-ci",
        &["verify", INC, "--not-recovered", "--value", "0.2"],
    )
    .await
    .unwrap();
    assert_eq!(d.state(INC).await, "REVERT_REQUIRED");

    // Only a platform-admin reverts.
    d.ctl_err("bob", &["revert", INC], DENIED).await;
    let h = d.ctl_hotfix("carol", &["revert", INC]).await;
    assert_eq!(h["state"], "STATE_REVERTED");
    let w = fake.world();
    let revert = w
        .pulls
        .iter()
        .find(|p| p.head_ref == format!("revert-{pr}-{}", branch(INC)))
        .expect("revert PR opened");
    assert!(revert.merged, "revert PR merged");
    assert!(
        w.writes.iter().any(|x| x == "graphql revertPullRequest"),
        "{:?}",
        w.writes
    );
    drop(w);
    fake.assert_contract_kept();
}

#[tokio::test]
async fn the_cleanup_pr_is_checked_on_github() {
    let fake = FakeGitHub::start().await;
    let d = daemon(&fake).await;
    pr_opened_on_github(&fake, &d, INC, &[]).await;
    fake.world().finish_checks(SHA1, "success");
    d.ctl("bob", &["check", INC, "--wait"]).await.unwrap();
    mitigate_synced(&d).await;

    let cleanup_sha = "3333333333333333333333333333333333333333";
    let n = {
        let mut w = fake.world();
        w.branches.insert(
            format!("cleanup/{INC}-tests"),
            fix_branch(cleanup_sha, "tests"),
        );
        w.open_pull(
            &format!("cleanup/{INC}-tests"),
            &format!("Cleanup: {INC}"),
            "bob",
        )
    };
    let pr = n.to_string();
    let refused = |why: &'static str| {
        let d = &d;
        let pr = pr.clone();
        async move {
            let msg = d
                .ctl_err("bob", &["cleanup", INC, "--pr", &pr], PRECONDITION)
                .await;
            assert!(msg.contains(why), "expected '{why}' in: {msg}");
        }
    };
    refused("not merged").await;
    fake.world().pull_mut(n).unwrap().merged = true;
    fake.world().pull_mut(n).unwrap().reviews = vec![("bob".into(), "APPROVED".into())];
    refused("other than its author").await;
    fake.world().pull_mut(n).unwrap().reviews = vec![
        ("bob".into(), "APPROVED".into()),
        ("erin".into(), "CHANGES_REQUESTED".into()),
        ("alice".into(), "APPROVED".into()),
    ];
    refused("no checks").await;
    fake.world().check_runs.insert(
        cleanup_sha.into(),
        vec![
            CheckRun::done("integration", "success"),
            CheckRun::done("e2e", "failure"),
        ],
    );
    refused("e2e").await;
    fake.world().finish_checks(cleanup_sha, "success");
    fake.world().pull_mut(n).unwrap().labels = vec!["hotfix".into()];
    refused("'hotfix' label").await;
    fake.world().pull_mut(n).unwrap().labels = vec!["tests".into()];
    // What GitHub knows may not be typed in.
    d.ctl_err(
        "bob",
        &["cleanup", INC, "--pr", &pr, "--label", "tests"],
        INVALID,
    )
    .await;

    let h = d.ctl_hotfix("bob", &["cleanup", INC, "--pr", &pr]).await;
    assert_eq!(h["cleanup"]["prNumber"], n.to_string());
    assert_eq!(
        h["cleanup"]["url"],
        format!("https://github.com/{REPO}/pull/{n}")
    );
    let shown = d.ctl("bob", &["show", INC]).await.unwrap();
    assert!(shown.contains("approved by @alice"), "{shown}");
    fake.assert_contract_kept();
}

/// Merge (on GitHub), then sync and verify as reported.
async fn mitigate_synced(d: &Daemon) {
    d.ctl("carol", &["merge", INC]).await.expect("merge");
    d.ctl("svc-ci", &["sync", INC, "--revision", SHA1])
        .await
        .expect("sync");
    d.ctl(
        "svc-ci",
        &["verify", INC, "--recovered", "--value", "0.002"],
    )
    .await
    .expect("verify");
    assert_eq!(d.state(INC).await, "MITIGATED");
}

#[tokio::test]
async fn a_drill_reads_github_and_writes_nothing_to_it() {
    let fake = FakeGitHub::start().await;
    let d = daemon(&fake).await;
    let pr = pr_opened_on_github(&fake, &d, INC, &["--drill"]).await;
    assert_eq!(pr, 0, "no PR was opened");
    fake.world().finish_checks(SHA1, "success");
    d.ctl("bob", &["check", INC, "--wait"]).await.unwrap();
    d.ctl("carol", &["merge", INC]).await.unwrap();
    d.ctl("svc-ci", &["sync", INC, "--revision", SHA1])
        .await
        .unwrap();
    d.ctl(
        "svc-ci",
        &["verify", INC, "--not-recovered", "--value", "0.2"],
    )
    .await
    .unwrap();
    d.ctl("carol", &["revert", INC]).await.unwrap();
    assert_eq!(d.state(INC).await, "REVERTED");
    let shown = d.ctl("bob", &["show", INC]).await.unwrap();
    for would in [
        "would open PR",
        "would squash-merge",
        "would open and squash-merge the revert",
    ] {
        assert!(shown.contains(would), "'{would}' in {shown}");
    }
    let w = fake.world();
    assert!(
        w.writes.is_empty(),
        "a drill wrote to GitHub: {:?}",
        w.writes
    );
    assert!(w.pulls.is_empty());
    drop(w);
    fake.assert_contract_kept();
}

#[tokio::test]
async fn a_repository_switched_off_keeps_the_manual_steps() {
    let fake = FakeGitHub::start().await;
    let mut gh = github_settings(&fake);
    gh.lane.manual_repositories.insert(REPO.to_string());
    let d = Daemon::start_configured(|s| s.github = Some(gh)).await;
    ready_to_merge(&d, INC).await;
    mitigate(&d, INC).await;
    assert_eq!(d.state(INC).await, "MITIGATED");
    assert_eq!(fake.world().requests, 0, "GitHub was not asked anything");
}

/// The fake is only worth its contract: what GitHub would not accept or
/// send is caught.
#[tokio::test]
async fn the_fake_catches_what_github_would_not_accept_or_send() {
    use common::github::{Contract, TOKEN};
    let fake = FakeGitHub::start().await;
    hotfixd::integrations::install_crypto_provider();
    let http = reqwest::Client::new();
    let get = |path: &str| {
        http.get(format!("{}{path}", fake.url()))
            .bearer_auth(TOKEN)
            .send()
    };
    get("/repos/bookstore/catalog/pulls?state=open&colour=blue")
        .await
        .unwrap();
    get("/repos/bookstore/catalog/branches/main").await.unwrap();
    http.post(format!("{}/repos/bookstore/catalog/pulls", fake.url()))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"title": "no head or base"}))
        .send()
        .await
        .unwrap();
    http.post(format!("{}/graphql", fake.url()))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"query": "mutation { revertPullRequest(input: {pullRequestId: \"x\"}) { noSuchField } }"}))
        .send()
        .await
        .unwrap();
    http.put(format!(
        "{}/repos/bookstore/catalog/pulls/1/merge",
        fake.url()
    ))
    .bearer_auth(TOKEN)
    .json(&serde_json::json!({"merge_method": "fast-forward"}))
    .send()
    .await
    .unwrap();
    let v = fake.world().violations.join("\n");
    for expected in [
        "unknown query parameter 'colour'",
        "GET /repos/bookstore/catalog/branches/main is not an operation",
        "\"head\" is a required property",
        "noSuchField",
        "\"fast-forward\" is not one of",
    ] {
        assert!(v.contains(expected), "'{expected}' not caught in:\n{v}");
    }
    // A response missing a required field does not pass.
    let pointer = "/paths/~1repos~1{owner}~1{repo}~1pulls~1{pull_number}/get/responses/200/content/application~1json/schema";
    let mut pr = Contract::get().example(pointer);
    pr.as_object_mut().unwrap().remove("number");
    let e = Contract::get().check(pointer, &pr).unwrap_err();
    assert!(e.contains("\"number\" is a required property"), "{e}");
}

/// platform-admin mapped to a GitHub team: the team decides who merges,
/// not the roster, and a change on GitHub is seen within the refresh.
#[tokio::test]
async fn a_role_mapped_to_a_github_team_follows_its_membership() {
    let fake = FakeGitHub::start().await;
    fake.world().teams.insert(
        "bookstore/platform-admins".into(),
        ["dave".to_string()].into(),
    );
    let mut gh = github_settings(&fake);
    gh.teams.insert(
        hotfixd::domain::Role::PlatformAdmin,
        ("bookstore".into(), "platform-admins".into()),
    );
    let d = Daemon::start_configured(|s| s.github = Some(gh)).await;
    let roles = |who: &'static str| {
        let d = &d;
        async move { d.ctl_json(who, &["whoami"]).await["roles"].to_string() }
    };
    // The roster says carol is a platform-admin; the team says dave is.
    assert!(!roles("carol").await.contains("platform-admin"));
    assert!(roles("dave").await.contains("platform-admin"));
    pr_opened_on_github(&fake, &d, INC, &[]).await;
    fake.world().finish_checks(SHA1, "success");
    d.ctl("bob", &["check", INC, "--wait"]).await.unwrap();
    d.ctl_err("carol", &["merge", INC], DENIED).await;

    // dave leaves the team on GitHub: the next refresh takes the role away.
    fake.world()
        .teams
        .get_mut("bookstore/platform-admins")
        .unwrap()
        .clear();
    for _ in 0..100 {
        if !roles("dave").await.contains("platform-admin") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    d.ctl_err("dave", &["merge", INC], DENIED).await;
    fake.world()
        .teams
        .get_mut("bookstore/platform-admins")
        .unwrap()
        .insert("dave".into());
    for _ in 0..100 {
        if roles("dave").await.contains("platform-admin") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    d.ctl("dave", &["merge", INC]).await.unwrap();
    assert_eq!(d.state(INC).await, "MERGED");
    fake.assert_contract_kept();
}

/// The webhook secret of the delivery tests.
const WEBHOOK_SECRET: &str = "whsec-for-the-tests";

/// A `check_run` delivery's body, as GitHub sends one when a run completes
/// (checked against GitHub's webhook schema; hotfixd reads none of it).
fn check_run_completed(sha: &str, name: &str) -> Vec<u8> {
    common::github::webhook(
        "check_run$completed",
        serde_json::json!({
            "action": "completed",
            "check_run": {
                "name": name,
                "head_sha": sha,
                "status": "completed",
                "conclusion": "success",
            },
            "repository": {"full_name": REPO},
        }),
    )
}

#[tokio::test]
async fn a_webhook_delivery_reads_the_checks_at_once_and_a_forged_one_changes_nothing() {
    let fake = FakeGitHub::start().await;
    let (d, base) = with_operator_listener(|s| {
        let mut gh = github_settings(&fake);
        // Polling an hour apart: only a delivery can make the test quick.
        gh.lane.checks_poll = std::time::Duration::from_secs(3600);
        gh.lane.checks_poll_with_webhooks = std::time::Duration::from_secs(3600);
        gh.lane.checks_timeout = std::time::Duration::from_secs(4 * 3600);
        gh.webhook_secret = Some(WEBHOOK_SECRET.into());
        s.github = Some(gh);
    })
    .await;
    let http: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    let hook = format!("{base}/webhooks/github");
    pr_opened_on_github(&fake, &d, INC, &[]).await;
    // Following: the first read saw the checks pending.
    let started = std::time::Instant::now();
    loop {
        let kinds = d.ctl_json("bob", &["show", INC]).await["timeline"].to_string();
        if kinds.contains("check_progress") {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{kinds}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    fake.world().finish_checks(SHA1, "success");
    let reads = fake.world().requests;

    // Forged, unsigned, replayed or too large: refused, no read of GitHub,
    // nothing changes.
    let body = check_run_completed(SHA1, "scan");
    let forged = FakeGitHub::deliver(&hook, Some("guessed"), "check_run", "d-1", &body).await;
    assert_eq!(forged.0, 401, "{forged:?}");
    let unsigned = FakeGitHub::deliver(&hook, None, "check_run", "d-2", &body).await;
    assert_eq!(unsigned.0, 401, "{unsigned:?}");
    assert!(unsigned.1.contains("X-Hub-Signature-256"), "{unsigned:?}");
    let huge = vec![b' '; hotfixd::ops::webhooks::MAX_DELIVERY + 1];
    let too_large =
        FakeGitHub::deliver(&hook, Some(WEBHOOK_SECRET), "check_run", "d-3", &huge).await;
    assert_eq!(too_large.0, 413, "{too_large:?}");
    let no_id = FakeGitHub::deliver(&hook, Some(WEBHOOK_SECRET), "check_run", "", &body).await;
    assert_eq!(no_id.0, 400, "{no_id:?}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        fake.world().requests,
        reads,
        "no refused delivery made a read"
    );
    assert_eq!(d.state(INC).await, "PR_OPEN");

    // Signed: answered at once, and the checks are read again now (the
    // poll is an hour away), from the API, not from the payload.
    let ok = FakeGitHub::deliver(&hook, Some(WEBHOOK_SECRET), "check_run", "d-4", &body).await;
    assert_eq!(ok.0, 202, "{ok:?}");
    let started = std::time::Instant::now();
    while d.state(INC).await != "READY_TO_MERGE" {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the delivery did not make hotfixd read the checks"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The same delivery again: ignored (and answered 200).
    let again = FakeGitHub::deliver(&hook, Some(WEBHOOK_SECRET), "check_run", "d-4", &body).await;
    assert_eq!(again.0, 200, "{again:?}");
    let ping = FakeGitHub::deliver(&hook, Some(WEBHOOK_SECRET), "ping", "d-5", b"{}").await;
    assert_eq!(ping.0, 202, "{ping:?}");

    let count = |event: &str, outcome: &str| {
        let series =
            format!("hotfixd_webhook_deliveries_total{{event=\"{event}\",outcome=\"{outcome}\"}}");
        async move { metric(http, &series).await }
    };
    assert_eq!(count("check_run", "bad_signature").await, Some(1.0));
    assert_eq!(count("check_run", "unsigned").await, Some(1.0));
    assert_eq!(count("check_run", "too_large").await, Some(1.0));
    assert_eq!(count("check_run", "malformed").await, Some(1.0));
    assert_eq!(count("check_run", "accepted").await, Some(1.0));
    assert_eq!(count("check_run", "duplicate").await, Some(1.0));
    assert_eq!(count("ping", "ignored").await, Some(1.0));
    fake.assert_contract_kept();
}

#[tokio::test]
async fn without_a_webhook_secret_there_is_no_intake() {
    let fake = FakeGitHub::start().await;
    let (_d, base) = with_operator_listener(|s| s.github = Some(github_settings(&fake))).await;
    let body = check_run_completed(SHA1, "scan");
    let r = FakeGitHub::deliver(
        &format!("{base}/webhooks/github"),
        Some(WEBHOOK_SECRET),
        "check_run",
        "d-1",
        &body,
    )
    .await;
    assert_eq!(r.0, 404, "{r:?}");
}

#[test]
fn the_readme_ruleset_is_one_github_takes_and_requires_the_gate() {
    let readme = include_str!("../README.md");
    let at = readme
        .find("**The gate.**")
        .expect("README documents the gate");
    let block = &readme[at..];
    let start = block.find("```json\n").expect("the ruleset's JSON") + "```json\n".len();
    let end = start + block[start..].find("```").unwrap();
    let json: String = block[start..end]
        .lines()
        .map(|l| l.strip_prefix("  ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let ruleset: serde_json::Value = serde_json::from_str(&json).expect("README's ruleset parses");
    common::github::Contract::get()
        .check(
            "/paths/~1repos~1{owner}~1{repo}~1rulesets/post/requestBody/content/application~1json/schema",
            &ruleset,
        )
        .unwrap_or_else(|e| panic!("README's ruleset is not one GitHub takes: {e}"));
    assert_eq!(
        ruleset["rules"][0]["parameters"]["required_status_checks"][0]["context"],
        "hotfixd/gate"
    );
    assert_eq!(
        ruleset["bypass_actors"].as_array().unwrap().len(),
        1,
        "hotfixd only"
    );
}

/// The fake's webhook payloads are held to GitHub's published schemas: one
/// GitHub would never send does not get through to a test.
#[test]
#[should_panic(expected = "not a push$event payload GitHub would send")]
fn a_webhook_payload_outside_githubs_schema_is_refused_by_the_fake() {
    common::github::webhook("push$event", serde_json::json!({"after": 42}));
}

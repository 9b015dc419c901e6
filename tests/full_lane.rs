//! The whole lane with every integration on: GitHub (fake, checked against
//! its REST description and GraphQL schema), Argo CD (fake, checked against
//! its Swagger), Prometheus (the real one, scraping an exporter the test
//! controls) and Slack (a receiver checking the webhook contract). Nobody
//! types a fact any of them knows.

mod common;

use std::time::Duration;

use common::github::{FakeGitHub, fix_branch};
use common::prometheus::{Prometheus, Ratio, exporter, prometheus};
use common::*;
use hotfixd::app::SyncSettings;
use hotfixd::app::VerifySettings;
use hotfixd::integrations::argocd::ArgoCdSettings;
use hotfixd::integrations::prometheus::PrometheusSettings;
use hotfixd::integrations::slack::SlackSettings;

struct World {
    d: Daemon,
    github: FakeGitHub,
    argo: common::argocd::Shared,
    slack: common::slack::Shared,
    ratio: Ratio,
    _prom: Prometheus,
}

async fn everything_on(window: Duration) -> World {
    everything_on_as(window, None).await
}

/// With `app`, hotfixd signs in to GitHub as the App (the bot's token is
/// refused) and takes webhook deliveries signed with `app.1` on the
/// operator listener at `app.0`.
async fn everything_on_as(window: Duration, app: Option<(std::net::SocketAddr, &str)>) -> World {
    let github = FakeGitHub::start().await;
    let (argo, argo_url) = common::argocd::fake(common::argocd::Fake {
        progressing: 1,
        ..Default::default()
    })
    .await;
    let (slack, slack_url) = common::slack::receiver().await;
    let (ratio, target) = exporter().await;
    let prom = prometheus(&target).await;
    let mut gh = github_settings(&github);
    if let Some((_, secret)) = app {
        github.world().app = Some(common::github::FakeApp::installed());
        gh.token = None;
        gh.app = Some(hotfixd::integrations::github::GitHubApp {
            id: common::github::APP_ID,
            private_key: common::github::APP_PRIVATE_KEY.into(),
        });
        gh.webhook_secret = Some(secret.into());
        // Deliveries drive it: polling would be an hour away.
        gh.lane.checks_poll = Duration::from_secs(3600);
        gh.lane.checks_poll_with_webhooks = Duration::from_secs(3600);
    }
    let prom_url = prom.url.clone();
    let d = Daemon::start_configured(move |s| {
        s.github = Some(gh);
        s.http_listen = app.map(|(http, _)| http);
        s.argocd = Some(ArgoCdSettings {
            url: argo_url,
            token: Some(common::argocd::TOKEN.into()),
            timeout: Duration::from_secs(5),
        });
        s.sync = SyncSettings {
            poll: Duration::from_millis(50),
            timeout: Duration::from_secs(10),
        };
        s.prometheus = Some(PrometheusSettings {
            url: prom_url,
            bearer_token: None,
            timeout: Duration::from_secs(5),
        });
        s.verify = VerifySettings {
            query: "max(hotfix_error_ratio{service=\"{app}\"})".into(),
            interval: Duration::from_millis(300),
            consecutive: 3,
            window,
            ..VerifySettings::default()
        };
        s.slack = Some(SlackSettings {
            status_webhook: Some(format!("{slack_url}/hooks/status")),
            audit_webhook: Some(format!("{slack_url}/hooks/audit")),
            timeout: Duration::from_secs(2),
            attempts: 3,
            backoff: Duration::from_millis(10),
        });
    })
    .await;
    World {
        d,
        github,
        argo,
        slack,
        ratio,
        _prom: prom,
    }
}

/// Declare, fix from GitHub, approve, PR by hotfixd, checks followed on
/// GitHub, merge on GitHub, sync through Argo CD. Returns the merge commit.
async fn merged_and_synced(w: &World) -> String {
    let d = &w.d;
    let pr = pr_opened_on_github(&w.github, d, INC, &[]).await;
    w.github.world().finish_checks(SHA1, "success");
    d.ctl("bob", &["check", INC, "--wait"])
        .await
        .expect("checks");
    d.ctl("carol", &["merge", INC]).await.expect("merge");
    let merge_sha = w.github.world().pull(pr).unwrap().merge_sha.clone();
    let out = d
        .ctl("carol", &["sync", INC, "--revision", &merge_sha, "--wait"])
        .await
        .expect("sync");
    assert!(out.contains("Synced/Healthy"), "{out}");
    assert_eq!(d.state(INC).await, "SYNCED");
    merge_sha
}

fn assert_every_contract_kept(w: &World) {
    w.github.assert_contract_kept();
    let argo = w.argo.fake.lock().unwrap();
    assert!(argo.violations.is_empty(), "Argo CD: {:?}", argo.violations);
    let slack = w.slack.lock().unwrap();
    assert!(slack.bad.is_empty(), "Slack: {:?}", slack.bad);
}

async fn slack_got(w: &World, channel: &str, needle: &str) {
    let slack = w.slack.clone();
    eventually(&format!("'{needle}' in #{channel}"), move || {
        slack
            .lock()
            .unwrap()
            .got
            .iter()
            .any(|(c, t)| c == channel && t.contains(needle))
    })
    .await;
}

#[tokio::test]
async fn from_declare_to_closed_with_every_integration_on() {
    let w = everything_on(Duration::from_secs(20)).await;
    let d = &w.d;
    let merge_sha = merged_and_synced(&w).await;
    {
        let argo = w.argo.fake.lock().unwrap();
        assert_eq!(argo.syncs.len(), 1);
        assert_eq!(argo.syncs[0]["revision"], merge_sha.as_str());
        assert_eq!(argo.syncs[0]["prune"], true);
    }

    // Step 6 measured in Prometheus.
    *w.ratio.lock().unwrap() = 0.002;
    tokio::time::sleep(Duration::from_millis(2500)).await; // scraped
    d.ctl("svc-ci", &["verify", INC, "--measure", "--wait"])
        .await
        .expect("recovered");
    assert_eq!(d.state(INC).await, "MITIGATED");

    // Step 7: the cleanup PR went through normal review on GitHub.
    let cleanup_sha = "3333333333333333333333333333333333333333";
    let n = {
        let mut g = w.github.world();
        let head = format!("cleanup/{INC}-tests");
        g.branches
            .insert(head.clone(), fix_branch(cleanup_sha, "tests + docs"));
        let n = g.open_pull(&head, &format!("Cleanup: {INC}"), "bob");
        let p = g.pull_mut(n).unwrap();
        p.merged = true;
        p.open = false;
        p.reviews = vec![("alice".into(), "APPROVED".into())];
        g.finish_checks(cleanup_sha, "success");
        n
    };
    d.ctl("bob", &["cleanup", INC, "--pr", &n.to_string()])
        .await
        .expect("cleanup");
    d.ctl(
        "bob",
        &[
            "postmortem",
            INC,
            "--url",
            "https://wiki.example/pm/1",
            "--why",
            "the test suite takes 30 minutes; action item: make it 10",
            "--bypass-justified",
            "yes",
        ],
    )
    .await
    .expect("postmortem");
    let closed = d
        .ctl_hotfix("dave", &["audit-review", INC, "--findings", "all in order"])
        .await;
    assert_eq!(closed["state"], "STATE_CLOSED");

    slack_got(&w, "status", &format!("DECLARING HOTFIX — {INC} P0")).await;
    slack_got(&w, "audit", "@carol").await;
    let g = w.github.world();
    assert_eq!(g.pulls.len(), 2, "the hotfix PR and the cleanup PR");
    assert!(g.pulls[0].merged && g.pulls[0].labels == vec!["hotfix".to_string()]);
    drop(g);
    assert_every_contract_kept(&w);
}

#[tokio::test]
async fn a_symptom_that_does_not_recover_is_reverted_and_synced_again() {
    let w = everything_on(Duration::from_secs(2)).await;
    let d = &w.d;
    let merge_sha = merged_and_synced(&w).await;
    // The ratio stays at 0.2.
    let e = d
        .ctl("svc-ci", &["verify", INC, "--measure", "--wait"])
        .await
        .unwrap_err();
    assert_eq!(e.code, 4, "{}", e.message);
    assert_eq!(d.state(INC).await, "REVERT_REQUIRED");

    let h = d.ctl_hotfix("carol", &["revert", INC]).await;
    assert_eq!(h["state"], "STATE_REVERTED");
    let revert_pr = h["revertPr"]
        .as_str()
        .and_then(|s| s.parse::<u64>().ok())
        .expect("revert PR recorded");
    let revert_sha = {
        let g = w.github.world();
        let p = g.pull(revert_pr).expect("revert PR on GitHub");
        assert!(p.merged);
        p.merge_sha.clone()
    };
    assert_ne!(revert_sha, merge_sha);
    // The revert is deployed again through Argo CD.
    let argo = w.argo.clone();
    let rs = revert_sha.clone();
    eventually("the revert synced", move || {
        argo.fake
            .lock()
            .unwrap()
            .syncs
            .iter()
            .any(|s| s["revision"] == rs.as_str())
    })
    .await;
    for _ in 0..200 {
        let shown = d.ctl("bob", &["show", INC]).await.unwrap();
        if shown.contains("revert_synced") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let shown = d.ctl("bob", &["show", INC]).await.unwrap();
    assert!(shown.contains("revert_synced"), "{shown}");
    assert_every_contract_kept(&w);
}

#[tokio::test]
async fn a_drill_with_every_integration_on_writes_nothing_to_any_of_them() {
    let w = everything_on(Duration::from_secs(2)).await;
    let d = &w.d;
    pr_opened_on_github(&w.github, d, INC, &["--drill"]).await;
    w.github.world().finish_checks(SHA1, "success");
    d.ctl("bob", &["check", INC, "--wait"])
        .await
        .expect("checks");
    d.ctl("carol", &["merge", INC]).await.expect("merge");
    d.ctl("carol", &["sync", INC, "--revision", SHA1, "--wait"])
        .await
        .expect("sync");
    *w.ratio.lock().unwrap() = 0.002;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    d.ctl("svc-ci", &["verify", INC, "--measure", "--wait"])
        .await
        .expect("verify");
    assert_eq!(d.state(INC).await, "MITIGATED");

    let shown = d.ctl("bob", &["show", INC]).await.unwrap();
    for would in ["would open PR", "would squash-merge", "dry-ran the sync"] {
        assert!(shown.contains(would), "'{would}' in {shown}");
    }
    // The relay has seen the events: the declaration and the admin merge
    // are recorded as skipped, not sent.
    for _ in 0..200 {
        let shown = d.ctl("bob", &["show", INC]).await.unwrap();
        if shown.matches("notification_skipped").count() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let shown = d.ctl("bob", &["show", INC]).await.unwrap();
    assert!(
        shown.matches("notification_skipped").count() >= 2,
        "{shown}"
    );
    let g = w.github.world();
    assert!(g.writes.is_empty(), "GitHub got writes: {:?}", g.writes);
    drop(g);
    let argo = w.argo.fake.lock().unwrap();
    assert!(
        argo.syncs.iter().all(|s| s["dryRun"] == true),
        "Argo CD got a real sync: {:?}",
        argo.syncs
    );
    drop(argo);
    assert!(w.slack.lock().unwrap().got.is_empty(), "Slack got a post");
    assert_every_contract_kept(&w);
}

/// The runbook's whole merge as an organization runs it: hotfixd signed in
/// as the GitHub App, driven by signed webhook deliveries, keeping
/// `hotfixd/gate`, and GitHub enforcing the branch ruleset that requires
/// it with the App as the only bypass. A person merging around hotfixd is
/// refused by GitHub, a pushed head holds the gate, hotfixd's merge goes
/// through.
#[tokio::test]
async fn with_the_github_app_webhooks_and_the_gate_only_hotfixd_merges_the_hotfix_pr() {
    const SECRET: &str = "whsec-full-lane";
    let http = free_addr();
    let w = everything_on_as(Duration::from_secs(20), Some((http, SECRET))).await;
    let d = &w.d;
    let hook = format!("http://{http}/webhooks/github");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while reqwest::get(format!("http://{http}/healthz"))
        .await
        .is_err()
    {
        assert!(std::time::Instant::now() < deadline, "no operator listener");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    {
        let mut g = w.github.world();
        g.required_status = Some("hotfixd/gate".into());
        g.people.insert("pat-of-dave".into(), "dave".into());
    }
    let mut deliveries = 0;
    // Each payload as GitHub's webhook schemas have it.
    let mut deliver = |event: &'static str, definition: &str, top: serde_json::Value| {
        deliveries += 1;
        let (hook, id) = (hook.clone(), format!("full-{deliveries}"));
        let body = common::github::webhook(definition, top);
        async move {
            let (status, text) = FakeGitHub::deliver(&hook, Some(SECRET), event, &id, &body).await;
            assert_eq!(status, 202, "{event}: {text}");
        }
    };
    let gate_on = |sha: &'static str, state: &'static str, needle: &'static str| {
        move |g: &common::github::World| {
            g.status_posts.iter().any(|(s, c, st, why)| {
                s == sha && c == "hotfixd/gate" && st == state && why.contains(needle)
            })
        }
    };
    let repo = serde_json::json!({"full_name": common::github::REPO});

    let b = branch(INC);
    let pr = pr_opened_on_github(&w.github, d, INC, &[]).await;
    w.github
        .clone_world_when(gate_on(SHA1, "pending", "waiting: checks not passed"))
        .await;

    // Around hotfixd: GitHub's ruleset refuses, the PR stays open.
    let (status, answer) = w.github.merge_as("pat-of-dave", pr, SHA1).await;
    assert_eq!(status, 405, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("hotfixd/gate"),
        "{answer}"
    );
    assert!(!w.github.world().pull(pr).unwrap().merged);

    // Someone pushes another commit to the hotfix branch: the delivery
    // moves the gate on the new head to pending at once, saying why.
    {
        let mut g = w.github.world();
        g.branches
            .insert(b.clone(), fix_branch(SHA2, &message(INC)));
        g.pull_mut(pr).unwrap().head_sha = SHA2.into();
    }
    deliver(
        "push",
        "push$event",
        serde_json::json!({"ref": format!("refs/heads/{b}"), "after": SHA2, "repository": repo}),
    )
    .await;
    w.github
        .clone_world_when(gate_on(
            SHA2,
            "pending",
            "recorded fix 111111111111: record it",
        ))
        .await;
    let (status, _) = w.github.merge_as("pat-of-dave", pr, SHA2).await;
    assert_eq!(status, 405, "the new head is held too");

    // Recorded and approved as the runbook says, its checks reported by
    // GitHub's deliveries: the gate opens on it.
    d.ctl("bob", &["fix", INC, "--branch", &b])
        .await
        .expect("fix again");
    d.ctl("alice", &["approve", INC, "--sha", SHA2])
        .await
        .expect("approve the new head");
    // Step 4 again for the new head; the checks finish, GitHub says so.
    let endpoint = d.endpoint.clone();
    let waiting = tokio::spawn(async move {
        ctl_argv(&[
            "hotfixctl",
            "--endpoint",
            &endpoint,
            "--token",
            "dev-bob",
            "check",
            INC,
            "--wait",
        ])
        .await
    });
    w.github
        .clone_world_when(gate_on(
            SHA2,
            "pending",
            "waiting: checks not passed on 222222222222",
        ))
        .await;
    w.github.world().finish_checks(SHA2, "success");
    deliver(
        "check_suite",
        "check_suite$completed",
        serde_json::json!({"action": "completed", "repository": repo}),
    )
    .await;
    waiting.await.unwrap().expect("the checks passed");
    w.github
        .clone_world_when(gate_on(SHA2, "success", "merge through hotfixd"))
        .await;
    assert_eq!(d.state(INC).await, "READY_TO_MERGE");

    // hotfixd's admin merge, as the App (the ruleset's bypass).
    d.ctl("carol", &["merge", INC]).await.expect("merge");
    let merge_sha = {
        let g = w.github.world();
        let p = g.pull(pr).unwrap();
        assert!(p.merged);
        p.merge_sha.clone()
    };
    d.ctl("carol", &["sync", INC, "--revision", &merge_sha, "--wait"])
        .await
        .expect("sync");
    *w.ratio.lock().unwrap() = 0.002;
    tokio::time::sleep(Duration::from_millis(2500)).await; // scraped
    d.ctl("svc-ci", &["verify", INC, "--measure", "--wait"])
        .await
        .expect("recovered");
    assert_eq!(d.state(INC).await, "MITIGATED");
    {
        let g = w.github.world();
        let app = g.app.as_ref().unwrap();
        assert_eq!(app.lookups, 1);
        assert!(app.minted >= 1);
        assert!(g.unauthorized.is_empty(), "{:?}", g.unauthorized);
    }
    assert_every_contract_kept(&w);
}

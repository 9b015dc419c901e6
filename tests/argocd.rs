//! Step 5's sync performed through Argo CD, against an in-process fake of
//! its API server that validates every request and every response against
//! Argo CD's published Swagger (tests/contracts/argocd-swagger.json).

mod common;

use std::time::Duration;

use common::argocd::*;
use common::*;
use hotfixd::app::SyncSettings;
use hotfixd::integrations::argocd::ArgoCdSettings;
use serde_json::json;

async fn daemon(base: &str) -> Daemon {
    let url = base.to_string();
    Daemon::start_configured(move |s| {
        s.argocd = Some(ArgoCdSettings {
            url,
            token: Some(TOKEN.into()),
            timeout: Duration::from_secs(5),
        });
        s.sync = SyncSettings {
            poll: Duration::from_millis(50),
            timeout: Duration::from_secs(10),
        };
    })
    .await
}

#[tokio::test]
async fn hotfixd_syncs_with_prune_waits_out_another_operation_and_records_healthy() {
    let (f, base) = fake(Fake {
        busy: 1,
        progressing: 2,
        ..Fake::default()
    })
    .await;
    let d = daemon(&base).await;
    ready_to_merge(&d, INC).await;
    d.ctl("carol", &["merge", INC]).await.unwrap();
    // Only a platform-admin or a service may sync.
    d.ctl_err("bob", &["sync", INC, "--revision", SHA1], DENIED)
        .await;
    let out = d
        .ctl(
            "carol",
            &["sync", INC, "--revision", SHA1, "--skip-canary", "--wait"],
        )
        .await
        .unwrap();
    assert!(
        out.contains("another Argo CD operation on bookstore-catalog-us-east is in progress"),
        "{out}"
    );
    assert!(out.contains("OutOfSync/Progressing"), "{out}");
    let h = d.ctl_hotfix("bob", &["show", INC]).await;
    assert_eq!(h["state"], "STATE_SYNCED");
    assert_eq!(h["sync"]["revision"], SHA1);
    assert_eq!(h["sync"]["skippedCanary"], true);
    assert_eq!(h["sync"]["by"], "carol");
    let f = f.fake.lock().unwrap();
    assert!(
        f.violations.is_empty(),
        "contract violations: {:?}",
        f.violations
    );
    assert_eq!(f.syncs.len(), 2, "the busy answer was retried once");
    assert_eq!(f.syncs[1]["prune"], true);
    assert_eq!(f.syncs[1]["dryRun"], false);
    assert_eq!(f.syncs[1]["revision"], SHA1);
    assert!(f.status_reads >= 3);
}

#[tokio::test]
async fn a_retried_sync_is_requested_once() {
    let (f, base) = fake(Fake::default()).await;
    let d = daemon(&base).await;
    ready_to_merge(&d, INC).await;
    d.ctl("carol", &["merge", INC]).await.unwrap();
    let sync = [
        "--request-id",
        "sync-1",
        "sync",
        INC,
        "--revision",
        SHA1,
        "--wait",
    ];
    d.ctl("carol", &sync).await.unwrap();
    let again = d
        .ctl_hotfix(
            "carol",
            &["--request-id", "sync-1", "sync", INC, "--revision", SHA1],
        )
        .await;
    assert_eq!(again["state"], "STATE_SYNCED");
    assert_eq!(f.fake.lock().unwrap().syncs.len(), 1);
}

#[tokio::test]
async fn a_failed_operation_is_reported_and_leaves_the_hotfix_merged() {
    let (f, base) = fake(Fake {
        fail: true,
        ..Fake::default()
    })
    .await;
    let d = daemon(&base).await;
    ready_to_merge(&d, INC).await;
    d.ctl("carol", &["merge", INC]).await.unwrap();
    let e = d
        .ctl("svc-ci", &["sync", INC, "--revision", SHA1, "--wait"])
        .await
        .unwrap_err();
    assert_eq!(e.code, 1, "{}", e.message);
    assert_eq!(d.state(INC).await, "MERGED");
    let show = d.ctl("bob", &["show", INC]).await.unwrap();
    assert!(
        show.contains("sync_failed") && show.contains("operation Failed"),
        "{show}"
    );
    assert!(f.fake.lock().unwrap().violations.is_empty());
}

#[tokio::test]
async fn a_drill_only_dry_runs_the_sync() {
    let (f, base) = fake(Fake::default()).await;
    let d = daemon(&base).await;
    ready_to_merge_with(&d, INC, &["--drill"]).await;
    d.ctl("carol", &["merge", INC]).await.unwrap();
    d.ctl("carol", &["sync", INC, "--revision", SHA1, "--wait"])
        .await
        .unwrap();
    assert_eq!(d.state(INC).await, "SYNCED");
    let show = d.ctl("bob", &["show", INC]).await.unwrap();
    assert!(
        show.contains("sync_dry_run") && show.contains("nothing was deployed"),
        "{show}"
    );
    let f = f.fake.lock().unwrap();
    assert!(f.violations.is_empty(), "{:?}", f.violations);
    assert!(
        f.syncs.iter().all(|s| s["dryRun"] == true),
        "a drill never syncs for real"
    );
    assert_eq!(f.status_reads, 0);
}

#[test]
fn the_contract_check_catches_a_wrong_shape() {
    let c = Contract::load();
    assert!(
        c.check(
            "applicationApplicationSyncRequest",
            &json!({"name": "a", "prune": true})
        )
        .is_ok()
    );
    assert!(
        c.check(
            "applicationApplicationSyncRequest",
            &json!({"name": "a", "prune": "yes"})
        )
        .is_err()
    );
    assert!(
        c.check(
            "applicationApplicationSyncRequest",
            &json!({"name": "a", "force": true})
        )
        .is_err()
    );
    assert!(
        c.check(
            "v1alpha1Application",
            &json!({"status": {"sync": {"status": 3}}})
        )
        .is_err()
    );
}

#[tokio::test]
async fn a_sync_cut_short_by_a_restart_is_reconciled_with_argo_cd_once() {
    let (f, base) = fake(Fake {
        progressing: u32::MAX,
        ..Fake::default()
    })
    .await;
    let d = daemon(&base).await;
    ready_to_merge(&d, INC).await;
    d.ctl("carol", &["merge", INC]).await.unwrap();
    // Sent, and still Progressing when hotfixd stops.
    d.ctl("carol", &["sync", INC, "--revision", SHA1])
        .await
        .unwrap();
    for _ in 0..200 {
        if f.fake.lock().unwrap().status_reads > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(d.state(INC).await, "MERGED");
    f.fake.lock().unwrap().progressing = 0; // Argo CD finishes meanwhile
    let d = d.restart().await;
    let show = d.ctl_json("bob", &["show", INC]).await;
    let h = &show["hotfix"];
    assert_eq!(h["state"], "STATE_SYNCED");
    assert_eq!(h["sync"]["by"], "carol");
    let kinds: Vec<&str> = show["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "sync_requested",
        "sync_interrupted",
        "sync_reconciled",
        "synced",
    ] {
        assert_eq!(
            kinds.iter().filter(|k| **k == kind).count(),
            1,
            "{kind} once in {kinds:?}"
        );
    }
    let f = f.fake.lock().unwrap();
    assert_eq!(f.syncs.len(), 1, "the sync was not sent again");
    assert!(f.violations.is_empty(), "{:?}", f.violations);
}

/// `sync --wait -o json`: each event waited through is a JSON line, then
/// the hotfix as it ended (before, a wait printed no progress in JSON);
/// for people, the progress with the time waited so far.
#[tokio::test]
async fn a_wait_shows_its_progress_in_json_and_for_people() {
    let (_f, base) = fake(Fake {
        progressing: 2,
        ..Fake::default()
    })
    .await;
    let d = daemon(&base).await;
    ready_to_merge(&d, INC).await;
    ready_to_merge(&d, &incident(2)).await;
    d.ctl("carol", &["merge", INC]).await.unwrap();
    let out = d
        .ctl(
            "carol",
            &["-o", "json", "sync", INC, "--revision", SHA1, "--wait"],
        )
        .await
        .unwrap();
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    // Each event as the WatchResponse that carried it, then `show`'s
    // answer.
    let kinds: Vec<&str> = lines
        .iter()
        .filter(|l| l["event"].is_object())
        .map(|l| l["event"]["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"synced"), "{out}");
    assert!(
        kinds.iter().any(|k| k.starts_with("sync_")),
        "progress: {out}"
    );
    assert_eq!(
        lines.last().unwrap()["hotfix"]["state"],
        "STATE_SYNCED",
        "{out}"
    );

    d.ctl("carol", &["merge", &incident(2)]).await.unwrap();
    let out = d
        .ctl(
            "carol",
            &["sync", &incident(2), "--revision", SHA1, "--wait"],
        )
        .await
        .unwrap();
    let progress: Vec<&str> = out.lines().filter(|l| l.starts_with("  [")).collect();
    assert!(!progress.is_empty(), "{out}");
    assert!(
        progress.iter().all(|l| l.contains("s] ")),
        "elapsed time on each: {out}"
    );
    assert!(out.contains("SYNCED"), "{out}");
}

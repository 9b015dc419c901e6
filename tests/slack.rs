//! Slack incoming webhooks against a local receiver that checks every
//! request against the webhook contract (`POST` JSON with a string `text`,
//! optional `blocks` array; answers `200 ok` or a plain-text error).

mod common;

use std::time::Duration;

use common::slack::*;
use common::*;
use hotfixd::integrations::slack::SlackSettings;

async fn daemon_with_slack(base: &str) -> Daemon {
    let base = base.to_string();
    Daemon::start_configured(move |s| {
        s.slack = Some(SlackSettings {
            status_webhook: Some(format!("{base}/hooks/status")),
            audit_webhook: Some(format!("{base}/hooks/audit")),
            timeout: Duration::from_secs(2),
            attempts: 3,
            backoff: Duration::from_millis(10),
        })
    })
    .await
}

/// Waits until `pred` holds for the receiver (bounded; not a timing claim).
async fn eventually(r: &Shared, what: &str, pred: impl Fn(&Receiver) -> bool) {
    for _ in 0..200 {
        if pred(&r.lock().unwrap()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("never happened: {what}");
}

async fn timeline_kinds(d: &Daemon, inc: &str) -> Vec<String> {
    d.ctl_json("bob", &["show", inc]).await["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn declarations_merges_and_breakglass_reach_their_channels() {
    let (r, base) = receiver().await;
    let d = daemon_with_slack(&base).await;
    ready_to_merge(&d, INC).await;
    eventually(&r, "the declaration", |r| !r.got.is_empty()).await;
    {
        let r = r.lock().unwrap();
        assert_eq!(r.got[0].0, "status");
        assert!(
            r.got[0]
                .1
                .starts_with(&format!("DECLARING HOTFIX — {INC} P0")),
            "{}",
            r.got[0].1
        );
        assert!(
            r.got[0].1.contains("Approver: @alice") && r.got[0].1.contains("Cleanup-owner: @bob")
        );
    }
    d.ctl(
        "bob",
        &["breakglass", INC, "grant", "--role", "breakglass-admin"],
    )
    .await
    .unwrap();
    d.ctl("carol", &["merge", INC]).await.unwrap();
    eventually(&r, "the audit posts", |r| {
        r.got.iter().filter(|(c, _)| c == "audit").count() == 2
    })
    .await;
    let r = r.lock().unwrap();
    let audit: Vec<&str> = r
        .got
        .iter()
        .filter(|(c, _)| c == "audit")
        .map(|(_, t)| t.as_str())
        .collect();
    assert!(
        audit[0].contains("breakglass role breakglass-admin"),
        "{audit:?}"
    );
    assert!(
        audit[1].contains("@carol merged PR #4321") && audit[1].contains("admin bypass"),
        "{audit:?}"
    );
    assert!(r.bad.is_empty(), "contract violations: {:?}", r.bad);
}

#[tokio::test]
async fn a_failing_webhook_is_retried_then_recorded_and_never_blocks_the_lane() {
    let (r, base) = receiver().await;
    r.lock().unwrap().fail_next = vec![(500, "internal_error"), (500, "internal_error")];
    let d = daemon_with_slack(&base).await;
    declare(&d, INC, &[]).await.unwrap();
    // Two 500s, then delivered on the third attempt.
    eventually(&r, "the retried delivery", |r| r.got.len() == 1).await;
    assert_eq!(r.lock().unwrap().attempts, 3);

    // A permanent error is not retried, is recorded, and the lane goes on.
    r.lock().unwrap().fail_next = vec![(404, "channel_not_found")];
    let inc2 = incident(2);
    declare(&d, &inc2, &[]).await.unwrap();
    let (b, m) = (branch(&inc2), message(&inc2));
    d.ctl("bob", &fix_args(&inc2, SHA1, &b, &m)).await.unwrap();
    for _ in 0..200 {
        if timeline_kinds(&d, &inc2)
            .await
            .iter()
            .any(|k| k == "notification_failed")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let show = d.ctl("bob", &["show", &inc2]).await.unwrap();
    assert!(
        show.contains("notification_failed") && show.contains("404 channel_not_found"),
        "{show}"
    );
    assert_eq!(r.lock().unwrap().attempts, 4, "a 404 is not retried");
}

#[tokio::test]
async fn a_drill_posts_nothing_and_records_what_it_would_have_posted() {
    let (r, base) = receiver().await;
    let d = daemon_with_slack(&base).await;
    declare(&d, INC, &["--drill"]).await.unwrap();
    for _ in 0..200 {
        if timeline_kinds(&d, INC)
            .await
            .iter()
            .any(|k| k == "notification_skipped")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let show = d.ctl("bob", &["show", INC]).await.unwrap();
    assert!(
        show.contains("drill: would post to the status channel: [DRILL] DECLARING HOTFIX"),
        "{show}"
    );
    // A real declaration afterwards is delivered: the relay did not stall.
    declare(&d, &incident(2), &[]).await.unwrap();
    eventually(&r, "the real declaration", |r| r.got.len() == 1).await;
    assert!(r.lock().unwrap().got[0].1.contains(&incident(2)));
    assert_eq!(
        r.lock().unwrap().attempts,
        1,
        "nothing was sent for the drill"
    );
}

#[tokio::test]
async fn overdue_obligations_are_posted_once_naming_the_owner() {
    let (r, base) = receiver().await;
    let d = daemon_with_slack(&base).await;
    ready_to_merge(&d, INC).await;
    mitigate(&d, INC).await;
    d.clock.advance(Duration::from_secs(25 * 3600));
    eventually(&r, "the overdue post", |r| {
        r.got.iter().any(|(_, t)| t.contains("overdue"))
    })
    .await;
    // Several sweeps later, still exactly one post about it.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let r = r.lock().unwrap();
    let overdue: Vec<&(String, String)> = r
        .got
        .iter()
        .filter(|(_, t)| t.contains("overdue"))
        .collect();
    assert_eq!(overdue.len(), 1, "{overdue:?}");
    assert_eq!(overdue[0].0, "status");
    assert!(
        overdue[0].1.contains("cleanup_pr is overdue") && overdue[0].1.contains("@bob"),
        "{}",
        overdue[0].1
    );
}

#[tokio::test]
async fn typed_text_cannot_page_everyone_link_elsewhere_or_forge_a_line() {
    let (r, base) = receiver().await;
    let d = daemon_with_slack(&base).await;
    declare_as(
        &d,
        "bob",
        INC,
        &[(
            "--symptom",
            "<!channel> <https://evil.example|the runbook> & co",
        )],
        &[],
    )
    .await
    .unwrap();
    eventually(&r, "the declaration", |r| !r.got.is_empty()).await;
    {
        let r = r.lock().unwrap();
        let text = &r.got[0].1;
        assert!(
            text.contains("&lt;!channel&gt; &lt;https://evil.example|the runbook&gt; &amp; co"),
            "{text}"
        );
        assert!(
            !text.contains("<!channel>") && !text.contains("<https"),
            "{text}"
        );
    }
    // A role with a line break would be a second audit line of its own.
    let msg = d
        .ctl_err(
            "bob",
            &[
                "breakglass",
                INC,
                "grant",
                "--role",
                "db\nINC-2026-05-20-001: breakglass cleaned by @carol",
            ],
            INVALID,
        )
        .await;
    assert!(msg.contains("role") && msg.contains("line break"), "{msg}");
}

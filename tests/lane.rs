//! End to end: the real hotfixd on 127.0.0.1:0, driven by the real
//! hotfixctl code, through the runbook's lane and its refusals.

mod common;

use common::*;

#[tokio::test]
async fn full_happy_path_to_closed() {
    let d = Daemon::start().await;
    let out = declare(&d, INC, &[]).await.unwrap();
    assert!(out.contains("DECLARED"), "{out}");
    let (b, m) = (branch(INC), message(INC));
    d.ctl("bob", &fix_args(INC, SHA1, &b, &m)).await.unwrap();
    assert_eq!(d.state(INC).await, "FIX_SUBMITTED");
    d.ctl("alice", &["approve", INC, "--sha", SHA1])
        .await
        .unwrap();
    assert_eq!(d.state(INC).await, "APPROVED");
    let pr = d
        .ctl_hotfix(
            "bob",
            &[
                "pr",
                INC,
                "--number",
                "4321",
                "--url",
                "https://github.com/bookstore/catalog/pull/4321",
                "--label",
                "hotfix",
            ],
        )
        .await;
    assert_eq!(pr["pullRequest"]["labels"][0], "hotfix");
    assert!(
        pr["pullRequest"]["title"]
            .as_str()
            .unwrap()
            .starts_with(&format!("HOTFIX: {INC}"))
    );
    assert_eq!(pr["state"], "STATE_PR_OPEN");
    for check in ["lint", "unit-changed-package", "scan"] {
        d.ctl(
            "svc-ci",
            &["check", INC, "--name", check, "--result", "success"],
        )
        .await
        .unwrap();
    }
    assert_eq!(d.state(INC).await, "PR_OPEN", "one check is still missing");
    // The author may report checks too.
    d.ctl(
        "bob",
        &[
            "check",
            INC,
            "--name",
            "build-sign-push",
            "--result",
            "success",
        ],
    )
    .await
    .unwrap();
    assert_eq!(d.state(INC).await, "READY_TO_MERGE");

    let merged = d.ctl_hotfix("carol", &["merge", INC]).await;
    assert_eq!(merged["state"], "STATE_MERGED");
    assert_eq!(merged["merge"]["by"], "carol");
    assert_eq!(merged["merge"]["approver"], "alice");
    assert_eq!(merged["merge"]["pr"], "4321", "uint64: a string");
    d.ctl("carol", &["sync", INC, "--revision", SHA1, "--skip-canary"])
        .await
        .unwrap();
    assert_eq!(d.state(INC).await, "SYNCED");
    let v = d
        .ctl_hotfix(
            "svc-ci",
            &["verify", INC, "--recovered", "--value", "0.004"],
        )
        .await;
    assert_eq!(v["state"], "STATE_MITIGATED");
    let kinds: Vec<&str> = v["obligations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["cleanup_pr", "postmortem", "audit_review"]);

    d.ctl(
        "bob",
        &[
            "cleanup",
            INC,
            "--pr",
            "4330",
            "--url",
            "https://github.com/bookstore/catalog/pull/4330",
        ],
    )
    .await
    .unwrap();
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
    .unwrap();
    assert_eq!(
        d.state(INC).await,
        "MITIGATED",
        "the audit review is still owed"
    );
    let closed = d
        .ctl_hotfix(
            "dave",
            &[
                "audit-review",
                INC,
                "--findings",
                "approver correct; no breakglass",
            ],
        )
        .await;
    assert_eq!(closed["state"], "STATE_CLOSED");

    // `list --open`: what still needs someone (the status page's board);
    // the closed one is listed only without it.
    let other = incident(3);
    declare(&d, &other, &[]).await.unwrap();
    let open = d.ctl("bob", &["list", "--open"]).await.unwrap();
    assert!(open.contains(&other) && !open.contains(INC), "{open}");
    let all = d.ctl("bob", &["list"]).await.unwrap();
    assert!(all.contains(&other) && all.contains(INC), "{all}");

    let show = d.ctl("bob", &["show", INC]).await.unwrap();
    for kind in [
        "declared",
        "fix_submitted",
        "approved",
        "pr_opened",
        "merged",
        "synced",
        "verified",
        "closed",
    ] {
        assert!(show.contains(kind), "timeline lacks {kind}:\n{show}");
    }
    assert!(show.contains("admin bypass"), "{show}");
    // Done work names what was done and the person who did it, not the
    // role that owed it.
    for done in [
        "cleanup_pr:    done: PR #4330 https://github.com/bookstore/catalog/pull/4330 by @bob",
        "postmortem:    done: https://wiki.example/pm/1 by @bob",
        "audit_review:  done by @dave",
    ] {
        assert!(show.contains(done), "no '{done}' in:\n{show}");
    }
    assert!(!show.contains("member other than"), "{show}");
    let report = d.ctl_json("bob", &["report"]).await;
    assert_eq!(report["lastWorked"][0]["incidentId"], INC);
    assert_eq!(report["lastWorked"][0]["resolvedBy"], "hotfix");
    assert_eq!(report["stale"], false);
    // 91 days later the runbook is stale; a flag flip does not exercise it.
    d.clock
        .advance(std::time::Duration::from_secs(91 * 24 * 3600));
    d.ctl("bob", &["mitigated", &incident(2), "--by", "flag"])
        .await
        .unwrap();
    let report = d.ctl_json("bob", &["report"]).await;
    assert_eq!(report["stale"], true);
    assert_eq!(report["lastWorked"][0]["resolvedBy"], "flag");
    assert_eq!(report["lastWorked"][1]["incidentId"], INC);
}

#[tokio::test]
async fn preflight_refusals_point_to_the_right_runbook() {
    let d = Daemon::start().await;
    let m = declare_as(&d, "bob", &incident(1), &[], &["--severity", "p1"])
        .await
        .unwrap_err();
    assert_eq!(m.code, PRECONDITION, "{}", m.message);
    let m = m.message;
    assert!(m.contains("normal pipeline"), "{m}");
    let m = d.ctl_err("bob", &[], 2).await;
    assert!(!m.is_empty());
    let e = declare(&d, &incident(2), &["--fix-unknown"])
        .await
        .unwrap_err();
    assert_eq!(e.code, PRECONDITION);
    assert!(e.message.contains("KNOWN fix"), "{}", e.message);
    let e = declare(&d, &incident(3), &["--flag-can-mitigate"])
        .await
        .unwrap_err();
    assert_eq!(e.code, PRECONDITION);
    assert!(
        e.message.contains("flip it first") && e.message.contains("mitigated"),
        "{}",
        e.message
    );
    let e = declare(&d, &incident(4), &["--rollback-can-mitigate"])
        .await
        .unwrap_err();
    assert!(e.message.contains("roll back first"), "{}", e.message);

    // The flag route is recorded, and blocks a later hotfix for the incident.
    let out = d
        .ctl_json("bob", &["mitigated", &incident(3), "--by", "flag"])
        .await;
    assert_eq!(out["mitigation"]["route"], "MITIGATION_ROUTE_FLAG");
    let e = declare(&d, &incident(3), &[]).await.unwrap_err();
    assert_eq!(e.code, EXISTS);
    let report = d.ctl_json("bob", &["report"]).await;
    assert_eq!(report["lastWorked"][0]["resolvedBy"], "flag");

    // Refusals changed nothing: no hotfix exists for the refused incidents.
    for n in [1, 2, 4] {
        d.ctl_err("bob", &["show", &incident(n)], NOT_FOUND).await;
    }
    // Only the mitigated incident is listed: no hotfix was created.
    let list = d.ctl_json("bob", &["list"]).await;
    assert_eq!(list["hotfixes"].as_array().unwrap().len(), 0, "{list}");
    assert_eq!(list["mitigations"][0]["incidentId"], incident(3).as_str());
}

#[tokio::test]
async fn bad_input_names_the_field_and_changes_nothing() {
    let d = Daemon::start().await;
    let e = declare(&d, "INC-2026-02-30-001", &[]).await.unwrap_err();
    assert_eq!(e.code, INVALID);
    // In the words typed: the argument and flags, not the API's fields.
    assert!(e.message.contains("INCIDENT: "), "{}", e.message);
    let long = "x".repeat(201);
    let e = declare_as(&d, "bob", INC, &[("--symptom", &long)], &[])
        .await
        .unwrap_err();
    assert!(e.message.contains("--symptom: "), "{}", e.message);
    let e = declare_as(&d, "bob", INC, &[("--eta", "25:00")], &[])
        .await
        .unwrap_err();
    assert!(e.message.contains("--eta: "), "{}", e.message);
    assert!(!e.message.contains("merge_eta"), "{}", e.message);
    let e = declare_as(&d, "bob", INC, &[("--approver", "nobody")], &[])
        .await
        .unwrap_err();
    assert!(
        e.message.contains("approver") && e.message.contains("roster"),
        "{}",
        e.message
    );
    d.ctl_err("bob", &["show", INC], NOT_FOUND).await;

    declare(&d, INC, &[]).await.unwrap();
    let m = message(INC);
    let e = d
        .ctl(
            "bob",
            &fix_args(INC, SHA1, "hotfix/INC-2026-05-20-002-x", &m),
        )
        .await
        .unwrap_err();
    assert!(e.message.contains("branch"), "{}", e.message);
    let b = branch(INC);
    let e = d
        .ctl("bob", &fix_args(INC, "abc", &b, &m))
        .await
        .unwrap_err();
    assert!(e.message.contains("sha"), "{}", e.message);
    let e = d
        .ctl("bob", &fix_args(INC, SHA1, &b, "fix without the id"))
        .await
        .unwrap_err();
    assert!(
        e.message.contains("--message/--message-file: ") && e.message.contains(INC),
        "{}",
        e.message
    );
    let no_approver = format!("{INC} fix");
    let e = d
        .ctl("bob", &fix_args(INC, SHA1, &b, &no_approver))
        .await
        .unwrap_err();
    assert!(e.message.contains("approver: @alice"), "{}", e.message);
    assert_eq!(d.state(INC).await, "DECLARED");
}

#[tokio::test]
async fn who_may_do_what() {
    let d = Daemon::start().await;
    // Self-approval is refused at declaration (four eyes) ...
    let e = declare_as(&d, "alice", INC, &[("--approver", "alice")], &[])
        .await
        .unwrap_err();
    assert_eq!(e.code, PRECONDITION);
    assert!(e.message.contains("four eyes"), "{}", e.message);
    // ... and an approver must be an sre-lead or eng-manager.
    let e = declare_as(&d, "bob", INC, &[("--approver", "carol")], &[])
        .await
        .unwrap_err();
    assert!(
        e.message.contains("sre-lead or eng-manager"),
        "{}",
        e.message
    );
    // A service principal is not human and cannot declare.
    let e = declare_as(&d, "svc-ci", INC, &[], &[]).await.unwrap_err();
    assert_eq!(e.code, DENIED);

    declare(&d, INC, &[]).await.unwrap();
    let (b, m) = (branch(INC), message(INC));
    d.ctl_err("carol", &fix_args(INC, SHA1, &b, &m), DENIED)
        .await;
    d.ctl("bob", &fix_args(INC, SHA1, &b, &m)).await.unwrap();
    // Only the named approver approves: not the author, not another lead.
    let msg = d
        .ctl_err("bob", &["approve", INC, "--sha", SHA1], DENIED)
        .await;
    assert!(msg.contains("@alice (the named approver)"), "{msg}");
    d.ctl_err("erin", &["approve", INC, "--sha", SHA1], DENIED)
        .await;
    d.ctl_err(
        "dave",
        &["check", INC, "--name", "lint", "--result", "success"],
        DENIED,
    )
    .await;

    // No token, or an unknown one: UNAUTHENTICATED; identity is never a field.
    let mut argv = vec!["--endpoint", d.endpoint.as_str(), "show", INC];
    let cli = <hotfixctl::cli::Cli as clap::Parser>::try_parse_from(
        std::iter::once("hotfixctl").chain(argv.drain(..)),
    )
    .unwrap();
    let e = hotfixctl::cli::run(cli, &mut Vec::new()).await.unwrap_err();
    assert_eq!(e.code, UNAUTHENTICATED);
    let e = d.ctl("mallory", &["show", INC]).await.unwrap_err();
    assert_eq!(e.code, UNAUTHENTICATED);

    let who = d.ctl_json("carol", &["whoami"]).await;
    assert_eq!(who["handle"], "carol");
    assert_eq!(who["roles"][0], "platform-admin");
}

#[tokio::test]
async fn merge_is_platform_admin_only_and_needs_approval_and_checks() {
    let d = Daemon::start().await;
    declare(&d, INC, &[]).await.unwrap();
    let (b, m) = (branch(INC), message(INC));
    d.ctl("bob", &fix_args(INC, SHA1, &b, &m)).await.unwrap();
    open_pr(&d, INC).await;
    pass_checks(&d, INC).await;
    // Merge before approval: refused, saying what is missing.
    let msg = d.ctl_err("carol", &["merge", INC], PRECONDITION).await;
    assert!(msg.contains("@alice has not approved"), "{msg}");
    d.ctl("alice", &["approve", INC, "--sha", SHA1])
        .await
        .unwrap();
    // Non-admins may not merge, not even the approver or the author.
    for who in ["bob", "alice", "erin", "dave", "svc-ci"] {
        let msg = d.ctl_err(who, &["merge", INC], DENIED).await;
        assert!(msg.contains("platform-admin"), "{msg}");
    }
    // The denials were recorded, and nothing moved.
    assert_eq!(d.state(INC).await, "READY_TO_MERGE");
    d.ctl("carol", &["merge", INC]).await.unwrap();
    let msg = d.ctl_err("carol", &["merge", INC], PRECONDITION).await;
    assert!(
        msg.contains("state MERGED") && msg.contains("sync"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_new_fix_voids_the_approval_and_the_checks() {
    let d = Daemon::start().await;
    ready_to_merge(&d, INC).await;
    let (b, m) = (branch(INC), message(INC));
    let out = d.ctl_hotfix("bob", &fix_args(INC, SHA2, &b, &m)).await;
    assert_eq!(out["state"], "STATE_PR_OPEN");
    assert!(out["approval"].is_null());
    assert_eq!(out["checks"].as_array().unwrap().len(), 0);
    let msg = d.ctl_err("carol", &["merge", INC], PRECONDITION).await;
    assert!(
        msg.contains("has not approved the current fix 222222222222"),
        "{msg}"
    );
    assert!(msg.contains("scan"), "{msg}");
    // Approving a stale SHA is refused; results for an old SHA do not count.
    let msg = d
        .ctl_err("alice", &["approve", INC, "--sha", SHA1], PRECONDITION)
        .await;
    assert!(msg.contains("current fix is 222222222222"), "{msg}");
    d.ctl_err(
        "svc-ci",
        &[
            "check", INC, "--name", "lint", "--result", "success", "--sha", SHA1,
        ],
        PRECONDITION,
    )
    .await;
    let show = d.ctl("bob", &["show", INC]).await.unwrap();
    assert!(show.contains("approval_voided"), "{show}");
}

#[tokio::test]
async fn over_limit_fix_needs_the_approvers_override() {
    let d = Daemon::start().await;
    declare(&d, INC, &[]).await.unwrap();
    let (b, m) = (branch(INC), message(INC));
    let big = [
        "fix",
        INC,
        "--branch",
        &b,
        "--sha",
        SHA1,
        "--message",
        &m,
        "--file",
        "catalog/handler.go:40:5",
        "--file",
        "orders/saga.go:10:0",
    ];
    let msg = d.ctl_err("bob", &big, PRECONDITION).await;
    assert!(
        msg.contains("55 lines (limit 50)") && msg.contains("more than one concern"),
        "{msg}"
    );
    assert!(msg.contains("hotfixctl override"), "{msg}");
    // The author cannot override their own fix.
    d.ctl_err(
        "bob",
        &["override", INC, "--sha", SHA1, "--reason", "trust me"],
        DENIED,
    )
    .await;
    d.ctl(
        "alice",
        &[
            "override",
            INC,
            "--sha",
            SHA1,
            "--reason",
            "generated code; reviewed",
        ],
    )
    .await
    .unwrap();
    let out = d.ctl_hotfix("bob", &big).await;
    assert_eq!(out["fix"]["overLimit"], true);
    assert_eq!(out["fix"]["changedLines"], 55);
    // The override is bound to its SHA.
    let other = [
        "fix",
        INC,
        "--branch",
        &b,
        "--sha",
        SHA2,
        "--message",
        &m,
        "--file",
        "catalog/handler.go:60:0",
    ];
    d.ctl_err("bob", &other, PRECONDITION).await;
}

#[tokio::test]
async fn failed_scan_aborts_and_nothing_overrides_it() {
    let d = Daemon::start().await;
    declare(&d, INC, &[]).await.unwrap();
    let (b, m) = (branch(INC), message(INC));
    d.ctl("bob", &fix_args(INC, SHA1, &b, &m)).await.unwrap();
    d.ctl("alice", &["approve", INC, "--sha", SHA1])
        .await
        .unwrap();
    open_pr(&d, INC).await;
    // A failed lint can be re-run; a failed scan cannot.
    d.ctl(
        "svc-ci",
        &["check", INC, "--name", "lint", "--result", "failure"],
    )
    .await
    .unwrap();
    let out = d
        .ctl_hotfix(
            "svc-ci",
            &["check", INC, "--name", "scan", "--result", "failure"],
        )
        .await;
    assert_eq!(out["state"], "STATE_ABORTED");
    assert!(
        out["abortReason"]
            .as_str()
            .unwrap()
            .contains("flag flip or a rollback")
    );
    for (who, args) in [
        (
            "svc-ci",
            vec!["check", INC, "--name", "scan", "--result", "success"],
        ),
        ("carol", vec!["merge", INC]),
        (
            "alice",
            vec!["override", INC, "--sha", SHA1, "--reason", "ship it"],
        ),
        ("bob", fix_args(INC, SHA2, &b, &m)),
    ] {
        let msg = d.ctl_err(who, &args, PRECONDITION).await;
        assert!(msg.contains("ABORTED") && msg.contains("final"), "{msg}");
    }
    // No chaining: a new incident is needed.
    let e = declare(&d, INC, &[]).await.unwrap_err();
    assert_eq!(e.code, EXISTS);
    assert!(e.message.contains("not chained"), "{}", e.message);
}

#[tokio::test]
async fn revert_path_is_final() {
    let d = Daemon::start().await;
    ready_to_merge(&d, INC).await;
    d.ctl("carol", &["merge", INC]).await.unwrap();
    d.ctl("carol", &["sync", INC, "--revision", SHA1])
        .await
        .unwrap();
    // A "recovered" claim above the threshold is refused.
    let msg = d
        .ctl_err(
            "bob",
            &["verify", INC, "--recovered", "--value", "0.2"],
            INVALID,
        )
        .await;
    assert!(msg.contains("recovered") && msg.contains("0.01"), "{msg}");
    let out = d
        .ctl_hotfix("bob", &["verify", INC, "--not-recovered", "--value", "0.2"])
        .await;
    assert_eq!(out["state"], "STATE_REVERT_REQUIRED");
    d.ctl_err("bob", &["revert", INC, "--pr", "4322"], DENIED)
        .await;
    // GitHub is off here: the revert PR must be named, and the refusal
    // says with which flag.
    let msg = d.ctl_err("carol", &["revert", INC], INVALID).await;
    assert!(msg.contains("--pr: must be a positive PR number"), "{msg}");
    let out = d
        .ctl_hotfix("carol", &["revert", INC, "--pr", "4322"])
        .await;
    assert_eq!(out["state"], "STATE_REVERTED");
    assert_eq!(out["revertPr"], "4322");
    // Final for the lane; the postmortem and audit review are still owed.
    let kinds: Vec<&str> = out["obligations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["postmortem", "audit_review"]);
    let msg = d
        .ctl_err("carol", &["sync", INC, "--revision", SHA1], PRECONDITION)
        .await;
    assert!(msg.contains("REVERTED"), "{msg}");
    let e = declare(&d, INC, &[]).await.unwrap_err();
    assert_eq!(e.code, EXISTS);
    let report = d.ctl_json("bob", &["report"]).await;
    assert_eq!(report["lastWorked"][0]["resolvedBy"], "hotfix-reverted");
}

#[tokio::test]
async fn obligations_go_overdue_on_the_clock() {
    let d = Daemon::start().await;
    ready_to_merge(&d, INC).await;
    mitigate(&d, INC).await;
    assert!(
        d.ctl("bob", &["list", "--overdue"])
            .await
            .unwrap()
            .lines()
            .count()
            == 1
    );
    d.clock.advance(std::time::Duration::from_secs(25 * 3600));
    let list = d.ctl_json("bob", &["list", "--overdue"]).await;
    assert_eq!(list["hotfixes"].as_array().unwrap().len(), 1);
    assert_eq!(list["hotfixes"][0]["incidentId"], INC);
    assert_eq!(list["hotfixes"][0]["obligations"][0]["overdue"], true);
    let report = d.ctl_json("bob", &["report"]).await;
    let overdue = report["overdue"].as_array().unwrap();
    assert_eq!(overdue.len(), 1, "{report}");
    assert_eq!(overdue[0]["obligation"], "cleanup_pr");
    assert_eq!(overdue[0]["owner"], "@bob");

    // Late work is still recorded; the postmortem then goes overdue too.
    d.ctl("bob", &["cleanup", INC, "--pr", "99"]).await.unwrap();
    d.clock.advance(std::time::Duration::from_secs(24 * 3600));
    let report = d.ctl_json("bob", &["report"]).await;
    let kinds: Vec<&str> = report["overdue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["obligation"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["postmortem"]);
    let show = d.ctl("bob", &["show", INC]).await.unwrap();
    assert!(show.contains("OVERDUE since"), "{show}");

    // A cleanup PR carrying the hotfix label is refused.
    let inc2 = incident(2);
    ready_to_merge(&d, &inc2).await;
    mitigate(&d, &inc2).await;
    let msg = d
        .ctl_err(
            "bob",
            &["cleanup", &inc2, "--pr", "100", "--label", "hotfix"],
            PRECONDITION,
        )
        .await;
    assert!(msg.contains("hotfix"), "{msg}");
    // The audit review must not be the author's.
    let msg = d
        .ctl_err(
            "bob",
            &["audit-review", &inc2, "--findings", "fine"],
            DENIED,
        )
        .await;
    assert!(
        msg.contains("someone else") || msg.contains("platform-team"),
        "{msg}"
    );
}

#[tokio::test]
async fn breakglass_is_tracked_to_its_checklist() {
    let d = Daemon::start().await;
    ready_to_merge(&d, INC).await;
    d.ctl_err(
        "bob",
        &[
            "breakglass",
            INC,
            "grant",
            "--role",
            "breakglass-admin",
            "--ttl",
            "2h",
        ],
        INVALID,
    )
    .await;
    d.ctl(
        "bob",
        &["breakglass", INC, "grant", "--role", "breakglass-admin"],
    )
    .await
    .unwrap();
    mitigate(&d, INC).await;
    d.ctl("bob", &["cleanup", INC, "--pr", "99"]).await.unwrap();
    // The postmortem must admit the breakglass use.
    let pm = [
        "postmortem",
        INC,
        "--url",
        "https://wiki/pm",
        "--why",
        "x",
        "--bypass-justified",
        "yes-but-rollback",
    ];
    d.ctl_err("bob", &pm, INVALID).await;
    let mut pm_bg = pm.to_vec();
    pm_bg.push("--breakglass-used");
    d.ctl("bob", &pm_bg).await.unwrap();
    d.ctl(
        "dave",
        &["audit-review", INC, "--findings", "scope minimal"],
    )
    .await
    .unwrap();
    assert_eq!(
        d.state(INC).await,
        "MITIGATED",
        "the checklist is outstanding"
    );
    d.ctl_err(
        "bob",
        &["breakglass", INC, "cleanup", "--item", "rds-snapshot"],
        INVALID,
    )
    .await;
    d.ctl(
        "bob",
        &[
            "breakglass",
            INC,
            "cleanup",
            "--item",
            "rds-snapshots",
            "--item",
            "iam-users",
        ],
    )
    .await
    .unwrap();
    assert_eq!(d.state(INC).await, "MITIGATED");
    let out = d
        .ctl_hotfix(
            "bob",
            &["breakglass", INC, "cleanup", "--item", "s3-buckets"],
        )
        .await;
    assert_eq!(out["state"], "STATE_CLOSED");
    let report = d.ctl_json("bob", &["report"]).await;
    assert_eq!(report["postmortems"], 1);
    assert_eq!(
        report["rollbackTrainingFlag"], true,
        "1 of 1 answered yes-but-rollback"
    );
}

#[tokio::test]
async fn rate_limit_gate_then_team_review() {
    let d = Daemon::start().await;
    // A drill never counts.
    declare(&d, &incident(100), &["--drill"]).await.unwrap();
    for n in 1..=4 {
        let out = declare(&d, &incident(n), &[]).await.unwrap();
        if n >= 2 {
            assert!(out.contains("process bug"), "author flag at {n}: {out}");
        }
        d.clock.advance(std::time::Duration::from_secs(3600));
    }
    let e = declare(&d, &incident(5), &[]).await.unwrap_err();
    assert_eq!(e.code, RATE_LIMITED);
    assert!(
        e.message.contains("team review") && e.message.contains("hotfixctl team-review"),
        "{}",
        e.message
    );
    // Drills still run while the gate is closed.
    declare(&d, &incident(101), &["--drill"]).await.unwrap();
    let report = d.ctl_json("bob", &["report"]).await;
    assert_eq!(report["window"]["count"], 4);
    assert_eq!(report["window"]["gateClosed"], true);
    // Only an eng-manager or sre-lead records the review.
    d.ctl_err("bob", &["team-review", "--notes", "we are fine"], DENIED)
        .await;
    d.ctl(
        "erin",
        &[
            "team-review",
            "--notes",
            "CI takes 30 min; action item filed",
        ],
    )
    .await
    .unwrap();
    let out = declare(&d, &incident(5), &[]).await.unwrap();
    assert!(out.contains("code-yellow"), "5th this quarter: {out}");
    // The review admitted one declaration; the next needs another review.
    let e = declare(&d, &incident(6), &[]).await.unwrap_err();
    assert_eq!(e.code, RATE_LIMITED);
    // Once the window rolls past, the gate opens by itself.
    d.clock
        .advance(std::time::Duration::from_secs(8 * 24 * 3600));
    declare(&d, &incident(6), &[]).await.unwrap();
    let report = d.ctl_json("bob", &["report"]).await;
    assert_eq!(report["authors"][0]["author"], "bob");
    assert_eq!(report["authors"][0]["count"], 6);
    assert_eq!(report["authors"][0]["flag"], "code-yellow");
}

#[tokio::test]
async fn retried_request_id_is_applied_once() {
    let d = Daemon::start().await;
    declare(&d, INC, &["--request-id", "declare-1"])
        .await
        .unwrap();
    // The retry answers the first answer instead of ALREADY_EXISTS.
    let again = declare(&d, INC, &["--request-id", "declare-1"])
        .await
        .unwrap();
    // The first answer, as a step prints it: what happened, what is next.
    let lines: Vec<&str> = again.lines().collect();
    assert!(
        lines[0].starts_with(&format!("{INC}  DECLARED  DECLARING HOTFIX — {INC} P0.")),
        "{again}"
    );
    assert_eq!(lines[1], "next: fix, by @bob (the author)", "{again}");
    let (b, m) = (branch(INC), message(INC));
    let mut fix = fix_args(INC, SHA1, &b, &m);
    fix.extend(["--request-id", "fix-1"]);
    d.ctl("bob", &fix).await.unwrap();
    let second = d.ctl_hotfix("bob", &fix).await;
    assert_eq!(second["version"], "2");
    let show = d.ctl_json("bob", &["show", INC]).await;
    assert_eq!(show["hotfix"]["version"], "2");
    assert_eq!(show["timeline"].as_array().unwrap().len(), 2);
    // The same id for a different request is refused, naming the field.
    let mut other = fix_args(INC, SHA2, &b, &m);
    other.extend(["--request-id", "fix-1"]);
    let msg = d.ctl_err("bob", &other, INVALID).await;
    assert!(msg.contains("--request-id: "), "{msg}");
    // Survives a restart.
    let d = d.restart().await;
    let third = d.ctl_hotfix("bob", &fix).await;
    assert_eq!(third["version"], "2");
    assert_eq!(
        d.ctl_json("bob", &["show", INC]).await["timeline"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn expected_version_detects_a_concurrent_change() {
    let d = Daemon::start().await;
    declare(&d, INC, &[]).await.unwrap();
    let (b, m) = (branch(INC), message(INC));
    let mut fix = vec!["--expected-version", "5"];
    fix.extend(fix_args(INC, SHA1, &b, &m));
    let msg = d.ctl_err("bob", &fix, CONFLICT).await;
    assert!(msg.contains("version 1"), "{msg}");
    fix[1] = "1";
    d.ctl("bob", &fix).await.unwrap();
}

#[tokio::test]
async fn a_restart_loses_nothing() {
    let d = Daemon::start().await;
    ready_to_merge(&d, INC).await;
    d.ctl("carol", &["merge", INC]).await.unwrap();
    d.ctl("bob", &["mitigated", &incident(9), "--by", "rollback"])
        .await
        .unwrap();
    d.ctl("erin", &["team-review", "--notes", "n"])
        .await
        .unwrap();
    let before = d.ctl_json("bob", &["show", INC]).await;
    let report_before = d.ctl_json("bob", &["report"]).await;
    let d = d.restart().await;
    let after = d.ctl_json("bob", &["show", INC]).await;
    assert_eq!(before, after);
    let report_after = d.ctl_json("bob", &["report"]).await;
    assert_eq!(report_before["window"], report_after["window"]);
    assert_eq!(report_before["lastWorked"], report_after["lastWorked"]);
    // Sequence numbers continue without a gap.
    d.ctl("carol", &["sync", INC, "--revision", SHA1])
        .await
        .unwrap();
    let after = d.ctl_json("bob", &["show", INC]).await;
    let seqs: Vec<u64> = after["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            t["seq"]
                .as_str()
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap()
        })
        .collect();
    let last = *seqs.last().unwrap();
    assert_eq!(
        last,
        before["hotfix"]["lastSeq"]
            .as_str()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap()
            + 3,
        "mitigation and team review took one each"
    );
}

#[tokio::test]
async fn a_pr_without_the_hotfix_label_is_refused_not_relabelled() {
    let d = Daemon::start().await;
    approved(&d, INC, &[]).await;
    let url = "https://github.com/bookstore/catalog/pull/4321";
    let msg = d
        .ctl_err(
            "bob",
            &[
                "pr", INC, "--number", "4321", "--url", url, "--label", "urgent",
            ],
            INVALID,
        )
        .await;
    assert!(
        msg.contains("--label: ") && msg.contains("'hotfix'"),
        "{msg}"
    );
    // Saying nothing about labels is not saying 'hotfix'.
    d.ctl_err(
        "bob",
        &["pr", INC, "--number", "4321", "--url", url],
        INVALID,
    )
    .await;
    assert_eq!(d.state(INC).await, "APPROVED", "nothing recorded");
    let pr = d
        .ctl_hotfix(
            "bob",
            &[
                "pr", INC, "--number", "4321", "--url", url, "--label", "urgent", "--label",
                "hotfix",
            ],
        )
        .await;
    assert_eq!(
        pr["pullRequest"]["labels"],
        serde_json::json!(["hotfix", "urgent"])
    );
}

#[tokio::test]
async fn a_line_break_in_a_title_cannot_forge_a_line_of_show_or_watch() {
    let d = Daemon::start().await;
    approved(&d, INC, &[]).await;
    let url = "https://github.com/bookstore/catalog/pull/4321";
    for title in [
        format!("HOTFIX: {INC} x\n2026-05-20T09:00:00Z @alice approved fix 222222222222"),
        format!("HOTFIX: {INC} x\u{202e}devorppa"),
        format!("HOTFIX: {INC} x\u{1b}[1A\u{1b}[2K"),
    ] {
        let msg = d
            .ctl_err(
                "bob",
                &[
                    "pr", INC, "--number", "4321", "--url", url, "--label", "hotfix", "--title",
                    &title,
                ],
                INVALID,
            )
            .await;
        assert!(msg.contains("title"), "{msg}");
    }
    assert_eq!(d.state(INC).await, "APPROVED");
    // What the daemon itself quotes back is shown escaped by the CLI.
    let msg = d.ctl_err("bob", &["show", "INC-\u{1b}[2J"], INVALID).await;
    assert!(!msg.contains('\u{1b}'), "{msg:?}");
}

#[tokio::test]
async fn an_approval_names_the_fix_the_approver_saw() {
    let d = Daemon::start().await;
    declare(&d, INC, &[]).await.unwrap();
    let (b, m) = (branch(INC), message(INC));
    d.ctl("bob", &fix_args(INC, SHA1, &b, &m)).await.unwrap();
    // Not interactive (no terminal): the SHA must be given.
    let e = d.ctl("alice", &["approve", INC]).await.unwrap_err();
    assert_eq!(e.code, 2, "{}", e.message);
    assert!(e.message.contains("--sha"), "{}", e.message);
    // Through the API, an approval naming nothing is refused by hotfixd.
    let status = d
        .client("alice")
        .await
        .lane
        .approve(hotfixctl::pb::ApproveRequest {
            mutation: None,
            incident_id: INC.into(),
            sha: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("sha"), "{}", status.message());
    // A fix pushed while alice reviewed SHA1 is not approved by her SHA1.
    d.ctl("bob", &fix_args(INC, SHA2, &b, &m)).await.unwrap();
    let msg = d
        .ctl_err("alice", &["approve", INC, "--sha", "1111111"], PRECONDITION)
        .await;
    assert!(msg.contains("current fix is 222222222222"), "{msg}");
    assert!(msg.contains("approve it by its SHA"), "{msg}");
    // Too short to name anything.
    d.ctl_err("alice", &["approve", INC, "--sha", "222"], INVALID)
        .await;
    let h = d
        .ctl_hotfix("alice", &["approve", INC, "--sha", "2222222"])
        .await;
    assert_eq!(h["state"], "STATE_APPROVED");
    assert_eq!(h["approval"]["sha"], SHA2, "the full SHA is recorded");
}

#[tokio::test]
async fn cluster_names_the_store_engine_and_its_replicas() {
    let d = Daemon::start().await;
    let c = d.ctl_json("bob", &["cluster"]).await;
    if Daemon::on_etcd() {
        // One replica, the leader.
        assert_eq!(c["engine"], "etcd");
        assert_eq!(c["replicas"][0]["leader"], true, "{c}");
        assert_eq!(c["replicas"].as_array().unwrap().len(), 1);
    } else {
        assert_eq!(c["engine"], "sled");
        assert!(c["replicas"].as_array().unwrap().is_empty(), "{c}");
        let table = d.ctl("bob", &["cluster"]).await.unwrap();
        assert_eq!(table.trim(), "store: sled (one replica)");
    }
}

/// An incident closed by a flag flip or a rollback (`mitigated`) can be
/// shown and listed like any other (it was "not found", and `list --state
/// MITIGATED_WITHOUT_HOTFIX` a usage error, while `report` counted it).
#[tokio::test]
async fn an_incident_mitigated_without_a_hotfix_is_shown_and_listed() {
    let d = Daemon::start().await;
    declare(&d, INC, &[]).await.unwrap();
    let flagged = incident(2);
    d.ctl(
        "bob",
        &[
            "mitigated",
            &flagged,
            "--by",
            "flag",
            "--notes",
            "tenant-header flag off",
        ],
    )
    .await
    .unwrap();

    let shown = d.ctl("bob", &["show", &flagged]).await.unwrap();
    assert!(
        shown.contains("MITIGATED_WITHOUT_HOTFIX (by flag)")
            && shown.contains("tenant-header flag off")
            && shown.contains("nothing owed"),
        "{shown}"
    );
    let v = d.ctl_json("bob", &["show", &flagged]).await;
    assert!(v["hotfix"].is_null(), "{v}");
    assert_eq!(v["mitigation"]["route"], "MITIGATION_ROUTE_FLAG");
    assert_eq!(v["mitigation"]["by"], "bob");
    assert_eq!(v["timeline"].as_array().unwrap().len(), 1, "{v}");

    // Listed with the hotfixes, and on its own.
    let all = d.ctl_json("bob", &["list"]).await;
    assert_eq!(all["hotfixes"][0]["incidentId"], INC);
    assert_eq!(all["mitigations"][0]["incidentId"], flagged.as_str());
    let table = d.ctl("bob", &["list"]).await.unwrap();
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&flagged) && l.contains("MITIGATED_WITHOUT_HOTFIX")),
        "{table}"
    );
    for spelling in ["MITIGATED_WITHOUT_HOTFIX", "mitigated-without-hotfix"] {
        let only = d.ctl_json("bob", &["list", "--state", spelling]).await;
        assert_eq!(only["hotfixes"].as_array().unwrap().len(), 0, "{only}");
        assert_eq!(only["mitigations"].as_array().unwrap().len(), 1, "{only}");
    }
    // A hotfix state filter lists hotfixes only.
    let declared = d.ctl_json("bob", &["list", "--state", "declared"]).await;
    assert_eq!(declared["hotfixes"].as_array().unwrap().len(), 1);
    assert_eq!(declared["mitigations"].as_array().unwrap().len(), 0);
    // A state that is neither says which are.
    let e = d.ctl_err("bob", &["list", "--state", "fixed"], 2).await;
    assert!(
        e.contains("mitigated-without-hotfix") && e.contains("pr-open"),
        "{e}"
    );
    // Nothing recorded at all: still not found, saying so.
    let e = d.ctl_err("bob", &["show", &incident(9)], NOT_FOUND).await;
    assert!(e.contains("no hotfix or mitigation"), "{e}");
}

/// Columns line up whatever they hold: the longest state
/// (MITIGATED_WITHOUT_HOTFIX) does not shift `watch`, an event about no
/// hotfix (a team review) shows no state rather than UNSPECIFIED, and
/// `list`'s OVERDUE column (two overdue obligations) does not run into the
/// symptom.
#[tokio::test]
async fn tables_line_up_whatever_their_cells_hold() {
    let d = Daemon::start().await;
    ready_to_merge(&d, INC).await;
    mitigate(&d, INC).await;
    d.ctl("bob", &["mitigated", &incident(2), "--by", "rollback"])
        .await
        .unwrap();
    d.ctl("erin", &["team-review", "--notes", "quarterly"])
        .await
        .unwrap();

    let watched = d.ctl("dave", &["watch", "--once"]).await.unwrap();
    let events: Vec<&str> = watched.lines().filter(|l| l.starts_with('#')).collect();
    assert!(events.len() >= 8, "{watched}");
    let actor_at: Vec<usize> = events.iter().map(|l| l.find(" @").unwrap()).collect();
    assert!(
        actor_at.iter().all(|&a| a == actor_at[0]),
        "the actor column moves:\n{watched}"
    );
    assert!(!watched.contains("UNSPECIFIED"), "{watched}");
    let review = events
        .iter()
        .find(|l| l.contains("team_review"))
        .unwrap_or_else(|| panic!("no team review in:\n{watched}"));
    assert!(review.contains(" - "), "{review}");

    // Two days on, the cleanup PR and the postmortem are overdue.
    d.clock.advance(std::time::Duration::from_secs(49 * 3600));
    let listed = d.ctl("bob", &["list"]).await.unwrap();
    let header = listed.lines().next().unwrap();
    let symptom_at = header.find("SYMPTOM").unwrap();
    let row = listed
        .lines()
        .find(|l| l.starts_with(INC))
        .unwrap_or_else(|| panic!("no {INC} in:\n{listed}"));
    assert!(row.contains("cleanup_pr, postmortem"), "{row}");
    assert_eq!(
        row.find("catalog returns 500"),
        Some(symptom_at),
        "the symptom starts under its header:\n{listed}"
    );
    for l in listed.lines() {
        assert_eq!(l, l.trim_end(), "no trailing blanks: {l:?}");
    }
}

/// A step prints what happened and what is next, not the whole card (the
/// four-check loop printed ~40 lines): one line of the step's events, one
/// of the next step and who may take it, and what is owed by when.
#[tokio::test]
async fn each_step_says_what_happened_and_what_is_next() {
    let d = Daemon::start().await;
    ready_to_merge(&d, INC).await;
    let merged = d.ctl("carol", &["merge", INC]).await.unwrap();
    let lines: Vec<&str> = merged.lines().collect();
    assert_eq!(lines.len(), 3, "{merged}");
    // The merge starts the clocks of what is owed.
    assert!(
        lines[2].starts_with("owed: cleanup_pr by @bob (due "),
        "{merged}"
    );
    assert!(
        lines[0].starts_with(&format!("{INC}  MERGED  ")) && lines[0].contains("@carol"),
        "{merged}"
    );
    assert!(lines[1].starts_with("next: sync, by "), "{merged}");
    d.ctl("svc-ci", &["sync", INC, "--revision", SHA1])
        .await
        .unwrap();
    let verified = d
        .ctl(
            "svc-ci",
            &["verify", INC, "--recovered", "--value", "0.002"],
        )
        .await
        .unwrap();
    let lines: Vec<&str> = verified.lines().collect();
    assert!(
        lines[0].starts_with(&format!("{INC}  MITIGATED  ")),
        "{verified}"
    );
    let owed = lines
        .iter()
        .find(|l| l.starts_with("owed: "))
        .unwrap_or_else(|| panic!("nothing owed in:\n{verified}"));
    for kind in [
        "cleanup_pr by @bob (due ",
        "postmortem by",
        "audit_review by",
    ] {
        assert!(owed.contains(kind), "{owed}");
    }
    assert!(lines.len() <= 4, "{verified}");
    // The whole card is `show`'s.
    let card = d.ctl("bob", &["show", INC]).await.unwrap();
    assert!(card.lines().count() > 15, "{card}");
}

/// `check --wait` with GitHub off waits the same way as with it on: for
/// the results whoever runs the checks records, until all passed (exit 0)
/// or one failed (exit 1). It was refused ("GitHub is not on").
#[tokio::test]
async fn check_wait_follows_recorded_results_with_github_off() {
    let d = Daemon::start().await;
    approved(&d, INC, &[]).await;
    open_pr(&d, INC).await;
    let recorder = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        pass_checks(&d, INC).await;
    };
    let (waited, ()) = tokio::join!(d.ctl("bob", &["check", INC, "--wait"]), recorder);
    let waited = waited.expect("all passed: exit 0");
    assert!(waited.contains("READY_TO_MERGE"), "{waited}");
    let progress = waited.lines().filter(|l| l.contains("s] ")).count();
    assert!(progress >= 4, "each result as it came:\n{waited}");

    let inc = incident(2);
    approved(&d, &inc, &[]).await;
    open_pr(&d, &inc).await;
    let recorder = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        d.ctl(
            "svc-ci",
            &["check", &inc, "--name", "scan", "--result", "failure"],
        )
        .await
        .expect("a failed scan");
    };
    let wait = ["check", inc.as_str(), "--wait"];
    let (waited, ()) = tokio::join!(d.ctl("bob", &wait), recorder);
    let e = waited.expect_err("a failed scan: exit 1");
    assert_eq!(e.code, 1, "{e}");
    assert_eq!(d.state(&inc).await, "ABORTED");
}

/// `sync --wait` with Argo CD off records the sync you did and says there
/// was nothing to follow (it exited 0 in silence, as if it had waited).
#[tokio::test]
async fn sync_wait_with_argocd_off_says_there_is_nothing_to_follow() {
    let d = Daemon::start().await;
    ready_to_merge(&d, INC).await;
    d.ctl("carol", &["merge", INC]).await.unwrap();
    let out = d
        .ctl("carol", &["sync", INC, "--revision", SHA1, "--wait"])
        .await
        .unwrap();
    assert!(out.starts_with(&format!("{INC}  SYNCED  ")), "{out}");
    assert!(out.contains("--wait: nothing to follow"), "{out}");
    assert!(out.contains("Argo CD is off"), "{out}");
}

#[tokio::test]
async fn machine_output_is_the_api_answer_with_who_for_scripts() {
    let d = Daemon::start().await;
    ready_to_merge(&d, INC).await;
    d.ctl("carol", &["merge", INC]).await.unwrap();
    let show = d.ctl_json("bob", &["show", INC]).await;
    let step = |name: &str| {
        show["nextSteps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == name)
            .unwrap_or_else(|| panic!("no {name} in {show}"))
            .clone()
    };
    // The sentence for people, and the same for a script.
    let sync = step("sync");
    assert_eq!(sync["handles"], serde_json::json!([]));
    assert_eq!(
        sync["roles"],
        serde_json::json!(["platform-admin", "service"])
    );
    let cleanup = step("cleanup");
    assert_eq!(cleanup["handles"], serde_json::json!(["bob"]));
    assert_eq!(cleanup["who"], "@bob (the author and cleanup owner)");
    let audit = step("audit-review");
    assert_eq!(audit["handles"], serde_json::json!([]));
    assert_eq!(audit["roles"], serde_json::json!(["platform-team"]));
    assert_eq!(audit["except"], "bob");
    assert_eq!(audit["anyHuman"], false);
    assert_eq!(
        audit["who"],
        "a platform-team principal other than the author @bob"
    );

    // YAML: the same answer, one document.
    let yaml = d.ctl("bob", &["-o", "yaml", "show", INC]).await.unwrap();
    assert!(yaml.starts_with("---\n"), "{yaml}");
    assert!(yaml.contains("\n  state: STATE_MERGED\n"), "{yaml}");
    assert!(yaml.contains(&format!("\n  incidentId: {INC}\n")), "{yaml}");
    assert!(yaml.contains("\n  except: bob\n"), "{yaml}");
    // A step in JSON is its response message.
    let answer = d
        .ctl_json("svc-ci", &["sync", INC, "--revision", SHA1])
        .await;
    assert_eq!(answer["hotfix"]["state"], "STATE_SYNCED", "{answer}");
    assert_eq!(answer.as_object().unwrap().len(), 1, "{answer}");
}

#[tokio::test]
async fn verify_measure_with_prometheus_off_follows_the_recorded_verdict() {
    let (d, base) = with_operator_listener(|_| {}).await;
    let http: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    ready_to_merge(&d, INC).await;
    d.ctl("carol", &["merge", INC]).await.unwrap();
    d.ctl("svc-ci", &["sync", INC, "--revision", SHA1])
        .await
        .unwrap();
    // Nothing to measure with: said, nothing started, nothing changed.
    let out = d.ctl("bob", &["verify", INC, "--measure"]).await.unwrap();
    assert!(out.contains("no Prometheus to measure with"), "{out}");
    assert!(
        out.contains(&format!("hotfixctl verify {INC} --recovered")),
        "{out}"
    );
    assert_eq!(d.state(INC).await, "SYNCED");
    let answer = d.ctl_json("bob", &["verify", INC, "--measure"]).await;
    assert_eq!(answer["measuring"], false, "{answer}");
    // A wait follows whoever records the verdict, as `check --wait` does.
    let waiting = {
        let (endpoint, inc) = (d.endpoint.clone(), INC.to_string());
        tokio::spawn(async move {
            ctl_argv(&[
                "hotfixctl",
                "--endpoint",
                &endpoint,
                "--token",
                "dev-bob",
                "verify",
                &inc,
                "--measure",
                "--wait",
            ])
            .await
        })
    };
    // Once the wait is following the incident's events (its Watch stream
    // is open), the verdict is recorded.
    for _ in 0..500 {
        if metric(http, "hotfixd_watchers").await == Some(1.0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(metric(http, "hotfixd_watchers").await, Some(1.0));
    d.ctl(
        "svc-ci",
        &["verify", INC, "--recovered", "--value", "0.001"],
    )
    .await
    .unwrap();
    let out = waiting
        .await
        .unwrap()
        .expect("the wait ends with the verdict");
    assert!(out.contains("waiting for it"), "{out}");
    assert!(out.contains("MITIGATED"), "{out}");
}

//! Every RPC × every role of the roster × (no token, a wrong token, the
//! principal's token): unauthenticated calls are UNAUTHENTICATED, and an
//! authenticated call is PERMISSION_DENIED exactly when the runbook's roles
//! do not allow it (anything else — done, wrong state, not configured — means
//! the caller got past authorization).

mod common;

use common::*;
use hotfixctl::Client;
use hotfixctl::pb;
use tonic::Code;

/// The roster of `--dev`: handle and role.
const WHO: [&str; 6] = ["alice", "erin", "bob", "carol", "dave", "svc-ci"];

/// Each RPC and who may call it, for the hotfix INC declared by bob (the
/// author and cleanup owner) with alice as approver.
const TABLE: &[(&str, &[&str])] = &[
    ("Declare", &["alice", "erin", "bob", "carol", "dave"]),
    (
        "RecordMitigation",
        &["alice", "erin", "bob", "carol", "dave"],
    ),
    ("SubmitFix", &["bob"]),
    ("OverrideFixLimits", &["alice"]),
    ("Approve", &["alice"]),
    ("OpenPullRequest", &["bob"]),
    ("RecordCheck", &["bob", "svc-ci"]),
    ("FollowChecks", &["bob", "svc-ci"]),
    ("Merge", &["carol"]),
    ("Sync", &["carol", "svc-ci"]),
    ("Verify", &["bob", "alice", "svc-ci"]),
    ("StartVerification", &["bob", "alice", "svc-ci"]),
    ("Revert", &["carol"]),
    ("RecordCleanup", &["bob"]),
    ("RecordPostmortem", &["bob"]),
    ("RecordAuditReview", &["dave"]),
    ("GrantBreakglass", &["bob"]),
    ("CleanupBreakglass", &["bob"]),
    ("GetHotfix", &WHO),
    ("ListHotfixes", &WHO),
    ("RecordTeamReview", &["alice", "erin"]),
    ("GetRateLimitStatus", &WHO),
    ("GetReport", &WHO),
    ("WhoAmI", &WHO),
    ("VerifyAudit", &WHO),
    ("ExportAudit", &["carol", "dave"]),
    ("ListAudit", &["carol", "dave"]),
    ("Watch", &WHO),
    ("Backup", &["carol"]),
    ("GetCluster", &WHO),
    ("GetCheckpoint", &WHO),
];

fn code<T>(r: Result<T, tonic::Status>) -> Code {
    r.map_or_else(|s| s.code(), |_| Code::Ok)
}

/// Calls `rpc` with a plausible request; returns the status code.
async fn call(c: &mut Client, rpc: &str, n: u32) -> Code {
    let m = || None;
    let inc = || INC.to_string();
    match rpc {
        "Declare" => code(
            c.lane
                .declare(pb::DeclareRequest {
                    incident_id: incident(100 + n),
                    severity: pb::Severity::P0 as i32,
                    criteria: vec![pb::Criterion::CustomersDown as i32],
                    symptom: "down".into(),
                    approver: "erin".into(),
                    cleanup_owner: "bob".into(),
                    merge_eta: "09:30".into(),
                    repository: "bookstore/catalog".into(),
                    argocd_app: "catalog".into(),
                    ..Default::default()
                })
                .await,
        ),
        "RecordMitigation" => code(
            c.lane
                .record_mitigation(pb::RecordMitigationRequest {
                    mutation: m(),
                    incident_id: incident(200 + n),
                    route: pb::MitigationRoute::Flag as i32,
                    notes: "flag".into(),
                })
                .await,
        ),
        "SubmitFix" => code(
            c.lane
                .submit_fix(pb::SubmitFixRequest {
                    mutation: m(),
                    incident_id: inc(),
                    branch: branch(INC),
                    sha: SHA1.into(),
                    commit_message: message(INC),
                    files: vec![pb::ChangedFile {
                        path: "catalog/a.go".into(),
                        added: 1,
                        removed: 1,
                    }],
                })
                .await,
        ),
        "OverrideFixLimits" => code(
            c.lane
                .override_fix_limits(pb::OverrideFixLimitsRequest {
                    mutation: m(),
                    incident_id: inc(),
                    sha: SHA1.into(),
                    reason: "needed".into(),
                })
                .await,
        ),
        "Approve" => code(
            c.lane
                .approve(pb::ApproveRequest {
                    mutation: m(),
                    incident_id: inc(),
                    sha: SHA1.into(),
                })
                .await,
        ),
        "OpenPullRequest" => code(
            c.lane
                .open_pull_request(pb::OpenPullRequestRequest {
                    mutation: m(),
                    incident_id: inc(),
                    number: 4321,
                    url: "https://github.com/bookstore/catalog/pull/4321".into(),
                    labels: vec!["hotfix".into()],
                    ..Default::default()
                })
                .await,
        ),
        "RecordCheck" => code(
            c.lane
                .record_check(pb::RecordCheckRequest {
                    mutation: m(),
                    incident_id: inc(),
                    name: "lint".into(),
                    result: pb::CheckResult::Success as i32,
                    sha: String::new(),
                })
                .await,
        ),
        "FollowChecks" => code(
            c.lane
                .follow_checks(pb::FollowChecksRequest { incident_id: inc() })
                .await,
        ),
        "Merge" => code(
            c.lane
                .merge(pb::MergeRequest {
                    mutation: m(),
                    incident_id: inc(),
                })
                .await,
        ),
        "Sync" => code(
            c.lane
                .sync(pb::SyncRequest {
                    mutation: m(),
                    incident_id: inc(),
                    revision: SHA1.into(),
                    skip_canary: false,
                })
                .await,
        ),
        "Verify" => code(
            c.lane
                .verify(pb::VerifyRequest {
                    mutation: m(),
                    incident_id: inc(),
                    recovered: true,
                    observed_value: 0.001,
                })
                .await,
        ),
        "StartVerification" => code(
            c.lane
                .start_verification(pb::StartVerificationRequest {
                    mutation: m(),
                    incident_id: inc(),
                })
                .await,
        ),
        "Revert" => code(
            c.lane
                .revert(pb::RevertRequest {
                    mutation: m(),
                    incident_id: inc(),
                    revert_pr: 4322,
                })
                .await,
        ),
        "RecordCleanup" => code(
            c.lane
                .record_cleanup(pb::RecordCleanupRequest {
                    mutation: m(),
                    incident_id: inc(),
                    pr_number: 4330,
                    ..Default::default()
                })
                .await,
        ),
        "RecordPostmortem" => code(
            c.lane
                .record_postmortem(pb::RecordPostmortemRequest {
                    mutation: m(),
                    incident_id: inc(),
                    url: "https://wiki.example/pm".into(),
                    why_hotfix: "slow tests".into(),
                    bypass_justified: pb::BypassJustified::Yes as i32,
                    ..Default::default()
                })
                .await,
        ),
        "RecordAuditReview" => code(
            c.lane
                .record_audit_review(pb::RecordAuditReviewRequest {
                    mutation: m(),
                    incident_id: inc(),
                    findings: "fine".into(),
                })
                .await,
        ),
        "GrantBreakglass" => code(
            c.lane
                .grant_breakglass(pb::GrantBreakglassRequest {
                    mutation: m(),
                    incident_id: inc(),
                    role: "breakglass-admin".into(),
                    ttl_seconds: 600,
                })
                .await,
        ),
        "CleanupBreakglass" => code(
            c.lane
                .cleanup_breakglass(pb::CleanupBreakglassRequest {
                    mutation: m(),
                    incident_id: inc(),
                    items: vec!["iam-users".into()],
                })
                .await,
        ),
        "GetHotfix" => code(
            c.lane
                .get_hotfix(pb::GetHotfixRequest { incident_id: inc() })
                .await,
        ),
        "ListHotfixes" => code(
            c.lane
                .list_hotfixes(pb::ListHotfixesRequest::default())
                .await,
        ),
        "RecordTeamReview" => code(
            c.policy
                .record_team_review(pb::RecordTeamReviewRequest {
                    mutation: m(),
                    notes: "reviewed".into(),
                })
                .await,
        ),
        "GetRateLimitStatus" => code(
            c.policy
                .get_rate_limit_status(pb::GetRateLimitStatusRequest {})
                .await,
        ),
        "GetReport" => code(c.policy.get_report(pb::GetReportRequest {}).await),
        "WhoAmI" => code(c.policy.who_am_i(pb::WhoAmIRequest {}).await),
        "VerifyAudit" => code(
            c.audit
                .verify_audit(pb::VerifyAuditRequest { hash_of: 0 })
                .await,
        ),
        "ExportAudit" => code(
            c.audit
                .export_audit(pb::ExportAuditRequest { from_seq: 0 })
                .await,
        ),
        "Backup" => code(c.admin.backup(pb::BackupRequest {}).await),
        "GetCluster" => code(c.admin.get_cluster(pb::GetClusterRequest {}).await),
        "GetCheckpoint" => code(c.audit.get_checkpoint(pb::GetCheckpointRequest {}).await),
        "ListAudit" => code(
            c.audit
                .list_audit(pb::ListAuditRequest {
                    incident_id: inc(),
                    limit: 10,
                })
                .await,
        ),
        "Watch" => code(
            c.events
                .watch(pb::WatchRequest {
                    from_seq: 0,
                    incident_id: String::new(),
                    from_now: false,
                })
                .await,
        ),
        other => panic!("no call for {other}"),
    }
}

#[tokio::test]
async fn every_rpc_answers_every_caller_as_the_roles_allow() {
    // Hundreds of wrong tokens from one address are the point here, not
    // an attack to slow down.
    let d = Daemon::start_configured(|s| {
        s.limits.failed_auth_burst = 100_000;
    })
    .await;
    declare(&d, INC, &[]).await.expect("declare");

    // The table covers every RPC the API has.
    let mut in_proto: Vec<String> = Vec::new();
    let fds =
        <prost_types::FileDescriptorSet as prost::Message>::decode(hotfix_api::FILE_DESCRIPTOR_SET)
            .unwrap();
    for f in &fds.file {
        for s in &f.service {
            in_proto.extend(s.method.iter().map(|m| m.name().to_string()));
        }
    }
    let mut in_table: Vec<String> = TABLE.iter().map(|(r, _)| r.to_string()).collect();
    in_proto.sort();
    in_table.sort();
    assert_eq!(in_table, in_proto, "the table lists every RPC");

    let mut anonymous = Client::connect(&d.endpoint, None).await.unwrap();
    let mut forged = Client::connect(&d.endpoint, Some("dev-mallory"))
        .await
        .unwrap();
    let mut wrong = Vec::new();
    for (n, (rpc, allowed)) in TABLE.iter().enumerate() {
        let n = n as u32;
        for (label, c) in [("no token", &mut anonymous), ("wrong token", &mut forged)] {
            let got = call(c, rpc, n).await;
            if got != Code::Unauthenticated {
                wrong.push(format!("{rpc} with {label}: {got:?}"));
            }
        }
        for who in WHO {
            let mut c = d.client(who).await;
            let got = call(
                &mut c,
                rpc,
                n * 10 + WHO.iter().position(|w| *w == who).unwrap() as u32,
            )
            .await;
            let may = allowed.contains(&who);
            let ok = if may {
                !matches!(got, Code::PermissionDenied | Code::Unauthenticated)
            } else {
                got == Code::PermissionDenied
            };
            if !ok {
                wrong.push(format!(
                    "{rpc} as {who}: {got:?} (expected {})",
                    if may {
                        "past authorization"
                    } else {
                        "PermissionDenied"
                    }
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

//! From what was typed to what is sent: the CLI's value enums as the wire's
//! enums, and the requests that are a pure function of the command line
//! ([`declare`], [`step`]).
//! No I/O and no daemon: unit-tested here. The spellings people type are
//! the wire names (`hotfix_api::names`), checked below, so each enum value
//! is named once, in the proto.

use hotfix_api::pb;

use crate::Authed;
use crate::cli::{
    Breakglass, Bypass, CheckResult, CliError, Cmd, Criterion, Declare, Route, Severity,
};

/// A step that is one lane RPC answering with the hotfix, its request
/// built from the command line alone.
#[derive(Debug, Clone, PartialEq)]
pub enum StepCall {
    Override(pb::OverrideFixLimitsRequest),
    Pr(pb::OpenPullRequestRequest),
    Check(pb::RecordCheckRequest),
    Merge(pb::MergeRequest),
    Verify(pb::VerifyRequest),
    Revert(pb::RevertRequest),
    Cleanup(pb::RecordCleanupRequest),
    Postmortem(pb::RecordPostmortemRequest),
    AuditReview(pb::RecordAuditReviewRequest),
    GrantBreakglass(pb::GrantBreakglassRequest),
    CleanupBreakglass(pb::CleanupBreakglassRequest),
}

/// The flag (or argument) that sets each request field, for telling a
/// refusal in the words the user typed: hotfixd names the API's fields
/// (`merge_eta`), the CLI's user typed `--eta`.
const FLAGS: &[(&str, &str)] = &[
    ("incident_id", "INCIDENT"),
    ("severity", "--severity"),
    ("criteria", "--criterion"),
    ("symptom", "--symptom"),
    ("approver", "--approver"),
    ("cleanup_owner", "--cleanup-owner"),
    ("merge_eta", "--eta"),
    ("repository", "--repo"),
    ("argocd_app", "--app"),
    ("branch", "--branch"),
    ("sha", "--sha"),
    ("commit_message", "--message/--message-file"),
    ("files", "--file"),
    ("number", "--number"),
    ("url", "--url"),
    ("title", "--title"),
    ("labels", "--label"),
    ("name", "--name"),
    ("result", "--result"),
    ("revision", "--revision"),
    ("observed_value", "--value"),
    ("revert_pr", "--pr"),
    ("pr_number", "--pr"),
    ("why_hotfix", "--why"),
    ("bypass_justified", "--bypass-justified"),
    ("cleanup_pr_link", "--cleanup-pr-link"),
    ("findings", "--findings"),
    ("reason", "--reason"),
    ("notes", "--notes"),
    ("route", "--by"),
    ("role", "--role"),
    ("ttl_seconds", "--ttl"),
    ("items", "--item"),
    ("request_id", "--request-id"),
    ("expected_version", "--expected-version"),
];

/// `message` (an INVALID_ARGUMENT's, `field: reason`) with its field told
/// as the flag that sets it: `merge_eta: …` is `--eta: …`, and
/// `files[2].path: …` is `--file (files[2].path): …`. Unchanged when it
/// names no field the CLI sets.
pub fn in_flag_words(message: &str) -> String {
    let Some((field, reason)) = message.split_once(": ") else {
        return message.to_string();
    };
    let base = field.split(['[', '.']).next().unwrap_or(field);
    match FLAGS.iter().find(|(f, _)| *f == base) {
        Some((_, flag)) if base == field => format!("{flag}: {reason}"),
        Some((_, flag)) => format!("{flag} ({field}): {reason}"),
        None => message.to_string(),
    }
}

fn required(flag: &str) -> CliError {
    CliError {
        code: 2,
        message: format!("{flag} is required"),
    }
}

/// The step `cmd` takes, if it is one lane RPC built from the command line
/// alone; otherwise `cmd` back (it reads a file or the terminal, waits, or
/// is no step).
pub fn step(cmd: Cmd, mutation: Option<pb::Mutation>) -> Result<Result<StepCall, Cmd>, CliError> {
    let m = mutation;
    Ok(Ok(match cmd {
        Cmd::Override {
            incident,
            sha,
            reason,
        } => StepCall::Override(pb::OverrideFixLimitsRequest {
            mutation: m,
            incident_id: incident,
            sha,
            reason,
        }),
        Cmd::Pr {
            incident,
            number,
            url,
            title,
            labels,
        } => StepCall::Pr(pb::OpenPullRequestRequest {
            mutation: m,
            incident_id: incident,
            number: number.unwrap_or_default(),
            url: url.unwrap_or_default(),
            title: title.unwrap_or_default(),
            labels,
        }),
        Cmd::Check {
            incident,
            name,
            result,
            sha,
            wait: false,
        } => {
            let (Some(name), Some(result)) = (name, result) else {
                return Err(CliError {
                    code: 2,
                    message: "--name and --result are required without --wait".into(),
                });
            };
            StepCall::Check(pb::RecordCheckRequest {
                mutation: m,
                incident_id: incident,
                name,
                result: pb::CheckResult::from(result) as i32,
                sha: sha.unwrap_or_default(),
            })
        }
        Cmd::Merge { incident } => StepCall::Merge(pb::MergeRequest {
            mutation: m,
            incident_id: incident,
        }),
        Cmd::Verify {
            incident,
            recovered,
            value,
            measure: false,
            ..
        } => StepCall::Verify(pb::VerifyRequest {
            mutation: m,
            incident_id: incident,
            recovered,
            observed_value: value.ok_or_else(|| required("--value"))?,
        }),
        Cmd::Revert { incident, pr } => StepCall::Revert(pb::RevertRequest {
            mutation: m,
            incident_id: incident,
            revert_pr: pr.unwrap_or_default(),
        }),
        Cmd::Cleanup {
            incident,
            pr,
            url,
            labels,
        } => StepCall::Cleanup(pb::RecordCleanupRequest {
            mutation: m,
            incident_id: incident,
            pr_number: pr,
            url,
            labels,
        }),
        Cmd::Postmortem {
            incident,
            url,
            why,
            bypass_justified,
            breakglass_used,
            cleanup_pr_link,
        } => StepCall::Postmortem(pb::RecordPostmortemRequest {
            mutation: m,
            incident_id: incident,
            url,
            why_hotfix: why,
            bypass_justified: pb::BypassJustified::from(bypass_justified) as i32,
            breakglass_used,
            cleanup_pr_link: cleanup_pr_link.unwrap_or_default(),
        }),
        Cmd::AuditReview { incident, findings } => {
            StepCall::AuditReview(pb::RecordAuditReviewRequest {
                mutation: m,
                incident_id: incident,
                findings,
            })
        }
        Cmd::Breakglass {
            incident,
            action: Breakglass::Grant { role, ttl },
        } => StepCall::GrantBreakglass(pb::GrantBreakglassRequest {
            mutation: m,
            incident_id: incident,
            role,
            ttl_seconds: ttl.unwrap_or(0),
        }),
        Cmd::Breakglass {
            incident,
            action: Breakglass::Cleanup { items },
        } => StepCall::CleanupBreakglass(pb::CleanupBreakglassRequest {
            mutation: m,
            incident_id: incident,
            items,
        }),
        other => return Ok(Err(other)),
    }))
}

type Lane = pb::lane_service_client::LaneServiceClient<Authed>;

impl StepCall {
    /// Sends the step; the hotfix after it.
    /// Sends the step; the hotfix it answered with, and the whole answer
    /// in the proto3 JSON mapping (what `-o json` prints).
    pub async fn send(
        self,
        lane: &mut Lane,
    ) -> Result<(pb::Hotfix, serde_json::Value), tonic::Status> {
        fn answer<M: prost::Message + prost::Name>(
            r: tonic::Response<M>,
            hotfix: impl FnOnce(&M) -> Option<pb::Hotfix>,
        ) -> (pb::Hotfix, serde_json::Value) {
            let m = r.into_inner();
            (
                hotfix(&m).unwrap_or_default(),
                hotfix_api::json::to_value(&m),
            )
        }
        Ok(match self {
            StepCall::Override(r) => {
                answer(lane.override_fix_limits(r).await?, |m| m.hotfix.clone())
            }
            StepCall::Pr(r) => answer(lane.open_pull_request(r).await?, |m| m.hotfix.clone()),
            StepCall::Check(r) => answer(lane.record_check(r).await?, |m| m.hotfix.clone()),
            StepCall::Merge(r) => answer(lane.merge(r).await?, |m| m.hotfix.clone()),
            StepCall::Verify(r) => answer(lane.verify(r).await?, |m| m.hotfix.clone()),
            StepCall::Revert(r) => answer(lane.revert(r).await?, |m| m.hotfix.clone()),
            StepCall::Cleanup(r) => answer(lane.record_cleanup(r).await?, |m| m.hotfix.clone()),
            StepCall::Postmortem(r) => {
                answer(lane.record_postmortem(r).await?, |m| m.hotfix.clone())
            }
            StepCall::AuditReview(r) => {
                answer(lane.record_audit_review(r).await?, |m| m.hotfix.clone())
            }
            StepCall::GrantBreakglass(r) => {
                answer(lane.grant_breakglass(r).await?, |m| m.hotfix.clone())
            }
            StepCall::CleanupBreakglass(r) => {
                answer(lane.cleanup_breakglass(r).await?, |m| m.hotfix.clone())
            }
        })
    }
}

impl From<Severity> for pb::Severity {
    fn from(s: Severity) -> Self {
        match s {
            Severity::P0 => pb::Severity::P0,
            Severity::P1 => pb::Severity::P1,
            Severity::P2 => pb::Severity::P2,
        }
    }
}

impl From<Criterion> for pb::Criterion {
    fn from(c: Criterion) -> Self {
        match c {
            Criterion::CustomersDown => pb::Criterion::CustomersDown,
            Criterion::DataLoss => pb::Criterion::DataLoss,
            Criterion::SafetyRegulatory => pb::Criterion::SafetyRegulatory,
        }
    }
}

impl From<Route> for pb::MitigationRoute {
    fn from(r: Route) -> Self {
        match r {
            Route::Flag => pb::MitigationRoute::Flag,
            Route::Rollback => pb::MitigationRoute::Rollback,
        }
    }
}

impl From<CheckResult> for pb::CheckResult {
    fn from(r: CheckResult) -> Self {
        match r {
            CheckResult::Success => pb::CheckResult::Success,
            CheckResult::Failure => pb::CheckResult::Failure,
            CheckResult::Pending => pb::CheckResult::Pending,
        }
    }
}

impl From<Bypass> for pb::BypassJustified {
    fn from(b: Bypass) -> Self {
        match b {
            Bypass::Yes => pb::BypassJustified::Yes,
            Bypass::YesButRollback => pb::BypassJustified::YesButRollback,
            Bypass::No => pb::BypassJustified::No,
        }
    }
}

/// `hotfixctl declare`.
pub fn declare(d: Declare, mutation: Option<pb::Mutation>) -> pb::DeclareRequest {
    pb::DeclareRequest {
        mutation,
        incident_id: d.incident,
        severity: pb::Severity::from(d.severity) as i32,
        criteria: d
            .criteria
            .into_iter()
            .map(|c| pb::Criterion::from(c) as i32)
            .collect(),
        symptom: d.symptom,
        approver: d.approver,
        cleanup_owner: d.cleanup_owner,
        merge_eta: d.eta,
        repository: d.repo,
        argocd_app: d.app,
        flag_can_mitigate: d.flag_can_mitigate,
        rollback_can_mitigate: d.rollback_can_mitigate,
        fix_unknown: d.fix_unknown,
        drill: d.drill,
    }
}

#[cfg(test)]
mod tests {
    use clap::{Parser, ValueEnum};

    use super::*;
    use crate::cli::{Cli, Cmd};

    #[test]
    fn refusals_name_the_flag_that_was_typed() {
        assert_eq!(
            in_flag_words("merge_eta: '9h' is not HH:MM"),
            "--eta: '9h' is not HH:MM"
        );
        assert_eq!(
            in_flag_words("revert_pr: must be a positive PR number"),
            "--pr: must be a positive PR number"
        );
        assert_eq!(
            in_flag_words("files[2].path: must be relative"),
            "--file (files[2].path): must be relative"
        );
        assert_eq!(in_flag_words("incident_id: bad"), "INCIDENT: bad");
        // Not a field: as it was.
        assert_eq!(in_flag_words("no colon here"), "no colon here");
        assert_eq!(in_flag_words("other_thing: x"), "other_thing: x");
    }

    /// The value people type, as clap spells it.
    fn typed<T: ValueEnum>(v: &T) -> String {
        v.to_possible_value().unwrap().get_name().to_string()
    }

    #[test]
    fn every_value_people_type_is_the_wire_name() {
        for c in Criterion::value_variants() {
            let wire = hotfix_api::criterion_name(pb::Criterion::from(*c) as i32);
            assert_eq!(typed(c), wire);
        }
        for r in Route::value_variants() {
            let wire = hotfix_api::route_name(pb::MitigationRoute::from(*r) as i32);
            assert_eq!(typed(r), wire);
        }
        for r in CheckResult::value_variants() {
            let wire = hotfix_api::check_result_name(pb::CheckResult::from(*r) as i32);
            assert_eq!(typed(r), wire);
        }
        for b in Bypass::value_variants() {
            let wire = hotfix_api::bypass_name(pb::BypassJustified::from(*b) as i32);
            assert_eq!(typed(b), wire);
        }
        for s in Severity::value_variants() {
            let wire = pb::Severity::from(*s)
                .as_str_name()
                .trim_start_matches("SEVERITY_");
            assert_eq!(typed(s), wire.to_ascii_lowercase());
        }
    }

    fn parse(args: &[&str]) -> Cmd {
        let argv = std::iter::once("hotfixctl").chain(args.iter().copied());
        Cli::try_parse_from(argv).unwrap().command
    }

    fn m() -> Option<pb::Mutation> {
        Some(pb::Mutation {
            request_id: "r7".into(),
            expected_version: Some(3),
        })
    }

    #[test]
    fn each_step_command_line_is_its_request() {
        const INC: &str = "INC-2026-05-20-001";
        let call = |args: &[&str]| step(parse(args), m()).unwrap().unwrap();
        assert_eq!(
            call(&["check", INC, "--name", "scan", "--result", "failure"]),
            StepCall::Check(pb::RecordCheckRequest {
                mutation: m(),
                incident_id: INC.into(),
                name: "scan".into(),
                result: pb::CheckResult::Failure as i32,
                sha: String::new(),
            })
        );
        assert_eq!(
            call(&["verify", INC, "--not-recovered", "--value", "0.25"]),
            StepCall::Verify(pb::VerifyRequest {
                mutation: m(),
                incident_id: INC.into(),
                recovered: false,
                observed_value: 0.25,
            })
        );
        assert_eq!(
            call(&["revert", INC]),
            StepCall::Revert(pb::RevertRequest {
                mutation: m(),
                incident_id: INC.into(),
                revert_pr: 0,
            })
        );
        assert_eq!(
            call(&[
                "breakglass",
                INC,
                "grant",
                "--role",
                "db-admin",
                "--ttl",
                "30m"
            ]),
            StepCall::GrantBreakglass(pb::GrantBreakglassRequest {
                mutation: m(),
                incident_id: INC.into(),
                role: "db-admin".into(),
                ttl_seconds: 1800,
            })
        );
        let StepCall::Postmortem(p) = call(&[
            "postmortem",
            INC,
            "--url",
            "https://wiki/pm",
            "--why",
            "no flag",
            "--bypass-justified",
            "yes-but-rollback",
        ]) else {
            panic!("a postmortem");
        };
        assert_eq!(
            p.bypass_justified,
            pb::BypassJustified::YesButRollback as i32
        );
        assert_eq!(p.cleanup_pr_link, "", "empty: the recorded cleanup PR");
    }

    #[test]
    fn commands_that_wait_read_or_ask_are_not_plain_steps() {
        const INC: &str = "INC-2026-05-20-001";
        for args in [
            &["check", INC, "--wait"][..],
            &["verify", INC, "--measure"],
            &["sync", INC, "--revision", "abc"],
            &["approve", INC],
            &["show", INC],
        ] {
            assert!(step(parse(args), m()).unwrap().is_err(), "{args:?}");
        }
    }

    #[test]
    fn a_declare_command_line_is_its_request() {
        let cli = Cli::try_parse_from([
            "hotfixctl",
            "declare",
            "INC-2026-05-20-001",
            "--symptom",
            "checkout 500s",
            "--criterion",
            "customers-down",
            "--criterion",
            "data-loss",
            "--approver",
            "alice",
            "--cleanup-owner",
            "bob",
            "--eta",
            "09:30",
            "--repo",
            "shop/checkout",
            "--app",
            "checkout",
            "--severity",
            "p1",
            "--drill",
        ])
        .unwrap();
        let Cmd::Declare(d) = cli.command else {
            panic!("parsed as declare");
        };
        let m = Some(pb::Mutation {
            request_id: "r1".into(),
            expected_version: None,
        });
        let r = declare(d, m.clone());
        assert_eq!(r.mutation, m);
        assert_eq!(r.incident_id, "INC-2026-05-20-001");
        assert_eq!(r.severity, pb::Severity::P1 as i32);
        assert_eq!(
            r.criteria,
            [
                pb::Criterion::CustomersDown as i32,
                pb::Criterion::DataLoss as i32
            ]
        );
        assert_eq!(
            (
                r.approver.as_str(),
                r.cleanup_owner.as_str(),
                r.merge_eta.as_str()
            ),
            ("alice", "bob", "09:30")
        );
        assert_eq!(
            (r.repository.as_str(), r.argocd_app.as_str()),
            ("shop/checkout", "checkout")
        );
        assert!(r.drill && !r.flag_can_mitigate && !r.rollback_can_mitigate && !r.fix_unknown);
    }
}

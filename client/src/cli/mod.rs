//! The `hotfixctl` command line: one subcommand per runbook step.
//!
//! Exit codes: 0 success; 2 usage error; 3 cannot connect; 10 + N when the
//! daemon refused with gRPC status code N (e.g. 13 INVALID_ARGUMENT = 10+3,
//! 15 NOT_FOUND, 16 ALREADY_EXISTS, 17 PERMISSION_DENIED, 18
//! RESOURCE_EXHAUSTED, 19 FAILED_PRECONDITION, 20 ABORTED, 24 UNAVAILABLE,
//! 26 UNAUTHENTICATED). `verify --measure --wait` adds 4 (not recovered)
//! and 1 (no verdict).

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use hotfix_api::kinds::EventKind;
use hotfix_api::pb;
use tokio_stream::StreamExt;

use crate::render::{self, Output};
use crate::{Client, ConnectError};

mod args;
mod audit;
mod errors;
pub mod profile;
mod sso;
mod wait;
mod watch;

pub use args::*;
use audit::*;
pub use errors::CliError;
use errors::usage;
use wait::*;

/// Shows the current fix of `h` on `prompt` and asks whether to approve
/// it; the SHA to approve if the answer is yes. The SHA sent is the one
/// shown, so a fix pushed meanwhile is refused by hotfixd, not approved.
pub fn confirm_fix(
    h: &pb::Hotfix,
    input: &mut dyn std::io::BufRead,
    prompt: &mut dyn Write,
) -> Result<Option<String>, CliError> {
    let Some(f) = &h.fix else {
        return Err(usage(format!(
            "approve: {} has no fix to approve yet",
            render::printable(&h.incident_id)
        )));
    };
    writeln!(prompt, "fix {} on {}", f.sha, render::printable(&f.branch))?;
    for l in f.commit_message.lines() {
        writeln!(prompt, "    {}", render::printable(l))?;
    }
    for file in &f.files {
        writeln!(
            prompt,
            "  {} +{} -{}",
            render::printable(&file.path),
            file.added,
            file.removed
        )?;
    }
    write!(prompt, "approve {} as shown? [y/N] ", f.sha)?;
    prompt.flush()?;
    let mut answer = String::new();
    input.read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes").then(|| f.sha.clone()))
}

/// Runs one command, writing its output to `out`: human output with every
/// unprintable character escaped (`render::Printable`), JSON as it is
/// (serde escapes control characters in strings).
pub async fn run(cli: Cli, out: &mut (dyn Write + Send)) -> Result<(), CliError> {
    if cli.output.machine() {
        // `render::machine` escapes what a terminal would act on.
        return execute(cli, out).await;
    }
    let mut shown = crate::render::Printable::new(out);
    let result = execute(cli, &mut shown).await;
    shown.flush().map_err(CliError::from)?;
    result
}

async fn execute(cli: Cli, out: &mut (dyn Write + Send)) -> Result<(), CliError> {
    // Generated from these definitions, or read from the profile; no
    // hotfixd needed.
    match &cli.command {
        Cmd::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "hotfixctl", out);
            out.flush()?;
            return Ok(());
        }
        Cmd::Man { dir } => {
            std::fs::create_dir_all(dir)?;
            clap_mangen::generate_to(<Cli as clap::CommandFactory>::command(), dir)?;
            return Ok(());
        }
        Cmd::Contexts => {
            let (path, rows) = profile::list(&cli)?;
            render::contexts(out, cli.output, &path, &rows)?;
            out.flush()?;
            return Ok(());
        }
        _ => {}
    }
    let mut target = profile::resolve(&cli)?;
    if matches!(cli.command, Cmd::Login | Cmd::Logout) {
        let Some(sso) = &target.sso else {
            return Err(usage(
                "login: the context names no IdP: set oidc_issuer and oidc_client_id in its \
                 [contexts.NAME] (see `hotfixctl contexts`), or use a token",
            ));
        };
        if matches!(cli.command, Cmd::Logout) {
            let had = sso.logout().await?;
            writeln!(
                out,
                "{}",
                if had {
                    format!("signed out of {} (context {})", sso.issuer, sso.context)
                } else {
                    format!("not signed in (context {})", sso.context)
                }
            )?;
            return Ok(());
        }
        let session = sso.login(out).await?;
        writeln!(out, "{}", sso::describe(&session))?;
        target.token = Some(session.id_token);
    }
    if target.token.is_none()
        && let Some(sso) = &target.sso
    {
        target.token = Some(sso.token().await?);
    }
    if let Some(w) = crate::plaintext_token_warning(&target.endpoint, target.token.as_deref()) {
        eprintln!("hotfixctl: {w}");
    }
    let anonymous = target.token.is_none() && target.tls.cert.is_none();
    let client =
        Client::connect_with(&target.endpoint, target.token.as_deref(), &target.tls).await?;
    // On the heap: one arm per command makes a large future, too large
    // for a small thread's stack.
    Box::pin(call(cli, client, out)).await.map_err(|mut e| {
        if anonymous && e.code == 10 + tonic::Code::Unauthenticated as i32 {
            e.message.push_str(
                "; no credentials were given: use --token-file FILE, a profile context \
                 (--context NAME; see `hotfixctl contexts`), --token, or HOTFIXCTL_TOKEN",
            );
        }
        e
    })
}

/// The next incident id of `today` (YYYY-MM-DD) after those in `ids`;
/// None when 999 is taken.
pub fn next_incident_id<'a>(today: &str, ids: impl Iterator<Item = &'a str>) -> Option<String> {
    let prefix = format!("INC-{today}-");
    let highest = ids
        .filter_map(|id| id.strip_prefix(&prefix)?.parse::<u32>().ok())
        .max()
        .unwrap_or(0);
    (highest < 999).then(|| format!("{prefix}{:03}", highest + 1))
}

/// What a step did to `h`: in the machine formats the step's `answer` (its
/// response message, in the proto3 JSON mapping); for people one line of
/// what happened (the events the step wrote) and one of what is next (who
/// may do it, what blocks it, what is owed by when), read back from
/// hotfixd.
async fn told(
    client: &Client,
    out: &mut (dyn Write + Send),
    o: Output,
    h: &pb::Hotfix,
    warnings: &[String],
    answer: &serde_json::Value,
) -> Result<(), CliError> {
    if o.machine() {
        render::machine(out, o, answer)?;
        return Ok(());
    }
    match read(client, &h.incident_id).await {
        Ok(view) => render::step(out, h, &view, warnings)?,
        // The step is done: a failed read afterwards must not look like a
        // failed step (one retried would be refused, or done twice).
        Err(e) => {
            render::hotfix(out, h, warnings)?;
            eprintln!(
                "hotfixctl: the step is recorded; reading what is next failed ({}): see \
                 `hotfixctl show {}`",
                render::printable(e.message()),
                h.incident_id
            );
        }
    }
    Ok(())
}

/// Runs `cli`'s command through `client`.
async fn call(cli: Cli, client: Client, out: &mut (dyn Write + Send)) -> Result<(), CliError> {
    let m = Some(pb::Mutation {
        request_id: cli.request_id.clone().unwrap_or_default(),
        expected_version: cli.expected_version,
    });
    let o = cli.output;
    let mut lane = client.lane.clone();
    let mut policy = client.policy.clone();
    let hotfix = |h: Option<pb::Hotfix>| h.unwrap_or_default();
    let cmd = match crate::requests::step(cli.command, m.clone())? {
        Ok(call) => {
            let (h, answer) = call.send(&mut lane).await?;
            told(&client, out, o, &h, &[], &answer).await?;
            out.flush()?;
            return Ok(());
        }
        Err(cmd) => cmd,
    };
    match cmd {
        Cmd::Declare(d) => {
            let r = lane
                .declare(crate::requests::declare(d, m))
                .await?
                .into_inner();
            told(
                &client,
                out,
                o,
                &hotfix(r.hotfix.clone()),
                &r.warnings,
                &hotfix_api::json::to_value(&r),
            )
            .await?;
        }
        Cmd::Mitigated {
            incident,
            by,
            notes,
        } => {
            let r = lane
                .record_mitigation(pb::RecordMitigationRequest {
                    mutation: m,
                    incident_id: incident,
                    route: pb::MitigationRoute::from(by) as i32,
                    notes,
                })
                .await?
                .into_inner();
            render::mitigation(out, o, &r)?;
        }
        Cmd::Fix(f) => {
            let message = match (&f.message, &f.message_file) {
                (Some(msg), _) => msg.clone(),
                (None, Some(p)) if p.as_os_str() == "-" => {
                    std::io::read_to_string(std::io::stdin())?
                }
                (None, Some(p)) => std::fs::read_to_string(p)
                    .map_err(|e| usage(format!("--message-file {}: {e}", p.display())))?,
                // GitHub on: hotfixd reads the message (the daemon says if
                // it is off and the message is missing).
                (None, None) => String::new(),
            };
            let r = lane
                .submit_fix(pb::SubmitFixRequest {
                    mutation: m,
                    incident_id: f.incident,
                    branch: f.branch,
                    sha: f.sha.unwrap_or_default(),
                    commit_message: message,
                    files: f.files,
                })
                .await?
                .into_inner();
            told(
                &client,
                out,
                o,
                &hotfix(r.hotfix.clone()),
                &[],
                &hotfix_api::json::to_value(&r),
            )
            .await?;
        }
        Cmd::Approve { incident, sha } => {
            let sha = match sha {
                Some(s) => s,
                None => {
                    use std::io::IsTerminal;
                    if !std::io::stdin().is_terminal() {
                        return Err(usage(
                            "approve: --sha is required (the SHA of the fix you reviewed; \
                             `hotfixctl show` prints it)",
                        ));
                    }
                    let h = current(&client, &incident).await?;
                    let mut stdin = std::io::stdin().lock();
                    match confirm_fix(&h, &mut stdin, &mut std::io::stderr())? {
                        Some(sha) => sha,
                        None => return Err(usage("approve: not approved")),
                    }
                }
            };
            let r = lane
                .approve(pb::ApproveRequest {
                    mutation: m,
                    incident_id: incident,
                    sha,
                })
                .await?
                .into_inner();
            told(
                &client,
                out,
                o,
                &hotfix(r.hotfix.clone()),
                &[],
                &hotfix_api::json::to_value(&r),
            )
            .await?;
        }
        Cmd::Check {
            incident,
            wait: true,
            ..
        } => {
            let r = lane
                .follow_checks(pb::FollowChecksRequest {
                    incident_id: incident.clone(),
                })
                .await?
                .into_inner();
            let h = hotfix(r.hotfix.clone());
            let failed = |h: &pb::Hotfix| {
                h.checks
                    .iter()
                    .any(|c| c.result == pb::CheckResult::Failure as i32)
            };
            let mut verdict = if h.state == pb::State::ReadyToMerge as i32 {
                Some(EventKind::ChecksPassed)
            } else if h.state == pb::State::Aborted as i32 || failed(&h) {
                Some(EventKind::CheckFailed)
            } else {
                None
            };
            // Followed on GitHub by hotfixd, or recorded by whoever runs
            // the checks (GitHub off): either way the wait ends when they
            // all passed, one failed, or hotfixd gave up.
            let end = [
                EventKind::ChecksPassed,
                EventKind::CheckFailed,
                EventKind::Aborted,
                EventKind::ChecksTimeout,
                EventKind::ChecksFailed,
                EventKind::CheckRecorded,
            ];
            let mut from = r.from_seq;
            while verdict.is_none() {
                let Some((kind, seq)) =
                    follow(&client, out, o, &incident, from, "check_", End::Kinds(&end)).await?
                else {
                    break;
                };
                from = seq;
                verdict = match kind {
                    // A result recorded: where does the hotfix stand now?
                    EventKind::CheckRecorded => {
                        let now = current(&client, &incident).await?;
                        let verdict = if now.state == pb::State::ReadyToMerge as i32 {
                            Some(EventKind::ChecksPassed)
                        } else if now.state == pb::State::Aborted as i32 || failed(&now) {
                            Some(EventKind::CheckFailed)
                        } else {
                            None
                        };
                        // The checks recorded since this one (all of them
                        // may land before this reads), shown before the
                        // verdict.
                        if verdict.is_some() && now.last_seq > seq {
                            follow(
                                &client,
                                out,
                                o,
                                &incident,
                                seq,
                                "check_",
                                End::Seq(now.last_seq),
                            )
                            .await?;
                        }
                        verdict
                    }
                    other => Some(other),
                };
            }
            show_final(&client, out, o, &incident).await?;
            if verdict != Some(EventKind::ChecksPassed) {
                return Err(CliError {
                    code: 1,
                    message: "the checks did not all pass; see `hotfixctl show`".into(),
                });
            }
        }
        Cmd::Sync {
            incident,
            revision,
            skip_canary,
            wait,
        } => {
            let r = lane
                .sync(pb::SyncRequest {
                    mutation: m,
                    incident_id: incident.clone(),
                    revision,
                    skip_canary,
                })
                .await?
                .into_inner();
            let h = hotfix(r.hotfix.clone());
            if !wait || h.state != pb::State::Merged as i32 {
                told(&client, out, o, &h, &[], &hotfix_api::json::to_value(&r)).await?;
                if wait && !o.machine() {
                    // Recorded at once: Argo CD is off for this app (or the
                    // sync was recorded before: a retry).
                    writeln!(
                        out,
                        "--wait: nothing to follow: hotfixd does not sync this app itself \
                         (Argo CD is off), so the sync you did is recorded as done"
                    )?;
                }
                return Ok(());
            }
            let end = [
                EventKind::Synced,
                EventKind::SyncFailed,
                EventKind::SyncInterrupted,
            ];
            let verdict = follow(
                &client,
                out,
                o,
                &incident,
                h.last_seq,
                "sync_",
                End::Kinds(&end),
            )
            .await?
            .map(|(kind, _)| kind);
            show_final(&client, out, o, &incident).await?;
            if verdict != Some(EventKind::Synced) {
                return Err(CliError {
                    code: 1,
                    message: "the sync did not complete; see `hotfixctl show`".into(),
                });
            }
        }
        Cmd::Verify {
            incident,
            measure: true,
            wait,
            ..
        } => {
            let r = lane
                .start_verification(pb::StartVerificationRequest {
                    mutation: m,
                    incident_id: incident.clone(),
                })
                .await?
                .into_inner();
            let h = hotfix(r.hotfix.clone());
            if !o.machine() {
                if r.measuring {
                    writeln!(out, "measuring {incident}: {}", r.query)?;
                } else {
                    // As `check --wait` with GitHub off: the verdict is
                    // whoever measures, recorded; a wait follows that.
                    writeln!(
                        out,
                        "--measure: hotfixd has no Prometheus to measure with; record the \
                         verdict with `hotfixctl verify {incident} --recovered|--not-recovered \
                         --value V`{}",
                        if wait { " (waiting for it)" } else { "" }
                    )?;
                }
            }
            if !wait {
                told(&client, out, o, &h, &[], &hotfix_api::json::to_value(&r)).await?;
                return Ok(());
            }
            let end = [
                EventKind::Verified,
                EventKind::RevertRequired,
                EventKind::VerificationFailed,
                EventKind::VerificationInterrupted,
            ];
            let verdict = follow(
                &client,
                out,
                o,
                &incident,
                h.last_seq,
                "verification_",
                End::Kinds(&end),
            )
            .await?
            .map(|(kind, _)| kind);
            show_final(&client, out, o, &incident).await?;
            match verdict {
                Some(EventKind::Verified) => {}
                Some(EventKind::RevertRequired) => {
                    return Err(CliError {
                        code: 4,
                        message:
                            "the symptom did not recover: revert the hotfix (hotfixctl revert)"
                                .into(),
                    });
                }
                _ => {
                    return Err(CliError {
                        code: 1,
                        message: "verification ended without a verdict; see `hotfixctl show`"
                            .into(),
                    });
                }
            }
        }
        Cmd::TeamReview { notes } => {
            let r = policy
                .record_team_review(pb::RecordTeamReviewRequest { mutation: m, notes })
                .await?
                .into_inner();
            render::team_review(out, o, &r)?;
        }
        Cmd::Show { incident } => {
            render::show(out, o, &read(&client, &incident).await?)?;
        }
        Cmd::List {
            state,
            overdue,
            open,
            limit,
        } => {
            // An incident mitigated by a flag flip or a rollback has no
            // hotfix state; it is listed as this one.
            let mitigated_without_hotfix = state.as_deref().is_some_and(|s| {
                s.trim().to_ascii_uppercase().replace('-', "_") == "MITIGATED_WITHOUT_HOTFIX"
            });
            let state = match state {
                _ if mitigated_without_hotfix => pb::State::Unspecified,
                None => pb::State::Unspecified,
                Some(s) => hotfix_api::parse_state(&s).ok_or_else(|| {
                    usage(format!(
                        "--state '{s}' is not a hotfix state (declared, fix-submitted, \
                         approved, pr-open, ready-to-merge, merged, synced, mitigated, \
                         revert-required, reverted, aborted, closed), nor \
                         mitigated-without-hotfix"
                    ))
                })?,
            };
            let r = lane
                .list_hotfixes(pb::ListHotfixesRequest {
                    state: state as i32,
                    overdue,
                    limit,
                    mitigated_without_hotfix,
                    open,
                })
                .await?
                .into_inner();
            render::list(out, o, &r)?;
        }
        Cmd::Audit(a) => audit(&client, out, o, a).await?,
        Cmd::Admin(Admin::Backup { file }) => backup(&client, out, o, &file).await?,
        Cmd::Watch {
            from_seq,
            since,
            incident,
            once,
        } => {
            let start = match since {
                Some(Since::Now) => watch::Start::Now,
                None => watch::Start::After(from_seq),
            };
            watch::watch(&client, out, o, start, incident.unwrap_or_default(), once).await?;
        }
        Cmd::NextId => {
            let r = lane
                .list_hotfixes(pb::ListHotfixesRequest {
                    limit: 1000,
                    ..Default::default()
                })
                .await?
                .into_inner();
            let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
            let ids = r
                .hotfixes
                .iter()
                .map(|h| h.incident_id.as_str())
                .chain(r.mitigations.iter().map(|m| m.incident_id.as_str()));
            let id = next_incident_id(&today, ids).ok_or_else(|| {
                usage(format!(
                    "every incident id of {today} is taken (INC-{today}-999)"
                ))
            })?;
            render::next_id(out, o, &id)?;
        }
        Cmd::Report => {
            let r = policy
                .get_report(pb::GetReportRequest {})
                .await?
                .into_inner();
            render::report(out, o, &r)?;
        }
        // After a login: who hotfixd now says the token names.
        Cmd::Whoami | Cmd::Login => {
            let r = policy.who_am_i(pb::WhoAmIRequest {}).await?.into_inner();
            render::whoami(out, o, &r)?;
        }
        Cmd::Cluster => {
            let r = client
                .admin
                .clone()
                .get_cluster(pb::GetClusterRequest {})
                .await?
                .into_inner();
            render::cluster(out, o, &r)?;
        }
        Cmd::Health => {
            use tonic_health::pb::HealthCheckRequest;
            use tonic_health::pb::health_check_response::ServingStatus;
            let r = client
                .health
                .clone()
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await?
                .into_inner();
            let status = r.status();
            render::health(out, o, status.as_str_name())?;
            if status != ServingStatus::Serving {
                out.flush()?;
                return Err(tonic::Status::unavailable(format!(
                    "hotfixd is {}: it does not take changes",
                    status.as_str_name()
                ))
                .into());
            }
        }
        // Every other command is one lane RPC, sent above.
        step => unreachable!("taken by requests::step: {step:?}"),
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hotfix() -> pb::Hotfix {
        pb::Hotfix {
            incident_id: "INC-2026-05-20-001".into(),
            fix: Some(pb::Fix {
                branch: "hotfix/INC-2026-05-20-001-x".into(),
                sha: "1".repeat(40),
                commit_message: "hotfix(catalog): nil-deref\n\napprover: @alice".into(),
                files: vec![pb::ChangedFile {
                    path: "catalog/handler.go".into(),
                    added: 3,
                    removed: 1,
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn an_interactive_approval_shows_the_fix_and_sends_the_sha_shown() {
        let mut shown = Vec::new();
        let sha = confirm_fix(&hotfix(), &mut "y\n".as_bytes(), &mut shown).unwrap();
        assert_eq!(sha, Some("1".repeat(40)));
        let shown = String::from_utf8(shown).unwrap();
        for want in [
            "1111111111111111111111111111111111111111",
            "hotfix(catalog): nil-deref",
            "catalog/handler.go +3 -1",
            "[y/N]",
        ] {
            assert!(shown.contains(want), "{want} in {shown}");
        }
        for no in ["\n", "n\n", "", "yes please\n"] {
            let got = confirm_fix(&hotfix(), &mut no.as_bytes(), &mut Vec::new()).unwrap();
            assert_eq!(got, None, "{no:?}");
        }
        let none = pb::Hotfix {
            fix: None,
            ..hotfix()
        };
        assert!(confirm_fix(&none, &mut "y\n".as_bytes(), &mut Vec::new()).is_err());
    }
}

#[cfg(test)]
mod next_id_tests {
    use super::next_incident_id;

    #[test]
    fn the_next_id_follows_todays_highest() {
        let day = "2026-12-02";
        assert_eq!(
            next_incident_id(day, [].into_iter()).as_deref(),
            Some("INC-2026-12-02-001")
        );
        let ids = [
            "INC-2026-12-01-007",
            "INC-2026-12-02-002",
            "INC-2026-12-02-010",
        ];
        assert_eq!(
            next_incident_id(day, ids.into_iter()).as_deref(),
            Some("INC-2026-12-02-011")
        );
        assert_eq!(
            next_incident_id(day, ["INC-2026-12-02-999"].into_iter()),
            None
        );
    }
}

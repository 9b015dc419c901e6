//! The transitions of the hotfix lane and their guards.
//!
//! Each function takes the stored facts, the authenticated actor and the time
//! and returns the new facts plus the events that describe the change, or a
//! [`Refusal`]. Checks run in a fixed order: input (INVALID_ARGUMENT), who
//! (PERMISSION_DENIED), state (FAILED_PRECONDITION naming the allowed steps),
//! then the runbook's guards.

use super::EventKind;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Refusal;
use super::model::*;
use super::policy::{GateView, Policy, Step, Whom, after, quarter_of};
use super::validate::*;

/// Handles known to the daemon and their roles (from the roster).
pub type Directory = BTreeMap<String, BTreeSet<Role>>;

/// What every decision needs besides the stored facts.
pub struct Ctx<'a> {
    pub actor: &'a Principal,
    pub now: Time,
    pub policy: &'a Policy,
    pub directory: &'a Directory,
}

/// A change to describe in the event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDraft {
    pub kind: EventKind,
    pub summary: String,
}

impl EventDraft {
    pub fn new(kind: EventKind, summary: impl Into<String>) -> EventDraft {
        EventDraft {
            kind,
            summary: summary.into(),
        }
    }
}

pub(super) fn event(kind: EventKind, summary: impl Into<String>) -> EventDraft {
    EventDraft::new(kind, summary)
}

/// An accepted change to a hotfix.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub hotfix: Hotfix,
    pub events: Vec<EventDraft>,
    /// A row for "When this runbook last worked", when this change resolved
    /// the incident.
    pub exercise: Option<Exercise>,
}

/// What is already recorded for an incident.
#[derive(Debug, Clone, Copy)]
pub enum Existing<'a> {
    None,
    Hotfix(&'a Hotfix),
    Mitigation(&'a Mitigation),
}

/// The lane steps after step 1, each on one hotfix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "step")]
pub enum Command {
    SubmitFix(FixProposal),
    OverrideFixLimits {
        sha: String,
        reason: String,
    },
    Approve {
        sha: Option<String>,
    },
    OpenPullRequest {
        number: u64,
        url: String,
        title: Option<String>,
        labels: Vec<String>,
    },
    RecordCheck {
        name: String,
        result: CheckResult,
        sha: Option<String>,
    },
    Merge,
    Sync {
        revision: String,
        skip_canary: bool,
    },
    Verify {
        recovered: bool,
        observed_value: f64,
    },
    Revert {
        pr: u64,
    },
    RecordCleanup {
        pr: u64,
        url: String,
        labels: Vec<String>,
    },
    RecordPostmortem {
        url: String,
        why_hotfix: String,
        bypass_justified: BypassJustified,
        breakglass_used: bool,
        cleanup_pr_link: Option<String>,
    },
    RecordAuditReview {
        findings: String,
    },
    GrantBreakglass {
        role: String,
        #[serde(with = "humantime_serde")]
        ttl: Option<Duration>,
    },
    CleanupBreakglass {
        items: Vec<BreakglassItem>,
    },
}

impl Command {
    pub fn step(&self) -> Step {
        match self {
            Command::SubmitFix(_) => Step::Fix,
            Command::OverrideFixLimits { .. } => Step::Override,
            Command::Approve { .. } => Step::Approve,
            Command::OpenPullRequest { .. } => Step::PullRequest,
            Command::RecordCheck { .. } => Step::Check,
            Command::Merge => Step::Merge,
            Command::Sync { .. } => Step::Sync,
            Command::Verify { .. } => Step::Verify,
            Command::Revert { .. } => Step::Revert,
            Command::RecordCleanup { .. } => Step::Cleanup,
            Command::RecordPostmortem { .. } => Step::Postmortem,
            Command::RecordAuditReview { .. } => Step::AuditReview,
            Command::GrantBreakglass { .. } | Command::CleanupBreakglass { .. } => Step::Breakglass,
        }
    }

    /// Input checks that need no stored facts.
    pub fn validate(&self) -> Result<(), Refusal> {
        match self {
            Command::SubmitFix(p) => {
                check_sha("sha", &p.sha)?;
                check_text("commit_message", &p.commit_message, MAX_COMMIT_MESSAGE)?;
                if p.files.is_empty() {
                    return Err(Refusal::Invalid {
                        field: "files".into(),
                        reason: "at least one changed file is required".into(),
                    });
                }
                if p.files.len() > MAX_FILES {
                    return Err(Refusal::Invalid {
                        field: "files".into(),
                        reason: format!("has more than {MAX_FILES} entries"),
                    });
                }
                for f in &p.files {
                    check_path("files.path", &f.path)?;
                }
                Ok(())
            }
            Command::OverrideFixLimits { sha, reason } => {
                check_sha("sha", sha)?;
                check_line("reason", reason, MAX_TEXT)
            }
            // The approver names what they reviewed: an approval of "the
            // current fix" would approve a commit pushed while they read.
            Command::Approve { sha } => match sha.as_deref() {
                Some(s) => check_sha_ref("sha", s),
                None => Err(Refusal::Invalid {
                    field: "sha".into(),
                    reason: "name the fix you reviewed (--sha, at least 7 hex digits of it); \
                             `hotfixctl show` prints the current fix"
                        .into(),
                }),
            },
            Command::OpenPullRequest {
                number,
                url,
                title,
                labels,
            } => {
                // Number 0 with no URL: a drill's PR that was never opened
                // (refused for real hotfixes when applied).
                if *number != 0 || !url.is_empty() {
                    check_number("number", *number)?;
                    check_url("url", url)?;
                }
                if let Some(t) = title {
                    check_line("title", t, MAX_TITLE)?;
                }
                check_labels("labels", labels)
            }
            Command::RecordCheck { name, sha, .. } => {
                check_line("name", name, MAX_NAME)?;
                sha.as_deref().map_or(Ok(()), |s| check_sha("sha", s))
            }
            Command::Merge => Ok(()),
            Command::Sync { revision, .. } => check_line("revision", revision, MAX_NAME),
            Command::Verify { observed_value, .. } => {
                if observed_value.is_finite() && *observed_value >= 0.0 {
                    Ok(())
                } else {
                    Err(Refusal::Invalid {
                        field: "observed_value".into(),
                        reason: "must be a finite, non-negative number".into(),
                    })
                }
            }
            // 0: a drill's revert that was never opened (refused otherwise).
            Command::Revert { .. } => Ok(()),
            Command::RecordCleanup { pr, url, labels } => {
                check_number("pr_number", *pr)?;
                check_optional_url("url", url)?;
                check_labels("labels", labels)
            }
            Command::RecordPostmortem {
                url,
                why_hotfix,
                cleanup_pr_link,
                ..
            } => {
                check_url("url", url)?;
                check_text("why_hotfix", why_hotfix, MAX_TEXT)?;
                cleanup_pr_link
                    .as_deref()
                    .map_or(Ok(()), |l| check_line("cleanup_pr_link", l, MAX_URL))
            }
            Command::RecordAuditReview { findings } => check_text("findings", findings, MAX_TEXT),
            Command::GrantBreakglass { role, .. } => check_line("role", role, MAX_NAME),
            Command::CleanupBreakglass { items } => {
                if items.is_empty() {
                    Err(Refusal::Invalid {
                        field: "items".into(),
                        reason: "name at least one of rds-snapshots, iam-users, s3-buckets".into(),
                    })
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// The runbook's step 3 PR title and body for `h`.
pub fn pull_request_text(h: &Hotfix, policy: &Policy) -> (String, String) {
    let d = &h.declaration;
    let title = format!("HOTFIX: {} {}", d.incident_id, d.symptom);
    let mut body = format!(
        "P0 incident {} — bypassing normal review.\n\
         Approver: @{}\n\
         Cleanup-owner: @{}\n\
         Cleanup PR: <will follow within {}>\n\
         Postmortem: <will follow within {}>\n\n\
         Symptom: {}\n",
        d.incident_id,
        d.approver,
        d.cleanup_owner,
        humantime::format_duration(policy.cleanup_within),
        humantime::format_duration(policy.postmortem_within),
        d.symptom,
    );
    if d.drill {
        body.push_str("\nDRILL: this hotfix is an exercise of the runbook.\n");
    }
    (title, body)
}

/// The current fix's full SHA, if `sha` (a full SHA or a prefix of at
/// least 7 hex digits) names it; refused when the fix has moved on from
/// what the approver reviewed.
pub(super) fn reviewed(step: Step, h: &Hotfix, sha: &str) -> Result<String, Refusal> {
    let current = h.current_sha().unwrap_or_default();
    if current.is_empty() || !current.starts_with(sha) {
        return Err(refused(
            step,
            format!(
                "you reviewed {} but the current fix is {}: review the current fix and {step} \
                 it by its SHA",
                short(sha),
                short(current)
            ),
        ));
    }
    Ok(current.to_string())
}

pub(super) fn check_number(field: &str, n: u64) -> Result<(), Refusal> {
    if n == 0 {
        Err(Refusal::Invalid {
            field: field.into(),
            reason: "must be a positive PR number".into(),
        })
    } else {
        Ok(())
    }
}

pub(super) fn check_optional_url(field: &str, url: &str) -> Result<(), Refusal> {
    if url.is_empty() {
        Ok(())
    } else {
        check_url(field, url)
    }
}

/// The lane steps allowed from a state (obligation steps included).
pub fn allowed_steps(state: State) -> &'static [Step] {
    use Step::*;
    match state {
        State::Declared => &[Fix, Override, Breakglass],
        State::FixSubmitted => &[Fix, Override, Approve, PullRequest, Breakglass],
        State::Approved => &[Fix, Override, PullRequest, Breakglass],
        State::PrOpen => &[Fix, Override, Approve, Check, Breakglass],
        State::ReadyToMerge => &[Fix, Override, Check, Merge, Breakglass],
        State::Merged => &[Sync, Cleanup, Postmortem, AuditReview, Breakglass],
        State::Synced => &[Sync, Verify, Cleanup, Postmortem, AuditReview, Breakglass],
        State::Mitigated => &[Cleanup, Postmortem, AuditReview, Breakglass],
        State::RevertRequired => &[Revert, Postmortem, AuditReview, Breakglass],
        // Final for the lane; the obligations a merge created stay owed.
        State::Reverted => &[Postmortem, AuditReview, Breakglass],
        State::Aborted | State::Closed => &[],
    }
}

pub(super) fn refused(step: Step, reason: impl Into<String>) -> Refusal {
    Refusal::Refused {
        step,
        reason: reason.into(),
    }
}

/// Step 1 and the pre-flight: opens a hotfix, or says which runbook to use.
pub fn declare(
    ctx: &Ctx,
    existing: Existing,
    gate: &GateView,
    author_quarter_before: u32,
    mut d: Declaration,
) -> Result<Decision, Refusal> {
    check_incident_id("incident_id", &d.incident_id)?;
    check_line("symptom", &d.symptom, MAX_SYMPTOM)?;
    if d.symptom.contains('\n') {
        return Err(Refusal::Invalid {
            field: "symptom".into(),
            reason: "must be one sentence on one line".into(),
        });
    }
    d.approver = normalize_handle("approver", &d.approver)?;
    d.cleanup_owner = normalize_handle("cleanup_owner", &d.cleanup_owner)?;
    check_eta("merge_eta", &d.merge_eta)?;
    check_repository("repository", &d.repository)?;
    check_app("argocd_app", &d.argocd_app)?;
    let mut criteria = d.criteria.clone();
    criteria.sort();
    criteria.dedup();
    d.criteria = criteria;

    ctx.policy.authorize(Step::Declare, ctx.actor, None)?;

    match existing {
        Existing::None => {}
        Existing::Hotfix(h) => {
            return Err(Refusal::AlreadyExists {
                reason: format!(
                    "incident {} already has a hotfix (state {}); hotfixes are not chained: \
                     if it failed, open a new incident",
                    d.incident_id,
                    h.state(&ctx.policy.required_checks)
                ),
            });
        }
        Existing::Mitigation(m) => {
            return Err(Refusal::AlreadyExists {
                reason: format!(
                    "incident {} was already mitigated by {} at {}; a new problem needs a new incident",
                    d.incident_id,
                    m.route.as_str(),
                    m.at.to_rfc3339()
                ),
            });
        }
    }

    let step = Step::Declare;
    if d.severity != Severity::P0 {
        return Err(refused(
            step,
            format!(
                "severity {:?} is not P0: the hotfix lane is for P0 only; ship through the normal \
                 pipeline, which is fast enough for P1/P2",
                d.severity
            ),
        ));
    }
    if d.criteria.is_empty() {
        return Err(refused(
            step,
            "no P0 criterion given: a P0 needs ≥50% of customers down, data loss, or a \
             safety/regulatory impact (criteria: customers-down, data-loss, safety-regulatory)",
        ));
    }
    if d.fix_unknown {
        return Err(refused(
            step,
            "the fix is not known: the hotfix lane ships a KNOWN fix; keep diagnosing with the \
             alert's runbook and declare once the fix is known",
        ));
    }
    if d.flag_can_mitigate {
        return Err(refused(
            step,
            "a feature-flag flip can mitigate: flip it first (feature-flags/README.md), then \
             record it with `hotfixctl mitigated INC --by flag`",
        ));
    }
    if d.rollback_can_mitigate {
        return Err(refused(
            step,
            "a rollback can mitigate: roll back first (rollback/code-rollback-argocd.md), then \
             record it with `hotfixctl mitigated INC --by rollback`",
        ));
    }
    match ctx.directory.get(&d.approver) {
        None => {
            return Err(Refusal::Invalid {
                field: "approver".into(),
                reason: format!("@{} is not in the roster", d.approver),
            });
        }
        Some(roles) if !(roles.contains(&Role::SreLead) || roles.contains(&Role::EngManager)) => {
            return Err(refused(
                step,
                format!(
                    "@{} cannot approve a hotfix: the approver must be an sre-lead or eng-manager",
                    d.approver
                ),
            ));
        }
        Some(_) => {}
    }
    if d.approver == ctx.actor.handle {
        return Err(refused(
            step,
            format!(
                "@{} cannot approve their own hotfix (four eyes): name another sre-lead or \
                 eng-manager as approver",
                d.approver
            ),
        ));
    }
    if !ctx.directory.contains_key(&d.cleanup_owner) {
        return Err(Refusal::Invalid {
            field: "cleanup_owner".into(),
            reason: format!("@{} is not in the roster", d.cleanup_owner),
        });
    }
    if !d.drill {
        let g = ctx.policy.gate(gate);
        if g.closed {
            return Err(Refusal::RateLimited { reason: g.unblock });
        }
    }

    let mut flags = Vec::new();
    if !d.drill {
        let count = author_quarter_before + 1;
        if let Some(flag) = ctx.policy.quarter_flag(count) {
            flags.push(format!(
                "{flag}: @{} has declared {count} hotfixes in {}",
                ctx.actor.handle,
                quarter_of(ctx.now)
            ));
        }
    }
    let summary = format!(
        "{}DECLARING HOTFIX — {} P0. Symptom: {}. Approver: @{}. Cleanup-owner: @{}. Expected merge ETA: {} UTC.",
        if d.drill { "[DRILL] " } else { "" },
        d.incident_id,
        d.symptom.trim_end_matches('.'),
        d.approver,
        d.cleanup_owner,
        d.merge_eta
    );
    let mut events = vec![event(EventKind::Declared, summary)];
    for f in &flags {
        events.push(event(EventKind::Flagged, f.clone()));
    }
    let hotfix = Hotfix {
        declaration: d,
        author: ctx.actor.handle.clone(),
        declared_at: ctx.now,
        version: 1,
        last_seq: 0,
        flags,
        fix: None,
        fix_override: None,
        approval: None,
        pull_request: None,
        checks: BTreeMap::new(),
        merge: None,
        sync: None,
        verification: None,
        revert: None,
        abort: None,
        cleanup: None,
        postmortem: None,
        audit_review: None,
        breakglass: None,
        closed_at: None,
    };
    Ok(Decision {
        hotfix,
        events,
        exercise: None,
    })
}

/// Records an incident mitigated by a flag flip or a rollback.
pub fn record_mitigation(
    ctx: &Ctx,
    incident_id: &str,
    existing: Existing,
    route: MitigationRoute,
    notes: &str,
) -> Result<(Mitigation, EventDraft, Exercise), Refusal> {
    check_incident_id("incident_id", incident_id)?;
    check_optional_text("notes", notes, MAX_TEXT)?;
    ctx.policy.authorize(Step::Mitigated, ctx.actor, None)?;
    match existing {
        Existing::None => {}
        Existing::Hotfix(h) => {
            return Err(Refusal::AlreadyExists {
                reason: format!(
                    "incident {incident_id} has a hotfix (state {}); a hotfix that did not work \
                     is reverted through the lane",
                    h.state(&ctx.policy.required_checks)
                ),
            });
        }
        Existing::Mitigation(m) => {
            return Err(Refusal::AlreadyExists {
                reason: format!(
                    "incident {incident_id} is already recorded as mitigated by {}",
                    m.route.as_str()
                ),
            });
        }
    }
    let m = Mitigation {
        incident_id: incident_id.to_string(),
        route,
        notes: notes.to_string(),
        by: ctx.actor.handle.clone(),
        at: ctx.now,
        seq: 0,
    };
    let e = event(
        EventKind::Mitigated,
        format!("{incident_id} mitigated by {} (no hotfix)", route.as_str()),
    );
    let x = Exercise {
        at: ctx.now,
        incident_id: incident_id.to_string(),
        resolved_by: route.as_str().to_string(),
        drill: false,
    };
    Ok((m, e, x))
}

/// Validates and records the mandatory team review.
pub fn team_review(ctx: &Ctx, notes: &str) -> Result<(TeamReview, EventDraft), Refusal> {
    check_text("notes", notes, MAX_TEXT)?;
    ctx.policy.authorize(Step::TeamReview, ctx.actor, None)?;
    let review = TeamReview {
        by: ctx.actor.handle.clone(),
        notes: notes.to_string(),
        at: ctx.now,
    };
    Ok((
        review,
        event(
            EventKind::TeamReview,
            format!("team review recorded by @{}", ctx.actor.handle),
        ),
    ))
}

/// May the actor take `step` on `h` now? (who, then state.)
pub fn precheck(ctx: &Ctx, h: &Hotfix, step: Step) -> Result<State, Refusal> {
    ctx.policy.authorize(step, ctx.actor, Some(h))?;
    let required = &ctx.policy.required_checks;
    let state = h.state(required);
    if step == Step::Merge && !state_is_past_merge(state) && state != State::ReadyToMerge {
        // Say what holds the merge up, not just which steps are allowed.
        return Err(refused(
            step,
            format!(
                "cannot merge yet: {}",
                merge_blockers(h, required).join("; ")
            ),
        ));
    }
    if !allowed_steps(state).contains(&step) {
        return Err(Refusal::WrongState {
            state,
            step,
            allowed: allowed_steps(state).to_vec(),
            reason: String::new(),
        });
    }
    Ok(state)
}

/// Applies one lane step to a hotfix.
pub(super) fn state_is_past_merge(state: State) -> bool {
    matches!(
        state,
        State::Merged
            | State::Synced
            | State::Mitigated
            | State::RevertRequired
            | State::Reverted
            | State::Aborted
            | State::Closed
    )
}

/// What stands between a hotfix and its merge.
pub fn merge_blockers(h: &Hotfix, required: &[String]) -> Vec<String> {
    let mut why = Vec::new();
    let Some(sha) = h.current_sha() else {
        return vec!["no fix submitted".to_string()];
    };
    if h.current_approval().is_none() {
        why.push(format!(
            "@{} has not approved the current fix {}",
            h.declaration.approver,
            short(sha)
        ));
    }
    if h.pull_request.is_none() {
        why.push("no PR recorded".to_string());
    }
    let left = h.checks_not_passed(required);
    if !left.is_empty() {
        why.push(format!(
            "checks not passed on {}: {}",
            short(sha),
            left.join(", ")
        ));
    }
    why
}

/// The state of the `hotfixd/gate` commit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateState {
    Pending,
    Success,
    Failure,
}

impl GateState {
    /// As GitHub's statuses API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            GateState::Pending => "pending",
            GateState::Success => "success",
            GateState::Failure => "failure",
        }
    }
}

/// The longest description GitHub shows for a status.
pub const GATE_DESCRIPTION_MAX: usize = 140;

/// What the `hotfixd/gate` status on the hotfix's PR head says now: pending
/// with what the runbook still waits for, success once the merge
/// conditions hold, failure when the hotfix was aborted; None where it has
/// nothing to say (no PR yet, or past the merge: the last word stands).
pub fn gate(h: &Hotfix, required: &[String]) -> Option<(GateState, String)> {
    h.pull_request.as_ref()?;
    let (state, why) = match h.state(required) {
        State::PrOpen | State::Approved | State::FixSubmitted => (
            GateState::Pending,
            format!("waiting: {}", merge_blockers(h, required).join("; ")),
        ),
        State::ReadyToMerge => (
            GateState::Success,
            "approved SHA, every required check passed: merge through hotfixd".to_string(),
        ),
        State::Aborted => (
            GateState::Failure,
            format!(
                "hotfix aborted: {}",
                h.abort.as_ref().map_or("", |a| a.reason.as_str())
            ),
        ),
        _ => return None,
    };
    let mut why: String = why.chars().take(GATE_DESCRIPTION_MAX).collect();
    if why.chars().count() == GATE_DESCRIPTION_MAX {
        why.pop();
        why.push('…');
    }
    Some((state, why))
}

/// `hotfixd/gate` for a head pushed to the hotfix PR that is not the fix
/// recorded (`head`, read from GitHub): pending, saying what to do, while
/// the hotfix can still merge; None when `head` is the recorded fix or the
/// hotfix is past merging.
pub fn stray_head_gate(h: &Hotfix, head: &str, required: &[String]) -> Option<(GateState, String)> {
    let (state, _) = gate(h, required)?;
    if state == GateState::Failure || h.current_sha() == Some(head) {
        return None;
    }
    let inc = &h.declaration.incident_id;
    let why = format!(
        "{} is not {inc}'s recorded fix {}: record it (hotfixctl fix {inc}), have it approved",
        short(head),
        short(h.current_sha().unwrap_or_default()),
    );
    Some((
        GateState::Pending,
        why.chars().take(GATE_DESCRIPTION_MAX).collect(),
    ))
}

/// The top-level "concerns" a fix touches.
pub(super) fn concerns(files: &[ChangedFile], depth: usize) -> BTreeSet<String> {
    files
        .iter()
        .map(|f| {
            let parts: Vec<&str> = f.path.split('/').collect();
            // A file at the top level is its own directory's concern: "/".
            if parts.len() <= depth {
                "/".to_string()
            } else {
                parts[..depth].join("/")
            }
        })
        .collect()
}

pub(super) fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObligationKind {
    CleanupPr,
    Postmortem,
    AuditReview,
    BreakglassCleanup,
}

impl ObligationKind {
    pub const ALL: [ObligationKind; 4] = [
        ObligationKind::CleanupPr,
        ObligationKind::Postmortem,
        ObligationKind::AuditReview,
        ObligationKind::BreakglassCleanup,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ObligationKind::CleanupPr => "cleanup_pr",
            ObligationKind::Postmortem => "postmortem",
            ObligationKind::AuditReview => "audit_review",
            ObligationKind::BreakglassCleanup => "breakglass_cleanup",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObligationView {
    pub kind: ObligationKind,
    pub due: Time,
    pub done: bool,
    pub done_at: Option<Time>,
    pub overdue: bool,
    /// Who owes it ("@bob" or "a platform-team member other than @bob").
    pub owner: String,
    pub detail: String,
}

/// Whether the hotfix still needs someone: a lane step is still to be
/// taken (not in a final state), or an obligation is not done. What
/// `ListHotfixes`' `open` filter and the status page show.
pub fn is_open(h: &Hotfix, policy: &Policy, now: Time) -> bool {
    !h.state(&policy.required_checks).is_final()
        || obligations(h, policy, now).iter().any(|o| !o.done)
}

/// The obligations a hotfix owes after its merge (steps 7-9, breakglass).
pub fn obligations(h: &Hotfix, policy: &Policy, now: Time) -> Vec<ObligationView> {
    let mut out = Vec::new();
    let owner = format!("@{}", h.declaration.cleanup_owner);
    let mut push = |kind, due: Time, done_at: Option<Time>, owner: String, detail: String| {
        out.push(ObligationView {
            kind,
            due,
            done: done_at.is_some(),
            done_at,
            overdue: done_at.is_none() && now > due,
            owner,
            detail,
        });
    };
    if let Some(m) = &h.merge {
        // A reverted hotfix has no code left to clean up after.
        if h.revert.is_none() || h.cleanup.is_some() {
            push(
                ObligationKind::CleanupPr,
                after(m.at, policy.cleanup_within),
                h.cleanup.as_ref().map(|c| c.at),
                owner.clone(),
                "return-to-normal-flow PR (tests, docs), full pipeline, no hotfix label".into(),
            );
        }
        push(
            ObligationKind::Postmortem,
            after(m.at, policy.postmortem_within),
            h.postmortem.as_ref().map(|p| p.at),
            owner.clone(),
            "postmortem with the hotfix-specific sections".into(),
        );
        push(
            ObligationKind::AuditReview,
            after(m.at, policy.audit_review_within),
            h.audit_review.as_ref().map(|a| a.at),
            format!("a platform-team member other than @{}", h.author),
            "review of admin merges and breakglass actions in the hotfix window".into(),
        );
    }
    if let Some(bg) = &h.breakglass {
        let outstanding = bg.outstanding();
        let start = h.merge.as_ref().map_or(bg.granted_at, |m| m.at);
        push(
            ObligationKind::BreakglassCleanup,
            after(start, policy.postmortem_within),
            outstanding
                .is_empty()
                .then_some(bg.granted_at.max(h.declared_at)),
            owner,
            if outstanding.is_empty() {
                "breakglass cleanup checklist complete".into()
            } else {
                format!(
                    "breakglass cleanup checklist outstanding: {}",
                    outstanding
                        .iter()
                        .map(|i| i.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
        );
    }
    out
}

/// The event that reports an obligation past its deadline (once).
pub fn overdue_event(
    h: &Hotfix,
    kind: ObligationKind,
    policy: &Policy,
    now: Time,
) -> Option<EventDraft> {
    let o = obligations(h, policy, now)
        .into_iter()
        .find(|o| o.kind == kind && o.overdue)?;
    Some(event(
        EventKind::ObligationOverdue,
        format!(
            "{} is overdue (due {}); owed by {}: {}",
            kind.as_str(),
            o.due.format("%Y-%m-%d %H:%M UTC"),
            o.owner,
            o.detail
        ),
    ))
}

/// A step someone could take next, and why it is blocked if it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextStep {
    pub step: Step,
    pub who: Whom,
    pub blocked: Option<String>,
}

/// What can happen next to a hotfix, for `show`.
pub fn next_steps(h: &Hotfix, policy: &Policy, now: Time) -> Vec<NextStep> {
    let required = &policy.required_checks;
    let state = h.state(required);
    let done: BTreeSet<ObligationKind> = obligations(h, policy, now)
        .into_iter()
        .filter(|o| o.done)
        .map(|o| o.kind)
        .collect();
    let mut out = Vec::new();
    for &step in allowed_steps(state) {
        let blocked = match step {
            Step::Override if h.fix.as_ref().is_some_and(|f| !f.over_limit) => continue,
            Step::Approve => h.fix.is_none().then(|| "no fix submitted yet".to_string()),
            Step::Merge => None,
            Step::Check if h.checks_not_passed(required).is_empty() => continue,
            Step::Cleanup if done.contains(&ObligationKind::CleanupPr) => continue,
            Step::Postmortem if done.contains(&ObligationKind::Postmortem) => continue,
            Step::Postmortem if h.cleanup.is_none() && h.revert.is_none() => {
                Some("record the cleanup PR first".to_string())
            }
            Step::AuditReview if done.contains(&ObligationKind::AuditReview) => continue,
            Step::Breakglass => match &h.breakglass {
                Some(bg) if bg.outstanding().is_empty() => continue,
                _ => None,
            },
            _ => None,
        };
        out.push(NextStep {
            step,
            who: policy.who_may(step, Some(h)),
            blocked,
        });
    }
    // Before the merge, the merge is the goal: say what holds it up.
    if matches!(
        state,
        State::Declared | State::FixSubmitted | State::Approved | State::PrOpen
    ) {
        out.push(NextStep {
            step: Step::Merge,
            who: policy.who_may(Step::Merge, Some(h)),
            blocked: Some(merge_blockers(h, required).join("; ")),
        });
    }
    out
}

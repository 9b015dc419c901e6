//! Every conversion between `hotfix.v1` messages and domain types, in one
//! place. Request conversions validate enums and name the field they reject.

use hotfix_api::pb;
use prost_types::Timestamp;

use crate::app::lane::{AuthorQuarter, HotfixView, IncidentView, Mutation, Report, WindowView};
use crate::domain::log::StoredEvent;
use crate::domain::{self, Refusal, Time};

pub fn to_ts(t: Time) -> Timestamp {
    Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

fn opt_ts(t: Option<Time>) -> Option<Timestamp> {
    t.map(to_ts)
}

fn invalid(field: &str, reason: impl Into<String>) -> Refusal {
    Refusal::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

pub fn to_mutation(m: Option<pb::Mutation>) -> Mutation {
    let m = m.unwrap_or_default();
    Mutation {
        request_id: m.request_id,
        expected_version: m.expected_version,
    }
}

pub fn to_state(s: domain::State) -> pb::State {
    match s {
        domain::State::Declared => pb::State::Declared,
        domain::State::FixSubmitted => pb::State::FixSubmitted,
        domain::State::Approved => pb::State::Approved,
        domain::State::PrOpen => pb::State::PrOpen,
        domain::State::ReadyToMerge => pb::State::ReadyToMerge,
        domain::State::Merged => pb::State::Merged,
        domain::State::Synced => pb::State::Synced,
        domain::State::Mitigated => pb::State::Mitigated,
        domain::State::RevertRequired => pb::State::RevertRequired,
        domain::State::Reverted => pb::State::Reverted,
        domain::State::Aborted => pb::State::Aborted,
        domain::State::Closed => pb::State::Closed,
    }
}

pub fn from_state(field: &str, s: i32) -> Result<Option<domain::State>, Refusal> {
    let s = pb::State::try_from(s).map_err(|_| invalid(field, format!("unknown state {s}")))?;
    if s == pb::State::Unspecified {
        return Ok(None);
    }
    domain::State::ALL
        .into_iter()
        .find(|d| to_state(*d) == s)
        .map(Some)
        .ok_or_else(|| {
            invalid(
                field,
                format!("{} is not a hotfix lane state", s.as_str_name()),
            )
        })
}

fn severity(v: i32) -> Result<domain::Severity, Refusal> {
    match pb::Severity::try_from(v) {
        Ok(pb::Severity::P0) => Ok(domain::Severity::P0),
        Ok(pb::Severity::P1) => Ok(domain::Severity::P1),
        Ok(pb::Severity::P2) => Ok(domain::Severity::P2),
        _ => Err(invalid("severity", "must be P0, P1 or P2")),
    }
}

fn criterion(v: i32) -> Result<domain::Criterion, Refusal> {
    match pb::Criterion::try_from(v) {
        Ok(pb::Criterion::CustomersDown) => Ok(domain::Criterion::CustomersDown),
        Ok(pb::Criterion::DataLoss) => Ok(domain::Criterion::DataLoss),
        Ok(pb::Criterion::SafetyRegulatory) => Ok(domain::Criterion::SafetyRegulatory),
        _ => Err(invalid(
            "criteria",
            "each criterion must be customers-down, data-loss or safety-regulatory",
        )),
    }
}

fn to_pb_criterion(c: domain::Criterion) -> pb::Criterion {
    match c {
        domain::Criterion::CustomersDown => pb::Criterion::CustomersDown,
        domain::Criterion::DataLoss => pb::Criterion::DataLoss,
        domain::Criterion::SafetyRegulatory => pb::Criterion::SafetyRegulatory,
    }
}

pub fn to_route(v: i32) -> Result<domain::MitigationRoute, Refusal> {
    match pb::MitigationRoute::try_from(v) {
        Ok(pb::MitigationRoute::Flag) => Ok(domain::MitigationRoute::Flag),
        Ok(pb::MitigationRoute::Rollback) => Ok(domain::MitigationRoute::Rollback),
        _ => Err(invalid("route", "must be flag or rollback")),
    }
}

fn to_pb_route(r: domain::MitigationRoute) -> pb::MitigationRoute {
    match r {
        domain::MitigationRoute::Flag => pb::MitigationRoute::Flag,
        domain::MitigationRoute::Rollback => pb::MitigationRoute::Rollback,
    }
}

fn check_result(v: i32) -> Result<domain::CheckResult, Refusal> {
    match pb::CheckResult::try_from(v) {
        Ok(pb::CheckResult::Pending) => Ok(domain::CheckResult::Pending),
        Ok(pb::CheckResult::Success) => Ok(domain::CheckResult::Success),
        Ok(pb::CheckResult::Failure) => Ok(domain::CheckResult::Failure),
        _ => Err(invalid("result", "must be pending, success or failure")),
    }
}

fn to_pb_check_result(r: domain::CheckResult) -> pb::CheckResult {
    match r {
        domain::CheckResult::Pending => pb::CheckResult::Pending,
        domain::CheckResult::Success => pb::CheckResult::Success,
        domain::CheckResult::Failure => pb::CheckResult::Failure,
    }
}

fn bypass(v: i32) -> Result<domain::BypassJustified, Refusal> {
    match pb::BypassJustified::try_from(v) {
        Ok(pb::BypassJustified::Yes) => Ok(domain::BypassJustified::Yes),
        Ok(pb::BypassJustified::YesButRollback) => Ok(domain::BypassJustified::YesButRollback),
        Ok(pb::BypassJustified::No) => Ok(domain::BypassJustified::No),
        _ => Err(invalid(
            "bypass_justified",
            "must be yes, yes-but-rollback or no",
        )),
    }
}

fn to_pb_bypass(b: domain::BypassJustified) -> pb::BypassJustified {
    match b {
        domain::BypassJustified::Yes => pb::BypassJustified::Yes,
        domain::BypassJustified::YesButRollback => pb::BypassJustified::YesButRollback,
        domain::BypassJustified::No => pb::BypassJustified::No,
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

pub fn to_declaration(r: pb::DeclareRequest) -> Result<domain::Declaration, Refusal> {
    if r.criteria.len() > 3 {
        return Err(invalid("criteria", "at most 3 criteria"));
    }
    Ok(domain::Declaration {
        severity: severity(r.severity)?,
        criteria: r
            .criteria
            .into_iter()
            .map(criterion)
            .collect::<Result<_, _>>()?,
        incident_id: r.incident_id,
        symptom: r.symptom,
        approver: r.approver,
        cleanup_owner: r.cleanup_owner,
        merge_eta: r.merge_eta,
        repository: r.repository,
        argocd_app: r.argocd_app,
        flag_can_mitigate: r.flag_can_mitigate,
        rollback_can_mitigate: r.rollback_can_mitigate,
        fix_unknown: r.fix_unknown,
        drill: r.drill,
    })
}

pub fn fix_command(r: pb::SubmitFixRequest) -> domain::Command {
    domain::Command::SubmitFix(domain::FixProposal {
        branch: r.branch,
        sha: r.sha,
        commit_message: r.commit_message,
        files: r
            .files
            .into_iter()
            .map(|f| domain::ChangedFile {
                path: f.path,
                added: f.added,
                removed: f.removed,
            })
            .collect(),
    })
}

pub fn check_command(r: pb::RecordCheckRequest) -> Result<domain::Command, Refusal> {
    Ok(domain::Command::RecordCheck {
        result: check_result(r.result)?,
        name: r.name,
        sha: non_empty(r.sha),
    })
}

pub fn postmortem_command(r: pb::RecordPostmortemRequest) -> Result<domain::Command, Refusal> {
    Ok(domain::Command::RecordPostmortem {
        bypass_justified: bypass(r.bypass_justified)?,
        url: r.url,
        why_hotfix: r.why_hotfix,
        breakglass_used: r.breakglass_used,
        cleanup_pr_link: non_empty(r.cleanup_pr_link),
    })
}

pub fn breakglass_items(items: Vec<String>) -> Result<domain::Command, Refusal> {
    if items.len() > domain::BreakglassItem::ALL.len() * 4 {
        return Err(invalid("items", "too many items"));
    }
    let items = items
        .iter()
        .map(|i| {
            domain::BreakglassItem::parse(i).ok_or_else(|| {
                invalid(
                    "items",
                    format!("'{i}' is not a checklist item (rds-snapshots, iam-users, s3-buckets)"),
                )
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(domain::Command::CleanupBreakglass { items })
}

pub fn non_empty_opt(s: String) -> Option<String> {
    non_empty(s)
}

fn to_pb_files(files: &[domain::ChangedFile]) -> Vec<pb::ChangedFile> {
    files
        .iter()
        .map(|f| pb::ChangedFile {
            path: f.path.clone(),
            added: f.added,
            removed: f.removed,
        })
        .collect()
}

pub fn to_pb_hotfix(h: &domain::Hotfix, policy: &domain::Policy, now: Time) -> pb::Hotfix {
    let d = &h.declaration;
    pb::Hotfix {
        incident_id: d.incident_id.clone(),
        state: to_state(h.state(&policy.required_checks)) as i32,
        version: h.version,
        drill: d.drill,
        author: h.author.clone(),
        approver: d.approver.clone(),
        cleanup_owner: d.cleanup_owner.clone(),
        symptom: d.symptom.clone(),
        criteria: d
            .criteria
            .iter()
            .map(|c| to_pb_criterion(*c) as i32)
            .collect(),
        merge_eta: d.merge_eta.clone(),
        repository: d.repository.clone(),
        argocd_app: d.argocd_app.clone(),
        declared_at: Some(to_ts(h.declared_at)),
        fix: h.fix.as_ref().map(|f| pb::Fix {
            branch: f.proposal.branch.clone(),
            sha: f.proposal.sha.clone(),
            commit_message: f.proposal.commit_message.clone(),
            files: to_pb_files(&f.proposal.files),
            changed_lines: f.changed_lines,
            over_limit: f.over_limit,
        }),
        approval: h.approval.as_ref().map(|a| pb::Approval {
            by: a.by.clone(),
            sha: a.sha.clone(),
            at: Some(to_ts(a.at)),
        }),
        pull_request: h.pull_request.as_ref().map(|p| pb::PullRequest {
            number: p.number,
            url: p.url.clone(),
            title: p.title.clone(),
            labels: p.labels.clone(),
        }),
        checks: h
            .checks
            .iter()
            .map(|(name, c)| pb::Check {
                name: name.clone(),
                result: to_pb_check_result(c.result) as i32,
                sha: c.sha.clone(),
                by: c.by.clone(),
                at: Some(to_ts(c.at)),
            })
            .collect(),
        merge: h.merge.as_ref().map(|m| pb::MergeRecord {
            by: m.by.clone(),
            pr: m.pr,
            approver: m.approver.clone(),
            sha: m.sha.clone(),
            at: Some(to_ts(m.at)),
        }),
        sync: h.sync.as_ref().map(|s| pb::SyncRecord {
            by: s.by.clone(),
            app: s.app.clone(),
            revision: s.revision.clone(),
            skipped_canary: s.skipped_canary,
            at: Some(to_ts(s.at)),
        }),
        verification: h.verification.as_ref().map(|v| pb::Verification {
            by: v.by.clone(),
            recovered: v.recovered,
            observed_value: v.observed_value,
            threshold: v.threshold,
            at: Some(to_ts(v.at)),
        }),
        revert_pr: h.revert.as_ref().map_or(0, |r| r.pr),
        abort_reason: h
            .abort
            .as_ref()
            .map(|a| a.reason.clone())
            .unwrap_or_default(),
        obligations: domain::obligations(h, policy, now)
            .into_iter()
            .map(|o| pb::Obligation {
                kind: o.kind.as_str().to_string(),
                due: Some(to_ts(o.due)),
                done: o.done,
                done_at: opt_ts(o.done_at),
                overdue: o.overdue,
                owner: o.owner,
                detail: o.detail,
            })
            .collect(),
        last_seq: h.last_seq,
        flags: h.flags.clone(),
        fix_override: h.fix_override.as_ref().map(|o| pb::FixOverride {
            sha: o.sha.clone(),
            reason: o.reason.clone(),
            by: o.by.clone(),
            at: Some(to_ts(o.at)),
        }),
        breakglass: h.breakglass.as_ref().map(|b| pb::Breakglass {
            role: b.role.clone(),
            granted_by: b.granted_by.clone(),
            granted_at: Some(to_ts(b.granted_at)),
            expires_at: Some(to_ts(b.expires_at)),
            cleaned: b.cleaned.iter().map(|i| i.as_str().to_string()).collect(),
            outstanding: b
                .outstanding()
                .iter()
                .map(|i| i.as_str().to_string())
                .collect(),
        }),
        cleanup: h.cleanup.as_ref().map(|c| pb::Cleanup {
            pr_number: c.pr,
            url: c.url.clone(),
            by: c.by.clone(),
            at: Some(to_ts(c.at)),
        }),
        postmortem: h.postmortem.as_ref().map(|p| pb::Postmortem {
            url: p.url.clone(),
            why_hotfix: p.why_hotfix.clone(),
            bypass_justified: to_pb_bypass(p.bypass_justified) as i32,
            breakglass_used: p.breakglass_used,
            cleanup_pr_link: p.cleanup_pr_link.clone(),
            by: p.by.clone(),
            at: Some(to_ts(p.at)),
        }),
        audit_review: h.audit_review.as_ref().map(|a| pb::AuditReview {
            findings: a.findings.clone(),
            by: a.by.clone(),
            at: Some(to_ts(a.at)),
        }),
    }
}

pub fn to_pb_mitigation(m: &domain::Mitigation) -> pb::Mitigation {
    pb::Mitigation {
        incident_id: m.incident_id.clone(),
        route: to_pb_route(m.route) as i32,
        notes: m.notes.clone(),
        by: m.by.clone(),
        at: Some(to_ts(m.at)),
        seq: m.seq,
    }
}

fn event_state(s: &str) -> i32 {
    if s.is_empty() {
        return pb::State::Unspecified as i32;
    }
    pb::State::from_str_name(&format!("STATE_{s}"))
        .map_or(pb::State::Unspecified as i32, |s| s as i32)
}

pub fn to_pb_event(e: &StoredEvent) -> pb::Event {
    pb::Event {
        seq: e.seq,
        incident_id: e.incident_id.clone(),
        at: Some(to_ts(e.at)),
        actor: e.actor.clone(),
        kind: e.kind.clone(),
        summary: e.summary.clone(),
        state: event_state(&e.state),
        version: e.version,
        drill: e.drill,
    }
}

fn to_pb_timeline(events: &[StoredEvent]) -> Vec<pb::TimelineEntry> {
    events
        .iter()
        .map(|e| pb::TimelineEntry {
            seq: e.seq,
            at: Some(to_ts(e.at)),
            actor: e.actor.clone(),
            kind: e.kind.clone(),
            summary: e.summary.clone(),
            version: e.version,
        })
        .collect()
}

/// `show`'s answer: a hotfix with its next steps, or the mitigation
/// recorded instead of one.
pub fn to_pb_incident(
    v: &IncidentView,
    policy: &domain::Policy,
    now: Time,
) -> pb::GetHotfixResponse {
    match v {
        IncidentView::Hotfix(h) => to_pb_view(h, policy, now),
        IncidentView::Mitigated {
            mitigation,
            timeline,
        } => pb::GetHotfixResponse {
            hotfix: None,
            timeline: to_pb_timeline(timeline),
            next_steps: Vec::new(),
            mitigation: Some(to_pb_mitigation(mitigation)),
        },
    }
}

pub fn to_pb_view(v: &HotfixView, policy: &domain::Policy, now: Time) -> pb::GetHotfixResponse {
    pb::GetHotfixResponse {
        hotfix: Some(to_pb_hotfix(&v.hotfix, policy, now)),
        timeline: to_pb_timeline(&v.timeline),
        next_steps: v
            .next_steps
            .iter()
            .map(|s| pb::NextStep {
                step: s.step.as_str().to_string(),
                who: s.who.to_string(),
                blocked: s.blocked.clone().unwrap_or_default(),
                handles: s.who.people.iter().map(|(h, _)| h.clone()).collect(),
                roles: s.who.roles.iter().map(|r| r.as_str().to_string()).collect(),
                except: s.who.except.clone().unwrap_or_default(),
                any_human: s.who.any_human,
            })
            .collect(),
        mitigation: None,
    }
}

pub fn to_pb_review(r: &domain::TeamReview) -> pb::TeamReview {
    pb::TeamReview {
        by: r.by.clone(),
        notes: r.notes.clone(),
        at: Some(to_ts(r.at)),
    }
}

pub fn to_pb_window(w: &WindowView) -> pb::RateWindow {
    pb::RateWindow {
        count: w.count,
        max: w.max,
        window_seconds: w.window.as_secs(),
        gate_closed: w.gate.closed,
        last_review: w.last_review.as_ref().map(to_pb_review),
        unblock: w.gate.unblock.clone(),
    }
}

pub fn to_pb_author(a: &AuthorQuarter) -> pb::AuthorQuarter {
    pb::AuthorQuarter {
        author: a.author.clone(),
        quarter: a.quarter.clone(),
        count: a.count,
        flag: a.flag.unwrap_or_default().to_string(),
    }
}

pub fn to_pb_report(r: &Report) -> pb::GetReportResponse {
    pb::GetReportResponse {
        window: Some(to_pb_window(&r.window)),
        authors: r.authors.iter().map(to_pb_author).collect(),
        overdue: r
            .overdue
            .iter()
            .map(|o| pb::Overdue {
                incident_id: o.incident_id.clone(),
                obligation: o.obligation.clone(),
                owner: o.owner.clone(),
                due: Some(to_ts(o.due)),
            })
            .collect(),
        postmortems: r.postmortems,
        postmortems_yes_but_rollback: r.postmortems_yes_but_rollback,
        rollback_training_flag: r.rollback_training_flag,
        last_worked: r
            .last_worked
            .iter()
            .map(|x| pb::Exercise {
                at: Some(to_ts(x.at)),
                incident_id: x.incident_id.clone(),
                resolved_by: x.resolved_by.clone(),
                drill: x.drill,
            })
            .collect(),
        stale: r.stale,
        generated_at: Some(to_ts(r.generated_at)),
    }
}

#[cfg(test)]
mod tests {
    //! The proto names each enum value once; the domain's spellings (stored
    //! in events, shown in refusals) must be those names.

    use super::*;

    #[test]
    fn the_domain_spells_every_state_and_value_as_the_proto_names_it() {
        for s in domain::State::ALL {
            let wire = to_state(s).as_str_name();
            assert_eq!(wire.strip_prefix("STATE_"), Some(s.as_str()), "{s:?}");
            assert_eq!(from_state("state", to_state(s) as i32), Ok(Some(s)));
        }
        for r in [
            domain::MitigationRoute::Flag,
            domain::MitigationRoute::Rollback,
        ] {
            let wire = hotfix_api::route_name(to_pb_route(r) as i32);
            assert_eq!(wire, r.as_str());
            assert_eq!(to_route(to_pb_route(r) as i32), Ok(r));
        }
        for b in [
            domain::BypassJustified::Yes,
            domain::BypassJustified::YesButRollback,
            domain::BypassJustified::No,
        ] {
            let wire = hotfix_api::bypass_name(to_pb_bypass(b) as i32);
            assert_eq!(wire, b.as_str());
            assert_eq!(bypass(to_pb_bypass(b) as i32), Ok(b));
        }
    }
}

//! Steps 2–9 on one hotfix, one function per step: [`apply`] checks the
//! input, who asks and the state (`precheck`), then runs the step's rules
//! on a `Change` (the hotfix before, the next version, the events).

use std::collections::BTreeSet;
use std::time::Duration;

use super::EventKind;
use super::Refusal;
use super::lane::*;
use super::model::*;
use super::policy::{Policy, Step, after};
use super::validate::*;

/// One step being decided: the hotfix as it was, the next version, and
/// what to record.
pub(crate) struct Change<'a> {
    ctx: &'a Ctx<'a>,
    h: &'a Hotfix,
    step: Step,
    now: Time,
    who: String,
    inc: String,
    n: Hotfix,
    events: Vec<EventDraft>,
    exercise: Option<Exercise>,
}

impl<'a> Change<'a> {
    fn new(ctx: &'a Ctx<'a>, h: &'a Hotfix, step: Step) -> Change<'a> {
        let mut n = h.clone();
        n.version += 1;
        Change {
            ctx,
            h,
            step,
            now: ctx.now,
            who: ctx.actor.handle.clone(),
            inc: h.incident_id().to_string(),
            n,
            events: Vec::new(),
            exercise: None,
        }
    }

    /// The decision; a hotfix closes when it is mitigated and owes nothing
    /// more.
    fn close_if_done(mut self) -> Decision {
        let (policy, now) = (self.ctx.policy, self.now);
        if self.n.state(&policy.required_checks) == State::Mitigated
            && obligations(&self.n, policy, now).iter().all(|o| o.done)
        {
            self.n.closed_at = Some(now);
            self.events.push(event(
                EventKind::Closed,
                "every obligation is done: hotfix closed",
            ));
        }
        Decision {
            hotfix: self.n,
            events: self.events,
            exercise: self.exercise,
        }
    }
}

/// Steps 2–9: the decision of `cmd` on `h`, or why not.
pub fn apply(ctx: &Ctx, h: &Hotfix, cmd: &Command) -> Result<Decision, Refusal> {
    cmd.validate()?;
    let step = cmd.step();
    precheck(ctx, h, step)?;
    let mut c = Change::new(ctx, h, step);
    match cmd {
        Command::SubmitFix(p) => submit_fix(&mut c, p),
        Command::OverrideFixLimits { sha, reason } => override_fix_limits(&mut c, sha, reason),
        Command::Approve { sha } => approve(&mut c, sha.as_deref()),
        Command::OpenPullRequest {
            number,
            url,
            title,
            labels,
        } => open_pull_request(&mut c, *number, url, title.as_deref(), labels),
        Command::RecordCheck { name, result, sha } => {
            record_check(&mut c, name, *result, sha.as_deref())
        }
        Command::Merge => merge(&mut c),
        Command::Sync {
            revision,
            skip_canary,
        } => sync(&mut c, revision, *skip_canary),
        Command::Verify {
            recovered,
            observed_value,
        } => verify(&mut c, *recovered, *observed_value),
        Command::Revert { pr } => revert(&mut c, *pr),
        Command::RecordCleanup { pr, url, labels } => record_cleanup(&mut c, *pr, url, labels),
        Command::RecordPostmortem {
            url,
            why_hotfix,
            bypass_justified,
            breakglass_used,
            cleanup_pr_link,
        } => record_postmortem(
            &mut c,
            url,
            why_hotfix,
            *bypass_justified,
            *breakglass_used,
            cleanup_pr_link.as_deref(),
        ),
        Command::RecordAuditReview { findings } => record_audit_review(&mut c, findings),
        Command::GrantBreakglass { role, ttl } => grant_breakglass(&mut c, role, *ttl),
        Command::CleanupBreakglass { items } => cleanup_breakglass(&mut c, items),
    }?;
    Ok(c.close_if_done())
}

/// Step 2: the commit message names the incident and the approver (the
/// audit trail starts here).
fn check_fix_message(message: &str, inc: &str, approver: &str) -> Result<(), Refusal> {
    let approver_tag = format!("approver: @{approver}");
    if !message.contains(inc) {
        return Err(Refusal::Invalid {
            field: "commit_message".into(),
            reason: format!("must name the incident id {inc} (the audit trail starts here)"),
        });
    }
    if !message.contains(&approver_tag) {
        return Err(Refusal::Invalid {
            field: "commit_message".into(),
            reason: format!("must contain '{approver_tag}'"),
        });
    }
    Ok(())
}

/// Step 2: the lines a fix changes, and how it is over the lane's limits
/// (too many lines, more than one concern); empty when within them.
fn fix_size(policy: &Policy, files: &[ChangedFile]) -> (u32, Vec<String>) {
    let changed: u64 = files
        .iter()
        .map(|f| u64::from(f.added) + u64::from(f.removed))
        .sum();
    let changed = u32::try_from(changed).unwrap_or(u32::MAX);
    let mut over = Vec::new();
    if changed > policy.max_fix_lines {
        over.push(format!(
            "it changes {changed} lines (limit {})",
            policy.max_fix_lines
        ));
    }
    let concerns = concerns(files, policy.concern_depth);
    if concerns.len() > 1 {
        over.push(format!(
            "it touches more than one concern ({}); one concern per hotfix",
            concerns.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    (changed, over)
}

/// Step 2: the fix commit, within the limits or overridden for its SHA; a
/// new SHA clears the checks and voids the approval.
fn submit_fix(c: &mut Change<'_>, p: &FixProposal) -> Result<(), Refusal> {
    let (ctx, h, step, now) = (c.ctx, c.h, c.step, c.now);
    let inc = c.inc.clone();
    let (n, events) = (&mut c.n, &mut c.events);

    check_branch("branch", &p.branch, &inc)?;
    check_fix_message(&p.commit_message, &inc, &h.declaration.approver)?;
    let (changed, over) = fix_size(ctx.policy, &p.files);
    let overridden = h.fix_override.as_ref().is_some_and(|o| o.sha == p.sha);
    if !over.is_empty() && !overridden {
        return Err(refused(
            step,
            format!(
                "fix {} is too large for the hotfix lane: {}. Shrink it, or the approver \
                     @{} may accept it with `hotfixctl override {inc} --sha {} --reason ...`",
                short(&p.sha),
                over.join("; "),
                h.declaration.approver,
                p.sha
            ),
        ));
    }
    let new_sha = h.current_sha() != Some(p.sha.as_str());
    if new_sha {
        n.checks.clear();
        if h.approval.is_some() {
            n.approval = None;
            events.push(event(
                EventKind::ApprovalVoided,
                format!(
                    "approval by @{} voided: the fix changed to {}",
                    h.declaration.approver,
                    short(&p.sha)
                ),
            ));
        }
    }
    n.fix = Some(Fix {
        proposal: p.clone(),
        changed_lines: changed,
        over_limit: !over.is_empty(),
        at: now,
    });
    events.insert(
        0,
        event(
            EventKind::FixSubmitted,
            format!(
                "fix {} on {} ({} files, {changed} lines{})",
                short(&p.sha),
                p.branch,
                p.files.len(),
                if over.is_empty() {
                    ""
                } else {
                    ", over limit: approver override"
                }
            ),
        ),
    );
    Ok(())
}

/// Step 2: the approver admits one over-limit fix, by its SHA.
fn override_fix_limits(c: &mut Change<'_>, sha: &str, reason: &str) -> Result<(), Refusal> {
    let now = c.now;
    let who = c.who.clone();
    let (n, events) = (&mut c.n, &mut c.events);

    // Named in full, for a fix that was refused over the limits and
    // is not recorded yet: it admits that SHA and no other.
    n.fix_override = Some(FixOverride {
        sha: sha.to_string(),
        reason: reason.to_string(),
        by: who.clone(),
        at: now,
    });
    events.push(event(
        EventKind::FixOverride,
        format!("@{who} accepts an over-limit fix {}: {reason}", short(sha)),
    ));
    Ok(())
}

/// Step 2: the approver approves the current fix (four eyes, pinned SHA).
fn approve(c: &mut Change<'_>, sha: Option<&str>) -> Result<(), Refusal> {
    let (h, step, now) = (c.h, c.step, c.now);
    let who = c.who.clone();
    let (n, events) = (&mut c.n, &mut c.events);

    let current = reviewed(step, h, sha.unwrap_or_default())?;
    if h.current_approval().is_some() {
        return Err(refused(
            step,
            format!("fix {} is already approved", short(&current)),
        ));
    }
    n.approval = Some(Approval {
        by: who.clone(),
        sha: current.clone(),
        at: now,
    });
    events.push(event(
        EventKind::Approved,
        format!("@{who} approved fix {}", short(&current)),
    ));
    Ok(())
}

/// Step 3: the PR, titled and labelled `hotfix` as the runbook says.
fn open_pull_request(
    c: &mut Change<'_>,
    number: u64,
    url: &str,
    title: Option<&str>,
    labels: &[String],
) -> Result<(), Refusal> {
    let (ctx, h, step, now) = (c.ctx, c.h, c.step, c.now);
    let inc = c.inc.clone();
    let (n, events) = (&mut c.n, &mut c.events);

    if number == 0 && !h.is_drill() {
        return Err(Refusal::Invalid {
            field: "number".into(),
            reason: "must be a positive PR number".into(),
        });
    }
    let prefix = format!("HOTFIX: {inc}");
    let title = match title {
        Some(t) if !t.starts_with(&prefix) => {
            return Err(Refusal::Invalid {
                field: "title".into(),
                reason: format!("must start with '{prefix}'"),
            });
        }
        Some(t) => t.to_string(),
        None => pull_request_text(h, ctx.policy).0,
    };
    // The fast path runs only on PRs labelled `hotfix`: a PR
    // without it would not get it, so recording it as if it did
    // would be a lie in the timeline.
    if !labels.iter().any(|l| l == HOTFIX_LABEL) {
        return Err(Refusal::Invalid {
            field: "labels".into(),
            reason: format!(
                "the PR must carry the '{HOTFIX_LABEL}' label (the CI fast path runs \
                     only on PRs labelled '{HOTFIX_LABEL}'); label it and record it again"
            ),
        });
    }
    let mut labels = labels.to_vec();
    labels.sort();
    labels.dedup();
    if let Some(pr) = &h.pull_request {
        return Err(refused(
            step,
            format!(
                "PR #{} is already recorded for this hotfix; push new fixes to it",
                pr.number
            ),
        ));
    }
    n.pull_request = Some(PullRequest {
        number,
        url: url.to_string(),
        title: title.clone(),
        labels,
        at: now,
    });
    events.push(event(
        EventKind::PrOpened,
        format!("PR #{number} \"{title}\" labelled '{HOTFIX_LABEL}' ({url})"),
    ));
    Ok(())
}

/// Step 4: a fast-path check result on the current SHA; a failed scan ends the hotfix.
fn record_check(
    c: &mut Change<'_>,
    name: &str,
    result: CheckResult,
    sha: Option<&str>,
) -> Result<(), Refusal> {
    let (h, step, now) = (c.h, c.step, c.now);
    let who = c.who.clone();
    let required = &c.ctx.policy.required_checks;
    let (n, events) = (&mut c.n, &mut c.events);

    let current = h.current_sha().unwrap_or_default().to_string();
    if !required.iter().any(|r| r == name) {
        return Err(Refusal::Invalid {
            field: "name".into(),
            reason: format!(
                "'{name}' is not a required fast-path check (required: {})",
                required.join(", ")
            ),
        });
    }
    if let Some(s) = sha
        && *s != current
    {
        return Err(refused(
            step,
            format!(
                "check ran on {} but the PR's current fix is {}: results for an old SHA do not count",
                short(s),
                short(&current)
            ),
        ));
    }
    n.checks.insert(
        name.to_string(),
        Check {
            result,
            sha: current.clone(),
            by: who.clone(),
            at: now,
        },
    );
    events.push(event(
        EventKind::CheckRecorded,
        format!("check {name}: {:?} on {}", result, short(&current)).to_lowercase(),
    ));
    if name == SCAN_CHECK && result == CheckResult::Failure {
        let reason = "scan failed: a hotfix that introduces a CVE is not a hotfix; \
                          scan is never skipped or overridden. Mitigate with a flag flip or \
                          a rollback instead";
        n.abort = Some(Abort {
            reason: reason.to_string(),
            at: now,
        });
        events.push(event(EventKind::Aborted, reason));
    }
    Ok(())
}

/// Step 5: the admin merge, once approved and every required check passed.
fn merge(c: &mut Change<'_>) -> Result<(), Refusal> {
    let (h, now) = (c.h, c.now);
    let who = c.who.clone();
    let (n, events) = (&mut c.n, &mut c.events);

    let pr = h
        .pull_request
        .as_ref()
        .map(|p| p.number)
        .unwrap_or_default();
    let sha = h.current_sha().unwrap_or_default().to_string();
    n.merge = Some(MergeRecord {
        by: who.clone(),
        pr,
        approver: h.declaration.approver.clone(),
        sha: sha.to_string(),
        at: now,
    });
    events.push(event(
        EventKind::Merged,
        format!(
            "@{who} merged PR #{pr} ({}) via admin bypass; approver @{}",
            short(&sha),
            h.declaration.approver
        ),
    ));
    Ok(())
}

/// Step 5: the Argo CD sync of the merged fix.
fn sync(c: &mut Change<'_>, revision: &str, skip_canary: bool) -> Result<(), Refusal> {
    let (h, now) = (c.h, c.now);
    let who = c.who.clone();
    let (n, events) = (&mut c.n, &mut c.events);

    n.sync = Some(SyncRecord {
        by: who.clone(),
        app: h.declaration.argocd_app.clone(),
        revision: revision.to_string(),
        skipped_canary: skip_canary,
        at: now,
    });
    events.push(event(
        EventKind::Synced,
        format!(
            "Argo CD app {} synced to {revision}{}",
            h.declaration.argocd_app,
            if skip_canary { " (canary skipped)" } else { "" }
        ),
    ));
    Ok(())
}

/// Step 6: the symptom measured; recovered below the threshold, or revert.
fn verify(c: &mut Change<'_>, recovered: bool, observed_value: f64) -> Result<(), Refusal> {
    let (ctx, h, now) = (c.ctx, c.h, c.now);
    let who = c.who.clone();
    let inc = c.inc.clone();
    let (n, events) = (&mut c.n, &mut c.events);

    let threshold = ctx.policy.verify_threshold;
    if recovered && observed_value >= threshold {
        return Err(Refusal::Invalid {
            field: "recovered".into(),
            reason: format!(
                "the observed value {observed_value} is not below the threshold {threshold}: \
                     the symptom has not recovered"
            ),
        });
    }
    n.verification = Some(Verification {
        by: who.clone(),
        recovered,
        observed_value,
        threshold,
        at: now,
    });
    if recovered {
        events.push(event(
            EventKind::Verified,
            format!("symptom recovered: {observed_value} < {threshold}"),
        ));
        c.exercise = Some(Exercise {
            at: now,
            incident_id: inc.clone(),
            resolved_by: "hotfix".into(),
            drill: h.is_drill(),
        });
    } else {
        events.push(event(
            EventKind::RevertRequired,
            format!(
                "symptom did not recover ({observed_value}, threshold {threshold}): revert \
                     the hotfix; do not chain another hotfix"
            ),
        ));
    }
    Ok(())
}

/// Step 6: the revert of a hotfix that did not recover.
fn revert(c: &mut Change<'_>, pr: u64) -> Result<(), Refusal> {
    let (h, now) = (c.h, c.now);
    let who = c.who.clone();
    let inc = c.inc.clone();
    let (n, events) = (&mut c.n, &mut c.events);

    if pr == 0 && !h.is_drill() {
        return Err(Refusal::Invalid {
            field: "revert_pr".into(),
            reason: "must be a positive PR number".into(),
        });
    }
    n.revert = Some(RevertRecord {
        by: who.clone(),
        pr,
        at: now,
    });
    events.push(event(
        EventKind::Reverted,
        format!("@{who} reverted the hotfix with PR #{pr}; a new incident is needed"),
    ));
    c.exercise = Some(Exercise {
        at: now,
        incident_id: inc.clone(),
        resolved_by: "hotfix-reverted".into(),
        drill: h.is_drill(),
    });
    Ok(())
}

/// Step 7: the cleanup PR through the normal pipeline.
fn record_cleanup(
    c: &mut Change<'_>,
    pr: u64,
    url: &str,
    labels: &[String],
) -> Result<(), Refusal> {
    let (h, step, now) = (c.h, c.step, c.now);
    let who = c.who.clone();
    let (n, events) = (&mut c.n, &mut c.events);

    if labels.iter().any(|l| l == HOTFIX_LABEL) {
        return Err(refused(
            step,
            format!(
                "cleanup PR #{pr} carries the '{HOTFIX_LABEL}' label: it must run the full \
                     pipeline with normal review; remove the label"
            ),
        ));
    }
    if h.pull_request.as_ref().is_some_and(|p| p.number == pr) {
        return Err(Refusal::Invalid {
            field: "pr_number".into(),
            reason: format!("#{pr} is the hotfix PR itself, not a cleanup PR"),
        });
    }
    n.cleanup = Some(CleanupRecord {
        pr,
        url: url.to_string(),
        by: who.clone(),
        at: now,
    });
    events.push(event(
        EventKind::CleanupRecorded,
        format!("cleanup PR #{pr} recorded"),
    ));
    Ok(())
}

/// Step 8: the postmortem, by the deadline.
fn record_postmortem(
    c: &mut Change<'_>,
    url: &str,
    why_hotfix: &str,
    bypass_justified: BypassJustified,
    breakglass_used: bool,
    cleanup_pr_link: Option<&str>,
) -> Result<(), Refusal> {
    let (h, step, now) = (c.h, c.step, c.now);
    let who = c.who.clone();
    let inc = c.inc.clone();
    let (n, events) = (&mut c.n, &mut c.events);

    let link = match (cleanup_pr_link, &h.cleanup) {
        (Some(l), _) => l.to_string(),
        (None, Some(c)) if !c.url.is_empty() => c.url.to_string(),
        (None, Some(c)) => format!("#{}", c.pr),
        (None, None) if h.revert.is_some() => String::new(),
        (None, None) => {
            return Err(refused(
                step,
                format!(
                    "the postmortem must link the cleanup PR: record it first with \
                         `hotfixctl cleanup {inc} --pr N`, or pass --cleanup-pr-link"
                ),
            ));
        }
    };
    if breakglass_used && h.breakglass.is_none() {
        return Err(refused(
            step,
            format!(
                "the postmortem says breakglass was used but no grant is recorded: record it \
                     with `hotfixctl breakglass {inc} grant --role ROLE`"
            ),
        ));
    }
    if !breakglass_used && h.breakglass.is_some() {
        return Err(Refusal::Invalid {
            field: "breakglass_used".into(),
            reason: "a breakglass grant is recorded for this hotfix; the postmortem must say so"
                .into(),
        });
    }
    n.postmortem = Some(PostmortemRecord {
        url: url.to_string(),
        why_hotfix: why_hotfix.to_string(),
        bypass_justified,
        breakglass_used,
        cleanup_pr_link: link,
        by: who.clone(),
        at: now,
    });
    events.push(event(
        EventKind::PostmortemRecorded,
        format!(
            "postmortem recorded ({url}); bypass justified: {}",
            bypass_justified.as_str()
        ),
    ));
    Ok(())
}

/// Step 9: the audit review (who may take it: `precheck`).
fn record_audit_review(c: &mut Change<'_>, findings: &str) -> Result<(), Refusal> {
    let now = c.now;
    let who = c.who.clone();
    let (n, events) = (&mut c.n, &mut c.events);

    n.audit_review = Some(AuditReviewRecord {
        findings: findings.to_string(),
        by: who.clone(),
        at: now,
    });
    events.push(event(
        EventKind::AuditReviewed,
        format!("audit review by @{who}"),
    ));
    Ok(())
}

/// Breakglass: a grant recorded with its expiry.
fn grant_breakglass(c: &mut Change<'_>, role: &str, ttl: Option<Duration>) -> Result<(), Refusal> {
    let (ctx, h, step, now) = (c.ctx, c.h, c.step, c.now);
    let who = c.who.clone();
    let (n, events) = (&mut c.n, &mut c.events);

    if h.breakglass.is_some() {
        return Err(refused(
            step,
            "a breakglass grant is already recorded for this hotfix",
        ));
    }
    let max = ctx.policy.breakglass_ttl;
    let ttl = ttl.unwrap_or(max);
    if ttl.is_zero() || ttl > max {
        return Err(Refusal::Invalid {
            field: "ttl_seconds".into(),
            reason: format!(
                "must be between 1s and the breakglass TTL {}",
                humantime::format_duration(max)
            ),
        });
    }
    n.breakglass = Some(BreakglassRecord {
        role: role.to_string(),
        granted_by: who.clone(),
        granted_at: now,
        expires_at: after(now, ttl),
        cleaned: BTreeSet::new(),
        cleaned_at: None,
    });
    events.push(event(
        EventKind::BreakglassGranted,
        format!(
            "breakglass role {role} recorded by @{who}, expires in {}",
            humantime::format_duration(ttl)
        ),
    ));
    Ok(())
}

/// Breakglass: the cleanup checklist, item by item.
fn cleanup_breakglass(c: &mut Change<'_>, items: &[BreakglassItem]) -> Result<(), Refusal> {
    let (step, now) = (c.step, c.now);
    let inc = c.inc.clone();
    let (n, events) = (&mut c.n, &mut c.events);

    let Some(bg) = n.breakglass.as_mut() else {
        return Err(refused(
            step,
            format!(
                "no breakglass grant is recorded: record it first with `hotfixctl breakglass {inc} grant`"
            ),
        ));
    };
    bg.cleaned.extend(items.iter().copied());
    if bg.outstanding().is_empty() && bg.cleaned_at.is_none() {
        bg.cleaned_at = Some(now);
    }
    let names: Vec<&str> = items.iter().map(|i| i.as_str()).collect();
    let left: Vec<&str> = bg.outstanding().iter().map(|i| i.as_str()).collect();
    events.push(event(
        EventKind::BreakglassCleaned,
        format!(
            "breakglass cleanup: {} done{}",
            names.join(", "),
            if left.is_empty() {
                String::from("; checklist complete")
            } else {
                format!("; outstanding: {}", left.join(", "))
            }
        ),
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Each step's own rules, on a hotfix walked there step by step.

    use std::collections::BTreeSet;

    use super::super::model_tests::{declared, roster};
    use super::*;

    const SHA: &str = "1111111111111111111111111111111111111111";
    const SHA2: &str = "2222222222222222222222222222222222222222";

    fn now() -> Time {
        chrono::DateTime::parse_from_rfc3339("2026-05-20T09:00:00Z")
            .unwrap()
            .to_utc()
    }

    fn take(h: &Hotfix, who: &str, cmd: Command) -> Result<Decision, Refusal> {
        let (policy, dir) = (Policy::default(), roster());
        let actor = Principal {
            handle: who.into(),
            roles: dir.get(who).cloned().unwrap_or_else(BTreeSet::new),
        };
        let ctx = Ctx {
            actor: &actor,
            now: now(),
            policy: &policy,
            directory: &dir,
        };
        apply(&ctx, h, &cmd)
    }

    fn step(h: &Hotfix, who: &str, cmd: Command) -> Hotfix {
        take(h, who, cmd).expect("allowed").hotfix
    }

    fn fix(sha: &str, lines: u32, paths: &[&str]) -> Command {
        let inc = "INC-2026-05-20-001";
        Command::SubmitFix(FixProposal {
            branch: format!("hotfix/{inc}-fix"),
            sha: sha.into(),
            commit_message: format!("{inc}: fix\n\napprover: @alice"),
            files: paths
                .iter()
                .map(|p| ChangedFile {
                    path: (*p).into(),
                    added: lines,
                    removed: 0,
                })
                .collect(),
        })
    }

    fn kinds(d: &Decision) -> Vec<EventKind> {
        d.events.iter().map(|e| e.kind).collect()
    }

    fn declared_now() -> Hotfix {
        declared(&Policy::default(), &roster(), now())
    }

    fn approved() -> Hotfix {
        let h = step(&declared_now(), "bob", fix(SHA, 3, &["catalog/a.go"]));
        step(
            &h,
            "alice",
            Command::Approve {
                sha: Some(SHA.into()),
            },
        )
    }

    fn ready() -> Hotfix {
        let mut h = step(
            &approved(),
            "bob",
            Command::OpenPullRequest {
                number: 7,
                url: "https://github.com/bookstore/catalog/pull/7".into(),
                title: None,
                labels: vec![HOTFIX_LABEL.into()],
            },
        );
        for name in Policy::default().required_checks {
            h = step(
                &h,
                "svc",
                Command::RecordCheck {
                    name,
                    result: CheckResult::Success,
                    sha: None,
                },
            );
        }
        h
    }

    #[test]
    fn a_fix_names_the_incident_and_the_approver_and_stays_small() {
        let h = declared_now();
        let mut unnamed = fix(SHA, 3, &["catalog/a.go"]);
        if let Command::SubmitFix(p) = &mut unnamed {
            p.commit_message = "fix it\n\napprover: @alice".into();
        }
        assert!(matches!(
            take(&h, "bob", unnamed),
            Err(Refusal::Invalid { field, .. }) if field == "commit_message"
        ));
        let big = take(&h, "bob", fix(SHA, 400, &["catalog/a.go"])).unwrap_err();
        assert!(big.to_string().contains("lines (limit"), "{big}");
        let wide = take(&h, "bob", fix(SHA, 1, &["catalog/a.go", "billing/b.go"])).unwrap_err();
        assert!(wide.to_string().contains("more than one concern"), "{wide}");
        let d = take(&h, "bob", fix(SHA, 3, &["catalog/a.go"])).unwrap();
        assert_eq!(kinds(&d), [EventKind::FixSubmitted]);
        assert_eq!(d.hotfix.version, h.version + 1);
    }

    #[test]
    fn an_override_admits_exactly_the_sha_it_names() {
        let h = declared_now();
        let o = step(
            &h,
            "alice",
            Command::OverrideFixLimits {
                sha: SHA.into(),
                reason: "one config file".into(),
            },
        );
        assert!(take(&o, "bob", fix(SHA2, 400, &["catalog/a.go"])).is_err());
        let d = take(&o, "bob", fix(SHA, 400, &["catalog/a.go"])).unwrap();
        assert!(d.hotfix.fix.unwrap().over_limit);
    }

    #[test]
    fn approval_is_pinned_and_a_new_fix_voids_it() {
        let h = step(&declared_now(), "bob", fix(SHA, 3, &["catalog/a.go"]));
        let wrong = take(
            &h,
            "alice",
            Command::Approve {
                sha: Some(SHA2.into()),
            },
        );
        assert!(wrong.is_err(), "approving another SHA than the fix's");
        let a = step(
            &h,
            "alice",
            Command::Approve {
                sha: Some(SHA.into()),
            },
        );
        let again = take(
            &a,
            "alice",
            Command::Approve {
                sha: Some(SHA.into()),
            },
        );
        assert!(
            matches!(again, Err(Refusal::WrongState { .. })),
            "{again:?}"
        );
        let d = take(&a, "bob", fix(SHA2, 3, &["catalog/a.go"])).unwrap();
        assert_eq!(
            kinds(&d),
            [EventKind::FixSubmitted, EventKind::ApprovalVoided]
        );
        assert!(d.hotfix.approval.is_none());
    }

    #[test]
    fn a_pr_must_carry_the_hotfix_label() {
        let unlabelled = take(
            &approved(),
            "bob",
            Command::OpenPullRequest {
                number: 7,
                url: "https://github.com/bookstore/catalog/pull/7".into(),
                title: None,
                labels: vec!["bug".into()],
            },
        );
        let e = unlabelled.unwrap_err().to_string();
        assert!(e.contains("'hotfix' label"), "{e}");
    }

    #[test]
    fn a_failed_scan_aborts_and_merge_waits_for_every_check() {
        let pr = step(
            &approved(),
            "bob",
            Command::OpenPullRequest {
                number: 7,
                url: "https://github.com/bookstore/catalog/pull/7".into(),
                title: None,
                labels: vec![HOTFIX_LABEL.into()],
            },
        );
        assert!(take(&pr, "carol", Command::Merge).is_err(), "no checks yet");
        let d = take(
            &pr,
            "svc",
            Command::RecordCheck {
                name: SCAN_CHECK.into(),
                result: CheckResult::Failure,
                sha: None,
            },
        )
        .unwrap();
        assert!(kinds(&d).contains(&EventKind::Aborted), "{:?}", kinds(&d));
        let required = Policy::default().required_checks;
        assert_eq!(d.hotfix.state(&required), State::Aborted);
        let merged = step(&ready(), "carol", Command::Merge);
        assert_eq!(merged.state(&required), State::Merged);
    }

    #[test]
    fn verification_decides_recovered_or_revert_and_a_revert_is_an_exercise() {
        let required = Policy::default().required_checks;
        let synced = step(
            &step(&ready(), "carol", Command::Merge),
            "carol",
            Command::Sync {
                revision: SHA.into(),
                skip_canary: false,
            },
        );
        let claimed = take(
            &synced,
            "alice",
            Command::Verify {
                recovered: true,
                observed_value: 0.5,
            },
        );
        assert!(
            matches!(&claimed, Err(Refusal::Invalid { field, .. }) if field == "recovered"),
            "a 'recovered' above the threshold is not believed: {claimed:?}"
        );
        let bad = step(
            &synced,
            "alice",
            Command::Verify {
                recovered: false,
                observed_value: 0.5,
            },
        );
        assert_eq!(bad.state(&required), State::RevertRequired);
        let d = take(&bad, "carol", Command::Revert { pr: 8 }).unwrap();
        assert_eq!(d.hotfix.state(&required), State::Reverted);
        assert_eq!(
            d.exercise.map(|x| x.resolved_by),
            Some("hotfix-reverted".into())
        );
    }
}

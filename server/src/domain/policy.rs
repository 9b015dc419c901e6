//! Who may take which step, the rate limits, and the obligation deadlines.
//!
//! The defaults are the runbook's numbers. Configuration may grant a step to
//! more roles, never fewer: the named-person rules (the author, the named
//! approver, "not the author" for the audit review) always apply.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use chrono::Datelike;
use serde::{Deserialize, Serialize};

use super::Refusal;
use super::model::{Hotfix, Principal, Role, TeamReview, Time};

/// The lane's steps, as authorization and error messages name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    Declare,
    Mitigated,
    Fix,
    Override,
    Approve,
    #[serde(rename = "pr")]
    PullRequest,
    Check,
    Merge,
    Sync,
    Verify,
    Revert,
    Cleanup,
    Postmortem,
    AuditReview,
    Breakglass,
    TeamReview,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Declare => "declare",
            Step::Mitigated => "mitigated",
            Step::Fix => "fix",
            Step::Override => "override",
            Step::Approve => "approve",
            Step::PullRequest => "pr",
            Step::Check => "check",
            Step::Merge => "merge",
            Step::Sync => "sync",
            Step::Verify => "verify",
            Step::Revert => "revert",
            Step::Cleanup => "cleanup",
            Step::Postmortem => "postmortem",
            Step::AuditReview => "audit-review",
            Step::Breakglass => "breakglass",
            Step::TeamReview => "team-review",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The runbook's numbers, overridable in config.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// A fix may change at most this many lines (added + removed).
    pub max_fix_lines: u32,
    /// "One concern": all changed files share their first `concern_depth`
    /// path components.
    pub concern_depth: usize,
    pub required_checks: Vec<String>,
    pub verify_threshold: f64,
    pub cleanup_within: Duration,
    pub postmortem_within: Duration,
    pub audit_review_within: Duration,
    pub breakglass_ttl: Duration,
    pub rate_window: Duration,
    /// The gate closes when the window already holds more than this many.
    pub rate_window_max: u32,
    pub quarter_process_bug_over: u32,
    pub quarter_code_yellow_over: u32,
    pub rollback_share_flag: f64,
    pub stale_after: Duration,
    /// Extra roles granted a role-gated step.
    pub extra_roles: BTreeMap<Step, BTreeSet<Role>>,
}

impl Default for Policy {
    fn default() -> Self {
        const HOUR: u64 = 3600;
        Policy {
            max_fix_lines: 50,
            concern_depth: 1,
            required_checks: ["lint", "unit-changed-package", "scan", "build-sign-push"]
                .map(String::from)
                .to_vec(),
            verify_threshold: 0.01,
            cleanup_within: Duration::from_secs(24 * HOUR),
            postmortem_within: Duration::from_secs(48 * HOUR),
            audit_review_within: Duration::from_secs(7 * 24 * HOUR),
            breakglass_ttl: Duration::from_secs(HOUR),
            rate_window: Duration::from_secs(7 * 24 * HOUR),
            rate_window_max: 3,
            quarter_process_bug_over: 1,
            quarter_code_yellow_over: 4,
            rollback_share_flag: 0.8,
            stale_after: Duration::from_secs(90 * 24 * HOUR),
            extra_roles: BTreeMap::new(),
        }
    }
}

/// Adds a `std::time::Duration` to an instant, saturating far in the future.
pub fn after(t: Time, d: Duration) -> Time {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
}

pub fn before(t: Time, d: Duration) -> Time {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_sub_signed(d))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
}

/// Who may read the audit trail's records (anyone authenticated may verify
/// it): the platform team that reviews it, and platform-admins.
pub const AUDIT_READERS: [Role; 2] = [Role::PlatformTeam, Role::PlatformAdmin];

/// Who may take a backup: it holds every record and the whole trail.
pub const BACKUP_TAKERS: [Role; 1] = [Role::PlatformAdmin];

/// Whether `actor` may take a backup of the store.
pub fn may_back_up(actor: &Principal) -> Result<(), Refusal> {
    if BACKUP_TAKERS.iter().any(|r| actor.has(*r)) {
        return Ok(());
    }
    Err(Refusal::Denied {
        reason: format!(
            "@{} may not take a backup: only a platform-admin principal may (it holds the whole \
             audit trail)",
            actor.handle
        ),
    })
}

/// Whether `actor` may read the audit trail's records.
pub fn may_read_audit(actor: &Principal) -> Result<(), Refusal> {
    if AUDIT_READERS.iter().any(|r| actor.has(*r)) {
        return Ok(());
    }
    let roles: Vec<&str> = AUDIT_READERS.iter().map(|r| r.as_str()).collect();
    Err(Refusal::Denied {
        reason: format!(
            "@{} may not read the audit trail: only a {} principal may (anyone may verify it)",
            actor.handle,
            roles.join(" or ")
        ),
    })
}

impl Policy {
    /// The roles a role-gated step admits by default.
    fn default_roles(step: Step) -> &'static [Role] {
        match step {
            Step::Check => &[Role::Service],
            Step::Merge | Step::Revert => &[Role::PlatformAdmin],
            Step::Sync => &[Role::PlatformAdmin, Role::Service],
            Step::Verify => &[Role::Service],
            Step::AuditReview => &[Role::PlatformTeam],
            Step::TeamReview => &[Role::EngManager, Role::SreLead],
            _ => &[],
        }
    }

    fn role_allows(&self, step: Step, actor: &Principal) -> bool {
        Self::default_roles(step).iter().any(|r| actor.has(*r))
            || self
                .extra_roles
                .get(&step)
                .is_some_and(|extra| extra.iter().any(|r| actor.has(*r)))
    }

    /// Who may take `step` on `hotfix`, for `show` and errors (its
    /// `Display` is the sentence).
    pub fn who_may(&self, step: Step, hotfix: Option<&Hotfix>) -> Whom {
        let mut whom = Whom::default();
        if let Some(h) = hotfix {
            let mut name = |handle: &str, what: &'static str| {
                whom.people.push((handle.to_string(), what));
            };
            match step {
                Step::Fix | Step::PullRequest | Step::Check => name(&h.author, "the author"),
                Step::Approve | Step::Override => {
                    name(&h.declaration.approver, "the named approver")
                }
                Step::Verify => {
                    name(&h.author, "the author");
                    name(&h.declaration.approver, "the named approver");
                }
                Step::Cleanup | Step::Postmortem | Step::Breakglass => {
                    if h.declaration.cleanup_owner == h.author {
                        name(&h.author, "the author and cleanup owner");
                    } else {
                        name(&h.declaration.cleanup_owner, "the cleanup owner");
                        name(&h.author, "the author");
                    }
                }
                _ => {}
            }
        }
        whom.any_human = matches!(step, Step::Declare | Step::Mitigated);
        let mut roles: BTreeSet<Role> = Self::default_roles(step).iter().copied().collect();
        if let Some(extra) = self.extra_roles.get(&step) {
            roles.extend(extra.iter().copied());
        }
        whom.roles = roles.into_iter().collect();
        if step == Step::AuditReview
            && let Some(h) = hotfix
        {
            whom.except = Some(h.author.clone());
        }
        whom
    }

    /// May `actor` take `step` on `hotfix`? `PERMISSION_DENIED` if not.
    pub fn authorize(
        &self,
        step: Step,
        actor: &Principal,
        hotfix: Option<&Hotfix>,
    ) -> Result<(), Refusal> {
        let is = |h: &str| actor.handle == h;
        let allowed = match (step, hotfix) {
            (Step::Declare | Step::Mitigated, _) => {
                actor.is_human() || self.role_allows(step, actor)
            }
            (Step::TeamReview, _) => self.role_allows(step, actor),
            (_, None) => false,
            (Step::Fix | Step::PullRequest, Some(h)) => {
                is(&h.author) || self.role_allows(step, actor)
            }
            // The named approver only: four eyes cannot be granted away.
            (Step::Approve | Step::Override, Some(h)) => is(&h.declaration.approver),
            (Step::Check, Some(h)) => is(&h.author) || self.role_allows(step, actor),
            (Step::Merge | Step::Revert | Step::Sync, Some(_)) => self.role_allows(step, actor),
            (Step::Verify, Some(h)) => {
                is(&h.author) || is(&h.declaration.approver) || self.role_allows(step, actor)
            }
            (Step::Cleanup | Step::Postmortem | Step::Breakglass, Some(h)) => {
                is(&h.author) || is(&h.declaration.cleanup_owner) || self.role_allows(step, actor)
            }
            (Step::AuditReview, Some(h)) => !is(&h.author) && self.role_allows(step, actor),
        };
        if allowed {
            return Ok(());
        }
        let mut reason = format!(
            "@{} may not take step '{}': only {} may",
            actor.handle,
            step,
            self.who_may(step, hotfix)
        );
        if step == Step::AuditReview && hotfix.is_some_and(|h| is(&h.author)) {
            reason = format!(
                "@{} is the hotfix author; the audit review must be done by someone else ({})",
                actor.handle,
                self.who_may(step, hotfix)
            );
        }
        Err(Refusal::Denied { reason })
    }

    /// The quarterly flag for an author with `count` hotfixes this quarter.
    pub fn quarter_flag(&self, count: u32) -> Option<&'static str> {
        if count > self.quarter_code_yellow_over {
            Some("code-yellow")
        } else if count > self.quarter_process_bug_over {
            Some("process bug")
        } else {
            None
        }
    }

    /// Evaluates the rolling-window gate.
    pub fn gate(&self, view: &GateView) -> Gate {
        let over = view.count_in_window > self.rate_window_max;
        // Commit order, not timestamps: a review and a declaration can
        // share an instant.
        let reviewed_since = match (view.last_review_seq, view.latest_in_window_seq) {
            (Some(review), Some(latest)) => review > latest,
            _ => false,
        };
        let closed = over && !reviewed_since;
        let unblock = if closed {
            format!(
                "{} hotfixes were declared in the last {} (limit {}): a team review is mandatory \
                 before the next one; an eng-manager or sre-lead records it with \
                 `hotfixctl team-review --notes ...`",
                view.count_in_window,
                window_words(self.rate_window),
                self.rate_window_max
            )
        } else {
            String::new()
        };
        Gate { closed, unblock }
    }

    pub fn rollback_training_flag(&self, total: u32, yes_but_rollback: u32) -> bool {
        total > 0 && f64::from(yes_but_rollback) / f64::from(total) >= self.rollback_share_flag
    }
}

/// What the store knows about the rolling window, read through its index.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GateView {
    /// Non-drill declarations within the window.
    pub count_in_window: u32,
    /// The event sequence number of the newest of them.
    pub latest_in_window_seq: Option<u64>,
    pub last_review: Option<TeamReview>,
    /// The event sequence number of the last team review.
    pub last_review_seq: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gate {
    pub closed: bool,
    pub unblock: String,
}

/// Calendar quarter of an instant, e.g. "2026-Q4".
pub fn quarter_of(t: Time) -> String {
    format!("{}-Q{}", t.year(), (t.month0() / 3) + 1)
}

/// A window as people say it: "7 days" (humantime writes "7days"), or
/// humantime's form when it is not whole days.
fn window_words(d: Duration) -> String {
    const DAY: u64 = 24 * 3600;
    match d.as_secs() {
        s if s > 0 && s % DAY == 0 && d.subsec_nanos() == 0 => {
            let n = s / DAY;
            format!("{n} day{}", if n == 1 { "" } else { "s" })
        }
        _ => humantime::format_duration(d).to_string(),
    }
}

/// Who may take a step: these people (each with what they are to the
/// hotfix), or any human, or a principal with one of these roles, except
/// one handle. `Display` says it as a sentence: "@alice (the named
/// approver) or a sre-lead principal".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Whom {
    pub people: Vec<(String, &'static str)>,
    pub any_human: bool,
    pub roles: Vec<Role>,
    pub except: Option<String>,
}

impl fmt::Display for Whom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut who: Vec<String> = self
            .people
            .iter()
            .map(|(handle, what)| format!("@{handle} ({what})"))
            .collect();
        if self.any_human {
            who.push("any human principal".into());
        }
        if !self.roles.is_empty() {
            let names: Vec<&str> = self.roles.iter().map(|r| r.as_str()).collect();
            let mut s = format!("a {} principal", names.join(" or "));
            if let Some(author) = &self.except {
                s.push_str(&format!(" other than the author @{author}"));
            }
            who.push(s);
        }
        f.write_str(&who.join(" or "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(h: &str, r: Role) -> Principal {
        Principal {
            handle: h.into(),
            roles: [r].into(),
        }
    }

    #[test]
    fn extra_roles_widen_a_step_and_never_narrow_it() {
        let mut policy = Policy::default();
        assert!(
            policy
                .authorize(Step::Merge, &p("alice", Role::SreLead), None)
                .is_err()
        );
        policy
            .extra_roles
            .insert(Step::Merge, [Role::SreLead].into());
        policy
            .extra_roles
            .insert(Step::AuditReview, [Role::Engineer].into());
        let h = crate::domain::model_tests_support::hotfix();
        assert!(
            policy
                .authorize(Step::Merge, &p("alice", Role::SreLead), Some(&h))
                .is_ok()
        );
        assert!(
            policy
                .authorize(Step::Merge, &p("carol", Role::PlatformAdmin), Some(&h))
                .is_ok()
        );
        // The author stays excluded from the audit review whatever the grant.
        assert!(
            policy
                .authorize(Step::AuditReview, &p("bob", Role::Engineer), Some(&h))
                .is_err()
        );
        assert!(
            policy
                .authorize(Step::AuditReview, &p("zed", Role::Engineer), Some(&h))
                .is_ok()
        );
    }

    #[test]
    fn quarter_flags_follow_the_runbook() {
        let policy = Policy::default();
        assert_eq!(policy.quarter_flag(1), None);
        assert_eq!(policy.quarter_flag(2), Some("process bug"));
        assert_eq!(policy.quarter_flag(4), Some("process bug"));
        assert_eq!(policy.quarter_flag(5), Some("code-yellow"));
        assert!(!policy.rollback_training_flag(0, 0));
        assert!(!policy.rollback_training_flag(10, 7));
        assert!(policy.rollback_training_flag(10, 8));
        assert_eq!(
            quarter_of("2026-11-26T00:00:00Z".parse().unwrap()),
            "2026-Q4"
        );
        assert_eq!(
            quarter_of("2026-01-01T00:00:00Z".parse().unwrap()),
            "2026-Q1"
        );
    }
}

//! The facts a hotfix accumulates as it moves through the lane.
//!
//! A `Hotfix` stores facts only (what was declared, which fix, who approved
//! which SHA, ...). Its `State` is derived from those facts by
//! [`Hotfix::state`], so the two can never disagree.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Wall-clock instants, always passed in: the domain never reads a clock.
pub type Time = DateTime<Utc>;

/// The runbook's check that must never be skipped.
pub const SCAN_CHECK: &str = "scan";
/// The PR label that triggers the fast-path workflow.
pub const HOTFIX_LABEL: &str = "hotfix";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Engineer,
    SreLead,
    EngManager,
    PlatformAdmin,
    PlatformTeam,
    Service,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Engineer,
        Role::SreLead,
        Role::EngManager,
        Role::PlatformAdmin,
        Role::PlatformTeam,
        Role::Service,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Engineer => "engineer",
            Role::SreLead => "sre-lead",
            Role::EngManager => "eng-manager",
            Role::PlatformAdmin => "platform-admin",
            Role::PlatformTeam => "platform-team",
            Role::Service => "service",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// An authenticated caller. Built only from credentials, never from a
/// request field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub handle: String,
    pub roles: BTreeSet<Role>,
}

impl Principal {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// A human is any principal with a role other than `service`.
    pub fn is_human(&self) -> bool {
        self.roles.iter().any(|r| *r != Role::Service)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    P0,
    P1,
    P2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Criterion {
    CustomersDown,
    DataLoss,
    SafetyRegulatory,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckResult {
    Pending,
    Success,
    Failure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MitigationRoute {
    Flag,
    Rollback,
}

impl MitigationRoute {
    pub fn as_str(self) -> &'static str {
        match self {
            MitigationRoute::Flag => "flag",
            MitigationRoute::Rollback => "rollback",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BypassJustified {
    Yes,
    YesButRollback,
    No,
}

impl BypassJustified {
    pub fn as_str(self) -> &'static str {
        match self {
            BypassJustified::Yes => "yes",
            BypassJustified::YesButRollback => "yes-but-rollback",
            BypassJustified::No => "no",
        }
    }
}

/// Where a hotfix stands; derived, never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    Declared,
    FixSubmitted,
    Approved,
    PrOpen,
    ReadyToMerge,
    Merged,
    Synced,
    Mitigated,
    RevertRequired,
    Reverted,
    Aborted,
    Closed,
}

impl State {
    pub const ALL: [State; 12] = [
        State::Declared,
        State::FixSubmitted,
        State::Approved,
        State::PrOpen,
        State::ReadyToMerge,
        State::Merged,
        State::Synced,
        State::Mitigated,
        State::RevertRequired,
        State::Reverted,
        State::Aborted,
        State::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Declared => "DECLARED",
            State::FixSubmitted => "FIX_SUBMITTED",
            State::Approved => "APPROVED",
            State::PrOpen => "PR_OPEN",
            State::ReadyToMerge => "READY_TO_MERGE",
            State::Merged => "MERGED",
            State::Synced => "SYNCED",
            State::Mitigated => "MITIGATED",
            State::RevertRequired => "REVERT_REQUIRED",
            State::Reverted => "REVERTED",
            State::Aborted => "ABORTED",
            State::Closed => "CLOSED",
        }
    }

    /// No lane step can be taken from a final state.
    pub fn is_final(self) -> bool {
        matches!(self, State::Reverted | State::Aborted | State::Closed)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Step 1: what the author declared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Declaration {
    pub incident_id: String,
    pub severity: Severity,
    pub criteria: Vec<Criterion>,
    pub symptom: String,
    pub approver: String,
    pub cleanup_owner: String,
    pub merge_eta: String,
    pub repository: String,
    pub argocd_app: String,
    pub flag_can_mitigate: bool,
    pub rollback_can_mitigate: bool,
    pub fix_unknown: bool,
    pub drill: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangedFile {
    pub path: String,
    pub added: u32,
    pub removed: u32,
}

/// Step 2: the fix commit as proposed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixProposal {
    pub branch: String,
    pub sha: String,
    pub commit_message: String,
    pub files: Vec<ChangedFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fix {
    pub proposal: FixProposal,
    pub changed_lines: u32,
    /// Admitted only because the approver overrode the limits for its SHA.
    pub over_limit: bool,
    pub at: Time,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixOverride {
    pub sha: String,
    pub reason: String,
    pub by: String,
    pub at: Time,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub by: String,
    pub sha: String,
    pub at: Time,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequest {
    pub number: u64,
    pub url: String,
    pub title: String,
    pub labels: Vec<String>,
    pub at: Time,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub result: CheckResult,
    pub sha: String,
    pub by: String,
    pub at: Time,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeRecord {
    pub by: String,
    pub pr: u64,
    pub approver: String,
    pub sha: String,
    pub at: Time,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRecord {
    pub by: String,
    pub app: String,
    pub revision: String,
    pub skipped_canary: bool,
    pub at: Time,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    pub by: String,
    pub recovered: bool,
    pub observed_value: f64,
    pub threshold: f64,
    pub at: Time,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevertRecord {
    pub by: String,
    pub pr: u64,
    pub at: Time,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Abort {
    pub reason: String,
    pub at: Time,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanupRecord {
    pub pr: u64,
    pub url: String,
    pub by: String,
    pub at: Time,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostmortemRecord {
    pub url: String,
    pub why_hotfix: String,
    pub bypass_justified: BypassJustified,
    pub breakglass_used: bool,
    pub cleanup_pr_link: String,
    pub by: String,
    pub at: Time,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditReviewRecord {
    pub findings: String,
    pub by: String,
    pub at: Time,
}

/// The breakglass cleanup checklist (`cleanup-after-breakglass.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BreakglassItem {
    RdsSnapshots,
    IamUsers,
    S3Buckets,
}

impl BreakglassItem {
    pub const ALL: [BreakglassItem; 3] = [
        BreakglassItem::RdsSnapshots,
        BreakglassItem::IamUsers,
        BreakglassItem::S3Buckets,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BreakglassItem::RdsSnapshots => "rds-snapshots",
            BreakglassItem::IamUsers => "iam-users",
            BreakglassItem::S3Buckets => "s3-buckets",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|i| i.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakglassRecord {
    pub role: String,
    pub granted_by: String,
    pub granted_at: Time,
    pub expires_at: Time,
    pub cleaned: BTreeSet<BreakglassItem>,
    /// When the last checklist item was ticked off.
    #[serde(default)]
    pub cleaned_at: Option<Time>,
}

impl BreakglassRecord {
    pub fn outstanding(&self) -> Vec<BreakglassItem> {
        BreakglassItem::ALL
            .into_iter()
            .filter(|i| !self.cleaned.contains(i))
            .collect()
    }
}

/// One hotfix: the declaration plus every fact recorded since.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hotfix {
    pub declaration: Declaration,
    pub author: String,
    pub declared_at: Time,
    /// Bumped by every accepted change; `expected_version` compares to it.
    pub version: u64,
    /// Sequence number of the event that produced this version.
    pub last_seq: u64,
    pub flags: Vec<String>,
    pub fix: Option<Fix>,
    pub fix_override: Option<FixOverride>,
    pub approval: Option<Approval>,
    pub pull_request: Option<PullRequest>,
    /// Latest result per required check, for the current fix SHA only.
    pub checks: BTreeMap<String, Check>,
    pub merge: Option<MergeRecord>,
    pub sync: Option<SyncRecord>,
    pub verification: Option<Verification>,
    pub revert: Option<RevertRecord>,
    pub abort: Option<Abort>,
    pub cleanup: Option<CleanupRecord>,
    pub postmortem: Option<PostmortemRecord>,
    pub audit_review: Option<AuditReviewRecord>,
    pub breakglass: Option<BreakglassRecord>,
    pub closed_at: Option<Time>,
}

impl Hotfix {
    pub fn incident_id(&self) -> &str {
        &self.declaration.incident_id
    }

    pub fn is_drill(&self) -> bool {
        self.declaration.drill
    }

    pub fn current_sha(&self) -> Option<&str> {
        self.fix.as_ref().map(|f| f.proposal.sha.as_str())
    }

    /// The approval, if it covers the current fix SHA.
    pub fn current_approval(&self) -> Option<&Approval> {
        match (&self.approval, self.current_sha()) {
            (Some(a), Some(sha)) if a.sha == sha => Some(a),
            _ => None,
        }
    }

    /// Required checks that have not passed on the current SHA.
    pub fn checks_not_passed<'a>(&self, required: &'a [String]) -> Vec<&'a str> {
        let sha = self.current_sha();
        required
            .iter()
            .filter(|name| {
                !self.checks.get(name.as_str()).is_some_and(|c| {
                    c.result == CheckResult::Success && Some(c.sha.as_str()) == sha
                })
            })
            .map(String::as_str)
            .collect()
    }

    /// The state, derived from the facts.
    pub fn state(&self, required_checks: &[String]) -> State {
        if self.abort.is_some() {
            return State::Aborted;
        }
        if self.revert.is_some() {
            return State::Reverted;
        }
        if self.closed_at.is_some() {
            return State::Closed;
        }
        if let Some(v) = &self.verification {
            return if v.recovered {
                State::Mitigated
            } else {
                State::RevertRequired
            };
        }
        if self.sync.is_some() {
            return State::Synced;
        }
        if self.merge.is_some() {
            return State::Merged;
        }
        if self.fix.is_none() {
            return State::Declared;
        }
        let approved = self.current_approval().is_some();
        match &self.pull_request {
            Some(_) if approved && self.checks_not_passed(required_checks).is_empty() => {
                State::ReadyToMerge
            }
            Some(_) => State::PrOpen,
            None if approved => State::Approved,
            None => State::FixSubmitted,
        }
    }
}

/// An incident mitigated by a flag flip or rollback instead of a hotfix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mitigation {
    pub incident_id: String,
    pub route: MitigationRoute,
    pub notes: String,
    pub by: String,
    pub at: Time,
    pub seq: u64,
}

/// The mandatory team review that reopens the rate-limit gate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamReview {
    pub by: String,
    pub notes: String,
    pub at: Time,
}

/// One row of the runbook's "When this runbook last worked" table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exercise {
    pub at: Time,
    pub incident_id: String,
    /// hotfix, hotfix-reverted, flag or rollback
    pub resolved_by: String,
    pub drill: bool,
}

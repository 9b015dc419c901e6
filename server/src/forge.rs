//! Steps 2–4, 6 (revert) and 7 taken on GitHub by hotfixd itself, for
//! repositories whose integration is on. Nobody types what GitHub knows:
//!
//! - **fix**: the head commit of the branch, its message and the diff
//!   against the base are read from GitHub; the core checks run on those.
//! - **PR**: opened with the runbook's title and body and labelled
//!   `hotfix`; an open PR of the branch is reused, never duplicated. The
//!   intent is recorded first; after a crash the branch's open PR is looked
//!   up before anything is created again.
//! - **checks**: the required fast-path checks of the PR's head SHA (check
//!   runs and commit statuses) are followed in the background, each change
//!   an event; each final result is recorded, so a failed `scan` ends the
//!   hotfix.
//! - **revert**: the revert PR is opened with GraphQL `revertPullRequest`,
//!   merged by the platform-admin (squash, pinned to its head), recorded,
//!   then synced again. Each external write has an intent reconciled at
//!   start-up.
//! - **cleanup**: the linked PR must be merged, carry no `hotfix` label,
//!   be approved by someone other than its author, and its checks passed.
//!
//! A drill reads from GitHub but writes nothing to it: the would-be writes
//! are recorded in the timeline.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::domain::{
    self, CheckResult, Command, EventDraft, FixProposal, HOTFIX_LABEL, Hotfix, Principal, Refusal,
    Role, SCAN_CHECK, State, Step,
};
use crate::error::{Error, Result};
use crate::integrations::github::ForgeSettings;
use crate::integrations::{CheckState, CodeHost, Failure, MergeError, NewPull, PullFacts};
use crate::jobs::Jobs;
use crate::lane::{Lane, Mutation, SYSTEM_ACTOR};
use crate::store::Store;
use crate::syncer::Syncer;

const PR_INTENT: &str = "pr";
const REVERT_INTENT: &str = "revert";

/// What a restart needs to settle a revert that was under way.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct RevertIntent {
    actor: String,
    /// The revert PR, once GitHub opened it.
    #[serde(default)]
    pr: u64,
    #[serde(default)]
    head_sha: String,
}

pub struct Forge {
    jobs: Arc<Jobs>,
    github: Arc<dyn CodeHost>,
    settings: ForgeSettings,
    syncer: Option<Arc<Syncer>>,
    /// PR creation and reverts are rare: one at a time, so two callers
    /// cannot both create one.
    one_at_a_time: tokio::sync::Mutex<()>,
}

fn draft(kind: &str, summary: String) -> EventDraft {
    EventDraft {
        kind: kind.into(),
        summary,
    }
}

/// GitHub's answer as a refusal of `step` that changed nothing.
/// A GitHub call that failed: GitHub being down or overloaded is
/// UNAVAILABLE (retry later); anything else GitHub refused is the step's
/// refusal.
fn github_refused(step: Step, why: Failure) -> Error {
    if why.transient {
        return Error::Upstream(format!("{why}; nothing was recorded"));
    }
    Refusal::Refused {
        step,
        reason: format!("{why}; nothing was recorded"),
    }
    .into()
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// The daemon itself, recording facts it read from GitHub (checks).
fn system() -> Principal {
    Principal {
        handle: SYSTEM_ACTOR.into(),
        roles: BTreeSet::from([Role::Service]),
    }
}

impl Forge {
    pub fn new(
        jobs: Arc<Jobs>,
        github: Arc<dyn CodeHost>,
        settings: ForgeSettings,
        syncer: Option<Arc<Syncer>>,
    ) -> Forge {
        Forge {
            jobs,
            github,
            settings,
            syncer,
            one_at_a_time: tokio::sync::Mutex::new(()),
        }
    }

    fn lane(&self) -> &Arc<Lane> {
        &self.jobs.lane
    }

    /// The hotfix, if its repository's steps are taken on GitHub.
    pub fn governs(&self, incident_id: &str) -> Result<Option<Hotfix>> {
        let h = self.lane().get(incident_id)?.hotfix;
        Ok(self
            .settings
            .enabled_for(&h.declaration.repository)
            .then_some(h))
    }

    pub fn settings(&self) -> &ForgeSettings {
        &self.settings
    }

    /// Step 2: the fix as GitHub has it. `expected_sha`, when given, must be
    /// the branch's head.
    pub async fn fix(
        self: &Arc<Self>,
        actor: &Principal,
        m: &Mutation,
        incident_id: &str,
        branch: &str,
        expected_sha: &str,
    ) -> Result<Hotfix> {
        domain::validate::check_line("branch", branch, domain::validate::MAX_NAME)?;
        let asked = Command::SubmitFix(FixProposal {
            branch: branch.to_string(),
            sha: expected_sha.to_string(),
            commit_message: String::new(),
            files: Vec::new(),
        });
        if let Some(first) = self.lane().replayed(actor, m, incident_id, &asked)? {
            return Ok(first);
        }
        let h = self.lane().precheck(actor, incident_id, Step::Fix)?;
        let repo = h.declaration.repository.clone();
        let base = self.settings.base_for(&repo).to_string();
        let facts = self
            .github
            .compare(&repo, &base, branch)
            .await
            .map_err(|e| github_refused(Step::Fix, e))?;
        if !expected_sha.is_empty() && expected_sha != facts.sha {
            return Err(Refusal::Refused {
                step: Step::Fix,
                reason: format!(
                    "GitHub's head of {branch} is {}, not the given {}; push, or give the head \
                     GitHub has",
                    short(&facts.sha),
                    short(expected_sha)
                ),
            }
            .into());
        }
        let cmd = Command::SubmitFix(FixProposal {
            branch: branch.to_string(),
            sha: facts.sha.clone(),
            commit_message: facts.message.clone(),
            files: facts.files.clone(),
        });
        let h = self
            .lane()
            .command_asked(actor, m, incident_id, &asked, cmd)
            .await?;
        let summary = format!(
            "read from GitHub: {repo} {base}...{branch} is {} commit(s) ahead and {} behind; head {}",
            facts.ahead_by,
            facts.behind_by,
            short(&facts.sha)
        );
        self.lane()
            .note(incident_id, draft("fix_read", summary), None)
            .await?;
        // A new fix pushed onto the PR is checked afresh.
        if h.pull_request.is_some() {
            self.follow(incident_id).await?;
        }
        Ok(self.lane().get(incident_id)?.hotfix)
    }

    /// Step 3: opens the labelled PR (or reuses the branch's open PR), then
    /// follows its checks.
    pub async fn open_pr(
        self: &Arc<Self>,
        actor: &Principal,
        m: &Mutation,
        incident_id: &str,
    ) -> Result<Hotfix> {
        let _one = self.one_at_a_time.lock().await;
        let asked = Command::OpenPullRequest {
            number: 0,
            url: String::new(),
            title: None,
            labels: Vec::new(),
        };
        if let Some(first) = self.lane().replayed(actor, m, incident_id, &asked)? {
            return Ok(first);
        }
        let h = self
            .lane()
            .precheck(actor, incident_id, Step::PullRequest)?;
        let Some(fix) = &h.fix else {
            return Err(Refusal::Refused {
                step: Step::PullRequest,
                reason: "no fix is recorded yet".into(),
            }
            .into());
        };
        let repo = h.declaration.repository.clone();
        let branch = fix.proposal.branch.clone();
        let base = self.settings.base_for(&repo).to_string();
        let (title, body) = domain::pull_request_text(&h, self.lane().policy());
        let existing = self
            .github
            .find_open_pull(&repo, &branch)
            .await
            .map_err(|e| github_refused(Step::PullRequest, e))?;
        let pr = match existing {
            Some(pr) => {
                self.lane()
                    .note(
                        incident_id,
                        draft(
                            "pr_reused",
                            format!("{branch} already has open PR #{}; reusing it", pr.number),
                        ),
                        None,
                    )
                    .await?;
                pr
            }
            None if h.is_drill() => {
                let summary = format!(
                    "drill: would open PR \"{title}\" from {branch} into {base} in {repo}, \
                     labelled '{HOTFIX_LABEL}'; nothing was sent"
                );
                self.lane()
                    .note(incident_id, draft("pr_dry_run", summary), None)
                    .await?;
                PullFacts {
                    title: title.clone(),
                    ..PullFacts::default()
                }
            }
            None => {
                let intent = (
                    Store::intent_key(PR_INTENT, incident_id),
                    actor.handle.clone().into_bytes(),
                );
                self.lane()
                    .note(
                        incident_id,
                        draft(
                            "pr_requested",
                            format!(
                                "@{} asked GitHub to open \"{title}\" from {branch}",
                                actor.handle
                            ),
                        ),
                        Some(intent),
                    )
                    .await?;
                let new = NewPull {
                    title: title.clone(),
                    head: branch.clone(),
                    base,
                    body,
                };
                match self.github.create_pull(&repo, &new).await {
                    Ok(pr) => pr,
                    Err(e) => {
                        // Did it get created after all (a lost answer)?
                        match self.github.find_open_pull(&repo, &branch).await {
                            Ok(Some(pr)) => pr,
                            _ => {
                                self.lane()
                                    .note(incident_id, draft("pr_failed", e.message.clone()), None)
                                    .await?;
                                self.lane().store().clear_intent(PR_INTENT, incident_id)?;
                                return Err(github_refused(Step::PullRequest, e));
                            }
                        }
                    }
                }
            }
        };
        let h = self
            .record_pr(actor, m, incident_id, &asked, &repo, pr)
            .await;
        self.lane().store().clear_intent(PR_INTENT, incident_id)?;
        let h = h?;
        self.follow(incident_id).await?;
        Ok(h)
    }

    /// Labels the PR `hotfix` (unless a drill) and records it.
    async fn record_pr(
        &self,
        actor: &Principal,
        m: &Mutation,
        incident_id: &str,
        asked: &Command,
        repo: &str,
        pr: PullFacts,
    ) -> Result<Hotfix> {
        let drill = self.lane().get(incident_id)?.hotfix.is_drill();
        let mut labels = pr.labels.clone();
        if !labels.iter().any(|l| l == HOTFIX_LABEL) {
            if drill {
                self.lane()
                    .note(
                        incident_id,
                        draft(
                            "label_dry_run",
                            format!("drill: would label #{} '{HOTFIX_LABEL}'", pr.number),
                        ),
                        None,
                    )
                    .await?;
            } else {
                self.github
                    .add_labels(repo, pr.number, &[HOTFIX_LABEL.to_string()])
                    .await
                    .map_err(|e| github_refused(Step::PullRequest, e))?;
            }
            labels.push(HOTFIX_LABEL.to_string());
        }
        let cmd = Command::OpenPullRequest {
            number: pr.number,
            url: pr.url,
            title: Some(pr.title),
            labels,
        };
        self.lane()
            .command_asked(actor, m, incident_id, asked, cmd)
            .await
    }

    /// Step 4: follows the PR's required checks in the background (once per
    /// hotfix at a time); `hotfixctl check --wait` watches the events.
    pub async fn follow(self: &Arc<Self>, incident_id: &str) -> Result<()> {
        let h = self.lane().get(incident_id)?.hotfix;
        let sha = h.current_sha().unwrap_or_default().to_string();
        let required = self.lane().policy().required_checks.join(", ");
        let started = draft(
            "checks_following",
            format!(
                "following the required checks ({required}) of {} on GitHub",
                short(&sha)
            ),
        );
        let me = self.clone();
        let inc = incident_id.to_string();
        match self
            .jobs
            .spawn(incident_id, Step::Check, started, None, async move {
                me.watch_checks(&inc).await;
            })
            .await
        {
            // Already following: the running job picks up a new SHA itself.
            Err(Error::Refused(Refusal::Refused { .. })) => Ok(()),
            other => other,
        }
    }

    /// Starts following unless there is nothing left to follow.
    pub async fn follow_checks(
        self: &Arc<Self>,
        actor: &Principal,
        incident_id: &str,
    ) -> Result<Hotfix> {
        let h = self.lane().precheck(actor, incident_id, Step::Check)?;
        if h.pull_request.is_none() {
            return Err(Refusal::Refused {
                step: Step::Check,
                reason: format!("no PR is recorded yet: `hotfixctl pr {incident_id}` first"),
            }
            .into());
        }
        self.follow(incident_id).await?;
        Ok(self.lane().get(incident_id)?.hotfix)
    }

    async fn watch_checks(&self, inc: &str) {
        let lane = self.lane().clone();
        let required = lane.policy().required_checks.clone();
        let deadline = tokio::time::Instant::now() + self.settings.checks_timeout;
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        let mut following = String::new();
        loop {
            let h = match lane.get(inc) {
                Ok(v) => v.hotfix,
                Err(e) => {
                    tracing::error!(error = %e, incident = inc, "reading the hotfix failed");
                    return;
                }
            };
            if h.state(&required) != State::PrOpen {
                return;
            }
            let sha = h.current_sha().unwrap_or_default().to_string();
            if sha != following {
                seen.clear();
                following = sha.clone();
            }
            let repo = &h.declaration.repository;
            match self.github.checks(repo, &sha).await {
                Ok(facts) => {
                    for name in &required {
                        // A check may be both a check run and a status: a
                        // failure anywhere counts, then pending, then passed.
                        let mine: Vec<_> = facts.iter().filter(|c| &c.name == name).collect();
                        let state = if mine.iter().any(|c| c.state == CheckState::Failed) {
                            CheckState::Failed
                        } else if mine.is_empty()
                            || mine.iter().any(|c| c.state == CheckState::Pending)
                        {
                            CheckState::Pending
                        } else {
                            CheckState::Passed
                        };
                        let detail = if mine.is_empty() {
                            "not reported yet".to_string()
                        } else {
                            mine.iter()
                                .map(|c| c.detail.as_str())
                                .collect::<Vec<_>>()
                                .join("; ")
                        };
                        if seen.get(name) != Some(&detail) {
                            self.jobs
                                .note(
                                    inc,
                                    "check_progress",
                                    format!("{name} on {}: {detail}", short(&sha)),
                                )
                                .await;
                            seen.insert(name.clone(), detail);
                        }
                        let result = match state {
                            CheckState::Passed => CheckResult::Success,
                            CheckState::Failed => CheckResult::Failure,
                            CheckState::Pending => continue,
                        };
                        if h.checks
                            .get(name)
                            .is_some_and(|c| c.result == result && c.sha == sha)
                        {
                            continue;
                        }
                        let cmd = Command::RecordCheck {
                            name: name.clone(),
                            result,
                            sha: Some(sha.clone()),
                        };
                        if let Err(e) = lane
                            .command(&system(), &Mutation::default(), inc, cmd)
                            .await
                        {
                            self.jobs
                                .note(
                                    inc,
                                    "checks_failed",
                                    format!("recording {name} was refused: {e}"),
                                )
                                .await;
                            return;
                        }
                        if result == CheckResult::Failure {
                            if name == SCAN_CHECK {
                                return; // the hotfix is over (aborted)
                            }
                            self.jobs
                                .note(
                                    inc,
                                    "check_failed",
                                    format!("{name} failed on {}; re-run it on GitHub or push a new fix", short(&sha)),
                                )
                                .await;
                        }
                    }
                    if lane
                        .get(inc)
                        .is_ok_and(|v| v.hotfix.state(&required) == State::ReadyToMerge)
                    {
                        self.jobs
                            .note(
                                inc,
                                "checks_passed",
                                format!(
                                    "every required check passed on {}: ready to merge",
                                    short(&sha)
                                ),
                            )
                            .await;
                        return;
                    }
                }
                Err(e) => self.jobs.note(inc, "check_progress", e.message).await,
            }
            let wait = self.settings.checks_poll;
            if tokio::time::Instant::now() + wait > deadline {
                self.jobs
                    .note(
                        inc,
                        "checks_timeout",
                        format!(
                            "stopped following after {}; `hotfixctl check {inc} --wait` follows again",
                            humantime::format_duration(self.settings.checks_timeout)
                        ),
                    )
                    .await;
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.jobs.shutdown.cancelled() => return,
            }
        }
    }

    /// Step 7 verified on GitHub before it is recorded.
    pub async fn cleanup(
        &self,
        actor: &Principal,
        m: &Mutation,
        incident_id: &str,
        number: u64,
    ) -> Result<Hotfix> {
        let asked = Command::RecordCleanup {
            pr: number,
            url: String::new(),
            labels: Vec::new(),
        };
        asked.validate()?;
        if let Some(first) = self.lane().replayed(actor, m, incident_id, &asked)? {
            return Ok(first);
        }
        let h = self.lane().precheck(actor, incident_id, Step::Cleanup)?;
        let repo = h.declaration.repository.clone();
        let refused = |why: String| -> Error {
            Refusal::Refused {
                step: Step::Cleanup,
                reason: format!("cleanup PR {repo}#{number} {why}"),
            }
            .into()
        };
        let pr = self
            .github
            .pull(&repo, number)
            .await
            .map_err(|e| github_refused(Step::Cleanup, e))?;
        if !pr.merged {
            return Err(refused(
                "is not merged yet; merge it through normal review first".into(),
            ));
        }
        if pr.labels.iter().any(|l| l == HOTFIX_LABEL) {
            return Err(refused(format!(
                "carries the '{HOTFIX_LABEL}' label: the cleanup goes through the normal pipeline"
            )));
        }
        let reviews = self
            .github
            .reviews(&repo, number)
            .await
            .map_err(|e| github_refused(Step::Cleanup, e))?;
        let approvers: BTreeSet<&str> = reviews
            .iter()
            .filter(|r| r.state == "APPROVED" && r.reviewer != pr.author)
            .map(|r| r.reviewer.as_str())
            .collect();
        if approvers.is_empty() {
            return Err(refused(format!(
                "has no approving review by someone other than its author @{}",
                pr.author
            )));
        }
        let checks = self
            .github
            .checks(&repo, &pr.head_sha)
            .await
            .map_err(|e| github_refused(Step::Cleanup, e))?;
        let not_passed: Vec<String> = checks
            .iter()
            .filter(|c| c.state != CheckState::Passed)
            .map(|c| format!("{} ({})", c.name, c.detail))
            .collect();
        if checks.is_empty() || !not_passed.is_empty() {
            return Err(refused(if checks.is_empty() {
                "has no checks reported on its head; the normal pipeline must have run".into()
            } else {
                format!("has checks that did not pass: {}", not_passed.join(", "))
            }));
        }
        let cmd = Command::RecordCleanup {
            pr: number,
            url: pr.url.clone(),
            labels: pr.labels.clone(),
        };
        let h = self
            .lane()
            .command_asked(actor, m, incident_id, &asked, cmd)
            .await?;
        let who: Vec<String> = approvers.iter().map(|a| format!("@{a}")).collect();
        self.lane()
            .note(
                incident_id,
                draft(
                    "cleanup_verified",
                    format!(
                        "GitHub: #{number} by @{} merged, approved by {}, {} check(s) passed",
                        pr.author,
                        who.join(", "),
                        checks.len()
                    ),
                ),
                None,
            )
            .await?;
        Ok(h)
    }

    /// Step 6's revert: opens the revert PR, merges it pinned to its head,
    /// records the revert, then syncs the app again.
    pub async fn revert(
        &self,
        actor: &Principal,
        m: &Mutation,
        incident_id: &str,
    ) -> Result<Hotfix> {
        let _one = self.one_at_a_time.lock().await;
        let asked = Command::Revert { pr: 0 };
        if let Some(first) = self.lane().replayed(actor, m, incident_id, &asked)? {
            return Ok(first);
        }
        let h = self.lane().precheck(actor, incident_id, Step::Revert)?;
        let repo = h.declaration.repository.clone();
        let Some(hotfix_pr) = h.pull_request.clone() else {
            return Err(Refusal::Refused {
                step: Step::Revert,
                reason: "no hotfix PR is recorded to revert".into(),
            }
            .into());
        };
        if h.is_drill() {
            self.lane()
                .note(
                    incident_id,
                    draft(
                        "revert_dry_run",
                        format!(
                            "drill: would open and squash-merge the revert of {repo}#{}, then sync; \
                             nothing was sent",
                            hotfix_pr.number
                        ),
                    ),
                    None,
                )
                .await?;
            let h = self
                .lane()
                .command_asked(actor, m, incident_id, &asked, Command::Revert { pr: 0 })
                .await?;
            if let Some(syncer) = &self.syncer {
                let revision = h.current_sha().unwrap_or_default().to_string();
                syncer.sync_revert(incident_id, &revision, true).await?;
            }
            return Ok(h);
        }
        let key = Store::intent_key(REVERT_INTENT, incident_id);
        let mut intent = self.revert_intent(incident_id)?.unwrap_or(RevertIntent {
            actor: actor.handle.clone(),
            ..RevertIntent::default()
        });
        if intent.pr == 0 {
            // A revert opened before (its answer lost) is on GitHub's revert
            // branch: reuse it rather than open a second one.
            let branch = h
                .fix
                .as_ref()
                .map(|f| f.proposal.branch.as_str())
                .unwrap_or_default();
            let revert_branch = format!("revert-{}-{branch}", hotfix_pr.number);
            if let Some(open) = self
                .github
                .find_open_pull(&repo, &revert_branch)
                .await
                .map_err(|e| github_refused(Step::Revert, e))?
            {
                intent.pr = open.number;
                intent.head_sha = open.head_sha;
            }
        }
        if intent.pr == 0 {
            let source = self
                .github
                .pull(&repo, hotfix_pr.number)
                .await
                .map_err(|e| github_refused(Step::Revert, e))?;
            if !source.merged {
                return Err(Refusal::Refused {
                    step: Step::Revert,
                    reason: format!(
                        "GitHub shows #{} not merged: nothing to revert",
                        source.number
                    ),
                }
                .into());
            }
            self.lane()
                .note(
                    incident_id,
                    draft(
                        "revert_requested",
                        format!(
                            "@{} asked GitHub to open the revert of #{}",
                            actor.handle, source.number
                        ),
                    ),
                    Some((
                        key.clone(),
                        serde_json::to_vec(&intent).expect("intents serialize"),
                    )),
                )
                .await?;
            let title = format!("Revert HOTFIX: {incident_id}");
            let body = format!(
                "Reverts #{} of {incident_id}: the symptom did not recover. Treat the situation as \
                 a new incident; do not chain another hotfix.",
                source.number
            );
            let opened = match self
                .github
                .revert_pull(&source.node_id, &title, &body)
                .await
            {
                Ok(pr) => pr,
                Err(e) => {
                    self.lane()
                        .note(incident_id, draft("revert_failed", e.message.clone()), None)
                        .await?;
                    self.lane()
                        .store()
                        .clear_intent(REVERT_INTENT, incident_id)?;
                    return Err(github_refused(Step::Revert, e));
                }
            };
            intent.pr = opened.number;
            intent.head_sha = opened.head_sha.clone();
            self.lane()
                .note(
                    incident_id,
                    draft(
                        "revert_pr_opened",
                        format!(
                            "GitHub opened revert PR #{} ({})",
                            opened.number, opened.url
                        ),
                    ),
                    Some((
                        key.clone(),
                        serde_json::to_vec(&intent).expect("intents serialize"),
                    )),
                )
                .await?;
        }
        let title = format!("Revert HOTFIX: {incident_id} (#{})", hotfix_pr.number);
        let merged = match self
            .github
            .merge(&repo, intent.pr, &intent.head_sha, &title)
            .await
        {
            Ok(sha) => sha,
            Err(e) => {
                let why = match e {
                    MergeError::HeadMoved(msg) => Failure::from(format!(
                        "revert PR #{} moved since it was opened ({msg}); merge it on GitHub by \
                         hand and record it with `hotfixctl revert {incident_id} --pr {}`",
                        intent.pr, intent.pr
                    )),
                    MergeError::NotMergeable(msg) => {
                        Failure::from(format!("revert PR #{} was not merged: {msg}", intent.pr))
                    }
                    MergeError::Failed(f) => Failure {
                        message: format!("revert PR #{} was not merged: {f}", intent.pr),
                        ..f
                    },
                };
                // The opened PR stays in the intent: a retry merges it.
                self.lane()
                    .note(
                        incident_id,
                        draft("revert_failed", why.message.clone()),
                        None,
                    )
                    .await?;
                return Err(github_refused(Step::Revert, why));
            }
        };
        let h = self
            .lane()
            .command_asked(
                actor,
                m,
                incident_id,
                &asked,
                Command::Revert { pr: intent.pr },
            )
            .await;
        self.lane()
            .store()
            .clear_intent(REVERT_INTENT, incident_id)?;
        let h = h?;
        if let Some(syncer) = &self.syncer {
            syncer.sync_revert(incident_id, &merged, false).await?;
        }
        Ok(h)
    }

    /// A revert PR merged on GitHub by hand (e.g. after hotfixd's merge of
    /// it was refused): recorded once GitHub shows it merged.
    pub async fn revert_merged_by_hand(
        &self,
        actor: &Principal,
        m: &Mutation,
        incident_id: &str,
        pr: u64,
    ) -> Result<Hotfix> {
        let cmd = Command::Revert { pr };
        if let Some(first) = self.lane().replayed(actor, m, incident_id, &cmd)? {
            return Ok(first);
        }
        let h = self.lane().precheck(actor, incident_id, Step::Revert)?;
        let repo = h.declaration.repository.clone();
        let merged = self
            .github
            .is_merged(&repo, pr)
            .await
            .map_err(|e| github_refused(Step::Revert, e))?;
        if !merged {
            return Err(Refusal::Refused {
                step: Step::Revert,
                reason: format!(
                    "GitHub shows {repo}#{pr} not merged; merge it, or run `hotfixctl revert                      {incident_id}` without --pr to have hotfixd open and merge the revert"
                ),
            }
            .into());
        }
        let h = self.lane().command(actor, m, incident_id, cmd).await?;
        self.lane()
            .store()
            .clear_intent(REVERT_INTENT, incident_id)?;
        Ok(h)
    }

    fn revert_intent(&self, incident_id: &str) -> Result<Option<RevertIntent>> {
        Ok(self
            .lane()
            .store()
            .intents(REVERT_INTENT)?
            .into_iter()
            .find(|(i, _)| i == incident_id)
            .and_then(|(_, v)| serde_json::from_str(&v).ok()))
    }

    /// At start-up: settles PRs and reverts sent before a crash, and follows
    /// the checks of every hotfix waiting on them.
    pub async fn reconcile(self: &Arc<Self>) -> Result<()> {
        let lane = self.lane().clone();
        for (inc, handle) in lane.store().intents(PR_INTENT)? {
            let Some(h) = lane.store().hotfix(&inc)? else {
                lane.store().clear_intent(PR_INTENT, &inc)?;
                continue;
            };
            if h.pull_request.is_some() {
                lane.store().clear_intent(PR_INTENT, &inc)?;
                continue;
            }
            let branch = h
                .fix
                .as_ref()
                .map(|f| f.proposal.branch.clone())
                .unwrap_or_default();
            match self
                .github
                .find_open_pull(&h.declaration.repository, &branch)
                .await
            {
                Ok(Some(pr)) => {
                    let Some(actor) = lane.principal(&handle) else {
                        tracing::error!(incident = %inc, %handle, "PR intent names a principal no longer in the roster");
                        continue;
                    };
                    lane.note(
                        &inc,
                        draft(
                            "pr_reconciled",
                            format!(
                                "GitHub shows PR #{} open for {branch}; recording it",
                                pr.number
                            ),
                        ),
                        None,
                    )
                    .await?;
                    let asked = Command::OpenPullRequest {
                        number: 0,
                        url: String::new(),
                        title: None,
                        labels: Vec::new(),
                    };
                    let repo = h.declaration.repository.clone();
                    if let Err(e) = self
                        .record_pr(&actor, &Mutation::default(), &inc, &asked, &repo, pr)
                        .await
                    {
                        tracing::warn!(incident = %inc, error = %e, "recording a reconciled PR failed; will retry at the next start");
                        continue;
                    }
                }
                Ok(None) => {
                    lane.note(
                        &inc,
                        draft(
                            "pr_not_created",
                            format!(
                                "no open PR for {branch} on GitHub after the restart; open it again"
                            ),
                        ),
                        None,
                    )
                    .await?;
                }
                Err(e) => {
                    tracing::warn!(incident = %inc, error = %e, "cannot reconcile a PR intent yet; will retry at the next start");
                    continue;
                }
            }
            lane.store().clear_intent(PR_INTENT, &inc)?;
        }
        for (inc, value) in lane.store().intents(REVERT_INTENT)? {
            let intent: RevertIntent = serde_json::from_str(&value).unwrap_or_default();
            let Some(h) = lane.store().hotfix(&inc)? else {
                lane.store().clear_intent(REVERT_INTENT, &inc)?;
                continue;
            };
            if h.revert.is_some() {
                lane.store().clear_intent(REVERT_INTENT, &inc)?;
                continue;
            }
            let repo = h.declaration.repository.clone();
            if intent.pr == 0 {
                // The revert PR may or may not have been opened; a retried
                // `revert` finds it by GitHub's revert branch name.
                lane.note(
                    &inc,
                    draft(
                        "revert_not_completed",
                        "a revert was under way at the restart; run `hotfixctl revert` again"
                            .into(),
                    ),
                    None,
                )
                .await?;
                lane.store().clear_intent(REVERT_INTENT, &inc)?;
                continue;
            }
            match self.github.is_merged(&repo, intent.pr).await {
                Ok(true) => {
                    let Some(actor) = lane.principal(&intent.actor) else {
                        continue;
                    };
                    lane.note(
                        &inc,
                        draft(
                            "revert_reconciled",
                            format!(
                                "GitHub shows revert PR #{} merged; recording the revert",
                                intent.pr
                            ),
                        ),
                        None,
                    )
                    .await?;
                    lane.command_asked(
                        &actor,
                        &Mutation::default(),
                        &inc,
                        &Command::Revert { pr: 0 },
                        Command::Revert { pr: intent.pr },
                    )
                    .await?;
                    lane.store().clear_intent(REVERT_INTENT, &inc)?;
                }
                // Opened, not merged: the intent keeps the PR; a retried
                // `revert` merges it instead of opening another.
                Ok(false) => {
                    lane.note(&inc, draft("revert_not_completed", format!("revert PR #{} is open but not merged; run `hotfixctl revert {inc}` again", intent.pr)), None)
                        .await?;
                }
                Err(e) => {
                    tracing::warn!(incident = %inc, error = %e, "cannot reconcile a revert intent yet");
                }
            }
        }
        for h in lane.list(Some(State::PrOpen), false, usize::MAX)? {
            if self.settings.enabled_for(&h.declaration.repository) {
                self.follow(h.incident_id()).await?;
            }
        }
        Ok(())
    }
}

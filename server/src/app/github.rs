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
//!   then synced again.
//!
//! Each external write follows the intent protocol (`app::intent`).
//! - **cleanup**: the linked PR is read from GitHub and held to step 7's
//!   rules (`domain::facts`).
//!
//! A drill reads from GitHub but writes nothing to it: the would-be writes
//! are recorded in the timeline.

use crate::domain::EventKind;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::intent::{Intent, Intents, NoDetail, Reconcile};
use super::jobs::Jobs;
use super::lane::{Begun, Lane, Mutation, SYSTEM_ACTOR};
use super::sync::Syncer;
use crate::domain::facts::{
    cleanup_approvers, cleanup_checks_passed, cleanup_merged_normally, required_check,
};
use crate::domain::{
    self, CheckResult, CheckState, Command, EventDraft, FixProposal, GateState, HOTFIX_LABEL,
    Hotfix, Principal, Refusal, Role, SCAN_CHECK, State, Step, gate,
};

/// The commit status hotfixd keeps on each hotfix PR's head; a branch
/// ruleset that requires it (hotfixd the only bypass) means no hotfix PR
/// is merged around hotfixd.
pub const GATE: &str = "hotfixd/gate";
use crate::error::{Error, Result};
use crate::integrations::github::ForgeSettings;
use crate::integrations::{CodeHost, Failure, MergeError, NewPull, PullFacts};
use crate::store::IntentKind;

/// What a restart needs to settle a revert that was under way.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct RevertDetail {
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
    /// Bumped by a webhook delivery: every check follower reads GitHub
    /// again at once (a counter, so one busy reading sees it after).
    nudged: tokio::sync::watch::Sender<u64>,
    /// When the last webhook delivery came: while they flow, polling only
    /// reconciles, at `checks_poll_with_webhooks`.
    delivered: std::sync::Mutex<Option<std::time::Instant>>,
    /// The repositories webhooks said were pushed to since the leader last
    /// read their hotfix PRs' heads (`*`: any); see `hold_pushed_heads`.
    pushed: tokio::sync::watch::Sender<BTreeSet<String>>,
}

/// How long after a delivery webhooks count as flowing.
const WEBHOOKS_FLOWING: std::time::Duration = std::time::Duration::from_secs(600);

/// A GitHub call that failed: GitHub being down or overloaded is
/// UNAVAILABLE (retry later); anything else GitHub refused is the step's
/// refusal. Either way nothing was recorded.
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

/// What a caller asks for step 3: the PR's facts come from GitHub.
fn open_pr_asked() -> Command {
    Command::OpenPullRequest {
        number: 0,
        url: String::new(),
        title: None,
        labels: Vec::new(),
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
            nudged: tokio::sync::watch::channel(0).0,
            delivered: std::sync::Mutex::new(None),
            pushed: tokio::sync::watch::channel(BTreeSet::new()).0,
        }
    }

    /// A webhook says something was pushed to (or a PR changed in) `repo`
    /// (None: somewhere): the leader's `hold_pushed_heads` reads that
    /// repository's hotfix PRs.
    pub fn heads_pushed(&self, repo: Option<String>) {
        if self.settings.gate {
            self.pushed.send_modify(|p| {
                p.insert(repo.unwrap_or_else(|| "*".into()));
            });
        }
    }

    /// Run by the leader, each term: for each push a webhook told of, each
    /// open hotfix PR in that repository is read through the API, and a
    /// head that is not the recorded fix gets `hotfixd/gate` pending at
    /// once, saying so (the gate keeper speaks for the recorded fix only).
    /// Pushes told meanwhile are read together next.
    pub async fn hold_pushed_heads(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        let mut told = self.pushed.subscribe();
        loop {
            tokio::select! {
                changed = told.changed() => if changed.is_err() { return },
                _ = stop.cancelled() => return,
            }
            let mut repos = BTreeSet::new();
            self.pushed.send_if_modified(|p| {
                repos = std::mem::take(p);
                false
            });
            if repos.contains("*") {
                self.hold_stray_heads(None).await;
            } else {
                for repo in &repos {
                    self.hold_stray_heads(Some(repo)).await;
                }
            }
        }
    }

    async fn hold_stray_heads(&self, repo: Option<&str>) {
        let lane = self.lane().clone();
        let required = lane.policy().required_checks.clone();
        let open = super::lane::ListFilter {
            open: true,
            ..Default::default()
        };
        let hotfixes = match lane.list(open, usize::MAX) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "listing the open hotfixes failed");
                return;
            }
        };
        for h in hotfixes {
            let r = &h.declaration.repository;
            let Some(pr) = &h.pull_request else { continue };
            if h.declaration.drill
                || !self.settings.enabled_for(r)
                || repo.is_some_and(|p| !p.eq_ignore_ascii_case(r))
            {
                continue;
            }
            let head = match self.github.pull(r, pr.number).await {
                Ok(p) if p.open => p.head_sha,
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(incident = %h.declaration.incident_id, error = %e, "reading the hotfix PR's head failed");
                    continue;
                }
            };
            if let Some((state, why)) = domain::stray_head_gate(&h, &head, &required)
                && let Err(e) = self.github.set_status(r, &head, GATE, state, &why).await
            {
                tracing::warn!(incident = %h.declaration.incident_id, error = %e, "setting {GATE} on a pushed head failed");
            }
        }
    }

    /// Whether the `hotfixd/gate` status is kept.
    pub fn gate_on(&self) -> bool {
        self.settings.gate
    }

    /// A webhook said something changed on GitHub: whatever is followed
    /// is read again through the API now (the delivery's payload is never
    /// taken as a fact).
    pub fn nudge(&self) {
        *self.delivered.lock().expect("delivered lock") = Some(std::time::Instant::now());
        self.nudged.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// See `Steps::github_installation_changed`.
    pub fn installation_changed(&self, account: &str) {
        self.github.installation_changed(account);
    }

    /// How long a check follower sleeps between reads: the poll interval,
    /// or the slower reconciliation one while webhooks flow.
    fn poll_interval(&self) -> std::time::Duration {
        let flowing = self
            .delivered
            .lock()
            .expect("delivered lock")
            .is_some_and(|at| at.elapsed() < WEBHOOKS_FLOWING);
        if flowing {
            self.settings
                .checks_poll_with_webhooks
                .max(self.settings.checks_poll)
        } else {
            self.settings.checks_poll
        }
    }

    fn lane(&self) -> &Arc<Lane> {
        &self.jobs.lane
    }

    fn intents(&self, kind: IntentKind) -> Intents<'_> {
        Intents::new(self.lane(), kind)
    }

    /// Whether `repo`'s steps are taken on GitHub.
    pub fn governs(&self, repo: &str) -> bool {
        self.settings.enabled_for(repo)
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
        let h = match self.lane().begin_step(actor, m, incident_id, &asked)? {
            Begun::Replayed(first) => return Ok(first),
            Begun::Fresh(h) => h,
        };
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
            .note(incident_id, EventDraft::new(EventKind::FixRead, summary))
            .await?;
        // A new fix pushed onto the PR is checked afresh.
        if h.pull_request.is_some() {
            self.follow(incident_id).await?;
        }
        self.lane().hotfix(incident_id)
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
        let asked = open_pr_asked();
        let h = match self.lane().begin_step(actor, m, incident_id, &asked)? {
            Begun::Replayed(first) => return Ok(first),
            Begun::Fresh(h) => h,
        };
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
        let intents = self.intents(IntentKind::PullRequest);
        let (pr, begun) = match existing {
            Some(pr) => {
                let summary = format!("{branch} already has open PR #{}; reusing it", pr.number);
                self.lane()
                    .note(incident_id, EventDraft::new(EventKind::PrReused, summary))
                    .await?;
                (pr, false)
            }
            None if h.is_drill() => {
                let summary = format!(
                    "drill: would open PR \"{title}\" from {branch} into {base} in {repo}, \
                     labelled '{HOTFIX_LABEL}'; nothing was sent"
                );
                self.lane()
                    .note(incident_id, EventDraft::new(EventKind::PrDryRun, summary))
                    .await?;
                let pr = PullFacts {
                    title: title.clone(),
                    ..PullFacts::default()
                };
                (pr, false)
            }
            None => {
                let requested = EventDraft::new(
                    EventKind::PrRequested,
                    format!(
                        "@{} asked GitHub to open \"{title}\" from {branch}",
                        actor.handle
                    ),
                );
                let intent = Intent {
                    actor: actor.handle.clone(),
                    detail: NoDetail {},
                };
                intents.begin(incident_id, requested, &intent).await?;
                let new = NewPull {
                    title: title.clone(),
                    head: branch.clone(),
                    base,
                    body,
                };
                self.jobs.lane.may_act()?;
                let created = match self.github.create_pull(&repo, &new).await {
                    Ok(pr) => Ok(pr),
                    // Did it get created after all (a lost answer)?
                    Err(e) => match self.github.find_open_pull(&repo, &branch).await {
                        Ok(Some(pr)) => Ok(pr),
                        _ => Err(e),
                    },
                };
                match created {
                    Ok(pr) => (pr, true),
                    Err(e) => {
                        let failed = EventDraft::new(EventKind::PrFailed, e.message.clone());
                        intents.abandon(incident_id, failed).await?;
                        return Err(github_refused(Step::PullRequest, e));
                    }
                }
            }
        };
        let h = match self.record_pr(actor, m, incident_id, &repo, pr).await {
            Err(e) if begun => {
                // The PR exists but is not recorded: a retry finds and
                // reuses it.
                let failed =
                    EventDraft::new(EventKind::PrFailed, format!("recording the PR failed: {e}"));
                intents.abandon(incident_id, failed).await?;
                return Err(e);
            }
            other => other?,
        };
        self.follow(incident_id).await?;
        Ok(h)
    }

    /// Labels the PR `hotfix` (unless a drill) and records it, settling a
    /// pending PR intent in the same change.
    async fn record_pr(
        &self,
        actor: &Principal,
        m: &Mutation,
        incident_id: &str,
        repo: &str,
        pr: PullFacts,
    ) -> Result<Hotfix> {
        let drill = self.lane().hotfix(incident_id)?.is_drill();
        let mut labels = pr.labels.clone();
        if !labels.iter().any(|l| l == HOTFIX_LABEL) {
            if drill {
                let summary = format!("drill: would label #{} '{HOTFIX_LABEL}'", pr.number);
                self.lane()
                    .note(
                        incident_id,
                        EventDraft::new(EventKind::LabelDryRun, summary),
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
        self.intents(IntentKind::PullRequest)
            .complete(actor, m, incident_id, &open_pr_asked(), cmd)
            .await
    }

    /// Keeps the `hotfixd/gate` commit status on every hotfix PR's head
    /// SHA (see `domain::gate`) until `stop`: a reader of the event log
    /// with a persisted cursor, like the chat relay. Each event's hotfix is
    /// read and its gate set when what it says changed; a drill, and a
    /// repository left manual, get none. A status GitHub refuses is logged
    /// and set again at the hotfix's next event (the store stays the
    /// record; the gate is only its mirror on GitHub).
    pub async fn keep_gate(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        let lane = self.lane().clone();
        let required = lane.policy().required_checks.clone();
        let mut said: std::collections::HashMap<String, (String, GateState, String)> =
            std::collections::HashMap::new();
        let mut log = super::relay::LogReader::new(&lane, "github-gate", "the gate keeper");
        while let Some(e) = log.next(&stop).await {
            if let Ok(h) = lane.hotfix(&e.incident_id)
                && !h.declaration.drill
                && self.settings.enabled_for(&h.declaration.repository)
                && let Some(sha) = h.current_sha()
                && let Some((state, why)) = gate(&h, &required)
            {
                let now = (sha.to_string(), state, why);
                if said.get(&e.incident_id) != Some(&now) {
                    let repo = &h.declaration.repository;
                    match self.github.set_status(repo, sha, GATE, state, &now.2).await {
                        Ok(()) => {
                            said.insert(e.incident_id.clone(), now);
                        }
                        Err(why) => tracing::warn!(
                            incident = %e.incident_id,
                            error = %why,
                            "setting {GATE} failed; set again at the next event"
                        ),
                    }
                }
            }
            if !log.done(&e) {
                return;
            }
        }
    }

    /// Step 4: follows the PR's required checks in the background (once per
    /// hotfix at a time); `hotfixctl check --wait` watches the events.
    pub async fn follow(self: &Arc<Self>, incident_id: &str) -> Result<()> {
        let h = self.lane().hotfix(incident_id)?;
        let sha = h.current_sha().unwrap_or_default().to_string();
        let required = self.lane().policy().required_checks.join(", ");
        let started = EventDraft::new(
            EventKind::ChecksFollowing,
            format!(
                "following the required checks ({required}) of {} on GitHub",
                short(&sha)
            ),
        );
        let me = self.clone();
        let inc = incident_id.to_string();
        let begin = self.lane().note(incident_id, started);
        match self
            .jobs
            .spawn(incident_id, Step::Check, begin, async move {
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
        self.lane().hotfix(incident_id)
    }

    async fn watch_checks(&self, inc: &str) {
        let lane = self.lane().clone();
        let required = lane.policy().required_checks.clone();
        let deadline = tokio::time::Instant::now() + self.settings.checks_timeout;
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        let mut following = String::new();
        let mut nudges = self.nudged.subscribe();
        loop {
            nudges.mark_unchanged();
            let h = match lane.hotfix(inc) {
                Ok(h) => h,
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
                        let (state, detail) = required_check(name, &facts);
                        if seen.get(name) != Some(&detail) {
                            self.jobs
                                .note(
                                    inc,
                                    EventKind::CheckProgress,
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
                                    EventKind::ChecksFailed,
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
                                    EventKind::CheckFailed,
                                    format!("{name} failed on {}; re-run it on GitHub or push a new fix", short(&sha)),
                                )
                                .await;
                        }
                    }
                    if lane
                        .hotfix(inc)
                        .is_ok_and(|h| h.state(&required) == State::ReadyToMerge)
                    {
                        self.jobs
                            .note(
                                inc,
                                EventKind::ChecksPassed,
                                format!(
                                    "every required check passed on {}: ready to merge",
                                    short(&sha)
                                ),
                            )
                            .await;
                        return;
                    }
                }
                Err(e) => {
                    self.jobs
                        .note(inc, EventKind::CheckProgress, e.message)
                        .await
                }
            }
            let wait = self.poll_interval();
            if tokio::time::Instant::now() + wait > deadline {
                self.jobs
                    .note(
                        inc,
                        EventKind::ChecksTimeout,
                        format!(
                            "stopped following after {}; `hotfixctl check {inc} --wait` follows again",
                            humantime::format_duration(self.settings.checks_timeout)
                        ),
                    )
                    .await;
                return;
            }
            // A delivery during the read above counts: `mark_unchanged`
            // ran before it.
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = nudges.changed() => {}
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
        let h = match self.lane().begin_step(actor, m, incident_id, &asked)? {
            Begun::Replayed(first) => return Ok(first),
            Begun::Fresh(h) => h,
        };
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
        cleanup_merged_normally(pr.merged, &pr.labels).map_err(refused)?;
        let reviews = self
            .github
            .reviews(&repo, number)
            .await
            .map_err(|e| github_refused(Step::Cleanup, e))?;
        let approvers = cleanup_approvers(&pr.author, &reviews).map_err(refused)?;
        let checks = self
            .github
            .checks(&repo, &pr.head_sha)
            .await
            .map_err(|e| github_refused(Step::Cleanup, e))?;
        let passed = cleanup_checks_passed(&checks).map_err(refused)?;
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
        let summary = format!(
            "GitHub: #{number} by @{} merged, approved by {}, {passed} check(s) passed",
            pr.author,
            who.join(", "),
        );
        self.lane()
            .note(
                incident_id,
                EventDraft::new(EventKind::CleanupVerified, summary),
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
        let h = match self.lane().begin_step(actor, m, incident_id, &asked)? {
            Begun::Replayed(first) => return Ok(first),
            Begun::Fresh(h) => h,
        };
        let repo = h.declaration.repository.clone();
        let Some(hotfix_pr) = h.pull_request.clone() else {
            return Err(Refusal::Refused {
                step: Step::Revert,
                reason: "no hotfix PR is recorded to revert".into(),
            }
            .into());
        };
        if h.is_drill() {
            let summary = format!(
                "drill: would open and squash-merge the revert of {repo}#{}, then sync; \
                 nothing was sent",
                hotfix_pr.number
            );
            self.lane()
                .note(
                    incident_id,
                    EventDraft::new(EventKind::RevertDryRun, summary),
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
        let intents = self.intents(IntentKind::Revert);
        let mut intent = intents.get::<RevertDetail>(incident_id)?.unwrap_or(Intent {
            actor: actor.handle.clone(),
            detail: RevertDetail::default(),
        });
        if intent.detail.pr == 0 {
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
                intent.detail.pr = open.number;
                intent.detail.head_sha = open.head_sha;
            }
        }
        if intent.detail.pr == 0 {
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
            let requested = EventDraft::new(
                EventKind::RevertRequested,
                format!(
                    "@{} asked GitHub to open the revert of #{}",
                    actor.handle, source.number
                ),
            );
            intents.begin(incident_id, requested, &intent).await?;
            let title = format!("Revert HOTFIX: {incident_id}");
            let body = format!(
                "Reverts #{} of {incident_id}: the symptom did not recover. Treat the situation as \
                 a new incident; do not chain another hotfix.",
                source.number
            );
            let opened = match self
                .github
                .revert_pull(&repo, &source.node_id, &title, &body)
                .await
            {
                Ok(pr) => pr,
                Err(e) => {
                    let failed = EventDraft::new(EventKind::RevertFailed, e.message.clone());
                    intents.abandon(incident_id, failed).await?;
                    return Err(github_refused(Step::Revert, e));
                }
            };
            intent.detail.pr = opened.number;
            intent.detail.head_sha = opened.head_sha.clone();
            let summary = format!(
                "GitHub opened revert PR #{} ({})",
                opened.number, opened.url
            );
            intents
                .begin(
                    incident_id,
                    EventDraft::new(EventKind::RevertPrOpened, summary),
                    &intent,
                )
                .await?;
        }
        let RevertDetail { pr, head_sha } = &intent.detail;
        let title = format!("Revert HOTFIX: {incident_id} (#{})", hotfix_pr.number);
        self.jobs.lane.may_act()?;
        let merged = match self.github.merge(&repo, *pr, head_sha, &title).await {
            Ok(sha) => sha,
            Err(e) => {
                let why = match e {
                    MergeError::HeadMoved(msg) => Failure::from(format!(
                        "revert PR #{pr} moved since it was opened ({msg}); merge it on GitHub by \
                         hand and record it with `hotfixctl revert {incident_id} --pr {pr}`"
                    )),
                    MergeError::NotMergeable(msg) => {
                        Failure::from(format!("revert PR #{pr} was not merged: {msg}"))
                    }
                    MergeError::Failed(f) => Failure {
                        message: format!("revert PR #{pr} was not merged: {f}"),
                        ..f
                    },
                };
                // The opened PR stays in the intent: a retry merges it.
                self.lane()
                    .note(
                        incident_id,
                        EventDraft::new(EventKind::RevertFailed, why.message.clone()),
                    )
                    .await?;
                return Err(github_refused(Step::Revert, why));
            }
        };
        let h = intents
            .complete_or_report(
                actor,
                m,
                incident_id,
                &asked,
                Command::Revert { pr: *pr },
                EventKind::RevertFailed,
            )
            .await?;
        if let Some(syncer) = &self.syncer {
            syncer.sync_revert(incident_id, &merged, false).await?;
        }
        Ok(h)
    }

    /// A revert PR merged on GitHub by hand (e.g. after hotfixd's merge of
    /// it was refused): recorded once GitHub shows it merged, settling a
    /// pending revert intent in the same change.
    pub async fn revert_merged_by_hand(
        &self,
        actor: &Principal,
        m: &Mutation,
        incident_id: &str,
        pr: u64,
    ) -> Result<Hotfix> {
        let cmd = Command::Revert { pr };
        let h = match self.lane().begin_step(actor, m, incident_id, &cmd)? {
            Begun::Replayed(first) => return Ok(first),
            Begun::Fresh(h) => h,
        };
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
                    "GitHub shows {repo}#{pr} not merged; merge it, or run `hotfixctl revert \
                     {incident_id}` without --pr to have hotfixd open and merge the revert"
                ),
            }
            .into());
        }
        self.intents(IntentKind::Revert)
            .complete(actor, m, incident_id, &cmd, cmd.clone())
            .await
    }

    /// Settles PRs sent before a crash.
    async fn reconcile_prs(&self) -> Result<()> {
        let lane = self.lane().clone();
        let intents = self.intents(IntentKind::PullRequest);
        let unsettled = intents
            .unsettled::<NoDetail>(|h| h.pull_request.is_some(), EventKind::PrReconciled)
            .await?;
        for (p, h) in unsettled {
            let (inc, handle) = (&p.incident_id, &p.intent.actor);
            let branch = h
                .fix
                .as_ref()
                .map(|f| f.proposal.branch.clone())
                .unwrap_or_default();
            let repo = h.declaration.repository.clone();
            match self.github.find_open_pull(&repo, &branch).await {
                Ok(Some(pr)) => {
                    let Some(actor) = lane.principal(handle) else {
                        tracing::error!(incident = %inc, %handle, "PR intent names a principal no longer in the roster");
                        continue;
                    };
                    let summary = format!(
                        "GitHub shows PR #{} open for {branch}; recording it",
                        pr.number
                    );
                    lane.note(inc, EventDraft::new(EventKind::PrReconciled, summary))
                        .await?;
                    if let Err(e) = self
                        .record_pr(&actor, &Mutation::default(), inc, &repo, pr)
                        .await
                    {
                        tracing::warn!(incident = %inc, error = %e, "recording a reconciled PR failed; will retry at the next start");
                    }
                }
                Ok(None) => {
                    let summary = format!(
                        "no open PR for {branch} on GitHub after the restart; open it again"
                    );
                    intents
                        .abandon(inc, EventDraft::new(EventKind::PrNotCreated, summary))
                        .await?;
                }
                Err(e) => {
                    tracing::warn!(incident = %inc, error = %e, "cannot reconcile a PR intent yet; will retry at the next start");
                }
            }
        }
        Ok(())
    }

    /// Settles reverts under way before a crash.
    async fn reconcile_reverts(&self) -> Result<()> {
        let lane = self.lane().clone();
        let intents = self.intents(IntentKind::Revert);
        let unsettled = intents
            .unsettled::<RevertDetail>(|h| h.revert.is_some(), EventKind::RevertReconciled)
            .await?;
        for (p, h) in unsettled {
            let (inc, intent) = (&p.incident_id, &p.intent);
            let pr = intent.detail.pr;
            if pr == 0 {
                // The revert PR may or may not have been opened; a retried
                // `revert` finds it by GitHub's revert branch name.
                let summary = "a revert was under way at the restart; run `hotfixctl revert` again";
                intents
                    .abandon(inc, EventDraft::new(EventKind::RevertNotCompleted, summary))
                    .await?;
                continue;
            }
            match self.github.is_merged(&h.declaration.repository, pr).await {
                Ok(true) => {
                    let Some(actor) = lane.principal(&intent.actor) else {
                        continue;
                    };
                    let summary =
                        format!("GitHub shows revert PR #{pr} merged; recording the revert");
                    let found = EventDraft::new(EventKind::RevertReconciled, summary);
                    let (asked, m) = (Command::Revert { pr: 0 }, Mutation::default());
                    intents
                        .complete_found(
                            found,
                            &actor,
                            &m,
                            inc,
                            &asked,
                            Command::Revert { pr },
                            EventKind::RevertFailed,
                        )
                        .await?;
                }
                // Opened, not merged: the intent keeps the PR; a retried
                // `revert` merges it instead of opening another.
                Ok(false) => {
                    let summary = format!(
                        "revert PR #{pr} is open but not merged; run `hotfixctl revert {inc}` again"
                    );
                    lane.note(inc, EventDraft::new(EventKind::RevertNotCompleted, summary))
                        .await?;
                }
                Err(e) => {
                    tracing::warn!(incident = %inc, error = %e, "cannot reconcile a revert intent yet");
                }
            }
        }
        Ok(())
    }

    /// Follows the checks of every hotfix waiting on them (after a restart).
    pub async fn follow_pending(self: &Arc<Self>) -> Result<()> {
        for h in self.lane().list(
            crate::app::ListFilter {
                state: Some(State::PrOpen),
                ..Default::default()
            },
            usize::MAX,
        )? {
            if self.governs(&h.declaration.repository) {
                self.follow(h.incident_id()).await?;
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Reconcile for Forge {
    /// Settles PRs and reverts sent before a crash or restart.
    async fn reconcile(&self) -> Result<()> {
        self.reconcile_prs().await?;
        self.reconcile_reverts().await
    }
}

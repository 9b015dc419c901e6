//! `Steps`: the one entry point for every runbook step a caller asks for.
//!
//! It owns the one question the handlers must not answer: does hotfixd
//! perform this step itself for this hotfix (GitHub on for its repository,
//! Argo CD or Prometheus configured), or record what the caller reports?
//! Performed steps go to their performer ([`Forge`], [`Merger`],
//! [`Syncer`], [`Verifier`]), which follows the intent protocol; reported
//! ones go straight to [`Lane::command`]. A field that hotfixd reads from
//! GitHub must then be left empty by the caller.

use std::sync::Arc;

use super::github::Forge;
use super::intent::Reconcile;
use super::lane::{Lane, Mutation};
use super::merge::Merger;
use super::sync::Syncer;
use super::verify::Verifier;
use crate::domain::{Command, FixProposal, Hotfix, Principal, Refusal, Step};
use crate::error::Result;

/// GitHub's two performers: the steps taken on GitHub, and the merge.
pub struct GitHubSteps {
    pub forge: Arc<Forge>,
    pub merger: Arc<Merger>,
}

/// The performers configured; `None` where the caller reports the step.
#[derive(Default)]
pub struct Performers {
    pub github: Option<GitHubSteps>,
    pub sync: Option<Arc<Syncer>>,
    pub verify: Option<Arc<Verifier>>,
}

/// The dispatcher (see the module comment).
pub struct Steps {
    lane: Arc<Lane>,
    performers: Performers,
}

/// A field GitHub supplies when its integration is on must be left empty.
fn from_github(field: &str, empty: bool) -> Result<()> {
    if empty {
        return Ok(());
    }
    Err(Refusal::Invalid {
        field: field.into(),
        reason: "GitHub is on for this repository: hotfixd reads this from GitHub; leave it empty"
            .into(),
    }
    .into())
}

impl Steps {
    /// Steps over `lane`, with the performers configured.
    pub fn new(lane: Arc<Lane>, performers: Performers) -> Steps {
        Steps { lane, performers }
    }

    /// The lane, for what is no step (reads, declarations, reviews).
    pub fn lane(&self) -> &Arc<Lane> {
        &self.lane
    }

    /// The `hotfixd/gate` keeper, when GitHub is on with the gate (run by
    /// the leader, each term).
    pub fn gate_keeper(&self) -> Option<Arc<crate::app::github::Forge>> {
        self.performers
            .github
            .as_ref()
            .filter(|gh| gh.forge.gate_on())
            .map(|gh| gh.forge.clone())
    }

    /// A webhook says something changed on GitHub: the checks followed
    /// are read again now. False when GitHub is off (nothing to read).
    pub fn nudge_github(&self) -> bool {
        match &self.performers.github {
            Some(gh) => {
                gh.forge.nudge();
                true
            }
            None => false,
        }
    }

    /// A webhook says something was pushed in `repo` (None: somewhere):
    /// see `Forge::heads_pushed`.
    pub fn github_pushed(&self, repo: Option<String>) {
        if let Some(gh) = &self.performers.github {
            gh.forge.heads_pushed(repo);
        }
    }

    /// A webhook says the GitHub App's installation on `account` changed:
    /// hotfixd finds it and signs in to it again at its next call there.
    pub fn github_installation_changed(&self, account: &str) {
        if let Some(gh) = &self.performers.github {
            gh.forge.installation_changed(account);
        }
    }

    /// GitHub's performers, if the hotfix's repository has them on.
    fn github_for(&self, incident_id: &str) -> Result<Option<&GitHubSteps>> {
        let Some(gh) = &self.performers.github else {
            return Ok(None);
        };
        let repo = self.lane.hotfix(incident_id)?.declaration.repository;
        Ok(gh.forge.governs(&repo).then_some(gh))
    }

    /// Takes step `cmd` on the hotfix as `actor`: performed by hotfixd where
    /// it performs that step, otherwise recorded as the caller reports it.
    pub async fn take(
        &self,
        actor: &Principal,
        m: &Mutation,
        incident_id: &str,
        cmd: Command,
    ) -> Result<Hotfix> {
        let github = match cmd.step() {
            Step::Fix
            | Step::PullRequest
            | Step::Check
            | Step::Merge
            | Step::Revert
            | Step::Cleanup => self.github_for(incident_id)?,
            _ => None,
        };
        match (cmd, github) {
            (Command::SubmitFix(p), Some(gh)) => {
                let FixProposal {
                    branch,
                    sha,
                    commit_message,
                    files,
                } = p;
                from_github("commit_message", commit_message.is_empty())?;
                from_github("files", files.is_empty())?;
                gh.forge.fix(actor, m, incident_id, &branch, &sha).await
            }
            (
                Command::OpenPullRequest {
                    number,
                    url,
                    title,
                    labels,
                },
                Some(gh),
            ) => {
                from_github("number", number == 0)?;
                from_github("url", url.is_empty())?;
                from_github("title", title.is_none())?;
                from_github("labels", labels.is_empty())?;
                gh.forge.open_pr(actor, m, incident_id).await
            }
            (Command::RecordCheck { .. }, Some(_)) => {
                let repo = self.lane.hotfix(incident_id)?.declaration.repository;
                Err(Refusal::Refused {
                    step: Step::Check,
                    reason: format!(
                        "the checks of {repo} are read from GitHub, not reported; `hotfixctl \
                         check {incident_id} --wait` follows them"
                    ),
                }
                .into())
            }
            (Command::Revert { pr: 0 }, Some(gh)) => gh.forge.revert(actor, m, incident_id).await,
            (Command::Revert { pr }, Some(gh)) => {
                gh.forge
                    .revert_merged_by_hand(actor, m, incident_id, pr)
                    .await
            }
            (Command::RecordCleanup { pr, url, labels }, Some(gh)) => {
                from_github("url", url.is_empty())?;
                from_github("labels", labels.is_empty())?;
                gh.forge.cleanup(actor, m, incident_id, pr).await
            }
            // With GitHub on for the repository, hotfixd merges on GitHub
            // (pinned to the approved SHA) and records the merge once GitHub
            // did it.
            (Command::Merge, Some(gh)) => gh.merger.merge(actor, m, incident_id).await,
            // With Argo CD configured, hotfixd performs the sync itself and
            // records it once Argo CD reports Synced and Healthy.
            (
                Command::Sync {
                    revision,
                    skip_canary,
                },
                _,
            ) if self.performers.sync.is_some() => {
                let syncer = self.performers.sync.as_ref().expect("checked");
                syncer
                    .start(actor, m, incident_id, &revision, skip_canary)
                    .await
            }
            (cmd, _) => self.lane.command(actor, m, incident_id, cmd).await,
        }
    }

    /// Step 4 on GitHub: follows the PR's required checks in the background.
    /// Answers with the hotfix and the event sequence to watch from.
    pub async fn follow_checks(
        &self,
        actor: &Principal,
        incident_id: &str,
    ) -> Result<(Hotfix, u64)> {
        // Who may, before what is configured.
        let h = self.lane.precheck(actor, incident_id, Step::Check)?;
        let from_seq = self.lane.log().durable_seq();
        let Some(gh) = self.github_for(incident_id)? else {
            // GitHub off: the results come from whoever runs the checks
            // (RecordCheck); the caller follows them from here.
            return Ok((h, from_seq));
        };
        let h = gh.forge.follow_checks(actor, incident_id).await?;
        Ok((h, from_seq))
    }

    /// Step 6 measured in Prometheus, in the background. Answers with the
    /// hotfix and the query being evaluated.
    pub async fn start_verification(
        &self,
        actor: &Principal,
        incident_id: &str,
    ) -> Result<(Hotfix, Option<String>)> {
        // Who may, and whether the hotfix is there to verify, whatever is
        // configured.
        let h = self.lane.precheck(actor, incident_id, Step::Verify)?;
        let Some(verifier) = &self.performers.verify else {
            // No Prometheus: whoever measures records the verdict (as the
            // checks are recorded with GitHub off); nothing starts here.
            return Ok((h, None));
        };
        let (h, query) = verifier.start(actor, incident_id).await?;
        Ok((h, Some(query)))
    }

    /// The intent protocol's reconcile step for every performer, then the
    /// checks of hotfixes waiting on them followed again. Run before
    /// serving, and whenever this daemon becomes the one that acts. A
    /// performer that cannot settle yet is logged and retried next time.
    pub async fn reconcile(&self) {
        let mut performers: Vec<(&str, &dyn Reconcile)> = Vec::new();
        if let Some(s) = &self.performers.sync {
            performers.push(("syncs", s.as_ref()));
        }
        if let Some(gh) = &self.performers.github {
            performers.push(("merges", gh.merger.as_ref()));
            performers.push(("GitHub steps", gh.forge.as_ref()));
        }
        for (what, p) in performers {
            if let Err(e) = p.reconcile().await {
                tracing::error!(error = %e, "reconciling {what} failed");
            }
        }
        if let Some(gh) = &self.performers.github
            && let Err(e) = gh.forge.follow_pending().await
        {
            tracing::error!(error = %e, "following pending checks failed");
        }
    }
}

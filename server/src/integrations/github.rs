//! GitHub (octocrab): the facts of a fix (commit, message, diff against the
//! base), the hotfix PR (created once, labelled), its checks (check runs and
//! commit statuses), the admin merge pinned to the approved SHA, the revert
//! PR (GraphQL `revertPullRequest`), the cleanup PR's reviews, and team
//! membership for roles.
//!
//! Only the fields hotfixd uses are deserialized, so GitHub adding fields
//! never breaks it. The base URL is configurable for GitHub Enterprise and
//! tests; GraphQL lives at its own URL (`/graphql` on github.com,
//! `/api/graphql` on GitHub Enterprise).

use std::time::Duration;

use octocrab::Octocrab;
use serde::Deserialize;
use serde_json::json;

use super::{
    CheckFacts, CheckState, CodeHost, CommitFacts, Failure, MergeError, NewPull, PullFacts, Review,
};
use crate::domain::ChangedFile;

/// An org team: ("bookstore", "platform-admins").
pub type Team = (String, String);

#[derive(Debug, Clone)]
pub struct GitHubSettings {
    /// API base URL: <https://api.github.com>, or GHE's `https://HOST/api/v3`.
    pub url: String,
    /// GraphQL endpoint; derived from `url` when not set.
    pub graphql_url: Option<String>,
    /// Token of a platform-admin bot (a secret: from env or file).
    pub token: Option<String>,
    /// The webhook secret GitHub signs deliveries with (a secret: from env
    /// or file); webhooks are refused without one.
    pub webhook_secret: Option<String>,
    pub timeout: Duration,
    /// How the lane uses GitHub.
    pub lane: ForgeSettings,
    /// Roles held by the members of an org team instead of the roster.
    pub teams: std::collections::BTreeMap<crate::domain::Role, Team>,
    /// How often team memberships are read again.
    pub teams_refresh: Duration,
}

/// How the lane uses GitHub: base branches, repositories left manual,
/// how checks are followed.
#[derive(Debug, Clone, PartialEq)]
pub struct ForgeSettings {
    pub base_branch: String,
    pub base_branches: std::collections::BTreeMap<String, String>,
    /// Repositories whose steps stay manual (the integration is switched off).
    pub manual_repositories: std::collections::BTreeSet<String>,
    pub checks_poll: Duration,
    /// The poll interval while webhooks are flowing (a delivery in the
    /// last 10 minutes): polling then only catches a missed delivery.
    pub checks_poll_with_webhooks: Duration,
    /// Keep the `hotfixd/gate` commit status on each hotfix PR's head.
    pub gate: bool,
    pub checks_timeout: Duration,
}

impl Default for ForgeSettings {
    fn default() -> Self {
        ForgeSettings {
            base_branch: "main".into(),
            base_branches: Default::default(),
            manual_repositories: Default::default(),
            checks_poll: Duration::from_secs(5),
            checks_poll_with_webhooks: Duration::from_secs(60),
            gate: true,
            checks_timeout: Duration::from_secs(30 * 60),
        }
    }
}

impl ForgeSettings {
    pub fn enabled_for(&self, repo: &str) -> bool {
        !self.manual_repositories.contains(repo)
    }

    pub fn base_for(&self, repo: &str) -> &str {
        self.base_branches.get(repo).unwrap_or(&self.base_branch)
    }
}

impl GitHubSettings {
    /// github.com: <https://api.github.com/graphql>; GHE (`…/api/v3`):
    /// `…/api/graphql`; anything else: `{url}/graphql`.
    pub fn graphql(&self) -> String {
        if let Some(u) = &self.graphql_url {
            return u.clone();
        }
        let base = self.url.trim_end_matches('/');
        match base.strip_suffix("/api/v3") {
            Some(host) => format!("{host}/api/graphql"),
            None => format!("{base}/graphql"),
        }
    }
}

pub struct GitHub {
    rest: Octocrab,
    /// Rooted at the GraphQL endpoint's directory (octocrab posts `/graphql`).
    graphql: Octocrab,
    /// Counted in /metrics.
    calls: crate::metrics::Calls,
}

fn client(base: &str, settings: &GitHubSettings, what: &str) -> Result<Octocrab, String> {
    let mut b = Octocrab::builder()
        .base_uri(base)
        .map_err(|e| format!("{what}: {e}"))?
        .set_connect_timeout(Some(settings.timeout))
        .set_read_timeout(Some(settings.timeout))
        .set_write_timeout(Some(settings.timeout));
    if let Some(t) = &settings.token {
        b = b.personal_token(t.clone());
    }
    b.build()
        .map_err(|e| format!("building the GitHub client: {e}"))
}

impl GitHub {
    /// Counts its calls in `calls` (the daemon's, which /metrics shows).
    pub fn measured(mut self, calls: crate::metrics::Calls) -> Self {
        self.calls = calls;
        self
    }

    pub fn new(settings: GitHubSettings) -> Result<GitHub, String> {
        super::install_crypto_provider();
        let graphql_url = settings.graphql();
        let graphql_base = graphql_url
            .strip_suffix("/graphql")
            .ok_or_else(|| format!("github.graphql_url: '{graphql_url}' must end in /graphql"))?;
        Ok(GitHub {
            rest: client(&settings.url, &settings, "github.url")?,
            graphql: client(graphql_base, &settings, "github.graphql_url")?,
            calls: Default::default(),
        })
    }
}

fn split(repo: &str) -> (&str, &str) {
    repo.split_once('/').unwrap_or((repo, ""))
}

fn describe(e: &octocrab::Error) -> (Option<u16>, String) {
    match e {
        octocrab::Error::GitHub { source, .. } => {
            (Some(source.status_code.as_u16()), source.message.clone())
        }
        octocrab::Error::Graphql { source, .. } => (None, format!("GraphQL: {source}")),
        other => (None, other.to_string()),
    }
}

/// "GitHub answered 404: Not Found" / "GitHub request failed: …";
/// transient when GitHub could not be reached or answered 5xx/429.
fn failure(what: &str, e: &octocrab::Error) -> Failure {
    match describe(e) {
        (Some(code), msg) => Failure {
            message: format!("{what}: GitHub answered {code}: {msg}"),
            transient: super::transient_status(code),
        },
        (None, msg) => Failure {
            message: format!("{what}: GitHub request failed: {msg}"),
            // An answer that does not parse will not parse next time.
            transient: !matches!(
                e,
                octocrab::Error::Serde { .. } | octocrab::Error::Json { .. }
            ),
        },
    }
}

impl GitHub {
    /// A GET with bounded retries of transient failures.
    async fn read<R: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        route: &str,
        query: &[(&str, &str)],
    ) -> Result<R, Failure> {
        super::with_retries(what, || async {
            self.rest
                .get::<R, _, _>(route, (!query.is_empty()).then_some(query))
                .await
                .map_err(|e| {
                    let f = failure(what, &e);
                    if f.transient {
                        super::Attempt::Transient(f)
                    } else {
                        super::Attempt::Final(f)
                    }
                })
        })
        .await
    }
}

/// Path segments are percent-encoded (branch names hold `/`).
fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[derive(Deserialize)]
struct Login {
    login: String,
}

#[derive(Deserialize)]
struct Label {
    name: String,
}

#[derive(Deserialize)]
struct Ref {
    #[serde(rename = "ref")]
    name: String,
    sha: String,
}

#[derive(Deserialize)]
struct Pull {
    number: u64,
    node_id: String,
    html_url: String,
    title: String,
    state: String,
    user: Option<Login>,
    labels: Vec<Label>,
    head: Ref,
    base: Ref,
    merged_at: Option<String>,
    merge_commit_sha: Option<String>,
}

impl From<Pull> for PullFacts {
    fn from(p: Pull) -> PullFacts {
        PullFacts {
            number: p.number,
            node_id: p.node_id,
            url: p.html_url,
            title: p.title,
            open: p.state == "open",
            author: p.user.map(|u| u.login).unwrap_or_default(),
            labels: p.labels.into_iter().map(|l| l.name).collect(),
            head_ref: p.head.name,
            head_sha: p.head.sha,
            base_ref: p.base.name,
            merged: p.merged_at.is_some(),
            merge_commit_sha: p.merge_commit_sha.unwrap_or_default(),
        }
    }
}

#[derive(Deserialize)]
struct CompareCommit {
    sha: String,
    commit: CommitBody,
}

#[derive(Deserialize)]
struct CommitBody {
    message: String,
}

#[derive(Deserialize)]
struct CompareFile {
    filename: String,
    additions: u32,
    deletions: u32,
}

#[derive(Deserialize)]
struct Comparison {
    status: String,
    ahead_by: u32,
    behind_by: u32,
    commits: Vec<CompareCommit>,
    #[serde(default)]
    files: Vec<CompareFile>,
}

#[derive(Deserialize)]
struct CheckRuns {
    check_runs: Vec<CheckRun>,
}

#[derive(Deserialize)]
struct CheckRun {
    name: String,
    status: String,
    conclusion: Option<String>,
    html_url: Option<String>,
}

#[derive(Deserialize)]
struct CombinedStatus {
    statuses: Vec<StatusEntry>,
}

#[derive(Deserialize)]
struct StatusEntry {
    context: String,
    state: String,
    description: Option<String>,
}

#[derive(Deserialize)]
struct ReviewEntry {
    user: Option<Login>,
    state: String,
    commit_id: Option<String>,
}

#[derive(Deserialize)]
struct Membership {
    state: String,
}

/// A check run's state: only `success` passes; `neutral` and `skipped` do
/// not count as passing a required check (the scan is never skipped).
fn run_state(status: &str, conclusion: Option<&str>) -> CheckState {
    match (status, conclusion) {
        ("completed", Some("success")) => CheckState::Passed,
        ("completed", _) => CheckState::Failed,
        _ => CheckState::Pending,
    }
}

fn status_state(state: &str) -> CheckState {
    match state {
        "success" => CheckState::Passed,
        "failure" | "error" => CheckState::Failed,
        _ => CheckState::Pending,
    }
}

#[async_trait::async_trait]
impl CodeHost for GitHub {
    async fn merge(
        &self,
        repo: &str,
        pr: u64,
        sha: &str,
        title: &str,
    ) -> Result<String, MergeError> {
        self.calls
            .time("github", "merge", async {
                let (owner, name) = split(repo);
                let res = self
                    .rest
                    .pulls(owner, name)
                    .merge(pr)
                    .sha(sha)
                    .title(title)
                    .method(octocrab::params::pulls::MergeMethod::Squash)
                    .send()
                    .await;
                match res {
                    Ok(m) if m.merged => Ok(m.sha.unwrap_or_default()),
                    Ok(m) => Err(MergeError::Failed(
                        m.message
                            .unwrap_or_else(|| "GitHub did not merge".into())
                            .into(),
                    )),
                    Err(e) => match describe(&e) {
                        (Some(409), msg) => Err(MergeError::HeadMoved(msg)),
                        (Some(405), msg) => Err(MergeError::NotMergeable(msg)),
                        _ => Err(MergeError::Failed(failure("merge", &e))),
                    },
                }
            })
            .await
    }

    async fn is_merged(&self, repo: &str, pr: u64) -> Result<bool, Failure> {
        self.calls
            .time("github", "is_merged", async {
                let (owner, name) = split(repo);
                self.rest
                    .pulls(owner, name)
                    .is_merged(pr)
                    .await
                    .map_err(|e| failure("is the PR merged", &e))
            })
            .await
    }

    async fn compare(&self, repo: &str, base: &str, head: &str) -> Result<CommitFacts, Failure> {
        self.calls
            .time("github", "compare", async {
                let route = format!("/repos/{repo}/compare/{}...{}", seg(base), seg(head));
                let c: Comparison = self
                    .read(
                        &format!("comparing {base}...{head} in {repo}"),
                        &route,
                        &[("per_page", "100")],
                    )
                    .await?;
                let last = c.commits.last().ok_or_else(|| {
                    format!(
                        "branch {head} has no commits ahead of {base} in {repo} (status {})",
                        c.status
                    )
                })?;
                Ok(CommitFacts {
                    sha: last.sha.clone(),
                    message: last.commit.message.clone(),
                    files: c
                        .files
                        .into_iter()
                        .map(|f| ChangedFile {
                            path: f.filename,
                            added: f.additions,
                            removed: f.deletions,
                        })
                        .collect(),
                    ahead_by: c.ahead_by,
                    behind_by: c.behind_by,
                })
            })
            .await
    }

    async fn find_open_pull(&self, repo: &str, branch: &str) -> Result<Option<PullFacts>, Failure> {
        self.calls
            .time("github", "find_open_pull", async {
                let (owner, _) = split(repo);
                let head = format!("{owner}:{branch}");
                let pulls: Vec<Pull> = self
                    .read(
                        &format!("listing open PRs of {branch}"),
                        &format!("/repos/{repo}/pulls"),
                        &[("state", "open"), ("head", head.as_str())],
                    )
                    .await?;
                Ok(pulls.into_iter().next().map(PullFacts::from))
            })
            .await
    }

    async fn create_pull(&self, repo: &str, new: &NewPull) -> Result<PullFacts, Failure> {
        self.calls
            .time("github", "create_pull", async {
                let body = json!({
                    "title": new.title,
                    "head": new.head,
                    "base": new.base,
                    "body": new.body,
                    "maintainer_can_modify": false,
                });
                let p: Pull = self
                    .rest
                    .post(format!("/repos/{repo}/pulls"), Some(&body))
                    .await
                    .map_err(|e| failure(&format!("opening the PR for {}", new.head), &e))?;
                Ok(p.into())
            })
            .await
    }

    async fn set_status(
        &self,
        repo: &str,
        sha: &str,
        context: &str,
        state: crate::domain::GateState,
        description: &str,
    ) -> Result<(), Failure> {
        self.calls
            .time("github", "set_status", async {
                let _: serde_json::Value = self
                    .rest
                    .post(
                        format!("/repos/{repo}/statuses/{sha}"),
                        Some(&json!({
                            "state": state.as_str(),
                            "context": context,
                            "description": description,
                        })),
                    )
                    .await
                    .map_err(|e| failure(&format!("setting {context} on {sha}"), &e))?;
                Ok(())
            })
            .await
    }

    async fn add_labels(&self, repo: &str, number: u64, labels: &[String]) -> Result<(), Failure> {
        self.calls
            .time("github", "add_labels", async {
                let _: Vec<Label> = self
                    .rest
                    .post(
                        format!("/repos/{repo}/issues/{number}/labels"),
                        Some(&json!({ "labels": labels })),
                    )
                    .await
                    .map_err(|e| failure(&format!("labelling #{number}"), &e))?;
                Ok(())
            })
            .await
    }

    async fn pull(&self, repo: &str, number: u64) -> Result<PullFacts, Failure> {
        self.calls
            .time("github", "pull", async {
                let p: Pull = self
                    .read(
                        &format!("reading {repo}#{number}"),
                        &format!("/repos/{repo}/pulls/{number}"),
                        &[],
                    )
                    .await?;
                Ok(p.into())
            })
            .await
    }

    async fn reviews(&self, repo: &str, number: u64) -> Result<Vec<Review>, Failure> {
        self.calls
            .time("github", "reviews", async {
                let r: Vec<ReviewEntry> = self
                    .read(
                        &format!("reading the reviews of #{number}"),
                        &format!("/repos/{repo}/pulls/{number}/reviews"),
                        &[("per_page", "100")],
                    )
                    .await?;
                Ok(r.into_iter()
                    .map(|r| Review {
                        reviewer: r.user.map(|u| u.login).unwrap_or_default(),
                        state: r.state,
                        commit: r.commit_id.unwrap_or_default(),
                    })
                    .collect())
            })
            .await
    }

    async fn checks(&self, repo: &str, sha: &str) -> Result<Vec<CheckFacts>, Failure> {
        self.calls
            .time("github", "checks", async {
                let runs: CheckRuns = self
                    .read(
                        &format!("reading the check runs of {sha}"),
                        &format!("/repos/{repo}/commits/{sha}/check-runs"),
                        &[("filter", "latest"), ("per_page", "100")],
                    )
                    .await?;
                let status: CombinedStatus = self
                    .read(
                        &format!("reading the statuses of {sha}"),
                        &format!("/repos/{repo}/commits/{sha}/status"),
                        &[("per_page", "100")],
                    )
                    .await?;
                let mut out: Vec<CheckFacts> = runs
                    .check_runs
                    .into_iter()
                    .map(|r| CheckFacts {
                        state: run_state(&r.status, r.conclusion.as_deref()),
                        detail: match r.conclusion {
                            Some(c) => format!("{} ({c})", r.status),
                            None => r.status,
                        } + &r.html_url.map(|u| format!(" {u}")).unwrap_or_default(),
                        name: r.name,
                    })
                    .collect();
                out.extend(status.statuses.into_iter().map(|s| CheckFacts {
                    state: status_state(&s.state),
                    detail: match s.description {
                        Some(d) if !d.is_empty() => format!("{}: {d}", s.state),
                        _ => s.state.clone(),
                    },
                    name: s.context,
                }));
                Ok(out)
            })
            .await
    }

    async fn revert_pull(
        &self,
        pull_node_id: &str,
        title: &str,
        body: &str,
    ) -> Result<PullFacts, Failure> {
        self.calls
            .time("github", "revert_pull", async {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Data {
                revert_pull_request: Payload,
            }
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Payload {
                revert_pull_request: Option<Created>,
            }
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Created {
                number: u64,
                id: String,
                url: String,
                title: String,
                head_ref_name: String,
                head_ref_oid: String,
                base_ref_name: String,
            }
            let query = "mutation Revert($input: RevertPullRequestInput!) { \
                         revertPullRequest(input: $input) { revertPullRequest { \
                         number id url title headRefName headRefOid baseRefName } } }";
            let payload = json!({
                "query": query,
                "variables": { "input": { "pullRequestId": pull_node_id, "title": title, "body": body } },
            });
            let d: Data = self
                .graphql
                .graphql(&payload)
                .await
                .map_err(|e| failure("opening the revert PR", &e))?;
            let c = d.revert_pull_request.revert_pull_request.ok_or_else(|| {
                Failure::from(
                    "opening the revert PR: GitHub answered without a pull request".to_string(),
                )
            })?;
            Ok(PullFacts {
                number: c.number,
                node_id: c.id,
                url: c.url,
                title: c.title,
                open: true,
                head_ref: c.head_ref_name,
                head_sha: c.head_ref_oid,
                base_ref: c.base_ref_name,
                ..PullFacts::default()
            })
            })
            .await
    }

    async fn team_member(&self, org: &str, team: &str, user: &str) -> Result<bool, Failure> {
        self.calls
            .time("github", "team_member", async {
                let route = format!(
                    "/orgs/{}/teams/{}/memberships/{}",
                    seg(org),
                    seg(team),
                    seg(user)
                );
                match self.rest.get::<Membership, _, _>(&route, None::<&()>).await {
                    Ok(m) => Ok(m.state == "active"),
                    Err(e) if describe(&e).0 == Some(404) => Ok(false),
                    Err(e) => Err(failure(&format!("team membership {org}/{team}"), &e)),
                }
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> GitHubSettings {
        GitHubSettings {
            url: url.into(),
            graphql_url: None,
            token: None,
            webhook_secret: None,
            timeout: Duration::from_secs(1),
            lane: ForgeSettings::default(),
            teams: Default::default(),
            teams_refresh: Duration::from_secs(60),
        }
    }

    #[test]
    fn graphql_endpoint_follows_the_rest_base() {
        assert_eq!(
            settings("https://api.github.com").graphql(),
            "https://api.github.com/graphql"
        );
        assert_eq!(
            settings("https://ghe.example/api/v3/").graphql(),
            "https://ghe.example/api/graphql"
        );
    }

    #[test]
    fn a_required_check_passes_only_on_success() {
        assert_eq!(run_state("completed", Some("success")), CheckState::Passed);
        for c in ["failure", "skipped", "neutral", "cancelled", "timed_out"] {
            assert_eq!(run_state("completed", Some(c)), CheckState::Failed, "{c}");
        }
        assert_eq!(run_state("in_progress", None), CheckState::Pending);
        assert_eq!(status_state("error"), CheckState::Failed);
        assert_eq!(status_state("pending"), CheckState::Pending);
    }

    #[test]
    fn branch_names_are_one_path_segment() {
        assert_eq!(seg("hotfix/INC-1 x"), "hotfix%2FINC-1%20x");
    }
}

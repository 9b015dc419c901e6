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
    /// Token of a platform-admin bot (a secret: from env or file); the
    /// small set-up's alternative to `app`.
    pub token: Option<String>,
    /// The GitHub App hotfixd signs in as (installation tokens, minted per
    /// account); never together with `token`.
    pub app: Option<GitHubApp>,
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

/// A GitHub App: its id and private key. hotfixd signs a JWT with the key
/// (RS256, nine minutes) to find the App's installation on a repository's
/// owner and to mint that installation's token (an hour), used for every
/// call on the account and minted again five minutes before it expires.
#[derive(Clone)]
pub struct GitHubApp {
    pub id: u64,
    /// The App's private key, PEM (a secret: from env or file).
    pub private_key: String,
}

impl std::fmt::Debug for GitHubApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHubApp")
            .field("id", &self.id)
            .field("private_key", &"<redacted>")
            .finish()
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
    credentials: Credentials,
    /// Counted in /metrics.
    calls: crate::metrics::Calls,
}

/// The REST client and the one rooted at the GraphQL endpoint's directory
/// (octocrab posts `/graphql`), signed alike.
#[derive(Clone)]
struct Clients {
    rest: Octocrab,
    graphql: Octocrab,
}

/// What signs hotfixd's calls.
enum Credentials {
    /// A bot's token for every account (or none: public reads only).
    Token(Box<Clients>),
    /// A GitHub App's installation token for each account.
    App(Box<AppAuth>),
}

/// A GitHub App's installations, found and signed in to on first use.
struct AppAuth {
    id: u64,
    /// Signs with the App's JWT (finds installations, mints their tokens).
    jwt: Octocrab,
    rest_base: String,
    graphql_base: String,
    timeout: Duration,
    /// By account (lowercased owner or org).
    installations: std::sync::Mutex<std::collections::HashMap<String, Installation>>,
}

#[derive(Clone)]
struct Installation {
    id: u64,
    expires_at: chrono::DateTime<chrono::Utc>,
    clients: Clients,
}

/// An installation token is minted again this long before it expires, so
/// that no call goes out with one about to lapse.
const TOKEN_MARGIN: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// The account a call acts on: the repository's owner, or an org.
#[derive(Clone, Copy)]
enum On<'a> {
    Repo(&'a str),
    Org(&'a str),
}

impl On<'_> {
    fn account(&self) -> String {
        match self {
            On::Repo(repo) => split(repo).0,
            On::Org(org) => org,
        }
        .to_ascii_lowercase()
    }
}

fn client(
    base: &str,
    timeout: Duration,
    token: Option<&str>,
    what: &str,
) -> Result<Octocrab, String> {
    let mut b = Octocrab::builder()
        .base_uri(base)
        .map_err(|e| format!("{what}: {e}"))?
        .set_connect_timeout(Some(timeout))
        .set_read_timeout(Some(timeout))
        .set_write_timeout(Some(timeout));
    if let Some(t) = token {
        b = b.personal_token(t.to_string());
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
        let credentials = match &settings.app {
            None => Credentials::Token(Box::new(Clients {
                rest: client(
                    &settings.url,
                    settings.timeout,
                    settings.token.as_deref(),
                    "github.url",
                )?,
                graphql: client(
                    graphql_base,
                    settings.timeout,
                    settings.token.as_deref(),
                    "github.graphql_url",
                )?,
            })),
            Some(app) => {
                let key = octocrab::EncodingKey::from_rsa_pem(app.private_key.as_bytes()).map_err(
                    |e| format!("github app private key: not an RSA private key in PEM ({e})"),
                )?;
                let jwt = Octocrab::builder()
                    .base_uri(&settings.url)
                    .map_err(|e| format!("github.url: {e}"))?
                    .set_connect_timeout(Some(settings.timeout))
                    .set_read_timeout(Some(settings.timeout))
                    .set_write_timeout(Some(settings.timeout))
                    .app(octocrab::models::AppId(app.id), key)
                    .build()
                    .map_err(|e| format!("building the GitHub App client: {e}"))?;
                Credentials::App(Box::new(AppAuth {
                    id: app.id,
                    jwt,
                    rest_base: settings.url.clone(),
                    graphql_base: graphql_base.to_string(),
                    timeout: settings.timeout,
                    installations: Default::default(),
                }))
            }
        };
        Ok(GitHub {
            credentials,
            calls: Default::default(),
        })
    }

    /// The clients that act on `on`'s account: the token's, or the App's
    /// installation there (found and its token minted when there is none
    /// yet or it expires within [`TOKEN_MARGIN`]).
    async fn clients(&self, on: On<'_>) -> Result<Clients, Failure> {
        let app = match &self.credentials {
            Credentials::Token(c) => return Ok((**c).clone()),
            Credentials::App(app) => app,
        };
        let account = on.account();
        let known = app.installed(&account);
        if let Some(i) = &known
            && i.expires_at - chrono::Utc::now() > TOKEN_MARGIN
        {
            return Ok(i.clients.clone());
        }
        let id = match known {
            Some(i) => i.id,
            None => app.find(on).await?,
        };
        let installation = app.sign_in(id, &account).await?;
        let clients = installation.clients.clone();
        app.installations
            .lock()
            .expect("installations lock")
            .insert(account, installation);
        Ok(clients)
    }

    /// `what` failed on `on`'s account; a 401 means the installation token
    /// was revoked: it is minted again at the next call, and the failure is
    /// one worth sending again.
    fn failed(&self, on: On<'_>, what: &str, e: &octocrab::Error) -> Failure {
        if describe(e).0 == Some(401)
            && let Credentials::App(app) = &self.credentials
        {
            app.expire(&on.account());
            // Sent again, it goes with a token minted afresh.
            return Failure {
                transient: true,
                ..failure(what, e)
            };
        }
        failure(what, e)
    }
}

impl AppAuth {
    fn installed(&self, account: &str) -> Option<Installation> {
        let map = self.installations.lock().expect("installations lock");
        map.get(account).cloned()
    }

    /// The account's token is minted again at the next call (the
    /// installation is known).
    fn expire(&self, account: &str) {
        if let Some(i) = self
            .installations
            .lock()
            .expect("installations lock")
            .get_mut(account)
        {
            i.expires_at = chrono::DateTime::UNIX_EPOCH;
        }
    }

    fn forget(&self, account: &str) {
        self.installations
            .lock()
            .expect("installations lock")
            .remove(account);
    }

    /// The App's installation on `on`'s account.
    async fn find(&self, on: On<'_>) -> Result<u64, Failure> {
        #[derive(Deserialize)]
        struct Found {
            id: u64,
        }
        let route = match on {
            On::Repo(repo) => format!("/repos/{repo}/installation"),
            On::Org(org) => format!("/orgs/{}/installation", seg(org)),
        };
        let account = on.account();
        match self.jwt.get::<Found, _, _>(&route, None::<&()>).await {
            Ok(f) => Ok(f.id),
            Err(e) if describe(&e).0 == Some(404) => Err(Failure {
                message: format!(
                    "the GitHub App {} is not installed on {account}: install it there \
                     (README, \"GitHub App\"), or list the repository in \
                     github.manual_repositories",
                    self.id
                ),
                transient: false,
            }),
            Err(e) => Err(failure(
                &format!("finding the GitHub App's installation on {account}"),
                &e,
            )),
        }
    }

    /// Mints installation `id`'s token and the clients that use it.
    async fn sign_in(&self, id: u64, account: &str) -> Result<Installation, Failure> {
        #[derive(Deserialize)]
        struct Minted {
            token: String,
            expires_at: String,
        }
        let what = format!("minting the GitHub App's token for {account}");
        let minted: Minted = self
            .jwt
            .post(
                format!("/app/installations/{id}/access_tokens"),
                Some(&json!({})),
            )
            .await
            .map_err(|e| failure(&what, &e))?;
        let expires_at = chrono::DateTime::parse_from_rfc3339(&minted.expires_at)
            .map_err(|e| Failure {
                message: format!(
                    "{what}: expires_at '{}' is not a time: {e}",
                    minted.expires_at
                ),
                transient: false,
            })?
            .with_timezone(&chrono::Utc);
        let build = |base: &str, name: &str| {
            client(base, self.timeout, Some(&minted.token), name).map_err(Failure::from)
        };
        Ok(Installation {
            id,
            expires_at,
            clients: Clients {
                rest: build(&self.rest_base, "github.url")?,
                graphql: build(&self.graphql_base, "github.graphql_url")?,
            },
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
        on: On<'_>,
        what: &str,
        route: &str,
        query: &[(&str, &str)],
    ) -> Result<R, Failure> {
        super::with_retries(what, || async {
            let c = self.clients(on).await.map_err(|f| {
                if f.transient {
                    super::Attempt::Transient(f)
                } else {
                    super::Attempt::Final(f)
                }
            })?;
            c.rest
                .get::<R, _, _>(route, (!query.is_empty()).then_some(query))
                .await
                .map_err(|e| {
                    let f = self.failed(on, what, &e);
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
                let on = On::Repo(repo);
                let c = self.clients(on).await.map_err(MergeError::Failed)?;
                let res = c
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
                        _ => Err(MergeError::Failed(self.failed(on, "merge", &e))),
                    },
                }
            })
            .await
    }

    async fn is_merged(&self, repo: &str, pr: u64) -> Result<bool, Failure> {
        self.calls
            .time("github", "is_merged", async {
                let (owner, name) = split(repo);
                let on = On::Repo(repo);
                self.clients(on)
                    .await?
                    .rest
                    .pulls(owner, name)
                    .is_merged(pr)
                    .await
                    .map_err(|e| self.failed(on, "is the PR merged", &e))
            })
            .await
    }

    async fn compare(&self, repo: &str, base: &str, head: &str) -> Result<CommitFacts, Failure> {
        self.calls
            .time("github", "compare", async {
                let route = format!("/repos/{repo}/compare/{}...{}", seg(base), seg(head));
                let c: Comparison = self
                    .read(
                        On::Repo(repo),
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
                        On::Repo(repo),
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
                let on = On::Repo(repo);
                let p: Pull = self
                    .clients(on)
                    .await?
                    .rest
                    .post(format!("/repos/{repo}/pulls"), Some(&body))
                    .await
                    .map_err(|e| {
                        self.failed(on, &format!("opening the PR for {}", new.head), &e)
                    })?;
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
                let on = On::Repo(repo);
                let _: serde_json::Value = self
                    .clients(on)
                    .await?
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
                    .map_err(|e| self.failed(on, &format!("setting {context} on {sha}"), &e))?;
                Ok(())
            })
            .await
    }

    async fn add_labels(&self, repo: &str, number: u64, labels: &[String]) -> Result<(), Failure> {
        self.calls
            .time("github", "add_labels", async {
                let on = On::Repo(repo);
                let _: Vec<Label> = self
                    .clients(on)
                    .await?
                    .rest
                    .post(
                        format!("/repos/{repo}/issues/{number}/labels"),
                        Some(&json!({ "labels": labels })),
                    )
                    .await
                    .map_err(|e| self.failed(on, &format!("labelling #{number}"), &e))?;
                Ok(())
            })
            .await
    }

    async fn pull(&self, repo: &str, number: u64) -> Result<PullFacts, Failure> {
        self.calls
            .time("github", "pull", async {
                let p: Pull = self
                    .read(
                        On::Repo(repo),
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
                        On::Repo(repo),
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
                        On::Repo(repo),
                        &format!("reading the check runs of {sha}"),
                        &format!("/repos/{repo}/commits/{sha}/check-runs"),
                        &[("filter", "latest"), ("per_page", "100")],
                    )
                    .await?;
                let status: CombinedStatus = self
                    .read(
                        On::Repo(repo),
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
        repo: &str,
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
            let on = On::Repo(repo);
            let d: Data = self
                .clients(on)
                .await?
                .graphql
                .graphql(&payload)
                .await
                .map_err(|e| self.failed(on, "opening the revert PR", &e))?;
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

    /// Installed, removed, suspended, its permissions changed: the next
    /// call on the account finds the installation and mints its token.
    fn installation_changed(&self, account: &str) {
        if let Credentials::App(app) = &self.credentials {
            app.forget(&account.to_ascii_lowercase());
        }
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
                let on = On::Org(org);
                let c = self.clients(on).await?;
                match c.rest.get::<Membership, _, _>(&route, None::<&()>).await {
                    Ok(m) => Ok(m.state == "active"),
                    Err(e) if describe(&e).0 == Some(404) => Ok(false),
                    Err(e) => Err(self.failed(on, &format!("team membership {org}/{team}"), &e)),
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
            app: None,
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

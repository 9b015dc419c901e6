//! The services hotfixd talks to, each behind a trait so that tests and
//! drills can hand in something else.

pub mod argocd;
pub mod github;
pub mod pagerduty;
pub mod prometheus;
pub mod siem;
pub mod slack;

use crate::domain::notify::ChatChannel;

/// Posts a message to one of the runbook's chat channels.
#[async_trait::async_trait]
pub trait Chat: Send + Sync + 'static {
    /// Delivers `text`, retrying transient failures; the error says why the
    /// last attempt failed.
    async fn post(&self, channel: ChatChannel, text: &str) -> Result<(), String>;
}

/// Evaluates a PromQL instant query to one number.
#[async_trait::async_trait]
pub trait Metrics: Send + Sync + 'static {
    async fn instant(&self, query: &str) -> Result<f64, String>;
}

/// Why a sync could not be started.
#[derive(Debug, Clone, PartialEq)]
pub enum SyncError {
    /// Argo CD is already running an operation on the app: wait, then retry.
    InProgress,
    Failed(String),
}

/// What Argo CD reports about an application.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppStatus {
    /// Synced, OutOfSync, Unknown
    pub sync: String,
    /// Healthy, Progressing, Degraded, ...
    pub health: String,
    pub revision: String,
    /// The last operation's phase: Running, Succeeded, Failed, Error, ...
    pub phase: String,
    pub message: String,
}

/// Deploys an application (Argo CD).
#[async_trait::async_trait]
pub trait Deployer: Send + Sync + 'static {
    /// Starts a sync with prune to `revision`; `dry_run` asks Argo CD to
    /// only simulate it (drills).
    async fn sync(&self, app: &str, revision: &str, dry_run: bool) -> Result<(), SyncError>;
    async fn status(&self, app: &str) -> Result<AppStatus, String>;
}

/// Why GitHub did not merge.
#[derive(Debug, Clone, PartialEq)]
pub enum MergeError {
    /// The PR's head is no longer the approved SHA (409).
    HeadMoved(String),
    /// GitHub will not merge it as it is (405), e.g. a conflict.
    NotMergeable(String),
    Failed(Failure),
}

/// The head commit of a branch and its diff against the base.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommitFacts {
    pub sha: String,
    pub message: String,
    pub files: Vec<crate::domain::ChangedFile>,
    /// Commits on the branch that the base lacks, and the other way round.
    pub ahead_by: u32,
    pub behind_by: u32,
}

/// What hotfixd needs to know of a pull request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PullFacts {
    pub number: u64,
    /// GraphQL node id (the revert mutation takes it).
    pub node_id: String,
    pub url: String,
    pub title: String,
    pub open: bool,
    pub author: String,
    pub labels: Vec<String>,
    pub head_ref: String,
    pub head_sha: String,
    pub base_ref: String,
    pub merged: bool,
    pub merge_commit_sha: String,
}

/// A pull request to open.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPull {
    pub title: String,
    pub head: String,
    pub base: String,
    pub body: String,
}

pub use crate::domain::{CheckFacts, CheckState, Review};

/// Where the code lives (GitHub). Errors are human-readable and carry the
/// service's own message.
#[async_trait::async_trait]
pub trait CodeHost: Send + Sync + 'static {
    /// Squash-merges `pr` only if its head is `sha`; returns the merge commit.
    async fn merge(
        &self,
        repo: &str,
        pr: u64,
        sha: &str,
        title: &str,
    ) -> Result<String, MergeError>;
    async fn is_merged(&self, repo: &str, pr: u64) -> Result<bool, Failure>;
    /// The head commit of `head` and the diff of `base...head`.
    async fn compare(&self, repo: &str, base: &str, head: &str) -> Result<CommitFacts, Failure>;
    /// The open PR whose head is `branch` of the repository itself, if any.
    async fn find_open_pull(&self, repo: &str, branch: &str) -> Result<Option<PullFacts>, Failure>;
    async fn create_pull(&self, repo: &str, new: &NewPull) -> Result<PullFacts, Failure>;
    async fn add_labels(&self, repo: &str, number: u64, labels: &[String]) -> Result<(), Failure>;
    async fn pull(&self, repo: &str, number: u64) -> Result<PullFacts, Failure>;
    async fn reviews(&self, repo: &str, number: u64) -> Result<Vec<Review>, Failure>;
    /// Check runs and commit statuses of `sha`.
    async fn checks(&self, repo: &str, sha: &str) -> Result<Vec<CheckFacts>, Failure>;
    /// Opens the PR that reverts a merged PR (GraphQL `revertPullRequest`).
    async fn revert_pull(
        &self,
        repo: &str,
        pull_node_id: &str,
        title: &str,
        body: &str,
    ) -> Result<PullFacts, Failure>;
    /// GitHub says the App's installation on `account` changed: signed in
    /// to again at the next call (nothing to do with a token).
    fn installation_changed(&self, _account: &str) {}
    /// Is `user` an active member of `org`'s team `team`?
    async fn team_member(&self, org: &str, team: &str, user: &str) -> Result<bool, Failure>;
    /// Sets the commit status `context` of `sha` (the latest per context
    /// is what GitHub shows and what a ruleset requires).
    async fn set_status(
        &self,
        repo: &str,
        sha: &str,
        context: &str,
        state: crate::domain::GateState,
        description: &str,
    ) -> Result<(), Failure>;
}

/// An outbound delivery (the audit sink's, PagerDuty's) the service did not
/// take: why, and whether sending it again as it is may work (no answer,
/// 429, 5xx) or the service refused it (another status).
#[derive(Debug)]
pub struct NotTaken {
    pub transient: bool,
    pub why: String,
}

/// An HTTP client for `service`'s deliveries, each bounded by `timeout`.
pub fn delivery_client(
    service: &str,
    timeout: std::time::Duration,
) -> Result<reqwest::Client, String> {
    install_crypto_provider();
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| format!("building the {service} HTTP client: {e}"))
}

/// Sends `request`: Ok on a 2xx; otherwise the status and the first 300
/// characters of the service's answer, never the URL (it may carry a key).
pub async fn deliver(request: reqwest::RequestBuilder) -> Result<(), NotTaken> {
    let resp = request.send().await.map_err(|e| NotTaken {
        transient: true,
        why: format!("request failed: {}", e.without_url()),
    })?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let body = resp.text().await.unwrap_or_default();
    let body: String = body.trim().chars().take(300).collect();
    Err(NotTaken {
        transient: status.as_u16() == 429 || status.is_server_error(),
        why: format!("{} {body}", status.as_u16()),
    })
}

/// A failed call to an outside service, in words that name the service and
/// carry its own message.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub message: String,
    /// The service could not be reached or answered 5xx/429 (after the
    /// retries): the step may succeed later, so the caller hears
    /// UNAVAILABLE, not a refusal.
    pub transient: bool,
}

impl Failure {
    pub fn transient(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            transient: true,
        }
    }
}

/// A failure that retrying will not mend (a 4xx, an answer that makes no
/// sense).
impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure {
            message,
            transient: false,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// How a failed outbound call ended.
pub enum Attempt<E> {
    /// May succeed if tried again (network error, 5xx, 429).
    Transient(E),
    /// Will not get better by retrying (4xx, a bad answer).
    Final(E),
}

/// Tries beyond the first for a transient failure.
pub const RETRIES: u32 = 3;
/// The first wait between tries; doubled each time.
pub const BACKOFF: std::time::Duration = std::time::Duration::from_millis(200);

/// Runs `call`, retrying transient failures `RETRIES` times with
/// exponential backoff. Only for calls that are safe to repeat (reads, or
/// writes the service deduplicates); other writes are reconciled instead.
pub async fn with_retries<T, E, F, Fut>(what: &str, mut call: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Attempt<E>>>,
    E: std::fmt::Display,
{
    let mut wait = BACKOFF;
    let mut tries = 0;
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(Attempt::Final(e)) => return Err(e),
            Err(Attempt::Transient(e)) if tries >= RETRIES => return Err(e),
            Err(Attempt::Transient(e)) => {
                tries += 1;
                tracing::warn!(%what, error = %e, attempt = tries, "transient failure; retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
    }
}

/// Transient: no answer, a 5xx or a 429.
pub fn transient_status(status: u16) -> bool {
    status == 429 || status >= 500
}

/// Installs rustls' ring provider once, for every outbound HTTPS client.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    async fn run(fail_with: fn(u32) -> Option<Attempt<String>>) -> (Result<u32, String>, u32) {
        let calls = AtomicU32::new(0);
        let r = with_retries("test", || async {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            match fail_with(n) {
                Some(e) => Err(e),
                None => Ok(n),
            }
        })
        .await;
        (r, calls.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn transient_failures_are_retried_until_success() {
        let (r, calls) = run(|n| (n < 3).then(|| Attempt::Transient(format!("503 #{n}")))).await;
        assert_eq!((r, calls), (Ok(3), 3));
    }

    #[tokio::test]
    async fn a_final_failure_is_not_retried() {
        let (r, calls) = run(|_| Some(Attempt::Final("404".into()))).await;
        assert_eq!((r, calls), (Err("404".into()), 1));
    }

    #[tokio::test]
    async fn retries_are_bounded() {
        let (r, calls) = run(|n| Some(Attempt::Transient(format!("503 #{n}")))).await;
        assert_eq!(
            (r, calls),
            (Err(format!("503 #{}", RETRIES + 1)), RETRIES + 1)
        );
    }
}

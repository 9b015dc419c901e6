//! The services hotfixd talks to, each behind a trait so that tests and
//! drills can hand in something else.

pub mod argocd;
pub mod github;
pub mod prometheus;
pub mod slack;

use crate::domain::notify::ChatChannel;

/// Posts a message to one of the runbook's chat channels.
#[tonic::async_trait]
pub trait Chat: Send + Sync + 'static {
    /// Delivers `text`, retrying transient failures; the error says why the
    /// last attempt failed.
    async fn post(&self, channel: ChatChannel, text: &str) -> Result<(), String>;
}

/// Evaluates a PromQL instant query to one number.
#[tonic::async_trait]
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
#[tonic::async_trait]
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
    Failed(String),
}

/// Where the code lives (GitHub).
#[tonic::async_trait]
pub trait CodeHost: Send + Sync + 'static {
    /// Squash-merges `pr` only if its head is `sha`; returns the merge commit.
    async fn merge(
        &self,
        repo: &str,
        pr: u64,
        sha: &str,
        title: &str,
    ) -> Result<String, MergeError>;
    async fn is_merged(&self, repo: &str, pr: u64) -> Result<bool, String>;
}

/// Installs rustls' ring provider once, for every outbound HTTPS client.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

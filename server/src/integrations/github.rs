//! GitHub (octocrab): the admin merge, pinned to the approved SHA, and the
//! "was it merged?" question that crash recovery asks.
//!
//! The base URL is configurable for GitHub Enterprise and tests.

use std::time::Duration;

use octocrab::Octocrab;

use super::{CodeHost, MergeError};

#[derive(Debug, Clone)]
pub struct GitHubSettings {
    /// API base URL: https://api.github.com, or GHE's https://HOST/api/v3.
    pub url: String,
    /// Token of a platform-admin bot (a secret: from env or file).
    pub token: Option<String>,
    pub timeout: Duration,
}

pub struct GitHub {
    client: Octocrab,
}

impl GitHub {
    pub fn new(settings: GitHubSettings) -> Result<GitHub, String> {
        super::install_crypto_provider();
        let mut b = Octocrab::builder()
            .base_uri(settings.url.as_str())
            .map_err(|e| format!("github.url: {e}"))?
            .set_connect_timeout(Some(settings.timeout))
            .set_read_timeout(Some(settings.timeout))
            .set_write_timeout(Some(settings.timeout));
        if let Some(t) = settings.token {
            b = b.personal_token(t);
        }
        let client = b
            .build()
            .map_err(|e| format!("building the GitHub client: {e}"))?;
        Ok(GitHub { client })
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
        other => (None, other.to_string()),
    }
}

#[tonic::async_trait]
impl CodeHost for GitHub {
    async fn merge(
        &self,
        repo: &str,
        pr: u64,
        sha: &str,
        title: &str,
    ) -> Result<String, MergeError> {
        let (owner, name) = split(repo);
        let res = self
            .client
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
                m.message.unwrap_or_else(|| "GitHub did not merge".into()),
            )),
            Err(e) => match describe(&e) {
                (Some(409), msg) => Err(MergeError::HeadMoved(msg)),
                (Some(405), msg) => Err(MergeError::NotMergeable(msg)),
                (Some(code), msg) => {
                    Err(MergeError::Failed(format!("GitHub answered {code}: {msg}")))
                }
                (None, msg) => Err(MergeError::Failed(format!("GitHub request failed: {msg}"))),
            },
        }
    }

    async fn is_merged(&self, repo: &str, pr: u64) -> Result<bool, String> {
        let (owner, name) = split(repo);
        self.client
            .pulls(owner, name)
            .is_merged(pr)
            .await
            .map_err(|e| describe(&e).1)
    }
}

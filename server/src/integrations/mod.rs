//! The services hotfixd talks to, each behind a trait so that tests and
//! drills can hand in something else.

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

/// Installs rustls' ring provider once, for every outbound HTTPS client.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

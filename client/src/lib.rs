//! hotfixctl's library: a connected, authenticated client for the
//! `hotfix.v1` services (shared by the CLI and the end-to-end tests), and
//! the CLI itself (`cli::run`), so tests drive exactly what users run.
#![forbid(unsafe_code)]

pub mod cli;
mod render;
mod requests;

use hotfix_api::pb::admin_service_client::AdminServiceClient;
use hotfix_api::pb::audit_service_client::AuditServiceClient;
use hotfix_api::pb::event_service_client::EventServiceClient;
use hotfix_api::pb::lane_service_client::LaneServiceClient;
use hotfix_api::pb::policy_service_client::PolicyServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

pub use hotfix_api::pb;

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct BearerAuth {
    header: Option<MetadataValue<Ascii>>,
}

impl BearerAuth {
    pub fn new(token: Option<&str>) -> Result<BearerAuth, ConnectError> {
        let header = token
            .map(|t| {
                format!("Bearer {t}")
                    .parse()
                    .map_err(|_| ConnectError::Token)
            })
            .transpose()?;
        Ok(BearerAuth { header })
    }
}

impl Interceptor for BearerAuth {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(h) = &self.header {
            req.metadata_mut().insert("authorization", h.clone());
        }
        Ok(req)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("invalid endpoint '{0}': {1}")]
    Endpoint(String, String),
    /// The endpoint, why, and what would help.
    #[error("cannot connect to {0}: {1} ({2})")]
    Connect(String, String, String),
    #[error("the token contains characters that cannot be sent in a header")]
    Token,
    #[error("tls: {0}")]
    Tls(String),
}

pub type Authed = InterceptedService<Channel, BearerAuth>;

/// Clients for the three services over one channel.
#[derive(Clone)]
pub struct Client {
    pub lane: LaneServiceClient<Authed>,
    pub policy: PolicyServiceClient<Authed>,
    pub events: EventServiceClient<Authed>,
    pub audit: AuditServiceClient<Authed>,
    pub admin: AdminServiceClient<Authed>,
    /// The standard gRPC health service (needs no token).
    pub health: tonic_health::pb::health_client::HealthClient<Channel>,
}

/// TLS for an `https://` endpoint: the CA that signed hotfixd's
/// certificate, and optionally a client certificate (mutual TLS).
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    pub ca: Option<std::path::PathBuf>,
    pub cert: Option<std::path::PathBuf>,
    pub key: Option<std::path::PathBuf>,
}

fn read(what: &str, p: &std::path::Path) -> Result<Vec<u8>, ConnectError> {
    std::fs::read(p).map_err(|e| ConnectError::Tls(format!("{what} {}: {e}", p.display())))
}

impl Client {
    /// Connects to `endpoint` (e.g. `http://127.0.0.1:50051`) as the holder
    /// of `token`.
    pub async fn connect(endpoint: &str, token: Option<&str>) -> Result<Client, ConnectError> {
        Self::connect_with(endpoint, token, &TlsFiles::default()).await
    }

    /// Like `connect`; an `https://` endpoint uses `tls`.
    pub async fn connect_with(
        endpoint: &str,
        token: Option<&str>,
        tls: &TlsFiles,
    ) -> Result<Client, ConnectError> {
        let mut ep = Endpoint::from_shared(endpoint.to_string())
            .map_err(|e| ConnectError::Endpoint(endpoint.to_string(), e.to_string()))?
            .connect_timeout(std::time::Duration::from_secs(5));
        if endpoint.starts_with("https://") {
            // The CA given, or else the system's trust store (hotfixd
            // behind a certificate from the organisation's usual CA).
            let mut cfg = match &tls.ca {
                Some(ca) => tonic::transport::ClientTlsConfig::new().ca_certificate(
                    tonic::transport::Certificate::from_pem(read("--ca-file", ca)?),
                ),
                None => tonic::transport::ClientTlsConfig::new().with_native_roots(),
            };
            match (&tls.cert, &tls.key) {
                (Some(c), Some(k)) => {
                    cfg = cfg.identity(tonic::transport::Identity::from_pem(
                        read("--cert", c)?,
                        read("--key", k)?,
                    ));
                }
                (None, None) => {}
                _ => return Err(ConnectError::Tls("--cert and --key go together".into())),
            }
            ep = ep
                .tls_config(cfg)
                .map_err(|e| ConnectError::Tls(source_chain(&e)))?;
        } else if tls.ca.is_some() || tls.cert.is_some() {
            return Err(ConnectError::Tls(format!(
                "--ca-file/--cert need an https:// endpoint, not {endpoint}"
            )));
        }
        let channel = ep.connect().await.map_err(|e| {
            let why = source_chain(&e);
            let hint = connect_hint(&why, tls);
            ConnectError::Connect(endpoint.to_string(), why, hint)
        })?;
        let auth = BearerAuth::new(token)?;
        Ok(Client {
            lane: LaneServiceClient::with_interceptor(channel.clone(), auth.clone()),
            policy: PolicyServiceClient::with_interceptor(channel.clone(), auth.clone()),
            events: EventServiceClient::with_interceptor(channel.clone(), auth.clone()),
            audit: AuditServiceClient::with_interceptor(channel.clone(), auth.clone()),
            admin: AdminServiceClient::with_interceptor(channel.clone(), auth),
            health: tonic_health::pb::health_client::HealthClient::new(channel),
        })
    }
}

/// A warning when `token` would cross the network in plain text: an
/// `http://` endpoint that is not on this machine. Anyone on the path
/// could read the token and act as its holder.
pub fn plaintext_token_warning(endpoint: &str, token: Option<&str>) -> Option<String> {
    token.filter(|t| !t.is_empty())?;
    let uri: tonic::codegen::http::Uri = endpoint.parse().ok()?;
    if uri.scheme_str() != Some("http") {
        return None;
    }
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    (!loopback).then(|| {
        format!(
            "warning: sending your token in plain text to {endpoint}, which is not this \
             machine: anyone on the path can read it and act as you; use an https:// \
             endpoint with --ca-file"
        )
    })
}

/// What would help after a failed connection that says `why`.
fn connect_hint(why: &str, tls: &TlsFiles) -> String {
    if why.contains("certificate") {
        if tls.ca.is_some() {
            "hotfixd's TLS certificate is not signed by --ca-file's CA, or does not name the \
             endpoint's host"
                .into()
        } else {
            "the system's trust store does not trust hotfixd's TLS certificate: give --ca-file \
             FILE (the CA that signed it), or add that CA to the system's store"
                .into()
        }
    } else {
        "is hotfixd running? try `hotfixd --dev`".into()
    }
}

/// `e` and its sources, each said once: hyper and tonic repeat their
/// source's text in their own ("tcp connect error: tcp connect error: …").
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !s.ends_with(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::plaintext_token_warning as warn;

    #[test]
    fn a_token_in_plain_text_off_this_machine_is_warned_about() {
        let t = Some("secret");
        for ep in [
            "http://hotfixd.internal:50051",
            "http://10.1.2.3:50051",
            "http://[2001:db8::1]:50051",
        ] {
            let w = warn(ep, t).unwrap_or_else(|| panic!("{ep}: no warning"));
            assert!(w.contains(ep) && w.contains("plain text"), "{w}");
            assert!(
                !w.contains("secret"),
                "the warning does not repeat the token"
            );
        }
        for ep in [
            "http://127.0.0.1:50051",
            "http://localhost:50051",
            "http://[::1]:50051",
            "https://hotfixd.internal:50051",
        ] {
            assert_eq!(warn(ep, t), None, "{ep}");
        }
        assert_eq!(warn("http://hotfixd.internal:50051", None), None);
    }
}

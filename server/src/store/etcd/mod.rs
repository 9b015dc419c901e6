//! etcd, for the replicated store engine: its v3 API as tonic clients,
//! generated from etcd's own protos (`server/proto/etcd/`, compiled by
//! `server/build.rs` with protox), and the engine built on them.

pub mod election;
pub mod engine;
mod group;
pub mod keyspace;
pub mod restore;

pub use engine::EtcdStore;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::error::{Error, Result};
use api::etcdserverpb::{AuthenticateRequest, auth_client::AuthClient};

/// How to reach etcd: where, with what TLS, as whom.
#[derive(Clone, Default)]
pub struct EtcdOptions {
    /// Client URLs (http:// or https://).
    pub endpoints: Vec<String>,
    /// CA (PEM) of etcd's server certificates (None: the system's roots).
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate and key (PEM), for etcd's mutual TLS.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    /// User and password, when etcd's authentication is on.
    pub user: Option<(String, String)>,
    /// The deadline of one request.
    pub timeout: Duration,
}

impl std::fmt::Debug for EtcdOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdOptions")
            .field("endpoints", &self.endpoints)
            .field("ca", &self.ca_pem.is_some())
            .field("client_certificate", &self.identity.is_some())
            .field("user", &self.user.as_ref().map(|(u, _)| u))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A channel to every endpoint of the cluster (requests go to one that
/// answers), and the credentials each request carries.
#[derive(Clone)]
pub struct Connection {
    pub channel: Channel,
    /// The deadline of one request (a range, a transaction).
    pub timeout: Duration,
    user: Option<(String, String)>,
    /// etcd's auth token for `user`, renewed when etcd says it expired.
    token: Arc<RwLock<Option<tonic::metadata::AsciiMetadataValue>>>,
}

impl Connection {
    /// `msg` as a request carrying the auth token, if any.
    pub fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        if let Some(t) = self.token.read().expect("token lock").clone() {
            r.metadata_mut().insert("token", t);
        }
        r
    }

    /// Gets a new auth token for the user (nothing without one).
    pub async fn authenticate(&self) -> Result<()> {
        let Some((name, password)) = self.user.clone() else {
            return Ok(());
        };
        let req = AuthenticateRequest {
            name: name.clone(),
            password,
        };
        let answer = tokio::time::timeout(
            self.timeout,
            AuthClient::new(self.channel.clone()).authenticate(req),
        )
        .await;
        let token = match answer {
            Ok(Ok(r)) => r.into_inner().token,
            Ok(Err(s)) if s.code() == tonic::Code::InvalidArgument => {
                return Err(Error::Storage(format!(
                    "etcd refused user '{name}' (--etcd-user / --etcd-password): {}",
                    s.message()
                )));
            }
            Ok(Err(s)) => return Err(engine::unavailable("authentication", s.message())),
            Err(_) => return Err(engine::unavailable("authentication", "no answer in time")),
        };
        let value = token
            .parse()
            .map_err(|_| Error::Storage("etcd answered an auth token that is not ASCII".into()))?;
        *self.token.write().expect("token lock") = Some(value);
        Ok(())
    }

    /// One unary call within the deadline. An expired auth token is renewed
    /// and the call made once more; a call that never left (the endpoint
    /// it was sent to refused the connection: a member down) is made again
    /// on another, as etcd's own client does, until the deadline. Nothing
    /// else is retried here: a transaction that may have reached etcd is
    /// answered UNAVAILABLE, and its retry is the caller's, by request id.
    pub async fn call<M, T, F, Fut>(&self, what: &str, msg: M, mut f: F) -> Result<T>
    where
        M: Clone,
        F: FnMut(tonic::Request<M>) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut renewed = false;
        loop {
            match tokio::time::timeout_at(deadline, f(self.request(msg.clone()))).await {
                Ok(Ok(r)) => return Ok(r.into_inner()),
                Ok(Err(s)) if !renewed && self.user.is_some() && token_expired(&s) => {
                    renewed = true;
                    self.authenticate().await?;
                }
                Ok(Err(s)) if not_sent(&s) && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Ok(Err(s)) => return Err(engine::unavailable(what, s.message())),
                Err(_) => {
                    return Err(engine::unavailable(
                        what,
                        format!("no answer in {:?}", self.timeout),
                    ));
                }
            }
        }
    }
}

/// Whether a call failed before it was sent: the connection to the
/// endpoint it went to was refused.
pub fn not_sent(s: &tonic::Status) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(s);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        cause = e.source();
    }
    false
}

/// Whether etcd refused the request for its auth token (expired, or from
/// before a restart), which a new token fixes.
pub fn token_expired(s: &tonic::Status) -> bool {
    s.message().contains("invalid auth token") || s.code() == tonic::Code::Unauthenticated
}

/// Connects lazily (an etcd that is down shows in the first request), then
/// authenticates if a user is given.
pub async fn connect(options: &EtcdOptions) -> Result<Connection> {
    let timeout = options.timeout;
    if options.endpoints.is_empty() {
        return Err(Error::Storage(
            "--etcd-endpoints names no endpoint (e.g. http://10.0.0.1:2379)".into(),
        ));
    }
    let tls = (options.ca_pem.is_some() || options.identity.is_some()).then(|| {
        let mut tls = ClientTlsConfig::new();
        tls = match &options.ca_pem {
            Some(ca) => tls.ca_certificate(Certificate::from_pem(ca)),
            None => tls.with_enabled_roots(),
        };
        if let Some((cert, key)) = &options.identity {
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        tls
    });
    let mut list = Vec::new();
    for e in &options.endpoints {
        let bad = |why: String| Error::Storage(format!("--etcd-endpoints '{e}': {why}"));
        if !(e.starts_with("http://") || e.starts_with("https://")) {
            return Err(bad("must start with http:// or https://".into()));
        }
        let mut ep = Endpoint::from_shared(e.clone())
            .map_err(|err| bad(err.to_string()))?
            .connect_timeout(timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(timeout)
            .keep_alive_while_idle(true);
        if e.starts_with("https://") {
            let tls = tls
                .clone()
                .unwrap_or_else(|| ClientTlsConfig::new().with_enabled_roots());
            ep = ep.tls_config(tls).map_err(|err| bad(err.to_string()))?;
        } else if tls.is_some() {
            return Err(bad(
                "--etcd-ca-file or --etcd-cert-file is given, so the endpoint must be https://"
                    .into(),
            ));
        }
        list.push(ep);
    }
    let channel = if list.len() == 1 {
        list.remove(0).connect_lazy()
    } else {
        Channel::balance_list(list.into_iter())
    };
    let conn = Connection {
        channel,
        timeout,
        user: options.user.clone(),
        token: Arc::default(),
    };
    conn.authenticate().await?;
    Ok(conn)
}
/// The generated packages; they name each other as `super::…`, so they
/// stand side by side here.
#[allow(clippy::all, missing_docs)]
pub mod api {
    /// `etcdserverpb`: KV, Watch, Lease, Cluster, Maintenance, Auth.
    pub mod etcdserverpb {
        tonic::include_proto!("etcdserverpb");
    }
    /// `mvccpb`: keys, values and events.
    pub mod mvccpb {
        tonic::include_proto!("mvccpb");
    }
    /// `authpb`: users, roles and permissions.
    pub mod authpb {
        tonic::include_proto!("authpb");
    }
    /// `v3electionpb`: leader election on a lease.
    pub mod v3electionpb {
        tonic::include_proto!("v3electionpb");
    }
    /// `v3lockpb`: locks on a lease.
    pub mod v3lockpb {
        tonic::include_proto!("v3lockpb");
    }
}

//! Where a request is served, with several replicas: one tower layer behind
//! the guard (so the caller is authenticated and counted here first).
//!
//! - On the leader, every request runs inside the leader's term
//!   (`term::scope`): its changes carry the fence, its outside
//!   calls check the lease.
//! - On a follower, reads (show, list, report, audit, Watch) are served
//!   from this replica's mirror of the store once it has caught up with
//!   etcd (`Lane::catch_up`: a read sees every change answered before,
//!   by any replica); every other request (a
//!   change) is sent on whole, headers and credentials included, to the
//!   leader, which authenticates it again and answers it. So the leader
//!   makes every change and every outside call, and one replica's pause
//!   cannot make two replicas act.
//! - While no leader is known (an election in progress), a change answers
//!   UNAVAILABLE: retry after the lease TTL.
//!
//! With the sled engine the one replica is always the leader.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tonic::Status;
use tonic::body::Body;
use tonic::transport::{Channel, Endpoint};
use tower::Service;

use crate::app::Lane;
use crate::term::{self, Role};

/// Methods that only read: served by any replica.
const READS: &[&str] = &[
    "/hotfix.v1.LaneService/GetHotfix",
    "/hotfix.v1.LaneService/ListHotfixes",
    "/hotfix.v1.PolicyService/GetRateLimitStatus",
    "/hotfix.v1.PolicyService/GetReport",
    "/hotfix.v1.PolicyService/WhoAmI",
    "/hotfix.v1.AuditService/VerifyAudit",
    "/hotfix.v1.AuditService/ExportAudit",
    "/hotfix.v1.AuditService/ListAudit",
    "/hotfix.v1.AuditService/GetCheckpoint",
    "/hotfix.v1.AdminService/GetCluster",
    "/hotfix.v1.EventService/Watch",
];
/// Served by every replica, never forwarded.
const LOCAL: &[&str] = &["/grpc.health.v1.Health/", "/grpc.reflection."];

fn is_read(path: &str) -> bool {
    READS.contains(&path) || LOCAL.iter().any(|p| path.starts_with(p))
}

/// The replica's role as the election publishes it, and channels to the
/// leaders seen.
pub struct Forward {
    roles: tokio::sync::watch::Receiver<Role>,
    lane: Arc<Lane>,
    peers: Mutex<HashMap<String, Channel>>,
}

impl Forward {
    pub fn new(roles: tokio::sync::watch::Receiver<Role>, lane: Arc<Lane>) -> Arc<Forward> {
        Arc::new(Forward {
            roles,
            lane,
            peers: Mutex::default(),
        })
    }

    fn peer(&self, url: &str) -> Result<Channel, Status> {
        let mut peers = self.peers.lock().expect("peers lock");
        if let Some(c) = peers.get(url) {
            return Ok(c.clone());
        }
        let mut ep = Endpoint::from_shared(url.to_string())
            .map_err(|e| Status::internal(format!("the leader's URL '{url}': {e}")))?;
        if url.starts_with("https://") {
            ep = ep
                .tls_config(tonic::transport::ClientTlsConfig::new().with_enabled_roots())
                .map_err(|e| Status::internal(format!("TLS to the leader at {url}: {e}")))?;
        }
        let channel = ep.connect_lazy();
        peers.insert(url.to_string(), channel.clone());
        Ok(channel)
    }
}

#[derive(Clone)]
pub struct ForwardLayer(pub Arc<Forward>);

impl<S> tower::Layer<S> for ForwardLayer {
    type Service = ForwardService<S>;

    fn layer(&self, inner: S) -> ForwardService<S> {
        ForwardService {
            inner,
            forward: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct ForwardService<S> {
    inner: S,
    forward: Arc<Forward>,
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S> Service<http::Request<Body>> for ForwardService<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<http::Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let role = self.forward.roles.borrow().clone();
        let path = req.uri().path().to_string();
        match role {
            Role::Leader(term) => Box::pin(term::scope(term, inner.call(req))),
            _ if is_read(&path) => {
                // The leader made every change: this replica's mirror
                // first catches up with it, so that a read here sees every
                // change answered before, wherever it was asked.
                let lane = self.forward.lane.clone();
                Box::pin(async move {
                    if !LOCAL.iter().any(|p| path.starts_with(p))
                        && let Err(e) = lane.catch_up().await
                    {
                        return Ok(Status::from(e).into_http());
                    }
                    inner.call(req).await
                })
            }
            Role::Follower(url) => {
                let mut leader = match self.forward.peer(&url) {
                    Ok(c) => c,
                    Err(s) => return Box::pin(std::future::ready(Ok(s.into_http()))),
                };
                let mut roles = self.forward.roles.clone();
                roles.mark_unchanged();
                Box::pin(async move {
                    use tower::ServiceExt;
                    let send = async {
                        match leader.ready().await {
                            Ok(ready) => ready.call(req).await,
                            Err(e) => Err(e),
                        }
                    };
                    // A leader that stopped answering (paused, partitioned)
                    // is replaced within its lease: the request is then
                    // answered UNAVAILABLE (whatever the old leader still
                    // does with it is fenced off), not left hanging.
                    let answered = tokio::select! {
                        r = send => r,
                        _ = roles.changed() => {
                            return Ok(Status::unavailable(format!(
                                "the leader changed while {url} had this request; whatever it \
                                 did with it is fenced off: retry with the same request id"
                            ))
                            .into_http());
                        }
                    };
                    match answered {
                        Ok(resp) => Ok(resp),
                        Err(e) => {
                            tracing::warn!(leader = %url, error = %e, "forwarding to the leader");
                            Ok(Status::unavailable(format!(
                                "this replica sends changes to the leader, and the leader at \
                                 {url} did not answer ({e}); a new leader is elected within \
                                 the lease TTL: retry with the same request id"
                            ))
                            .into_http())
                        }
                    }
                })
            }
            Role::Candidate => Box::pin(std::future::ready(Ok(Status::unavailable(
                "no hotfixd replica is the leader right now (an election is under way, within \
                 the lease TTL); nothing was changed: retry with the same request id",
            )
            .into_http()))),
        }
    }
}

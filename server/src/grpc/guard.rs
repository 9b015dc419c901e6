//! Who is asking, and whether they may ask now: one tower layer in front of
//! every service but health.
//!
//! For each request it
//! 1. refuses a peer address that has failed authentication too often
//!    (RESOURCE_EXHAUSTED, no roster lookup, no log line: a flood of wrong
//!    tokens costs the daemon nothing and fills no disk);
//! 2. authenticates (`auth::Roster::principal_of`: certificate and/or
//!    token; an SSO ID token goes to `oidc.rs`, whose keys are read again
//!    first when the token names a key id not known yet), counting a
//!    failure against the peer and logging it at most at the peer's
//!    failure rate;
//! 3. takes a token from the principal's rate bucket, and a slot among the
//!    principal's requests in flight (or its open Watch streams), held
//!    until the response, a Watch stream included, has been sent whole;
//! 4. gives the request's body [`LimitSettings::request_read_timeout`] to
//!    arrive, so that headers without a body cannot hold a slot forever.
//!
//! The principal is put into the request's extensions for the handlers
//! (`auth::principal`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tonic::Status;
use tonic::body::Body;
use tonic::transport::server::TcpConnectInfo;

use crate::auth::Roster;
use crate::limits::{LimitSettings, RateLimiter, exhausted};
use crate::roles::Roles;

/// The streaming method whose slots are counted apart.
const WATCH: &str = "/hotfix.v1.EventService/Watch";
/// Needs no credentials (supervisors probe it).
const HEALTH: &str = "/grpc.health.v1.Health/";

/// Which of a principal's slots a request takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Request,
    Watch,
}

pub struct Guard {
    /// Replaced whole when the roster is reloaded.
    roster: std::sync::RwLock<Arc<Roster>>,
    /// SSO tokens' verifier, when `[oidc]` is set.
    oidc: Option<Arc<crate::oidc::Oidc>>,
    roles: Arc<Roles>,
    rate: RateLimiter,
    failures: RateLimiter,
    slots: Mutex<HashMap<(String, Kind), usize>>,
    limits: LimitSettings,
    /// Rejections by limit, and the open Watch streams.
    metrics: crate::metrics::Metrics,
}

/// One taken slot; given back when dropped.
pub struct Slot {
    guard: Arc<Guard>,
    key: (String, Kind),
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.key.1 == Kind::Watch {
            self.guard.metrics.watchers.dec();
        }
        let mut slots = self.guard.slots.lock().expect("slots lock");
        if let Some(n) = slots.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                slots.remove(&self.key);
            }
        }
    }
}

impl Guard {
    pub fn new(
        roster: Arc<Roster>,
        roles: Arc<Roles>,
        oidc: Option<Arc<crate::oidc::Oidc>>,
        limits: LimitSettings,
        metrics: crate::metrics::Metrics,
    ) -> Arc<Guard> {
        Arc::new(Guard {
            roster: std::sync::RwLock::new(roster),
            oidc,
            roles,
            rate: RateLimiter::per_principal(&limits),
            failures: RateLimiter::new(limits.failed_auth_rate, limits.failed_auth_burst),
            slots: Mutex::default(),
            limits,
            metrics,
        })
    }

    /// Authenticates and admits `req`, or the status to answer instead.
    fn admit<B>(self: &Arc<Self>, req: &mut http::Request<B>) -> Result<Slot, Status> {
        let now = Instant::now();
        let peer = peer_ip(req);
        let peer_key = peer.map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
        if let Err(wait) = self.failures.check(&peer_key, now) {
            self.metrics.rejected("failed_auth");
            return Err(Status::resource_exhausted(format!(
                "too many failed authentications from {peer_key}; retry in {} ms",
                wait.as_millis().max(1)
            )));
        }
        let principal = match self.authenticate(req) {
            Ok(p) => p,
            Err(status) => {
                match self.failures.take(&peer_key, now) {
                    Ok(()) => {
                        tracing::warn!(peer = %peer_key, reason = %status.message(), "authentication failed")
                    }
                    Err(_) => tracing::warn!(
                        peer = %peer_key,
                        "authentication failed; further attempts from this address are refused \
                         unread for a while"
                    ),
                }
                return Err(status);
            }
        };
        let who = principal.handle.clone();
        self.rate.take(&who, now).map_err(|wait| {
            self.metrics.rejected("rate");
            exhausted(&who, wait)
        })?;
        let kind = if req.uri().path() == WATCH {
            Kind::Watch
        } else {
            Kind::Request
        };
        let slot = self.take_slot(&who, kind)?;
        req.extensions_mut().insert(principal);
        Ok(slot)
    }

    /// The principal of the request's certificate and/or bearer token.
    fn authenticate<B>(&self, req: &http::Request<B>) -> Result<crate::domain::Principal, Status> {
        let certs = req
            .extensions()
            .get::<tonic::transport::server::TlsConnectInfo<TcpConnectInfo>>()
            .and_then(|t| t.peer_certs());
        let roster = self.roster.read().expect("roster lock").clone();
        roster.principal_of(
            &self.roles,
            self.oidc.as_deref(),
            certs.as_deref().map(Vec::as_slice),
            req.headers().get("authorization").map(|v| v.as_bytes()),
        )
    }

    /// Authenticates with `roster` from now on (a reload).
    pub fn set_roster(&self, roster: Arc<Roster>) {
        *self.roster.write().expect("roster lock") = roster;
    }

    fn take_slot(self: &Arc<Self>, who: &str, kind: Kind) -> Result<Slot, Status> {
        let (cap, what) = match kind {
            Kind::Request => (self.limits.per_principal_in_flight, "requests in flight"),
            Kind::Watch => (self.limits.per_principal_watches, "open Watch streams"),
        };
        let key = (who.to_string(), kind);
        let mut slots = self.slots.lock().expect("slots lock");
        let n = slots.entry(key.clone()).or_insert(0);
        if *n >= cap {
            self.metrics.rejected(match kind {
                Kind::Request => "in_flight",
                Kind::Watch => "watches",
            });
            return Err(Status::resource_exhausted(format!(
                "@{who} already has {cap} {what} (limits.per_principal_{}); wait for one to \
                 finish",
                match kind {
                    Kind::Request => "in_flight",
                    Kind::Watch => "watches",
                }
            )));
        }
        *n += 1;
        if kind == Kind::Watch {
            self.metrics.watchers.inc();
        }
        Ok(Slot {
            guard: self.clone(),
            key,
        })
    }
}

fn peer_ip<B>(req: &http::Request<B>) -> Option<IpAddr> {
    let ext = req.extensions();
    ext.get::<TcpConnectInfo>()
        .and_then(|c| c.remote_addr())
        .or_else(|| {
            ext.get::<tonic::transport::server::TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|c| c.get_ref().remote_addr())
        })
        .map(|a| a.ip())
}

#[derive(Clone)]
pub struct GuardLayer(pub Arc<Guard>);

impl<S> tower::Layer<S> for GuardLayer {
    type Service = GuardService<S>;

    fn layer(&self, inner: S) -> GuardService<S> {
        GuardService {
            inner,
            guard: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct GuardService<S> {
    inner: S,
    guard: Arc<Guard>,
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S> tower::Service<http::Request<Body>> for GuardService<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>
        + Clone
        + Send
        + 'static,
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
        // The service that was polled ready takes this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if req.uri().path().starts_with(HEALTH) {
            return Box::pin(inner.call(req));
        }
        let guard = self.guard.clone();
        Box::pin(async move {
            // An SSO token signed with a key not known yet: the IdP's keys
            // are read again first (a rotation).
            if let Some(oidc) = &guard.oidc {
                oidc.prepare(req.headers().get("authorization").map(|v| v.as_bytes()))
                    .await;
            }
            guard.serve(inner, req).await
        })
    }
}

impl Guard {
    /// Admits `req` and has `inner` answer it, or answers the refusal.
    async fn serve<S>(
        self: Arc<Self>,
        mut inner: S,
        mut req: http::Request<Body>,
    ) -> Result<http::Response<Body>, S::Error>
    where
        S: tower::Service<http::Request<Body>, Response = http::Response<Body>>,
    {
        let slot = match self.admit(&mut req) {
            Ok(slot) => slot,
            Err(status) => return Ok(status.into_http()),
        };
        let deadline = self.limits.request_read_timeout;
        // Every request in a span: the RPC, who asks (from the credential,
        // never from the request), and the incident once a handler names
        // it (`grpc::about`). Log lines within carry them.
        let principal = req
            .extensions()
            .get::<crate::domain::Principal>()
            .map(|p| p.handle.clone())
            .unwrap_or_default();
        let span = tracing::info_span!(
            "rpc",
            rpc = %req.uri().path(),
            principal = %principal,
            incident = tracing::field::Empty,
        );
        let req = req.map(|b| Body::new(ReadDeadline::new(b, deadline)));
        let answered = async move {
            let started = Instant::now();
            let resp = inner.call(req).await?;
            // An error answer carries its status in the headers; an OK one
            // (or a stream's end) in the trailers, as 0 here.
            let status = resp
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("0")
                .to_string();
            tracing::info!(
                grpc_status = %status,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "rpc answered"
            );
            Ok(resp.map(|b| {
                Body::new(Holding {
                    body: b,
                    _slot: slot,
                })
            }))
        };
        tracing::Instrument::instrument(answered, span).await
    }
}

pin_project_lite::pin_project! {
    /// A request body that must end within its deadline.
    struct ReadDeadline {
        #[pin]
        body: Body,
        #[pin]
        sleep: tokio::time::Sleep,
        limit: Duration,
        done: bool,
    }
}

impl ReadDeadline {
    fn new(body: Body, limit: Duration) -> ReadDeadline {
        ReadDeadline {
            done: body.is_end_stream(),
            body,
            sleep: tokio::time::sleep(limit),
            limit,
        }
    }
}

impl HttpBody for ReadDeadline {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.project();
        if !*this.done && this.sleep.poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Status::deadline_exceeded(format!(
                "the request's body did not arrive within {} (limits.request_read_timeout)",
                humantime::format_duration(*this.limit)
            )))));
        }
        let frame = ready!(this.body.poll_frame(cx));
        if frame.is_none() {
            *this.done = true;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// A response body that holds its request's slot until it is dropped.
    struct Holding {
        #[pin]
        body: Body,
        _slot: Slot,
    }
}

impl HttpBody for Holding {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

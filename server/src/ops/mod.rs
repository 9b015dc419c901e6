//! The operator HTTP listener (`--http-listen`): plain HTTP/1.1 and h2c,
//! beside gRPC, for what platform tooling expects of a daemon.
//!
//! - `/metrics`: Prometheus exposition (OpenMetrics when the scraper asks
//!   for it, the 0.0.4 text format otherwise); see [`metrics`].
//! - `/healthz`: the process is up and serving this listener.
//! - `/readyz`: the same truth gRPC health reports ([`Readiness`]): 200
//!   while the store takes changes (and, on etcd, answers), 503 with why
//!   otherwise.
//! - `/` and `/api/v1/…`: the live status page and the read-only API it
//!   reads, behind the same tokens as gRPC; see [`status`].
//! - `/webhooks/github`: GitHub's signed deliveries, when a webhook secret
//!   is configured; see [`webhooks`].
//!
//! [`router`] is where later pages join.

pub mod metrics;
pub mod status;
pub mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Whether this replica is ready to serve, and if not, why: what both
/// `/readyz` and gRPC health report (`server` sets health from it, after
/// each change here, so the two never disagree).
#[derive(Clone)]
pub struct Readiness(Arc<watch::Sender<Why>>);

/// What keeps a replica from being ready. A failed store and shutting down
/// are for good; etcd out of reach lasts until it answers again.
#[derive(Clone, Debug, Default, PartialEq)]
struct Why {
    failed: Option<String>,
    unreachable: Option<String>,
    stopping: bool,
}

impl Default for Readiness {
    fn default() -> Self {
        Readiness(Arc::new(watch::channel(Why::default()).0))
    }
}

impl Readiness {
    /// The store can no longer make changes durable: not ready until
    /// restarted.
    pub fn failed(&self, why: impl Into<String>) {
        let why = why.into();
        self.0.send_modify(|w| {
            w.failed.get_or_insert(why);
        });
    }

    /// The store's replicas do not answer this one (Some: why), or answer
    /// again (None).
    pub fn unreachable(&self, why: Option<String>) {
        self.0.send_if_modified(|w| {
            let changed = w.unreachable != why;
            w.unreachable = why;
            changed
        });
    }

    /// The daemon is shutting down.
    pub fn stopping(&self) {
        self.0.send_modify(|w| w.stopping = true);
    }

    /// None: ready; Some: why not (the most lasting reason).
    pub fn why_not(&self) -> Option<String> {
        let w = self.0.borrow();
        if w.stopping {
            return Some("shutting down".into());
        }
        w.failed.clone().or_else(|| w.unreachable.clone())
    }
}

/// What the pages read.
pub struct Ops {
    pub metrics: metrics::Exposition,
    pub readiness: Readiness,
    /// The gRPC services the status page's API calls.
    pub grpc: status::Grpc,
    /// GitHub's deliveries, when GitHub and a webhook secret are on.
    pub webhooks: Option<Arc<webhooks::Intake>>,
}

/// The operator pages.
pub fn router(ops: Arc<Ops>) -> Router {
    let status = status::router(ops.grpc.clone());
    let webhooks = ops.webhooks.clone().map(webhooks::router);
    let router = Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready_page))
        .with_state(ops)
        .merge(status);
    match webhooks {
        Some(w) => router.merge(w),
        None => router,
    }
}

async fn metrics_page(State(ops): State<Arc<Ops>>, headers: HeaderMap) -> Response {
    let open_metrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    // The collectors read the store: off the async threads.
    let encoded = tokio::task::spawn_blocking(move || ops.metrics.encode(open_metrics)).await;
    let encoded = encoded
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    match encoded {
        Ok((content_type, body)) => ([(header::CONTENT_TYPE, content_type)], body).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "encoding the metrics");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the metrics could not be encoded\n",
            )
                .into_response()
        }
    }
}

async fn ready_page(State(ops): State<Arc<Ops>>) -> Response {
    match ops.readiness.why_not() {
        None => "ready\n".into_response(),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}

/// Serves `router` on `listener` (HTTP/1.1 and h2c) until `shutdown`.
pub async fn serve(listener: TcpListener, router: Router, shutdown: CancellationToken) {
    // The peer's address: the status page's API counts failed
    // authentications per address, as gRPC does.
    let served = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "the operator HTTP listener stopped");
    }
}

//! The operator HTTP listener (`--http-listen`): plain HTTP/1.1 and h2c,
//! beside gRPC, for what platform tooling expects of a daemon.
//!
//! - `/metrics`: Prometheus exposition (OpenMetrics when the scraper asks
//!   for it, the 0.0.4 text format otherwise); see [`metrics`].
//! - `/healthz`: the process is up and serving this listener.
//! - `/readyz`: the same truth gRPC health reports ([`Readiness`]): 200
//!   while the store takes changes (and, on etcd, answers), 503 with why
//!   otherwise.
//!
//! [`router`] is where later pages join.

pub mod metrics;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Whether this replica is ready to serve, and if not, why: set wherever
/// gRPC health is set, so the two never disagree.
#[derive(Clone)]
pub struct Readiness(Arc<watch::Sender<Option<String>>>);

impl Default for Readiness {
    fn default() -> Self {
        Readiness(Arc::new(watch::channel(None).0))
    }
}

impl Readiness {
    pub fn ready(&self) {
        self.0.send_replace(None);
    }

    pub fn not_ready(&self, why: impl Into<String>) {
        self.0.send_replace(Some(why.into()));
    }

    /// None: ready; Some: why not.
    pub fn why_not(&self) -> Option<String> {
        self.0.borrow().clone()
    }
}

/// What the pages read.
pub struct Ops {
    pub metrics: metrics::Exposition,
    pub readiness: Readiness,
}

/// The operator pages.
pub fn router(ops: Arc<Ops>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready_page))
        .with_state(ops)
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
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "the operator HTTP listener stopped");
    }
}

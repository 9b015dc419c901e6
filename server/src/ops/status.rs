//! The live status page (`/`, `/incidents/{id}`) and the read-only JSON API
//! it reads (`/api/v1/…`).
//!
//! The API calls the daemon's own gRPC services in-process, through the
//! same stack a gRPC caller goes through ([`Grpc`]: the guard's
//! authentication, rate limits, per-principal slots and log span; on a
//! follower, reads after catching up; the global in-flight limit). So the
//! page sees exactly what `hotfixctl` sees with the same token, and can do
//! no more: only read methods are routed here. Each answer is the RPC's own
//! message in the proto3 JSON mapping (`hotfix_api::json`, what `buf curl`
//! prints); events are `EventService.Watch`'s messages as server-sent
//! events, so the page updates when something happens and never polls.
//!
//! A token travels only in the `Authorization` header (the page keeps it in
//! the tab's `sessionStorage`); one in the URL is refused, since URLs end
//! up in logs, history and referrers. The page builds its DOM with
//! `textContent` only, and every response carries a Content-Security-Policy
//! that allows no inline script, so text a user typed into a symptom or a
//! note is shown as text.
//!
//! The page itself (`status/`) is three static files compiled into the
//! binary: plain HTML, CSS and one JavaScript module, no framework and no
//! build step.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hotfix_api::pb;
use hotfix_api::pb::event_service_client::EventServiceClient;
use hotfix_api::pb::lane_service_client::LaneServiceClient;
use hotfix_api::pb::policy_service_client::PolicyServiceClient;
use serde::Deserialize;
use tokio_stream::StreamExt;
use tonic::transport::server::TcpConnectInfo;

/// The daemon's gRPC services behind the layers every gRPC request passes
/// (built in `server.rs`), callable without a socket.
pub type Grpc = tower::util::BoxCloneSyncService<
    http::Request<tonic::body::Body>,
    http::Response<tonic::body::Body>,
    std::convert::Infallible,
>;

const INDEX: &str = include_str!("status/index.html");
const SCRIPT: &str = include_str!("status/status.js");
const STYLE: &str = include_str!("status/status.css");

/// Nothing but this origin's own script, style and API; no inline script,
/// no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The page's routes, to be merged into the operator router.
pub fn router(grpc: Grpc) -> Router {
    let api = Arc::new(Api { grpc });
    Router::new()
        .route("/", get(page))
        .route("/incidents/{incident}", get(page))
        .route("/assets/status.js", get(script))
        .route("/assets/status.css", get(style))
        // Browsers ask for it; there is none (not a 404 in the console).
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/api/v1/whoami", get(whoami))
        .route("/api/v1/hotfixes", get(hotfixes))
        .route("/api/v1/hotfixes/{incident}", get(hotfix))
        .route("/api/v1/report", get(report))
        .route("/api/v1/events", get(events))
        .layer(axum::middleware::map_response(guarded))
        .with_state(api)
}

struct Api {
    grpc: Grpc,
}

/// What every request brings: who is asking (the `Authorization` header,
/// as a gRPC caller sends it) and from where (for the guard's per-address
/// limit on failed authentications). Extracting it first refuses a token
/// in the URL before anything else is read.
struct Caller {
    authorization: Option<HeaderValue>,
    peer: Option<SocketAddr>,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        if let Some(refused) = token_in_url(parts.uri.query()) {
            return Err(refused);
        }
        Ok(Caller {
            authorization: parts.headers.get(header::AUTHORIZATION).cloned(),
            peer: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
        })
    }
}

impl Caller {
    /// `message` as a gRPC request from this caller.
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(message);
        if let Some(value) = &self.authorization
            && let Ok(value) = tonic::metadata::MetadataValue::try_from(value.as_bytes())
        {
            req.metadata_mut().insert("authorization", value);
        }
        req.extensions_mut().insert(TcpConnectInfo {
            local_addr: None,
            remote_addr: self.peer,
        });
        req
    }
}

/// A token in the query string: refused before anything is read.
fn token_in_url(raw_query: Option<&str>) -> Option<Response> {
    let query = raw_query?;
    let named = form_pairs(query).any(|(k, _)| {
        let k = k.to_ascii_lowercase();
        k == "token" || k == "access_token" || k == "authorization"
    });
    named.then(|| {
        problem(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "a token goes in the Authorization header (Bearer), never in the URL, where logs, \
             history and referrers keep it",
        )
    })
}

fn form_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

async fn page() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX).into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

/// The headers every answer of the page carries.
async fn guarded(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// An RPC's answer as proto3 JSON, or its status as the HTTP one.
fn answer<M: prost::Message + prost::Name>(
    result: Result<tonic::Response<M>, tonic::Status>,
) -> Response {
    match result {
        Ok(r) => (
            [(header::CONTENT_TYPE, "application/json")],
            hotfix_api::json::to_string(r.get_ref()),
        )
            .into_response(),
        Err(status) => refused(&status),
    }
}

/// A gRPC status as HTTP (the mapping of google.rpc.Code to HTTP), its body
/// `{"code": "…", "message": "…"}` as gRPC-JSON transcoding answers it.
fn refused(status: &tonic::Status) -> Response {
    use tonic::Code::*;
    let http = match status.code() {
        InvalidArgument | FailedPrecondition | OutOfRange => StatusCode::BAD_REQUEST,
        Unauthenticated => StatusCode::UNAUTHORIZED,
        PermissionDenied => StatusCode::FORBIDDEN,
        NotFound => StatusCode::NOT_FOUND,
        AlreadyExists | Aborted => StatusCode::CONFLICT,
        ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut response = problem(http, code_name(status.code()), status.message());
    if http == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"hotfixd\""),
        );
    }
    response
}

fn problem(http: StatusCode, code: &str, message: &str) -> Response {
    (
        http,
        [(header::CONTENT_TYPE, "application/json")],
        problem_json(code, message),
    )
        .into_response()
}

fn problem_json(code: &str, message: &str) -> String {
    serde_json::json!({ "code": code, "message": message }).to_string()
}

/// The code's name as google.rpc.Code spells it.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The query of `/api/v1/hotfixes`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Only hotfixes that still need someone.
    #[serde(default)]
    open: bool,
    /// Only hotfixes with an overdue obligation.
    #[serde(default)]
    overdue: bool,
    #[serde(default)]
    limit: u32,
}

/// The query of `/api/v1/events`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    /// Only this incident's events.
    incident: Option<String>,
    /// Resume after this sequence number (without it: from now on).
    from: Option<u64>,
}

/// A query that names a field the endpoint does not have, or a value of
/// the wrong type: the field named, nothing read.
fn bad_query(e: axum::extract::rejection::QueryRejection) -> Response {
    problem(
        StatusCode::BAD_REQUEST,
        "INVALID_ARGUMENT",
        &format!("the query: {}", e.body_text()),
    )
}

async fn whoami(State(api): State<Arc<Api>>, caller: Caller) -> Response {
    let mut client = PolicyServiceClient::new(api.grpc.clone());
    answer(client.who_am_i(caller.request(pb::WhoAmIRequest {})).await)
}

async fn hotfixes(
    State(api): State<Arc<Api>>,
    caller: Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(q) = match query {
        Ok(q) => q,
        Err(e) => return bad_query(e),
    };
    let mut client = LaneServiceClient::new(api.grpc.clone());
    let request = pb::ListHotfixesRequest {
        open: q.open,
        overdue: q.overdue,
        limit: q.limit,
        ..Default::default()
    };
    answer(client.list_hotfixes(caller.request(request)).await)
}

async fn hotfix(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(incident_id): Path<String>,
) -> Response {
    let mut client = LaneServiceClient::new(api.grpc.clone());
    answer(
        client
            .get_hotfix(caller.request(pb::GetHotfixRequest { incident_id }))
            .await,
    )
}

async fn report(State(api): State<Arc<Api>>, caller: Caller) -> Response {
    let mut client = PolicyServiceClient::new(api.grpc.clone());
    answer(
        client
            .get_report(caller.request(pb::GetReportRequest {}))
            .await,
    )
}

/// `EventService.Watch` as server-sent events: `event: watch`, the data one
/// `WatchResponse` in proto3 JSON (an event, or a heartbeat saying where the
/// log is, to resume from), the id an event's sequence number. A status
/// that ends the stream comes as `event: error` with the `{code, message}`
/// body. The guard counts the stream among the caller's Watch streams.
async fn events(
    State(api): State<Arc<Api>>,
    caller: Caller,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(q) = match query {
        Ok(q) => q,
        Err(e) => return bad_query(e),
    };
    let request = pb::WatchRequest {
        from_seq: q.from.unwrap_or(0),
        incident_id: q.incident.unwrap_or_default(),
        from_now: q.from.is_none(),
    };
    let mut client = EventServiceClient::new(api.grpc.clone());
    let stream = match client.watch(caller.request(request)).await {
        Ok(r) => r.into_inner(),
        Err(status) => return refused(&status),
    };
    let frames = stream.map(|item| {
        Ok::<_, std::convert::Infallible>(match item {
            Ok(message) => {
                let mut event = Event::default()
                    .event("watch")
                    .data(hotfix_api::json::to_string(&message));
                if let Some(pb::watch_response::Kind::Event(e)) = &message.kind {
                    event = event.id(e.seq.to_string());
                }
                event
            }
            Err(status) => Event::default()
                .event("error")
                .data(problem_json(code_name(status.code()), status.message())),
        })
    });
    Sse::new(frames)
        .keep_alive(KeepAlive::default())
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_in_the_url_is_refused_whatever_its_case() {
        for q in [
            "token=abc",
            "from=3&Access_Token=x",
            "authorization",
            "a=1&TOKEN=",
        ] {
            assert!(token_in_url(Some(q)).is_some(), "{q}");
        }
        for q in ["from=3", "incident=INC-1&open=true", "tokens=1", ""] {
            assert!(token_in_url(Some(q)).is_none(), "{q}");
        }
        assert!(token_in_url(None).is_none());
    }
}

//! A local Slack incoming-webhook receiver that checks every request
//! against the webhook contract (`POST` JSON with a string `text`, optional
//! `blocks` array; answers `200 ok` or a plain-text error).
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

#[derive(Default)]
pub struct Receiver {
    /// (channel, text) of every valid delivery.
    pub got: Vec<(String, String)>,
    /// Requests that broke the contract.
    pub bad: Vec<String>,
    /// Status codes to answer next, front first; empty: 200 ok.
    pub fail_next: Vec<(u16, &'static str)>,
    pub attempts: usize,
}

pub type Shared = Arc<Mutex<Receiver>>;

async fn hook(
    State(r): State<Shared>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, &'static str) {
    let mut r = r.lock().unwrap();
    r.attempts += 1;
    let json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let parsed: Option<serde_json::Value> = serde_json::from_str(&body).ok();
    let valid = json
        && parsed.as_ref().is_some_and(|v| {
            v.as_object().is_some_and(|o| {
                o.get("text")
                    .is_some_and(|t| t.is_string() && !t.as_str().unwrap().is_empty())
                    && o.keys().all(|k| k == "text" || k == "blocks")
                    && o.get("blocks").is_none_or(|b| b.is_array())
            })
        });
    if !valid {
        r.bad.push(body);
        return (StatusCode::BAD_REQUEST, "invalid_payload");
    }
    if !r.fail_next.is_empty() {
        let (code, text) = r.fail_next.remove(0);
        return (StatusCode::from_u16(code).unwrap(), text);
    }
    let text = parsed.unwrap()["text"].as_str().unwrap().to_string();
    r.got.push((channel, text));
    (StatusCode::OK, "ok")
}

pub async fn receiver() -> (Shared, String) {
    let shared: Shared = Arc::default();
    let app = Router::new()
        .route("/hooks/{channel}", post(hook))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (shared, base)
}

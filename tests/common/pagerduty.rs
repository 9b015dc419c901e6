//! A local PagerDuty Events API v2 change-events endpoint that checks every
//! request against PagerDuty's published contract ("Send Change Events to
//! the PagerDuty Events API": `POST /v2/change/enqueue`, JSON with a
//! 32-character `routing_key`, `payload.summary` of 1 to 1024 characters,
//! optional `payload.timestamp` (ISO 8601), `payload.source` (string),
//! `payload.custom_details` (object), `links` of `{href, text}`; answers
//! 202 `{"status": "success", "message": "Change event processed"}`, or
//! 400 `{"status": "invalid event", "message": "Event object is invalid",
//! "errors": [...]}`).
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};

pub const ROUTING_KEY: &str = "R0ut1ngK3yR0ut1ngK3yR0ut1ngK3y12";

#[derive(Default)]
pub struct Endpoint {
    /// Every change event taken.
    pub changes: Vec<Value>,
    /// Requests that broke the contract.
    pub bad: Vec<String>,
}

pub type Shared = Arc<Mutex<Endpoint>>;

fn problems(v: &Value) -> Vec<String> {
    let mut why = Vec::new();
    if v["routing_key"].as_str().is_none_or(|k| k.len() != 32) {
        why.push("'routing_key' must be a 32-character string".to_string());
    }
    match v["payload"]["summary"].as_str() {
        Some(s) if !s.is_empty() && s.chars().count() <= 1024 => {}
        _ => why.push("'payload.summary' must be 1 to 1024 characters".into()),
    }
    if let Some(t) = v["payload"].get("timestamp")
        && t.as_str()
            .is_none_or(|t| chrono::DateTime::parse_from_rfc3339(t).is_err())
    {
        why.push("'payload.timestamp' must be an ISO 8601 time".into());
    }
    if v["payload"].get("source").is_some_and(|s| !s.is_string()) {
        why.push("'payload.source' must be a string".into());
    }
    if v["payload"]
        .get("custom_details")
        .is_some_and(|d| !d.is_object())
    {
        why.push("'payload.custom_details' must be an object".into());
    }
    if let Some(links) = v.get("links") {
        let ok = links.as_array().is_some_and(|l| {
            l.iter()
                .all(|x| x["href"].is_string() && x.get("text").is_none_or(Value::is_string))
        });
        if !ok {
            why.push("'links' must be a list of {href, text}".into());
        }
    }
    why
}

async fn enqueue(State(e): State<Shared>, body: String) -> (StatusCode, String) {
    let mut e = e.lock().unwrap();
    let v: Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(err) => {
            e.bad.push(format!("not JSON: {err}"));
            return (
                StatusCode::BAD_REQUEST,
                json!({"status": "invalid event", "message": "Event object is invalid", "errors": ["Invalid JSON"]}).to_string(),
            );
        }
    };
    let why = problems(&v);
    if !why.is_empty() {
        e.bad.push(format!("{why:?}: {v}"));
        return (
            StatusCode::BAD_REQUEST,
            json!({"status": "invalid event", "message": "Event object is invalid", "errors": why})
                .to_string(),
        );
    }
    e.changes.push(v);
    (
        StatusCode::ACCEPTED,
        json!({"status": "success", "message": "Change event processed"}).to_string(),
    )
}

/// Starts the endpoint; its change events URL.
pub async fn endpoint() -> (Shared, String) {
    let shared: Shared = Arc::default();
    let app = Router::new()
        .route("/v2/change/enqueue", post(enqueue))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/v2/change/enqueue",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (shared, url)
}

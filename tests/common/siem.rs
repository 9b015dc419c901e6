//! A local Splunk HTTP Event Collector that checks every request against
//! HEC's documented contract ("HTTP Event Collector REST API endpoints",
//! `POST /services/collector/event`; "Format events for HTTP Event
//! Collector"; the status codes of "Troubleshoot HTTP Event Collector"):
//! `Authorization: Splunk <token>`; a body of one or more JSON event
//! objects, each with a non-empty `event` and, if given, a numeric `time`
//! (epoch seconds) and string `source`/`sourcetype`/`host`/`index`;
//! answers `{"text": "Success", "code": 0}`, or the documented error
//! (2 token required, 4 invalid token, 5 no data, 6 invalid data format,
//! 9 server is busy, 12 event field is required, 13 event field cannot be
//! blank).
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};

pub const TOKEN: &str = "11111111-2222-3333-4444-555555555555";

#[derive(Default)]
pub struct Collector {
    /// Every event object taken, in order of arrival.
    pub events: Vec<Value>,
    /// Requests that broke the contract.
    pub bad: Vec<String>,
    /// Answer "server is busy" (503, code 9) to this many requests next.
    pub busy: u32,
    pub requests: u32,
}

pub type Shared = Arc<Mutex<Collector>>;

fn answer(status: u16, text: &str, code: u32) -> (StatusCode, String) {
    (
        StatusCode::from_u16(status).unwrap(),
        json!({"text": text, "code": code}).to_string(),
    )
}

async fn collect(
    State(c): State<Shared>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    let mut c = c.lock().unwrap();
    c.requests += 1;
    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
        None => {
            c.bad.push("no Authorization".into());
            return answer(401, "Token is required", 2);
        }
        Some(a) if a != format!("Splunk {TOKEN}") => {
            c.bad.push(format!("Authorization {a:?}"));
            return answer(403, "Invalid token", 4);
        }
        Some(_) => {}
    }
    if c.busy > 0 {
        c.busy -= 1;
        return answer(503, "Server is busy", 9);
    }
    let mut events = Vec::new();
    for item in serde_json::Deserializer::from_str(&body).into_iter::<Value>() {
        let Ok(v) = item else {
            c.bad.push(format!("not JSON: {body}"));
            return answer(400, "Invalid data format", 6);
        };
        let Some(o) = v.as_object() else {
            c.bad.push(format!("not an object: {v}"));
            return answer(400, "Invalid data format", 6);
        };
        match o.get("event") {
            None | Some(Value::Null) => {
                c.bad.push(format!("no event: {v}"));
                return answer(400, "Event field is required", 12);
            }
            Some(Value::String(s)) if s.is_empty() => {
                return answer(400, "Event field cannot be blank", 13);
            }
            Some(_) => {}
        }
        let typed = o.get("time").is_none_or(Value::is_number)
            && ["source", "sourcetype", "host", "index"]
                .iter()
                .all(|k| o.get(*k).is_none_or(Value::is_string));
        if !typed {
            c.bad.push(format!("mistyped metadata: {v}"));
            return answer(400, "Invalid data format", 6);
        }
        events.push(v);
    }
    if events.is_empty() {
        return answer(400, "No data", 5);
    }
    c.events.extend(events);
    answer(200, "Success", 0)
}

/// Starts the collector; its `/services/collector/event` URL.
pub async fn collector() -> (Shared, String) {
    let shared: Shared = Arc::default();
    let app = Router::new()
        .route("/services/collector/event", post(collect))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/services/collector/event",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (shared, url)
}

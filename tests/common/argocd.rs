//! An in-process fake of Argo CD's API server that validates every request
//! and every response against Argo CD's published Swagger
//! (tests/contracts/argocd-swagger.json).
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

pub const TOKEN: &str = "argocd-test-token";

/// Argo CD's Swagger, for validating what crosses the wire.
pub struct Contract {
    swagger: Value,
}

impl Contract {
    pub fn load() -> Contract {
        let text = include_str!("../contracts/argocd-swagger.json");
        Contract {
            swagger: serde_json::from_str(text).unwrap(),
        }
    }

    pub fn check(&self, definition: &str, v: &Value) -> Result<(), String> {
        let defs = &self.swagger["definitions"];
        let schema = json!({ "definitions": defs, "$ref": format!("#/definitions/{definition}") });
        let validator = jsonschema::draft4::new(&schema).map_err(|e| e.to_string())?;
        let errors: Vec<String> = validator
            .iter_errors(v)
            .map(|e| format!("{e} at {}", e.instance_path))
            .collect();
        if !errors.is_empty() {
            return Err(format!("{definition}: {}", errors.join("; ")));
        }
        // Swagger objects allow extra properties; the API ignores them. Ours
        // must still be names the API knows.
        if let (Some(obj), Some(props)) =
            (v.as_object(), defs[definition]["properties"].as_object())
        {
            for k in obj.keys() {
                if !props.contains_key(k) {
                    return Err(format!("{definition}: unknown property '{k}'"));
                }
            }
        }
        Ok(())
    }

    fn has_operation(&self, path: &str, method: &str) -> bool {
        self.swagger["paths"][path][method].is_object()
    }
}

#[derive(Default)]
pub struct Fake {
    /// Sync calls answered "another operation is already in progress".
    pub busy: u32,
    /// Status reads before the app reports Synced + Healthy.
    pub progressing: u32,
    /// The operation fails instead.
    pub fail: bool,
    pub syncs: Vec<Value>,
    pub status_reads: u32,
    pub violations: Vec<String>,
}

pub struct FakeState {
    pub fake: Mutex<Fake>,
    contract: Contract,
}

pub type Shared = Arc<FakeState>;

fn authorized(h: &HeaderMap) -> bool {
    h.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}"))
}

/// Answers with `body` after checking it against `definition`.
fn answer(
    s: &FakeState,
    code: StatusCode,
    definition: &str,
    body: Value,
) -> (StatusCode, Json<Value>) {
    if let Err(e) = s.contract.check(definition, &body) {
        s.fake
            .lock()
            .unwrap()
            .violations
            .push(format!("response: {e}"));
    }
    (code, Json(body))
}

fn runtime_error(
    s: &FakeState,
    code: StatusCode,
    grpc: i32,
    message: &str,
) -> (StatusCode, Json<Value>) {
    answer(
        s,
        code,
        "runtimeError",
        json!({ "code": grpc, "error": message, "message": message }),
    )
}

fn application(name: &str, sync: &str, health: &str, phase: &str, revision: &str) -> Value {
    json!({
        "metadata": { "name": name, "namespace": "argocd" },
        "spec": { "project": "default", "destination": { "server": "https://kubernetes.default.svc", "namespace": "catalog" } },
        "status": {
            "sync": { "status": sync, "revision": revision },
            "health": { "status": health },
            "operationState": { "phase": phase, "message": format!("{phase} sync to {revision}") },
        }
    })
}

async fn sync(
    State(s): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, Json<Value>) {
    if !s
        .contract
        .has_operation("/api/v1/applications/{name}/sync", "post")
    {
        s.fake
            .lock()
            .unwrap()
            .violations
            .push("sync is not an operation of the API".into());
    }
    if !authorized(&headers) {
        return runtime_error(&s, StatusCode::UNAUTHORIZED, 16, "no session information");
    }
    let req: Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(e) => {
            s.fake
                .lock()
                .unwrap()
                .violations
                .push(format!("request is not JSON: {e}"));
            return runtime_error(&s, StatusCode::BAD_REQUEST, 3, "bad request");
        }
    };
    if let Err(e) = s.contract.check("applicationApplicationSyncRequest", &req) {
        s.fake
            .lock()
            .unwrap()
            .violations
            .push(format!("request: {e}"));
    }
    if req["name"] != json!(name) {
        s.fake
            .lock()
            .unwrap()
            .violations
            .push("body name differs from the path".into());
    }
    let revision = req["revision"].as_str().unwrap_or_default().to_string();
    let mut f = s.fake.lock().unwrap();
    f.syncs.push(req);
    if f.busy > 0 {
        f.busy -= 1;
        drop(f);
        return runtime_error(
            &s,
            StatusCode::BAD_REQUEST,
            9,
            "another operation is already in progress",
        );
    }
    drop(f);
    answer(
        &s,
        StatusCode::OK,
        "v1alpha1Application",
        application(&name, "OutOfSync", "Progressing", "Running", &revision),
    )
}

async fn status(
    State(s): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> (StatusCode, Json<Value>) {
    if !s
        .contract
        .has_operation("/api/v1/applications/{name}", "get")
    {
        s.fake
            .lock()
            .unwrap()
            .violations
            .push("get is not an operation of the API".into());
    }
    if !authorized(&headers) {
        return runtime_error(&s, StatusCode::UNAUTHORIZED, 16, "no session information");
    }
    let mut f = s.fake.lock().unwrap();
    f.status_reads += 1;
    let revision = f
        .syncs
        .last()
        .and_then(|r| r["revision"].as_str())
        .unwrap_or_default()
        .to_string();
    let app = if f.fail {
        application(&name, "OutOfSync", "Degraded", "Failed", &revision)
    } else if f.progressing > 0 {
        f.progressing -= 1;
        application(&name, "OutOfSync", "Progressing", "Running", &revision)
    } else {
        application(&name, "Synced", "Healthy", "Succeeded", &revision)
    };
    drop(f);
    answer(&s, StatusCode::OK, "v1alpha1Application", app)
}

/// Starts the fake; answers its state and base URL.
pub async fn fake(setup: Fake) -> (Shared, String) {
    let shared = Arc::new(FakeState {
        fake: Mutex::new(setup),
        contract: Contract::load(),
    });
    let app = Router::new()
        .route("/api/v1/applications/{name}/sync", post(sync))
        .route("/api/v1/applications/{name}", get(status))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (shared, base)
}

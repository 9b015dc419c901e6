//! Step 5's sync performed through Argo CD, against an in-process fake of
//! its API server that validates every request and every response against
//! Argo CD's published Swagger (tests/contracts/argocd-swagger.json).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use common::*;
use hotfixd::integrations::argocd::ArgoCdSettings;
use hotfixd::syncer::SyncSettings;
use serde_json::{Value, json};

const TOKEN: &str = "argocd-test-token";

/// Argo CD's Swagger, for validating what crosses the wire.
struct Contract {
    swagger: Value,
}

impl Contract {
    fn load() -> Contract {
        let text = include_str!("contracts/argocd-swagger.json");
        Contract {
            swagger: serde_json::from_str(text).unwrap(),
        }
    }

    fn check(&self, definition: &str, v: &Value) -> Result<(), String> {
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
struct Fake {
    /// Sync calls answered "another operation is already in progress".
    busy: u32,
    /// Status reads before the app reports Synced + Healthy.
    progressing: u32,
    /// The operation fails instead.
    fail: bool,
    syncs: Vec<Value>,
    status_reads: u32,
    violations: Vec<String>,
}

struct FakeState {
    fake: Mutex<Fake>,
    contract: Contract,
}

type Shared = Arc<FakeState>;

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

async fn fake(setup: Fake) -> (Shared, String) {
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

async fn daemon(base: &str) -> Daemon {
    let url = base.to_string();
    Daemon::start_configured(move |s| {
        s.argocd = Some(ArgoCdSettings {
            url,
            token: Some(TOKEN.into()),
            timeout: Duration::from_secs(5),
        });
        s.sync = SyncSettings {
            poll: Duration::from_millis(50),
            timeout: Duration::from_secs(10),
        };
    })
    .await
}

#[tokio::test]
async fn hotfixd_syncs_with_prune_waits_out_another_operation_and_records_healthy() {
    let (f, base) = fake(Fake {
        busy: 1,
        progressing: 2,
        ..Fake::default()
    })
    .await;
    let d = daemon(&base).await;
    ready_to_merge(&d, INC).await;
    d.ctl("carol", &["merge", INC]).await.unwrap();
    // Only a platform-admin or a service may sync.
    d.ctl_err("bob", &["sync", INC, "--revision", SHA1], DENIED)
        .await;
    let out = d
        .ctl(
            "carol",
            &["sync", INC, "--revision", SHA1, "--skip-canary", "--wait"],
        )
        .await
        .unwrap();
    assert!(
        out.contains("another Argo CD operation on bookstore-catalog-us-east is in progress"),
        "{out}"
    );
    assert!(out.contains("OutOfSync/Progressing"), "{out}");
    let h = d.ctl_json("bob", &["show", INC]).await;
    assert_eq!(h["state"], "SYNCED");
    assert_eq!(h["sync"]["revision"], SHA1);
    assert_eq!(h["sync"]["skipped_canary"], true);
    assert_eq!(h["sync"]["by"], "carol");
    let f = f.fake.lock().unwrap();
    assert!(
        f.violations.is_empty(),
        "contract violations: {:?}",
        f.violations
    );
    assert_eq!(f.syncs.len(), 2, "the busy answer was retried once");
    assert_eq!(f.syncs[1]["prune"], true);
    assert_eq!(f.syncs[1]["dryRun"], false);
    assert_eq!(f.syncs[1]["revision"], SHA1);
    assert!(f.status_reads >= 3);
}

#[tokio::test]
async fn a_retried_sync_is_requested_once() {
    let (f, base) = fake(Fake::default()).await;
    let d = daemon(&base).await;
    ready_to_merge(&d, INC).await;
    d.ctl("carol", &["merge", INC]).await.unwrap();
    let sync = [
        "--request-id",
        "sync-1",
        "sync",
        INC,
        "--revision",
        SHA1,
        "--wait",
    ];
    d.ctl("carol", &sync).await.unwrap();
    let again = d
        .ctl_json(
            "carol",
            &["--request-id", "sync-1", "sync", INC, "--revision", SHA1],
        )
        .await;
    assert_eq!(again["state"], "SYNCED");
    assert_eq!(f.fake.lock().unwrap().syncs.len(), 1);
}

#[tokio::test]
async fn a_failed_operation_is_reported_and_leaves_the_hotfix_merged() {
    let (f, base) = fake(Fake {
        fail: true,
        ..Fake::default()
    })
    .await;
    let d = daemon(&base).await;
    ready_to_merge(&d, INC).await;
    d.ctl("carol", &["merge", INC]).await.unwrap();
    let e = d
        .ctl("svc-ci", &["sync", INC, "--revision", SHA1, "--wait"])
        .await
        .unwrap_err();
    assert_eq!(e.code, 1, "{}", e.message);
    assert_eq!(d.state(INC).await, "MERGED");
    let show = d.ctl("bob", &["show", INC]).await.unwrap();
    assert!(
        show.contains("sync_failed") && show.contains("operation Failed"),
        "{show}"
    );
    assert!(f.fake.lock().unwrap().violations.is_empty());
}

#[tokio::test]
async fn a_drill_only_dry_runs_the_sync() {
    let (f, base) = fake(Fake::default()).await;
    let d = daemon(&base).await;
    ready_to_merge_with(&d, INC, &["--drill"]).await;
    d.ctl("carol", &["merge", INC]).await.unwrap();
    d.ctl("carol", &["sync", INC, "--revision", SHA1, "--wait"])
        .await
        .unwrap();
    assert_eq!(d.state(INC).await, "SYNCED");
    let show = d.ctl("bob", &["show", INC]).await.unwrap();
    assert!(
        show.contains("sync_dry_run") && show.contains("nothing was deployed"),
        "{show}"
    );
    let f = f.fake.lock().unwrap();
    assert!(f.violations.is_empty(), "{:?}", f.violations);
    assert!(
        f.syncs.iter().all(|s| s["dryRun"] == true),
        "a drill never syncs for real"
    );
    assert_eq!(f.status_reads, 0);
}

#[test]
fn the_contract_check_catches_a_wrong_shape() {
    let c = Contract::load();
    assert!(
        c.check(
            "applicationApplicationSyncRequest",
            &json!({"name": "a", "prune": true})
        )
        .is_ok()
    );
    assert!(
        c.check(
            "applicationApplicationSyncRequest",
            &json!({"name": "a", "prune": "yes"})
        )
        .is_err()
    );
    assert!(
        c.check(
            "applicationApplicationSyncRequest",
            &json!({"name": "a", "force": true})
        )
        .is_err()
    );
    assert!(
        c.check(
            "v1alpha1Application",
            &json!({"status": {"sync": {"status": 3}}})
        )
        .is_err()
    );
}

#[tokio::test]
async fn a_sync_cut_short_by_a_restart_is_reconciled_with_argo_cd_once() {
    let (f, base) = fake(Fake {
        progressing: u32::MAX,
        ..Fake::default()
    })
    .await;
    let d = daemon(&base).await;
    ready_to_merge(&d, INC).await;
    d.ctl("carol", &["merge", INC]).await.unwrap();
    // Sent, and still Progressing when hotfixd stops.
    d.ctl("carol", &["sync", INC, "--revision", SHA1])
        .await
        .unwrap();
    for _ in 0..200 {
        if f.fake.lock().unwrap().status_reads > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(d.state(INC).await, "MERGED");
    f.fake.lock().unwrap().progressing = 0; // Argo CD finishes meanwhile
    let d = d.restart().await;
    let h = d.ctl_json("bob", &["show", INC]).await;
    assert_eq!(h["state"], "SYNCED");
    assert_eq!(h["sync"]["by"], "carol");
    let kinds: Vec<&str> = h["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "sync_requested",
        "sync_interrupted",
        "sync_reconciled",
        "synced",
    ] {
        assert_eq!(
            kinds.iter().filter(|k| **k == kind).count(),
            1,
            "{kind} once in {kinds:?}"
        );
    }
    let f = f.fake.lock().unwrap();
    assert_eq!(f.syncs.len(), 1, "the sync was not sent again");
    assert!(f.violations.is_empty(), "{:?}", f.violations);
}

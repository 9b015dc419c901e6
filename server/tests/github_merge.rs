//! The admin merge performed on GitHub, against a fake of GitHub's REST API
//! that validates requests and responses against GitHub's published OpenAPI
//! description (tests/contracts/github-rest-subset.json), with the real
//! `hotfixd` binary, killed with SIGKILL between "merge sent" and "merge
//! recorded".

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use axum::{Json, Router};
use clap::Parser;
use serde_json::{Value, json};
use tokio::sync::Notify;

const INC: &str = "INC-2026-05-20-001";
const SHA: &str = "1111111111111111111111111111111111111111";
const MERGE_PATH: &str = "/repos/{owner}/{repo}/pulls/{pull_number}/merge";

struct Contract(Value);

impl Contract {
    fn load() -> Contract {
        Contract(
            serde_json::from_str(include_str!(
                "../../tests/contracts/github-rest-subset.json"
            ))
            .unwrap(),
        )
    }

    fn check(&self, schema: &Value, v: &Value, what: &str) -> Result<(), String> {
        // OpenAPI 3.0's `nullable` is not JSON Schema; nothing here is null.
        let validator = jsonschema::draft4::new(schema).map_err(|e| e.to_string())?;
        let errors: Vec<String> = validator.iter_errors(v).map(|e| e.to_string()).collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!("{what}: {}", errors.join("; ")))
        }
    }

    fn request_schema(&self, method: &str) -> &Value {
        &self.0["paths"][MERGE_PATH][method]["requestBody"]["content"]["application/json"]["schema"]
    }

    fn response_schema(&self, method: &str, code: u16) -> Option<&Value> {
        let r = &self.0["paths"][MERGE_PATH][method]["responses"][code.to_string()];
        if r.is_null() {
            None
        } else {
            Some(&r["content"]["application/json"]["schema"])
        }
    }
}

#[derive(Default)]
struct Fake {
    head: String,
    merged: bool,
    /// Answer the next merge only after this long (the test kills hotfixd meanwhile).
    hang: bool,
    merge_calls: u32,
    violations: Vec<String>,
}

struct Shared {
    fake: Mutex<Fake>,
    contract: Contract,
    merge_received: Notify,
}

fn reply(s: &Shared, method: &str, code: u16, body: Option<Value>) -> Response {
    let status = StatusCode::from_u16(code).unwrap();
    match (s.contract.response_schema(method, code), body) {
        (None, _) => {
            s.fake
                .lock()
                .unwrap()
                .violations
                .push(format!("{method} {code} is not in the contract"));
            status.into_response()
        }
        (Some(schema), Some(b)) => {
            if let Err(e) = s
                .contract
                .check(schema, &b, &format!("{method} {code} response"))
            {
                s.fake.lock().unwrap().violations.push(e);
            }
            (status, Json(b)).into_response()
        }
        (Some(_), None) => status.into_response(),
    }
}

async fn merge(
    State(s): State<Arc<Shared>>,
    Path((owner, repo, pr)): Path<(String, String, u64)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer gh-test-token") {
        return reply(
            &s,
            "put",
            403,
            Some(json!({"message": "Must have admin rights to Repository."})),
        );
    }
    let req: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    if let Err(e) = s
        .contract
        .check(s.contract.request_schema("put"), &req, "merge request")
    {
        s.fake.lock().unwrap().violations.push(e);
    }
    assert_eq!(
        (owner.as_str(), repo.as_str(), pr),
        ("bookstore", "catalog", 4321)
    );
    let hang = {
        let mut f = s.fake.lock().unwrap();
        f.merge_calls += 1;
        if req["sha"] != json!(f.head) {
            drop(f);
            return reply(
                &s,
                "put",
                409,
                Some(
                    json!({"message": "Head branch was modified. Review and try the merge again.", "documentation_url": "https://docs.github.com/rest"}),
                ),
            );
        }
        if req["merge_method"] != json!("squash") {
            f.violations.push(format!(
                "merge_method {} is not squash",
                req["merge_method"]
            ));
        }
        f.merged = true;
        f.hang
    };
    s.merge_received.notify_one();
    if hang {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    reply(
        &s,
        "put",
        200,
        Some(
            json!({"sha": "9999999999999999999999999999999999999999", "merged": true, "message": "Pull Request successfully merged"}),
        ),
    )
}

async fn is_merged(State(s): State<Arc<Shared>>) -> Response {
    let merged = s.fake.lock().unwrap().merged;
    reply(&s, "get", if merged { 204 } else { 404 }, None)
}

async fn fake(head: &str, hang: bool) -> (Arc<Shared>, SocketAddr) {
    let shared = Arc::new(Shared {
        fake: Mutex::new(Fake {
            head: head.into(),
            hang,
            ..Fake::default()
        }),
        contract: Contract::load(),
        merge_received: Notify::new(),
    });
    let app = Router::new()
        .route(
            "/repos/{owner}/{repo}/pulls/{pr}/merge",
            put(merge).get(is_merged),
        )
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (shared, addr)
}

struct Daemon {
    child: Child,
    endpoint: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn hotfixd(dir: &std::path::Path, github: SocketAddr) -> Daemon {
    let config = dir.join("hotfixd.toml");
    std::fs::write(
        &config,
        format!("[github]\nurl = \"http://{github}\"\ntimeout = \"90s\"\n"),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_hotfixd"))
        .args(["--dev", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("HOTFIXD_GITHUB_TOKEN", "gh-test-token")
        .env("HOTFIXD_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting hotfixd");
    let d = Daemon {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..200 {
        if hotfixctl::Client::connect(&d.endpoint, Some("dev-bob"))
            .await
            .is_ok()
        {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("hotfixd did not start");
}

async fn ctl(d: &Daemon, handle: &str, args: &[&str]) -> Result<String, hotfixctl::cli::CliError> {
    let token = format!("dev-{handle}");
    let mut argv = vec!["hotfixctl", "--endpoint", &d.endpoint, "--token", &token];
    argv.extend_from_slice(args);
    let cli = hotfixctl::cli::Cli::try_parse_from(argv).unwrap();
    let mut out = Vec::new();
    hotfixctl::cli::run(cli, &mut out).await?;
    Ok(String::from_utf8(out).unwrap())
}

async fn show(d: &Daemon) -> Value {
    serde_json::from_str(
        &ctl(d, "bob", &["--output", "json", "show", INC])
            .await
            .unwrap(),
    )
    .unwrap()
}

async fn ready(d: &Daemon, drill: bool) {
    let mut declare = vec![
        "declare",
        INC,
        "--symptom",
        "catalog 500s",
        "--criterion",
        "customers-down",
        "--approver",
        "alice",
        "--cleanup-owner",
        "bob",
        "--eta",
        "09:30",
        "--repo",
        "bookstore/catalog",
        "--app",
        "catalog",
    ];
    if drill {
        declare.push("--drill");
    }
    ctl(d, "bob", &declare).await.unwrap();
    let msg = format!("fix\n{INC}\napprover: @alice");
    let branch = format!("hotfix/{INC}-fix");
    ctl(
        d,
        "bob",
        &[
            "fix",
            INC,
            "--branch",
            &branch,
            "--sha",
            SHA,
            "--message",
            &msg,
            "--file",
            "catalog/a.go:1:1",
        ],
    )
    .await
    .unwrap();
    ctl(d, "alice", &["approve", INC]).await.unwrap();
    ctl(
        d,
        "bob",
        &[
            "pr",
            INC,
            "--number",
            "4321",
            "--url",
            "https://github.com/bookstore/catalog/pull/4321",
        ],
    )
    .await
    .unwrap();
    for c in ["lint", "unit-changed-package", "scan", "build-sign-push"] {
        ctl(
            d,
            "svc-ci",
            &["check", INC, "--name", c, "--result", "success"],
        )
        .await
        .unwrap();
    }
}

fn kinds(h: &Value) -> Vec<String> {
    h["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn killed_between_merge_sent_and_merge_recorded_records_it_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let (gh, addr) = fake(SHA, true).await;
    let d = hotfixd(dir.path(), addr).await;
    ready(&d, false).await;
    let endpoint = d.endpoint.clone();
    let merging = tokio::spawn(async move {
        let cli = hotfixctl::cli::Cli::try_parse_from([
            "hotfixctl",
            "--endpoint",
            &endpoint,
            "--token",
            "dev-carol",
            "merge",
            INC,
        ])
        .unwrap();
        hotfixctl::cli::run(cli, &mut Vec::new()).await
    });
    tokio::time::timeout(Duration::from_secs(30), gh.merge_received.notified())
        .await
        .expect("merge reached GitHub");
    drop(d); // SIGKILL while hotfixd waits for GitHub's answer
    assert!(
        merging.await.unwrap().is_err(),
        "the caller was never told it merged"
    );
    gh.fake.lock().unwrap().hang = false;

    let d = hotfixd(dir.path(), addr).await;
    let h = show(&d).await;
    assert_eq!(h["state"], "MERGED");
    assert_eq!(h["merge"]["by"], "carol");
    let k = kinds(&h);
    for kind in ["merge_requested", "merge_reconciled", "merged"] {
        assert_eq!(
            k.iter().filter(|x| *x == kind).count(),
            1,
            "{kind} once in {k:?}"
        );
    }
    // A second merge is refused by the lane and never reaches GitHub.
    let e = ctl(&d, "carol", &["merge", INC]).await.unwrap_err();
    assert_eq!(e.code, 19, "{}", e.message);
    let f = gh.fake.lock().unwrap();
    assert_eq!(f.merge_calls, 1, "no double merge");
    assert!(
        f.violations.is_empty(),
        "contract violations: {:?}",
        f.violations
    );
}

#[tokio::test]
async fn a_head_that_moved_since_approval_is_not_merged() {
    let dir = tempfile::tempdir().unwrap();
    let (gh, addr) = fake("2222222222222222222222222222222222222222", false).await;
    let d = hotfixd(dir.path(), addr).await;
    ready(&d, false).await;
    let e = ctl(&d, "carol", &["merge", INC]).await.unwrap_err();
    assert_eq!(e.code, 19);
    assert!(
        e.message.contains("no longer the approved"),
        "{}",
        e.message
    );
    let h = show(&d).await;
    assert_eq!(h["state"], "READY_TO_MERGE");
    assert!(kinds(&h).contains(&"merge_refused".to_string()));
    // Non-admins never reach GitHub.
    assert_eq!(ctl(&d, "bob", &["merge", INC]).await.unwrap_err().code, 17);
    let f = gh.fake.lock().unwrap();
    assert_eq!(f.merge_calls, 1);
    assert!(f.violations.is_empty(), "{:?}", f.violations);
}

#[tokio::test]
async fn a_drill_merge_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (gh, addr) = fake(SHA, false).await;
    let d = hotfixd(dir.path(), addr).await;
    ready(&d, true).await;
    ctl(&d, "carol", &["merge", INC]).await.unwrap();
    let h = show(&d).await;
    assert_eq!(h["state"], "MERGED");
    assert!(kinds(&h).contains(&"merge_dry_run".to_string()));
    assert_eq!(gh.fake.lock().unwrap().merge_calls, 0);
}

#[test]
fn the_contract_check_catches_a_wrong_shape() {
    let c = Contract::load();
    let ok = c.response_schema("put", 200).unwrap();
    assert!(
        c.check(
            ok,
            &json!({"sha": "x", "merged": true, "message": "m"}),
            "200"
        )
        .is_ok()
    );
    assert!(
        c.check(
            ok,
            &json!({"sha": "x", "merged": "yes", "message": "m"}),
            "200"
        )
        .is_err()
    );
    assert!(
        c.check(ok, &json!({"merged": true}), "200").is_err(),
        "sha and message are required"
    );
    let req = c.request_schema("put");
    assert!(
        c.check(req, &json!({"sha": SHA, "merge_method": "squash"}), "req")
            .is_ok()
    );
    assert!(
        c.check(req, &json!({"merge_method": "fast-forward"}), "req")
            .is_err()
    );
    assert!(c.response_schema("put", 418).is_none());
}

#[tokio::test]
async fn a_retried_merge_is_sent_to_github_once() {
    let dir = tempfile::tempdir().unwrap();
    let (gh, addr) = fake(SHA, false).await;
    let d = hotfixd(dir.path(), addr).await;
    ready(&d, false).await;
    let merge = ["--request-id", "merge-1", "--output", "json", "merge", INC];
    let first: Value = serde_json::from_str(&ctl(&d, "carol", &merge).await.unwrap()).unwrap();
    let again: Value = serde_json::from_str(&ctl(&d, "carol", &merge).await.unwrap()).unwrap();
    assert_eq!(first["state"], "MERGED");
    assert_eq!(first, again, "the retry answers the first answer");
    assert_eq!(gh.fake.lock().unwrap().merge_calls, 1);
}

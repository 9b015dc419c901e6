//! An in-process fake of GitHub holding one small world (branches, PRs,
//! checks, teams) and speaking GitHub's published contracts:
//!
//! - REST: each request is matched to an operation of GitHub's OpenAPI
//!   description (tests/contracts/github-rest-subset.json); its query
//!   parameters and body are validated against it, and so is every
//!   response. Responses are built from the operation's own schema (every
//!   required field, filled in) with the world's facts laid over it, so they
//!   look like GitHub's to any client.
//! - GraphQL: each query is parsed and validated against GitHub's schema
//!   (tests/contracts/github-schema.graphql) and executed against it, so
//!   the answer has exactly the shape and types the schema gives.
//!
//! Anything outside the contract is a violation; tests assert there are
//! none. Writes (POST, PUT, mutations) are listed, so a drill can be shown
//! to have sent none.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use apollo_compiler::resolvers::{Execution, FieldError, ObjectValue, ResolveInfo, ResolvedValue};
use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Schema};
use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::Notify;

pub const TOKEN: &str = "gh-test-token";
pub const OWNER: &str = "bookstore";
pub const REPO: &str = "bookstore/catalog";

/// GitHub's REST description, with OpenAPI 3.0's `nullable` turned into
/// JSON Schema so a validator can read it.
pub struct Contract {
    spec: Value,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

fn nullable_to_json_schema(v: &mut Value) {
    match v {
        Value::Object(o) => {
            for child in o.values_mut() {
                nullable_to_json_schema(child);
            }
            if o.remove("nullable") == Some(Value::Bool(true)) {
                if let Some(Value::Array(e)) = o.get_mut("enum") {
                    e.push(Value::Null);
                }
                match o.get("type").cloned() {
                    Some(Value::String(t)) => {
                        o.insert("type".into(), json!([t, "null"]));
                    }
                    _ => {
                        let inner = Value::Object(std::mem::take(o));
                        o.insert("anyOf".into(), json!([inner, {"type": "null"}]));
                    }
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(nullable_to_json_schema),
        _ => {}
    }
}

impl Contract {
    pub fn get() -> &'static Contract {
        static C: OnceLock<Contract> = OnceLock::new();
        C.get_or_init(|| {
            let mut spec: Value =
                serde_json::from_str(include_str!("../contracts/github-rest-subset.json"))
                    .expect("contract parses");
            nullable_to_json_schema(&mut spec);
            Contract {
                spec,
                validators: Mutex::default(),
            }
        })
    }

    /// The operation `method path` matches, with its path parameters.
    fn route(&self, method: &str, path: &str) -> Option<(String, BTreeMap<String, String>)> {
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        for (template, ops) in self.spec["paths"].as_object()? {
            if ops.get(method).is_none() {
                continue;
            }
            let tsegs: Vec<&str> = template.trim_matches('/').split('/').collect();
            if tsegs.len() != segs.len() {
                continue;
            }
            let mut params = BTreeMap::new();
            let matched = tsegs.iter().zip(&segs).all(|(t, s)| {
                if let Some(name) = t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                    params.insert(name.to_string(), percent_decode(s));
                    true
                } else {
                    t == s
                }
            });
            if matched {
                return Some((template.clone(), params));
            }
        }
        None
    }

    fn op(&self, template: &str, method: &str) -> &Value {
        &self.spec["paths"][template][method]
    }

    pub fn check(&self, pointer: &str, v: &Value) -> Result<(), String> {
        let validator = {
            let mut cache = self.validators.lock().unwrap();
            match cache.get(pointer) {
                Some(v) => v.clone(),
                None => {
                    let schema = self
                        .spec
                        .pointer(pointer)
                        .ok_or_else(|| format!("{pointer} is not in the contract"))?;
                    let v = Arc::new(jsonschema::draft4::new(schema).map_err(|e| e.to_string())?);
                    cache.insert(pointer.to_string(), v.clone());
                    v
                }
            }
        };
        let errors: Vec<String> = validator
            .iter_errors(v)
            .map(|e| format!("{e} at {}", e.instance_path))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// The JSON pointer of the response schema of `template method code`.
    fn response_pointer(&self, template: &str, method: &str, code: u16) -> Option<String> {
        let r = &self.op(template, method)["responses"][code.to_string()];
        if r.is_null() {
            return None;
        }
        Some(format!(
            "/paths/{}/{method}/responses/{code}/content/application~1json/schema",
            template.replace('~', "~0").replace('/', "~1")
        ))
    }

    /// A value of `pointer`'s schema with every required field filled in.
    pub fn example(&self, pointer: &str) -> Value {
        example(self.spec.pointer(pointer).expect("schema in the contract"))
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(x) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(x);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A minimal value of a JSON schema: required properties only, nulls where
/// allowed, the first enum value, valid formats.
pub fn example(schema: &Value) -> Value {
    example_in(schema, &Value::Null, 0)
}

/// [`example`] for a schema whose `$ref`s point into `root`.
fn example_in(schema: &Value, root: &Value, depth: u32) -> Value {
    let example = |s: &Value| example_in(s, root, depth + 1);
    if depth > 64 {
        return Value::Null;
    }
    if let Some(r) = schema["$ref"].as_str() {
        let target = root
            .pointer(r.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("{r} is not in the schema"));
        return example(target);
    }
    if let Some(all) = schema["allOf"].as_array() {
        let mut v = json!({});
        for s in all {
            overlay(&mut v, example(s));
        }
        return v;
    }
    for k in ["anyOf", "oneOf"] {
        if let Some(first) = schema[k].as_array().and_then(|a| a.first()) {
            return example(first);
        }
    }
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
        return first.clone();
    }
    let ty = match &schema["type"] {
        Value::Array(ts) if ts.contains(&json!("null")) => return Value::Null,
        Value::Array(ts) => ts[0].as_str().unwrap_or("object").to_string(),
        Value::String(t) => t.clone(),
        _ if schema["properties"].is_object() => "object".into(),
        _ => return Value::Null,
    };
    match ty.as_str() {
        "object" => {
            let mut o = serde_json::Map::new();
            for name in schema["required"].as_array().into_iter().flatten() {
                let name = name.as_str().unwrap();
                o.insert(name.into(), example(&schema["properties"][name]));
            }
            Value::Object(o)
        }
        "array" => {
            let n = schema["minItems"].as_u64().unwrap_or(0);
            Value::Array((0..n).map(|_| example(&schema["items"])).collect())
        }
        "integer" => json!(schema["minimum"].as_i64().unwrap_or(1).max(1)),
        "number" => json!(1.0),
        "boolean" => json!(false),
        _ => json!(match schema["format"].as_str() {
            Some("date-time") => "2026-05-20T09:00:00Z",
            Some("date") => "2026-05-20",
            Some("email") => "octocat@github.example",
            Some("uri" | "uri-template" | "url") => "https://github.example/x",
            Some("uuid") => "6f1d1f5e-8a3f-4a1e-9a39-2f1f2b7d1e10",
            _ => "x",
        }),
    }
}

/// GitHub's webhook payload schemas (`@octokit/webhooks-schemas`, JSON
/// Schema draft 7, one definition per event and action).
fn webhook_schemas() -> &'static Value {
    static S: OnceLock<Value> = OnceLock::new();
    S.get_or_init(|| {
        serde_json::from_str(include_str!("../contracts/github-webhooks-schema.json"))
            .expect("the webhook schemas parse")
    })
}

/// A webhook payload as GitHub sends it: `definition`'s schema (such as
/// `push$event`, `check_suite$completed`) with every required field, `top`
/// laid over it, and checked against the schema, so that a test cannot
/// send hotfixd a payload GitHub never would.
pub fn webhook(definition: &str, top: Value) -> Vec<u8> {
    let schemas = webhook_schemas();
    let schema = &schemas["definitions"][definition];
    assert!(schema.is_object(), "no webhook payload schema {definition}");
    let mut v = example_in(schema, schemas, 0);
    overlay(&mut v, top);
    let mut root = json!({"$ref": format!("#/definitions/{definition}")});
    root["definitions"] = schemas["definitions"].clone();
    let validator = jsonschema::draft7::new(&root).expect("the schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&v)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "not a {definition} payload GitHub would send: {errors:?}"
    );
    v.to_string().into_bytes()
}

/// Lays `top` over `base`: objects merge, anything else replaces.
pub fn overlay(base: &mut Value, top: Value) {
    match (base, top) {
        (Value::Object(b), Value::Object(t)) => {
            for (k, v) in t {
                match b.get_mut(&k) {
                    Some(slot) if slot.is_object() && v.is_object() => overlay(slot, v),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, t) => *b = t,
    }
}

#[derive(Debug, Clone, Default)]
pub struct Branch {
    pub sha: String,
    pub message: String,
    /// path, added, removed
    pub files: Vec<(String, u32, u32)>,
}

#[derive(Debug, Clone, Default)]
pub struct Pull {
    pub number: u64,
    pub node_id: String,
    pub title: String,
    pub body: String,
    pub head_ref: String,
    pub head_sha: String,
    pub base_ref: String,
    pub labels: Vec<String>,
    pub open: bool,
    pub merged: bool,
    pub merge_sha: String,
    pub author: String,
    /// reviewer, state (APPROVED, ...)
    pub reviews: Vec<(String, String)>,
}

/// A check run: name, status (queued/in_progress/completed), conclusion.
#[derive(Debug, Clone)]
pub struct CheckRun {
    pub name: String,
    pub status: String,
    pub conclusion: Option<String>,
}

impl CheckRun {
    pub fn done(name: &str, conclusion: &str) -> CheckRun {
        CheckRun {
            name: name.into(),
            status: "completed".into(),
            conclusion: Some(conclusion.into()),
        }
    }

    pub fn running(name: &str) -> CheckRun {
        CheckRun {
            name: name.into(),
            status: "in_progress".into(),
            conclusion: None,
        }
    }
}

#[derive(Debug, Default)]
pub struct World {
    pub branches: BTreeMap<String, Branch>,
    pub pulls: Vec<Pull>,
    /// By commit SHA.
    pub check_runs: BTreeMap<String, Vec<CheckRun>>,
    /// By commit SHA: context, state.
    pub statuses: BTreeMap<String, Vec<(String, String)>>,
    /// Every commit status set: SHA, context, state, description.
    pub status_posts: Vec<(String, String, String, String)>,
    /// "org/team" → active members.
    pub teams: BTreeMap<String, BTreeSet<String>>,
    /// Every write received: "POST /repos/...", "graphql revertPullRequest".
    pub writes: Vec<String>,
    pub requests: u32,
    pub violations: Vec<String>,
    /// The next request to this operation ("put /repos/.../merge") is
    /// carried out, then answered only after a minute (the test kills
    /// hotfixd meanwhile).
    pub hang: Option<&'static str>,
    pub merge_calls: u32,
    /// The next this many reads answer 503 (where the contract has it).
    pub unavailable: u32,
    /// The GitHub App the fake knows; with it, the bot's TOKEN is refused.
    pub app: Option<FakeApp>,
    /// People's own tokens: token → login (they act around hotfixd).
    pub people: BTreeMap<String, String>,
    /// A branch ruleset on the default branch: a merge needs the latest
    /// status of this context on the head to be `success`, unless made by
    /// the App (its only bypass actor).
    pub required_status: Option<String>,
    /// Every request refused 401: who, and why.
    pub unauthorized: Vec<String>,
}

/// Who a request comes from, as its `Authorization` says.
#[derive(Debug, Clone, PartialEq)]
pub enum Caller {
    /// The bot's token ([`TOKEN`]).
    Bot,
    /// A person's token (`World::people`).
    Person(String),
    /// The App itself, by a JWT it signed.
    App,
    /// An App installation's token.
    Installation(u64),
}

/// A GitHub App registered with the fake: its installations and the
/// tokens minted for them. Its key pair is `keys/github-app*.pem`.
#[derive(Debug)]
pub struct FakeApp {
    pub id: u64,
    /// Account (lowercase) → installation id.
    pub installations: BTreeMap<String, u64>,
    /// How long a minted token lasts (GitHub: an hour).
    pub token_ttl: chrono::TimeDelta,
    /// Token → installation, expiry.
    pub tokens: BTreeMap<String, (u64, chrono::DateTime<chrono::Utc>)>,
    /// Installation lookups and tokens minted.
    pub lookups: u32,
    pub minted: u32,
}

pub const APP_ID: u64 = 424242;
/// The App's private key, as GitHub hands it out (a key made for these
/// tests only).
pub const APP_PRIVATE_KEY: &str = include_str!("keys/github-app.pem");
const APP_PUBLIC_KEY: &str = include_str!("keys/github-app.pub.pem");

impl FakeApp {
    /// The App, installed on [`OWNER`].
    pub fn installed() -> FakeApp {
        FakeApp {
            id: APP_ID,
            installations: [(OWNER.to_string(), 1001)].into(),
            token_ttl: chrono::TimeDelta::hours(1),
            tokens: BTreeMap::new(),
            lookups: 0,
            minted: 0,
        }
    }

    /// Uninstalls the App from `account` and installs it again: a new
    /// installation id, every token of the old one revoked.
    pub fn reinstall(&mut self, account: &str) -> u64 {
        let old = self.installations.get(account).copied();
        let new = old.unwrap_or(1000) + 100;
        self.installations.insert(account.to_string(), new);
        self.tokens.retain(|_, (i, _)| Some(*i) != old);
        new
    }

    /// Revokes every token minted so far.
    pub fn revoke_all(&mut self) {
        self.tokens.clear();
    }
}

/// Checks an App JWT as GitHub does: RS256 under the App's public key,
/// `iss` the App's id, issued in the past, expiring within ten minutes.
fn app_jwt_ok(jwt: &str, app_id: u64) -> Result<(), String> {
    #[derive(serde::Deserialize)]
    struct Claims {
        iss: Value,
        iat: i64,
        exp: i64,
    }
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(APP_PUBLIC_KEY.as_bytes()).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    // `iss` is checked below: GitHub takes the id as a number (octocrab
    // sends one), which jsonwebtoken's own check reads as missing.
    v.set_required_spec_claims(&["exp"]);
    let c = jsonwebtoken::decode::<Claims>(jwt, &key, &v)
        .map_err(|e| format!("A JSON web token could not be decoded: {e}"))?
        .claims;
    let now = chrono::Utc::now().timestamp();
    if c.iss != json!(app_id) && c.iss != json!(app_id.to_string()) {
        return Err(format!("'Issuer' claim ('iss') {} is not this App", c.iss));
    }
    if c.iat > now + 60 {
        return Err(
            "'Issued at' claim ('iat') must be an Integer representing a time in the past".into(),
        );
    }
    if c.exp > now + 600 + 60 {
        return Err("'Expiration time' claim ('exp') is too far in the future".into());
    }
    Ok(())
}

/// The routes GitHub takes an App's JWT on (the rest want a token).
fn jwt_route(path: &str) -> bool {
    path.starts_with("/app/")
        || path.ends_with("/installation")
            && (path.starts_with("/repos/") || path.starts_with("/orgs/"))
}

/// What a test reads of the world after waiting for it.
pub struct WorldView {
    pub status_posts: Vec<(String, String, String, String)>,
    pub statuses: BTreeMap<String, Vec<(String, String)>>,
}

impl World {
    pub fn pull(&self, number: u64) -> Option<&Pull> {
        self.pulls.iter().find(|p| p.number == number)
    }

    pub fn pull_mut(&mut self, number: u64) -> Option<&mut Pull> {
        self.pulls.iter_mut().find(|p| p.number == number)
    }

    /// Opens a PR as if someone did on GitHub; returns its number.
    pub fn open_pull(&mut self, head_ref: &str, title: &str, author: &str) -> u64 {
        let number = 4321 + self.pulls.len() as u64;
        let head_sha = self
            .branches
            .get(head_ref)
            .map(|b| b.sha.clone())
            .unwrap_or_else(|| format!("{number:0>40}"));
        self.pulls.push(Pull {
            number,
            node_id: format!("PR_kw{number}"),
            title: title.into(),
            head_ref: head_ref.into(),
            head_sha,
            base_ref: "main".into(),
            open: true,
            author: author.into(),
            ..Pull::default()
        });
        number
    }

    /// Every required fast-path check run on `sha` with `conclusion`.
    pub fn finish_checks(&mut self, sha: &str, conclusion: &str) {
        self.check_runs.insert(
            sha.to_string(),
            ["lint", "unit-changed-package", "scan", "build-sign-push"]
                .iter()
                .map(|n| CheckRun::done(n, conclusion))
                .collect(),
        );
    }
}

struct Shared {
    world: Mutex<World>,
    held: Notify,
}

pub struct FakeGitHub {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl FakeGitHub {
    pub async fn start() -> FakeGitHub {
        let shared = Arc::new(Shared {
            world: Mutex::new(World::default()),
            held: Notify::new(),
        });
        let s = shared.clone();
        let app = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let s = s.clone();
                async move { handle(&s, method, uri, headers, body).await }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeGitHub { addr, shared }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The `[github]` section pointing hotfixd here.
    pub fn config(&self, extra: &str) -> String {
        format!(
            "[github]\nurl = \"{}\"\nchecks_poll = \"50ms\"\n{extra}\n",
            self.url()
        )
    }

    pub fn world(&self) -> MutexGuard<'_, World> {
        self.shared.world.lock().unwrap()
    }

    /// Waits (at most 10 s) until `cond` holds of the world; a copy of
    /// what it holds then.
    pub async fn clone_world_when(&self, cond: impl Fn(&World) -> bool) -> WorldView {
        for _ in 0..500 {
            {
                let w = self.world();
                if cond(&w) {
                    return WorldView {
                        status_posts: w.status_posts.clone(),
                        statuses: w.statuses.clone(),
                    };
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!(
            "timed out waiting on the fake GitHub: {:?}",
            self.world().status_posts
        );
    }

    /// Resolves once the request named by `World::hang` was carried out.
    pub async fn held(&self) {
        self.shared.held.notified().await
    }

    /// Sends a webhook delivery to `url` as GitHub does: `event` in
    /// `X-GitHub-Event`, `delivery` in `X-GitHub-Delivery`, the body's
    /// HMAC-SHA256 under `secret` in `X-Hub-Signature-256` (`None`: no
    /// signature). The payload is sent as given: build it with [`webhook`]
    /// (GitHub's published schemas), or pass the bytes an attacker would.
    /// The status and body of the answer.
    pub async fn deliver(
        url: &str,
        secret: Option<&str>,
        event: &str,
        delivery: &str,
        payload: &[u8],
    ) -> (u16, String) {
        use hmac::Mac;
        let mut req = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .header("user-agent", "GitHub-Hookshot/fake")
            .header("x-github-event", event)
            .header("x-github-delivery", delivery)
            .body(payload.to_vec());
        if let Some(secret) = secret {
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
            mac.update(payload);
            let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
            req = req.header("x-hub-signature-256", signature);
        }
        let r = req.send().await.expect("the delivery reaches hotfixd");
        let status = r.status().as_u16();
        (status, r.text().await.unwrap_or_default())
    }

    /// A merge of PR `number` at `sha` by whoever holds `token`, through
    /// the API as a person would send it: the status and the answer.
    pub async fn merge_as(&self, token: &str, number: u64, sha: &str) -> (u16, Value) {
        let r = reqwest::Client::new()
            .put(format!("{}/repos/{REPO}/pulls/{number}/merge", self.url()))
            .header("authorization", format!("Bearer {token}"))
            .header("user-agent", "a-person")
            .json(&json!({"sha": sha, "merge_method": "squash"}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// The `[github]` section signing in as the fake's App, its private key
    /// written to `dir` (pass the path as `--github-app-private-key-file`).
    pub fn app_config(&self, dir: &std::path::Path, extra: &str) -> (String, std::path::PathBuf) {
        let key = dir.join("github-app.pem");
        std::fs::write(&key, APP_PRIVATE_KEY).unwrap();
        (self.config(&format!("app_id = {APP_ID}\n{extra}")), key)
    }

    /// Fails the test if anything crossed the wire outside the contract.
    pub fn assert_contract_kept(&self) {
        let w = self.world();
        assert!(
            w.violations.is_empty(),
            "GitHub contract violations: {:#?}",
            w.violations
        );
        assert!(w.requests > 0, "the fake received no request");
    }
}

/// A branch with one small fix commit, as GitHub would hold it.
pub fn fix_branch(sha: &str, message: &str) -> Branch {
    Branch {
        sha: sha.into(),
        message: message.into(),
        files: vec![("catalog/handler.go".into(), 3, 1)],
    }
}

async fn handle(s: &Shared, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let c = Contract::get();
    s.world.lock().unwrap().requests += 1;
    let violation = |msg: String| s.world.lock().unwrap().violations.push(msg);
    let path = uri.path().to_string();
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let who = authenticate(&mut s.world.lock().unwrap(), auth, &path);
    let caller = match who {
        Ok(c) => c,
        Err(why) => {
            s.world
                .lock()
                .unwrap()
                .unauthorized
                .push(format!("{method} {path}: {why}"));
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(
                    json!({"message": why, "documentation_url": "https://docs.github.com/rest"}),
                ),
            )
                .into_response();
        }
    };
    if path == "/graphql" && method == Method::POST {
        return graphql(s, &body).into_response();
    }
    let m = method.as_str().to_lowercase();
    let Some((template, params)) = c.route(&m, &path) else {
        violation(format!(
            "{method} {path} is not an operation of the contract"
        ));
        return StatusCode::NOT_FOUND.into_response();
    };
    let op = c.op(&template, &m);
    let query: Vec<(String, String)> = uri
        .query()
        .map(|q| {
            q.split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), percent_decode(&v.replace('+', " "))))
                .collect()
        })
        .unwrap_or_default();
    for (k, _) in &query {
        let known = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["in"] == "query" && p["name"] == k.as_str());
        if !known {
            violation(format!("{m} {template}: unknown query parameter '{k}'"));
        }
    }
    let req: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap_or_else(|e| {
            violation(format!("{m} {template}: body is not JSON: {e}"));
            Value::Null
        })
    };
    if op["requestBody"].is_object() {
        let pointer = format!(
            "/paths/{}/{m}/requestBody/content/application~1json/schema",
            template.replace('/', "~1")
        );
        if let Err(e) = c.check(&pointer, &req) {
            violation(format!("{m} {template} request: {e}"));
        }
    }
    if m != "get" {
        s.world
            .lock()
            .unwrap()
            .writes
            .push(format!("{method} {path}"));
    }
    let q: BTreeMap<String, String> = query.into_iter().collect();
    let (code, answer, hang) = {
        let mut w = s.world.lock().unwrap();
        let outage =
            m == "get" && w.unavailable > 0 && c.response_pointer(&template, &m, 503).is_some();
        let (code, answer) = if outage {
            w.unavailable -= 1;
            (503, Some(error("Service Unavailable")))
        } else {
            answer(&mut w, &caller, &template, &m, &params, &q, &req)
        };
        let op = format!("{m} {template}");
        let hang = w.hang == Some(op.as_str());
        if hang {
            w.hang = None;
        }
        (code, answer, hang)
    };
    if hang {
        s.held.notify_one();
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    let status = StatusCode::from_u16(code).unwrap();
    match c.response_pointer(&template, &m, code) {
        None => {
            violation(format!(
                "{m} {template}: {code} is not a documented response"
            ));
            status.into_response()
        }
        Some(pointer) => match answer {
            Some(b) => {
                if let Err(e) = c.check(&pointer, &b) {
                    violation(format!("{m} {template} {code} response: {e}"));
                }
                (status, axum::Json(b)).into_response()
            }
            None => status.into_response(),
        },
    }
}

/// Who `auth` (the `Authorization` header) is, or why GitHub answers 401.
fn authenticate(w: &mut World, auth: &str, path: &str) -> Result<Caller, String> {
    let Some(token) = auth
        .strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("token "))
    else {
        return Err("Requires authentication".into());
    };
    if let Some(login) = w.people.get(token) {
        return Ok(Caller::Person(login.clone()));
    }
    let Some(app) = &mut w.app else {
        return if token == TOKEN {
            Ok(Caller::Bot)
        } else {
            Err("Bad credentials".into())
        };
    };
    if token.split('.').count() == 3 {
        app_jwt_ok(token, app.id)?;
        if !jwt_route(path) {
            return Err(format!(
                "an App's JWT is taken on /app endpoints only, not {path}"
            ));
        }
        return Ok(Caller::App);
    }
    match app.tokens.get(token) {
        Some((installation, expires)) if *expires > chrono::Utc::now() => {
            if jwt_route(path) && path.starts_with("/app/") {
                return Err("an installation token cannot mint tokens".into());
            }
            Ok(Caller::Installation(*installation))
        }
        Some(_) => Err("Bad credentials (the installation token expired)".into()),
        None => Err("Bad credentials".into()),
    }
}

fn schema_of(template: &str, m: &str, code: u16) -> String {
    Contract::get()
        .response_pointer(template, m, code)
        .expect("documented response")
}

fn error(message: &str) -> Value {
    json!({"message": message, "documentation_url": "https://docs.github.com/rest"})
}

fn label_json(name: &str) -> Value {
    let c = Contract::get();
    let mut l = c.example(&format!(
        "{}/items",
        schema_of(
            "/repos/{owner}/{repo}/issues/{issue_number}/labels",
            "post",
            200
        )
    ));
    overlay(&mut l, json!({"name": name, "color": "d73a4a"}));
    l
}

/// A complete `simple-user` named `login`.
fn user_json(login: &str) -> Value {
    let mut u = Contract::get().example(&format!(
        "{}/properties/user",
        schema_of("/repos/{owner}/{repo}/pulls/{pull_number}", "get", 200)
    ));
    overlay(&mut u, json!({"login": login, "type": "User"}));
    u
}

fn pull_json(pointer: &str, p: &Pull) -> Value {
    let mut v = Contract::get().example(pointer);
    let html = format!("https://github.com/{REPO}/pull/{}", p.number);
    overlay(
        &mut v,
        json!({
            "number": p.number,
            "node_id": p.node_id,
            "html_url": html,
            "title": p.title,
            "body": p.body,
            "state": if p.open { "open" } else { "closed" },
            "user": user_json(&p.author),
            "labels": p.labels.iter().map(|l| label_json(l)).collect::<Vec<_>>(),
            "head": {"ref": p.head_ref, "sha": p.head_sha, "label": format!("{OWNER}:{}", p.head_ref)},
            "base": {"ref": p.base_ref, "sha": "0000000000000000000000000000000000000000", "label": format!("{OWNER}:{}", p.base_ref)},
            "merged_at": if p.merged { json!("2026-05-20T09:20:00Z") } else { Value::Null },
            "merge_commit_sha": if p.merged { json!(p.merge_sha) } else { Value::Null },
        }),
    );
    if v.get("merged").is_some() {
        v["merged"] = json!(p.merged);
    }
    v
}

/// The world's answer to one REST operation.
fn answer(
    w: &mut World,
    caller: &Caller,
    template: &str,
    m: &str,
    params: &BTreeMap<String, String>,
    q: &BTreeMap<String, String>,
    req: &Value,
) -> (u16, Option<Value>) {
    let repo = format!(
        "{}/{}",
        params.get("owner").map_or("", |s| s),
        params.get("repo").map_or("", |s| s)
    );
    if params.contains_key("repo") && repo != REPO {
        return (404, None);
    }
    let number = params
        .get("pull_number")
        .or(params.get("issue_number"))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    let sch = |code| schema_of(template, m, code);
    // An installation's token acts on its own account only.
    if let Caller::Installation(id) = caller {
        let account = params
            .get("owner")
            .or(params.get("org"))
            .map(|a| a.to_ascii_lowercase())
            .unwrap_or_default();
        let installed = w.app.as_ref().and_then(|a| a.installations.get(&account));
        if !account.is_empty() && installed != Some(id) {
            w.violations.push(format!(
                "{m} {template}: installation {id}'s token used on {account}"
            ));
            return (404, None);
        }
    }
    match (template, m) {
        ("/repos/{owner}/{repo}/installation", "get") | ("/orgs/{org}/installation", "get") => {
            let account = params
                .get("owner")
                .or(params.get("org"))
                .unwrap()
                .to_ascii_lowercase();
            let app = w.app.as_mut().expect("an App JWT implies an App");
            app.lookups += 1;
            let Some(id) = app.installations.get(&account).copied() else {
                return (404, Some(error("Not Found")));
            };
            let mut v = Contract::get().example(&sch(200));
            overlay(
                &mut v,
                json!({"id": id, "app_id": app.id, "target_type": "Organization", "account": user_json(&account)}),
            );
            (200, Some(v))
        }
        ("/app/installations/{installation_id}/access_tokens", "post") => {
            let app = w.app.as_mut().expect("an App JWT implies an App");
            let id: u64 = params["installation_id"].parse().unwrap_or(0);
            if !app.installations.values().any(|i| *i == id) {
                return (404, Some(error("Not Found")));
            }
            app.minted += 1;
            let token = format!("ghs_fake{}x{id}", app.minted);
            let expires_at = chrono::Utc::now() + app.token_ttl;
            app.tokens.insert(token.clone(), (id, expires_at));
            let mut v = Contract::get().example(&sch(201));
            overlay(
                &mut v,
                json!({"token": token, "expires_at": expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), "repository_selection": "all"}),
            );
            (201, Some(v))
        }
        ("/repos/{owner}/{repo}/compare/{basehead}", "get") => {
            let Some((_, head)) = params["basehead"].split_once("...") else {
                return (404, None);
            };
            let Some(b) = w.branches.get(head) else {
                return (404, None);
            };
            let mut v = Contract::get().example(&sch(200));
            let mut commit =
                Contract::get().example(&format!("{}/properties/commits/items", sch(200)));
            overlay(
                &mut commit,
                json!({"sha": b.sha, "commit": {"message": b.message}}),
            );
            let files: Vec<Value> = b
                .files
                .iter()
                .map(|(path, add, del)| {
                    let mut f = Contract::get().example(&format!("{}/properties/files/items", sch(200)));
                    overlay(&mut f, json!({"filename": path, "additions": add, "deletions": del, "changes": add + del, "status": "modified"}));
                    f
                })
                .collect();
            overlay(
                &mut v,
                json!({"status": "ahead", "ahead_by": 1, "behind_by": 0, "total_commits": 1, "commits": [commit], "files": files}),
            );
            (200, Some(v))
        }
        ("/repos/{owner}/{repo}/pulls", "get") => {
            let head = q.get("head").cloned().unwrap_or_default();
            let open_only = q.get("state").is_none_or(|s| s == "open");
            let items = format!("{}/items", sch(200));
            let list: Vec<Value> = w
                .pulls
                .iter()
                .filter(|p| !open_only || p.open)
                .filter(|p| head.is_empty() || head == format!("{OWNER}:{}", p.head_ref))
                .map(|p| pull_json(&items, p))
                .collect();
            (200, Some(Value::Array(list)))
        }
        ("/repos/{owner}/{repo}/pulls", "post") => {
            let head = req["head"].as_str().unwrap_or_default().to_string();
            if w.pulls.iter().any(|p| p.open && p.head_ref == head) {
                return (
                    422,
                    Some(error(&format!(
                        "A pull request already exists for {OWNER}:{head}."
                    ))),
                );
            }
            let Some(branch) = w.branches.get(&head).cloned() else {
                return (422, Some(error("Validation Failed")));
            };
            let n = w.open_pull(
                &head,
                req["title"].as_str().unwrap_or_default(),
                "hotfixd-bot",
            );
            let p = w.pull_mut(n).unwrap();
            p.body = req["body"].as_str().unwrap_or_default().into();
            p.base_ref = req["base"].as_str().unwrap_or_default().into();
            p.head_sha = branch.sha;
            let p = p.clone();
            (201, Some(pull_json(&sch(201), &p)))
        }
        ("/repos/{owner}/{repo}/pulls/{pull_number}", "get") => match w.pull(number) {
            Some(p) => (200, Some(pull_json(&sch(200), p))),
            None => (404, Some(error("Not Found"))),
        },
        ("/repos/{owner}/{repo}/statuses/{sha}", "post") => {
            let (sha, context, state) = (
                params["sha"].clone(),
                req["context"].as_str().unwrap_or("default").to_string(),
                req["state"].as_str().unwrap_or_default().to_string(),
            );
            let description = req["description"].as_str().unwrap_or_default().to_string();
            // The latest per context is the one that counts.
            let list = w.statuses.entry(sha.clone()).or_default();
            list.retain(|(c, _)| *c != context);
            list.push((context.clone(), state.clone()));
            w.status_posts.push((
                sha.clone(),
                context.clone(),
                state.clone(),
                description.clone(),
            ));
            let mut v = Contract::get().example(&sch(201));
            overlay(
                &mut v,
                json!({"context": context, "state": state, "description": description}),
            );
            (201, Some(v))
        }
        ("/repos/{owner}/{repo}/issues/{issue_number}/labels", "post") => {
            let Some(p) = w.pull_mut(number) else {
                return (404, Some(error("Not Found")));
            };
            for l in req["labels"].as_array().into_iter().flatten() {
                let l = l.as_str().unwrap_or_default().to_string();
                if !p.labels.contains(&l) {
                    p.labels.push(l);
                }
            }
            let labels = p.labels.iter().map(|l| label_json(l)).collect();
            (200, Some(Value::Array(labels)))
        }
        ("/repos/{owner}/{repo}/pulls/{pull_number}/reviews", "get") => {
            let Some(p) = w.pull(number) else {
                return (200, Some(json!([])));
            };
            let items = format!("{}/items", sch(200));
            let list = p
                .reviews
                .iter()
                .map(|(who, state)| {
                    let mut r = Contract::get().example(&items);
                    overlay(
                        &mut r,
                        json!({"user": user_json(who), "state": state, "commit_id": p.head_sha}),
                    );
                    r
                })
                .collect();
            (200, Some(Value::Array(list)))
        }
        ("/repos/{owner}/{repo}/pulls/{pull_number}/merge", "put") => {
            w.merge_calls += 1;
            let Some(p) = w.pull(number) else {
                return (404, Some(error("Not Found")));
            };
            if p.merged {
                return (405, Some(error("Pull Request is not mergeable")));
            }
            if let Some(context) = &w.required_status
                && !matches!(caller, Caller::Installation(_))
            {
                let latest = w.statuses.get(&p.head_sha).and_then(|l| {
                    l.iter()
                        .rev()
                        .find(|(c, _)| c == context)
                        .map(|(_, s)| s.clone())
                });
                if latest.as_deref() != Some("success") {
                    return (
                        405,
                        Some(error(&format!(
                            "Repository rule violations found\n\nRequired status check \"{context}\" is expected."
                        ))),
                    );
                }
            }
            let p = w.pull_mut(number).expect("found above");
            if req["sha"] != json!(p.head_sha) {
                return (
                    409,
                    Some(error(
                        "Head branch was modified. Review and try the merge again.",
                    )),
                );
            }
            let sha = format!("{:0>40}", format!("9{}", p.number));
            p.merged = true;
            p.open = false;
            p.merge_sha = sha.clone();
            let bad_method = req["merge_method"] != json!("squash");
            if bad_method {
                w.violations.push(format!(
                    "merge_method {} is not squash",
                    req["merge_method"]
                ));
            }
            (
                200,
                Some(
                    json!({"sha": sha, "merged": true, "message": "Pull Request successfully merged"}),
                ),
            )
        }
        ("/repos/{owner}/{repo}/pulls/{pull_number}/merge", "get") => {
            let merged = w.pull(number).is_some_and(|p| p.merged);
            (if merged { 204 } else { 404 }, None)
        }
        ("/repos/{owner}/{repo}/commits/{ref}/check-runs", "get") => {
            let runs = w
                .check_runs
                .get(&params["ref"])
                .cloned()
                .unwrap_or_default();
            let items = format!("{}/properties/check_runs/items", sch(200));
            let list: Vec<Value> = runs
                .iter()
                .map(|r| {
                    let mut v = Contract::get().example(&items);
                    overlay(&mut v, json!({"name": r.name, "status": r.status, "conclusion": r.conclusion, "head_sha": params["ref"], "html_url": format!("https://github.com/{REPO}/runs/1")}));
                    v
                })
                .collect();
            (
                200,
                Some(json!({"total_count": list.len(), "check_runs": list})),
            )
        }
        ("/repos/{owner}/{repo}/commits/{ref}/status", "get") => {
            let statuses = w.statuses.get(&params["ref"]).cloned().unwrap_or_default();
            let mut v = Contract::get().example(&sch(200));
            let items = format!("{}/properties/statuses/items", sch(200));
            let list: Vec<Value> = statuses
                .iter()
                .map(|(context, state)| {
                    let mut s = Contract::get().example(&items);
                    overlay(&mut s, json!({"context": context, "state": state, "description": format!("{context} {state}")}));
                    s
                })
                .collect();
            let state = if statuses.iter().any(|(_, s)| s == "failure" || s == "error") {
                "failure"
            } else if statuses.iter().all(|(_, s)| s == "success") {
                "success"
            } else {
                "pending"
            };
            overlay(
                &mut v,
                json!({"state": state, "sha": params["ref"], "total_count": list.len(), "statuses": list}),
            );
            (200, Some(v))
        }
        ("/orgs/{org}/teams/{team_slug}/memberships/{username}", "get") => {
            let team = format!("{}/{}", params["org"], params["team_slug"]);
            let member = w
                .teams
                .get(&team)
                .is_some_and(|m| m.contains(&params["username"]));
            if member {
                let mut v = Contract::get().example(&sch(200));
                overlay(&mut v, json!({"role": "member", "state": "active"}));
                (200, Some(v))
            } else {
                (404, None)
            }
        }
        _ => {
            w.violations
                .push(format!("the fake does not implement {m} {template}"));
            (404, None)
        }
    }
}

fn github_schema() -> &'static Valid<Schema> {
    static S: OnceLock<Valid<Schema>> = OnceLock::new();
    S.get_or_init(|| {
        let sdl = include_str!("../contracts/github-schema.graphql");
        match Schema::parse_and_validate(sdl, "github-schema.graphql") {
            Ok(s) => s,
            // The published SDL repeats a few fields of some Enterprise
            // types; that is its only defect, and the first definition is
            // kept. Anything else fails the test.
            Err(e) => {
                let other: Vec<String> = e
                    .errors
                    .iter()
                    .map(|d| d.to_string())
                    .filter(|m| !m.contains("duplicate definitions for the"))
                    .collect();
                assert!(other.is_empty(), "GitHub's schema: {}", other.join("\n"));
                Valid::assume_valid(e.partial)
            }
        }
    })
}

/// Executes a GraphQL request against GitHub's schema; the world resolves
/// the fields. An invalid query is a violation and GitHub's error answer.
fn graphql(s: &Shared, body: &[u8]) -> (StatusCode, axum::Json<Value>) {
    let req: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let query = req["query"].as_str().unwrap_or_default();
    let schema = github_schema();
    let doc = match ExecutableDocument::parse_and_validate(schema, query, "query.graphql") {
        Ok(d) => d,
        Err(e) => {
            let msg = e.errors.to_string();
            s.world.lock().unwrap().violations.push(format!(
                "GraphQL query invalid against GitHub's schema: {msg}"
            ));
            return (
                StatusCode::OK,
                axum::Json(json!({"errors": [{"message": msg}]})),
            );
        }
    };
    let vars: serde_json_bytes::Map<serde_json_bytes::ByteString, serde_json_bytes::Value> =
        serde_json::from_value(req.get("variables").cloned().unwrap_or(json!({})))
            .unwrap_or_default();
    let mut w = s.world.lock().unwrap();
    let is_mutation = doc
        .operations
        .iter()
        .any(|o| o.operation_type == apollo_compiler::ast::OperationType::Mutation);
    if is_mutation {
        let fields: Vec<String> = doc
            .operations
            .iter()
            .flat_map(|o| o.selection_set.fields().map(|f| f.name.to_string()))
            .collect();
        w.writes.push(format!("graphql {}", fields.join(",")));
    }
    let result = {
        let root = Root {
            world: std::cell::RefCell::new(&mut w),
        };
        Execution::new(schema, &doc)
            .raw_variable_values(&vars)
            .execute_sync(&root)
            .map(|r| serde_json::to_value(&r).unwrap())
            .map_err(|e| serde_json::to_value(e.to_graphql_error(&doc.sources)).unwrap())
    };
    let response = match result {
        Ok(r) => r,
        Err(e) => {
            w.violations.push(format!("GraphQL request error: {e}"));
            json!({"errors": [e]})
        }
    };
    (StatusCode::OK, axum::Json(response))
}

/// The root of both Query and Mutation: only `revertPullRequest` exists.
struct Root<'w, 'g> {
    world: std::cell::RefCell<&'w mut MutexGuard<'g, World>>,
}

impl ObjectValue for Root<'_, '_> {
    fn type_name(&self) -> &str {
        "Mutation"
    }

    fn resolve_field<'a>(
        &'a self,
        info: &'a ResolveInfo<'a>,
    ) -> Result<ResolvedValue<'a>, FieldError> {
        match info.field_name() {
            "revertPullRequest" => {
                let input = info.arguments().get("input").cloned().unwrap_or_default();
                let field = |k: &str| input.get(k).and_then(|v| v.as_str()).map(String::from);
                let id = field("pullRequestId").unwrap_or_default();
                let mut w = self.world.borrow_mut();
                let Some(source) = w.pulls.iter().find(|p| p.node_id == id).cloned() else {
                    return Err(FieldError {
                        message: format!(
                            "Could not resolve to a node with the global id of '{id}'"
                        ),
                    });
                };
                if !source.merged {
                    return Err(FieldError {
                        message: "Pull request is not merged".into(),
                    });
                }
                let branch = format!("revert-{}-{}", source.number, source.head_ref);
                let sha = format!("{:0>40}", format!("7{}", source.number));
                w.branches.insert(
                    branch.clone(),
                    Branch {
                        sha: sha.clone(),
                        message: format!("Revert #{}", source.number),
                        files: vec![],
                    },
                );
                let title =
                    field("title").unwrap_or_else(|| format!("Revert \"{}\"", source.title));
                let n = w.open_pull(&branch, &title, "hotfixd-bot");
                let p = w.pull_mut(n).unwrap();
                p.body = field("body").unwrap_or_default();
                let created = p.clone();
                Ok(ResolvedValue::object(RevertPayload { source, created }))
            }
            _ => Err(self.unknown_field_error(info)),
        }
    }
}

struct RevertPayload {
    source: Pull,
    created: Pull,
}

impl ObjectValue for RevertPayload {
    fn type_name(&self) -> &str {
        "RevertPullRequestPayload"
    }

    fn resolve_field<'a>(
        &'a self,
        info: &'a ResolveInfo<'a>,
    ) -> Result<ResolvedValue<'a>, FieldError> {
        match info.field_name() {
            "pullRequest" => Ok(ResolvedValue::object(PullObject(&self.source))),
            "revertPullRequest" => Ok(ResolvedValue::object(PullObject(&self.created))),
            "clientMutationId" => Ok(ResolvedValue::null()),
            _ => Err(self.unknown_field_error(info)),
        }
    }
}

struct PullObject<'p>(&'p Pull);

impl ObjectValue for PullObject<'_> {
    fn type_name(&self) -> &str {
        "PullRequest"
    }

    fn resolve_field<'a>(
        &'a self,
        info: &'a ResolveInfo<'a>,
    ) -> Result<ResolvedValue<'a>, FieldError> {
        let p = self.0;
        Ok(ResolvedValue::leaf(match info.field_name() {
            "number" => json_bytes(json!(p.number)),
            "id" => json_bytes(json!(p.node_id)),
            "url" | "permalink" => json_bytes(json!(format!(
                "https://github.com/{REPO}/pull/{}",
                p.number
            ))),
            "title" => json_bytes(json!(p.title)),
            "body" => json_bytes(json!(p.body)),
            "headRefName" => json_bytes(json!(p.head_ref)),
            "headRefOid" => json_bytes(json!(p.head_sha)),
            "baseRefName" => json_bytes(json!(p.base_ref)),
            "merged" => json_bytes(json!(p.merged)),
            "state" => json_bytes(json!(if p.merged {
                "MERGED"
            } else if p.open {
                "OPEN"
            } else {
                "CLOSED"
            })),
            _ => return Err(self.unknown_field_error(info)),
        }))
    }
}

fn json_bytes(v: Value) -> serde_json_bytes::Value {
    serde_json::from_value(v).unwrap()
}

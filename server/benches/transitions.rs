//! Durable transitions per second and latency, against raw sled on the same
//! disk in the same run.
//!
//! `cargo bench -p hotfixd --bench transitions` (env: HOTFIXD_BENCH_OPS,
//! default 3000 transitions per level; HOTFIXD_BENCH_CLIENTS, default
//! "1,16,64", each run closed loop; HOTFIXD_BENCH_RATES, default
//! "2500,5000" transitions/s offered open loop by the largest client count,
//! for at least two seconds each; HOTFIXD_BENCH_DIR, default the target
//! directory's tmp; HOTFIXD_BENCH_ETCD, etcd client URLs, comma-separated: the daemon
//! runs on the etcd engine there instead of sled, and the baseline is that
//! etcd's own guarded `txn`, one key per client, at each client count).
//!
//! Each transition is a real RPC through the real client: authenticated,
//! decided by the domain, committed with its event and audit record as one
//! change and made durable (`fdatasync`) before the answer. Baselines, in
//! the same run: the disk's own 4 KiB `write` + `fdatasync` loop (the
//! ratio column); sled's own `insert` + `flush` of a record of similar
//! size, one at a time, with and without the `fdatasync` of its log; and
//! `WhoAmI`, an RPC that stores nothing, with a roster token and with an
//! SSO ID token (RS256, verified against a JWKS served in-process), so
//! that the cost of SSO per call stands beside the same call's.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use hotfixctl::{Client, pb};
use hotfixd::clock::SystemClock;
use hotfixd::config::Settings;
use hotfixd::domain::Policy;
use tokio_util::sync::CancellationToken;

use common::{cpu_time, env_list, ms, pick, us};

/// The daemon's allocator (see `src/main.rs`).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Stats {
    per_sec: f64,
    p50: Duration,
    p99: Duration,
    /// CPU time (user + system, every thread of this process: daemon and
    /// clients) per operation.
    cpu_per_op: Duration,
}

fn stats(mut lat: Vec<Duration>, wall: Duration, cpu: Duration) -> Stats {
    lat.sort();

    Stats {
        per_sec: lat.len() as f64 / wall.as_secs_f64(),
        p50: pick(&lat, 0.50),
        p99: pick(&lat, 0.99),
        cpu_per_op: cpu / lat.len() as u32,
    }
}

/// The disk's own limit: a 4 KiB `write` at the end of a file and its
/// `fdatasync`, one after the other.
fn disk_fdatasync(dir: &std::path::Path, ops: usize) -> Stats {
    use std::io::Write;
    let mut f = std::fs::File::create(dir.join("fdatasync-loop")).unwrap();
    let block = vec![b'x'; 4096];
    let mut lat = Vec::with_capacity(ops);
    let start = Instant::now();
    let cpu = cpu_time("self");
    for _ in 0..ops {
        let t = Instant::now();
        f.write_all(&block).unwrap();
        f.sync_data().unwrap();
        lat.push(t.elapsed());
    }
    stats(lat, start.elapsed(), cpu_time("self") - cpu)
}

/// sled's own `insert` + `flush` of a record of a transition's size, one
/// at a time; with `fdatasync`, also the sync of its log file that makes
/// it durable (what hotfixd's flush adds, `store/flusher.rs`).
fn raw_sled(dir: &std::path::Path, ops: usize, fdatasync: bool) -> Stats {
    let path = dir.join(if fdatasync { "raw-synced" } else { "raw" });
    let db = sled::Config::new()
        .path(&path)
        .mode(sled::Mode::HighThroughput)
        .open()
        .unwrap();
    let log = std::fs::File::open(path.join("db")).unwrap();
    let value = vec![b'x'; 600];
    let mut lat = Vec::with_capacity(ops);
    let start = Instant::now();
    let cpu = cpu_time("self");
    for i in 0..ops as u64 {
        let t = Instant::now();
        db.insert(i.to_be_bytes(), value.as_slice()).unwrap();
        db.flush().unwrap();
        if fdatasync {
            log.sync_data().unwrap();
        }
        lat.push(t.elapsed());
    }
    stats(lat, start.elapsed(), cpu_time("self") - cpu)
}

async fn pr_open(c: &mut Client, inc: &str) {
    let m = || None;
    c.lane
        .declare(pb::DeclareRequest {
            mutation: m(),
            incident_id: inc.into(),
            severity: pb::Severity::P0 as i32,
            criteria: vec![pb::Criterion::CustomersDown as i32],
            symptom: "bench".into(),
            approver: "alice".into(),
            cleanup_owner: "bob".into(),
            merge_eta: "09:30".into(),
            repository: "bench/bench".into(),
            argocd_app: "bench".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    c.lane
        .submit_fix(pb::SubmitFixRequest {
            mutation: m(),
            incident_id: inc.into(),
            branch: format!("hotfix/{inc}-bench"),
            sha: "a".repeat(40),
            commit_message: format!("{inc}\napprover: @alice"),
            files: vec![pb::ChangedFile {
                path: "svc/a.go".into(),
                added: 1,
                removed: 1,
            }],
        })
        .await
        .unwrap();
    c.lane
        .open_pull_request(pb::OpenPullRequestRequest {
            mutation: m(),
            incident_id: inc.into(),
            number: 1,
            url: "https://example.invalid/pull/1".into(),
            labels: vec!["hotfix".into()],
            ..Default::default()
        })
        .await
        .unwrap();
}

/// What each client asks, over and over.
#[derive(Clone, Copy)]
enum Op {
    /// A check result recorded on the client's own hotfix.
    Transition,
    /// `WhoAmI`: authenticated and rate-limited like a transition, but
    /// nothing read or written. The RPC stack's own ceiling.
    WhoAmI,
}

async fn call(op: Op, c: &mut Client, inc: &str) {
    match op {
        Op::Transition => transition(c, inc).await,
        Op::WhoAmI => {
            c.policy.who_am_i(pb::WhoAmIRequest {}).await.unwrap();
        }
    }
}

async fn transition(c: &mut Client, inc: &str) {
    c.lane
        .record_check(pb::RecordCheckRequest {
            mutation: None,
            incident_id: inc.into(),
            name: "lint".into(),
            result: pb::CheckResult::Pending as i32,
            sha: String::new(),
        })
        .await
        .unwrap();
}

/// `clients` connections, each with its own hotfix at PR_OPEN.
async fn prepare(endpoint: &str, clients: usize, tag: &str) -> Vec<(Client, String)> {
    let mut conns = Vec::new();
    for i in 0..clients {
        let mut c = Client::connect(endpoint, Some("dev-bob")).await.unwrap();
        let inc = format!("INC-2026-01-{tag}-{:03}", i + 1);
        pr_open(&mut c, &inc).await;
        conns.push((c, inc));
    }
    conns
}

/// An OpenID Provider's discovery document and JWKS, served in-process for
/// the SSO rows (the test key of `tests/common/keys/`); its issuer URL.
async fn idp() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let jwk: serde_json::Value = serde_json::from_str(include_str!(
        "../../tests/common/keys/github-app.pub.jwk.json"
    ))
    .unwrap();
    let discovery = serde_json::json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks")});
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            axum::routing::get(move || async move { axum::Json(discovery) }),
        )
        .route(
            "/jwks",
            axum::routing::get(
                move || async move { axum::Json(serde_json::json!({"keys": [jwk]})) },
            ),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    issuer
}

/// An ID token of `issuer` naming bob, signed with the test key.
fn sso_token(issuer: &str) -> String {
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(include_bytes!(
        "../../tests/common/keys/github-app.pem"
    ))
    .unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("test-key".into());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "iss": issuer, "aud": "hotfixctl", "sub": "bob", "preferred_username": "bob",
        "iat": now, "exp": now + 3600,
    });
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

/// `clients` connections authenticated with `token` (WhoAmI only).
async fn connect_with(endpoint: &str, clients: usize, token: &str) -> Vec<(Client, String)> {
    let mut conns = Vec::new();
    for _ in 0..clients {
        conns.push((
            Client::connect(endpoint, Some(token)).await.unwrap(),
            String::new(),
        ));
    }
    conns
}

/// Each client sends its next request when the previous is answered.
async fn closed_loop(conns: Vec<(Client, String)>, op: Op, ops: usize) -> Stats {
    let per_client = ops.div_ceil(conns.len());
    let start = Instant::now();
    let cpu = cpu_time("self");
    let mut tasks = Vec::new();
    for (mut c, inc) in conns {
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_client);
            for _ in 0..per_client {
                let t = Instant::now();
                call(op, &mut c, &inc).await;
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    stats(lat, start.elapsed(), cpu_time("self") - cpu)
}

/// The clients together offer `rate` transitions/s on a fixed schedule,
/// whether or not earlier ones were answered (each client's requests share
/// its connection). Latency runs from when a request was due, so a stall
/// counts against every request it delayed (no coordinated omission).
async fn open_loop(conns: Vec<(Client, String)>, rate: f64, ops: usize) -> Stats {
    let n = conns.len();
    let per_client = ops.div_ceil(n);
    let period = Duration::from_secs_f64(n as f64 / rate);
    let start = Instant::now() + Duration::from_millis(10);
    let cpu = cpu_time("self");
    let mut tasks = Vec::new();
    for (i, (c, inc)) in conns.into_iter().enumerate() {
        // Clients start spread over one period, so the load is even.
        let first = start + period.mul_f64(i as f64 / n as f64);
        tasks.push(tokio::spawn(async move {
            let mut sent = tokio::task::JoinSet::new();
            for k in 0..per_client {
                let due = first + period * k as u32;
                tokio::time::sleep_until(due.into()).await;
                let (mut c, inc) = (c.clone(), inc.clone());
                sent.spawn(async move {
                    transition(&mut c, &inc).await;
                    due.elapsed()
                });
            }
            sent.join_all().await
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    stats(lat, start.elapsed(), cpu_time("self") - cpu)
}

/// etcd's own rate at `clients` concurrent writers: each a loop of one
/// transaction guarded by its key's revision (as a change is guarded by the
/// head's) putting a value of a change's size, the next sent when the last
/// is answered.
async fn raw_etcd(endpoint: &str, clients: usize, ops: usize) -> Stats {
    use hotfixd::store::etcd::api::etcdserverpb::{
        Compare, PutRequest, RequestOp, TxnRequest, compare, kv_client::KvClient, request_op,
    };
    let per_client = ops.div_ceil(clients);
    let start = Instant::now();
    let cpu = cpu_time("self");
    let mut tasks = Vec::new();
    for c in 0..clients {
        // Clients spread over the cluster's members, as hotfixd's are.
        let endpoints: Vec<&str> = endpoint.split(',').collect();
        let endpoint = endpoints[c % endpoints.len()].to_string();
        tasks.push(tokio::spawn(async move {
            let mut kv = KvClient::connect(endpoint).await.unwrap();
            let key = format!("/bench-raw/{}/{clients}/{c}", std::process::id()).into_bytes();
            let (mut rev, mut lat) = (0, Vec::with_capacity(per_client));
            for _ in 0..per_client {
                let t = Instant::now();
                let txn = TxnRequest {
                    compare: vec![Compare {
                        result: compare::CompareResult::Equal as i32,
                        target: compare::CompareTarget::Mod as i32,
                        key: key.clone(),
                        target_union: Some(compare::TargetUnion::ModRevision(rev)),
                        ..Default::default()
                    }],
                    success: vec![RequestOp {
                        request: Some(request_op::Request::RequestPut(PutRequest {
                            key: key.clone(),
                            value: vec![b'x'; 1024],
                            ..Default::default()
                        })),
                    }],
                    failure: vec![],
                };
                let r = kv.txn(txn).await.unwrap().into_inner();
                assert!(r.succeeded);
                rev = r.header.unwrap().revision;
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    stats(lat, start.elapsed(), cpu_time("self") - cpu)
}

/// One table row; the ratio is to `base`'s rate.
fn row(what: &str, s: &Stats, base: Option<&Stats>) {
    let ratio = base.map_or("-".to_string(), |b| format!("{:.2}", s.per_sec / b.per_sec));
    println!(
        "| {what} | {:.0} | {} | {} | {} | {ratio} |",
        s.per_sec,
        ms(s.p50),
        ms(s.p99),
        us(s.cpu_per_op),
    );
}

fn main() {
    // As the daemon does (`src/main.rs`).
    hotfixd::server::no_huge_pages();
    let ops = env_list("HOTFIXD_BENCH_OPS", "3000")[0];
    let levels = env_list("HOTFIXD_BENCH_CLIENTS", "1,16,64");
    let rates: Vec<f64> = env_list("HOTFIXD_BENCH_RATES", "2500,5000")
        .into_iter()
        .filter(|r| *r > 0)
        .map(|r| r as f64)
        .collect();
    let base = std::env::var("HOTFIXD_BENCH_DIR")
        .unwrap_or_else(|_| env!("CARGO_TARGET_TMPDIR").to_string());
    std::fs::create_dir_all(&base).unwrap();
    let dir = tempfile::tempdir_in(&base).unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let disk = disk_fdatasync(dir.path(), ops);
    let raw = raw_sled(dir.path(), ops, false);
    let raw_synced = raw_sled(dir.path(), ops, true);

    let etcd = std::env::var("HOTFIXD_BENCH_ETCD").ok();
    let shutdown = CancellationToken::new();
    let issuer = rt.block_on(idp());
    let endpoint = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let policy = Policy {
            rate_window_max: u32::MAX,
            ..Policy::default()
        };
        let settings = Settings {
            policy,
            // The bench measures the store, not the abuse limits.
            limits: hotfixd::limits::LimitSettings {
                max_in_flight: 4096,
                ..hotfixd::limits::LimitSettings::unbounded()
            },
            oidc: Some(hotfixd::oidc::OidcSettings {
                issuer: issuer.clone(),
                audience: "hotfixctl".into(),
                username_claim: "preferred_username".into(),
                groups_claim: "groups".into(),
                roles: Default::default(),
                jwks_refresh: Duration::from_secs(3600),
                reread_after: hotfixd::oidc::REREAD_AFTER,
                timeout: Duration::from_secs(5),
            }),
            ..Settings::dev(addr, dir.path().join("hotfixd"))
        };
        let settings = match &etcd {
            None => settings,
            Some(url) => Settings {
                store: hotfixd::config::StoreEngine::Etcd,
                etcd: Some(hotfixd::config::EtcdSettings {
                    options: hotfixd::store::etcd::EtcdOptions {
                        endpoints: url.split(',').map(str::to_string).collect(),
                        timeout: Duration::from_secs(5),
                        ..Default::default()
                    },
                    // A store of its own each run.
                    prefix: format!("/bench-{}/", std::process::id()),
                    lease_ttl: Duration::from_secs(10),
                    advertise_url: None,
                }),
                ..settings
            },
        };
        tokio::spawn(hotfixd::serve(
            listener,
            settings,
            Arc::new(SystemClock),
            shutdown.clone(),
        ));
        format!("http://{addr}")
    });

    match &etcd {
        None => println!(
            "hotfixd transitions bench: {ops} durable transitions per level, data in {}",
            dir.path().display()
        ),
        Some(url) => println!(
            "hotfixd transitions bench on the etcd engine at {url}: {ops} transitions per level"
        ),
    }
    println!();
    println!(
        "| what | transitions/s | p50 | p99 | CPU per transition | ratio to the disk's 4 KiB write+fdatasync |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    row("disk: 4 KiB write+fdatasync, 1 writer", &disk, Some(&disk));
    row(
        "raw sled insert+flush (sync_file_range only), 1 writer",
        &raw,
        Some(&disk),
    );
    row(
        "raw sled insert+flush+fdatasync, 1 writer",
        &raw_synced,
        Some(&disk),
    );
    for (i, clients) in levels.iter().enumerate() {
        if let Some(url) = &etcd {
            let s = rt.block_on(raw_etcd(url, *clients, ops));
            row(
                &format!("etcd: raw guarded txn, {clients} client(s)"),
                &s,
                Some(&disk),
            );
        }
        let conns = rt.block_on(prepare(&endpoint, *clients, &format!("{:02}", i + 1)));
        let s = rt.block_on(closed_loop(conns.clone(), Op::WhoAmI, ops));
        row(
            &format!("WhoAmI RPC (no store), {clients} client(s)"),
            &s,
            None,
        );
        let sso = rt.block_on(connect_with(&endpoint, *clients, &sso_token(&issuer)));
        let s = rt.block_on(closed_loop(sso, Op::WhoAmI, ops));
        row(
            &format!(
                "WhoAmI RPC, SSO ID token (RS256-verified once, then remembered), {clients} client(s)"
            ),
            &s,
            None,
        );
        let s = rt.block_on(closed_loop(conns, Op::Transition, ops));
        row(
            &format!("hotfixd, {clients} client(s), closed loop"),
            &s,
            Some(&disk),
        );
    }
    let open_clients = levels.iter().copied().max().unwrap_or(64);
    for (i, rate) in rates.iter().enumerate() {
        let conns = rt.block_on(prepare(&endpoint, open_clients, &format!("{:02}", 28 - i)));
        let s = rt.block_on(open_loop(conns, *rate, ops.max(*rate as usize * 2)));
        row(
            &format!("hotfixd, {open_clients} clients, open loop offering {rate:.0}/s"),
            &s,
            Some(&disk),
        );
    }
    shutdown.cancel();
}

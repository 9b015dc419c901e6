//! Watch fan-out, resume cost and start-up time of the real `hotfixd`
//! binary, run as its own process so that its memory is its own.
//!
//! `cargo bench -p hotfixd --bench load`, tuned by:
//! - HOTFIXD_BENCH_WATCHERS (default "1000,10000"): concurrent watchers;
//! - HOTFIXD_BENCH_PER_CONNECTION (default 100): watchers sharing one
//!   client connection (1: a connection each, as separate CLIs would);
//! - HOTFIXD_BENCH_EVENT_GAP_MS (default "20,100"): time between the 100
//!   events each fan-out run commits (20 ms: 50 events/s, so 500,000
//!   deliveries/s to 10,000 watchers; a stress rate, far above the
//!   runbook's pace of one hotfix step every minute or so);
//! - HOTFIXD_BENCH_RESUME (default "10000,100000"): stored events before a
//!   `Watch(from_seq)` resume (1000000 takes a few minutes to write);
//! - HOTFIXD_BENCH_HOTFIXES (default 100000): stored hotfixes at start-up;
//! - HOTFIXD_BENCH_DIR (default the target directory's tmp);
//! - HOTFIXD_BENCH_ETCD (etcd client URLs, comma-separated): the fan-out
//!   runs on two replicas on that etcd, the watchers on the follower, the
//!   events written through the leader;
//! - HOTFIXD_BENCH_BIN (default this build's `hotfixd`): the daemon to
//!   measure, e.g. an older build for a same-time comparison;
//! - HOTFIXD_BENCH_FLOOR (default 1; 0 skips it): after each fan-out run,
//!   the same connections, bytes and events sent as raw TCP by the
//!   plainest tokio server (`floor/`), the baseline its ratio is against.
//!
//! Stores are filled in-process through the same `Lane` the daemon uses
//! (real transactions, real flushes), then the binary is started on them.

mod common;
mod floor;
#[path = "../tests/harness/mod.rs"]
mod harness;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use hotfixctl::{Client, pb};
use hotfixd::app::{Lane, Mutation};
use hotfixd::clock::SystemClock;
use hotfixd::domain::{Criterion, Declaration, Policy, Principal, Role, Severity};
use hotfixd::roles::Roles;
use hotfixd::store::Store;
use tokio_stream::StreamExt;

use common::{cpu_time, env_list, ms, pick, us};
use harness::{Binary, HOTFIXD, free_port};

/// The daemon's allocator (see `src/main.rs`).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CONFIG: &str = "heartbeat_interval = \"1s\"\n\
[policy]\nrate_window_max = 4000000000\nquarter_process_bug_over = 4000000000\nquarter_code_yellow_over = 4000000000\n\
[limits]\nper_principal_rate = 1000000000.0\nper_principal_burst = 4000000000\nmax_in_flight = 65536\n\
per_principal_in_flight = 1000000\nper_principal_watches = 1000000\nmax_connections = 1000000\n\
max_connections_per_peer = 1000000\n";

/// Starts the daemon (HOTFIXD_BENCH_BIN, or this build's) on `data`;
/// returns it once it answers, and how long that took.
async fn start(base: &std::path::Path, data: &std::path::Path) -> (Binary, Duration) {
    start_with(base, data, &[]).await
}

/// Like [`start`], with more environment (`HOTFIXD_STORE=etcd`, …).
async fn start_with(
    base: &std::path::Path,
    data: &std::path::Path,
    env: &[(&str, &str)],
) -> (Binary, Duration) {
    let config = base.join("bench.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let bin = std::env::var("HOTFIXD_BENCH_BIN").unwrap_or_else(|_| HOTFIXD.to_string());
    let t = Instant::now();
    let d = Binary::spawn(bin, &config, data, free_port(), env)
        .ready()
        .await;
    (d, t.elapsed())
}

/// The daemons a fan-out run uses: one on sled; or, with
/// HOTFIXD_BENCH_ETCD, two replicas on that etcd (the first started leads),
/// the watchers on the follower. Returns (the writer's, the watchers').
async fn replicas(base: &std::path::Path, name: &str) -> (Binary, Option<Binary>) {
    let data = base.join(name);
    let Ok(endpoints) = std::env::var("HOTFIXD_BENCH_ETCD") else {
        return (start(base, &data).await.0, None);
    };
    let prefix = format!("/bench-load-{}-{name}/", std::process::id());
    let env = [
        ("HOTFIXD_STORE", "etcd"),
        ("HOTFIXD_ETCD_ENDPOINTS", endpoints.as_str()),
        ("HOTFIXD_ETCD_PREFIX", prefix.as_str()),
    ];
    let (leader, _) = start_with(base, &data, &env).await;
    // Led: the leader holds its lease before the follower starts.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (follower, _) = start_with(base, &base.join(format!("{name}-follower")), &env).await;
    (leader, Some(follower))
}

fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn lane(data: &std::path::Path, clock: Arc<dyn hotfixd::clock::Clock>) -> Arc<Lane> {
    let roster = hotfixd::config::dev_principals()
        .into_iter()
        .map(|p| (p.handle, p.roles))
        .collect();
    Arc::new(Lane::new(
        Arc::new(Store::open(data).unwrap()),
        Policy {
            rate_window_max: u32::MAX,
            quarter_process_bug_over: u32::MAX,
            quarter_code_yellow_over: u32::MAX,
            ..Policy::default()
        },
        Arc::new(Roles::from_roster(roster)),
        clock,
    ))
}

/// Fills a store with `n` changes from 64 concurrent writers through the
/// lane: team reviews (one event each), or declarations (one hotfix each).
async fn fill(data: &std::path::Path, n: usize, hotfixes: bool) -> Duration {
    // Declarations are spread over time (8 days apart, past the rolling
    // window), as real ones are; the gate then reads a handful of rows.
    let manual = Arc::new(hotfixd::clock::ManualClock::new(
        chrono::DateTime::UNIX_EPOCH + chrono::Duration::days(11_000),
    ));
    let clock: Arc<dyn hotfixd::clock::Clock> = if hotfixes {
        manual.clone()
    } else {
        Arc::new(SystemClock)
    };
    let lane = lane(data, clock);
    let t = Instant::now();
    let writers = 64;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let lane = lane.clone();
        let manual = manual.clone();
        tasks.push(tokio::spawn(async move {
            let erin = Principal {
                handle: "erin".into(),
                roles: [Role::EngManager].into(),
            };
            let bob = Principal {
                handle: "bob".into(),
                roles: [Role::Engineer].into(),
            };
            let m = Mutation::default();
            let mut i = w;
            while i < n {
                if hotfixes {
                    manual.advance(Duration::from_secs(8 * 24 * 3600));
                    // Distinct ids: day and number from i.
                    let day = 1 + (i / 999) % 28;
                    let month = 1 + (i / (999 * 28)) % 12;
                    let year = 2000 + i / (999 * 28 * 12);
                    let inc = format!("INC-{year}-{month:02}-{day:02}-{:03}", 1 + i % 999);
                    lane.declare(
                        &bob,
                        &m,
                        Declaration {
                            incident_id: inc,
                            severity: Severity::P0,
                            criteria: vec![Criterion::CustomersDown],
                            symptom: "bench".into(),
                            approver: "alice".into(),
                            cleanup_owner: "bob".into(),
                            merge_eta: "09:30".into(),
                            repository: "bench/bench".into(),
                            argocd_app: "bench".into(),
                            flag_can_mitigate: false,
                            rollback_can_mitigate: false,
                            fix_unknown: false,
                            drill: false,
                        },
                    )
                    .await
                    .unwrap();
                } else {
                    lane.team_review(&erin, &m, "bench").await.unwrap();
                }
                i += writers;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    t.elapsed()
}

async fn watch_fanout(base: &std::path::Path, watchers: usize, gap_ms: usize) {
    let (writes, follower) = replicas(base, &format!("watch-{watchers}-{gap_ms}")).await;
    let on = if follower.is_some() {
        ", on an etcd follower replica"
    } else {
        ""
    };
    let d = follower.as_ref().unwrap_or(&writes);
    let events = 100;
    // HOTFIXD_BENCH_PER_CONNECTION streams per connection (default 100),
    // as many connections as that takes.
    let per_conn = env_list("HOTFIXD_BENCH_PER_CONNECTION", "100")[0].max(1);
    let mut conns = Vec::new();
    for _ in 0..watchers.div_ceil(per_conn) {
        conns.push(Client::connect(&d.endpoint, Some("dev-bob")).await.unwrap());
    }
    // The largest message the first watcher got, for the floor's frames
    // (every watcher gets the same messages).
    let largest = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for w in 0..watchers {
        let mut events_client = conns[w / per_conn].events.clone();
        let largest = (w == 0).then(|| largest.clone());
        tasks.push(tokio::spawn(async move {
            let mut s = events_client
                .watch(pb::WatchRequest {
                    from_seq: 0,
                    incident_id: String::new(),
                    from_now: false,
                })
                .await
                .unwrap()
                .into_inner();
            let mut delays = Vec::with_capacity(events);
            while delays.len() < events {
                let Some(Ok(msg)) = s.next().await else { break };
                if let Some(largest) = &largest {
                    largest.fetch_max(prost::Message::encoded_len(&msg), Ordering::Relaxed);
                }
                if let Some(pb::watch_response::Kind::Event(e)) = msg.kind {
                    let at = e.at.unwrap();
                    let at =
                        SystemTime::UNIX_EPOCH + Duration::new(at.seconds as u64, at.nanos as u32);
                    delays.push(SystemTime::now().duration_since(at).unwrap_or_default());
                }
            }
            delays
        }));
    }
    // Let every watcher subscribe before the first event.
    tokio::time::sleep(Duration::from_millis(500 + watchers as u64 / 10)).await;
    let mut writer = Client::connect(&writes.endpoint, Some("dev-erin"))
        .await
        .unwrap();
    let pid = d.child.id().to_string();
    let cpu = (cpu_time(&pid), cpu_time("self"));
    for _ in 0..events {
        writer
            .policy
            .record_team_review(pb::RecordTeamReviewRequest {
                mutation: None,
                notes: "fan-out".into(),
            })
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(gap_ms as u64)).await;
    }
    let mut all = Vec::with_capacity(watchers * events);
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    // CPU per delivery, the daemon's and this process's (the watchers'
    // side: receiving, decoding), while the events were delivered.
    let delivered = all.len().max(1) as u32;
    let per = |d: Duration| us(d / delivered);
    let (daemon_cpu, client_cpu) = (cpu_time(&pid) - cpu.0, cpu_time("self") - cpu.1);
    all.sort();
    println!(
        "| {watchers} watchers ({per_conn} per connection){on}, {events} events {gap_ms} ms apart | {} delivered ({:.0}/s offered) | p50 {} | p99 {} | CPU per delivery: daemon {}, watchers {} | peak RSS {:.0} MiB |",
        all.len(),
        watchers as f64 * 1000.0 / gap_ms as f64,
        ms(pick(&all, 0.5)),
        ms(pick(&all, 0.99)),
        per(daemon_cpu),
        per(client_cpu),
        peak_rss_mib(d.child.id())
    );
    if env_list("HOTFIXD_BENCH_FLOOR", "1")[0] == 0 {
        return;
    }
    drop((writes, follower, conns));
    // What one delivery puts on the wire: the message, gRPC's 5-byte
    // prefix and HTTP/2's 9-byte DATA frame header.
    let frame = (largest.load(Ordering::Relaxed) + 5 + 9).max(8);
    let connections = watchers.div_ceil(per_conn);
    let f = floor::run(
        connections,
        per_conn,
        frame,
        events,
        Duration::from_millis(gap_ms as u64),
    )
    .await;
    let per = |d: Duration| us(d / f.delays.len().max(1) as u32);
    let p99 = pick(&f.delays, 0.99);
    println!(
        "| floor: raw TCP, {connections} connection(s), {per_conn} frame(s) of {frame} bytes each per event | {} delivered | p50 {} | p99 {} | CPU per delivery: server {}, clients {} | hotfixd's p99 {:.1}x the floor's |",
        f.delays.len(),
        ms(pick(&f.delays, 0.5)),
        ms(p99),
        per(f.server_cpu),
        per(f.clients_cpu),
        pick(&all, 0.99).as_secs_f64() / p99.as_secs_f64()
    );
}

async fn resume(base: &std::path::Path, stored: usize) {
    let data = base.join(format!("resume-{stored}"));
    let took = fill(&data, stored, false).await;
    let (d, _) = start(base, &data).await;
    let mut c = Client::connect(&d.endpoint, Some("dev-bob")).await.unwrap();
    let first_event = |from: u64| {
        let mut events = c.events.clone();
        async move {
            let t = Instant::now();
            let mut s = events
                .watch(pb::WatchRequest {
                    from_seq: from,
                    incident_id: String::new(),
                    from_now: false,
                })
                .await
                .unwrap()
                .into_inner();
            loop {
                let msg = s.next().await.unwrap().unwrap();
                if let Some(pb::watch_response::Kind::Event(_)) = msg.kind {
                    return t.elapsed();
                }
            }
        }
    };
    let mut near_end = Vec::new();
    let mut middle = Vec::new();
    for _ in 0..50 {
        near_end.push(first_event(stored as u64 - 1).await);
        middle.push(first_event(stored as u64 / 2).await);
    }
    near_end.sort();
    middle.sort();
    let _ = c.policy.who_am_i(pb::WhoAmIRequest {}).await;
    println!(
        "| resume with {stored} stored events (written in {:.1} s) | from the end: p50 {} p99 {} | from the middle: p50 {} p99 {} |",
        took.as_secs_f64(),
        ms(pick(&near_end, 0.5)),
        ms(pick(&near_end, 0.99)),
        ms(pick(&middle, 0.5)),
        ms(pick(&middle, 0.99)),
    );
}

async fn startup(base: &std::path::Path, hotfixes: usize) {
    let empty = base.join("startup-empty");
    let (d, baseline) = start(base, &empty).await;
    drop(d);
    let data = base.join(format!("startup-{hotfixes}"));
    let took = fill(&data, hotfixes, true).await;
    let mut times = Vec::new();
    for _ in 0..3 {
        let (d, t) = start(base, &data).await;
        times.push(t);
        drop(d);
        std::thread::sleep(Duration::from_millis(200)); // sled's lock
    }
    times.sort();
    println!(
        "| start-up with {hotfixes} stored hotfixes (written in {:.1} s) | median {} | empty store {} | ratio {:.2} |",
        took.as_secs_f64(),
        ms(times[1]),
        ms(baseline),
        times[1].as_secs_f64() / baseline.as_secs_f64()
    );
}

fn main() {
    if floor::serve_if_asked() {
        return;
    }
    let base = std::env::var("HOTFIXD_BENCH_DIR")
        .unwrap_or_else(|_| env!("CARGO_TARGET_TMPDIR").to_string());
    std::fs::create_dir_all(&base).unwrap();
    let dir = tempfile::tempdir_in(&base).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("hotfixd load bench, data in {}", dir.path().display());
    println!();
    rt.block_on(async {
        for gap in env_list("HOTFIXD_BENCH_EVENT_GAP_MS", "20,100") {
            for w in env_list("HOTFIXD_BENCH_WATCHERS", "1000,10000") {
                if w > 0 {
                    watch_fanout(dir.path(), w, gap).await;
                }
            }
        }
        for n in env_list("HOTFIXD_BENCH_RESUME", "10000,100000") {
            if n > 0 {
                resume(dir.path(), n).await;
            }
        }
        let h = env_list("HOTFIXD_BENCH_HOTFIXES", "100000")[0];
        if h > 0 {
            startup(dir.path(), h).await;
        }
    });
}

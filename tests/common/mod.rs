//! Test harness: the real daemon on 127.0.0.1:0 over a temp data dir, a
//! manual clock, and helpers that run the real `hotfixctl` CLI code.
#![allow(dead_code)]

pub mod argocd;
#[path = "../../server/tests/etcd/mod.rs"]
pub mod etcd;
pub mod github;
pub mod oidc;
pub mod pagerduty;
pub mod pki;
pub mod prometheus;
pub mod siem;
pub mod slack;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use clap::Parser;
use hotfixctl::Client;
use hotfixctl::cli::{Cli, CliError};
use hotfixd::clock::ManualClock;
use hotfixd::config::{Settings, StoreEngine};
use hotfixd::domain::Policy;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const INC: &str = "INC-2026-05-20-001";
pub const SHA1: &str = "1111111111111111111111111111111111111111";
pub const SHA2: &str = "2222222222222222222222222222222222222222";

/// A running hotfixd. Dropping it stops the daemon.
pub struct Daemon {
    pub endpoint: String,
    pub clock: Arc<ManualClock>,
    pub data_dir: PathBuf,
    tmp: Arc<tempfile::TempDir>,
    /// The etcd the daemon's store is on (`HOTFIXD_TEST_STORE=etcd`).
    pub etcd: Option<Arc<etcd::Etcd>>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<Result<(), hotfixd::server::ServeError>>>,
    template: Settings,
}

pub fn start_time() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 20, 9, 0, 0).unwrap()
}

impl Daemon {
    pub async fn start() -> Daemon {
        Self::start_with(Policy::default()).await
    }

    pub async fn start_with(policy: Policy) -> Daemon {
        Self::start_configured(|s| s.policy = policy).await
    }

    /// Starts with test settings adjusted by `configure`.
    pub async fn start_configured(configure: impl FnOnce(&mut Settings)) -> Daemon {
        let tmp = Arc::new(tempfile::tempdir().expect("tempdir"));
        let clock = Arc::new(ManualClock::new(start_time()));
        let mut template = Settings {
            heartbeat_interval: Duration::from_millis(200),
            overdue_check_interval: Duration::from_millis(100),
            ..Settings::dev("127.0.0.1:0".parse().unwrap(), tmp.path().join("data"))
        };
        // The same tests on the etcd engine: each daemon on an etcd of its
        // own (scripts/test runs the lane's tests both ways).
        let etcd = match std::env::var("HOTFIXD_TEST_STORE").as_deref() {
            Ok("etcd") => {
                let etcd = Arc::new(etcd::Etcd::start().await);
                template.store = StoreEngine::Etcd;
                template.etcd = Some(etcd.settings("/hotfixd/"));
                Some(etcd)
            }
            _ => None,
        };
        configure(&mut template);
        let longest = template.longest_outside_call().unwrap_or_default();
        if let Some(e) = template.etcd.as_mut() {
            // The leader acts only while its lease outlasts the longest
            // outside call.
            e.lease_ttl = e
                .lease_ttl
                .max(Duration::from_secs(longest.as_secs() * 2 + 1));
        }
        Self::boot(tmp, etcd, clock, template).await
    }

    /// Whether this run's daemons are on etcd (`HOTFIXD_TEST_STORE=etcd`).
    pub fn on_etcd() -> bool {
        std::env::var("HOTFIXD_TEST_STORE").as_deref() == Ok("etcd")
    }

    async fn boot(
        tmp: Arc<tempfile::TempDir>,
        etcd: Option<Arc<etcd::Etcd>>,
        clock: Arc<ManualClock>,
        template: Settings,
    ) -> Daemon {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().unwrap();
        let data_dir = template.data_dir.clone();
        let settings = Settings {
            listen: addr,
            ..template.clone()
        };
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(hotfixd::serve(
            listener,
            settings,
            clock.clone(),
            shutdown.clone(),
        ));
        Daemon {
            endpoint: format!("http://{addr}"),
            clock,
            data_dir,
            tmp,
            etcd,
            shutdown,
            task: Some(task),
            template,
        }
    }

    /// Stops gracefully and waits until the store is closed.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.task.take() {
            t.await
                .expect("daemon task")
                .expect("daemon stopped cleanly");
        }
    }

    /// The daemon's store, opened as the daemon opens it (sled in its data
    /// directory, or etcd): stop the daemon first on sled.
    pub async fn open_store(&self) -> Arc<dyn hotfixd::store::Engine> {
        hotfixd::server::open_store(&self.template)
            .await
            .expect("opening the daemon's store")
    }

    /// Stops and starts again on the same data directory (a new port).
    pub async fn restart(mut self) -> Daemon {
        self.stop().await;
        let (tmp, clock, template) = (self.tmp.clone(), self.clock.clone(), self.template.clone());
        let etcd = self.etcd.clone();
        drop(self);
        // sled releases its directory lock when the last handle drops.
        for _ in 0..50 {
            let d = Self::boot(tmp.clone(), etcd.clone(), clock.clone(), template.clone()).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            if d.task.as_ref().is_some_and(|t| !t.is_finished()) {
                return d;
            }
        }
        panic!("daemon did not restart");
    }

    pub async fn client(&self, handle: &str) -> Client {
        Client::connect(&self.endpoint, Some(&format!("dev-{handle}")))
            .await
            .expect("connect")
    }

    /// Runs `hotfixctl ARGS` as `handle`; returns the output or the error.
    pub async fn ctl(&self, handle: &str, args: &[&str]) -> Result<String, CliError> {
        let mut argv = vec![
            "hotfixctl".to_string(),
            "--endpoint".to_string(),
            self.endpoint.clone(),
            "--token".to_string(),
            format!("dev-{handle}"),
        ];
        argv.extend(args.iter().map(|s| s.to_string()));
        ctl_argv(&argv).await
    }

    /// The hotfix a step (or `show`) answered with, from `--output json`:
    /// the answer's `hotfix` (the proto3 JSON mapping of `Hotfix`).
    pub async fn ctl_hotfix(&self, handle: &str, args: &[&str]) -> serde_json::Value {
        let answer = self.ctl_json(handle, args).await;
        assert!(
            answer["hotfix"].is_object(),
            "{args:?} answered no hotfix: {answer}"
        );
        answer["hotfix"].clone()
    }

    /// Like `ctl` with `--output json`, parsed: the RPC's answer in the
    /// proto3 JSON mapping.
    pub async fn ctl_json(&self, handle: &str, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--output", "json"];
        a.extend_from_slice(args);
        let out = self
            .ctl(handle, &a)
            .await
            .unwrap_or_else(|e| panic!("hotfixctl {args:?} as {handle} failed: {e}"));
        serde_json::from_str(out.lines().next().expect("one line")).expect("json")
    }

    /// Asserts `hotfixctl ARGS` fails with `code`, and returns the message.
    pub async fn ctl_err(&self, handle: &str, args: &[&str], code: i32) -> String {
        match self.ctl(handle, args).await {
            Ok(out) => panic!("hotfixctl {args:?} as {handle} succeeded: {out}"),
            Err(e) => {
                assert_eq!(
                    e.code, code,
                    "exit code of {args:?} as {handle}: {}",
                    e.message
                );
                e.message
            }
        }
    }

    /// The hotfix's state as tables show it (`READY_TO_MERGE`).
    pub async fn state(&self, inc: &str) -> String {
        let state = self.ctl_hotfix("bob", &["show", inc]).await["state"].clone();
        let state = state.as_str().unwrap();
        state.strip_prefix("STATE_").unwrap_or(state).to_string()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

// Exit codes: 10 + gRPC code.
pub const INVALID: i32 = 13;
pub const NOT_FOUND: i32 = 15;
pub const EXISTS: i32 = 16;
pub const DENIED: i32 = 17;
pub const RATE_LIMITED: i32 = 18;
pub const PRECONDITION: i32 = 19;
pub const CONFLICT: i32 = 20;
pub const UNAVAILABLE: i32 = 24;
pub const UNAUTHENTICATED: i32 = 26;

/// `hotfixctl ARGV…` (ARGV[0] is the program name) run in-process: what it
/// printed, or how it failed (a parse error is exit 2, as the binary's).
pub async fn ctl_argv<S: AsRef<str>>(argv: &[S]) -> Result<String, CliError> {
    let argv: Vec<&str> = argv.iter().map(AsRef::as_ref).collect();
    let cli = Cli::try_parse_from(&argv).map_err(|e| CliError {
        code: 2,
        message: e.to_string(),
    })?;
    let mut out = Vec::new();
    hotfixctl::cli::run(cli, &mut out).await?;
    Ok(String::from_utf8(out).expect("utf-8 output"))
}

/// A daemon with its operator listener (`--http-listen`) configured by
/// `configure` too, once that listener answers; and its base URL.
pub async fn with_operator_listener(configure: impl FnOnce(&mut Settings)) -> (Daemon, String) {
    hotfixd::integrations::install_crypto_provider();
    let http = free_addr();
    let d = Daemon::start_configured(|s| {
        s.http_listen = Some(http);
        configure(s);
    })
    .await;
    let base = format!("http://{http}");
    // The daemon serves once its store is open.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while reqwest::get(format!("{base}/healthz")).await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{base} did not answer"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (d, base)
}

/// An address free to listen on (for `--http-listen`, whose bound port
/// the in-process daemon does not report).
pub fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The value of the sample `series` (name and labels, exactly as exposed)
/// in the `/metrics` of the operator listener at `http`.
pub async fn metric(http: std::net::SocketAddr, series: &str) -> Option<f64> {
    hotfixd::integrations::install_crypto_provider();
    let text = reqwest::get(format!("http://{http}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

pub fn incident(n: u32) -> String {
    format!("INC-2026-05-20-{n:03}")
}

pub async fn declare(d: &Daemon, inc: &str, extra: &[&str]) -> Result<String, CliError> {
    declare_as(d, "bob", inc, &[], extra).await
}

pub fn fix_args<'a>(inc: &'a str, sha: &'a str, branch: &'a str, msg: &'a str) -> Vec<&'a str> {
    vec![
        "fix",
        inc,
        "--branch",
        branch,
        "--sha",
        sha,
        "--message",
        msg,
        "--file",
        "catalog/handler.go:3:1",
    ]
}

pub fn branch(inc: &str) -> String {
    format!("hotfix/{inc}-catalog-nil-deref")
}

pub fn message(inc: &str) -> String {
    format!(
        "hotfix(catalog): nil-deref on missing tenant header\n\n{inc}\napprover: @alice\ncleanup: @bob within 24h"
    )
}

/// Records the labelled hotfix PR #4321.
pub async fn open_pr(d: &Daemon, inc: &str) {
    let url = "https://github.com/bookstore/catalog/pull/4321";
    d.ctl(
        "bob",
        &[
            "pr", inc, "--number", "4321", "--url", url, "--label", "hotfix",
        ],
    )
    .await
    .expect("pr");
}

/// Reports every required fast-path check green, as the CI service.
pub async fn pass_checks(d: &Daemon, inc: &str) {
    for check in ["lint", "unit-changed-package", "scan", "build-sign-push"] {
        d.ctl(
            "svc-ci",
            &["check", inc, "--name", check, "--result", "success"],
        )
        .await
        .expect("check");
    }
}

/// Declares and drives a hotfix to READY_TO_MERGE.
pub async fn ready_to_merge(d: &Daemon, inc: &str) {
    ready_to_merge_with(d, inc, &[]).await
}

/// Declares a hotfix, records fix SHA1 and has alice approve it.
pub async fn approved(d: &Daemon, inc: &str, declare_flags: &[&str]) {
    declare(d, inc, declare_flags).await.expect("declare");
    let (b, m) = (branch(inc), message(inc));
    d.ctl("bob", &fix_args(inc, SHA1, &b, &m))
        .await
        .expect("fix");
    d.ctl("alice", &["approve", inc, "--sha", SHA1])
        .await
        .expect("approve");
}

/// Like `ready_to_merge`, with extra `declare` flags (e.g. `--drill`).
pub async fn ready_to_merge_with(d: &Daemon, inc: &str, declare_flags: &[&str]) {
    approved(d, inc, declare_flags).await;
    open_pr(d, inc).await;
    pass_checks(d, inc).await;
    assert_eq!(d.state(inc).await, "READY_TO_MERGE");
}

/// Drives a ready hotfix through merge, sync and a recovered verify.
pub async fn mitigate(d: &Daemon, inc: &str) {
    d.ctl("carol", &["merge", inc]).await.expect("merge");
    d.ctl("svc-ci", &["sync", inc, "--revision", SHA1])
        .await
        .expect("sync");
    d.ctl(
        "svc-ci",
        &["verify", inc, "--recovered", "--value", "0.002"],
    )
    .await
    .expect("verify");
}

/// `declare` as `handle` with the standard answers, some replaced
/// (`("--approver", "carol")`), plus extra flags.
pub async fn declare_as(
    d: &Daemon,
    handle: &str,
    inc: &str,
    replace: &[(&str, &str)],
    extra: &[&str],
) -> Result<String, CliError> {
    let standard = [
        (
            "--symptom",
            "catalog returns 500 on a missing tenant header",
        ),
        ("--criterion", "customers-down"),
        ("--approver", "alice"),
        ("--cleanup-owner", "bob"),
        ("--eta", "09:30"),
        ("--repo", "bookstore/catalog"),
        ("--app", "bookstore-catalog-us-east"),
    ];
    let mut args = vec!["declare", inc];
    for (flag, value) in standard {
        let value = replace
            .iter()
            .find(|(f, _)| *f == flag)
            .map_or(value, |(_, v)| *v);
        args.extend([flag, value]);
    }
    args.extend_from_slice(extra);
    d.ctl(handle, &args).await
}

/// GitHub holds the fix branch; the hotfix is declared.
pub async fn declared_on_github(
    fake: &github::FakeGitHub,
    d: &Daemon,
    inc: &str,
    flags: &[&str],
) -> String {
    let b = branch(inc);
    fake.world()
        .branches
        .insert(b.clone(), github::fix_branch(SHA1, &message(inc)));
    declare(d, inc, flags).await.expect("declare");
    b
}

/// Declared, fix read from GitHub, approved, PR opened by hotfixd.
pub async fn pr_opened_on_github(
    fake: &github::FakeGitHub,
    d: &Daemon,
    inc: &str,
    flags: &[&str],
) -> u64 {
    let b = declared_on_github(fake, d, inc, flags).await;
    d.ctl("bob", &["fix", inc, "--branch", &b])
        .await
        .expect("fix");
    d.ctl("alice", &["approve", inc, "--sha", SHA1])
        .await
        .expect("approve");
    let h = d.ctl_hotfix("bob", &["pr", inc]).await;
    h["pullRequest"]["number"]
        .as_str()
        .and_then(|s| s.parse::<u64>().ok())
        .expect("pr number")
}

/// hotfixd's settings for the fake GitHub: its URL and token, checks read
/// every 50 ms.
pub fn github_settings(fake: &github::FakeGitHub) -> hotfixd::integrations::github::GitHubSettings {
    hotfixd::integrations::github::GitHubSettings {
        url: fake.url(),
        graphql_url: None,
        token: Some(github::TOKEN.into()),
        app: None,
        webhook_secret: None,
        timeout: Duration::from_secs(5),
        lane: hotfixd::integrations::github::ForgeSettings {
            checks_poll: Duration::from_millis(50),
            ..Default::default()
        },
        teams: Default::default(),
        teams_refresh: Duration::from_millis(100),
    }
}

/// Waits until `cond` holds (checked every 20 ms, at most 10 s).
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

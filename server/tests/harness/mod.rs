//! The real `hotfixd` binary for the tests here and the load bench
//! (`#[path]`-included there): start it, wait for it, drive it with the
//! real CLI. Each user takes what it needs.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use clap::Parser;

/// This package's `hotfixd`.
pub const HOTFIXD: &str = env!("CARGO_BIN_EXE_hotfixd");

/// A running `hotfixd` process, killed (SIGKILL) when dropped.
pub struct Binary {
    pub child: Child,
    pub endpoint: String,
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[path = "../ports/mod.rs"]
mod ports;
#[allow(unused_imports)]
pub use ports::free_port;

impl Binary {
    /// Starts `bin --dev --config CONFIG --data-dir DATA` on 127.0.0.1:`port`
    /// with `env` added (HOTFIXD_LOG defaults to error); returns at once.
    pub fn spawn(
        bin: impl AsRef<OsStr>,
        config: &Path,
        data: &Path,
        port: u16,
        env: &[(&str, &str)],
    ) -> Binary {
        Self::spawn_command(Command::new(bin), config, data, port, env)
    }

    /// Like [`Binary::spawn`], with `cmd` as the program (e.g. `hotfixd`
    /// under a tracer, its own arguments already given).
    pub fn spawn_command(
        cmd: Command,
        config: &Path,
        data: &Path,
        port: u16,
        env: &[(&str, &str)],
    ) -> Binary {
        Self::launch(cmd, config, data, port, env, Stdio::null())
    }

    /// Like [`Binary::spawn_command`], appending the daemon's log (stderr)
    /// to `log`.
    pub fn spawn_logged(
        cmd: Command,
        config: &Path,
        data: &Path,
        port: u16,
        env: &[(&str, &str)],
        log: &Path,
    ) -> Binary {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("the log file");
        Self::launch(cmd, config, data, port, env, file.into())
    }

    fn launch(
        mut cmd: Command,
        config: &Path,
        data: &Path,
        port: u16,
        env: &[(&str, &str)],
        stderr: Stdio,
    ) -> Binary {
        if !env.iter().any(|(k, _)| *k == "HOTFIXD_HTTP_LISTEN") {
            // Off --dev's fixed 50080: tests run daemons side by side.
            cmd.args(["--http-listen", "127.0.0.1:0"]);
        }
        cmd.args(["--dev", "--config"])
            .arg(config)
            .arg("--data-dir")
            .arg(data)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("HOTFIXD_LOG", "error")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(stderr);
        Binary {
            child: cmd.spawn().expect("starting hotfixd"),
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Waits until the daemon answers an authenticated RPC.
    pub async fn ready(self) -> Binary {
        ready(&self.endpoint).await;
        self
    }

    /// `hotfixctl --endpoint … --token dev-HANDLE ARGS…`, run in-process.
    pub async fn ctl(
        &self,
        handle: &str,
        args: &[&str],
    ) -> Result<String, hotfixctl::cli::CliError> {
        ctl(&self.endpoint, handle, args).await
    }
}

/// Waits (up to 10 s) until `endpoint` answers `WhoAmI` for the demo roster.
/// Polls every 5 ms: the load bench times start-up with it.
pub async fn ready(endpoint: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        if let Ok(mut c) = hotfixctl::Client::connect(endpoint, Some("dev-bob")).await
            && c.policy
                .who_am_i(hotfixctl::pb::WhoAmIRequest {})
                .await
                .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("hotfixd at {endpoint} did not come up");
}

/// `hotfixctl` as `dev-HANDLE` against `endpoint`, its output as a string.
pub async fn ctl(
    endpoint: &str,
    handle: &str,
    args: &[&str],
) -> Result<String, hotfixctl::cli::CliError> {
    ctl_with_token(endpoint, &format!("dev-{handle}"), args).await
}

/// `hotfixctl --token TOKEN` against `endpoint` (a roster of the test's
/// own, not --dev's), its output as a string.
pub async fn ctl_with_token(
    endpoint: &str,
    token: &str,
    args: &[&str],
) -> Result<String, hotfixctl::cli::CliError> {
    let mut argv = vec!["hotfixctl", "--endpoint", endpoint, "--token", token];
    argv.extend_from_slice(args);
    let cli = hotfixctl::cli::Cli::try_parse_from(argv).expect("hotfixctl arguments");
    let mut out = Vec::new();
    hotfixctl::cli::run(cli, &mut out).await?;
    Ok(String::from_utf8(out).expect("utf-8 output"))
}

/// `hotfixctl declare INC …` with the standard answers, for `repo`.
pub fn declare_args<'a>(inc: &'a str, repo: &'a str) -> Vec<&'a str> {
    vec![
        "declare",
        inc,
        "--symptom",
        "catalog returns 500",
        "--criterion",
        "customers-down",
        "--approver",
        "alice",
        "--cleanup-owner",
        "bob",
        "--eta",
        "09:30",
        "--repo",
        repo,
        "--app",
        "catalog",
    ]
}

/// Every stored event `endpoint` serves: `Watch` from 0 up to its first
/// heartbeat.
pub async fn events(endpoint: &str) -> Vec<hotfixctl::pb::Event> {
    let mut c = hotfixctl::Client::connect(endpoint, Some("dev-dave"))
        .await
        .expect("connect");
    let mut s = c
        .events
        .watch(hotfixctl::pb::WatchRequest::default())
        .await
        .expect("watch")
        .into_inner();
    let mut out = Vec::new();
    while let Some(m) = s.message().await.expect("watch stream") {
        match m.kind.expect("a message") {
            hotfixctl::pb::watch_response::Kind::Event(e) => out.push(e),
            hotfixctl::pb::watch_response::Kind::Heartbeat(_) => break,
        }
    }
    out
}

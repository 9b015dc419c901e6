//! `hotfixctl watch` as a person (and a script) uses it, against the real
//! daemon: the boundary between replay and live, `--since now`, a
//! reconnect that resumes after the daemon restarts (nothing twice,
//! nothing skipped), and a reader that goes away (`watch | head`).

mod harness;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use harness::{Binary, HOTFIXD, free_port};

/// What a running `hotfixctl` wrote so far.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

fn cli(endpoint: &str, args: &[&str]) -> hotfixctl::cli::Cli {
    let mut argv = vec!["hotfixctl", "--endpoint", endpoint, "--token", "dev-dave"];
    argv.extend_from_slice(args);
    hotfixctl::cli::Cli::try_parse_from(argv).unwrap()
}

/// `hotfixctl ARGS` in the background, writing into the returned buffer.
fn spawn(endpoint: &str, args: &[&str]) -> (Shared, tokio::task::JoinHandle<()>) {
    let out = Shared::default();
    let mut w = out.clone();
    let c = cli(endpoint, args);
    let task = tokio::spawn(async move {
        let _ = hotfixctl::cli::run(c, &mut w).await;
    });
    (out, task)
}

async fn until(what: &str, within: Duration, out: &Shared, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < within,
            "{what} within {within:?}; printed:\n{}",
            out.text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn incident(n: u32) -> String {
    format!("INC-2026-05-20-{n:03}")
}

async fn declare(d: &Binary, n: u32) {
    d.ctl(
        "bob",
        &harness::declare_args(&incident(n), "bookstore/catalog"),
    )
    .await
    .unwrap();
}

fn start(dir: &std::path::Path, port: u16) -> Binary {
    let config = dir.join("hotfixd.toml");
    std::fs::write(&config, "").unwrap();
    Binary::spawn(HOTFIXD, &config, &dir.join("data"), port, &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_marks_live_resumes_after_a_restart_and_starts_now_if_asked() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let d = start(dir.path(), port).ready().await;
    declare(&d, 1).await;
    declare(&d, 2).await;

    // The replay, then the boundary, in the table.
    let (out, watching) = spawn(&d.endpoint, &["watch"]);
    until("the boundary", Duration::from_secs(10), &out, || {
        out.text().contains("caught up at #")
    })
    .await;
    let before = out.text();
    let lines: Vec<&str> = before.lines().collect();
    let caught_up = lines.len() - 1;
    assert!(caught_up >= 2, "{before}");
    assert!(
        lines[0].contains(&incident(1)) && lines[1].contains(&incident(2)),
        "{before}"
    );
    assert_eq!(
        lines[caught_up],
        format!("-- caught up at #{caught_up}: live from here (Ctrl-C to stop) --")
    );

    // `--since now`: nothing replayed, only what comes next.
    let (now, now_task) = spawn(
        &d.endpoint,
        &["--output", "json", "watch", "--since", "now"],
    );
    until("the first heartbeat", Duration::from_secs(10), &now, || {
        !now.text().is_empty()
    })
    .await;

    // The daemon restarts on the same address; the watchers reconnect and
    // resume after the last event they showed.
    drop(d);
    let d = start(dir.path(), port).ready().await;
    declare(&d, 3).await;
    until(
        "the event after the restart",
        Duration::from_secs(20),
        &out,
        || out.text().contains(&incident(3)),
    )
    .await;
    until(
        "the --since now watcher's event",
        Duration::from_secs(20),
        &now,
        || now.text().contains(&incident(3)),
    )
    .await;
    // Every event once, in order, none skipped: #1, #2, … across the
    // restart; one boundary.
    let after = out.text();
    let seqs: Vec<u64> = after
        .lines()
        .filter_map(|l| l.strip_prefix('#')?.split(' ').next()?.parse().ok())
        .collect();
    let want: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, want, "{after}");
    assert!(seqs.len() > caught_up, "{after}");
    assert_eq!(
        after.matches("caught up").count(),
        1,
        "one boundary:\n{after}"
    );
    let events: Vec<serde_json::Value> = now
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // WatchResponses: the first a heartbeat that says where "now" was.
    assert_eq!(events[0]["heartbeat"]["caughtUp"], true);
    assert_eq!(
        events[0]["heartbeat"]["latestSeq"],
        caught_up.to_string(),
        "uint64: a string"
    );
    let shown: Vec<u64> = events
        .iter()
        .filter(|e| e["event"].is_object())
        .map(|e| {
            e["event"]["seq"]
                .as_str()
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap()
        })
        .collect();
    assert_eq!(
        shown,
        ((caught_up as u64 + 1)..=seqs.len() as u64).collect::<Vec<_>>(),
        "only what happened after 'now', once each"
    );
    watching.abort();
    now_task.abort();
}

/// `hotfixctl watch | head -2`: the reader goes away; hotfixctl ends
/// quietly (exit 0, nothing on stderr), instead of "Broken pipe", exit 1.
#[tokio::test]
async fn a_watcher_whose_reader_goes_away_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), free_port()).ready().await;
    declare(&d, 1).await;
    declare(&d, 2).await;
    let bin = std::path::Path::new(HOTFIXD).with_file_name("hotfixctl");
    if !bin.exists() {
        // Built by `cargo test --workspace` (scripts/test); in-process below.
        eprintln!("no {}; checking the in-process outcome only", bin.display());
    } else {
        let mut child = std::process::Command::new(&bin)
            .args(["--endpoint", &d.endpoint, "--token", "dev-dave", "watch"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Read one line, then close the pipe, as `head -1` does.
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 1];
        use std::io::Read;
        stdout.read_exact(&mut first).unwrap();
        drop(stdout);
        // The next write (the next event, or the boundary) hits the closed pipe.
        declare(&d, 3).await;
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "nothing said");
    }
    // In-process: the error is the closed pipe, which main ends quietly.
    struct Closed;
    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let e = hotfixctl::cli::run(cli(&d.endpoint, &["watch"]), &mut Closed)
        .await
        .unwrap_err();
    assert!(e.is_closed_pipe(), "{e:?}");
}

//! The live status page (`/` on the operator listener) in a real browser:
//! Debian's Chromium, headless, driven by playwright-core
//! (`tools/browser/driver.mjs`; `scripts/test` installs both). The lane is
//! driven through hotfixctl; the page must follow it from the event stream,
//! without a reload.
//!
//! Screenshots of the board and of one incident's page are saved in this
//! test's output directory (`target/tmp/status-page*.png`);
//! `docs/status-page.png`, shown in README.md, is one of them.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// How long the page may take to show a change (the bound).
const SHOWN_WITHIN: u64 = 2000;

/// A headless Chromium, one command at a time.
struct Browser {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Browser {
    async fn start() -> Browser {
        let tools = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/browser");
        assert!(
            tools.join("node_modules/playwright-core").is_dir(),
            "playwright-core is not installed: run scripts/test (or `npm ci --prefix tools/browser`)"
        );
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        assert!(
            std::path::Path::new(&chromium).exists(),
            "{chromium} is missing: run scripts/test (or `apt-get install chromium`)"
        );
        let mut child = Command::new("node")
            .arg(tools.join("driver.mjs"))
            .current_dir(&tools)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs tools/browser/driver.mjs");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        Browser {
            child,
            stdin,
            stdout,
        }
    }

    /// Runs one driver command; its answer, or the driver's error.
    async fn try_run(&mut self, command: Value) -> Result<Value, String> {
        let mut line = command.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await.unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(60), self.stdout.next_line())
            .await
            .unwrap_or_else(|_| panic!("the browser did not answer {command}"))
            .unwrap()
            .unwrap_or_else(|| panic!("the browser driver exited at {command}"));
        let answer: Value = serde_json::from_str(&answer).unwrap();
        if answer["ok"] == true {
            Ok(answer)
        } else {
            Err(answer["error"].as_str().unwrap_or_default().to_string())
        }
    }

    async fn run(&mut self, command: Value) -> Value {
        match self.try_run(command.clone()).await {
            Ok(a) => a,
            Err(e) => {
                let log = self.try_run(json!({"op": "log"})).await;
                panic!("browser: {command}: {e}\npage log: {log:?}")
            }
        }
    }

    async fn goto(&mut self, url: &str) {
        self.run(json!({"op": "goto", "url": url})).await;
    }

    /// Waits for a visible `selector` (containing `text`) within `ms`.
    async fn wait(&mut self, selector: &str, text: Option<&str>, ms: u64) {
        let mut c = json!({"op": "wait", "selector": selector, "timeout": ms});
        if let Some(t) = text {
            c["text"] = json!(t);
        }
        self.run(c).await;
    }

    async fn texts(&mut self, selector: &str) -> Vec<String> {
        let v = self.run(json!({"op": "text", "selector": selector})).await;
        serde_json::from_value(v["value"].clone()).unwrap()
    }

    async fn count(&mut self, selector: &str) -> u64 {
        self.run(json!({"op": "count", "selector": selector})).await["value"]
            .as_u64()
            .unwrap()
    }

    async fn log(&mut self) -> Vec<String> {
        let v = self.run(json!({"op": "log"})).await;
        serde_json::from_value(v["value"].clone()).unwrap()
    }

    async fn screenshot(&mut self, name: &str) -> PathBuf {
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
        self.run(json!({"op": "screenshot", "path": path})).await;
        path
    }

    async fn sign_in(&mut self, token: &str) {
        self.run(json!({"op": "fill", "selector": "#token", "text": token}))
            .await;
        self.run(json!({"op": "click", "selector": "#signin-form button"}))
            .await;
    }

    async fn close(mut self) {
        drop(self.stdin);
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

async fn page_daemon() -> (Daemon, String) {
    with_operator_listener(|_| {}).await
}

/// Typed text that would be markup or script if the page ever treated it as
/// anything but text. (Bidi and control characters never get this far:
/// the daemon refuses them in every field.)
const HOSTILE: &str = "checkout 500s <img src=x onerror=\"document.title='pwned'\"><script>alert(1)</script> &amp; <b>";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_follows_the_lane_live_and_shows_typed_text_as_text() {
    let (d, base) = page_daemon().await;
    let mut b = Browser::start().await;
    b.goto(&base).await;
    // No token yet: the page asks for one (and nothing is in the URL).
    b.wait("#signin", None, 5000).await;
    b.sign_in("dev-bob").await;
    b.wait("#live", Some("live"), 5000).await;
    b.wait("#none", None, 5000).await;

    // Declared through hotfixctl: on the board within 2 s, no reload.
    let inc = incident(1);
    declare_as(&d, "bob", &inc, &[("--symptom", HOSTILE)], &[])
        .await
        .expect("declare");
    let row = format!("tr[data-incident=\"{inc}\"]");
    b.wait(&row, None, SHOWN_WITHIN).await;
    assert_eq!(
        b.texts(&format!("{row} .state")).await,
        ["DECLARED"],
        "the new state"
    );
    let symptom = b.texts(&format!("{row} td.symptom")).await;
    assert!(
        symptom[0].starts_with(
            "checkout 500s <img src=x onerror=\"document.title='pwned'\"><script>alert(1)</script> &amp; <b>"
        ),
        "the symptom, as typed, as text: {symptom:?}"
    );
    assert_eq!(b.count("img").await, 0, "no element made of the symptom");
    assert_eq!(
        b.count("main script").await,
        0,
        "no element made of the symptom"
    );
    assert_eq!(
        b.texts(&format!("{row} td:nth-child(6)")).await,
        ["fix by @bob (the author)"],
        "who acts next"
    );
    assert_eq!(
        b.texts(&format!("{row} td:nth-child(5)")).await,
        ["09:30 UTC"]
    );

    // Through the fast path to the merge: the new state and the
    // obligations' countdowns (the daemon's clock, not the browser's).
    let (br, msg) = (branch(&inc), message(&inc));
    d.ctl("bob", &fix_args(&inc, SHA1, &br, &msg))
        .await
        .unwrap();
    d.ctl("alice", &["approve", &inc, "--sha", SHA1])
        .await
        .unwrap();
    open_pr(&d, &inc).await;
    pass_checks(&d, &inc).await;
    d.ctl("carol", &["merge", &inc]).await.expect("merge");
    b.wait(&format!("{row} .state"), Some("MERGED"), SHOWN_WITHIN)
        .await;
    let deadlines = b.texts(&format!("{row} td:nth-child(7) li")).await;
    assert_eq!(
        deadlines.len(),
        3,
        "cleanup, postmortem, audit review: {deadlines:?}"
    );
    let shape = |kind: &str, hours: &str| {
        deadlines
            .iter()
            .any(|l| l.starts_with(&format!("{kind} in {hours}h ")) && l.ends_with(')'))
    };
    assert!(
        shape("cleanup_pr", "23"),
        "24 h to the cleanup PR: {deadlines:?}"
    );
    assert!(
        shape("postmortem", "1d 23"),
        "48 h to the postmortem: {deadlines:?}"
    );
    assert!(
        shape("audit_review", "6d 23"),
        "a week to the audit: {deadlines:?}"
    );
    assert!(
        deadlines[0].contains("(@bob)"),
        "the cleanup's owner: {deadlines:?}"
    );
    assert_eq!(b.count(&format!("{row} .overdue")).await, 0);

    // A drill beside it, marked as one.
    let drill = incident(2);
    declare(&d, &drill, &["--drill"]).await.expect("drill");
    let drill_row = format!("tr[data-incident=\"{drill}\"]");
    b.wait(&format!("{drill_row} .drill"), Some("DRILL"), SHOWN_WITHIN)
        .await;
    assert_eq!(
        b.count(&format!("{row} .drill")).await,
        0,
        "a real one is no drill"
    );

    // A day later the cleanup PR is overdue: red, with its owner, on the
    // row and in the overdue panel (the sweeper's event updates the page).
    d.clock.advance(Duration::from_secs(25 * 3600));
    b.wait(
        "#overdue li.overdue",
        Some(&format!("{inc} cleanup_pr, owed by @bob")),
        SHOWN_WITHIN + 1000,
    )
    .await;
    b.wait(
        &format!("{row} td:nth-child(7) .overdue"),
        Some("OVERDUE"),
        SHOWN_WITHIN,
    )
    .await;
    let gate = b.texts("#gate-text").await;
    assert_eq!(gate, ["1 of 3 hotfixes"], "the drill does not count");
    let authors = b.texts("#authors td").await;
    assert!(authors.starts_with(&["@bob".to_string()]), "{authors:?}");

    let shot = b.screenshot("status-page.png").await;
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);

    // One incident's page: its facts, next steps and timeline, live too.
    b.goto(&format!("{base}/incidents/{inc}")).await;
    b.wait("#inc-timeline tbody tr", Some("merged"), 5000).await;
    assert_eq!(b.texts("#inc-state").await, ["MERGED"]);
    assert_eq!(
        b.count("#inc-drill:visible").await,
        0,
        "a real one is no drill"
    );
    assert!(b.texts("#inc-symptom").await[0].contains("<script>alert(1)</script>"));
    d.ctl("svc-ci", &["sync", &inc, "--revision", SHA1])
        .await
        .expect("sync");
    b.wait("#inc-timeline tbody tr", Some("synced"), SHOWN_WITHIN)
        .await;
    b.wait("#inc-state", Some("SYNCED"), SHOWN_WITHIN).await;
    b.screenshot("status-page-incident.png").await;

    let log = b.log().await;
    assert!(
        !log.iter()
            .any(|l| l.starts_with("pageerror") || l.starts_with("dialog")),
        "no script error, no dialog: {log:?}"
    );
    assert!(
        !b.texts("title").await[0].contains("pwned"),
        "the symptom's handler never ran"
    );
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_asked_again_and_the_stream_resumes_after_a_restart() {
    let (d, base) = page_daemon().await;
    let mut b = Browser::start().await;
    b.goto(&base).await;
    b.sign_in("dev-nobody").await;
    b.wait("#signin-error", Some("refused the token"), 5000)
        .await;
    assert_eq!(b.count("#board:visible").await, 0);
    b.sign_in("dev-dave").await;
    b.wait("#live", Some("live"), 5000).await;
    let url = b.run(json!({"op": "url"})).await["value"].clone();
    assert_eq!(url, format!("{base}/"), "the token never goes into the URL");

    // The daemon restarts (same data, same operator address): the page
    // says so, reconnects, and shows what happened meanwhile and after.
    let d = d.restart().await;
    let inc = incident(7);
    declare(&d, &inc, &[]).await.expect("declare");
    b.wait(&format!("tr[data-incident=\"{inc}\"]"), None, 15_000)
        .await;
    b.wait("#live", Some("live"), 5000).await;
    b.close().await;
}

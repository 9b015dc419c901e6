//! No configured secret leaves the process: each secret is set to a marker
//! string, every integration is made to fail (each points at a port where
//! nothing listens), and every surface is searched for the markers: what
//! clients were answered, the events (`show`, `watch`), the audit trail
//! (`audit export`), the daemon's log at trace level, and `--help`.

mod harness;

use std::path::Path;

use harness::{Binary, HOTFIXD, free_port};

const MARKERS: [&str; 6] = [
    "MARKER-slack-status-7f3a",
    "MARKER-slack-audit-7f3a",
    "MARKER-github-token-7f3a",
    "MARKER-argocd-token-7f3a",
    "MARKER-prometheus-token-7f3a",
    "MARKER-github-webhook-secret-7f3a",
];

const INC: &str = "INC-2026-05-20-001";
const INC2: &str = "INC-2026-05-20-002";
const SHA: &str = "1111111111111111111111111111111111111111";

/// Every secret set to its marker; Slack's webhooks point at `dead`; the
/// audit signing key (which must be a real key) read from `key_file`.
fn secrets(dead: u16, key_file: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("HOTFIXD_AUDIT_KEY_FILE", key_file.display().to_string()),
        (
            "HOTFIXD_SLACK_STATUS_WEBHOOK",
            format!("http://127.0.0.1:{dead}/services/T0/B0/{}", MARKERS[0]),
        ),
        (
            "HOTFIXD_SLACK_AUDIT_WEBHOOK",
            format!("http://127.0.0.1:{dead}/services/T0/B1/{}", MARKERS[1]),
        ),
        ("HOTFIXD_GITHUB_TOKEN", MARKERS[2].into()),
        ("HOTFIXD_ARGOCD_TOKEN", MARKERS[3].into()),
        ("HOTFIXD_PROMETHEUS_TOKEN", MARKERS[4].into()),
        ("HOTFIXD_GITHUB_WEBHOOK_SECRET", MARKERS[5].into()),
        ("HOTFIXD_LOG", "trace".into()),
    ]
}

async fn start(
    config: &Path,
    data: &Path,
    log: &Path,
    port: u16,
    dead: u16,
    extra: &[(&str, &str)],
) -> Binary {
    let env = secrets(dead, &key_file(data));
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.extend_from_slice(extra);
    Binary::spawn_logged(
        std::process::Command::new(HOTFIXD),
        config,
        data,
        port,
        &env,
        log,
    )
    .ready()
    .await
}

/// Runs `hotfixctl` and keeps whatever it printed or was answered.
async fn said(d: &Binary, seen: &mut String, handle: &str, args: &[&str]) -> bool {
    match d.ctl(handle, args).await {
        Ok(out) => {
            seen.push_str(&out);
            true
        }
        Err(e) => {
            seen.push_str(&e.message);
            false
        }
    }
}

fn key_file(data: &Path) -> std::path::PathBuf {
    data.with_extension("key")
}

/// A signing key for the test: its secret part, to search for.
fn make_key(data: &Path) -> String {
    let file = key_file(data);
    let out = std::process::Command::new(HOTFIXD)
        .args(["audit", "keygen", "--name", "hotfixd.test/secrets", "--out"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = std::fs::read_to_string(&file).unwrap();
    text.trim().splitn(5, '+').nth(4).unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_an_event_the_audit_trail_a_log_or_an_answer() {
    let dir = tempfile::tempdir().unwrap();
    let dead = free_port();
    let config = dir.path().join("hotfixd.toml");
    let integrations = format!(
        "[github]\nurl = \"http://127.0.0.1:{dead}\"\nmanual_repositories = [\"bookstore/legacy\"]\n\
         [prometheus]\nurl = \"http://127.0.0.1:{dead}\"\ninterval = \"100ms\"\nwindow = \"1s\"\n\
         [audit]\ncheckpoint_every = 2\n"
    );
    let argocd = format!("[argocd]\nurl = \"http://127.0.0.1:{dead}\"\n");
    std::fs::write(&config, format!("{integrations}{argocd}")).unwrap();
    let (data, log) = (dir.path().join("data"), dir.path().join("hotfixd.log"));
    let signing_key = make_key(&data);
    let mut seen = String::new();

    let d = start(&config, &data, &log, free_port(), dead, &[]).await;
    // Slack (status): the declaration's post fails.
    assert!(
        said(
            &d,
            &mut seen,
            "bob",
            &harness::declare_args(INC, "bookstore/legacy")
        )
        .await
    );
    // GitHub: the fix of a repository it governs cannot be read.
    assert!(
        said(
            &d,
            &mut seen,
            "bob",
            &harness::declare_args(INC2, "bookstore/catalog")
        )
        .await
    );
    let branch2 = format!("hotfix/{INC2}-x");
    assert!(!said(&d, &mut seen, "bob", &["fix", INC2, "--branch", &branch2]).await);
    // The manual repository to MERGED; Slack (audit): the merge's post fails.
    let msg = format!("fix\n\n{INC}\napprover: @alice");
    let branch = format!("hotfix/{INC}-x");
    for (who, args) in [
        (
            "bob",
            vec![
                "fix",
                INC,
                "--branch",
                &branch,
                "--sha",
                SHA,
                "--message",
                &msg,
                "--file",
                "a.go:1:1",
            ],
        ),
        ("alice", vec!["approve", INC, "--sha", SHA]),
        (
            "bob",
            vec![
                "pr",
                INC,
                "--number",
                "7",
                "--url",
                "https://github.com/bookstore/legacy/pull/7",
                "--label",
                "hotfix",
            ],
        ),
        (
            "svc-ci",
            vec!["check", INC, "--name", "lint", "--result", "success"],
        ),
        (
            "svc-ci",
            vec![
                "check",
                INC,
                "--name",
                "unit-changed-package",
                "--result",
                "success",
            ],
        ),
        (
            "svc-ci",
            vec!["check", INC, "--name", "scan", "--result", "success"],
        ),
        (
            "svc-ci",
            vec![
                "check",
                INC,
                "--name",
                "build-sign-push",
                "--result",
                "success",
            ],
        ),
        ("carol", vec!["merge", INC]),
    ] {
        assert!(said(&d, &mut seen, who, &args).await, "{args:?}: {seen}");
    }
    // Argo CD: the sync cannot be requested.
    assert!(
        !said(
            &d,
            &mut seen,
            "carol",
            &["sync", INC, "--revision", "1111111", "--wait"]
        )
        .await
    );
    drop(d);

    // Prometheus: without Argo CD the sync is recorded, and the measured
    // verification cannot read the metric.
    // This time with JSON logs and the operator HTTP listener.
    std::fs::write(&config, &integrations).unwrap();
    let http = format!("127.0.0.1:{}", free_port());
    let d = start(
        &config,
        &data,
        &log,
        free_port(),
        dead,
        &[
            ("HOTFIXD_LOG_FORMAT", "json"),
            ("HOTFIXD_HTTP_LISTEN", &http),
        ],
    )
    .await;
    assert!(
        said(
            &d,
            &mut seen,
            "carol",
            &["sync", INC, "--revision", "1111111"]
        )
        .await,
        "{seen}"
    );
    said(
        &d,
        &mut seen,
        "svc-ci",
        &["verify", INC, "--measure", "--wait"],
    )
    .await;
    // Give the relay time to record its failed posts.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    for inc in [INC, INC2] {
        said(&d, &mut seen, "bob", &["--output", "json", "show", inc]).await;
    }
    said(
        &d,
        &mut seen,
        "dave",
        &["--output", "json", "audit", "export", "--from", "0"],
    )
    .await;
    // The operator pages.
    hotfixd::integrations::install_crypto_provider();
    for page in ["/metrics", "/readyz", "/healthz"] {
        let r = reqwest::get(format!("http://{http}{page}")).await.unwrap();
        seen.push_str(&r.text().await.unwrap());
    }
    assert!(seen.contains("hotfixd_integration_calls_total"), "{seen}");
    // A roster reload, logged.
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &d.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    drop(d);

    assert!(
        seen.contains("notification_failed") && seen.contains("GitHub request failed"),
        "each integration failed and it was recorded: {seen}"
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("Slack webhook failed"),
        "the log is at trace level"
    );
    // The lines the operations issue added are there to search: the
    // integrations at start-up, each request's span and answer, the
    // reload, in text and in JSON.
    for line in [
        "integrations",
        "rpc answered",
        "\"rpc\":\"/hotfix.v1.LaneService/Sync\"",
        "roster",
    ] {
        assert!(logged.contains(line), "no '{line}' in the log:\n{logged}");
    }
    let help = std::process::Command::new(HOTFIXD)
        .arg("--help")
        .envs(secrets(dead, &key_file(&data)))
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        seen.contains("audit-checkpoint"),
        "the key was used: checkpoints were written"
    );
    for m in MARKERS.iter().copied().chain([signing_key.as_str()]) {
        assert!(
            !seen.contains(m),
            "{m} in an answer, event or audit record:\n{seen}"
        );
        assert!(!logged.contains(m), "{m} in the log");
        assert!(!help.contains(m), "{m} in --help");
    }
}

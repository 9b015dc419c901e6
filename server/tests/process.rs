//! The real `hotfixd` binary as a process: what it sets up for itself at
//! start-up.

mod harness;

use harness::{Binary, HOTFIXD, free_port};

/// Huge pages made ~30 KB of mostly unwritten buffers per client
/// connection resident in 2 MiB pages (`server::no_huge_pages`).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_daemon_runs_without_transparent_huge_pages() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hotfixd.toml");
    std::fs::write(&config, "").unwrap();
    let d = Binary::spawn(HOTFIXD, &config, &dir.path().join("data"), free_port(), &[])
        .ready()
        .await;
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.child.id())).unwrap();
    let thp = status
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
        .map(str::trim);
    assert_eq!(thp, Some("0"), "/proc/PID/status of hotfixd:\n{status}");
}

/// The data directory holds every hotfix and the audit trail: it and every
/// file in it are for the daemon's user alone, whatever the umask it was
/// started with.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_data_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hotfixd.toml");
    std::fs::write(&config, "").unwrap();
    let data = dir.path().join("data");
    let d = Binary::spawn(HOTFIXD, &config, &data, free_port(), &[])
        .ready()
        .await;
    d.ctl("erin", &["team-review", "--notes", "fine"])
        .await
        .expect("a change, so the store has written its files");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "{}", data.display());
    let mut seen = 0;
    let mut stack = vec![data.clone()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                assert_eq!(mode(&p), 0o700, "{}", p.display());
                stack.push(p);
            } else {
                assert_eq!(mode(&p), 0o600, "{}", p.display());
                seen += 1;
            }
        }
    }
    assert!(seen >= 2, "the store's files were looked at ({seen})");
}

/// A certificate that does not parse stops start-up with its reason, before
/// the daemon says it is serving.
#[tokio::test]
async fn a_bad_tls_certificate_fails_before_serving_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hotfixd.toml");
    std::fs::write(
        &config,
        format!(
            "[[principals]]\nhandle = \"alice\"\nroles = [\"sre-lead\"]\ntoken_sha256 = \"{}\"\n",
            "ab".repeat(32)
        ),
    )
    .unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(
        &cert,
        "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(&key, "not a key\n").unwrap();
    let out = std::process::Command::new(HOTFIXD)
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .env("HOTFIXD_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("tls: the certificate or key"), "{stderr}");
    assert!(!stderr.contains("hotfixd serving"), "{stderr}");
}

/// Logs into a file or a pipe carry no colour codes; `--log-format json`
/// makes every log line one JSON object.
#[tokio::test]
async fn logs_are_plain_off_a_terminal_and_json_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hotfixd.toml");
    std::fs::write(&config, "").unwrap();
    let start = |name: &str, format: &str| {
        let log = dir.path().join(format!("{name}.log"));
        let env = [("HOTFIXD_LOG", "info"), ("HOTFIXD_LOG_FORMAT", format)];
        let d = Binary::spawn_logged(
            std::process::Command::new(HOTFIXD),
            &config,
            &dir.path().join(name),
            free_port(),
            &env,
            &log,
        );
        (d, log)
    };
    let (text, text_log) = start("text", "text");
    let (json, json_log) = start("json", "json");
    let (text, json) = (text.ready().await, json.ready().await);
    // A fresh data directory is not "resumed".
    assert!(
        !std::fs::read_to_string(&text_log)
            .unwrap()
            .contains("resuming"),
        "a new store is not resumed"
    );
    // --dev's banner names the operator listener as bound (the harness
    // asks for port 0), and it answers there.
    let banner = std::fs::read_to_string(&text_log).unwrap();
    let url = banner
        .lines()
        .find_map(|l| l.strip_prefix("status page: "))
        .and_then(|l| l.split(' ').next())
        .unwrap_or_else(|| panic!("no status page URL in the banner:\n{banner}"));
    let healthz = format!("{url}healthz");
    hotfixd::integrations::install_crypto_provider();
    let up = reqwest::get(&healthz)
        .await
        .unwrap_or_else(|e| panic!("{healthz}: {e}"));
    assert_eq!(up.text().await.unwrap(), "ok\n");
    // A request, and one whose incident id tries to forge a log line.
    let inc = "INC-2026-12-02-001";
    harness::ctl(
        &json.endpoint,
        "bob",
        &harness::declare_args(inc, "bookstore/catalog"),
    )
    .await
    .unwrap();
    let forged = "INC-1\n2026-12-02T00:00:00.000000Z ERROR hotfixd: forged";
    for d in [&text, &json] {
        // Straight through the API: the CLI would refuse it before sending.
        let mut c = hotfixctl::Client::connect(&d.endpoint, Some("dev-bob"))
            .await
            .unwrap();
        let refused = c
            .lane
            .declare(hotfixctl::pb::DeclareRequest {
                incident_id: forged.into(),
                ..Default::default()
            })
            .await;
        assert!(refused.is_err(), "a newline in an incident id is refused");
    }
    drop((text, json));
    // Started again on the same data: --dev says it resumes it.
    let (again, _) = start("text", "text");
    drop(again.ready().await);

    let text = std::fs::read_to_string(&text_log).unwrap();
    assert_eq!(
        text.matches("resuming the hotfixes already in").count(),
        1,
        "the second start says it resumes, the first does not:\n{text}"
    );
    assert!(text.contains("hotfixd serving"), "{text}");
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("2026-12-02T00:00:00.000000Z ERROR")),
        "a typed incident id forged a log line:\n{text}"
    );
    assert!(
        text.contains("rpc answered"),
        "every request is logged:\n{text}"
    );
    assert!(
        !text.contains('\u{1b}'),
        "colour codes in a log file:\n{text:?}"
    );

    let json = std::fs::read_to_string(&json_log).unwrap();
    let lines: Vec<serde_json::Value> = json
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let serving = lines
        .iter()
        .find(|l| l["fields"]["message"] == "hotfixd serving")
        .unwrap_or_else(|| panic!("no 'hotfixd serving' object in:\n{json}"));
    assert_eq!(serving["level"], "INFO");
    // Each request in a span: the RPC, the principal (from its token), the
    // incident it is about.
    let declared = lines
        .iter()
        .find(|l| {
            l["fields"]["message"] == "rpc answered"
                && l["span"]["rpc"] == "/hotfix.v1.LaneService/Declare"
                && l["span"]["incident"] == inc
        })
        .unwrap_or_else(|| panic!("no span for the declaration in:\n{json}"));
    assert_eq!(declared["span"]["principal"], "bob");
    assert_eq!(declared["fields"]["grpc_status"], "0");
    assert!(
        !json.contains("forged\\n") && !json.contains("\nforged"),
        "{json}"
    );
    assert!(
        serving["fields"]["addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    // Outside --dev's banner (printed for a person), every line is JSON.
    for l in json.lines() {
        assert!(
            l.starts_with('{') || !l.contains("INFO"),
            "a log line that is not JSON: {l}"
        );
    }
}

/// systemd's `Type=notify`: READY=1 once the daemon serves (its gRPC
/// port answers by then), STOPPING=1 on SIGTERM.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn systemd_is_told_when_the_daemon_is_ready_and_when_it_stops() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hotfixd.toml");
    std::fs::write(&config, "").unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = tokio::net::UnixDatagram::bind(&socket_path).unwrap();
    let port = free_port();
    let d = Binary::spawn(
        HOTFIXD,
        &config,
        &dir.path().join("data"),
        port,
        &[("NOTIFY_SOCKET", socket_path.to_str().unwrap())],
    );
    async fn recv(socket: &tokio::net::UnixDatagram) -> String {
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(std::time::Duration::from_secs(20), socket.recv(&mut buf))
            .await
            .expect("a notification within 20 s")
            .unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
    let ready = recv(&socket).await;
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    assert!(
        ready.contains("STATUS=serving gRPC on 127.0.0.1:"),
        "{ready:?}"
    );
    // Ready means serving: the port takes a connection at once.
    std::net::TcpStream::connect(("127.0.0.1", port)).expect("the gRPC port, once READY=1");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &d.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let stopping = recv(&socket).await;
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");
}

/// SIGHUP re-reads the roster from the config file: a principal added
/// there authenticates from then on, a removed one no longer does, the
/// change is an audit record; a broken file is refused and the roster in
/// use stays. (Before, SIGHUP killed the daemon.)
#[tokio::test]
async fn sighup_reloads_the_roster_and_refuses_a_broken_file() {
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hotfixd.toml");
    let entry = |handle: &str, role: &str| {
        let hash = hex::encode(sha2::Sha256::digest(format!("tok-{handle}").as_bytes()));
        format!(
            "[[principals]]\nhandle = \"{handle}\"\nroles = [\"{role}\"]\ntoken_sha256 = \"{hash}\"\n\n"
        )
    };
    let auditor = entry("carol", "platform-team");
    std::fs::write(
        &config,
        entry("alice", "sre-lead") + &entry("dave", "engineer") + &auditor,
    )
    .unwrap();
    let port = free_port();
    let mut child = std::process::Command::new(HOTFIXD)
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("HOTFIXD_LOG", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    let whoami = |token: &'static str| {
        let endpoint = endpoint.clone();
        async move { harness::ctl_with_token(&endpoint, token, &["whoami"]).await }
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while whoami("tok-alice").await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "hotfixd did not come up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(whoami("tok-bob").await.unwrap_err().code, 26);
    let hangup = |pid: u32| {
        let sent = std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    };
    // bob added, dave removed, alice's role changed.
    std::fs::write(
        &config,
        entry("alice", "eng-manager") + &entry("bob", "engineer") + &auditor,
    )
    .unwrap();
    hangup(child.id());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while whoami("tok-bob").await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "bob never authenticated after SIGHUP"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP must not end hotfixd"
    );
    assert_eq!(whoami("tok-dave").await.unwrap_err().code, 26);
    assert_eq!(whoami("tok-alice").await.unwrap(), "@alice (eng-manager)\n");

    // A broken file: refused, the roster in use stays.
    std::fs::write(
        &config,
        "[[principals]]\nhandle = \"bob\"\nroles = [\"wizard\"]\n",
    )
    .unwrap();
    hangup(child.id());
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "a broken file must not end hotfixd"
    );
    assert_eq!(whoami("tok-bob").await.unwrap(), "@bob (engineer)\n");

    // Both reloads are in the audit trail, the second as refused; no
    // token hash in either.
    let trail = harness::ctl_with_token(
        &endpoint,
        "tok-carol",
        &["--output", "json", "audit", "export"],
    )
    .await
    .unwrap();
    let reloads: Vec<&str> = trail
        .lines()
        .filter(|l| l.contains("reload-roster"))
        .collect();
    assert_eq!(reloads.len(), 2, "{trail}");
    assert!(
        reloads[0].contains("added @bob (engineer)")
            && reloads[0].contains("@alice: sre-lead -> eng-manager")
            && reloads[0].contains("removed @dave"),
        "{}",
        reloads[0]
    );
    assert!(
        reloads[1].contains("refused, the roster in use stays"),
        "{}",
        reloads[1]
    );
    assert!(!trail.contains("token_sha256"), "{trail}");
    let _ = child.kill();
    let _ = child.wait();
}

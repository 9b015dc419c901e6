//! The audit chain through the API (`hotfixctl audit ...`) and offline
//! (`hotfixd audit verify --data-dir`), against records rewritten on disk.

mod harness;

use std::sync::Arc;

use hotfixd::config::Settings;
use hotfixd::store::AuditRecord;
use hotfixd::store::chain;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const INC: &str = "INC-2026-05-20-001";

struct Daemon {
    endpoint: String,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), hotfixd::server::ServeError>>,
}

async fn start(dir: &std::path::Path) -> Daemon {
    start_with(dir, false).await
}

/// `accept_rollback`: as `hotfixd --accept-rollback`.
async fn start_with(dir: &std::path::Path, accept_rollback: bool) -> Daemon {
    start_configured(dir, |s| s.accept_rollback = accept_rollback).await
}

async fn start_configured(dir: &std::path::Path, configure: impl FnOnce(&mut Settings)) -> Daemon {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut settings = Settings::dev(addr, dir.to_path_buf());
    configure(&mut settings);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(hotfixd::serve(
        listener,
        settings,
        Arc::new(hotfixd::clock::SystemClock),
        shutdown.clone(),
    ));
    Daemon {
        endpoint: format!("http://{addr}"),
        shutdown,
        task,
    }
}

impl Daemon {
    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }

    async fn ctl(&self, who: &str, args: &[&str]) -> Result<String, hotfixctl::cli::CliError> {
        harness::ctl(&self.endpoint, who, args).await
    }
}

/// A few changes and one denial.
async fn history(d: &Daemon) {
    d.ctl("bob", &harness::declare_args(INC, "bookstore/catalog"))
        .await
        .unwrap();
    let msg = format!("fix\n{INC}\napprover: @alice");
    d.ctl(
        "bob",
        &[
            "fix",
            INC,
            "--branch",
            &format!("hotfix/{INC}-x"),
            "--sha",
            "1111111111111111111111111111111111111111",
            "--message",
            &msg,
            "--file",
            "catalog/a.go:1:1",
        ],
    )
    .await
    .unwrap();
    // bob may not approve his own fix: a denial, audited.
    assert!(
        d.ctl("bob", &["approve", INC, "--sha", "1111111"])
            .await
            .is_err()
    );
    d.ctl("alice", &["approve", INC, "--sha", "1111111"])
        .await
        .unwrap();
}

fn offline_verify(dir: &std::path::Path) -> (i32, String) {
    offline_verify_with(dir, None)
}

fn offline_verify_with(dir: &std::path::Path, key: Option<&std::path::Path>) -> (i32, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hotfixd"));
    cmd.args(["audit", "verify", "--data-dir"]).arg(dir);
    if let Some(k) = key {
        cmd.arg("--key").arg(k);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// Rewrites audit record `seq` on disk; `reseal` recomputes every hash from
/// there, as an attacker with disk access would.
fn tamper(dir: &std::path::Path, seq: u64, reseal: bool) {
    let db = sled::open(dir).unwrap();
    let audit = db.open_tree("audit").unwrap();
    let mut records: Vec<(sled::IVec, AuditRecord)> = audit
        .iter()
        .map(|r| {
            let (k, v) = r.unwrap();
            (k, serde_json::from_slice(&v).unwrap())
        })
        .collect();
    let i = records.iter().position(|(_, r)| r.seq == seq).unwrap();
    records[i].1.detail = "nothing to see here".into();
    if reseal {
        let mut prev = if i == 0 {
            chain::GENESIS
        } else {
            chain::parse(&records[i - 1].1.hash).unwrap()
        };
        for (_, r) in records.iter_mut().skip(i) {
            prev = chain::seal(r, &prev);
        }
    }
    for (k, r) in &records {
        audit.insert(k, serde_json::to_vec(r).unwrap()).unwrap();
    }
    db.flush().unwrap();
}

#[tokio::test]
async fn the_audit_chain_verifies_and_exports_and_names_a_rewritten_record() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = start(&data).await;
    history(&d).await;
    // Reading records is for the platform team and admins; a refused read
    // is a denial like any other, in the trail (read below).
    let e = d.ctl("bob", &["audit", "export"]).await.unwrap_err();
    assert_eq!(e.code, 17, "{}", e.message);
    assert!(
        e.message.contains("may not read the audit trail"),
        "{}",
        e.message
    );
    let e = d
        .ctl("bob", &["audit", "list", "--incident", INC])
        .await
        .unwrap_err();
    assert_eq!(e.code, 17, "{}", e.message);

    let v: Value = serde_json::from_str(
        &d.ctl("bob", &["--output", "json", "audit", "verify"])
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(v["intact"], true, "{v}");
    let records = v["verified"]
        .as_str()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap();
    assert!(records >= 4, "{v}");

    let export = d.ctl("dave", &["audit", "export"]).await.unwrap();
    let lines: Vec<Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as u64, records);
    assert_eq!(lines.last().unwrap()["hash"], v["headHash"]);
    let refused_reads: Vec<(&Value, &Value, &Value, &Value)> = lines[lines.len() - 2..]
        .iter()
        .map(|r| (&r["actor"], &r["action"], &r["incident_id"], &r["outcome"]))
        .collect();
    assert_eq!(
        refused_reads,
        [
            (
                &"bob".into(),
                &"audit-export".into(),
                &"".into(),
                &"denied".into()
            ),
            (
                &"bob".into(),
                &"audit-list".into(),
                &INC.into(),
                &"denied".into()
            ),
        ],
        "{export}"
    );
    let from2 = d
        .ctl("dave", &["audit", "export", "--from", "2"])
        .await
        .unwrap();
    assert_eq!(from2.lines().count() as u64, records - 2);
    // The review of one hotfix shows its denials with the real actor.
    let list: Value = serde_json::from_str(
        &d.ctl(
            "dave",
            &["--output", "json", "audit", "list", "--incident", INC],
        )
        .await
        .unwrap(),
    )
    .unwrap();
    let denied: Vec<&Value> = list["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == "denied")
        .collect();
    let denied: Vec<(&Value, &Value)> =
        denied.iter().map(|r| (&r["actor"], &r["action"])).collect();
    assert_eq!(
        denied,
        [
            (&"bob".into(), &"approve".into()),
            (&"bob".into(), &"audit-list".into())
        ],
        "{list}"
    );
    let kept = dir.path().join("export.jsonl");
    std::fs::write(&kept, &export).unwrap();
    d.stop().await;

    // Offline on an untouched store.
    let (code, out) = offline_verify(&data);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("intact: {records} records")), "{out}");

    // A rewritten record is named offline, and the daemon does not start
    // on it, naming it too.
    tamper(&data, 3, false);
    let (code, out) = offline_verify(&data);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN at record 3"), "{out}");
    let refused = start(&data).await.task.await.unwrap().unwrap_err();
    assert!(
        refused.to_string().contains("broken at record 3"),
        "{refused}"
    );

    // Re-sealed from there on, the chain is self-consistent again, but it
    // no longer ends at the head the watermark recorded: offline and at
    // start-up that is caught ...
    tamper(&data, 3, true);
    let (code, out) = offline_verify(&data);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("not the history that was acknowledged"),
        "{out}"
    );
    let refused = start(&data).await.task.await.unwrap().unwrap_err();
    assert!(
        refused.to_string().contains("--accept-rollback"),
        "{refused}"
    );
    // ... and an operator who starts it anyway still has the export kept
    // elsewhere to prove record 3 changed.
    let d = start_with(&data, true).await;
    d.ctl("bob", &["audit", "verify"]).await.unwrap();
    let e = d
        .ctl(
            "dave",
            &["audit", "verify", "--against", kept.to_str().unwrap()],
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, 1);
    assert!(
        e.message.contains("record 3 was rewritten"),
        "{}",
        e.message
    );
    d.stop().await;
}

#[test]
fn offline_verify_of_a_directory_without_a_store_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = offline_verify(dir.path());
    assert_ne!(code, 0);
    assert!(out.contains("holds no hotfixd store"), "{out}");
}

/// `hotfixd audit keygen`: (the signing key, the verifier key file).
fn keygen(
    dir: &std::path::Path,
    name: &str,
) -> (hotfix_api::audit::SigningKey, std::path::PathBuf) {
    let secret = dir.join(format!("{name}.key"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hotfixd"))
        .args([
            "audit",
            "keygen",
            "--name",
            &format!("hotfixd.test/{name}"),
            "--out",
        ])
        .arg(&secret)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let public = dir.join(format!("{name}.pub"));
    std::fs::write(&public, stdout.lines().last().unwrap()).unwrap();
    let key =
        hotfix_api::audit::SigningKey::parse(&std::fs::read_to_string(&secret).unwrap()).unwrap();
    (key, public)
}

#[tokio::test]
async fn signed_checkpoints_catch_a_resealed_rewrite_an_altered_export_and_a_forged_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (key, public) = keygen(dir.path(), "audit");
    let (forger, other) = keygen(dir.path(), "other");
    let key = hotfixd::config::AuditKey(Arc::new(key));
    let signing = {
        let key = key.clone();
        move |s: &mut Settings| {
            s.audit_key = Some(key);
            s.checkpoints = hotfixd::app::CheckpointSettings {
                every: 3,
                interval: std::time::Duration::from_millis(50),
            };
        }
    };
    let d = start_configured(&data, signing.clone()).await;
    history(&d).await;
    let mut note = String::new();
    for _ in 0..100 {
        if let Ok(n) = d.ctl("bob", &["audit", "checkpoint"]).await {
            note = n;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(note.starts_with("hotfixd.test/audit\n"), "{note}");
    let kept = dir.path().join("kept.note");
    std::fs::write(&kept, &note).unwrap();
    let (public_s, other_s, kept_s) = (
        public.to_str().unwrap(),
        other.to_str().unwrap(),
        kept.to_str().unwrap(),
    );
    let ok = d
        .ctl(
            "bob",
            &["audit", "verify", "--key", public_s, "--checkpoint", kept_s],
        )
        .await
        .unwrap();
    assert!(ok.contains("signed checkpoint(s) verified"), "{ok}");
    // A checkpoint signed by another key, claiming this log's origin and a
    // head of the attacker's choosing, is rejected with the real key.
    let forged_note = {
        let name = "hotfixd.test/audit";
        let fake = hotfix_api::audit::SigningKey::parse(
            &forger.encode().replace("hotfixd.test/other", name),
        );
        assert!(fake.is_err(), "a key's hash binds its name");
        let fake = hotfix_api::audit::SigningKey::generate(name, [42; 32]).unwrap();
        fake.checkpoint(3, &[7; 32])
    };
    let forged = dir.path().join("forged.note");
    std::fs::write(&forged, &forged_note).unwrap();
    let e = d
        .ctl(
            "bob",
            &[
                "audit",
                "verify",
                "--key",
                public_s,
                "--checkpoint",
                forged.to_str().unwrap(),
            ],
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, 1);
    assert!(
        e.message.contains("does not verify") || e.message.contains("no signature"),
        "{}",
        e.message
    );
    // A checkpoint is only as good as the key: another one proves nothing.
    let e = d
        .ctl(
            "bob",
            &["audit", "verify", "--key", other_s, "--checkpoint", kept_s],
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, 1);
    assert!(
        e.message.contains("origin") || e.message.contains("signature"),
        "{}",
        e.message
    );
    // An export whose content was edited is caught by its own hashes.
    let export = d.ctl("dave", &["audit", "export"]).await.unwrap();
    assert!(export.contains("\"actor\":\"alice\""), "{export}");
    let edited = dir.path().join("edited.jsonl");
    std::fs::write(
        &edited,
        export.replacen("\"actor\":\"alice\"", "\"actor\":\"mallory\"", 1),
    )
    .unwrap();
    let e = d
        .ctl(
            "dave",
            &["audit", "verify", "--against", edited.to_str().unwrap()],
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, 1);
    assert!(
        e.message.contains("does not match its own fields"),
        "{}",
        e.message
    );
    d.stop().await;

    let (code, out) = offline_verify_with(&data, Some(&public));
    assert_eq!(code, 0, "{out}");
    // The rewrite of an attacker who can write the disk: record 2 changed,
    // every hash after it re-sealed, the watermark rewritten to match.
    tamper(&data, 2, true);
    {
        let db = sled::open(&data).unwrap();
        let audit = db.open_tree("audit").unwrap();
        let (_, last) = audit.last().unwrap().unwrap();
        let last: AuditRecord = serde_json::from_slice(&last).unwrap();
        let events = db.open_tree("events").unwrap();
        let (k, _) = events.last().unwrap().unwrap();
        let mark = hotfixd::store::watermark::Mark {
            audit_seq: last.seq,
            audit_head: last.hash,
            event_seq: u64::from_be_bytes(k.as_ref().try_into().unwrap()),
        };
        hotfixd::store::watermark::write(&data, &mark).unwrap();
    }
    let (code, out) = offline_verify(&data);
    assert_eq!(code, 1, "caught even without the key: {out}");
    let (code, out) = offline_verify_with(&data, Some(&public));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("signed checkpoint"), "{out}");
    let refused = start_configured(&data, signing)
        .await
        .task
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        refused.to_string().contains("signed checkpoint"),
        "{refused}"
    );
}

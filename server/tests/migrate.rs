//! `hotfixd migrate`, the real binary, between a sled data directory and a
//! real etcd, both ways: every event and audit record comes across as it
//! was (same sequence numbers, same chain hashes), the copy goes on
//! gap-free, and a migration refuses what would lose or mix up history (a
//! prefix in use, a source still served, a half-done copy).

mod etcd;
mod harness;

use std::path::Path;
use std::process::Command;

use harness::{Binary, HOTFIXD, free_port};

const PREFIX: &str = "/migrated/";

fn migrate(etcd: &etcd::Etcd, args: &[&str]) -> (bool, String) {
    let out = Command::new(HOTFIXD)
        .arg("migrate")
        .args(args)
        .args(["--etcd-endpoints", &etcd.endpoint, "--etcd-prefix", PREFIX])
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A daemon on `data` (sled) or, with `etcd`, on the migrated prefix.
async fn daemon(dir: &Path, name: &str, etcd: Option<&etcd::Etcd>) -> Binary {
    let config = dir.join(format!("{name}.toml"));
    let store = etcd.map_or(String::new(), |e| {
        format!(
            "[store]\nengine = \"etcd\"\nendpoints = [\"{}\"]\nprefix = \"{PREFIX}\"\nlease_ttl = \"2s\"\n",
            e.endpoint
        )
    });
    std::fs::write(&config, store).unwrap();
    Binary::spawn(HOTFIXD, &config, &dir.join(name), free_port(), &[])
        .ready()
        .await
}

/// Stops `d` the way an operator does (SIGTERM; a replica resigns its
/// lease) and waits for it.
fn stop(mut d: Binary) {
    let ok = Command::new("kill")
        .args(["-TERM", &d.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    assert!(d.child.wait().unwrap().success(), "a clean exit on SIGTERM");
}

async fn declare(d: &Binary, inc: &str) {
    d.ctl("bob", &harness::declare_args(inc, "bookstore/catalog"))
        .await
        .unwrap();
}

async fn export(d: &Binary) -> Vec<String> {
    d.ctl("dave", &["audit", "export"])
        .await
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sled_store_moves_to_etcd_and_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = etcd::Etcd::start().await;

    let sled = daemon(dir.path(), "sled", None).await;
    for n in 1..=2 {
        declare(&sled, &format!("INC-2026-05-20-00{n}")).await;
    }
    // A refusal is history too.
    assert!(
        sled.ctl("bob", &harness::declare_args("INC-2026-05-20-001", "x/y"))
            .await
            .is_err()
    );
    let events = harness::events(&sled.endpoint).await;
    let audit = export(&sled).await;
    assert!(events.len() >= 2 && audit.len() >= 3);

    // The source is still served: its data directory is locked.
    let (ok, out) = migrate(
        &etcd,
        &[
            "--from-data-dir",
            dir.path().join("sled").to_str().unwrap(),
            "--to-etcd",
        ],
    );
    assert!(
        !ok && out.contains("stop the hotfixd running on it"),
        "{out}"
    );
    stop(sled);

    let (ok, out) = migrate(
        &etcd,
        &[
            "--from-data-dir",
            dir.path().join("sled").to_str().unwrap(),
            "--to-etcd",
        ],
    );
    assert!(ok, "{out}");
    assert!(out.contains("verified"), "{out}");
    // Once only: the prefix now holds a store.
    let (ok, out) = migrate(
        &etcd,
        &[
            "--from-data-dir",
            dir.path().join("sled").to_str().unwrap(),
            "--to-etcd",
        ],
    );
    assert!(!ok && out.contains("already holds"), "{out}");

    let on_etcd = daemon(dir.path(), "etcd", Some(&etcd)).await;
    assert_eq!(harness::events(&on_etcd.endpoint).await, events);
    let moved = export(&on_etcd).await;
    assert_eq!(
        moved[..audit.len()],
        audit[..],
        "every record, hash and all"
    );
    assert!(
        moved[audit.len()].contains("\"migrate\""),
        "{}",
        moved[audit.len()]
    );
    // It goes on from where the sled store was, gap-free.
    declare(&on_etcd, "INC-2026-05-20-003").await;
    let after = harness::events(&on_etcd.endpoint).await;
    assert_eq!(after[..events.len()], events[..]);
    assert!(after.len() > events.len());
    let seqs: Vec<u64> = after.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=after.len() as u64).collect::<Vec<_>>());
    let on_etcd_audit = export(&on_etcd).await;
    let verified = on_etcd.ctl("dave", &["audit", "verify"]).await.unwrap();
    assert!(verified.contains("intact"), "{verified}");

    // Back, so that a team can leave etcd; not while a replica serves.
    let back = dir.path().join("back");
    let (ok, out) = migrate(
        &etcd,
        &["--from-etcd", "--to-data-dir", back.to_str().unwrap()],
    );
    assert!(!ok && out.contains("replicas are running"), "{out}");
    stop(on_etcd);
    let (ok, out) = migrate(
        &etcd,
        &["--from-etcd", "--to-data-dir", back.to_str().unwrap()],
    );
    assert!(ok, "{out}");

    let sled = daemon(dir.path(), "back", None).await;
    assert_eq!(harness::events(&sled.endpoint).await, after);
    let back_audit = export(&sled).await;
    assert_eq!(back_audit[..on_etcd_audit.len()], on_etcd_audit[..]);
    assert_eq!(back_audit.len(), on_etcd_audit.len() + 1);
    // The rate limits count what came across: @bob's quarter, and the
    // week's gate (the fifth declaration in it needs a team review).
    let fourth = sled
        .ctl("bob", &harness::declare_args("INC-2026-05-20-004", "x/y"))
        .await
        .unwrap();
    assert!(fourth.contains("@bob has declared 4 hotfixes"), "{fourth}");
    let refused = sled
        .ctl("bob", &harness::declare_args("INC-2026-05-20-005", "x/y"))
        .await
        .unwrap_err();
    assert!(refused.message.contains("team review"), "{refused:?}");
    let verified = sled.ctl("dave", &["audit", "verify"]).await.unwrap();
    assert!(verified.contains("intact"), "{verified}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_done_migration_is_no_store() {
    use hotfixd::store::etcd::api::etcdserverpb::{PutRequest, kv_client::KvClient};
    let etcd = etcd::Etcd::start().await;
    // What a migration cut short leaves: entries, no head.
    let mut kv = KvClient::connect(etcd.endpoint.clone()).await.unwrap();
    kv.put(PutRequest {
        key: format!("{PREFIX}e/\0\0\0\0\0\0\0\x01").into_bytes(),
        value: b"{}".to_vec(),
        ..Default::default()
    })
    .await
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("etcd.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nengine = \"etcd\"\nendpoints = [\"{}\"]\nprefix = \"{PREFIX}\"\n",
            etcd.endpoint
        ),
    )
    .unwrap();
    let mut child = Command::new(HOTFIXD)
        .args(["--dev", "--config"])
        .arg(&config)
        .args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("hotfixd started on a prefix with no head");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("no head key") && err.contains("migrate again"),
        "{err}"
    );

    let (ok, out) = migrate(
        &etcd,
        &[
            "--from-etcd",
            "--to-data-dir",
            dir.path().join("d").to_str().unwrap(),
        ],
    );
    assert!(!ok && out.contains("no head key"), "{out}");
    assert!(!dir.path().join("d").exists(), "nothing written");
}

//! Backup and restore, the way a database has them: a platform-admin takes
//! an online backup while others keep writing (`hotfixctl admin backup`),
//! it restores into an empty data directory (`hotfixd restore`), and the
//! daemon started there serves every event the backup reached, identical,
//! with an intact audit chain that ends with the backup's own record.

mod harness;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use harness::{Binary, HOTFIXD, free_port};

fn restore(data: &std::path::Path, file: &std::path::Path) -> (bool, String) {
    let out = Command::new(HOTFIXD)
        .arg("restore")
        .arg("--data-dir")
        .arg(data)
        .arg(file)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_backup_under_writes_restores_whole() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hotfixd.toml");
    std::fs::write(&config, "").unwrap();
    let data = dir.path().join("data");
    let d = Binary::spawn(HOTFIXD, &config, &data, free_port(), &[])
        .ready()
        .await;
    for i in 0..20 {
        d.ctl("erin", &["team-review", "--notes", &format!("before {i}")])
            .await
            .unwrap();
    }
    // Writers keep going while the backup is taken.
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for who in ["erin", "alice"] {
        let (stop, endpoint) = (stop.clone(), d.endpoint.clone());
        writers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                harness::ctl(
                    &endpoint,
                    who,
                    &["team-review", "--notes", &format!("{who} {n}")],
                )
                .await
                .unwrap();
                n += 1;
            }
            n
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let file = dir.path().join("hotfixd.backup");
    let e = d
        .ctl("bob", &["admin", "backup", file.to_str().unwrap()])
        .await
        .unwrap_err();
    assert_eq!(e.code, 17, "only a platform-admin: {}", e.message);
    assert!(!file.exists());
    d.ctl("carol", &["admin", "backup", file.to_str().unwrap()])
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    let mut written = 0;
    for w in writers {
        written += w.await.unwrap();
    }
    assert!(written > 0);
    let live = harness::events(&d.endpoint).await;
    drop(d);

    // Not into a directory that holds something; not a damaged backup.
    let (ok, out) = restore(&data, &file);
    assert!(!ok && out.contains("not empty"), "{out}");
    let damaged = dir.path().join("damaged.backup");
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&damaged, &bytes).unwrap();
    let (ok, out) = restore(&dir.path().join("from-damaged"), &damaged);
    assert!(!ok && out.contains("checksum"), "{out}");

    let restored = dir.path().join("restored");
    let (ok, out) = restore(&restored, &file);
    assert!(ok, "{out}");
    let verify = Command::new(HOTFIXD)
        .args(["audit", "verify", "--data-dir"])
        .arg(&restored)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );

    let d = Binary::spawn(HOTFIXD, &config, &restored, free_port(), &[])
        .ready()
        .await;
    let back = harness::events(&d.endpoint).await;
    assert!(
        back.len() >= 20 && back.len() < live.len(),
        "{} of {}",
        back.len(),
        live.len()
    );
    assert_eq!(
        back[..],
        live[..back.len()],
        "the backup is a prefix of the history, unchanged"
    );
    let v = d.ctl("bob", &["audit", "verify"]).await.unwrap();
    assert!(v.contains("intact"), "{v}");
    let trail = d
        .ctl("dave", &["--output", "json", "audit", "export"])
        .await
        .unwrap();
    let refused = trail
        .lines()
        .filter(|l| l.contains("\"backup\"") && l.contains("denied") && l.contains("\"bob\""))
        .count();
    assert_eq!(refused, 1, "bob's refused backup is in the trail");
    let last = trail.lines().last().unwrap();
    assert!(
        last.contains("\"backup\"") && last.contains("\"carol\""),
        "{last}"
    );
    // And it goes on from there.
    d.ctl("erin", &["team-review", "--notes", "after the restore"])
        .await
        .unwrap();
}

//! A damaged or rolled-back store never starts silently: the real binary
//! is started on copies of a data directory that were truncated, had bytes
//! flipped, lost their log file or had their sled files replaced by an
//! older copy. Each either refuses to start (a non-zero exit that is not a
//! panic's 101, with a message naming the data directory), or serves every
//! event that was acknowledged; `hotfixd audit verify --data-dir` never
//! calls a refused one intact. `--accept-rollback` starts on an older copy
//! and records that it did.

mod harness;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use harness::{Binary, HOTFIXD, free_port};

/// `n` team reviews (one change, one event each) as erin.
async fn changes(d: &Binary, from: usize, n: usize) {
    for i in from..from + n {
        d.ctl("erin", &["team-review", "--notes", &format!("review {i}")])
            .await
            .expect("a change");
    }
}

/// Starts hotfixd on `data`: the running daemon, or its exit status and log.
async fn start(config: &Path, data: &Path, extra: &[&str]) -> Result<Binary, (i32, String)> {
    let log = data.with_extension("log");
    let _ = std::fs::remove_file(&log);
    let mut cmd = Command::new(HOTFIXD);
    cmd.args(extra);
    let mut b = Binary::spawn_logged(
        cmd,
        config,
        data,
        free_port(),
        &[("HOTFIXD_LOG", "warn")],
        &log,
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = b.child.try_wait().unwrap() {
            return Err((
                status.code().unwrap_or(-1),
                std::fs::read_to_string(&log).unwrap(),
            ));
        }
        if let Ok(mut c) = hotfixctl::Client::connect(&b.endpoint, Some("dev-bob")).await
            && c.policy
                .who_am_i(hotfixctl::pb::WhoAmIRequest {})
                .await
                .is_ok()
        {
            return Ok(b);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "neither started nor exited"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

fn offline_verify(data: &Path) -> (bool, String) {
    let out = Command::new(HOTFIXD)
        .args(["audit", "verify", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A refusal as the issue asks for: not a panic, naming the directory.
fn assert_refused(what: &str, data: &Path, code: i32, log: &str) {
    assert!(code != 0 && code != 101, "{what}: exit {code}\n{log}");
    assert!(
        log.contains(&data.display().to_string()),
        "{what}: the message names the data directory\n{log}"
    );
    let (intact, report) = offline_verify(data);
    assert!(!intact, "{what}: audit verify called it intact:\n{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_or_rolled_back_store_is_refused_or_whole() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hotfixd.toml");
    std::fs::write(&config, "").unwrap();
    let data = dir.path().join("data");
    let d = start(&config, &data, &[])
        .await
        .expect("a fresh store starts");
    changes(&d, 0, 10).await;
    drop(d);
    let older = dir.path().join("older");
    copy_dir(&data, &older);
    let d = start(&config, &data, &[]).await.expect("restarts");
    changes(&d, 10, 20).await;
    let total = harness::events(&d.endpoint).await.len();
    assert_eq!(total, 30);
    drop(d);
    let (intact, report) = offline_verify(&data);
    assert!(intact, "{report}");

    let case = |name: &str| -> PathBuf {
        let p = dir.path().join(name);
        copy_dir(&data, &p);
        p
    };

    // The sled files of the older copy, the current watermark: a restore
    // of the store alone.
    let rolled = case("rolled-back");
    for e in std::fs::read_dir(&rolled).unwrap() {
        let e = e.unwrap();
        if e.file_name() != "watermark" {
            if e.path().is_dir() {
                std::fs::remove_dir_all(e.path()).unwrap();
            } else {
                std::fs::remove_file(e.path()).unwrap();
            }
        }
    }
    std::fs::remove_file(older.join("watermark")).unwrap();
    copy_dir(&older, &rolled);
    let (code, log) = start(&config, &rolled, &[]).await.err().expect("refused");
    assert_refused("rolled back", &rolled, code, &log);
    assert!(
        log.contains("watermark records") && log.contains("--accept-rollback"),
        "{log}"
    );

    // The log file deleted: an empty store, not a fresh one.
    let deleted = case("deleted");
    std::fs::remove_file(deleted.join("db")).unwrap();
    let (code, log) = start(&config, &deleted, &[]).await.err().expect("refused");
    assert_refused("db deleted", &deleted, code, &log);

    // The watermark deleted: no longer a first start.
    let unmarked = case("unmarked");
    std::fs::remove_file(unmarked.join("watermark")).unwrap();
    let (code, log) = start(&config, &unmarked, &[]).await.err().expect("refused");
    assert!(
        code != 0 && code != 101 && log.contains("is missing"),
        "{code}: {log}"
    );

    // Truncations and flipped bytes of the log file.
    let len = std::fs::metadata(data.join("db")).unwrap().len();
    let mut damaged = Vec::new();
    for (i, cut) in [len / 2, len * 3 / 4, len - 100].into_iter().enumerate() {
        let p = case(&format!("truncated-{i}"));
        std::fs::OpenOptions::new()
            .write(true)
            .open(p.join("db"))
            .unwrap()
            .set_len(cut)
            .unwrap();
        damaged.push(p);
    }
    for (i, at) in [len / 3, len / 2, len * 2 / 3, len - 200]
        .into_iter()
        .enumerate()
    {
        let p = case(&format!("flipped-{i}"));
        let mut bytes = std::fs::read(p.join("db")).unwrap();
        for b in &mut bytes[at as usize..(at as usize + 16).min(len as usize)] {
            *b ^= 0x5a;
        }
        std::fs::write(p.join("db"), bytes).unwrap();
        damaged.push(p);
    }
    for p in &damaged {
        match start(&config, p, &[]).await {
            Ok(d) => {
                assert_eq!(
                    harness::events(&d.endpoint).await.len(),
                    total,
                    "{} started with less",
                    p.display()
                );
            }
            Err((code, log)) => assert_refused(&p.display().to_string(), p, code, &log),
        }
    }

    // An older copy on purpose: started, and the choice is in the trail.
    let d = start(&config, &rolled, &["--accept-rollback"])
        .await
        .expect("--accept-rollback starts");
    assert_eq!(harness::events(&d.endpoint).await.len(), 10);
    let trail = d
        .ctl(
            "dave",
            &["--output", "json", "audit", "export", "--from", "0"],
        )
        .await
        .unwrap();
    let last = trail.lines().last().unwrap();
    assert!(
        last.contains("accept-rollback") && last.contains("watermark records"),
        "{last}"
    );
    drop(d);
    // From then on it is the store's history: a plain start works.
    let d = start(&config, &rolled, &[]).await.expect("starts plainly");
    changes(&d, 100, 1).await;
    drop(d);
    let (intact, report) = offline_verify(&rolled);
    assert!(intact, "{report}");
}

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

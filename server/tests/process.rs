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

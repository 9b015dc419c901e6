//! README.md's walkthrough ("A hotfix, step by step"), pasted as written
//! into bash against `hotfixd --dev` — twice in a row, as a newcomer
//! trying it again would. The real binaries: hotfixd, and hotfixctl on
//! PATH (built beside it by `cargo build --workspace`, which scripts/test
//! runs first: `cargo test` alone builds only the daemon's binary).

mod harness;

use std::path::Path;
use std::process::Command;

use harness::{Binary, HOTFIXD, free_port};

/// The first ```sh block after the walkthrough's heading.
fn walkthrough() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let section = readme
        .split_once("## A hotfix, step by step")
        .expect("the walkthrough's heading")
        .1;
    let block = section.split_once("```sh\n").expect("its sh block").1;
    block
        .split_once("\n```")
        .expect("the block's end")
        .0
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walkthrough_pastes_twice_in_a_row() {
    let bin_dir = Path::new(HOTFIXD).parent().unwrap();
    assert!(
        bin_dir.join("hotfixctl").exists(),
        "no hotfixctl beside {HOTFIXD}: run `cargo build --workspace` first (scripts/test \
         does; `cargo test` alone never builds target/debug/hotfixctl)"
    );
    let mut script = walkthrough();
    // The last line follows the log live until Ctrl-C; here, until caught up.
    let watch = script
        .lines()
        .find(|l| l.starts_with("as bob watch"))
        .expect("the walkthrough ends watching")
        .to_string();
    script = script.replace(&watch, "as bob watch --once");

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // `hotfixd --dev` as README's first command runs it (its data in
    // ./hotfixd-dev-data), on a free port instead of 50051.
    let child = Command::new(HOTFIXD)
        .args(["--dev", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--http-listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed when dropped, also when an assertion fails.
    let daemon = Binary {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    }
    .ready()
    .await;
    let endpoint = daemon.endpoint.clone();

    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut incidents = Vec::new();
    for paste in 1..=2 {
        let out = Command::new("bash")
            .args(["-e", "-o", "pipefail", "-c", &script])
            .env("PATH", &path)
            .env("HOTFIXCTL_ENDPOINT", &endpoint)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(
            out.status.success(),
            "paste {paste} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
            out.status
        );
        // It went all the way: the audit review recorded, shown as closed.
        let inc = stdout
            .split_whitespace()
            .find(|w| w.starts_with("INC-"))
            .expect("an incident id in the output")
            .to_string();
        incidents.push(inc);
    }
    assert_ne!(incidents[0], incidents[1], "each paste is a new incident");
    let closed = harness::ctl(
        &endpoint,
        "bob",
        &["--output", "json", "list", "--state", "closed"],
    )
    .await
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&closed).unwrap();
    assert_eq!(v["hotfixes"].as_array().unwrap().len(), 2, "{v}");
}

//! What README.md tells a newcomer to type works as written.

use std::process::Command;

/// README: "`cargo build` first, then put `target/debug` on your PATH":
/// a plain `cargo build` builds both binaries.
#[test]
fn cargo_build_builds_the_daemon_and_the_cli() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let defaults: Vec<&str> = meta["workspace_default_members"]
        .as_array()
        .expect("cargo reports the default members")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let built = |bin: &str| {
        meta["packages"].as_array().unwrap().iter().any(|p| {
            defaults.contains(&p["id"].as_str().unwrap())
                && p["targets"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|t| t["name"] == bin && t["kind"][0] == "bin")
        })
    };
    for bin in ["hotfixd", "hotfixctl"] {
        assert!(built(bin), "`cargo build` does not build {bin}");
    }
}

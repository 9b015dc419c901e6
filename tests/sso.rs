//! Single sign-on against a real OpenID Provider (panva's oidc-provider,
//! `common::oidc`): `hotfixctl login` with the device grant approved in
//! headless Chromium on the IdP's own pages, the session file, a refresh,
//! `logout`; and every token hotfixd must refuse: expired, for another
//! audience, from another issuer, unsigned (`alg: none`), tampered, signed
//! with a key the IdP rotated out. Static tokens keep working beside it.

mod common;

use std::io::Write;
use std::time::Duration;

use common::oidc::{Idp, IdpConfig};
use common::*;
use hotfixd::domain::Role;
use hotfixd::oidc::OidcSettings;

/// What hotfixctl prints, line by line, while it runs.
struct Lines(tokio::sync::mpsc::UnboundedSender<String>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = self.0.send(String::from_utf8_lossy(buf).into_owned());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const UNAUTHENTICATED: i32 = 26;

fn settings(issuer: &str) -> OidcSettings {
    OidcSettings {
        issuer: issuer.into(),
        audience: "hotfixctl".into(),
        username_claim: "preferred_username".into(),
        groups_claim: "groups".into(),
        roles: [(
            "platform-admins".to_string(),
            [Role::PlatformAdmin].into_iter().collect(),
        )]
        .into(),
        jwks_refresh: Duration::from_secs(3600),
        reread_after: Duration::ZERO,
        timeout: Duration::from_secs(5),
    }
}

/// `hotfixctl --config PROFILE ARGS` (the profile's context: SSO).
async fn ctl_sso(
    profile: &std::path::Path,
    args: &[&str],
) -> Result<String, hotfixctl::cli::CliError> {
    let mut argv = vec!["hotfixctl", "--config", profile.to_str().unwrap()];
    argv.extend_from_slice(args);
    ctl_argv(&argv).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sso_signs_in_with_the_device_grant_and_every_bad_token_is_told_to_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("idp-keys");
    std::fs::create_dir(&keys).unwrap();
    let people: &[(&str, &[&str])] = &[("erin", &["platform-admins"]), ("frank", &[])];
    let idp = Idp::start(&IdpConfig {
        keys: &keys,
        kids: &["k1"],
        clients: &["hotfixctl", "another-app"],
        accounts: people,
        // Short enough that the CLI refreshes within the test (it does
        // below a minute left).
        id_token_ttl: 64,
        port: 0,
    });
    let oidc = settings(&idp.issuer);
    let d = Daemon::start_configured(move |s| s.oidc = Some(oidc)).await;
    let profile = dir.path().join("config.toml");
    std::fs::write(
        &profile,
        format!(
            "context = \"prod\"\n[contexts.prod]\nendpoint = \"{}\"\noidc_issuer = \"{}\"\noidc_client_id = \"hotfixctl\"\n",
            d.endpoint, idp.issuer
        ),
    )
    .unwrap();

    // Not signed in yet: the context says what to do.
    let e = ctl_sso(&profile, &["whoami"]).await.unwrap_err();
    assert_eq!(e.code, UNAUTHENTICATED, "{}", e.message);
    assert!(e.message.contains("run `hotfixctl login`"), "{}", e.message);

    // `login`: a URL to open; erin approves it in the browser.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let argv = vec![
        "hotfixctl".to_string(),
        "--config".into(),
        profile.to_str().unwrap().into(),
        "login".into(),
    ];
    let login = tokio::spawn(async move {
        let cli = <hotfixctl::cli::Cli as clap::Parser>::try_parse_from(&argv).unwrap();
        let mut out = Lines(tx);
        hotfixctl::cli::run(cli, &mut out).await
    });
    let mut said = String::new();
    let url = loop {
        let chunk = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("login prints a URL")
            .expect("login still running");
        said.push_str(&chunk);
        if let Some(url) = said
            .split_whitespace()
            .find(|w| w.contains("/device?user_code="))
        {
            break url.to_string();
        }
    };
    assert!(said.starts_with("To sign in, open "), "{said}");
    tokio::task::spawn_blocking(move || Idp::approve(&url, "erin"))
        .await
        .unwrap();
    login
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("login failed: {e:?}"));
    while let Ok(chunk) = rx.try_recv() {
        said.push_str(&chunk);
    }
    assert!(
        said.contains(&format!("signed in to {} as erin", idp.issuer)),
        "{said}"
    );
    // hotfixd's own word: the handle from the token; platform-admin from
    // the token's group, eng-manager from the roster's erin (the demo's).
    assert!(
        said.contains("@erin (eng-manager, platform-admin)"),
        "{said}"
    );

    let session = dir.path().join("sso").join("prod.json");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&session).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the session is erin's only");
    }
    let out = ctl_sso(&profile, &["whoami"]).await.unwrap();
    assert_eq!(out.trim(), "@erin (eng-manager, platform-admin)");
    // Identity from the credential: erin's token is erin, whatever the
    // roster says of other handles; the static tokens still work.
    assert_eq!(
        d.ctl("alice", &["whoami"]).await.unwrap().trim(),
        "@alice (sre-lead)"
    );

    // Below a minute left, the next command refreshes the token first.
    let first: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&session).unwrap()).unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        ctl_sso(&profile, &["whoami"]).await.unwrap().trim(),
        "@erin (eng-manager, platform-admin)"
    );
    let second: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&session).unwrap()).unwrap();
    assert_ne!(first["id_token"], second["id_token"], "refreshed");
    assert!(second["expires_at"].as_i64() > first["expires_at"].as_i64());

    // Tokens hotfixd must refuse, each saying what to do.
    let now = chrono::Utc::now().timestamp();
    let issuer = idp.issuer.clone();
    let claims = |over: serde_json::Value| {
        let mut c = serde_json::json!({
            "iss": issuer, "aud": "hotfixctl", "sub": "erin",
            "preferred_username": "erin", "groups": ["platform-admins"],
            "iat": now, "exp": now + 600,
        });
        common::github::overlay(&mut c, over);
        c
    };
    // `hotfixctl whoami` with a token given as is.
    let whoami = |token: String| {
        let endpoint = d.endpoint.clone();
        async move {
            ctl_argv(&[
                "hotfixctl",
                "--endpoint",
                &endpoint,
                "--token",
                &token,
                "whoami",
            ])
            .await
            .map(|out| out.trim().to_string())
        }
    };
    let refused = |token: String| async move {
        let e = whoami(token).await.unwrap_err();
        assert_eq!(e.code, UNAUTHENTICATED, "{}", e.message);
        e.message
    };
    // The IdP's own key, a valid token: accepted (the control).
    let good = idp.sign("k1", claims(serde_json::json!({})));
    assert_eq!(
        whoami(good.clone()).await.unwrap(),
        "@erin (eng-manager, platform-admin)"
    );
    let m = refused(idp.sign(
        "k1",
        claims(serde_json::json!({"iat": now - 7200, "exp": now - 3600})),
    ))
    .await;
    assert!(
        m.contains("your sign-in expired at") && m.contains("hotfixctl login"),
        "{m}"
    );
    let m = refused(idp.sign("k1", claims(serde_json::json!({"aud": "another-app"})))).await;
    assert!(
        m.contains("not for hotfixd ('hotfixctl')") && m.contains("hotfixctl login"),
        "{m}"
    );
    let m = refused(idp.sign(
        "k1",
        claims(serde_json::json!({"iss": "https://evil.example"})),
    ))
    .await;
    assert!(
        m.contains("issued by 'https://evil.example'") && m.contains("hotfixctl login"),
        "{m}"
    );
    let unsigned = {
        use base64::Engine;
        let b64 = |v: &serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        format!(
            "{}.{}.",
            b64(&serde_json::json!({"alg": "none", "kid": "k1"})),
            b64(&claims(serde_json::json!({})))
        )
    };
    let m = refused(unsigned).await;
    assert!(
        m.contains("unsigned (alg: none)") && m.contains("hotfixctl login"),
        "{m}"
    );
    let tampered = {
        let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
        use base64::Engine;
        parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(claims(serde_json::json!({"preferred_username": "carol"})).to_string());
        parts.join(".")
    };
    let m = refused(tampered).await;
    assert!(m.contains("signature does not verify"), "{m}");
    // A token naming nobody hotfixd can call by name.
    let m = refused(idp.sign(
        "k1",
        claims(serde_json::json!({"preferred_username": "a b"})),
    ))
    .await;
    assert!(m.contains("preferred_username"), "{m}");

    // The IdP rotates its key: k2 in, k1 out (restarted with k2 only).
    let port = idp.port;
    drop(idp);
    let idp = Idp::start(&IdpConfig {
        keys: &keys,
        kids: &["k2"],
        clients: &["hotfixctl"],
        accounts: people,
        id_token_ttl: 3600,
        port,
    });
    // A token signed with the new key is taken at once: its kid makes
    // hotfixd read the JWKS again.
    let rotated_in = idp.sign("k2", claims(serde_json::json!({})));
    assert_eq!(
        whoami(rotated_in).await.unwrap(),
        "@erin (eng-manager, platform-admin)"
    );
    // One signed with the key rotated out is refused from then on.
    let m = refused(good).await;
    assert!(
        m.contains("signed with key 'k1', which the IdP")
            && m.contains("rotated out")
            && m.contains("hotfixctl login"),
        "{m}"
    );

    // `logout`: the session is gone, and so is the sign-in.
    let out = ctl_sso(&profile, &["logout"]).await.unwrap();
    assert!(out.contains("signed out of"), "{out}");
    assert!(!session.exists());
    let e = ctl_sso(&profile, &["whoami"]).await.unwrap_err();
    assert!(e.message.contains("run `hotfixctl login`"), "{}", e.message);
}

/// An IdP that does not answer at start-up stops nobody: hotfixd serves,
/// static tokens work, and an SSO token is refused saying why.
#[tokio::test]
async fn an_idp_down_at_start_up_refuses_sso_tokens_only_and_says_why() {
    let closed = free_addr();
    let oidc = settings(&format!("http://{closed}"));
    let d = Daemon::start_configured(move |s| s.oidc = Some(oidc)).await;
    assert_eq!(
        d.ctl("bob", &["whoami"]).await.unwrap().trim(),
        "@bob (engineer)"
    );
    let b64 = |v: serde_json::Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let token = format!(
        "{}.{}.c2ln",
        b64(serde_json::json!({"alg": "RS256", "kid": "k1"})),
        b64(serde_json::json!({"preferred_username": "erin"}))
    );
    let e = ctl_argv(&[
        "hotfixctl",
        "--endpoint",
        &d.endpoint,
        "--token",
        &token,
        "whoami",
    ])
    .await
    .unwrap_err();
    assert_eq!(e.code, UNAUTHENTICATED, "{}", e.message);
    assert!(
        e.message.contains("could not read the IdP's keys")
            && e.message
                .contains("static tokens and client certificates still work"),
        "{}",
        e.message
    );
}

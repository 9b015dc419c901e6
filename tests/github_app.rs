//! hotfixd signed in as a GitHub App: installations found with the App's
//! JWT, installation tokens minted, minted again before they expire and
//! after GitHub revokes them, dropped on an `installation` webhook. The
//! fake GitHub checks the JWT as GitHub does (RS256 under the App's public
//! key, its id as issuer, at most ten minutes) and every request and
//! response against GitHub's REST description, the App's endpoints too.

mod common;

use std::time::Duration;

use common::github::{APP_ID, APP_PRIVATE_KEY, FakeApp, FakeGitHub};
use common::*;
use hotfixd::integrations::github::GitHubApp;

const WEBHOOK_SECRET: &str = "whsec-app-tests";

/// A daemon signing in as the fake's App (the bot's token is refused
/// there), with the webhook intake on; and the operator listener's URL.
async fn as_the_app(fake: &FakeGitHub) -> (Daemon, String) {
    fake.world().app = Some(FakeApp::installed());
    let mut gh = github_settings(fake);
    gh.token = None;
    gh.app = Some(GitHubApp {
        id: APP_ID,
        private_key: APP_PRIVATE_KEY.into(),
    });
    gh.webhook_secret = Some(WEBHOOK_SECRET.into());
    with_operator_listener(|s| s.github = Some(gh)).await
}

async fn until_state(d: &Daemon, inc: &str, state: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while d.state(inc).await != state {
        assert!(
            std::time::Instant::now() < deadline,
            "{inc} never reached {state}: {}",
            d.state(inc).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn hotfixd_signs_in_as_the_app_and_mints_again_before_expiry_and_after_revocation() {
    let fake = FakeGitHub::start().await;
    let (d, _) = as_the_app(&fake).await;
    // Tokens that expire three seconds past the five-minute margin: after
    // three seconds each call must mint a fresh one, never send a stale.
    fake.world().app.as_mut().unwrap().token_ttl =
        chrono::TimeDelta::minutes(5) + chrono::TimeDelta::seconds(3);
    pr_opened_on_github(&fake, &d, INC, &[]).await;
    {
        let w = fake.world();
        let app = w.app.as_ref().unwrap();
        assert_eq!(app.lookups, 1, "the installation is found once");
        assert!(app.minted >= 1);
        assert!(w.unauthorized.is_empty(), "{:?}", w.unauthorized);
        assert!(w.pull(4321).is_some(), "hotfixd's PR, opened as the App");
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    let minted = fake.world().app.as_ref().unwrap().minted;
    // The check follower reads every 50 ms: every read since is signed
    // with a token minted again.
    eventually("a token minted again near its expiry", || {
        fake.world().app.as_ref().unwrap().minted > minted
    })
    .await;
    assert!(
        fake.world().unauthorized.is_empty(),
        "no expired token was sent: {:?}",
        fake.world().unauthorized
    );

    // GitHub revokes every token (a key rotated, the App's permissions
    // changed): the next call is refused once, hotfixd mints again and
    // goes on.
    {
        let mut w = fake.world();
        w.app.as_mut().unwrap().token_ttl = chrono::TimeDelta::hours(1);
        w.app.as_mut().unwrap().revoke_all();
    }
    eventually("a revoked token refused", || {
        !fake.world().unauthorized.is_empty()
    })
    .await;
    fake.world().finish_checks(SHA1, "success");
    until_state(&d, INC, "READY_TO_MERGE").await;
    d.ctl("carol", &["merge", INC]).await.expect("merge");
    assert_eq!(d.state(INC).await, "MERGED");
    let w = fake.world();
    assert_eq!(
        w.app.as_ref().unwrap().lookups,
        1,
        "minting again needs no new lookup"
    );
    assert!(w.unauthorized.iter().all(|u| u.contains("Bad credentials")));
    drop(w);
    fake.assert_contract_kept();
}

/// An `installation` event's body, as GitHub sends one (checked against
/// GitHub's webhook schema).
fn installation_event(action: &str, account: &str, id: u64) -> Vec<u8> {
    common::github::webhook(
        &format!("installation${action}"),
        serde_json::json!({
            "action": action,
            "installation": {"id": id, "account": {"login": account}, "app_id": APP_ID},
        }),
    )
}

#[tokio::test]
async fn an_installation_event_signs_in_again_and_an_account_without_the_app_is_named() {
    let fake = FakeGitHub::start().await;
    let (d, base) = as_the_app(&fake).await;
    let hook = format!("{base}/webhooks/github");
    pr_opened_on_github(&fake, &d, INC, &[]).await;
    eventually("the checks read as the App", || fake.world().requests > 6).await;

    // Installed again: the old installation's tokens are revoked. The
    // delivery makes hotfixd find the new one before it sends a token
    // GitHub would refuse.
    let new = fake
        .world()
        .app
        .as_mut()
        .unwrap()
        .reinstall(common::github::OWNER);
    let (status, _) = FakeGitHub::deliver(
        &hook,
        Some(WEBHOOK_SECRET),
        "installation",
        "inst-1",
        &installation_event("created", common::github::OWNER, new),
    )
    .await;
    assert_eq!(status, 202);
    fake.world().finish_checks(SHA1, "success");
    until_state(&d, INC, "READY_TO_MERGE").await;
    {
        let w = fake.world();
        assert_eq!(w.app.as_ref().unwrap().lookups, 2, "found again once");
        // A read already in flight when the delivery came may have used
        // the old token once; no more than that.
        assert!(w.unauthorized.len() <= 1, "{:?}", w.unauthorized);
    }

    // Uninstalled: a step that needs GitHub says so and what to do.
    fake.world().app.as_mut().unwrap().installations.clear();
    fake.world().app.as_mut().unwrap().revoke_all();
    FakeGitHub::deliver(
        &hook,
        Some(WEBHOOK_SECRET),
        "installation",
        "inst-2",
        &installation_event("deleted", common::github::OWNER, new),
    )
    .await;
    let err = d.ctl_err("carol", &["merge", INC], PRECONDITION).await;
    assert!(
        err.contains(&format!(
            "the GitHub App {APP_ID} is not installed on bookstore"
        )) && err.contains("install it there"),
        "{err}"
    );
    assert_eq!(d.state(INC).await, "READY_TO_MERGE", "nothing changed");
    fake.assert_contract_kept();
}

#[tokio::test]
async fn a_private_key_that_is_no_key_is_a_start_up_error_naming_it() {
    let mut gh = github_settings(&FakeGitHub::start().await);
    gh.token = None;
    gh.app = Some(GitHubApp {
        id: APP_ID,
        private_key: "-----BEGIN RSA PRIVATE KEY-----\nnot a key\n-----END RSA PRIVATE KEY-----"
            .into(),
    });
    let err = hotfixd::integrations::github::GitHub::new(gh)
        .err()
        .expect("refused");
    assert!(
        err.starts_with("github app private key: not an RSA private key in PEM"),
        "{err}"
    );
    assert!(!err.contains("not a key"), "the key is never echoed: {err}");
}

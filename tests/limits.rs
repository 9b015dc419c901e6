//! Per-principal request rate: RESOURCE_EXHAUSTED with a retry delay, per
//! principal however many connections it opens.

mod common;

use common::*;
use hotfixd::limits::LimitSettings;

#[tokio::test]
async fn a_principal_over_its_rate_is_told_when_to_retry_on_any_connection() {
    let d = Daemon::start_configured(|s| {
        s.limits = LimitSettings {
            per_principal_rate: 1.0,
            per_principal_burst: 5,
            ..LimitSettings::default()
        }
    })
    .await;
    for _ in 0..5 {
        d.ctl("bob", &["whoami"]).await.unwrap();
    }
    // Each `ctl` opens a new connection: no escape.
    let msg = d.ctl_err("bob", &["whoami"], RATE_LIMITED).await;
    assert!(msg.contains("retry in"), "{msg}");
    let status = d
        .client("bob")
        .await
        .policy
        .who_am_i(hotfixctl::pb::WhoAmIRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    let ms: u64 = status
        .metadata()
        .get("retry-after-ms")
        .expect("retry delay in metadata")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(ms > 0 && ms <= 1000, "{ms}");
    // Others are not held back by bob.
    d.ctl("alice", &["whoami"]).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(ms + 50)).await;
    d.ctl("bob", &["whoami"]).await.unwrap();
}

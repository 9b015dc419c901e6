//! PagerDuty change events: a hotfix merged and a hotfix reverted appear on
//! the service's timeline (against `common::pagerduty`'s contract-checking
//! endpoint); a drill sends none.

mod common;

use std::time::Duration;

use common::*;
use hotfixd::integrations::pagerduty::PagerDutySettings;

#[tokio::test]
async fn merges_and_reverts_are_change_events_and_drills_are_not() {
    let (pd, url) = common::pagerduty::endpoint().await;
    let settings = PagerDutySettings {
        url,
        routing_key: Some(common::pagerduty::ROUTING_KEY.into()),
        timeout: Duration::from_secs(5),
    };
    let d = Daemon::start_configured(move |s| s.pagerduty = Some(settings)).await;
    let drill = incident(2);
    ready_to_merge_with(&d, &drill, &["--drill"]).await;
    d.ctl("carol", &["merge", &drill])
        .await
        .expect("drill merge");
    ready_to_merge(&d, INC).await;
    d.ctl("carol", &["merge", INC]).await.expect("merge");
    let p = pd.clone();
    eventually("the merge's change event", move || {
        !p.lock().unwrap().changes.is_empty()
    })
    .await;
    d.ctl("svc-ci", &["sync", INC, "--revision", SHA1])
        .await
        .unwrap();
    d.ctl(
        "svc-ci",
        &["verify", INC, "--not-recovered", "--value", "0.3"],
    )
    .await
    .unwrap();
    d.ctl("carol", &["revert", INC, "--pr", "4322"])
        .await
        .expect("revert");
    let p = pd.clone();
    eventually("the revert's change event", move || {
        p.lock().unwrap().changes.len() == 2
    })
    .await;
    // A little longer: nothing more comes (the drill's merge sends none).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let e = pd.lock().unwrap();
    assert!(e.bad.is_empty(), "PagerDuty contract: {:?}", e.bad);
    assert_eq!(e.changes.len(), 2, "{:?}", e.changes);
    let merged = &e.changes[0];
    assert!(
        merged["payload"]["summary"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{INC}: @carol merged PR #4321")),
        "{merged}"
    );
    assert_eq!(merged["payload"]["source"], "hotfixd");
    assert_eq!(merged["payload"]["custom_details"]["event"], "merged");
    assert_eq!(merged["payload"]["timestamp"], "2026-05-20T09:00:00Z");
    assert_eq!(
        merged["links"][0]["href"],
        "https://github.com/bookstore/catalog/pull/4321"
    );
    let reverted = &e.changes[1];
    assert_eq!(reverted["payload"]["custom_details"]["event"], "reverted");
    assert_eq!(reverted["payload"]["custom_details"]["incident_id"], INC);
}

//! The status page's read-only API (`/api/v1/…` on the operator listener),
//! as any HTTP client sees it: the same answers as gRPC in the proto3 JSON
//! mapping, behind the same tokens and limits, never a token in the URL.

mod common;

use std::time::Duration;

use common::*;
use hotfix_api::pb;

async fn page_daemon(configure: impl FnOnce(&mut hotfixd::config::Settings)) -> (Daemon, String) {
    with_operator_listener(configure).await
}

fn get(url: &str, token: Option<&str>) -> reqwest::RequestBuilder {
    let r = reqwest::Client::new().get(url);
    match token {
        Some(t) => r.bearer_auth(t),
        None => r,
    }
}

#[tokio::test]
async fn answers_are_the_rpcs_own_messages_in_proto3_json() {
    let (d, base) = page_daemon(|_| {}).await;
    ready_to_merge(&d, INC).await;
    let mut lane = d.client("bob").await.lane;
    let grpc = lane
        .get_hotfix(pb::GetHotfixRequest {
            incident_id: INC.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let r = get(&format!("{base}/api/v1/hotfixes/{INC}"), Some("dev-bob"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let http: serde_json::Value = r.json().await.unwrap();
    assert_eq!(http, hotfix_api::json::to_value(&grpc));
    assert_eq!(http["hotfix"]["state"], "STATE_READY_TO_MERGE");
    assert_eq!(http["hotfix"]["incidentId"], INC);
    assert_eq!(
        http["hotfix"]["pullRequest"]["number"], "4321",
        "uint64: a string"
    );

    // `open` lists what still needs someone; a closed one is not.
    let list: serde_json::Value = get(
        &format!("{base}/api/v1/hotfixes?open=true"),
        Some("dev-bob"),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(list["hotfixes"][0]["incidentId"], INC);

    let report: serde_json::Value = get(&format!("{base}/api/v1/report"), Some("dev-dave"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["window"]["count"], 1);
    assert!(
        report["generatedAt"]
            .as_str()
            .unwrap()
            .starts_with("2026-05-20T09:00:00")
    );
}

#[tokio::test]
async fn no_token_no_answer_and_never_one_in_the_url() {
    let (d, base) = page_daemon(|_| {}).await;
    declare(&d, INC, &[]).await.unwrap();
    for path in [
        "/api/v1/report",
        "/api/v1/hotfixes",
        "/api/v1/whoami",
        "/api/v1/events",
    ] {
        let r = get(&format!("{base}{path}"), None).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"hotfixd\"");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["code"], "UNAUTHENTICATED", "{path}");
        assert!(!body.to_string().contains(INC), "nothing read: {body}");
    }
    // A token offered in the query is refused before it is even looked at,
    // with or without a header.
    for token in [None, Some("dev-bob")] {
        let r = get(&format!("{base}/api/v1/report?access_token=dev-bob"), token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let body = r.text().await.unwrap();
        assert!(body.contains("Authorization header"), "{body}");
        assert!(!body.contains("dev-bob"), "the token is not echoed: {body}");
    }
    // A query field the endpoint lacks is named, and nothing is read.
    let r = get(
        &format!("{base}/api/v1/hotfixes?stat=merged"),
        Some("dev-bob"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let body = r.text().await.unwrap();
    assert!(body.contains("stat"), "{body}");
    // Every answer of the page, the page itself included, forbids inline
    // script and framing.
    for path in [
        "/",
        "/incidents/INC-1",
        "/assets/status.js",
        "/api/v1/report",
    ] {
        let r = get(&format!("{base}{path}"), None).send().await.unwrap();
        let csp = r.headers()["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{path}: {csp}"
        );
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{path}");
    }
}

#[tokio::test]
async fn the_guard_limits_the_page_as_it_limits_grpc() {
    let (d, base) = page_daemon(|s| {
        s.limits.per_principal_watches = 2;
        s.limits.failed_auth_burst = 3;
        s.limits.failed_auth_rate = 0.01;
    })
    .await;
    // Event streams are Watch streams: the caller's third is refused.
    let mut open = Vec::new();
    for _ in 0..2 {
        let r = get(&format!("{base}/api/v1/events"), Some("dev-bob"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        open.push(r);
    }
    let r = get(&format!("{base}/api/v1/events"), Some("dev-bob"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let body = r.text().await.unwrap();
    assert!(body.contains("per_principal_watches"), "{body}");
    // Another principal is not starved by bob's streams.
    let r = get(&format!("{base}/api/v1/events"), Some("dev-dave"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(r);
    // A closed stream gives its slot back.
    drop(open.pop());
    let mut again = None;
    for _ in 0..100 {
        let r = get(&format!("{base}/api/v1/events"), Some("dev-bob"))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            again = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "the slot came back");

    // Wrong tokens from one address: after the burst, refused unread.
    for _ in 0..3 {
        let r = get(&format!("{base}/api/v1/report"), Some("dev-nobody"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = get(&format!("{base}/api/v1/report"), Some("dev-bob"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        429,
        "the address is refused for a while, right token or not"
    );
    drop(d);
}

#[tokio::test]
async fn the_event_stream_is_watch_as_server_sent_events() {
    let (d, base) = page_daemon(|_| {}).await;
    declare(&d, INC, &[]).await.unwrap();
    // From the start (from=0): the declaration replayed, then a heartbeat
    // saying where the log is.
    let mut r = get(
        &format!("{base}/api/v1/events?from=0&incident={INC}"),
        Some("dev-bob"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let mut text = String::new();
    while !text.contains("heartbeat") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), r.chunk())
            .await
            .expect("an event within 10 s")
            .unwrap()
            .expect("the stream stays open");
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let first = text.split("\n\n").next().unwrap();
    let lines: Vec<&str> = first.lines().collect();
    assert_eq!(lines[0], "event: watch", "{first}");
    let data: serde_json::Value =
        serde_json::from_str(lines.iter().find_map(|l| l.strip_prefix("data: ")).unwrap()).unwrap();
    assert_eq!(data["event"]["kind"], "declared");
    assert_eq!(data["event"]["incidentId"], INC);
    assert!(lines.contains(&"id: 1"), "{first}");
    // A resume point past the end is refused as gRPC refuses it.
    let r = get(&format!("{base}/api/v1/events?from=99"), Some("dev-bob"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("beyond the end of the event log")
    );
}

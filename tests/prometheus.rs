//! Step 6 against the real Prometheus (Debian's `prometheus`, started here
//! on loopback), scraping a small exporter this test controls, so the
//! verification runs real PromQL.

mod common;

use std::time::Duration;

use common::prometheus::*;
use common::*;
use hotfixd::app::VerifySettings;
use hotfixd::integrations::prometheus::PrometheusSettings;

/// The operator listener of the daemons these tests start.
fn http_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

async fn daemon(prom: &Prometheus, queries: &[(&str, &str)], window: Duration) -> Daemon {
    daemon_at(prom, queries, window, None).await
}

async fn daemon_at(
    prom: &Prometheus,
    queries: &[(&str, &str)],
    window: Duration,
    http: Option<std::net::SocketAddr>,
) -> Daemon {
    let url = prom.url.clone();
    let queries = queries
        .iter()
        .map(|(a, q)| (a.to_string(), q.to_string()))
        .collect();
    Daemon::start_configured(move |s| {
        s.http_listen = http;
        s.prometheus = Some(PrometheusSettings {
            url,
            bearer_token: None,
            timeout: Duration::from_secs(5),
        });
        s.verify = VerifySettings {
            query: "max(hotfix_error_ratio{service=\"{app}\"})".into(),
            queries,
            interval: Duration::from_millis(300),
            consecutive: 3,
            window,
        };
    })
    .await
}

async fn synced(d: &Daemon) {
    ready_to_merge(d, INC).await;
    d.ctl("carol", &["merge", INC]).await.unwrap();
    d.ctl("carol", &["sync", INC, "--revision", SHA1])
        .await
        .unwrap();
}

#[tokio::test]
async fn verification_measures_the_real_metric() {
    let (ratio, target) = exporter().await;
    let prom = prometheus(&target).await;
    let http = http_addr();
    let d = daemon_at(&prom, &[], Duration::from_secs(20), Some(http)).await;
    synced(&d).await;

    // Recovered: the ratio drops below 0.01 and stays there.
    *ratio.lock().unwrap() = 0.002;
    tokio::time::sleep(Duration::from_millis(2500)).await; // two scrapes
    let out = d
        .ctl("svc-ci", &["verify", INC, "--measure", "--wait"])
        .await
        .unwrap();
    assert!(
        out.contains("max(hotfix_error_ratio{service=\"bookstore-catalog-us-east\"})"),
        "{out}"
    );
    assert!(
        out.contains("sample 0.002 (below threshold 0.01; 3/3 consecutive)"),
        "{out}"
    );
    let h = d.ctl_hotfix("bob", &["show", INC]).await;
    assert_eq!(h["state"], "STATE_MITIGATED");
    assert_eq!(h["verification"]["observedValue"], 0.002);
    assert_eq!(h["verification"]["by"], "svc-ci");
    // Each query to Prometheus is counted and timed in /metrics.
    let metrics = reqwest::get(format!("http://{http}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let calls: f64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(
                "hotfixd_integration_calls_total{service=\"prometheus\",operation=\"instant\",outcome=\"ok\"} ",
            )
        })
        .unwrap_or_else(|| panic!("no Prometheus calls counted in:\n{metrics}"))
        .parse()
        .unwrap();
    assert!(calls >= 3.0, "3 consecutive samples, {calls} calls counted");
    assert!(
        metrics.contains(
            "hotfixd_integration_call_duration_seconds_count{service=\"prometheus\",operation=\"instant\"} "
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_metric_that_stays_high_requires_a_revert() {
    let (_ratio, target) = exporter().await;
    let prom = prometheus(&target).await;
    let d = daemon(&prom, &[], Duration::from_secs(2)).await;
    synced(&d).await;
    // Only the author, the approver or a service may verify.
    d.ctl_err("dave", &["verify", INC, "--measure"], DENIED)
        .await;
    let e = d
        .ctl("bob", &["verify", INC, "--measure", "--wait"])
        .await
        .unwrap_err();
    assert_eq!(e.code, 4, "{}", e.message);
    let h = d.ctl_hotfix("bob", &["show", INC]).await;
    assert_eq!(h["state"], "STATE_REVERT_REQUIRED");
    assert_eq!(h["verification"]["observedValue"], 0.2);
    d.ctl("carol", &["revert", INC, "--pr", "4322"])
        .await
        .unwrap();
}

#[tokio::test]
async fn a_bad_query_reports_prometheus_own_error_and_decides_nothing() {
    let (_ratio, target) = exporter().await;
    let prom = prometheus(&target).await;
    let d = daemon(
        &prom,
        &[(APP, "sum(rate(http_requests_total[5m]")],
        Duration::from_secs(1),
    )
    .await;
    synced(&d).await;
    let e = d
        .ctl("svc-ci", &["verify", INC, "--measure", "--wait"])
        .await
        .unwrap_err();
    assert_eq!(e.code, 1, "{}", e.message);
    let show = d.ctl("bob", &["show", INC]).await.unwrap();
    assert!(show.contains("Prometheus: bad_data"), "{show}");
    assert!(show.contains("verification_failed"), "{show}");
    assert_eq!(d.state(INC).await, "SYNCED");
}

#[tokio::test]
async fn without_prometheus_the_measured_verify_says_what_to_do() {
    let d = Daemon::start().await;
    synced(&d).await;
    // Nothing to measure with: it says how the verdict is recorded instead
    // (tests/lane.rs follows one with --wait).
    let out = d
        .ctl("svc-ci", &["verify", INC, "--measure"])
        .await
        .unwrap();
    assert!(out.contains("--recovered|--not-recovered --value"), "{out}");
    assert_eq!(d.state(INC).await, "SYNCED");
}

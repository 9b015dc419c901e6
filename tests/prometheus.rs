//! Step 6 against the real Prometheus (Debian's `prometheus`, started here
//! on loopback), scraping a small exporter this test controls, so the
//! verification runs real PromQL.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use common::*;
use hotfixd::integrations::prometheus::PrometheusSettings;
use hotfixd::verifier::VerifySettings;

const APP: &str = "bookstore-catalog-us-east";

/// The exporter's gauge: the app's 5xx ratio as the test sets it.
type Ratio = Arc<Mutex<f64>>;

async fn exporter() -> (Ratio, String) {
    let ratio: Ratio = Arc::new(Mutex::new(0.2));
    let app = Router::new()
        .route(
            "/metrics",
            get(|State(r): State<Ratio>| async move {
                format!(
                    "# HELP hotfix_error_ratio 5xx share of requests.\n# TYPE hotfix_error_ratio gauge\nhotfix_error_ratio{{service=\"{APP}\"}} {}\n",
                    *r.lock().unwrap()
                )
            }),
        )
        .with_state(ratio.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (ratio, addr)
}

struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn prometheus(target: &str) -> Prometheus {
    let bin = std::env::var("HOTFIXD_TEST_PROMETHEUS").unwrap_or_else(|_| "prometheus".into());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: exporter\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let child = Command::new(&bin)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start '{bin}' ({e}): install Prometheus (apt-get install prometheus; scripts/test does it) or set HOTFIXD_TEST_PROMETHEUS")
        });
    let p = Prometheus {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    };
    // Ready, and the exporter scraped at least once.
    hotfixd::integrations::install_crypto_provider();
    let http = reqwest::Client::new();
    for _ in 0..300 {
        let q = format!("{}/api/v1/query?query=hotfix_error_ratio", p.url);
        if let Ok(r) = http.get(&q).send().await
            && let Ok(v) = r.json::<serde_json::Value>().await
            && v["data"]["result"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
        {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("Prometheus did not come up and scrape the exporter");
}

async fn daemon(prom: &Prometheus, queries: &[(&str, &str)], window: Duration) -> Daemon {
    let url = prom.url.clone();
    let queries = queries
        .iter()
        .map(|(a, q)| (a.to_string(), q.to_string()))
        .collect();
    Daemon::start_configured(move |s| {
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
    let d = daemon(&prom, &[], Duration::from_secs(20)).await;
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
    let h = d.ctl_json("bob", &["show", INC]).await;
    assert_eq!(h["state"], "MITIGATED");
    assert_eq!(h["verification"]["observed_value"], 0.002);
    assert_eq!(h["verification"]["by"], "svc-ci");
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
    let h = d.ctl_json("bob", &["show", INC]).await;
    assert_eq!(h["state"], "REVERT_REQUIRED");
    assert_eq!(h["verification"]["observed_value"], 0.2);
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
    let msg = d
        .ctl_err("svc-ci", &["verify", INC, "--measure"], PRECONDITION)
        .await;
    assert!(msg.contains("--recovered|--not-recovered --value"), "{msg}");
}

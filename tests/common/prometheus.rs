//! The real Prometheus (Debian's `prometheus`), started on loopback with a
//! temp config, scraping a small exporter the test controls.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;

pub const APP: &str = "bookstore-catalog-us-east";

/// The exporter's gauge: the app's 5xx ratio as the test sets it.
pub type Ratio = Arc<Mutex<f64>>;

pub async fn exporter() -> (Ratio, String) {
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

pub struct Prometheus {
    child: Child,
    pub url: String,
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

/// Prometheus scraping the test exporter at `target`, once it has.
pub async fn prometheus(target: &str) -> Prometheus {
    prometheus_scraping(target, "hotfix_error_ratio").await
}

/// Prometheus scraping `target` every second, once `ready_query` (PromQL)
/// returns a series: the target was scraped at least once.
pub async fn prometheus_scraping(target: &str, ready_query: &str) -> Prometheus {
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
        let q = format!("{}/api/v1/query", p.url);
        if let Ok(r) = http.get(&q).query(&[("query", ready_query)]).send().await
            && let Ok(v) = r.json::<serde_json::Value>().await
            && v["data"]["result"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
        {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("Prometheus did not come up and scrape {target} ({ready_query} stayed empty)");
}

/// Prometheus' whole answer to a PromQL query, now.
pub async fn query(p: &Prometheus, promql: &str) -> serde_json::Value {
    reqwest::Client::new()
        .get(format!("{}/api/v1/query", p.url))
        .query(&[("query", promql)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The value of a PromQL query that returns one series (None: no series).
pub async fn query_one(p: &Prometheus, promql: &str) -> Option<f64> {
    let v = query(p, promql).await;
    assert_eq!(v["status"], "success", "{promql}: {v}");
    let result = v["data"]["result"].as_array().unwrap();
    assert!(
        result.len() <= 1,
        "{promql} returned {} series: {v}",
        result.len()
    );
    result
        .first()
        .map(|r| r["value"][1].as_str().unwrap().parse().unwrap())
}

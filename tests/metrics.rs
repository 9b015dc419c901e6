//! The operator HTTP listener: `/metrics` scraped by a real Prometheus
//! (Debian's) while a lane is driven through the real client, the figures
//! read back with PromQL; `promtool check metrics` clean on the exposition;
//! `/healthz` and `/readyz`.

mod common;

use std::time::Duration;

use common::prometheus::{prometheus_scraping, query_one};
use common::*;

async fn get(url: &str, accept: Option<&str>) -> (u16, String, String) {
    hotfixd::integrations::install_crypto_provider();
    let mut req = reqwest::Client::new().get(url);
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ct, r.text().await.unwrap())
}

/// `promtool check metrics` on `exposition`: its findings (empty: clean).
fn promtool(exposition: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; scripts/test installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        said
    } else {
        format!("failed: {said}")
    }
}

/// Polls a PromQL query until it returns `want` (the scrape interval is
/// 1 s; 15 s at most).
async fn eventually_equals(p: &common::prometheus::Prometheus, promql: &str, want: f64) {
    let mut last = None;
    for _ in 0..150 {
        last = query_one(p, promql).await;
        if last == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{promql} = {last:?}, expected {want}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_lane_and_reads_it_back() {
    let (d, base) = with_operator_listener(|_| {}).await;
    let http: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();

    // Probes.
    let (status, _, body) = get(&format!("{base}/healthz"), None).await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, _, body) = get(&format!("{base}/readyz"), None).await;
    assert_eq!((status, body.as_str()), (200, "ready\n"));

    // A lane: two hotfixes, a drill, one refusal.
    declare(&d, &incident(1), &[]).await.unwrap();
    declare(&d, &incident(2), &[]).await.unwrap();
    declare(&d, &incident(3), &["--drill"]).await.unwrap();
    let refused = d
        .ctl_err("carol", &["merge", &incident(1)], PRECONDITION)
        .await;
    assert!(refused.contains("cannot merge yet"), "{refused}");

    // A watcher, open while the figures are read.
    let mut watching = d.client("bob").await;
    let _watch = watching
        .events
        .watch(hotfixctl::pb::WatchRequest {
            from_seq: 0,
            incident_id: String::new(),
            from_now: false,
        })
        .await
        .unwrap()
        .into_inner();

    // The exposition itself: Prometheus' text format, lint-clean.
    let (status, ct, text) = get(&format!("{base}/metrics"), None).await;
    assert_eq!(status, 200);
    assert_eq!(ct, "text/plain; version=0.0.4; charset=utf-8");
    assert_eq!(promtool(&text), "", "promtool check metrics on:\n{text}");
    for line in [
        "hotfixd_transitions_total{step=\"declare\"} 3",
        "hotfixd_hotfixes{state=\"DECLARED\",drill=\"false\"} 2",
        "hotfixd_hotfixes{state=\"DECLARED\",drill=\"true\"} 1",
        "hotfixd_leader 1",
        "hotfixd_ready 1",
        "hotfixd_watchers 1",
    ] {
        assert!(text.lines().any(|l| l == line), "no '{line}' in:\n{text}");
    }
    // OpenMetrics when asked for, as Prometheus does.
    let (_, ct, om) = get(
        &format!("{base}/metrics"),
        Some("application/openmetrics-text;version=1.0.0"),
    )
    .await;
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    assert!(om.ends_with("# EOF\n"), "{om}");

    // The real Prometheus, scraping it; the figures read back in PromQL.
    let p = prometheus_scraping(&http.to_string(), "hotfixd_build_info").await;
    eventually_equals(&p, "hotfixd_transitions_total{step=\"declare\"}", 3.0).await;
    eventually_equals(&p, "sum(hotfixd_hotfixes{drill=\"false\"})", 2.0).await;
    eventually_equals(
        &p,
        "hotfixd_hotfixes{state=\"DECLARED\",drill=\"true\"}",
        1.0,
    )
    .await;
    eventually_equals(&p, "sum(hotfixd_refusals_total{step=\"merge\"})", 1.0).await;
    eventually_equals(&p, "hotfixd_rate_window_declarations", 2.0).await;
    eventually_equals(&p, "hotfixd_rate_gate_closed", 0.0).await;
    eventually_equals(&p, "hotfixd_leader", 1.0).await;
    eventually_equals(&p, "hotfixd_store_commit_seconds_count", 4.0).await;
    // Every change (each appends one audit record) was made durable by a
    // flush (a transaction on etcd) that counted it, once; the flush at
    // start, for no change, counts none.
    let audited = d
        .ctl("dave", &["audit", "export"])
        .await
        .unwrap()
        .lines()
        .count();
    eventually_equals(&p, "hotfixd_store_batch_changes_sum", audited as f64).await;
    eventually_equals(&p, "count(hotfixd_store_batch_changes_count >= 1)", 1.0).await;
    let engine = if Daemon::on_etcd() { "etcd" } else { "sled" };
    eventually_equals(
        &p,
        &format!("count(hotfixd_build_info{{engine=\"{engine}\"}})"),
        1.0,
    )
    .await;
    // Every obligation kind is a series (0 until a hotfix owes one), so an
    // alert on it never depends on a series appearing.
    eventually_equals(&p, "count(hotfixd_obligations_overdue)", 4.0).await;

    // Every metric the alerting rules and the dashboard name is one the
    // daemon exposes (those of calls to integrations once it makes one:
    // none are configured here).
    let exposed = |name: &str| {
        text.lines()
            .any(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ', '_']))
    };
    let deploy = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy");
    let rules = std::fs::read_to_string(format!("{deploy}/prometheus/hotfixd-alerts.yml")).unwrap();
    let dashboard = std::fs::read_to_string(format!("{deploy}/grafana/hotfixd.json")).unwrap();
    let named = regex_names(&(rules.clone() + &dashboard));
    assert!(named.len() >= 15, "{named:?}");
    for name in &named {
        if name.starts_with("hotfixd_integration_") {
            continue;
        }
        assert!(
            exposed(name),
            "{name} is named in deploy/ but not exposed:\n{text}"
        );
    }
    // Every dashboard query runs on the real Prometheus, and those about
    // the lane return data.
    let board: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    for panel in board["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$job", "exporter")
                .replace("$__rate_interval", "1m");
            // A rate needs two scrapes in its range: ask again for a while.
            let needs_data = !expr.contains("integration");
            let mut tries = 0;
            loop {
                let v = common::prometheus::query(&p, &expr).await;
                assert_eq!(v["status"], "success", "{expr}: {v}");
                let empty = v["data"]["result"].as_array().unwrap().is_empty();
                if !needs_data || !empty {
                    break;
                }
                tries += 1;
                assert!(
                    tries < 150,
                    "'{}' ({expr}) returned no data: {v}",
                    panel["title"]
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    // The gate closes at the window's limit: the figure follows.
    for n in 4..=8 {
        let _ = declare(&d, &incident(n), &[]).await;
    }
    eventually_equals(&p, "hotfixd_rate_gate_closed", 1.0).await;
}

/// The `hotfixd_…` metric names in `text`.
fn regex_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("hotfixd_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

//! The daemon's own counters and histograms: what happens inside it that no
//! read of the store can tell afterwards (changes by step and outcome, how
//! long the store took to commit them). `ops::metrics` exposes them, with
//! the figures it reads from the lane at each scrape, through the
//! Prometheus project's client (`prometheus-client`).
//!
//! Labels are bounded sets: a step name, a refusal kind; never an incident
//! id or a handle.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use crate::error::{Error, Result};

/// A metric's labels, as (name, value) pairs.
pub type Labels = Vec<(&'static str, String)>;

fn commit_histogram() -> Histogram {
    // 0.5 ms to about 8 s: an fdatasync on a fast disk to an etcd quorum
    // under strain.
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

fn call_histogram() -> Histogram {
    // 5 ms to about 40 s: a Prometheus query to a GitHub merge that waits
    // out its timeout.
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// Changes made durable together: per flush on sled, per transaction on
/// etcd (1 to 128; etcd's group holds at most 64 writes).
pub fn batch_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 8))
}

/// A family of call-duration histograms, one per label set.
pub type Durations = Family<Labels, Histogram, fn() -> Histogram>;

/// The calls hotfixd makes to the services it integrates with.
#[derive(Clone, Debug)]
pub struct Calls {
    /// By service, operation and outcome (`ok`, `error`).
    pub count: Family<Labels, Counter>,
    /// How long each took, by service and operation.
    pub seconds: Durations,
}

impl Default for Calls {
    fn default() -> Self {
        Calls {
            count: Family::default(),
            seconds: Family::new_with_constructor(call_histogram as fn() -> Histogram),
        }
    }
}

impl Calls {
    /// Runs one call of `operation` on `service` (`github`, `argocd`,
    /// `prometheus`, `slack`), counting it and its duration.
    pub async fn time<T, E>(
        &self,
        service: &'static str,
        operation: &'static str,
        call: impl std::future::Future<Output = std::result::Result<T, E>>,
    ) -> std::result::Result<T, E> {
        let started = std::time::Instant::now();
        let result = call.await;
        let labels = vec![
            ("service", service.to_string()),
            ("operation", operation.to_string()),
        ];
        self.seconds
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        let mut labels = labels;
        let outcome = if result.is_ok() { "ok" } else { "error" };
        labels.push(("outcome", outcome.to_string()));
        self.count.get_or_create(&labels).inc();
        result
    }
}

/// Handles on the counters; clones share them.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// Changes committed, by step (`declare`, `merge`, …).
    pub transitions: Family<Labels, Counter>,
    /// Changes refused by the runbook's rules, by step and kind (`denied`,
    /// `wrong-state`, `rate-limited`, …): each is an audit record too.
    pub refusals: Family<Labels, Counter>,
    /// Changes the store could not make (not durable, etcd unavailable,
    /// fenced), by step.
    pub failures: Family<Labels, Counter>,
    /// How long the store took to commit a change (its decision, its
    /// records, the fsync or the etcd quorum).
    pub commit: Histogram,
    /// Calls to GitHub, Argo CD, Prometheus and Slack.
    pub calls: Calls,
    /// Open Watch streams.
    pub watchers: Gauge,
    /// Requests and connections refused by a limit, by limit (see
    /// [`LIMITS`]).
    pub limit_rejections: Family<Labels, Counter>,
    /// GitHub webhook deliveries, by event (those hotfixd reads, else
    /// `other`) and outcome (see [`WEBHOOK_OUTCOMES`]).
    pub webhook_deliveries: Family<Labels, Counter>,
    /// Audit records the SIEM has not taken yet (the audit sink sets it).
    pub siem_lag: Gauge,
}

/// The events a webhook delivery is counted under: those hotfixd reads
/// the facts again for, `ping`, and `other` for the rest.
pub const WEBHOOK_EVENTS: [&str; 8] = [
    "check_run",
    "check_suite",
    "status",
    "pull_request",
    "push",
    "installation",
    "ping",
    "other",
];

/// What became of a webhook delivery: `accepted` (the facts are read
/// again through the API), `ignored` (an event hotfixd does not read),
/// `duplicate` (a delivery id seen before), `unsigned`, `bad_signature`,
/// `too_large`, `malformed` (no event or delivery id).
pub const WEBHOOK_OUTCOMES: [&str; 7] = [
    "accepted",
    "ignored",
    "duplicate",
    "unsigned",
    "bad_signature",
    "too_large",
    "malformed",
];

/// The limits a request or a connection can be refused by (see `limits`):
/// failed authentications, the per-principal rate, requests in flight,
/// open watches; open connections (`max_connections`), connections from
/// one address (`max_connections_per_peer`), and a connection that sent
/// nothing within `handshake_timeout`.
pub const LIMITS: [&str; 7] = [
    "failed_auth",
    "rate",
    "in_flight",
    "watches",
    "connections",
    "connections_per_peer",
    "handshake",
];

impl Default for Metrics {
    fn default() -> Self {
        let m = Metrics {
            transitions: Family::default(),
            refusals: Family::default(),
            failures: Family::default(),
            commit: commit_histogram(),
            calls: Calls::default(),
            watchers: Gauge::default(),
            limit_rejections: Family::default(),
            webhook_deliveries: Family::default(),
            siem_lag: Gauge::default(),
        };
        // Each limit is a series from the start (at 0), so that a rate
        // over it, or an alert, never waits for a first refusal.
        for limit in LIMITS {
            let _ = m
                .limit_rejections
                .get_or_create(&vec![("limit", limit.to_string())]);
        }
        for event in WEBHOOK_EVENTS {
            for outcome in WEBHOOK_OUTCOMES {
                let _ = m.webhook_deliveries.get_or_create(&vec![
                    ("event", event.to_string()),
                    ("outcome", outcome.to_string()),
                ]);
            }
        }
        m
    }
}

impl Metrics {
    /// Counts a webhook delivery of `event` by its `outcome`.
    pub fn delivery(&self, event: &str, outcome: &'static str) {
        self.webhook_deliveries
            .get_or_create(&vec![
                ("event", event.to_string()),
                ("outcome", outcome.to_string()),
            ])
            .inc();
    }

    /// Counts a request refused by `limit`.
    pub fn rejected(&self, limit: &'static str) {
        self.limit_rejections
            .get_or_create(&vec![("limit", limit.to_string())])
            .inc();
    }

    /// Counts one change of `step` that took `took`, by how it ended.
    pub fn changed<T>(&self, step: &str, result: &Result<T>, took: Duration) {
        let step = ("step", step.to_string());
        match result {
            Ok(_) => {
                self.transitions.get_or_create(&vec![step]).inc();
                self.commit.observe(took.as_secs_f64());
            }
            Err(Error::Refused(r)) => {
                self.refusals
                    .get_or_create(&vec![step, ("kind", r.kind().to_string())])
                    .inc();
                self.commit.observe(took.as_secs_f64());
            }
            Err(_) => {
                self.failures.get_or_create(&vec![step]).inc();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Refusal;

    #[test]
    fn changes_are_counted_by_step_and_outcome() {
        let m = Metrics::default();
        let took = Duration::from_millis(2);
        m.changed("declare", &Ok(()), took);
        m.changed("declare", &Ok(()), took);
        let refused: Result<()> = Err(Refusal::RateLimited {
            reason: "full".into(),
        }
        .into());
        m.changed("declare", &refused, took);
        let failed: Result<()> = Err(Error::Unavailable("etcd".into()));
        m.changed("merge", &failed, took);
        let step = |s: &str| vec![("step", s.to_string())];
        assert_eq!(m.transitions.get_or_create(&step("declare")).get(), 2);
        let kind = vec![
            ("step", "declare".to_string()),
            ("kind", "rate-limited".to_string()),
        ];
        assert_eq!(m.refusals.get_or_create(&kind).get(), 1);
        assert_eq!(m.failures.get_or_create(&step("merge")).get(), 1);
        assert_eq!(m.transitions.get_or_create(&step("merge")).get(), 0);
    }

    #[tokio::test]
    async fn calls_are_counted_by_service_operation_and_outcome() {
        let calls = Calls::default();
        let ok: std::result::Result<u8, String> =
            calls.time("github", "merge", async { Ok(1) }).await;
        assert_eq!(ok, Ok(1));
        let failed: std::result::Result<u8, String> = calls
            .time("github", "merge", async { Err("409".to_string()) })
            .await;
        assert!(failed.is_err());
        let labels = |outcome: &str| {
            vec![
                ("service", "github".to_string()),
                ("operation", "merge".to_string()),
                ("outcome", outcome.to_string()),
            ]
        };
        assert_eq!(calls.count.get_or_create(&labels("ok")).get(), 1);
        assert_eq!(calls.count.get_or_create(&labels("error")).get(), 1);
    }
}

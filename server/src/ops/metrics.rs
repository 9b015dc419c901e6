//! `/metrics`: the daemon's counters (`crate::metrics`) and, read from the
//! lane at each scrape, the figures the runbook is run by: hotfixes by
//! state, the rate gate, obligations, quarter flags, when the lane last
//! worked, leadership. Names follow Prometheus' naming guide: `hotfixd_`,
//! base units, `_total` on counters (added by the client).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use tokio::sync::watch;

use crate::app::Lane;
use crate::metrics::Labels;
use crate::term::Role;

/// Everything `/metrics` shows, ready to encode.
pub struct Exposition {
    registry: Registry,
}

impl Exposition {
    /// The exposition of `lane`'s counters and figures; `role` is this
    /// replica's (the election's, or always leader on sled), `engine` the
    /// store's ("sled", "etcd").
    pub fn new(
        lane: Arc<Lane>,
        role: watch::Receiver<Role>,
        readiness: super::Readiness,
        engine: &'static str,
    ) -> Exposition {
        let mut r = Registry::default();
        let m = lane.metrics().clone();
        r.register(
            "hotfixd_transitions",
            "Changes the lane committed, by step",
            m.transitions,
        );
        r.register(
            "hotfixd_refusals",
            "Changes the runbook's rules refused, by step and kind (each is an audit record)",
            m.refusals,
        );
        r.register(
            "hotfixd_change_failures",
            "Changes the store could not make (not durable, etcd unavailable, fenced), by step",
            m.failures,
        );
        r.register_with_unit(
            "hotfixd_store_commit",
            "Time the store took to decide and durably commit a change",
            Unit::Seconds,
            m.commit,
        );
        r.register(
            "hotfixd_store_batch_changes",
            "Changes made durable together: by one flush and fdatasync on sled, by one transaction on etcd",
            lane.store().batches(),
        );
        r.register(
            "hotfixd_integration_calls",
            "Calls to GitHub, Argo CD, Prometheus and Slack, by service, operation and outcome",
            m.calls.count,
        );
        r.register_with_unit(
            "hotfixd_integration_call_duration",
            "Time calls to the integrated services took, by service and operation",
            Unit::Seconds,
            m.calls.seconds,
        );
        r.register("hotfixd_watchers", "Open Watch streams", m.watchers);
        r.register(
            "hotfixd_limit_rejections",
            "Requests refused by a limit (limits.*), by limit",
            m.limit_rejections,
        );
        r.register(
            "hotfixd_webhook_deliveries",
            "GitHub webhook deliveries, by event and outcome (accepted, ignored, duplicate, unsigned, bad_signature, too_large, malformed)",
            m.webhook_deliveries,
        );
        r.register(
            "hotfixd_siem_lag_records",
            "Audit records the SIEM has not taken yet (0 without a sink)",
            m.siem_lag,
        );
        r.register(
            "hotfixd_build",
            "The running build",
            Info::new(vec![
                ("version", env!("CARGO_PKG_VERSION").to_string()),
                ("engine", engine.to_string()),
            ]),
        );
        r.register_collector(Box::new(LaneFigures {
            lane,
            role,
            readiness,
        }));
        Exposition { registry: r }
    }

    /// The exposition as OpenMetrics text, or (`open_metrics` false) as
    /// the Prometheus 0.0.4 text format: (content type, body).
    pub fn encode(&self, open_metrics: bool) -> Result<(&'static str, String), fmt::Error> {
        let mut body = String::new();
        if open_metrics {
            prometheus_client::encoding::text::encode(&mut body, &self.registry)?;
            Ok((
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                body,
            ))
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut body, &self.registry)?;
            Ok((
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                body,
            ))
        }
    }
}

/// The figures read from the lane at each scrape.
struct LaneFigures {
    lane: Arc<Lane>,
    role: watch::Receiver<Role>,
    readiness: super::Readiness,
}

impl fmt::Debug for LaneFigures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LaneFigures")
    }
}

/// One gauge family: its samples by labels (none: one sample).
fn gauge<N>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    samples: impl IntoIterator<Item = (Labels, N)>,
) -> fmt::Result
where
    ConstGauge<N>: EncodeMetric,
{
    let mut family = enc.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for (labels, v) in samples {
        let g = ConstGauge::new(v);
        if labels.is_empty() {
            g.encode(family)?;
            return Ok(());
        }
        g.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

fn one<N>(v: N) -> Vec<(Labels, N)> {
    vec![(Vec::new(), v)]
}

fn by<K: ToString>(label: &'static str, m: BTreeMap<K, u64>) -> Vec<(Labels, i64)> {
    m.into_iter()
        .map(|(k, v)| (vec![(label, k.to_string())], v as i64))
        .collect()
}

impl Collector for LaneFigures {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        gauge(
            &mut enc,
            "hotfixd_ready",
            "1 while the store takes changes (what /readyz and gRPC health say), 0 otherwise",
            None,
            one(i64::from(self.readiness.why_not().is_none())),
        )?;
        let (leader, lease) = match &*self.role.borrow() {
            Role::Leader(term) => (1, term.left()),
            _ => (0, None),
        };
        gauge(
            &mut enc,
            "hotfixd_leader",
            "1 while this replica is the leader (the one that acts), 0 otherwise",
            None,
            one(leader),
        )?;
        if let Some(left) = lease {
            gauge(
                &mut enc,
                "hotfixd_leader_lease_remaining",
                "Time the leader's etcd lease has left unless renewed",
                Some(&Unit::Seconds),
                one(left.as_secs_f64()),
            )?;
        }
        gauge(
            &mut enc,
            "hotfixd_event_log_last_sequence",
            "Sequence number of the last durable event",
            None,
            one(self.lane.log().durable_seq() as i64),
        )?;
        // What follows reads the store; a read that fails is left out of
        // this scrape (and logged), never a made-up zero.
        match self.lane.census() {
            Ok(c) => {
                let states = c
                    .by_state
                    .into_iter()
                    .map(|((state, drill), n)| {
                        (
                            vec![("state", state.to_string()), ("drill", drill.to_string())],
                            n as i64,
                        )
                    })
                    .collect::<Vec<_>>();
                gauge(
                    &mut enc,
                    "hotfixd_hotfixes",
                    "Hotfixes by state; drills counted apart",
                    None,
                    states,
                )?;
                gauge(
                    &mut enc,
                    "hotfixd_obligations_open",
                    "Obligations not done yet (cleanup PR, postmortem, audit review, break-glass cleanup), by kind",
                    None,
                    by("kind", c.open_obligations),
                )?;
            }
            Err(e) => tracing::warn!(error = %e, "reading the hotfixes for /metrics"),
        }
        match self.lane.report() {
            Ok(r) => {
                let mut overdue: BTreeMap<String, u64> = crate::domain::ObligationKind::ALL
                    .iter()
                    .map(|k| (k.as_str().to_string(), 0))
                    .collect();
                for o in &r.overdue {
                    *overdue.entry(o.obligation.clone()).or_default() += 1;
                }
                gauge(
                    &mut enc,
                    "hotfixd_obligations_overdue",
                    "Obligations past their deadline, by kind",
                    None,
                    by("kind", overdue),
                )?;
                gauge(
                    &mut enc,
                    "hotfixd_rate_window_declarations",
                    "Hotfixes declared in the rolling window (drills excluded)",
                    None,
                    one(i64::from(r.window.count)),
                )?;
                gauge(
                    &mut enc,
                    "hotfixd_rate_window_limit",
                    "Declarations the rolling window allows before a team review",
                    None,
                    one(i64::from(r.window.max)),
                )?;
                gauge(
                    &mut enc,
                    "hotfixd_rate_gate_closed",
                    "1 while the rate gate refuses declarations until a team review",
                    None,
                    one(i64::from(r.window.gate.closed)),
                )?;
                let mut flags: BTreeMap<&str, u64> =
                    [("process bug", 0), ("code-yellow", 0)].into();
                for a in &r.authors {
                    if let Some(f) = a.flag {
                        *flags.entry(f).or_default() += 1;
                    }
                }
                gauge(
                    &mut enc,
                    "hotfixd_quarter_authors_flagged",
                    "Authors whose hotfixes this quarter raise a flag, by flag",
                    None,
                    by("flag", flags),
                )?;
                gauge(
                    &mut enc,
                    "hotfixd_runbook_stale",
                    "1 when the hotfix lane (a drill or a real one) was not exercised within the policy's staleness period",
                    None,
                    one(i64::from(r.stale)),
                )?;
                if let Some(x) = r.last_worked.iter().find(|x| x.by_hotfix_lane()) {
                    gauge(
                        &mut enc,
                        "hotfixd_runbook_last_exercised_timestamp",
                        "When the hotfix lane last resolved an incident or a drill",
                        Some(&Unit::Seconds),
                        one(x.at.timestamp() as f64),
                    )?;
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading the report for /metrics"),
        }
        Ok(())
    }
}

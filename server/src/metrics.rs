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
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use crate::error::{Error, Result};

/// A metric's labels, as (name, value) pairs.
pub type Labels = Vec<(&'static str, String)>;

fn commit_histogram() -> Histogram {
    // 0.5 ms to about 8 s: an fdatasync on a fast disk to an etcd quorum
    // under strain.
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
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
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            transitions: Family::default(),
            refusals: Family::default(),
            failures: Family::default(),
            commit: commit_histogram(),
        }
    }
}

impl Metrics {
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
}

//! Abuse limits beyond the per-field bounds: a request rate per principal
//! (a token bucket keyed by the authenticated handle, so more connections
//! or more clients do not buy more), and a cap on requests in flight across
//! all connections.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LimitSettings {
    /// Sustained requests per second per principal.
    pub per_principal_rate: f64,
    /// Requests a principal may send at once before the rate applies.
    pub per_principal_burst: u32,
    /// Requests being handled at once, all connections together; more wait.
    pub max_in_flight: usize,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            per_principal_rate: 50.0,
            per_principal_burst: 200,
            max_in_flight: 256,
        }
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    pub fn new(s: &LimitSettings) -> RateLimiter {
        RateLimiter {
            rate: s.per_principal_rate,
            burst: f64::from(s.per_principal_burst.max(1)),
            buckets: Mutex::default(),
        }
    }

    /// Takes one request from `who`'s bucket; Err: how long until one is
    /// available.
    pub fn take(&self, who: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().expect("limiter lock");
        let b = buckets.entry(who.to_string()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / self.rate))
        }
    }
}

/// The refusal: RESOURCE_EXHAUSTED with the delay in the message and in
/// `retry-after-ms` metadata.
pub fn exhausted(who: &str, wait: Duration) -> tonic::Status {
    let ms = wait.as_millis().max(1);
    let mut s = tonic::Status::resource_exhausted(format!(
        "@{who} is sending requests faster than the per-principal limit; retry in {ms} ms"
    ));
    if let Ok(v) = ms.to_string().parse() {
        s.metadata_mut().insert("retry-after-ms", v);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate_per_principal() {
        let l = RateLimiter::new(&LimitSettings {
            per_principal_rate: 10.0,
            per_principal_burst: 3,
            max_in_flight: 1,
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            l.take("bob", t0).unwrap();
        }
        let wait = l.take("bob", t0).unwrap_err();
        assert!(
            wait > Duration::from_millis(90) && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        // Another principal has its own bucket.
        l.take("alice", t0).unwrap();
        // A tenth of a second later one more is allowed, not two.
        let t1 = t0 + Duration::from_millis(100);
        l.take("bob", t1).unwrap();
        assert!(l.take("bob", t1).is_err());
    }
}

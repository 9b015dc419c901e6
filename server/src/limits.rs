//! Abuse limits beyond the per-field bounds, so that no client can starve
//! the others:
//!
//! - per principal (keyed by the authenticated handle, so more connections
//!   or more clients do not buy more): a request rate (token bucket),
//!   requests in flight, and open `Watch` streams (`grpc::guard`);
//! - per peer address: failed authentications (a token bucket; past it the
//!   peer is refused without a roster lookup and without a log line each),
//!   and open connections (`grpc::incoming`);
//! - for everyone: requests in flight, open connections, the time a client
//!   has to start speaking on a new connection and to send a request's
//!   body, and HTTP/2 keepalive pings that close dead connections.

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
    /// Requests (Watch streams excluded) one principal may have in flight.
    pub per_principal_in_flight: usize,
    /// Open Watch streams one principal may hold.
    pub per_principal_watches: usize,
    /// Failed authentications per second one peer address may make ...
    pub failed_auth_rate: f64,
    /// ... after a burst of this many.
    pub failed_auth_burst: u32,
    /// Open connections, all peers together; more are closed at once.
    pub max_connections: usize,
    /// Open connections from one peer address.
    pub max_connections_per_peer: usize,
    /// A new connection must send its first bytes (TLS or HTTP/2 preface)
    /// within this.
    pub handshake_timeout: Duration,
    /// A request's body must arrive whole within this of its headers.
    pub request_read_timeout: Duration,
    /// An HTTP/2 ping is sent after this much quiet on a connection ...
    pub keepalive_interval: Duration,
    /// ... and the connection is closed if it is not answered within this.
    pub keepalive_timeout: Duration,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            per_principal_rate: 50.0,
            per_principal_burst: 200,
            max_in_flight: 256,
            per_principal_in_flight: 32,
            per_principal_watches: 1000,
            failed_auth_rate: 2.0,
            failed_auth_burst: 20,
            max_connections: 1024,
            max_connections_per_peer: 256,
            handshake_timeout: Duration::from_secs(10),
            request_read_timeout: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
        }
    }
}

impl LimitSettings {
    /// Limits that never bind (benchmarks measuring something else).
    pub fn unbounded() -> LimitSettings {
        LimitSettings {
            per_principal_rate: 1e12,
            per_principal_burst: u32::MAX,
            max_in_flight: 1 << 20,
            per_principal_in_flight: 1 << 20,
            per_principal_watches: 1 << 20,
            max_connections: 1 << 20,
            max_connections_per_peer: 1 << 20,
            ..LimitSettings::default()
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

/// Buckets kept before full (idle) ones are forgotten.
const MAX_BUCKETS: usize = 10_000;

impl RateLimiter {
    /// `rate` per second after a burst of `burst`, per key.
    pub fn new(rate: f64, burst: u32) -> RateLimiter {
        RateLimiter {
            rate,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::default(),
        }
    }

    /// The per-principal request rate of `s`.
    pub fn per_principal(s: &LimitSettings) -> RateLimiter {
        Self::new(s.per_principal_rate, s.per_principal_burst)
    }

    /// Err: how long until `who` has a token again; takes none.
    pub fn check(&self, who: &str, now: Instant) -> Result<(), Duration> {
        let buckets = self.buckets.lock().expect("limiter lock");
        match buckets.get(who) {
            Some(b) => {
                let tokens = (b.tokens
                    + now.saturating_duration_since(b.at).as_secs_f64() * self.rate)
                    .min(self.burst);
                if tokens >= 1.0 {
                    Ok(())
                } else {
                    Err(Duration::from_secs_f64((1.0 - tokens) / self.rate))
                }
            }
            None => Ok(()),
        }
    }

    /// Takes one request from `who`'s bucket; Err: how long until one is
    /// available.
    pub fn take(&self, who: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().expect("limiter lock");
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(who) {
            // Forget the keys whose buckets have refilled: they would start
            // full anyway.
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
            });
        }
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
        let l = RateLimiter::new(10.0, 3);
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
        assert!(l.check("bob", t1).is_err(), "checking takes nothing");
        assert!(l.check("carol", t1).is_ok());
    }
}

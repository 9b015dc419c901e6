//! The wall clock of the lane: every instant the runbook reasons about
//! (declared at, deadlines, windows, events) is read here, so tests can
//! drive deadlines with [`ManualClock`]. Monotonic `Instant`s that only
//! pace the transport (rate-limit buckets, handshake and flush timing,
//! poll intervals) are read where they are used: no rule depends on them.

use std::sync::Mutex;

use chrono::Utc;

use crate::domain::Time;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Time;
}

/// The wall clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Time {
        Utc::now()
    }
}

/// A clock that only moves when told to; for tests and drills of deadlines.
#[derive(Debug)]
pub struct ManualClock(Mutex<Time>);

impl ManualClock {
    pub fn new(start: Time) -> ManualClock {
        ManualClock(Mutex::new(start))
    }

    pub fn advance(&self, by: std::time::Duration) {
        let mut t = self.0.lock().expect("clock lock");
        *t = crate::domain::after(*t, by);
    }

    pub fn set(&self, to: Time) {
        *self.0.lock().expect("clock lock") = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Time {
        *self.0.lock().expect("clock lock")
    }
}

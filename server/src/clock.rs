//! The server's one time scale.
//!
//! Wire times are milliseconds since the Unix epoch, but leases must never jump when an
//! operator or NTP steps the wall clock. So the clock reads the wall clock once, at start, and
//! advances it with tokio's monotonic `Instant` from then on: every `server_time`, `lease_until`
//! and expiry decision uses this one monotonic scale (and tests can pause it).

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base_instant: Instant,
    base_ms: i64,
}

impl Clock {
    pub fn new() -> Self {
        let base_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Clock {
            base_instant: Instant::now(),
            base_ms,
        }
    }

    /// Milliseconds since the epoch on the server's monotonic scale.
    pub fn now_ms(&self) -> i64 {
        self.base_ms + self.base_instant.elapsed().as_millis() as i64
    }

    /// The tokio instant at which the server time `ms` is reached.
    pub fn instant_at(&self, ms: i64) -> Instant {
        let offset = ms - self.base_ms;
        if offset <= 0 {
            self.base_instant
        } else {
            self.base_instant + Duration::from_millis(offset as u64)
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

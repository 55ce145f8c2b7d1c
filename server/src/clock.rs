//! The server's one time scale.
//!
//! Wire times are milliseconds since the Unix epoch, but leases must never jump when an
//! operator or NTP steps the wall clock. So the clock reads the wall clock once, at start, and
//! advances it with tokio's monotonic `Instant` from then on: every `server_time`, `lease_until`
//! and expiry decision uses this one monotonic scale (and tests can pause it).
//!
//! # Guarantees
//! - [`Clock::now_ms`] never goes backwards, and clones share one scale.
//! - After [`Clock::follow`] has seen a time `t` (another clock's reading, such as the cluster
//!   store's `TIME`), `now_ms` is at least `t` from then on: a node that times some decisions
//!   by its own clock and some by the store's never answers with a time before one it already
//!   gave out. Following only moves the scale forward, never back.
//! - `now_ms` rounds down once, from microseconds, so it lags the true time by under 1 ms.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct Clock {
    base_instant: Instant,
    base_us: i64,
    /// How far the scale was moved forward by [`Clock::follow`], in microseconds.
    ahead_us: Arc<AtomicI64>,
}

impl Clock {
    pub fn new() -> Self {
        let base_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0);
        Clock {
            base_instant: Instant::now(),
            base_us,
            ahead_us: Arc::new(AtomicI64::new(0)),
        }
    }

    fn own_us(&self) -> i64 {
        self.base_us + self.base_instant.elapsed().as_micros() as i64
    }

    fn now_us(&self) -> i64 {
        self.own_us() + self.ahead_us.load(Ordering::Relaxed)
    }

    /// Milliseconds since the epoch on the server's monotonic scale.
    pub fn now_ms(&self) -> i64 {
        self.now_us().div_euclid(1000)
    }

    /// Moves the scale forward, if needed, so that from now on it reads at least `seen_ms`.
    pub fn follow(&self, seen_ms: i64) {
        let behind = seen_ms.saturating_mul(1000) - self.own_us();
        // A plain read first: most times seen are not ahead, and need no shared write.
        if behind > self.ahead_us.load(Ordering::Relaxed) {
            self.ahead_us.fetch_max(behind, Ordering::Relaxed);
        }
    }

    /// The tokio instant at which the server time `ms` is reached.
    pub fn instant_at(&self, ms: i64) -> Instant {
        let offset_us =
            ms.saturating_mul(1000) - self.base_us - self.ahead_us.load(Ordering::Relaxed);
        if offset_us <= 0 {
            self.base_instant
        } else {
            self.base_instant + Duration::from_micros(offset_us as u64)
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn following_a_later_time_moves_every_clone_to_it() {
        let clock = Clock::new();
        let other = clock.clone();
        let seen = clock.now_ms() + 250;
        clock.follow(seen);
        assert!(other.now_ms() >= seen);
        assert!(
            clock.now_ms() < seen + 2,
            "moved to the time seen, not past it"
        );
        tokio::time::advance(Duration::from_millis(10)).await;
        assert!(other.now_ms() >= seen + 10, "and goes on from there");
    }

    #[tokio::test(start_paused = true)]
    async fn following_an_earlier_time_never_moves_the_clock_back() {
        let clock = Clock::new();
        clock.follow(clock.now_ms() + 100);
        let before = clock.now_ms();
        clock.follow(before - 5_000);
        assert!(clock.now_ms() >= before);
    }

    #[tokio::test(start_paused = true)]
    async fn instant_at_a_followed_time_is_now() {
        let clock = Clock::new();
        let seen = clock.now_ms() + 1_000;
        clock.follow(seen);
        let wait = clock.instant_at(seen + 40) - Instant::now();
        assert!(
            wait <= Duration::from_millis(41) && wait >= Duration::from_millis(39),
            "{wait:?}"
        );
    }
}

//! When an event that was not answered 2xx is tried again, and when it is given up.
//!
//! Guarantees:
//! - The first retry comes within 10 s (by default 5 s, with jitter); later ones back off
//!   (30 s, 2 min, 10 min, 30 min, 1 h, 2 h, then every 4 h), each with ±20% jitter so
//!   endpoints that failed together do not come back together.
//! - A `Retry-After` the endpoint sent is honoured (between 1 s and 6 h) instead.
//! - An event is given up (dead) after a failed attempt made at least
//!   [`Policy::give_up_after`] (24 h by default) after the event, or after a manual retry of
//!   it: so every event is tried for at least that long, and an endpoint that was down for
//!   days drains its backlog with one attempt per event instead of a day per event.

use std::time::Duration;

use rand::Rng;

/// Steps of the schedule, in multiples of the first retry's delay (5 s by default).
const STEPS: [u64; 8] = [1, 6, 24, 120, 360, 720, 1440, 2880];
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(6 * 3600);

/// The retry rules (`--webhook-retry-ms`, `--webhook-give-up-ms`, `--webhook-timeout-ms`).
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Delay before the first retry; later ones are multiples of it.
    pub first_retry: Duration,
    /// How long after the event (or a manual retry) a failed attempt makes it dead.
    pub give_up_after: Duration,
    /// Longest wait for an answer.
    pub timeout: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            first_retry: Duration::from_secs(5),
            give_up_after: Duration::from_secs(24 * 3600),
            timeout: Duration::from_secs(10),
        }
    }
}

impl Policy {
    /// The delay before attempt `attempts + 1`, after `attempts` failed ones (at least 1),
    /// before jitter.
    pub fn base_delay(&self, attempts: u32) -> Duration {
        let step = STEPS[(attempts.max(1) as usize - 1).min(STEPS.len() - 1)];
        self.first_retry.saturating_mul(step as u32)
    }

    /// When the event is tried next after a failed attempt at `now` (its `attempts`th),
    /// or `None` when it is given up. `retry_after` is what the endpoint asked for.
    pub fn next_attempt(
        &self,
        now: i64,
        since: i64,
        attempts: u32,
        retry_after: Option<Duration>,
        rng: &mut impl Rng,
    ) -> Option<i64> {
        if now.saturating_sub(since) >= self.give_up_after.as_millis() as i64 {
            return None;
        }
        let delay = match retry_after {
            Some(d) => d.clamp(Duration::from_secs(1), MAX_RETRY_AFTER),
            None => {
                let base = self.base_delay(attempts).as_millis() as f64;
                Duration::from_millis((base * rng.random_range(0.8..=1.2)) as u64)
            }
        };
        Some(now + delay.as_millis() as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const DAY: i64 = 86_400_000;

    fn rng() -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(7)
    }

    #[test]
    fn the_first_retry_comes_within_ten_seconds() {
        let p = Policy::default();
        let mut r = rng();
        for _ in 0..1000 {
            let at = p.next_attempt(0, 0, 1, None, &mut r).unwrap();
            assert!((4_000..=6_000).contains(&at), "{at}");
        }
    }

    #[test]
    fn retries_back_off_to_every_four_hours_with_jitter() {
        let p = Policy::default();
        let delays: Vec<u64> = (1..=12).map(|n| p.base_delay(n).as_secs()).collect();
        assert_eq!(
            delays,
            [
                5, 30, 120, 600, 1800, 3600, 7200, 14400, 14400, 14400, 14400, 14400
            ]
        );
        let mut r = rng();
        let seen: std::collections::HashSet<i64> = (0..50)
            .map(|_| p.next_attempt(0, 0, 3, None, &mut r).unwrap())
            .collect();
        assert!(seen.len() > 40, "jitter spreads retries: {seen:?}");
        assert!(seen.iter().all(|t| (96_000..=144_000).contains(t)));
    }

    #[test]
    fn an_event_is_tried_for_a_day_and_then_given_up() {
        let p = Policy::default();
        let mut r = rng();
        // Walk the schedule from the event's time: every retry is before the day ends, and
        // the first failure at or after it is the last.
        let (mut now, mut attempts) = (0, 1);
        while let Some(next) = p.next_attempt(now, 0, attempts, None, &mut r) {
            assert!(now < DAY);
            now = next;
            attempts += 1;
        }
        assert!(now >= DAY, "given up only after a day: {now}");
        assert!((10..=20).contains(&attempts), "{attempts} attempts");
    }

    #[test]
    fn an_old_event_reached_late_gets_one_attempt() {
        let p = Policy::default();
        assert_eq!(p.next_attempt(3 * DAY, 0, 1, None, &mut rng()), None);
        // A manual retry counts from when it was asked.
        assert!(
            p.next_attempt(3 * DAY, 3 * DAY - 10, 1, None, &mut rng())
                .is_some()
        );
    }

    #[test]
    fn retry_after_is_honoured_within_bounds() {
        let p = Policy::default();
        let at = |d| p.next_attempt(0, 0, 1, Some(d), &mut rng()).unwrap();
        assert_eq!(at(Duration::from_secs(120)), 120_000);
        assert_eq!(at(Duration::ZERO), 1_000);
        assert_eq!(at(Duration::from_secs(365 * 86_400)), 6 * 3_600_000);
    }
}

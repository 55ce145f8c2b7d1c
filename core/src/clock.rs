//! The device's estimate of the server's clock.
//!
//! Status intents are ordered by `intent_at` on the **server's** time scale (latest intent
//! wins), but a change made in a tunnel is stamped on the device, whose clock may be hours
//! wrong. So every server response is a clock sample: the server's time, bracketed by the
//! device's wall clock just before the request and just after the answer. The offset
//! `server − midpoint` is accurate to half the round trip.
//!
//! Samples differ in quality, so the estimate keeps the **best** one, NTP-style: each sample
//! carries an uncertainty (half its round trip, plus the server's handling time, which the
//! device cannot see), and the estimate's uncertainty grows with its age at 100 ppm, a
//! generous bound on a quartz clock's drift. A new sample replaces the estimate when it is at
//! least as certain, or when the two disagree by more than both uncertainties together (the
//! device clock was stepped since).
//!
//! - **precise**: `server_time` in the body of a heartbeat or login, millisecond resolution.
//!   A login spends tens of milliseconds hashing the password, so its sample is weak; the
//!   engine sends a heartbeat right after logging in to get a strong one.
//! - **coarse**: the HTTP `Date` header of every response, one-second resolution. It only
//!   matters when there is nothing better, or when it proves the estimate wrong.
//!
//! The device's wall clock is used (not tokio's monotonic clock) on purpose: a monotonic clock
//! stops while a laptop sleeps, so an offset anchored to it would stamp the first change after
//! a night's sleep hours in the past. The wall clock plus a re-measured offset does not.
//! The estimate is persisted, so a change made offline right after a restart is ordered too.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use presence_protocol::Millis;
use serde::{Deserialize, Serialize};

/// One observation of the server's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockSample {
    /// Device wall time when the request was sent.
    pub sent_at: Millis,
    /// Device wall time when the answer arrived.
    pub received_at: Millis,
    /// The server's time, from the body or the `Date` header.
    pub server_time: Millis,
    /// `server_time` came from the body (ms resolution), not from `Date`.
    pub precise: bool,
}

/// The estimate of `server clock − device clock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockEstimate {
    pub offset_ms: i64,
    /// How far off `offset_ms` may be when measured.
    pub uncertainty_ms: i64,
    /// Device wall time of the measurement.
    pub measured_at: Millis,
}

impl ClockEstimate {
    fn from_sample(s: &ClockSample) -> ClockEstimate {
        let rtt = (s.received_at - s.sent_at).max(0);
        let mid = s.sent_at + rtt / 2;
        let (offset_ms, uncertainty_ms) = if s.precise {
            (s.server_time - mid, rtt / 2 + 1)
        } else {
            // `Date` truncates to the second: the true time is in [date, date + 1000).
            (s.server_time + 500 - mid, rtt / 2 + 500)
        };
        ClockEstimate {
            offset_ms,
            uncertainty_ms,
            measured_at: s.received_at,
        }
    }

    /// Uncertainty now, grown by drift since the measurement (100 ppm).
    pub fn uncertainty_at(&self, now: Millis) -> i64 {
        self.uncertainty_ms + (now - self.measured_at).abs() / 10_000
    }
}

/// Shared by the engine and its request tasks; the lock is held for a few instructions only.
#[derive(Debug)]
pub struct ServerClock {
    skew_ms: i64,
    estimate: Mutex<Option<ClockEstimate>>,
}

impl ServerClock {
    /// `skew_ms` is added to the device's wall clock (tests simulate a wrong clock with it).
    pub fn new(skew_ms: i64) -> ServerClock {
        ServerClock {
            skew_ms,
            estimate: Mutex::new(None),
        }
    }

    /// The device's wall clock, in ms since the epoch (including any simulated skew).
    pub fn device_now(&self) -> Millis {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        now + self.skew_ms
    }

    /// The current estimate, if any sample was seen (or one was restored).
    pub fn estimate(&self) -> Option<ClockEstimate> {
        *self.estimate.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current estimate of `server clock − device clock`.
    pub fn offset(&self) -> Option<i64> {
        self.estimate().map(|e| e.offset_ms)
    }

    /// Best estimate of the server's clock now. Without any sample, the device clock.
    pub fn server_now(&self) -> Millis {
        self.device_now() + self.offset().unwrap_or(0)
    }

    /// Restores a persisted estimate (ignored once a sample has been seen).
    pub fn restore(&self, estimate: ClockEstimate) {
        let mut g = self.estimate.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            *g = Some(estimate);
        }
    }

    /// Folds in one sample (see the module docs for the rule).
    pub fn observe(&self, sample: ClockSample) {
        let new = ClockEstimate::from_sample(&sample);
        let mut g = self.estimate.lock().unwrap_or_else(|p| p.into_inner());
        let replace = match *g {
            None => true,
            Some(cur) => {
                let cur_unc = cur.uncertainty_at(new.measured_at);
                new.uncertainty_ms <= cur_unc
                    || (new.offset_ms - cur.offset_ms).abs() > new.uncertainty_ms + cur_unc
            }
        };
        if replace {
            *g = Some(new);
        }
    }
}

/// Parses an HTTP `Date` header (IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`) to epoch ms.
pub fn parse_http_date(s: &str) -> Option<Millis> {
    let mut it = s.split_whitespace();
    let _weekday = it.next()?;
    let day: i64 = it.next()?.parse().ok()?;
    let month = match it.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = it.next()?.parse().ok()?;
    let mut hms = it.next()?.split(':');
    let h: i64 = hms.next()?.parse().ok()?;
    let m: i64 = hms.next()?.parse().ok()?;
    let sec: i64 = hms.next()?.parse().ok()?;
    if it.next()? != "GMT" || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    Some((days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + sec) * 1000)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_parse_to_epoch_millis() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777_000)
        );
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(parse_http_date("yesterday"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 CET"), None);
    }

    #[test]
    fn a_precise_sample_corrects_a_clock_hours_off() {
        let clock = ServerClock::new(-3 * 3_600_000);
        let d = clock.device_now();
        let server = d + 3 * 3_600_000;
        clock.observe(ClockSample {
            sent_at: d,
            received_at: d + 10,
            server_time: server + 5,
            precise: true,
        });
        let est = clock.server_now();
        let truth = clock.device_now() + 3 * 3_600_000;
        assert!((est - truth).abs() < 50, "estimate {est} truth {truth}");
    }

    #[test]
    fn coarse_samples_do_not_jitter_a_precise_estimate() {
        let clock = ServerClock::new(0);
        clock.observe(ClockSample {
            sent_at: 10_000,
            received_at: 10_000,
            server_time: 20_250,
            precise: true,
        });
        assert_eq!(clock.offset(), Some(10_250));
        // A Date header a few hundred ms off, within its resolution: ignored.
        clock.observe(ClockSample {
            sent_at: 11_000,
            received_at: 11_000,
            server_time: 21_000,
            precise: false,
        });
        assert_eq!(clock.offset(), Some(10_250));
        // The device clock jumped by a minute: the coarse sample wins.
        clock.observe(ClockSample {
            sent_at: 71_000,
            received_at: 71_000,
            server_time: 21_000,
            precise: false,
        });
        assert_eq!(clock.offset(), Some(-49_500));
    }

    #[test]
    fn a_slow_answer_does_not_replace_a_fast_one() {
        let clock = ServerClock::new(0);
        // A 2 ms round trip: offset 100 +- 2.
        clock.observe(ClockSample {
            sent_at: 1_000,
            received_at: 1_002,
            server_time: 1_101,
            precise: true,
        });
        assert_eq!(clock.offset(), Some(100));
        // A 60 ms login whose server_time was taken at the end: offset looks like 130 +- 31.
        clock.observe(ClockSample {
            sent_at: 2_000,
            received_at: 2_060,
            server_time: 2_160,
            precise: true,
        });
        assert_eq!(clock.offset(), Some(100));
        // The reverse order: the fast sample replaces the slow one.
        let clock = ServerClock::new(0);
        clock.observe(ClockSample {
            sent_at: 2_000,
            received_at: 2_060,
            server_time: 2_160,
            precise: true,
        });
        assert_eq!(clock.offset(), Some(130));
        clock.observe(ClockSample {
            sent_at: 3_000,
            received_at: 3_002,
            server_time: 3_101,
            precise: true,
        });
        assert_eq!(clock.offset(), Some(100));
    }

    #[test]
    fn an_old_estimate_gives_way_as_drift_makes_it_uncertain() {
        let e = ClockEstimate {
            offset_ms: 0,
            uncertainty_ms: 1,
            measured_at: 0,
        };
        assert_eq!(e.uncertainty_at(0), 1);
        assert_eq!(e.uncertainty_at(3_600_000), 361);
    }
}

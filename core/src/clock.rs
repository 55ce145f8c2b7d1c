//! The device's estimate of the server's clock.
//!
//! Status intents are ordered by `intent_at` on the **server's** time scale (latest intent
//! wins), but a change made in a tunnel is stamped on the device, whose clock may be hours
//! wrong. So every server response is a clock sample: the server's time, bracketed by the
//! device's wall clock just before the request and just after the answer. The offset
//! `server − midpoint` is accurate to half the round trip.
//!
//! Two kinds of sample:
//!
//! - **precise**: a `server_time` in the body (login, heartbeat), millisecond resolution. It
//!   always replaces the estimate: the latest sample tracks a device clock that was just
//!   corrected by the OS.
//! - **coarse**: the HTTP `Date` header (every response), one-second resolution. It only
//!   replaces the estimate when none exists or when it disagrees with the estimate by more
//!   than its own uncertainty, i.e. when the device clock jumped since the last precise sample.
//!
//! The device's wall clock is used (not tokio's monotonic clock) on purpose: a monotonic clock
//! stops while a laptop sleeps, so an offset anchored to it would stamp the first change after
//! a night's sleep hours in the past. The wall clock plus a re-measured offset does not.
//! The estimate is persisted, so a change made offline right after a restart is ordered too.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use presence_protocol::Millis;

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

impl ClockSample {
    fn offset(&self) -> (i64, i64) {
        let mid = self.sent_at + (self.received_at - self.sent_at).max(0) / 2;
        let half_rtt = (self.received_at - self.sent_at).max(0) / 2;
        if self.precise {
            (self.server_time - mid, half_rtt)
        } else {
            // `Date` truncates to the second: the true time is in [date, date + 1000).
            (self.server_time + 500 - mid, half_rtt + 500)
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Estimate {
    offset_ms: i64,
    uncertainty_ms: i64,
}

/// Shared by the engine and its request tasks; the lock is held for a few instructions only.
#[derive(Debug)]
pub struct ServerClock {
    skew_ms: i64,
    estimate: Mutex<Option<Estimate>>,
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

    /// The current estimate of `server clock − device clock`, if any sample was seen.
    pub fn offset(&self) -> Option<i64> {
        self.lock().map(|e| e.offset_ms)
    }

    /// Best estimate of the server's clock now. Without any sample, the device clock.
    pub fn server_now(&self) -> Millis {
        self.device_now() + self.offset().unwrap_or(0)
    }

    /// Restores a persisted offset. It counts as coarse (the device clock may have been
    /// corrected since), so the first sample of either kind that disagrees replaces it.
    pub fn restore(&self, offset_ms: i64) {
        let mut g = self.estimate.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            *g = Some(Estimate {
                offset_ms,
                uncertainty_ms: 1_000,
            });
        }
    }

    /// Folds in one sample (see the module docs for the rule).
    pub fn observe(&self, sample: ClockSample) {
        let (offset_ms, uncertainty_ms) = sample.offset();
        let mut g = self.estimate.lock().unwrap_or_else(|p| p.into_inner());
        let replace = match *g {
            None => true,
            Some(_) if sample.precise => true,
            Some(cur) => (offset_ms - cur.offset_ms).abs() > uncertainty_ms + cur.uncertainty_ms,
        };
        if replace {
            *g = Some(Estimate {
                offset_ms,
                uncertainty_ms,
            });
        }
    }

    fn lock(&self) -> Option<Estimate> {
        *self.estimate.lock().unwrap_or_else(|p| p.into_inner())
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
}

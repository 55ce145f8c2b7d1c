//! Opening hours (DESIGN rule 7): a weekly schedule of wall-clock ranges in the account's IANA
//! time zone, with dated exceptions, validated and compiled once, then evaluated per instant.
//!
//! What it guarantees:
//! - [`WeeklySchedule::is_open`] decides on the wall-clock time at the instant in the account's
//!   zone, using the tz database (chrono-tz). Wall times skipped by a spring-forward switch never
//!   happen; wall times repeated by a fall-back switch happen twice, and a range covering them is
//!   open both times.
//! - A range whose end is not after its start crosses midnight: it belongs to the day it starts
//!   on and runs into the next day. A dated exception replaces that date's own ranges; the
//!   previous day's overnight range still spills into it.
//! - [`WeeklySchedule::next_change_after`] returns the first instant strictly after the given
//!   one at which `is_open` flips: `is_open` is constant on `[after, next)` and differs at `next`.
//!   It looks about 400 days ahead; past that it answers `None` ("never changes").
//! - [`WeeklySchedule::from_opening_hours`] rejects bad input with a [`ScheduleError`] naming the
//!   offending field as a JSON path (`timezone`, `days.mon[0][1]`, `exceptions[2].date`), which
//!   the server turns into `422 invalid_field`.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Datelike, MappedLocalTime, NaiveDate, NaiveDateTime, Offset, TimeZone};
use chrono_tz::{GapInfo, Tz};

use crate::{OpeningHours, TimeRange};

const MINUTES_PER_DAY: u16 = 1440;
const MS_PER_MINUTE: i64 = 60_000;
const MS_PER_DAY: i64 = 86_400_000;
const SECS_PER_DAY: i64 = 86_400;
/// chrono counts 0001-01-01 as day 1; 1970-01-01 is day 719_163 in that count.
const UNIX_EPOCH_DAYS_FROM_CE: i64 = 719_163;
/// How far ahead `next_change_after` looks when exceptions keep the state from changing.
const HORIZON_DAYS: i64 = 400;
/// chrono represents roughly +-262,000 years. Instants are clamped well inside that (about
/// year 250,000) so that local-time arithmetic a few days either side never leaves it.
const MAX_INSTANT_MS: i64 = 7_900_000_000_000_000;

/// A field of [`OpeningHours`] that does not validate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleError {
    /// JSON path of the field, e.g. `timezone`, `days.mon[0][1]`, `exceptions[2].date`.
    pub field: String,
    /// What is wrong with it, for a human.
    pub detail: String,
}

impl ScheduleError {
    fn new(field: impl Into<String>, detail: impl Into<String>) -> Self {
        ScheduleError {
            field: field.into(),
            detail: detail.into(),
        }
    }
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.detail)
    }
}

impl std::error::Error for ScheduleError {}

/// One range of a day's own opening hours, in minutes after that day's local midnight.
/// `end` lies in `start + 1 ..= start + 1440`; past 1440 the range runs into the next day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Span {
    start: u16,
    end: u16,
}

/// Compiled opening hours. Cheap to evaluate; build it once per change of the settings.
#[derive(Debug, Clone)]
pub struct WeeklySchedule {
    /// `None`: opening hours disabled, always open.
    compiled: Option<Compiled>,
}

#[derive(Debug, Clone)]
struct Compiled {
    tz: Tz,
    /// Each weekday's own ranges, Monday first, sorted.
    week: [Vec<Span>; 7],
    /// Dated exceptions keyed by day number since 1970-01-01 (local date), sorted ranges.
    exceptions: BTreeMap<i64, Vec<Span>>,
    /// `Some(open)` when the weekly pattern alone is open (or closed) at every wall minute. Then
    /// only dates next to an exception can change anything, which lets "always open except on
    /// holidays" skip straight to the holidays instead of walking day by day.
    uniform: Option<bool>,
}

impl WeeklySchedule {
    /// Always open (opening hours disabled).
    pub fn always_open() -> Self {
        WeeklySchedule { compiled: None }
    }

    /// Validates and compiles `oh`. Everything is validated even when `enabled` is false (so a
    /// bad setting is refused when saved, not when it is switched on later); `enabled: false`
    /// then gives [`WeeklySchedule::always_open`].
    ///
    /// Times are `"HH:MM"` from `00:00` to `23:59`; `"24:00"` is also accepted as an end. The
    /// time zone is an IANA name known to chrono-tz. Dates are `YYYY-MM-DD`; a date may have
    /// only one exception.
    pub fn from_opening_hours(oh: &OpeningHours) -> Result<Self, ScheduleError> {
        let tz: Tz = oh.timezone.parse().map_err(|_| {
            ScheduleError::new(
                "timezone",
                format!(
                    "unknown time zone {:?}; expected an IANA name such as \"Europe/Prague\"",
                    oh.timezone
                ),
            )
        })?;

        let d = &oh.days;
        let days = [
            ("mon", &d.mon),
            ("tue", &d.tue),
            ("wed", &d.wed),
            ("thu", &d.thu),
            ("fri", &d.fri),
            ("sat", &d.sat),
            ("sun", &d.sun),
        ];
        let mut week: [Vec<Span>; 7] = Default::default();
        for (slot, (name, ranges)) in week.iter_mut().zip(days) {
            *slot = compile_ranges(&format!("days.{name}"), ranges)?;
        }

        let mut exceptions = BTreeMap::new();
        for (i, ex) in oh.exceptions.iter().enumerate() {
            let field = format!("exceptions[{i}].date");
            let date = parse_date(&ex.date).ok_or_else(|| {
                ScheduleError::new(
                    &field,
                    format!("expected a date YYYY-MM-DD, got {:?}", ex.date),
                )
            })?;
            let spans = compile_ranges(&format!("exceptions[{i}].ranges"), &ex.ranges)?;
            if exceptions.insert(unix_day(date), spans).is_some() {
                return Err(ScheduleError::new(
                    field,
                    format!("{date} has more than one exception"),
                ));
            }
        }

        if !oh.enabled {
            return Ok(WeeklySchedule::always_open());
        }
        let uniform = uniform_state(&week);
        Ok(WeeklySchedule {
            compiled: Some(Compiled {
                tz,
                week,
                exceptions,
                uniform,
            }),
        })
    }

    /// True when opening hours are disabled.
    pub fn is_always_open(&self) -> bool {
        self.compiled.is_none()
    }

    /// Whether the chat box is inside opening hours at `at_ms` (ms since the Unix epoch).
    pub fn is_open(&self, at_ms: i64) -> bool {
        match &self.compiled {
            None => true,
            Some(c) => c.is_open(at_ms.clamp(-MAX_INSTANT_MS, MAX_INSTANT_MS)),
        }
    }

    /// The first instant strictly after `after_ms` at which [`is_open`](Self::is_open) flips, or
    /// `None` if it never changes (always open, always closed, or no change within about 400
    /// days, e.g. because exceptions cover every opening in that time).
    pub fn next_change_after(&self, after_ms: i64) -> Option<i64> {
        let c = self.compiled.as_ref()?;
        if !(-MAX_INSTANT_MS..=MAX_INSTANT_MS).contains(&after_ms) {
            return None;
        }
        c.next_change_after(after_ms)
    }
}

impl Compiled {
    /// A day's own ranges: its exception if it has one, else its weekday's.
    fn own(&self, day: i64) -> &[Span] {
        match self.exceptions.get(&day) {
            Some(spans) => spans,
            None => &self.week[weekday(day)],
        }
    }

    fn open_at_wall(&self, day: i64, minute: u16) -> bool {
        self.own(day)
            .iter()
            .any(|s| s.start <= minute && minute < s.end)
            || self
                .own(day - 1)
                .iter()
                .any(|s| minute + MINUTES_PER_DAY < s.end)
    }

    fn offset_ms(&self, at_ms: i64) -> i64 {
        offset_secs(self.tz, at_ms.div_euclid(1000)) * 1000
    }

    /// Local (day number, minute of day) at an instant.
    fn wall(&self, at_ms: i64) -> (i64, u16) {
        let local = at_ms + self.offset_ms(at_ms);
        let minute = local.rem_euclid(MS_PER_DAY) / MS_PER_MINUTE;
        (local.div_euclid(MS_PER_DAY), minute as u16)
    }

    fn is_open(&self, at_ms: i64) -> bool {
        if let (Some(open), true) = (self.uniform, self.exceptions.is_empty()) {
            return open;
        }
        let (day, minute) = self.wall(at_ms);
        self.open_at_wall(day, minute)
    }

    /// Every instant at which `is_open` may flip lies on a candidate: a wall-clock boundary
    /// (a range's start or end, or midnight, where one day's ranges hand over to the next) or a
    /// UTC offset change (a fall-back switch can reopen a range that had just closed without
    /// any boundary being crossed). The answer is the earliest candidate after `after` whose
    /// state differs, as the state is constant between consecutive candidates.
    ///
    /// Candidates are generated per local date, lazily. Local time is not monotonic across a
    /// fall-back switch, so a later date's candidate can be earlier than an earlier date's;
    /// offsets differ by less than a day, though, so once a change is found at local date `D`
    /// no date past `D + 1` can hold an earlier one, and scanning stops there.
    fn next_change_after(&self, after: i64) -> Option<i64> {
        let state = self.is_open(after);
        let (first, _) = self.wall(after);
        let horizon = first + HORIZON_DAYS;
        // (instant, last local date worth scanning for an earlier change)
        let mut best: Option<(i64, i64)> = None;
        let mut minutes: Vec<u16> = Vec::with_capacity(8);
        // Start a day early: a fall-back switch right after `after` can bring back wall times
        // of the previous date.
        let mut day = first - 1;
        while day <= horizon {
            if best.is_some_and(|(_, last)| day > last) {
                break;
            }
            if self.uniform.is_some() {
                // Only dates within a day of an exception or of the date after one (whose
                // midnight and spill-over differ) can hold a change.
                match self.exceptions.range(day - 2..).next() {
                    None => break,
                    Some((&e, _)) if e > day + 1 => {
                        day = e - 1;
                        continue;
                    }
                    Some(_) => {}
                }
            }

            let mut consider = |t: i64| {
                if t > after && best.is_none_or(|(b, _)| t < b) && self.is_open(t) != state {
                    best = Some((t, self.wall(t).0 + 1));
                }
            };
            self.wall_boundaries(day, &mut minutes);
            for &m in &minutes {
                self.instants_of_wall(day, m, &mut consider);
            }
            // Offset changes during the UTC day with the same number: over the scanned dates
            // these cover every instant whose local date is scanned, as offsets stay within a
            // day of UTC.
            self.offset_changes_in_utc_day(day, &mut consider);
            day += 1;
        }
        best.map(|(t, _)| t)
    }

    /// Minutes of `day` at which its wall-clock state may change: midnight, its own ranges'
    /// starts and ends (ends past midnight belong to the next date, which sees them as spill),
    /// and the ends of the previous date's overnight ranges.
    fn wall_boundaries(&self, day: i64, out: &mut Vec<u16>) {
        out.clear();
        out.push(0);
        for s in self.own(day) {
            out.push(s.start);
            if s.end < MINUTES_PER_DAY {
                out.push(s.end);
            }
        }
        for s in self.own(day - 1) {
            if s.end > MINUTES_PER_DAY {
                out.push(s.end - MINUTES_PER_DAY);
            }
        }
        out.sort_unstable();
        out.dedup();
    }

    /// The instants at which the local clock reads `day` `minute`: one normally, two in a
    /// fall-back overlap, and for a time skipped by a spring-forward gap the first instant
    /// after the gap.
    fn instants_of_wall(&self, day: i64, minute: u16, f: &mut impl FnMut(i64)) {
        let local_ms = day * MS_PER_DAY + i64::from(minute) * MS_PER_MINUTE;
        let Some(naive) = naive_at(local_ms) else {
            return;
        };
        let off = |o: chrono_tz::TzOffset| i64::from(o.fix().local_minus_utc()) * 1000;
        match self.tz.offset_from_local_datetime(&naive) {
            MappedLocalTime::Single(o) => f(local_ms - off(o)),
            MappedLocalTime::Ambiguous(a, b) => {
                f(local_ms - off(a));
                f(local_ms - off(b));
            }
            MappedLocalTime::None => {
                if let Some(end) = GapInfo::new(&naive, &self.tz).and_then(|g| g.end) {
                    f(end.timestamp_millis());
                }
            }
        }
    }

    /// Instants during UTC day `day` at which the zone's offset changes. Probes the day's
    /// start, middle and end, then bisects (tz data has one-second resolution).
    fn offset_changes_in_utc_day(&self, day: i64, f: &mut impl FnMut(i64)) {
        let start = day * SECS_PER_DAY;
        let mid = start + SECS_PER_DAY / 2;
        let end = start + SECS_PER_DAY;
        let (o_start, o_mid, o_end) = (
            offset_secs(self.tz, start),
            offset_secs(self.tz, mid),
            offset_secs(self.tz, end),
        );
        for (lo, o_lo, hi, o_hi) in [(start, o_start, mid, o_mid), (mid, o_mid, end, o_end)] {
            if o_lo == o_hi {
                continue;
            }
            let (mut lo, mut hi) = (lo, hi);
            while hi - lo > 1 {
                let m = lo + (hi - lo) / 2;
                if offset_secs(self.tz, m) == o_lo {
                    lo = m;
                } else {
                    hi = m;
                }
            }
            f(hi * 1000);
        }
    }
}

/// UTC offset of `tz` at `secs` since the Unix epoch, in seconds.
fn offset_secs(tz: Tz, secs: i64) -> i64 {
    DateTime::from_timestamp(secs, 0).map_or(0, |dt| {
        i64::from(
            tz.offset_from_utc_datetime(&dt.naive_utc())
                .fix()
                .local_minus_utc(),
        )
    })
}

fn naive_at(ms: i64) -> Option<NaiveDateTime> {
    DateTime::from_timestamp_millis(ms).map(|dt| dt.naive_utc())
}

fn unix_day(date: NaiveDate) -> i64 {
    i64::from(date.num_days_from_ce()) - UNIX_EPOCH_DAYS_FROM_CE
}

/// Monday = 0. Day 0 (1970-01-01) was a Thursday.
fn weekday(day: i64) -> usize {
    (day + 3).rem_euclid(7) as usize
}

fn compile_ranges(prefix: &str, ranges: &[TimeRange]) -> Result<Vec<Span>, ScheduleError> {
    let mut spans = Vec::with_capacity(ranges.len());
    for (i, (start, end)) in ranges.iter().enumerate() {
        let s = parse_time(start, false).ok_or_else(|| {
            ScheduleError::new(
                format!("{prefix}[{i}][0]"),
                format!("expected a start time \"HH:MM\" from 00:00 to 23:59, got {start:?}"),
            )
        })?;
        let e = parse_time(end, true).ok_or_else(|| {
            ScheduleError::new(
                format!("{prefix}[{i}][1]"),
                format!("expected an end time \"HH:MM\" from 00:00 to 24:00, got {end:?}"),
            )
        })?;
        // An end not after the start crosses midnight (equal start and end: 24 hours).
        let end = if e > s { e } else { e + MINUTES_PER_DAY };
        spans.push(Span { start: s, end });
    }
    spans.sort_unstable();
    Ok(spans)
}

/// `"HH:MM"`, exactly five characters, to minutes after midnight. `"24:00"` only if `as_end`.
fn parse_time(s: &str, as_end: bool) -> Option<u16> {
    let b = s.as_bytes();
    if b.len() != 5 || b[2] != b':' {
        return None;
    }
    let digits = |i: usize| -> Option<u16> {
        let (hi, lo) = (b[i], b[i + 1]);
        (hi.is_ascii_digit() && lo.is_ascii_digit())
            .then(|| u16::from(hi - b'0') * 10 + u16::from(lo - b'0'))
    };
    let (h, m) = (digits(0)?, digits(3)?);
    match (h, m) {
        (0..=23, 0..=59) => Some(h * 60 + m),
        (24, 0) if as_end => Some(MINUTES_PER_DAY),
        _ => None,
    }
}

/// `YYYY-MM-DD`, exactly ten characters, a real calendar date.
fn parse_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    let shape_ok = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape_ok {
        return None;
    }
    let year = s[0..4].parse().ok()?;
    let month = s[5..7].parse().ok()?;
    let day = s[8..10].parse().ok()?;
    NaiveDate::from_ymd_opt(year, month, day)
}

/// `Some(true)` if every wall minute of the weekly pattern is open, `Some(false)` if none is.
fn uniform_state(week: &[Vec<Span>; 7]) -> Option<bool> {
    let mut all_open = true;
    let mut all_closed = true;
    for w in 0..7 {
        let prev = &week[(w + 6) % 7];
        let mut covered: Vec<(u16, u16)> = week[w]
            .iter()
            .map(|s| (s.start, s.end.min(MINUTES_PER_DAY)))
            .chain(
                prev.iter()
                    .filter(|s| s.end > MINUTES_PER_DAY)
                    .map(|s| (0, s.end - MINUTES_PER_DAY)),
            )
            .collect();
        if !covered.is_empty() {
            all_closed = false;
        }
        covered.sort_unstable();
        let mut reach = 0;
        for (s, e) in covered {
            if s > reach {
                break;
            }
            reach = reach.max(e);
        }
        if reach < MINUTES_PER_DAY {
            all_open = false;
        }
    }
    match (all_open, all_closed) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DateException, WeekDays};

    /// An instant from an RFC 3339 string.
    fn at(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s)
            .unwrap_or_else(|e| panic!("bad test instant {s}: {e}"))
            .timestamp_millis()
    }

    fn ranges(r: &[(&str, &str)]) -> Vec<TimeRange> {
        r.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    fn hours(
        tz: &str,
        days: &[(&str, &[(&str, &str)])],
        exc: &[(&str, &[(&str, &str)])],
    ) -> OpeningHours {
        let mut w = WeekDays::default();
        for (name, r) in days {
            let slot = match *name {
                "mon" => &mut w.mon,
                "tue" => &mut w.tue,
                "wed" => &mut w.wed,
                "thu" => &mut w.thu,
                "fri" => &mut w.fri,
                "sat" => &mut w.sat,
                "sun" => &mut w.sun,
                other => panic!("bad day {other}"),
            };
            *slot = ranges(r);
        }
        OpeningHours {
            enabled: true,
            timezone: tz.to_owned(),
            days: w,
            exceptions: exc
                .iter()
                .map(|(d, r)| DateException {
                    date: (*d).to_owned(),
                    ranges: ranges(r),
                })
                .collect(),
        }
    }

    fn compile(oh: &OpeningHours) -> WeeklySchedule {
        WeeklySchedule::from_opening_hours(oh).expect("valid opening hours")
    }

    const WORKDAYS: [&str; 5] = ["mon", "tue", "wed", "thu", "fri"];

    fn office_hours(tz: &str, exc: &[(&str, &[(&str, &str)])]) -> OpeningHours {
        let nine_to_five: &[(&str, &str)] = &[("09:00", "17:00")];
        let days: Vec<(&str, &[(&str, &str)])> =
            WORKDAYS.iter().map(|d| (*d, nine_to_five)).collect();
        hours(tz, &days, exc)
    }

    #[test]
    fn disabled_hours_are_always_open() {
        let mut oh = office_hours("Europe/Prague", &[]);
        oh.enabled = false;
        let s = compile(&oh);
        assert!(s.is_always_open());
        assert!(s.is_open(at("2026-03-01T03:00:00Z")));
        assert_eq!(s.next_change_after(0), None);
        assert!(WeeklySchedule::always_open().is_open(i64::MIN));
    }

    #[test]
    fn office_hours_open_and_close_in_local_time() {
        let s = compile(&office_hours("Europe/Prague", &[]));
        // 2026-06-10 is a Wednesday; Prague is UTC+2 in summer.
        assert!(!s.is_open(at("2026-06-10T06:59:59.999Z")));
        assert!(s.is_open(at("2026-06-10T07:00:00Z")));
        assert!(s.is_open(at("2026-06-10T14:59:59.999Z")));
        assert!(!s.is_open(at("2026-06-10T15:00:00Z")));
        assert_eq!(
            s.next_change_after(at("2026-06-10T07:00:00Z")),
            Some(at("2026-06-10T15:00:00Z"))
        );
        // Friday evening -> Monday morning.
        assert_eq!(
            s.next_change_after(at("2026-06-12T15:00:00Z")),
            Some(at("2026-06-15T07:00:00Z"))
        );
    }

    #[test]
    fn range_crossing_midnight_is_open_after_midnight() {
        let s = compile(&hours("UTC", &[("fri", &[("22:00", "02:00")])], &[]));
        // 2026-06-12 is a Friday.
        assert!(!s.is_open(at("2026-06-12T21:59:59Z")));
        assert!(s.is_open(at("2026-06-12T22:00:00Z")));
        assert!(s.is_open(at("2026-06-13T01:00:00Z")));
        assert!(s.is_open(at("2026-06-13T01:59:59.999Z")));
        assert!(!s.is_open(at("2026-06-13T02:00:00Z")));
        // Friday morning is not open: the range belongs to Friday evening only.
        assert!(!s.is_open(at("2026-06-12T01:00:00Z")));
        assert_eq!(
            s.next_change_after(at("2026-06-12T22:00:00Z")),
            Some(at("2026-06-13T02:00:00Z"))
        );
    }

    #[test]
    fn equal_start_and_end_is_a_full_24_hours() {
        let s = compile(&hours("UTC", &[("mon", &[("09:00", "09:00")])], &[]));
        // 2026-06-15 is a Monday.
        assert!(s.is_open(at("2026-06-15T09:00:00Z")));
        assert!(s.is_open(at("2026-06-16T08:59:59Z")));
        assert!(!s.is_open(at("2026-06-16T09:00:00Z")));
        let all_day = compile(&hours("UTC", &[("mon", &[("00:00", "24:00")])], &[]));
        assert!(all_day.is_open(at("2026-06-15T23:59:59Z")));
        assert!(!all_day.is_open(at("2026-06-16T00:00:00Z")));
    }

    #[test]
    fn dst_switch_day_spring_forward() {
        // Europe/Prague, Sunday 2026-03-29: at 01:00Z the clock jumps from 02:00 CET to
        // 03:00 CEST, so 02:00-02:59 never happens.
        let s = compile(&hours(
            "Europe/Prague",
            &[
                ("sat", &[("22:00", "01:30")]),
                ("sun", &[("02:15", "04:00"), ("09:00", "17:00")]),
            ],
            &[],
        ));
        // Saturday 22:00 CET.
        assert!(!s.is_open(at("2026-03-28T20:59:59.999Z")));
        assert!(s.is_open(at("2026-03-28T21:00:00Z")));
        // Overnight range ends at 01:30 CET.
        assert!(s.is_open(at("2026-03-29T00:29:59.999Z")));
        assert!(!s.is_open(at("2026-03-29T00:30:00Z")));
        // 02:15 does not exist: the range opens at the first instant after the gap, 03:00 CEST.
        assert!(!s.is_open(at("2026-03-29T00:59:59.999Z")));
        assert!(s.is_open(at("2026-03-29T01:00:00Z")));
        // 04:00 CEST.
        assert!(s.is_open(at("2026-03-29T01:59:59.999Z")));
        assert!(!s.is_open(at("2026-03-29T02:00:00Z")));
        // 09:00 and 17:00 CEST.
        assert!(s.is_open(at("2026-03-29T07:00:00Z")));
        assert!(!s.is_open(at("2026-03-29T15:00:00Z")));

        let next = |t: &str| s.next_change_after(at(t));
        assert_eq!(
            next("2026-03-28T12:00:00Z"),
            Some(at("2026-03-28T21:00:00Z"))
        );
        assert_eq!(
            next("2026-03-28T21:00:00Z"),
            Some(at("2026-03-29T00:30:00Z"))
        );
        assert_eq!(
            next("2026-03-29T00:30:00Z"),
            Some(at("2026-03-29T01:00:00Z"))
        );
        assert_eq!(
            next("2026-03-29T01:00:00Z"),
            Some(at("2026-03-29T02:00:00Z"))
        );
        assert_eq!(
            next("2026-03-29T02:00:00Z"),
            Some(at("2026-03-29T07:00:00Z"))
        );
        assert_eq!(
            next("2026-03-29T07:00:00Z"),
            Some(at("2026-03-29T15:00:00Z"))
        );
        // Next Saturday 22:00 CEST.
        assert_eq!(
            next("2026-03-29T15:00:00Z"),
            Some(at("2026-04-04T20:00:00Z"))
        );
    }

    #[test]
    fn range_inside_the_spring_forward_gap_never_opens() {
        let s = compile(&hours(
            "Europe/Prague",
            &[("sun", &[("02:10", "02:50")])],
            &[],
        ));
        assert!(!s.is_open(at("2026-03-29T01:00:00Z")));
        // No change on the switch day; the next one is a week later, 02:10 CEST.
        assert_eq!(
            s.next_change_after(at("2026-03-28T12:00:00Z")),
            Some(at("2026-04-05T00:10:00Z"))
        );
    }

    #[test]
    fn dst_switch_day_fall_back() {
        // Europe/Prague, Sunday 2026-10-25: at 01:00Z the clock goes back from 03:00 CEST to
        // 02:00 CET, so 02:00-02:59 happens twice (00:00Z-01:00Z and 01:00Z-02:00Z).
        let s = compile(&hours(
            "Europe/Prague",
            &[
                ("sat", &[("20:00", "02:30")]),
                ("sun", &[("09:00", "17:00")]),
            ],
            &[],
        ));
        // Saturday 20:00 CEST.
        assert!(s.is_open(at("2026-10-24T18:00:00Z")));
        // Overnight range ends at the first 02:30 (CEST)...
        assert!(s.is_open(at("2026-10-25T00:29:59.999Z")));
        assert!(!s.is_open(at("2026-10-25T00:30:00Z")));
        assert!(!s.is_open(at("2026-10-25T00:59:59.999Z")));
        // ...the clock goes back to 02:00, inside the range again, until the second 02:30 (CET).
        assert!(s.is_open(at("2026-10-25T01:00:00Z")));
        assert!(s.is_open(at("2026-10-25T01:29:59.999Z")));
        assert!(!s.is_open(at("2026-10-25T01:30:00Z")));
        // 09:00 and 17:00 CET.
        assert!(!s.is_open(at("2026-10-25T07:59:59.999Z")));
        assert!(s.is_open(at("2026-10-25T08:00:00Z")));
        assert!(!s.is_open(at("2026-10-25T16:00:00Z")));

        let next = |t: &str| s.next_change_after(at(t));
        assert_eq!(
            next("2026-10-24T12:00:00Z"),
            Some(at("2026-10-24T18:00:00Z"))
        );
        assert_eq!(
            next("2026-10-24T18:00:00Z"),
            Some(at("2026-10-25T00:30:00Z"))
        );
        // The reopening at the switch itself is found although no range boundary is crossed.
        assert_eq!(
            next("2026-10-25T00:30:00Z"),
            Some(at("2026-10-25T01:00:00Z"))
        );
        assert_eq!(
            next("2026-10-25T00:45:00Z"),
            Some(at("2026-10-25T01:00:00Z"))
        );
        assert_eq!(
            next("2026-10-25T01:00:00Z"),
            Some(at("2026-10-25T01:30:00Z"))
        );
        assert_eq!(
            next("2026-10-25T01:30:00Z"),
            Some(at("2026-10-25T08:00:00Z"))
        );
        assert_eq!(
            next("2026-10-25T08:00:00Z"),
            Some(at("2026-10-25T16:00:00Z"))
        );
    }

    #[test]
    fn range_inside_the_fall_back_overlap_opens_twice() {
        let s = compile(&hours(
            "Europe/Prague",
            &[("sun", &[("02:15", "02:45")])],
            &[],
        ));
        let next = |t: &str| s.next_change_after(at(t));
        assert_eq!(
            next("2026-10-24T12:00:00Z"),
            Some(at("2026-10-25T00:15:00Z"))
        );
        assert_eq!(
            next("2026-10-25T00:15:00Z"),
            Some(at("2026-10-25T00:45:00Z"))
        );
        assert_eq!(
            next("2026-10-25T00:45:00Z"),
            Some(at("2026-10-25T01:15:00Z"))
        );
        assert_eq!(
            next("2026-10-25T01:15:00Z"),
            Some(at("2026-10-25T01:45:00Z"))
        );
        assert!(s.is_open(at("2026-10-25T00:30:00Z")));
        assert!(!s.is_open(at("2026-10-25T01:00:00Z")));
        assert!(s.is_open(at("2026-10-25T01:30:00Z")));
    }

    #[test]
    fn dated_exception_closes_a_holiday() {
        // 2026-12-24 is a Thursday; Prague is UTC+1 in winter.
        let s = compile(&office_hours("Europe/Prague", &[("2026-12-24", &[])]));
        assert!(s.is_open(at("2026-12-23T09:00:00Z")));
        assert!(!s.is_open(at("2026-12-24T09:00:00Z")));
        assert!(s.is_open(at("2026-12-25T09:00:00Z")));
        assert_eq!(
            s.next_change_after(at("2026-12-23T16:00:00Z")),
            Some(at("2026-12-25T08:00:00Z"))
        );
    }

    #[test]
    fn dated_exception_can_open_a_closed_day_and_keeps_the_previous_spill() {
        let s = compile(&hours(
            "UTC",
            &[("wed", &[("22:00", "02:00")])],
            // Thursday 2026-06-11: open 10-12 instead of the (empty) Thursday pattern.
            &[("2026-06-11", &[("10:00", "12:00")])],
        ));
        assert!(
            s.is_open(at("2026-06-11T01:00:00Z")),
            "Wednesday night spills"
        );
        assert!(!s.is_open(at("2026-06-11T02:00:00Z")));
        assert!(s.is_open(at("2026-06-11T10:00:00Z")));
        assert!(!s.is_open(at("2026-06-18T10:00:00Z")), "one date only");
    }

    #[test]
    fn always_open_except_a_holiday_points_at_the_holiday() {
        let full: &[(&str, &str)] = &[("00:00", "24:00")];
        let days: Vec<(&str, &[(&str, &str)])> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
            .iter()
            .map(|d| (*d, full))
            .collect();
        let s = compile(&hours(
            "Europe/Prague",
            &days,
            &[("2026-12-24", &[("08:00", "12:00")])],
        ));
        assert!(s.is_open(at("2026-06-01T00:00:00Z")));
        // The exception replaces the whole date: closed from its midnight until 08:00.
        assert_eq!(
            s.next_change_after(at("2026-06-01T00:00:00Z")),
            Some(at("2026-12-23T23:00:00Z"))
        );
        assert_eq!(
            s.next_change_after(at("2026-12-23T23:00:00Z")),
            Some(at("2026-12-24T07:00:00Z"))
        );
        assert_eq!(
            s.next_change_after(at("2026-12-24T07:00:00Z")),
            Some(at("2026-12-24T11:00:00Z")),
        );
        assert_eq!(
            s.next_change_after(at("2026-12-24T11:00:00Z")),
            Some(at("2026-12-24T23:00:00Z")),
        );
        assert_eq!(s.next_change_after(at("2026-12-25T00:00:00Z")), None);
        // No exception at all: never changes.
        assert_eq!(
            compile(&hours("UTC", &days, &[])).next_change_after(0),
            None
        );
    }

    #[test]
    fn always_closed_never_changes() {
        let s = compile(&hours("Europe/Prague", &[], &[]));
        assert!(!s.is_open(at("2026-06-10T10:00:00Z")));
        assert_eq!(s.next_change_after(at("2026-06-10T10:00:00Z")), None);
    }

    #[test]
    fn exceptions_beyond_the_horizon_are_not_seen() {
        let s = compile(&hours("UTC", &[], &[("2028-06-01", &[("10:00", "11:00")])]));
        assert_eq!(s.next_change_after(at("2026-01-01T00:00:00Z")), None);
        assert_eq!(
            s.next_change_after(at("2028-01-01T00:00:00Z")),
            Some(at("2028-06-01T10:00:00Z"))
        );
    }

    #[test]
    fn invalid_timezone_names_the_timezone_field() {
        let err =
            WeeklySchedule::from_opening_hours(&hours("Mars/Olympus_Mons", &[], &[])).unwrap_err();
        assert_eq!(err.field, "timezone");
        assert!(err.to_string().starts_with("timezone: "));
    }

    #[test]
    fn invalid_time_names_the_range_field() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("09:00", "25:00")], "days.tue[0][1]"),
            (&[("09:00", "17:00"), ("9:00", "18:00")], "days.tue[1][0]"),
            (&[("24:00", "02:00")], "days.tue[0][0]"),
            (&[("09:60", "10:00")], "days.tue[0][0]"),
            (&[("09:00", "24:01")], "days.tue[0][1]"),
            (&[("09:00", "")], "days.tue[0][1]"),
        ];
        for (r, field) in cases {
            let err =
                WeeklySchedule::from_opening_hours(&hours("UTC", &[("tue", r)], &[])).unwrap_err();
            assert_eq!(&err.field, field, "{r:?}");
        }
        let err = WeeklySchedule::from_opening_hours(&hours(
            "UTC",
            &[],
            &[("2026-12-24", &[]), ("2026-12-31", &[("10:00", "x")])],
        ))
        .unwrap_err();
        assert_eq!(err.field, "exceptions[1].ranges[0][1]");
    }

    #[test]
    fn invalid_date_names_the_exception_field() {
        for bad in [
            "2026-02-30",
            "2026-2-03",
            "26-12-24",
            "2026/12/24",
            "",
            "2026-12-24T00",
        ] {
            let err = WeeklySchedule::from_opening_hours(&hours(
                "UTC",
                &[],
                &[("2026-12-24", &[]), ("2026-12-25", &[]), (bad, &[])],
            ))
            .unwrap_err();
            assert_eq!(err.field, "exceptions[2].date", "{bad:?}");
        }
        let dup = WeeklySchedule::from_opening_hours(&hours(
            "UTC",
            &[],
            &[("2026-12-24", &[]), ("2026-12-24", &[])],
        ))
        .unwrap_err();
        assert_eq!(dup.field, "exceptions[1].date");
    }

    #[test]
    fn disabled_hours_are_still_validated() {
        let mut oh = hours("Nowhere/Special", &[], &[]);
        oh.enabled = false;
        assert_eq!(
            WeeklySchedule::from_opening_hours(&oh).unwrap_err().field,
            "timezone"
        );
    }

    #[test]
    fn extreme_instants_do_not_panic() {
        let s = compile(&office_hours("America/New_York", &[("2026-12-24", &[])]));
        for t in [
            i64::MIN,
            i64::MIN + 1,
            -MAX_INSTANT_MS,
            0,
            MAX_INSTANT_MS,
            i64::MAX,
        ] {
            let _ = s.is_open(t);
            let _ = s.next_change_after(t);
        }
    }
}

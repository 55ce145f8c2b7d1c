//! The three reports, computed from availability log rows (pure: no I/O, no clock).
//!
//! Guarantees:
//! - An agent's state at `from` is its last row before `from`; each later row starts a new
//!   interval; the last interval runs up to `min(to, now)`. Time before an agent's first row
//!   (before it existed, or pruned) is not counted.
//! - Days are calendar days in the report's time zone: a span crossing local midnight is split
//!   there, so a DST day is 23 or 25 hours long and every millisecond lands in exactly one day.
//! - Coverage replays every agent's intervals through the rule the live view uses
//!   ([`presence_protocol::resolve::outcome_of`] over the agents who count for each chat box,
//!   [`presence_protocol::AgentAvailability::counts_for_group`]), within opening hours only,
//!   with the account's current groups and memberships.

use chrono::{LocalResult, NaiveDate, TimeZone};
use chrono_tz::Tz;
use presence_protocol::resolve::outcome_of;
use presence_protocol::{
    AgentAvailability, AgentTime, Availability, AvailabilityReport, ChatboxCoverage, ChatboxStatus,
    CoverageDay, CoverageReport, DayTime, Group, Reason, TimeInStates, TimelineInterval,
    TimelineReport, WeeklySchedule,
};
use rustc_hash::FxHashMap as HashMap;

use super::Logged;
use super::query::HistoryRows;

/// The range a report covers, and the time it is computed at.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    pub from: i64,
    pub to: i64,
    pub now: i64,
    pub tz: Tz,
    /// The range ends now (no `to` was asked for): an interval running up to `now` is still
    /// open.
    pub live: bool,
}

impl Range {
    /// Where counting stops: `to`, or now for a range that has not ended yet.
    fn upto(&self) -> i64 {
        self.to.min(self.now).max(self.from)
    }
}

/// An agent as a report lists it.
#[derive(Debug, Clone, Copy)]
pub struct Member<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub groups: &'a [String],
}

/// Calendar days of a range: day `i` is `[starts[i], starts[i + 1])`, the last one ending at
/// the range's `to`.
struct Days {
    starts: Vec<i64>,
    names: Vec<String>,
    to: i64,
}

/// The first instant of `date` in `tz` (the first one after a gap, where midnight does not
/// exist on a DST day).
pub(crate) fn day_start(tz: Tz, date: NaiveDate) -> i64 {
    let mut local = date.and_hms_opt(0, 0, 0).expect("midnight exists");
    for _ in 0..48 {
        match tz.from_local_datetime(&local) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => return t.timestamp_millis(),
            LocalResult::None => local += chrono::Duration::minutes(30),
        }
    }
    tz.from_utc_datetime(&date.and_hms_opt(0, 0, 0).expect("midnight exists"))
        .timestamp_millis()
}

fn local_date(tz: Tz, at: i64) -> NaiveDate {
    tz.timestamp_millis_opt(at)
        .single()
        .map(|t| t.date_naive())
        .unwrap_or_default()
}

impl Days {
    fn of(r: &Range) -> Days {
        let mut starts = vec![r.from];
        let mut date = local_date(r.tz, r.from);
        let mut names = vec![date.format("%Y-%m-%d").to_string()];
        while let Some(next) = date.succ_opt() {
            let start = day_start(r.tz, next);
            if start >= r.to {
                break;
            }
            starts.push(start);
            names.push(next.format("%Y-%m-%d").to_string());
            date = next;
        }
        Days {
            starts,
            names,
            to: r.to,
        }
    }

    fn len(&self) -> usize {
        self.starts.len()
    }

    /// The day `at` falls in (`at` within the range).
    fn index(&self, at: i64) -> usize {
        self.starts.partition_point(|&s| s <= at).saturating_sub(1)
    }

    fn end(&self, i: usize) -> i64 {
        self.starts.get(i + 1).copied().unwrap_or(self.to)
    }

    /// Calls `f(day, ms)` for each day `[start, end)` covers.
    fn split(&self, start: i64, end: i64, mut f: impl FnMut(usize, i64)) {
        let (mut t, mut i) = (start, self.index(start));
        while t < end && i < self.len() {
            let e = end.min(self.end(i));
            f(i, e - t);
            t = e;
            i += 1;
        }
    }
}

/// One interval of an agent's availability within a range.
#[derive(Debug, Clone, Copy)]
struct Span<'a> {
    start: i64,
    end: i64,
    row: &'a Logged,
}

/// Rows grouped by agent: each agent's state at `from` and its rows in order.
struct ByAgent<'a> {
    before: HashMap<&'a str, &'a Logged>,
    rows: HashMap<&'a str, Vec<&'a Logged>>,
}

impl<'a> ByAgent<'a> {
    fn of(h: &'a HistoryRows) -> ByAgent<'a> {
        let before = h.before.iter().map(|l| (l.agent_id.as_str(), l)).collect();
        let mut rows: HashMap<&str, Vec<&Logged>> = HashMap::default();
        for l in &h.rows {
            rows.entry(l.agent_id.as_str()).or_default().push(l);
        }
        ByAgent { before, rows }
    }

    /// The agent's intervals within `[from, upto)`.
    fn spans(&self, agent: &str, from: i64, upto: i64) -> Vec<Span<'a>> {
        let mut out = Vec::new();
        let mut cur = self.before.get(agent).copied();
        let mut t = from;
        for &r in self.rows.get(agent).map(Vec::as_slice).unwrap_or_default() {
            let at = r.at.clamp(from, upto);
            if let Some(row) = cur
                && at > t
            {
                out.push(Span {
                    start: t,
                    end: at,
                    row,
                });
            }
            cur = Some(r);
            t = t.max(at);
        }
        if let Some(row) = cur
            && upto > t
        {
            out.push(Span {
                start: t,
                end: upto,
                row,
            });
        }
        out
    }
}

/// Time in each availability state per agent and per day (`GET
/// /v1/admin/reports/availability`).
pub fn availability(
    agents: &[Member<'_>],
    rows: &HistoryRows,
    r: &Range,
    tz_name: &str,
) -> AvailabilityReport {
    let days = Days::of(r);
    let by = ByAgent::of(rows);
    let upto = r.upto();
    let agents = agents
        .iter()
        .map(|m| {
            let mut total = TimeInStates::default();
            let mut per_day = vec![TimeInStates::default(); days.len()];
            for s in by.spans(m.id, r.from, upto) {
                total.add(s.row.availability, s.end - s.start);
                days.split(s.start, s.end, |d, ms| {
                    per_day[d].add(s.row.availability, ms)
                });
            }
            AgentTime {
                id: m.id.to_owned(),
                name: m.name.to_owned(),
                time: total,
                days: per_day
                    .into_iter()
                    .zip(&days.names)
                    .map(|(time, date)| DayTime {
                        date: date.clone(),
                        time,
                    })
                    .collect(),
            }
        })
        .collect();
    AvailabilityReport {
        from: r.from,
        to: r.to,
        tz: tz_name.to_owned(),
        agents,
    }
}

/// The CSV form of an availability report: a header, then one row per agent and day.
pub fn availability_csv(report: &AvailabilityReport) -> String {
    let mut out =
        String::from("agent_id,agent_name,date,online_ms,busy_ms,offline_ms,signed_out_ms\r\n");
    for a in &report.agents {
        for d in &a.days {
            let t = &d.time;
            out.push_str(&format!(
                "{},{},{},{},{},{},{}\r\n",
                csv_field(&a.id),
                csv_field(&a.name),
                d.date,
                t.online_ms,
                t.busy_ms,
                t.offline_ms,
                t.signed_out_ms
            ));
        }
    }
    out
}

/// A CSV field (RFC 4180): quoted when it holds a separator, a quote or a line break; a
/// leading `=`, `+`, `-` or `@` is prefixed with `'` so a spreadsheet never runs it as a
/// formula.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// One chat box's counters during the replay.
struct View {
    group: Option<String>,
    online: u32,
    busy: u32,
    days: Vec<[i64; 4]>,
}

impl View {
    fn status(&self) -> ChatboxStatus {
        outcome_of(self.online > 0, self.busy > 0).0
    }

    fn count(&mut self, a: Availability, by: i32) {
        let n = match a {
            Availability::Online => &mut self.online,
            Availability::Busy => &mut self.busy,
            _ => return,
        };
        *n = n.saturating_add_signed(by);
    }
}

/// Time within opening hours each chat box (the account's, then each group's) spent online,
/// busy and offline (`GET /v1/admin/reports/coverage`).
pub fn coverage(
    agents: &[Member<'_>],
    groups: &[Group],
    schedule: &WeeklySchedule,
    rows: &HistoryRows,
    r: &Range,
    tz_name: &str,
) -> CoverageReport {
    let days = Days::of(r);
    let upto = r.upto();
    let mut views: Vec<View> = std::iter::once(None)
        .chain(groups.iter().map(|g| Some(g.key.clone())))
        .map(|group| View {
            group,
            online: 0,
            busy: 0,
            days: vec![[0; 4]; days.len()],
        })
        .collect();
    // For each agent (by id): its index, and the views it counts for.
    let index: HashMap<&str, usize> = agents.iter().enumerate().map(|(i, m)| (m.id, i)).collect();
    let counts_for: Vec<Vec<usize>> = agents
        .iter()
        .map(|m| {
            let who = AgentAvailability {
                status: presence_protocol::AgentStatus::Offline,
                groups: m.groups,
                live_sessions: 0,
                until: None,
                then: None,
            };
            std::iter::once(0)
                .chain(
                    groups
                        .iter()
                        .enumerate()
                        .filter(|(_, g)| who.counts_for_group(&g.key))
                        .map(|(i, _)| i + 1),
                )
                .collect()
        })
        .collect();
    let mut state: Vec<Option<Availability>> = vec![None; agents.len()];
    let mut set = |views: &mut [View], k: usize, next: Availability| {
        let prev = state[k].replace(next);
        for &v in &counts_for[k] {
            if let Some(p) = prev {
                views[v].count(p, -1);
            }
            views[v].count(next, 1);
        }
    };
    for l in &rows.before {
        if let Some(&k) = index.get(l.agent_id.as_str()) {
            set(&mut views, k, l.availability);
        }
    }
    let events: Vec<(usize, &Logged)> = rows
        .rows
        .iter()
        .filter_map(|l| index.get(l.agent_id.as_str()).map(|&k| (k, l)))
        .collect();
    let (mut t, mut e) = (r.from, 0);
    let mut open = schedule.is_open(t);
    let mut flip = schedule.next_change_after(t).unwrap_or(i64::MAX);
    while t < upto {
        while let Some(&(k, l)) = events.get(e)
            && l.at <= t
        {
            set(&mut views, k, l.availability);
            e += 1;
        }
        if t >= flip {
            open = schedule.is_open(t);
            flip = schedule.next_change_after(t).unwrap_or(i64::MAX);
        }
        let d = days.index(t);
        let next_event = events.get(e).map_or(i64::MAX, |(_, l)| l.at);
        let end = upto.min(next_event).min(flip).min(days.end(d));
        if open {
            for v in views.iter_mut() {
                let slot = match v.status() {
                    ChatboxStatus::Online => 1,
                    ChatboxStatus::Busy => 2,
                    ChatboxStatus::Offline => 3,
                };
                v.days[d][0] += end - t;
                v.days[d][slot] += end - t;
            }
        }
        t = end;
    }
    let ratio = |open: i64, online: i64, busy: i64| {
        (open > 0).then(|| (online + busy) as f64 / open as f64)
    };
    let chatboxes = views
        .into_iter()
        .map(|v| {
            let sum = v.days.iter().fold([0i64; 4], |mut s, d| {
                for i in 0..4 {
                    s[i] += d[i];
                }
                s
            });
            let no_agents: &'static str = Reason::NoAgentsOnline.into();
            ChatboxCoverage {
                group: v.group,
                open_ms: sum[0],
                online_ms: sum[1],
                busy_ms: sum[2],
                offline_ms: sum[3],
                offline_by_reason: [(no_agents.to_owned(), sum[3])].into_iter().collect(),
                coverage: ratio(sum[0], sum[1], sum[2]),
                days: v
                    .days
                    .iter()
                    .zip(&days.names)
                    .map(|(d, date)| CoverageDay {
                        date: date.clone(),
                        open_ms: d[0],
                        online_ms: d[1],
                        busy_ms: d[2],
                        offline_ms: d[3],
                        coverage: ratio(d[0], d[1], d[2]),
                    })
                    .collect(),
            }
        })
        .collect();
    CoverageReport {
        from: r.from,
        to: r.to,
        tz: tz_name.to_owned(),
        chatboxes,
    }
}

/// An agent's intervals within the range, oldest first; the last one has no end while it is
/// still open (`GET /v1/admin/reports/timeline`, `GET /v1/me/timeline`).
pub fn timeline(agent_id: &str, rows: &HistoryRows, r: &Range) -> TimelineReport {
    let by = ByAgent::of(rows);
    let upto = r.upto();
    let still_open = r.live || r.now < r.to;
    let intervals = by
        .spans(agent_id, r.from, upto)
        .into_iter()
        .map(|s| TimelineInterval {
            start: s.start,
            end: (!(still_open && s.end == upto)).then_some(s.end),
            availability: s.row.availability,
            status: s.row.status,
            cause: s.row.cause,
            ended: s.row.ended,
        })
        .collect();
    TimelineReport {
        agent: agent_id.to_owned(),
        from: r.from,
        to: r.to,
        intervals,
    }
}

#[cfg(test)]
mod tests;

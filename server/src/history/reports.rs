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
//!   [`presence_protocol::resolve::counts_for_group`]), within opening hours only,
//!   with the account's current groups and memberships.

use chrono::{LocalResult, NaiveDate, TimeZone};
use chrono_tz::Tz;
use presence_protocol::resolve::{counts_for_group, outcome_of};
use presence_protocol::{
    AgentTime, Availability, AvailabilityReport, ChatboxCoverage, ChatboxStatus, CoverageDay,
    CoverageReport, DayTime, Group, Reason, TimeInStates, TimelineInterval, TimelineReport,
    WeeklySchedule,
};
use rustc_hash::FxHashMap as HashMap;

use super::query::{HistoryRows, Mark};

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

/// For each agent of `rows`, the member it is (`None`: not listed in this report).
fn slots(rows: &HistoryRows, members: &[Member<'_>]) -> Vec<Option<usize>> {
    let index: HashMap<&str, usize> = members.iter().enumerate().map(|(i, m)| (m.id, i)).collect();
    rows.agents
        .iter()
        .map(|id| index.get(id.as_str()).copied())
        .collect()
}

/// Walks the rows in time order and calls `f(member, state, start, end)` for each interval
/// of each listed agent within `[from, upto)`: one pass, no grouping.
fn intervals(
    rows: &HistoryRows,
    slot: &[Option<usize>],
    members: usize,
    from: i64,
    upto: i64,
    mut f: impl FnMut(usize, &Mark, i64, i64),
) {
    let mut cur: Vec<Option<(Mark, i64)>> = vec![None; members];
    for m in &rows.before {
        if let Some(Some(k)) = slot.get(m.agent as usize) {
            cur[*k] = Some((*m, from));
        }
    }
    for m in &rows.rows {
        let Some(Some(k)) = slot.get(m.agent as usize) else {
            continue;
        };
        let at = m.at.clamp(from, upto);
        let since = match cur[*k] {
            Some((prev, since)) => {
                if at > since {
                    f(*k, &prev, since, at);
                }
                since.max(at)
            }
            None => at,
        };
        cur[*k] = Some((*m, since));
    }
    for (k, c) in cur.iter().enumerate() {
        if let Some((m, since)) = c
            && upto > *since
        {
            f(k, m, *since, upto);
        }
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
    let slot = slots(rows, agents);
    let mut total = vec![TimeInStates::default(); agents.len()];
    let mut per_day = vec![vec![TimeInStates::default(); days.len()]; agents.len()];
    intervals(rows, &slot, agents.len(), r.from, r.upto(), |k, m, s, e| {
        total[k].add(m.availability, e - s);
        let day = &mut per_day[k];
        days.split(s, e, |d, ms| day[d].add(m.availability, ms));
    });
    let agents = agents
        .iter()
        .zip(total)
        .zip(per_day)
        .map(|((m, time), per_day)| AgentTime {
            id: m.id.to_owned(),
            name: m.name.to_owned(),
            time,
            days: per_day
                .into_iter()
                .zip(&days.names)
                .map(|(time, date)| DayTime {
                    date: date.clone(),
                    time,
                })
                .collect(),
        })
        .collect();
    AvailabilityReport {
        from: r.from,
        to: r.to,
        tz: tz_name.to_owned(),
        agents,
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
    // For each agent: the member it is, and the views it counts for.
    let slot = slots(rows, agents);
    let counts_for: Vec<Vec<usize>> = agents
        .iter()
        .map(|m| {
            std::iter::once(0)
                .chain(
                    groups
                        .iter()
                        .enumerate()
                        .filter(|(_, g)| counts_for_group(m.groups, &g.key))
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
    let member = |m: &Mark| slot.get(m.agent as usize).copied().flatten();
    for m in &rows.before {
        if let Some(k) = member(m) {
            set(&mut views, k, m.availability);
        }
    }
    let events: Vec<(usize, &Mark)> = rows
        .rows
        .iter()
        .filter_map(|m| member(m).map(|k| (k, m)))
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
    let upto = r.upto();
    let still_open = r.live || r.now < r.to;
    let slot: Vec<Option<usize>> = rows
        .agents
        .iter()
        .map(|id| (id == agent_id).then_some(0))
        .collect();
    let mut out = Vec::new();
    intervals(rows, &slot, 1, r.from, upto, |_, m, start, end| {
        out.push(TimelineInterval {
            start,
            end: (!(still_open && end == upto)).then_some(end),
            availability: m.availability,
            status: m.status,
            cause: m.cause,
            ended: m.ended,
        });
    });
    TimelineReport {
        agent: agent_id.to_owned(),
        from: r.from,
        to: r.to,
        intervals: out,
    }
}

#[cfg(test)]
mod tests;

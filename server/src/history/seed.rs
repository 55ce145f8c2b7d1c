//! Believable synthetic history: the demo's weeks of past work and the benchmark's 90 days.
//!
//! Guarantees: deterministic for a seed; per agent, rows in time order within `[from, to)`,
//! each one a change from the row before (as [`super::next`] would log); a working day
//! starts by signing in online, moves between online, busy and (once, around midday)
//! offline, and ends signed out; `weekdays_only` leaves weekends signed out.

use chrono::{Datelike, TimeZone, Weekday};
use chrono_tz::Tz;
use presence_protocol::{AgentStatus, Availability, Cause, EndReason};

use super::Logged;

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub from: i64,
    pub to: i64,
    pub tz: Tz,
    /// Rows per agent per working day (at least 2: signing in and out).
    pub changes_per_day: u32,
    pub weekdays_only: bool,
    pub seed: u64,
}

/// SplitMix64: small, fast and good enough for shapes of a working day.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, n)`.
    fn below(&mut self, n: i64) -> i64 {
        (self.next() % n.max(1) as u64) as i64
    }
}

const MINUTE: i64 = 60_000;

fn row(agent: &str, at: i64, availability: Availability, cause: Cause) -> Logged {
    let status = match availability {
        Availability::Online => AgentStatus::Online,
        Availability::Busy => AgentStatus::Busy,
        Availability::Offline => AgentStatus::Offline,
        // Signed out keeps the last status; the generator signs out as online.
        Availability::SignedOut => AgentStatus::Online,
    };
    Logged {
        agent_id: agent.to_owned(),
        at,
        availability,
        status,
        cause,
        ended: (availability == Availability::SignedOut).then_some(EndReason::Logout),
    }
}

/// Rows for each of `agents` over the plan's range, in time order (the order a live server
/// writes them in, so stores lay them out as they would after weeks of real use).
pub fn synthetic(agents: &[&str], plan: &Plan) -> Vec<Logged> {
    let mut out = Vec::new();
    let mut rng = Rng(plan.seed);
    let first = plan
        .tz
        .timestamp_millis_opt(plan.from)
        .single()
        .map(|t| t.date_naive())
        .unwrap_or_default();
    for (n, agent) in agents.iter().enumerate() {
        // Each agent keeps roughly the same hours: an early or a late shift.
        let shift_start = 7 * 60 + (n as i64 % 4) * 45;
        let mut date = first;
        loop {
            let day = super::reports::day_start(plan.tz, date);
            if day >= plan.to {
                break;
            }
            let working =
                !plan.weekdays_only || !matches!(date.weekday(), Weekday::Sat | Weekday::Sun);
            if working {
                day_rows(&mut out, &mut rng, agent, day, shift_start, plan);
            }
            match date.succ_opt() {
                Some(d) => date = d,
                None => break,
            }
        }
    }
    out.sort_by_key(|r| r.at);
    out
}

fn day_rows(
    out: &mut Vec<Logged>,
    rng: &mut Rng,
    agent: &str,
    day: i64,
    start_min: i64,
    plan: &Plan,
) {
    let start = day + (start_min + rng.below(30)) * MINUTE;
    let end = start + (8 * 60 + rng.below(90)) * MINUTE;
    let inner = plan.changes_per_day.max(2) as i64 - 2;
    let mut rows = vec![row(agent, start, Availability::Online, Cause::Manual)];
    // Changes spread over the shift, alternating online and busy, one offline at midday.
    let step = (end - start) / (inner + 1);
    let lunch = inner / 2;
    let mut current = Availability::Online;
    for i in 0..inner {
        let at = start + step * (i + 1) + rng.below(step / 3 + 1);
        let (next, cause) = if i == lunch {
            (Availability::Offline, Cause::Manual)
        } else if current == Availability::Online {
            let cause = if rng.below(5) == 0 {
                Cause::Idle
            } else {
                Cause::Manual
            };
            (Availability::Busy, cause)
        } else {
            let cause = if rng.below(4) == 0 {
                Cause::Timer
            } else {
                Cause::Manual
            };
            (Availability::Online, cause)
        };
        current = next;
        rows.push(row(agent, at, next, cause));
    }
    rows.push(row(agent, end, Availability::SignedOut, Cause::Manual));
    out.extend(
        rows.into_iter()
            .filter(|r| (plan.from..plan.to).contains(&r.at)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_working_day_has_the_asked_number_of_changes_in_order() {
        let plan = Plan {
            from: 1_796_601_600_000, // 2026-12-07 00:00 UTC, a Monday
            to: 1_796_601_600_000 + 7 * 86_400_000,
            tz: chrono_tz::UTC,
            changes_per_day: 40,
            weekdays_only: true,
            seed: 7,
        };
        let rows = synthetic(&["a", "b"], &plan);
        assert_eq!(rows.len(), 2 * 5 * 40, "two agents, five weekdays");
        assert!(rows.windows(2).all(|w| w[0].at <= w[1].at), "in time order");
        let a: Vec<_> = rows.iter().filter(|r| r.agent_id == "a").collect();
        for pair in a.windows(2) {
            assert!(pair[0].at < pair[1].at, "{pair:?}");
            assert_ne!(pair[0].availability, pair[1].availability, "{pair:?}");
        }
        assert_eq!(a[0].availability, Availability::Online);
        assert_eq!(a[39].availability, Availability::SignedOut);
        assert_eq!(synthetic(&["a", "b"], &plan), rows, "deterministic");
    }
}

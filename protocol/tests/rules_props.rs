//! Property tests for the chat box rules (DESIGN rules 1-8) and for opening hours.
//!
//! The schedule properties check `next_change_after` against a brute-force walk over every
//! minute of a three-day window, on random schedules in zones with one-hour, half-hour,
//! midnight and no daylight-saving switches, with windows placed on the 2026 switch days.

use chrono::{DateTime, NaiveDate};
use presence_protocol::{
    AgentAvailability, AgentStatus, ChatboxStatus, ChatboxView, DateException, Group, OpeningHours,
    Reason, TimeRange, WeekDays, WeeklySchedule, resolve,
};
use proptest::prelude::*;

const MINUTE: i64 = 60_000;
const DAY: i64 = 86_400_000;

fn hhmm(minute: u16) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

/// A time of day in minutes: often a quarter hour between 01:00 and 03:30, where the zones
/// used switch (02:00, 02:30, 03:00), otherwise any quarter hour or any minute.
fn minute_of_day() -> impl Strategy<Value = u16> {
    prop_oneof![
        2 => (4u16..15).prop_map(|q| q * 15),
        2 => (0u16..96).prop_map(|q| q * 15),
        1 => 0u16..1440,
    ]
}

/// A range as the admin API takes it; the end may be "24:00" or before the start (overnight).
fn time_range() -> impl Strategy<Value = TimeRange> {
    (
        minute_of_day(),
        prop_oneof![4 => minute_of_day(), 1 => Just(1440u16)],
    )
        .prop_map(|(s, e)| (hhmm(s), hhmm(e)))
}

fn day_ranges() -> impl Strategy<Value = Vec<TimeRange>> {
    prop::collection::vec(time_range(), 0..3)
}

/// A window start: around a 2026 daylight-saving switch of one of the zones, or any day of 2026.
fn window_start() -> impl Strategy<Value = i64> {
    let switch_days = prop::sample::select(vec![
        "2026-03-08", // America/New_York spring forward
        "2026-03-29", // Europe/Prague spring forward
        "2026-04-05", // Australia/Lord_Howe falls back half an hour; America/Santiago falls
        // back at midnight, into the previous date
        "2026-10-04", // Australia/Lord_Howe springs forward half an hour
        "2026-10-25", // Europe/Prague fall back
        "2026-11-01", // America/New_York fall back
        "2026-09-06", // America/Santiago springs forward at midnight
    ])
    .prop_map(|d| {
        let date: NaiveDate = d.parse().unwrap();
        date.and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis()
            - DAY
    });
    let base =
        prop_oneof![3 => switch_days, 1 => (0i64..365).prop_map(|d| 1_767_225_600_000 + d * DAY)];
    // Any millisecond within two days, so instants both on and off minute boundaries occur.
    (base, 0i64..2 * DAY, any::<bool>()).prop_map(|(b, off, on_minute)| {
        if on_minute {
            b + off / MINUTE * MINUTE
        } else {
            b + off
        }
    })
}

fn date_of(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap()
        .date_naive()
        .format("%Y-%m-%d")
        .to_string()
}

/// Random enabled opening hours whose exceptions fall around `start`.
fn opening_hours(start: i64) -> impl Strategy<Value = OpeningHours> {
    let zone = prop::sample::select(vec![
        "Europe/Prague",
        "America/New_York",
        "Australia/Lord_Howe",
        "America/Santiago",
        "Asia/Kolkata",
    ]);
    let week = prop::collection::vec(day_ranges(), 7);
    let exceptions = prop::collection::btree_map(-1i64..4, day_ranges(), 0..3);
    (zone, week, exceptions).prop_map(move |(zone, w, exc)| OpeningHours {
        enabled: true,
        timezone: zone.to_owned(),
        days: WeekDays {
            mon: w[0].clone(),
            tue: w[1].clone(),
            wed: w[2].clone(),
            thu: w[3].clone(),
            fri: w[4].clone(),
            sat: w[5].clone(),
            sun: w[6].clone(),
        },
        exceptions: exc
            .into_iter()
            .map(|(d, ranges)| DateException {
                date: date_of(start + d * DAY),
                ranges,
            })
            .collect(),
    })
}

fn schedule_case() -> impl Strategy<Value = (OpeningHours, i64)> {
    window_start().prop_flat_map(|t| (opening_hours(t), Just(t)))
}

/// The first whole minute after `t`, within three days, at which `is_open` differs from its
/// state at `t`. All zones used change offset on whole minutes, so nothing flips in between.
fn brute_force_next_change(s: &WeeklySchedule, t: i64) -> Option<i64> {
    let state = s.is_open(t);
    let first = t.div_euclid(MINUTE) + 1;
    (first..first + 3 * 1440)
        .map(|k| k * MINUTE)
        .find(|&m| s.is_open(m) != state)
}

// ---------------------------------------------------------------------------------------------
// Agents

const GROUP_KEYS: [&str; 3] = ["sales", "support", "billing"];

#[derive(Debug, Clone)]
struct TestAgent {
    status: AgentStatus,
    groups: Vec<String>,
    live_sessions: usize,
}

impl TestAgent {
    fn view(&self) -> AgentAvailability<'_> {
        AgentAvailability {
            status: self.status,
            groups: &self.groups,
            live_sessions: self.live_sessions,
            until: None,
            then: None,
        }
    }
}

fn agent_status() -> impl Strategy<Value = AgentStatus> {
    prop::sample::select(vec![
        AgentStatus::Online,
        AgentStatus::Busy,
        AgentStatus::Offline,
    ])
}

/// Group keys of an agent: a subset of the known keys, sometimes a key no group has.
fn agent_groups() -> impl Strategy<Value = Vec<String>> {
    (
        prop::collection::vec(any::<bool>(), 3),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(mask, unknown)| {
            let mut g: Vec<String> = GROUP_KEYS
                .iter()
                .zip(mask)
                .filter(|(_, m)| *m)
                .map(|(k, _)| (*k).to_owned())
                .collect();
            if unknown {
                g.push("gone".to_owned());
            }
            g
        })
}

fn test_agent() -> impl Strategy<Value = TestAgent> {
    (agent_status(), agent_groups(), 0usize..3).prop_map(|(status, groups, live_sessions)| {
        TestAgent {
            status,
            groups,
            live_sessions,
        }
    })
}

fn agents() -> impl Strategy<Value = Vec<TestAgent>> {
    prop::collection::vec(test_agent(), 0..8)
}

fn groups() -> impl Strategy<Value = Vec<Group>> {
    (0usize..=3).prop_map(|n| {
        GROUP_KEYS[..n]
            .iter()
            .map(|k| Group {
                key: (*k).to_owned(),
                name: k.to_uppercase(),
            })
            .collect()
    })
}

fn run(groups: &[Group], s: &WeeklySchedule, agents: &[TestAgent], now: i64) -> ChatboxView {
    let views: Vec<AgentAvailability<'_>> = agents.iter().map(TestAgent::view).collect();
    resolve(groups, s, &views, now)
}

fn rank(s: ChatboxStatus) -> u8 {
    match s {
        ChatboxStatus::Offline => 0,
        ChatboxStatus::Busy => 1,
        ChatboxStatus::Online => 2,
    }
}

/// Every status shown, account first, then each group in order.
fn all_statuses(v: &ChatboxView) -> Vec<(ChatboxStatus, Reason)> {
    std::iter::once((v.status, v.reason))
        .chain(v.groups.iter().map(|g| (g.status, g.reason)))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn adding_an_online_agent_never_turns_a_view_offline(
        groups in groups(),
        mut agents in agents(),
        new_groups in agent_groups(),
        live in 1usize..3,
    ) {
        let s = WeeklySchedule::always_open();
        let before = run(&groups, &s, &agents, 0);
        agents.push(TestAgent { status: AgentStatus::Online, groups: new_groups.clone(), live_sessions: live });
        let after = run(&groups, &s, &agents, 0);

        prop_assert_eq!((after.status, after.reason), (ChatboxStatus::Online, Reason::AgentsOnline));
        prop_assert_eq!(before.groups.len(), after.groups.len());
        for (b, a) in all_statuses(&before).into_iter().zip(all_statuses(&after)) {
            prop_assert!(rank(a.0) >= rank(b.0), "{b:?} became {a:?}");
            prop_assert!(a.0 != ChatboxStatus::Offline || b.0 == ChatboxStatus::Offline);
        }
        for g in &after.groups {
            if new_groups.is_empty() || new_groups.contains(&g.key) {
                prop_assert_eq!(g.status, ChatboxStatus::Online, "group {}", g.key);
            }
        }
    }

    #[test]
    fn ungrouped_online_agent_makes_every_group_online(
        groups in groups(),
        mut agents in agents(),
        at in prop::sample::select(vec![0usize, 1, 3]),
        live in 1usize..3,
    ) {
        agents.insert(at.min(agents.len()), TestAgent { status: AgentStatus::Online, groups: vec![], live_sessions: live });
        let v = run(&groups, &WeeklySchedule::always_open(), &agents, 0);
        prop_assert_eq!(v.groups.len(), groups.len());
        for (status, reason) in all_statuses(&v) {
            prop_assert_eq!((status, reason), (ChatboxStatus::Online, Reason::AgentsOnline));
        }
    }

    #[test]
    fn outside_hours_everything_is_offline(
        groups in groups(),
        agents in agents(),
        (oh, now) in schedule_case(),
    ) {
        let s = WeeklySchedule::from_opening_hours(&oh).unwrap();
        let v = run(&groups, &s, &agents, now);
        prop_assert_eq!(v.next_change_at, s.next_change_after(now));
        prop_assert_eq!(v.version, 0);
        let statuses = all_statuses(&v);
        if s.is_open(now) {
            prop_assert!(statuses.iter().all(|(_, r)| *r != Reason::OutsideOpeningHours));
            let always = run(&groups, &WeeklySchedule::always_open(), &agents, now);
            prop_assert!(v.groups == always.groups && (v.status, v.reason) == (always.status, always.reason));
        } else {
            for (status, reason) in statuses {
                prop_assert_eq!((status, reason), (ChatboxStatus::Offline, Reason::OutsideOpeningHours));
            }
        }
    }

    #[test]
    fn always_closed_hours_are_offline_whoever_is_online(
        groups in groups(),
        agents in agents(),
        now in window_start(),
    ) {
        let closed = WeeklySchedule::from_opening_hours(&OpeningHours {
            enabled: true,
            timezone: "Europe/Prague".to_owned(),
            ..OpeningHours::default()
        }).unwrap();
        let v = run(&groups, &closed, &agents, now);
        prop_assert_eq!(v.next_change_at, None);
        for (status, reason) in all_statuses(&v) {
            prop_assert_eq!((status, reason), (ChatboxStatus::Offline, Reason::OutsideOpeningHours));
        }
    }

}

proptest! {
    // Cheap (well under a millisecond a case) and the interesting cases (a range ending inside
    // a fall-back overlap, say) are rare, so run many.
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn next_change_after_matches_a_minute_by_minute_walk((oh, t) in schedule_case()) {
        let s = WeeklySchedule::from_opening_hours(&oh).unwrap();
        let state = s.is_open(t);
        let next = s.next_change_after(t);
        if let Some(n) = next {
            prop_assert!(n > t);
            prop_assert_eq!(s.is_open(n - 1), state, "state just before {}", n);
            prop_assert_ne!(s.is_open(n), state, "state at {}", n);
        }
        match brute_force_next_change(&s, t) {
            Some(expected) => prop_assert_eq!(next, Some(expected)),
            None => prop_assert!(
                next.is_none_or(|n| n > t + 3 * DAY),
                "no change within three days, but next_change_after gave {:?}", next
            ),
        }
    }
}

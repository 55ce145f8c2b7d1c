//! The reports against timelines computed by hand.

use super::*;
use crate::history::Logged;
use crate::history::query::Builder;
use chrono::TimeZone;
use presence_protocol::{AgentStatus, Cause, OpeningHours, WeekDays};

const H: i64 = 3_600_000;

fn at(tz: Tz, y: i32, m: u32, d: u32, h: u32, mi: u32) -> i64 {
    tz.with_ymd_and_hms(y, m, d, h, mi, 0)
        .earliest()
        .unwrap()
        .timestamp_millis()
}

fn utc(y: i32, m: u32, d: u32, h: u32) -> i64 {
    at(chrono_tz::UTC, y, m, d, h, 0)
}

fn row(agent: &str, at: i64, a: Availability) -> Logged {
    let status = match a {
        Availability::Online => AgentStatus::Online,
        Availability::Busy => AgentStatus::Busy,
        _ => AgentStatus::Offline,
    };
    Logged {
        agent_id: agent.into(),
        at,
        availability: a,
        status,
        cause: Cause::Manual,
        ended: None,
    }
}

fn range(from: i64, to: i64, now: i64, tz: Tz) -> Range {
    Range {
        from,
        to,
        now,
        tz,
        live: false,
    }
}

fn member<'a>(id: &'a str, groups: &'a [String]) -> Member<'a> {
    Member {
        id,
        name: id,
        groups,
    }
}

#[test]
fn an_agent_who_never_changed_has_the_whole_range_counted() {
    let t0 = utc(2026, 12, 7, 0);
    let rows = Builder::from_logged(&[row("a", t0 - H, Availability::Online)], &[]);
    let r = range(t0, t0 + 24 * H, t0 + 48 * H, chrono_tz::UTC);
    let rep = availability(&[member("a", &[])], &rows, &r, "UTC");
    assert_eq!(rep.agents[0].time.online_ms, 24 * H);
    assert_eq!(rep.agents[0].time.total_ms(), 24 * H);
    assert_eq!(rep.agents[0].days.len(), 1);
    assert_eq!(rep.agents[0].days[0].date, "2026-12-07");
}

#[test]
fn the_open_interval_is_counted_up_to_now_and_has_no_end_in_the_timeline() {
    let t0 = utc(2026, 12, 7, 0);
    let rows = Builder::from_logged(
        &[row("a", t0 - 1, Availability::Busy)],
        &[
            row("a", t0 + 2 * H, Availability::SignedOut),
            row("a", t0 + 3 * H, Availability::Online),
        ],
    );
    let r = range(t0, t0 + 24 * H, t0 + 5 * H, chrono_tz::UTC);
    let rep = availability(&[member("a", &[])], &rows, &r, "UTC");
    let t = rep.agents[0].time;
    assert_eq!((t.busy_ms, t.signed_out_ms, t.online_ms), (2 * H, H, 2 * H));
    let tl = timeline("a", &rows, &r);
    let spans: Vec<_> = tl
        .intervals
        .iter()
        .map(|i| (i.start, i.end, i.availability))
        .collect();
    assert_eq!(
        spans,
        vec![
            (t0, Some(t0 + 2 * H), Availability::Busy),
            (t0 + 2 * H, Some(t0 + 3 * H), Availability::SignedOut),
            (t0 + 3 * H, None, Availability::Online),
        ]
    );
}

#[test]
fn a_closed_range_gives_every_interval_an_end() {
    let t0 = utc(2026, 12, 7, 0);
    let rows = Builder::from_logged(&[row("a", t0 - 1, Availability::Busy)], &[]);
    let tl = timeline("a", &rows, &range(t0, t0 + H, t0 + 5 * H, chrono_tz::UTC));
    assert_eq!(tl.intervals[0].end, Some(t0 + H));
}

#[test]
fn a_span_across_local_midnight_is_split_there() {
    let tz = chrono_tz::Europe::Berlin;
    let from = at(tz, 2026, 12, 7, 0, 0);
    let rows = Builder::from_logged(
        &[row("a", from - 1, Availability::SignedOut)],
        &[
            row("a", at(tz, 2026, 12, 7, 23, 0), Availability::Online),
            row("a", at(tz, 2026, 12, 8, 1, 30), Availability::Offline),
        ],
    );
    let r = range(from, from + 48 * H, from + 100 * H, tz);
    let rep = availability(&[member("a", &[])], &rows, &r, "Europe/Berlin");
    let days = &rep.agents[0].days;
    assert_eq!(days.len(), 2);
    assert_eq!(days[0].date, "2026-12-07");
    assert_eq!(
        (days[0].time.signed_out_ms, days[0].time.online_ms),
        (23 * H, H)
    );
    assert_eq!(days[1].date, "2026-12-08");
    assert_eq!(
        (days[1].time.online_ms, days[1].time.offline_ms),
        (H + H / 2, 22 * H + H / 2)
    );
}

#[test]
fn dst_days_are_23_and_25_hours_long() {
    let tz = chrono_tz::Europe::Berlin;
    for (m, d, hours) in [(3, 29, 23), (10, 25, 25)] {
        let from = at(tz, 2026, m, d, 0, 0);
        let to = at(tz, 2026, m, d + 1, 0, 0);
        let rows = Builder::from_logged(&[row("a", from - 1, Availability::Online)], &[]);
        let r = range(from, to + 24 * H, to + 100 * H, tz);
        let rep = availability(&[member("a", &[])], &rows, &r, "Europe/Berlin");
        let days = &rep.agents[0].days;
        assert_eq!(days[0].time.online_ms, hours * H, "2026-{m}-{d}");
        assert_eq!(days[1].time.online_ms, 24 * H);
    }
}

#[test]
fn an_agent_created_within_the_range_counts_from_its_first_row() {
    let t0 = utc(2026, 12, 7, 0);
    let rows = Builder::from_logged(
        &[],
        &[
            row("a", t0 + 6 * H, Availability::SignedOut),
            row("a", t0 + 7 * H, Availability::Online),
        ],
    );
    let r = range(t0, t0 + 24 * H, t0 + 8 * H, chrono_tz::UTC);
    let t = availability(&[member("a", &[])], &rows, &r, "UTC").agents[0].time;
    assert_eq!((t.signed_out_ms, t.online_ms, t.total_ms()), (H, H, 2 * H));
}

#[test]
fn rows_of_one_millisecond_leave_only_the_last_state() {
    let t0 = utc(2026, 12, 7, 0);
    let rows = Builder::from_logged(
        &[row("a", t0 - 1, Availability::Online)],
        &[
            row("a", t0 + H, Availability::Busy),
            row("a", t0 + H, Availability::Offline),
        ],
    );
    let r = range(t0, t0 + 2 * H, t0 + 9 * H, chrono_tz::UTC);
    let t = availability(&[member("a", &[])], &rows, &r, "UTC").agents[0].time;
    assert_eq!((t.online_ms, t.busy_ms, t.offline_ms), (H, 0, H));
    assert_eq!(timeline("a", &rows, &r).intervals.len(), 2);
}

fn monday_nine_to_five() -> WeeklySchedule {
    let oh = OpeningHours {
        enabled: true,
        timezone: "UTC".into(),
        days: WeekDays {
            mon: vec![("09:00".into(), "17:00".into())],
            ..WeekDays::default()
        },
        exceptions: vec![],
    };
    WeeklySchedule::from_opening_hours(&oh).unwrap()
}

#[test]
fn coverage_counts_each_chat_box_within_opening_hours_only() {
    // Monday 2026-12-07, open 09:00-17:00 UTC. A (sales): online 08-10, busy 10-12, signed
    // out from 12. B (no group, counts everywhere): online 11-13, offline from 13. C
    // (support) has no row at all.
    let t0 = utc(2026, 12, 7, 0);
    let (sales, support) = (vec!["sales".to_owned()], vec!["support".to_owned()]);
    let agents = [member("a", &sales), member("b", &[]), member("c", &support)];
    let groups = [
        Group {
            key: "sales".into(),
            name: "Sales".into(),
        },
        Group {
            key: "support".into(),
            name: "Support".into(),
        },
    ];
    let rows = Builder::from_logged(
        &[row("b", t0 - 1, Availability::SignedOut)],
        &[
            row("a", t0 + 8 * H, Availability::Online),
            row("a", t0 + 10 * H, Availability::Busy),
            row("b", t0 + 11 * H, Availability::Online),
            row("a", t0 + 12 * H, Availability::SignedOut),
            row("b", t0 + 13 * H, Availability::Offline),
        ],
    );
    let r = range(t0, t0 + 24 * H, t0 + 30 * H, chrono_tz::UTC);
    let rep = coverage(&agents, &groups, &monday_nine_to_five(), &rows, &r, "UTC");
    let got: Vec<_> = rep
        .chatboxes
        .iter()
        .map(|c| {
            (
                c.group.clone(),
                c.open_ms,
                c.online_ms,
                c.busy_ms,
                c.offline_ms,
                c.coverage,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (None, 8 * H, 3 * H, H, 4 * H, Some(0.5)),
            (Some("sales".into()), 8 * H, 3 * H, H, 4 * H, Some(0.5)),
            (Some("support".into()), 8 * H, 2 * H, 0, 6 * H, Some(0.25)),
        ]
    );
    assert_eq!(
        rep.chatboxes[0].offline_by_reason["no_agents_online"],
        4 * H
    );
    assert_eq!(rep.chatboxes[0].days[0].open_ms, 8 * H);
}

#[test]
fn coverage_of_a_range_with_no_opening_hours_is_null() {
    let t0 = utc(2026, 12, 8, 0); // a Tuesday: closed all day
    let rows = Builder::from_logged(&[row("a", t0 - 1, Availability::Online)], &[]);
    let r = range(t0, t0 + 24 * H, t0 + 30 * H, chrono_tz::UTC);
    let rep = coverage(
        &[member("a", &[])],
        &[],
        &monday_nine_to_five(),
        &rows,
        &r,
        "UTC",
    );
    assert_eq!(rep.chatboxes[0].open_ms, 0);
    assert_eq!(rep.chatboxes[0].coverage, None);
}

#[test]
fn csv_has_a_row_per_agent_and_day_and_neutralises_formulas() {
    let t0 = utc(2026, 12, 7, 0);
    let rows = Builder::from_logged(&[row("a", t0 - 1, Availability::Online)], &[]);
    let r = range(t0, t0 + 48 * H, t0 + 99 * H, chrono_tz::UTC);
    let mut rep = availability(&[member("a", &[])], &rows, &r, "UTC");
    rep.agents[0].name = "=SUM(1,2) \"x\"".into();
    let csv = rep.to_csv();
    let lines: Vec<_> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "agent_id,agent_name,date,online_ms,busy_ms,offline_ms,signed_out_ms"
    );
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines[1],
        "a,\"'=SUM(1,2) \"\"x\"\"\",2026-12-07,86400000,0,0,0"
    );
}

//! Automatic away and back: when an agent counts as idle, the change that sets it away, and
//! the change that brings it back.
//!
//! Rules (the contract's "Automatic away and back"):
//! - a session's report is the `idle_ms` of its last heartbeat: the person last touched that
//!   device at `at - idle_ms` ([`Report::last_active`]);
//! - an agent is idle when every live session has reported and the most recent activity over
//!   them is `idle_after_ms` or more ago: it went idle at [`idle_at`], a moment computed from
//!   the reports, not from when the server noticed;
//! - only an `online` agent goes idle ([`went_idle`]): an explicit busy or offline is never
//!   overridden. The idle change sets `idle_status` with cause `idle`, keeps the note, and
//!   ends any timed status (it is a later change);
//! - a report below `idle_after_ms` is activity: if `return_on_activity` and the status is
//!   still the one the idle change set, the agent is `online` again with cause `return`
//!   ([`came_back`]; `online` is the only status that goes idle, so it is the one before).
//!
//! A backend stores each report with the session's renewal, and after every status change
//! of an agent whose account has automatic away it arms a check at [`next_check`]; the check
//! runs [`went_idle`] under the agent's turn, so a report that arrived meanwhile wins.

use std::sync::Arc;

use presence_protocol::{AgentStatus, Cause, IdleSettings, SetStatusResponse, StatusView};

use super::status::{StatusChange, StatusPlan, StatusSlice};
use crate::backend::{BackendError, BackendResult};

/// The largest `idle_ms` a heartbeat may report: 30 days.
pub const MAX_IDLE_MS: i64 = 30 * 86_400_000;

/// What one session last reported: at `at` (server time), the person had not touched the
/// device for `idle_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub at: i64,
    pub idle_ms: i64,
}

impl Report {
    /// When the person last touched the device.
    pub fn last_active(self) -> i64 {
        self.at - self.idle_ms
    }
}

/// What an idle decision reads, beside the agent's status: the account's settings and the
/// last report of each of the agent's live sessions (`None`: that session never reported).
#[derive(Debug, Clone, Default)]
pub struct Activity {
    pub settings: IdleSettings,
    pub reports: Vec<Option<Report>>,
}

/// Checks a heartbeat's `idle_ms`: `422` naming the field when out of bounds.
pub fn check_report(idle_ms: i64) -> BackendResult<()> {
    if !(0..=MAX_IDLE_MS).contains(&idle_ms) {
        return Err(BackendError::invalid_field(
            "idle_ms",
            format!("must be between 0 and {MAX_IDLE_MS}"),
        ));
    }
    Ok(())
}

/// The moment the reports say the agent went (or will go) idle: the latest activity over
/// every live session plus `idle_after_ms`. `None` when automatic away is off, the agent
/// has no live session, or one of them has not reported.
pub fn idle_at(a: &Activity) -> Option<i64> {
    let after = a.settings.idle_after_ms?;
    let mut latest: Option<i64> = None;
    for r in &a.reports {
        let active = r.as_ref()?.last_active();
        latest = Some(latest.map_or(active, |l| l.max(active)));
    }
    latest.map(|l| l + after)
}

/// When a backend should next check whether the agent went idle: at [`idle_at`] while the
/// agent is `online`; never otherwise (a change to online arms it again).
pub fn next_check(a: &Activity, status: &StatusView) -> Option<i64> {
    (status.status == AgentStatus::Online)
        .then(|| idle_at(a))
        .flatten()
}

/// The idle change, if the agent is `online` and the reports say it went idle by `now`:
/// `idle_status` with cause `idle` at the moment they imply (after the current intent).
pub fn went_idle(slice: &StatusSlice, a: &Activity) -> SetStatusResponse {
    let cur = &slice.current;
    let unchanged = || SetStatusResponse {
        applied: false,
        status: cur.clone(),
    };
    let Some(at) = next_check(a, cur).filter(|at| *at <= slice.now) else {
        return unchanged();
    };
    let mut view = StatusView::manual(
        a.settings.idle_status,
        cur.version + 1,
        at.max(cur.intent_at),
        None,
    );
    view.cause = Cause::Idle;
    view.note = cur.note.clone();
    SetStatusResponse {
        applied: true,
        status: view,
    }
}

/// The return, if this report is activity, the account restores on activity, and the
/// status is still the one the idle change set: `online`, cause `return`, now.
pub fn came_back(slice: &StatusSlice, a: &Activity, report: Report) -> Option<SetStatusResponse> {
    let cur = &slice.current;
    let after = a.settings.idle_after_ms?;
    if report.idle_ms >= after || !a.settings.return_on_activity || cur.cause != Cause::Idle {
        return None;
    }
    let mut view = StatusView::manual(
        AgentStatus::Online,
        cur.version + 1,
        slice.now.max(cur.intent_at),
        None,
    );
    view.cause = Cause::Return;
    view.note = cur.note.clone();
    Some(SetStatusResponse {
        applied: true,
        status: view,
    })
}

/// A change made by the server about an agent's activity (no op id of a device: it is never
/// replayed, and recorded only if it applies).
fn server_change(account_id: Arc<str>, agent_id: String) -> StatusChange {
    StatusChange {
        account_id,
        agent_id,
        origin: None,
        op_id: uuid::Uuid::now_v7().to_string(),
        custom_status: None,
        activity: true,
    }
}

/// The change a heartbeat's report makes: the return if it is activity after an idle
/// change, else the idle change if the reports (this one included) already imply it.
pub fn on_report(
    account_id: Arc<str>,
    agent_id: String,
    report: Report,
) -> (StatusChange, StatusPlan) {
    let change = server_change(account_id, agent_id);
    let plan: StatusPlan = Box::new(move |slice| {
        Ok(match &slice.activity {
            Some(a) => came_back(slice, a, report).unwrap_or_else(|| went_idle(slice, a)),
            None => unchanged(slice),
        })
    });
    (change, plan)
}

/// The change a backend's idle check makes: the idle change if the reports imply it by now.
pub fn check(account_id: Arc<str>, agent_id: String) -> (StatusChange, StatusPlan) {
    let change = server_change(account_id, agent_id);
    let plan: StatusPlan = Box::new(move |slice| {
        Ok(match &slice.activity {
            Some(a) => went_idle(slice, a),
            None => unchanged(slice),
        })
    });
    (change, plan)
}

/// Nothing to do: automatic away was turned off since the report or the check was made.
fn unchanged(slice: &StatusSlice) -> SetStatusResponse {
    SetStatusResponse {
        applied: false,
        status: slice.current.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AgentStatus::*;

    const AFTER: i64 = 60_000;

    /// Reports as (at, idle_ms); `None`: a session that never reported.
    type Reports<'a> = &'a [Option<(i64, i64)>];

    fn activity(reports: Reports) -> Activity {
        Activity {
            settings: IdleSettings {
                idle_after_ms: Some(AFTER),
                ..IdleSettings::default()
            },
            reports: reports
                .iter()
                .map(|r| r.map(|(at, idle_ms)| Report { at, idle_ms }))
                .collect(),
        }
    }

    fn slice(now: i64, status: AgentStatus, cause: Cause) -> StatusSlice {
        let mut current = StatusView::manual(status, 3, 1_000, Some("laptop".into()));
        current.cause = cause;
        current.note = Some("on the phones".into());
        StatusSlice {
            now,
            current,
            current_op: "op".into(),
            device: None,
            custom: None,
            activity: None,
        }
    }

    #[test]
    fn an_agent_is_idle_from_the_latest_activity_over_every_session_plus_the_setting() {
        // (reports as (at, idle_ms), idle at)
        let cases: [(Reports, Option<i64>); 5] = [
            (&[Some((100_000, 30_000))], Some(70_000 + AFTER)),
            (
                &[Some((100_000, 30_000)), Some((90_000, 0))],
                Some(90_000 + AFTER),
            ),
            (&[Some((100_000, 30_000)), None], None),
            (&[], None),
            (&[Some((5_000, 5_000))], Some(AFTER)),
        ];
        for (reports, want) in cases {
            assert_eq!(idle_at(&activity(reports)), want, "{reports:?}");
        }
        let mut off = activity(&[Some((1, 0))]);
        off.settings.idle_after_ms = None;
        assert_eq!(idle_at(&off), None, "automatic away off");
    }

    #[test]
    fn only_an_online_agent_goes_idle_at_the_moment_the_reports_imply() {
        let a = activity(&[Some((100_000, 50_000))]);
        let at = 50_000 + AFTER;
        let fired = went_idle(&slice(at + 5, Online, Cause::Manual), &a);
        assert!(fired.applied);
        let v = fired.status;
        assert_eq!(
            (v.status, v.cause, v.intent_at, v.version),
            (Busy, Cause::Idle, at, 4)
        );
        assert_eq!(v.note.as_deref(), Some("on the phones"));
        assert_eq!((v.until, v.changed_by_device), (None, None));
        assert!(
            !went_idle(&slice(at - 1, Online, Cause::Manual), &a).applied,
            "not yet"
        );
        for s in [Busy, Offline] {
            assert!(
                !went_idle(&slice(at + 5, s, Cause::Manual), &a).applied,
                "{s:?} stays"
            );
        }
        let mut offline = a.clone();
        offline.settings.idle_status = Offline;
        assert_eq!(
            went_idle(&slice(at, Online, Cause::Manual), &offline)
                .status
                .status,
            Offline
        );
    }

    #[test]
    fn activity_brings_back_only_the_status_the_idle_change_set() {
        let a = activity(&[Some((200_000, 0))]);
        let report = Report {
            at: 200_000,
            idle_ms: 0,
        };
        let back = came_back(&slice(200_000, Busy, Cause::Idle), &a, report).unwrap();
        let v = back.status;
        assert_eq!(
            (v.status, v.cause, v.intent_at),
            (Online, Cause::Return, 200_000)
        );
        assert_eq!(v.note.as_deref(), Some("on the phones"));
        // Changed by hand since, or a report that is still idle, or return off: no return.
        assert!(came_back(&slice(200_000, Busy, Cause::Manual), &a, report).is_none());
        let idle_report = Report {
            at: 200_000,
            idle_ms: AFTER,
        };
        assert!(came_back(&slice(200_000, Busy, Cause::Idle), &a, idle_report).is_none());
        let mut off = a.clone();
        off.settings.return_on_activity = false;
        assert!(came_back(&slice(200_000, Busy, Cause::Idle), &off, report).is_none());
    }

    #[test]
    fn a_check_is_armed_only_while_online() {
        let a = activity(&[Some((100_000, 0))]);
        let online = StatusView::manual(Online, 1, 0, None);
        assert_eq!(next_check(&a, &online), Some(100_000 + AFTER));
        let busy = StatusView::manual(Busy, 1, 0, None);
        assert_eq!(next_check(&a, &busy), None);
    }

    #[test]
    fn reports_out_of_bounds_name_idle_ms() {
        for (ms, ok) in [
            (-1, false),
            (0, true),
            (MAX_IDLE_MS, true),
            (MAX_IDLE_MS + 1, false),
        ] {
            assert_eq!(check_report(ms).is_ok(), ok, "{ms}");
        }
    }
}

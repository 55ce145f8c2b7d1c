//! Status changes: a device's op, an admin's change and the end of a timed status, planned
//! from the agent's current status.
//!
//! Rules: the latest `intent_at` on the server's time scale wins, ties go to the higher op
//! id, and an intent too far ahead of the server is clamped to now ([`rules::clamp_intent`],
//! [`rules::supersedes`]); an op that loses is answered with the current status, unchanged.
//! An admin's change always applies, just after any intent ahead of now, and carries no
//! device. Every applied change takes the next version. Replays of an op id are answered
//! from the store before planning (the backend looks the op id up under the agent's turn).
//!
//! Time: a change with `duration_ms` ends at `until = intent_at + duration_ms` and becomes
//! `then` (by default the status before it, or that status's own `then` if it was timed); a
//! timed change whose `until` has passed when it arrives is recorded but not applied. At
//! `until` the backend's timer runs [`timer_end`], which applies only if that timed status is
//! still the current one: any later change has already cancelled it.

use std::sync::Arc;

use presence_protocol::{
    AgentStatus, Cause, CustomStatus, SetStatusRequest, SetStatusResponse, StatusTiming, StatusView,
};

use super::idle::Activity;
use crate::backend::{BackendError, BackendResult};
use crate::rules;

/// The shortest timed status.
pub const MIN_DURATION_MS: i64 = 1_000;
/// The longest timed status: 7 days.
pub const MAX_DURATION_MS: i64 = 7 * 86_400_000;
/// The longest note, in characters.
pub const MAX_NOTE_CHARS: usize = 100;

/// Whose status changes, by which op, from which session (none for an admin or the
/// server), which of the account's custom statuses the change names and whether it decides
/// on the agent's activity (the backend loads what it names).
///
/// A device's op is recorded with its answer whether it applied or not (a replay gets the
/// same answer); a change with no origin (an admin's, a timer's, an idle check's) only if it
/// applied: its op id is made once and never replayed.
#[derive(Debug, Clone)]
pub struct StatusChange {
    pub account_id: Arc<str>,
    pub agent_id: String,
    pub origin: Option<Arc<str>>,
    pub op_id: String,
    pub custom_status: Option<String>,
    /// Load [`StatusSlice::activity`].
    pub activity: bool,
}

impl StatusChange {
    /// Whether a backend records this change's answer with its op id.
    pub fn recorded(&self, applied: bool) -> bool {
        Self::recorded_by(self.origin.is_some(), applied)
    }

    /// [`StatusChange::recorded`], for a change already taken apart.
    pub fn recorded_by(from_a_device: bool, applied: bool) -> bool {
        applied || from_a_device
    }
}

/// The plan a backend runs under the agent's turn, on the agent's current status. An error
/// refuses the change: nothing is recorded.
pub type StatusPlan = Box<dyn FnOnce(&StatusSlice) -> BackendResult<SetStatusResponse> + Send>;

/// What a status change reads: the agent's status and the op id that set it, and the
/// device of the session making the change (none for an admin).
#[derive(Debug, Clone)]
pub struct StatusSlice {
    /// The server's time as the backend loaded the slice, under the agent's turn.
    pub now: i64,
    pub current: StatusView,
    pub current_op: String,
    pub device: Option<String>,
    /// The custom status the change names, if the account has it.
    pub custom: Option<CustomStatus>,
    /// The account's automatic-away settings and the agent's sessions' reports, when the
    /// change asks for them.
    pub activity: Option<Activity>,
}

/// Checks what a change says besides its status, where no state is needed: the duration's
/// bounds and the note's length, each a `422` naming its field.
pub fn check_timing(t: &StatusTiming) -> BackendResult<()> {
    if let Some(d) = t.duration_ms
        && !(MIN_DURATION_MS..=MAX_DURATION_MS).contains(&d)
    {
        return Err(BackendError::invalid_field(
            "duration_ms",
            format!("must be between {MIN_DURATION_MS} and {MAX_DURATION_MS} (7 days)"),
        ));
    }
    if let Some(n) = &t.note
        && n.chars().count() > MAX_NOTE_CHARS
    {
        return Err(BackendError::invalid_field(
            "note",
            format!("at most {MAX_NOTE_CHARS} characters"),
        ));
    }
    Ok(())
}

/// Who makes a change: an agent on a device, or an admin.
enum By<'a> {
    Device(Option<String>),
    Admin(&'a str),
}

/// The status a change sets on top of `cur`.
fn next(
    slice: &StatusSlice,
    status: AgentStatus,
    intent_at: i64,
    t: &StatusTiming,
    by: By<'_>,
) -> BackendResult<StatusView> {
    let cur = &slice.current;
    let mut duration_ms = t.duration_ms;
    if let Some(id) = &t.custom_status {
        let custom = slice
            .custom
            .as_ref()
            .filter(|c| c.id == *id)
            .ok_or_else(|| {
                BackendError::invalid_field(
                    "custom_status",
                    format!("the account has no custom status {id:?}"),
                )
            })?;
        if custom.base != status {
            return Err(BackendError::invalid_field(
                "custom_status",
                format!("{id:?} is a {} status, not {status}", custom.base),
            ));
        }
        duration_ms = duration_ms.or(custom.default_duration_ms);
    }
    let until = duration_ms.map(|d| intent_at + d);
    let before = match cur.until {
        Some(_) => cur.then.unwrap_or(cur.status),
        None => cur.status,
    };
    let (cause, changed_by_device, changed_by_agent) = match by {
        By::Device(device) => (Cause::Manual, device, None),
        By::Admin(agent) => (Cause::Admin, None, Some(agent.to_owned())),
    };
    Ok(StatusView {
        status,
        version: cur.version + 1,
        intent_at,
        changed_by_device,
        until,
        then: until.map(|_| t.then.unwrap_or(before)),
        custom_status: t.custom_status.clone(),
        note: t.note.clone().filter(|n| !n.is_empty()),
        cause,
        changed_by_agent,
    })
}

/// A device's op: applied if it is the latest intent (and, when timed, not already over),
/// else the current status unchanged.
pub fn device_op(slice: &StatusSlice, req: &SetStatusRequest) -> BackendResult<SetStatusResponse> {
    let intent_at = rules::clamp_intent(req.intent_at, slice.now);
    let cur = &slice.current;
    let unchanged = || SetStatusResponse {
        applied: false,
        status: cur.clone(),
    };
    if !rules::supersedes(intent_at, &req.op_id, cur.intent_at, &slice.current_op) {
        return Ok(unchanged());
    }
    let view = next(
        slice,
        req.status,
        intent_at,
        &req.timing(),
        By::Device(slice.device.clone()),
    )?;
    if view.until.is_some_and(|until| until <= slice.now) {
        // Made offline and delivered after its end: recorded for its op id, not applied.
        return Ok(unchanged());
    }
    Ok(SetStatusResponse {
        applied: true,
        status: view,
    })
}

/// An admin's change: always applied, after every earlier intent, with no device and the
/// admin's agent id.
pub fn admin_op(
    slice: &StatusSlice,
    status: AgentStatus,
    timing: &StatusTiming,
    admin_agent_id: &str,
) -> BackendResult<StatusView> {
    let intent_at = rules::admin_intent(slice.now, slice.current.intent_at);
    next(slice, status, intent_at, timing, By::Admin(admin_agent_id))
}

/// The change a backend's timer makes at `until` for an agent: a server-made op id, no
/// device, and [`timer_end`] as its plan.
pub fn timer_change(
    account_id: Arc<str>,
    agent_id: String,
    until: i64,
) -> (StatusChange, StatusPlan) {
    let change = StatusChange {
        account_id,
        agent_id,
        origin: None,
        op_id: uuid::Uuid::now_v7().to_string(),
        custom_status: None,
        activity: false,
    };
    (change, Box::new(move |slice| Ok(timer_end(slice, until))))
}

/// The end of a timed status that was to end at `until`: its `then`, with cause `timer` and
/// `intent_at = until`, if that timed status is still the agent's; otherwise nothing.
pub fn timer_end(slice: &StatusSlice, until: i64) -> SetStatusResponse {
    let cur = &slice.current;
    if cur.until != Some(until) {
        return SetStatusResponse {
            applied: false,
            status: cur.clone(),
        };
    }
    let mut view = StatusView::manual(cur.then.unwrap_or(cur.status), cur.version + 1, until, None);
    view.cause = Cause::Timer;
    SetStatusResponse {
        applied: true,
        status: view,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AgentStatus::*;

    fn slice(now: i64, version: i64, intent_at: i64, op: &str) -> StatusSlice {
        StatusSlice {
            now,
            current: StatusView::manual(Online, version, intent_at, Some("old".into())),
            current_op: op.into(),
            device: Some("phone".into()),
            custom: None,
            activity: None,
        }
    }

    fn req(status: AgentStatus, op: &str, intent_at: Option<i64>) -> SetStatusRequest {
        SetStatusRequest::new(status, op, intent_at)
    }

    fn timed(status: AgentStatus, op: &str, at: Option<i64>, d: i64) -> SetStatusRequest {
        SetStatusRequest {
            duration_ms: Some(d),
            ..req(status, op, at)
        }
    }

    #[test]
    fn a_device_op_applies_only_as_the_latest_intent() {
        let now = 1_000_000;
        let far = now + rules::MAX_FUTURE_INTENT_MS + 1;
        // (current intent, current op, request intent, request op, applied, resulting intent)
        let cases = [
            (500, "b", Some(600), "a", true, 600),
            (500, "b", Some(400), "z", false, 500),
            (500, "b", Some(500), "c", true, 500),
            (500, "b", Some(500), "a", false, 500),
            (500, "b", None, "a", true, now),
            (500, "b", Some(far), "a", true, now),
        ];
        for (cur_at, cur_op, at, op, applied, intent) in cases {
            let s = slice(now, 7, cur_at, cur_op);
            let r = device_op(&s, &req(Busy, op, at)).unwrap();
            assert_eq!(r.applied, applied, "{cur_at}/{cur_op} vs {at:?}/{op}");
            assert_eq!(r.status.intent_at, intent);
            if applied {
                assert_eq!(r.status.version, 8);
                assert_eq!(r.status.status, Busy);
                assert_eq!(r.status.changed_by_device.as_deref(), Some("phone"));
                assert_eq!(r.status.cause, Cause::Manual);
            } else {
                assert_eq!(r.status, s.current, "a losing op changes nothing");
            }
        }
    }

    #[test]
    fn an_admin_change_always_applies_after_every_earlier_intent() {
        let now = 1_000;
        for (cur_at, intent) in [(500, now), (now + 4_000, now + 4_001)] {
            let t = StatusTiming::default();
            let v = admin_op(&slice(now, 3, cur_at, "z"), Offline, &t, "agt_admin").unwrap();
            assert_eq!((v.status, v.version, v.intent_at), (Offline, 4, intent));
            assert_eq!(v.changed_by_device, None);
            assert_eq!(v.cause, Cause::Admin);
            assert_eq!(v.changed_by_agent.as_deref(), Some("agt_admin"));
        }
    }

    #[test]
    fn a_timed_status_ends_at_intent_plus_duration_and_then_defaults_to_the_status_before() {
        let now = 10_000;
        // (current status, current then (timed), request then, expected then)
        let cases = [
            (Online, None, None, Online),
            (Offline, None, None, Offline),
            (Busy, Some(Online), None, Online),
            (Online, None, Some(Offline), Offline),
            (Busy, None, Some(Busy), Busy),
        ];
        for (cur, cur_then, then, want) in cases {
            let mut s = slice(now, 1, 9_000, "a");
            s.current.status = cur;
            if let Some(t) = cur_then {
                (s.current.until, s.current.then) = (Some(now + 60_000), Some(t));
            }
            let mut r = timed(Busy, "b", Some(9_500), 30_000);
            r.then = then;
            let got = device_op(&s, &r).unwrap();
            assert!(got.applied);
            assert_eq!(got.status.until, Some(9_500 + 30_000));
            assert_eq!(got.status.then, Some(want), "{cur:?}/{cur_then:?}/{then:?}");
        }
    }

    #[test]
    fn a_timed_change_already_over_when_it_arrives_is_not_applied() {
        let s = slice(100_000, 1, 1_000, "a");
        let late = device_op(&s, &timed(Busy, "b", Some(50_000), 50_000)).unwrap();
        assert!(!late.applied);
        assert_eq!(late.status, s.current);
        let live = device_op(&s, &timed(Busy, "b", Some(50_000), 50_001)).unwrap();
        assert!(live.applied);
    }

    #[test]
    fn the_timer_applies_then_only_while_its_timed_status_is_current() {
        let mut s = slice(1_000, 4, 500, "a");
        (s.current.status, s.current.until, s.current.then) = (Busy, Some(900), Some(Online));
        s.current.note = Some("lunch".into());
        let fired = timer_end(&s, 900);
        assert!(fired.applied);
        let v = fired.status;
        assert_eq!((v.status, v.version, v.intent_at), (Online, 5, 900));
        assert_eq!(
            (v.cause, v.until, v.then, v.note),
            (Cause::Timer, None, None, None)
        );
        // Superseded by a later change (another until, or none): the timer does nothing.
        for until in [Some(950), None] {
            s.current.until = until;
            assert!(!timer_end(&s, 900).applied);
        }
    }

    #[test]
    fn durations_and_notes_out_of_bounds_name_their_field() {
        let t = |d: Option<i64>, note: Option<&str>| StatusTiming {
            duration_ms: d,
            note: note.map(str::to_owned),
            ..StatusTiming::default()
        };
        let long = "x".repeat(101);
        let cases = [
            (t(Some(999), None), Some("duration_ms")),
            (t(Some(1_000), None), None),
            (t(Some(MAX_DURATION_MS), None), None),
            (t(Some(MAX_DURATION_MS + 1), None), Some("duration_ms")),
            (t(None, Some(&"é".repeat(100))), None),
            (t(None, Some(&long)), Some("note")),
        ];
        for (timing, field) in cases {
            match (check_timing(&timing), field) {
                (Ok(()), None) => {}
                (Err(BackendError::InvalidField { field: f, .. }), Some(want)) => {
                    assert_eq!(f, want)
                }
                (got, _) => panic!("{timing:?}: {got:?}"),
            }
        }
    }

    #[test]
    fn a_custom_status_needs_its_base_and_lends_its_default_duration() {
        let mut s = slice(1_000, 1, 500, "a");
        s.custom = Some(CustomStatus {
            id: "lunch".into(),
            label: "Lunch".into(),
            emoji: None,
            base: Busy,
            default_duration_ms: Some(3_600_000),
        });
        let with = |status, d: Option<i64>| SetStatusRequest {
            custom_status: Some("lunch".into()),
            duration_ms: d,
            ..req(status, "b", None)
        };
        let got = device_op(&s, &with(Busy, None)).unwrap().status;
        assert_eq!(got.custom_status.as_deref(), Some("lunch"));
        assert_eq!(got.until, Some(1_000 + 3_600_000));
        let own = device_op(&s, &with(Busy, Some(60_000))).unwrap().status;
        assert_eq!(
            own.until,
            Some(1_000 + 60_000),
            "the change's own duration wins"
        );
        assert!(matches!(
            device_op(&s, &with(Online, None)),
            Err(BackendError::InvalidField { field, .. }) if field == "custom_status"
        ));
    }

    #[test]
    fn an_unknown_custom_status_is_refused() {
        let s = slice(1_000, 1, 500, "a");
        let mut r = req(Busy, "b", None);
        r.custom_status = Some("lunch".into());
        assert!(matches!(
            device_op(&s, &r),
            Err(BackendError::InvalidField { field, .. }) if field == "custom_status"
        ));
    }
}

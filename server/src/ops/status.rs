//! Status changes: a device's op and an admin's change, planned from the agent's current
//! status.
//!
//! Rules: the latest `intent_at` on the server's time scale wins, ties go to the higher op
//! id, and an intent too far ahead of the server is clamped to now ([`rules::clamp_intent`],
//! [`rules::supersedes`]); an op that loses is answered with the current status, unchanged.
//! An admin's change always applies, just after any intent ahead of now, and carries no
//! device. Every applied change takes the next version. Replays of an op id are answered
//! from the store before planning (the backend looks the op id up under the agent's turn).

use std::sync::Arc;

use presence_protocol::{AgentStatus, SetStatusRequest, SetStatusResponse, StatusView};

use crate::rules;

/// Whose status changes, by which op, from which session (none for an admin).
#[derive(Debug, Clone)]
pub struct StatusChange {
    pub account_id: Arc<str>,
    pub agent_id: String,
    pub origin: Option<Arc<str>>,
    pub op_id: String,
}

/// The plan a backend runs under the agent's turn, on the agent's current status.
pub type StatusPlan = Box<dyn FnOnce(&StatusSlice) -> SetStatusResponse + Send>;

/// What a status change reads: the agent's status and the op id that set it, and the
/// device of the session making the change (none for an admin).
#[derive(Debug, Clone)]
pub struct StatusSlice {
    /// The server's time as the backend loaded the slice, under the agent's turn.
    pub now: i64,
    pub current: StatusView,
    pub current_op: String,
    pub device: Option<String>,
}

/// A device's op: applied if it is the latest intent, else the current status unchanged.
pub fn device_op(slice: &StatusSlice, req: &SetStatusRequest) -> SetStatusResponse {
    let intent_at = rules::clamp_intent(req.intent_at, slice.now);
    let cur = &slice.current;
    if rules::supersedes(intent_at, &req.op_id, cur.intent_at, &slice.current_op) {
        SetStatusResponse {
            applied: true,
            status: StatusView {
                status: req.status,
                version: cur.version + 1,
                intent_at,
                changed_by_device: slice.device.clone(),
            },
        }
    } else {
        SetStatusResponse {
            applied: false,
            status: cur.clone(),
        }
    }
}

/// An admin's change: always applied, after every earlier intent, with no device.
pub fn admin_op(slice: &StatusSlice, status: AgentStatus) -> StatusView {
    StatusView {
        status,
        version: slice.current.version + 1,
        intent_at: rules::admin_intent(slice.now, slice.current.intent_at),
        changed_by_device: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AgentStatus::*;

    fn slice(now: i64, version: i64, intent_at: i64, op: &str) -> StatusSlice {
        StatusSlice {
            now,
            current: StatusView {
                status: Online,
                version,
                intent_at,
                changed_by_device: Some("old".into()),
            },
            current_op: op.into(),
            device: Some("phone".into()),
        }
    }

    fn req(status: AgentStatus, op: &str, intent_at: Option<i64>) -> SetStatusRequest {
        SetStatusRequest {
            status,
            op_id: op.into(),
            intent_at,
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
            let r = device_op(&s, &req(Busy, op, at));
            assert_eq!(r.applied, applied, "{cur_at}/{cur_op} vs {at:?}/{op}");
            assert_eq!(r.status.intent_at, intent);
            if applied {
                assert_eq!(r.status.version, 8);
                assert_eq!(r.status.status, Busy);
                assert_eq!(r.status.changed_by_device.as_deref(), Some("phone"));
            } else {
                assert_eq!(r.status, s.current, "a losing op changes nothing");
            }
        }
    }

    #[test]
    fn an_admin_change_always_applies_after_every_earlier_intent() {
        let now = 1_000;
        for (cur_at, intent) in [(500, now), (now + 4_000, now + 4_001)] {
            let v = admin_op(&slice(now, 3, cur_at, "z"), Offline);
            assert_eq!((v.status, v.version, v.intent_at), (Offline, 4, intent));
            assert_eq!(v.changed_by_device, None);
        }
    }
}

//! The account's events, built once for every backend: what each change records, and how a
//! stored event reads on the wire.
//!
//! Guarantees: each builder gives the contract's data shape for its type; a backend stores
//! the event in the transaction of the change that caused it (a `chatbox.view` right after
//! the view it carries is published), with the account's next `seq`.

use chrono::{DateTime, SecondsFormat};
use presence_protocol::{
    AccountEvent, AgentAvailabilityData, AgentStatusData, ChatboxView, ChatboxViewData, Device,
    EndReason, EventType, SessionData, StatusView,
};

use super::Logged;

/// How long events are kept for a stream to resume from: 7 days, or the history's
/// retention when that is shorter (reports read the availability log, kept for that).
pub const EVENT_RETENTION_MS: i64 = 7 * 86_400_000;

/// An event to record; the backend gives it its `seq`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub kind: EventType,
    pub at: i64,
    /// The data, as JSON text.
    pub data: String,
}

fn event(kind: EventType, at: i64, data: &impl serde::Serialize) -> NewEvent {
    NewEvent {
        kind,
        at,
        data: serde_json::to_string(data).unwrap_or_else(|_| "{}".to_owned()),
    }
}

/// `agent.status`: a status change applied at `at`.
pub fn status(agent_id: &str, status: &StatusView, at: i64) -> NewEvent {
    event(
        EventType::AgentStatus,
        at,
        &AgentStatusData {
            agent_id: agent_id.to_owned(),
            status: status.clone(),
        },
    )
}

/// `agent.availability`, for a logged row whose availability differs from the row before
/// (`None` when only the status changed).
pub fn availability(
    row: &Logged,
    before: Option<presence_protocol::Availability>,
) -> Option<NewEvent> {
    (before != Some(row.availability)).then(|| {
        event(
            EventType::AgentAvailability,
            row.at,
            &AgentAvailabilityData {
                agent_id: row.agent_id.clone(),
                availability: row.availability,
                cause: row.cause,
                ended: row.ended,
            },
        )
    })
}

/// `session.started` or (with its reason) `session.ended`.
pub fn session(
    agent_id: &str,
    session_id: &str,
    device: &Device,
    ended: Option<EndReason>,
    at: i64,
) -> NewEvent {
    event(
        match ended {
            None => EventType::SessionStarted,
            Some(_) => EventType::SessionEnded,
        },
        at,
        &SessionData {
            agent_id: agent_id.to_owned(),
            session_id: session_id.to_owned(),
            device: device.clone(),
            reason: ended,
        },
    )
}

/// `chatbox.view`: the account's view, as published at `at`.
pub fn view(view: &ChatboxView, at: i64) -> NewEvent {
    event(
        EventType::ChatboxView,
        at,
        &ChatboxViewData { view: view.clone() },
    )
}

/// An event as stored: its `seq`, type, time and data.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub seq: i64,
    pub kind: EventType,
    pub at: i64,
    pub data: String,
}

/// RFC 3339 in UTC with milliseconds (`2026-12-07T09:30:00.125Z`).
pub fn rfc3339(at: i64) -> String {
    DateTime::from_timestamp_millis(at)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl Stored {
    /// The event as the wire shows it, for the account `slug`.
    pub fn to_wire(&self, slug: &str) -> AccountEvent {
        AccountEvent {
            kind: self.kind,
            timestamp: rfc3339(self.at),
            account: slug.to_owned(),
            seq: self.seq,
            data: serde_json::from_str(&self.data).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use presence_protocol::{AgentStatus, Availability, Cause};

    #[test]
    fn an_availability_event_is_made_only_when_the_availability_changed() {
        let row = Logged {
            agent_id: "a".into(),
            at: 5,
            availability: Availability::Busy,
            status: AgentStatus::Busy,
            cause: Cause::Idle,
            ended: None,
        };
        assert!(availability(&row, Some(Availability::Busy)).is_none());
        let e = availability(&row, Some(Availability::Online)).unwrap();
        assert_eq!(e.kind, EventType::AgentAvailability);
        let v: serde_json::Value = serde_json::from_str(&e.data).unwrap();
        assert_eq!(v["availability"], "busy");
        assert_eq!(v["cause"], "idle");
    }

    #[test]
    fn a_stored_event_reads_as_the_contract_s_body() {
        let e = Stored {
            seq: 7,
            kind: EventType::ChatboxView,
            at: 1_796_000_000_125,
            data: "{\"view\":null}".into(),
        };
        let v = serde_json::to_value(e.to_wire("acme")).unwrap();
        assert_eq!(v["type"], "chatbox.view");
        assert_eq!(v["seq"], 7);
        assert_eq!(v["account"], "acme");
        assert_eq!(v["timestamp"], "2026-11-30T00:53:20.125Z");
    }
}

//! The account's events (PROTOCOL.md, third part, "Events to the customer's backend"): the
//! one model that feeds `GET /v1/admin/events`, the `GET /v1/admin/presence` snapshot and
//! webhooks.
//!
//! What it guarantees: the shapes are the wire contract's; `seq` is the account's event
//! number, one more for every event.

use serde::{Deserialize, Serialize};

use crate::{Availability, Cause, ChatboxView, Device, EndReason, Millis, StatusView};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(strum::IntoStaticStr, strum::EnumString, strum::EnumIter)]
pub enum EventType {
    /// An agent's status changed: `{"agent_id", "status": StatusView}`.
    #[serde(rename = "agent.status")]
    #[strum(serialize = "agent.status")]
    AgentStatus,
    /// Whether an agent counts for the chat box changed: `{"agent_id", "availability",
    /// "cause"}`.
    #[serde(rename = "agent.availability")]
    #[strum(serialize = "agent.availability")]
    AgentAvailability,
    /// The account's chat box view changed: `{"view": ChatboxView}`.
    #[serde(rename = "chatbox.view")]
    #[strum(serialize = "chatbox.view")]
    ChatboxView,
    /// A session began: `{"agent_id", "session_id", "device"}`.
    #[serde(rename = "session.started")]
    #[strum(serialize = "session.started")]
    SessionStarted,
    /// A session ended: `{"agent_id", "session_id", "device", "reason"}`.
    #[serde(rename = "session.ended")]
    #[strum(serialize = "session.ended")]
    SessionEnded,
}

impl EventType {
    /// The wire name (`agent.status`, ...).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }
}

/// One event of an account, as streamed and delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountEvent {
    #[serde(rename = "type")]
    pub kind: EventType,
    /// RFC 3339, milliseconds, UTC.
    pub timestamp: String,
    /// The account's slug.
    pub account: String,
    pub seq: i64,
    /// The event's data (its shape is named by `type`).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: serde_json::Value,
}

/// `agent.status` data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentStatusData {
    pub agent_id: String,
    pub status: StatusView,
}

/// `agent.availability` data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentAvailabilityData {
    pub agent_id: String,
    pub availability: Availability,
    /// Why the agent's status is what it is.
    pub cause: Cause,
    /// For `signed_out`: how the last session ended.
    #[serde(default)]
    pub ended: Option<EndReason>,
}

/// `chatbox.view` data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChatboxViewData {
    pub view: ChatboxView,
}

/// `session.started` and `session.ended` data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionData {
    pub agent_id: String,
    pub session_id: String,
    pub device: Device,
    /// `session.ended` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<EndReason>,
}

/// One agent in a presence snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PresenceAgent {
    pub id: String,
    pub name: String,
    pub groups: Vec<String>,
    pub status: StatusView,
    pub availability: Availability,
    /// Since when the agent has had this availability and status (null: not known).
    pub since: Option<Millis>,
    /// The devices of its live sessions.
    pub devices: Vec<Device>,
}

/// `GET /v1/admin/presence`, and the `snapshot` event of `GET /v1/admin/events`: every agent
/// and the chat box, consistent with the account's events up to `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PresenceSnapshot {
    pub seq: i64,
    pub agents: Vec<PresenceAgent>,
    pub chatbox: ChatboxView,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_use_their_dotted_wire_names() {
        assert_eq!(EventType::AgentStatus.as_str(), "agent.status");
        assert_eq!(
            serde_json::to_value(EventType::SessionEnded).unwrap(),
            "session.ended"
        );
        assert_eq!(
            EventType::parse("chatbox.view"),
            Some(EventType::ChatboxView)
        );
        assert_eq!(EventType::parse("agent_status"), None);
    }
}

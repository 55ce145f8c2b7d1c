//! [`ClientSnapshot`]: everything a UI shows, in the field names of the snapshot contract.
//!
//! The FFI records, the Kotlin and Swift wrappers and `presence show --json` all use exactly
//! these names, so the serde shape here *is* the contract:
//!
//! ```text
//! session:    {state: "logged_out"|"active"|"expired", agent: Agent|null, account: slug|null,
//!              session_id: string|null}
//! status:     {current: AgentStatus, confirmed: AgentStatus, version: int, pending: bool,
//!              until: int|null, then: AgentStatus|null, custom_status: string|null,
//!              note: string|null, cause: Cause, changed_by_agent: string|null} | null
//! chatbox:    ChatboxView | null                  (with back_at, per group too)
//! custom_statuses: [CustomStatus]                 (the account's; [] when unknown)
//! connection: "connected" | "connecting" | "offline" | "no_network"
//! lifecycle:  "active" | "background"
//! lease_until: int | null
//! outbox:     {pending: int, wedged: [{op_id, kind, code, detail}]}
//! last_error: {code, detail} | null
//! ```

use presence_protocol::{Agent, AgentStatus, Cause, ChatboxView, CustomStatus, Millis, Mode};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSnapshot {
    pub session: SessionSnapshot,
    pub status: Option<StatusSnapshot>,
    pub chatbox: Option<ChatboxView>,
    /// The account's custom statuses, as `/v1/me` last listed them.
    pub custom_statuses: Vec<CustomStatus>,
    pub connection: Connection,
    pub lifecycle: Lifecycle,
    /// When this device's session lease ends, on the server's clock.
    pub lease_until: Option<Millis>,
    pub outbox: OutboxSnapshot,
    pub last_error: Option<LastError>,
}

impl ClientSnapshot {
    pub(crate) fn logged_out() -> ClientSnapshot {
        ClientSnapshot {
            session: SessionSnapshot {
                state: SessionState::LoggedOut,
                agent: None,
                account: None,
                session_id: None,
            },
            status: None,
            chatbox: None,
            custom_statuses: Vec::new(),
            connection: Connection::Offline,
            lifecycle: Lifecycle::Active,
            lease_until: None,
            outbox: OutboxSnapshot {
                pending: 0,
                wedged: Vec::new(),
            },
            last_error: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSnapshot {
    pub state: SessionState,
    pub agent: Option<Agent>,
    /// The account's slug.
    pub account: Option<String>,
    pub session_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    LoggedOut,
    Active,
    /// The server ended the session (or rejected its token): log in again. Unsent changes
    /// are kept and delivered after logging in again as the same agent.
    Expired,
}

/// The agent's status. `current` and the fields after `pending` describe the status shown:
/// the change pending on this device (as the server will make it) until it is acknowledged,
/// else the server's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusSnapshot {
    /// What the agent chose last on this device, or the server's status when nothing is
    /// pending. Shown in the UI.
    pub current: AgentStatus,
    /// The server's status as last heard.
    pub confirmed: AgentStatus,
    /// Version of `confirmed` (grows with every applied change).
    pub version: i64,
    /// A change of this device is stored but not yet acknowledged.
    pub pending: bool,
    /// When the status shown ends (server clock, ms); `None` when it is not timed.
    pub until: Option<Millis>,
    /// What it becomes at `until`.
    pub then: Option<AgentStatus>,
    /// The id of one of the account's custom statuses (see `custom_statuses`).
    pub custom_status: Option<String>,
    /// The agent's note for teammates.
    pub note: Option<String>,
    /// Why the status is what it is (`manual` for a pending change).
    pub cause: Cause,
    /// The admin who set it, if one did.
    pub changed_by_agent: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Connection {
    /// Active: the event stream is open. Background: the last request got through.
    Connected,
    /// Trying to reach the server (first attempt or reconnecting).
    Connecting,
    /// The server is unreachable (or nothing to connect to: logged out).
    Offline,
    /// The OS said there is no network; nothing is attempted until it says otherwise.
    NoNetwork,
}

/// What the host app is doing, as reported with
/// [`set_lifecycle`](crate::PresenceClient::set_lifecycle).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    /// In the foreground: frequent heartbeats and a live event stream.
    #[default]
    Active,
    /// Backgrounded: a long background lease kept alive by renew pushes, no event stream.
    Background,
}

impl Lifecycle {
    pub fn mode(self) -> Mode {
        match self {
            Lifecycle::Active => Mode::Active,
            Lifecycle::Background => Mode::Background,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxSnapshot {
    /// Changes stored and waiting for delivery (not counting wedged ones).
    pub pending: u32,
    /// Changes the server refused; the user retries or discards each.
    pub wedged: Vec<WedgedOp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WedgedOp {
    pub op_id: String,
    pub kind: OpKind,
    /// The server's error code, e.g. `invalid_field`.
    pub code: String,
    pub detail: String,
}

/// What an outbox op does. Its wire name (serde's and strum's, one case rule) is also the
/// outbox table's `kind` column.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum OpKind {
    /// `PUT /v1/me/status`
    SetStatus,
    /// `DELETE /v1/session` for a session already logged out locally.
    EndSession,
    /// `PUT /v1/session/push`
    RegisterPush,
}

impl OpKind {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn parse(s: &str) -> Option<OpKind> {
        s.parse().ok()
    }
}

/// The most recent failure worth showing, `{code, detail}`. Cleared by the next success of
/// the same kind of work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastError {
    pub code: String,
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use presence_protocol::{ChatboxStatus, Reason, Role};

    #[test]
    fn op_kind_names_are_serdes() {
        use strum::IntoEnumIterator;
        for k in OpKind::iter() {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
            assert_eq!(OpKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(OpKind::SetStatus.as_str(), "set_status");
    }

    #[test]
    fn snapshot_serializes_to_the_contract_field_names() {
        let mut s = ClientSnapshot::logged_out();
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            serde_json::json!({
                "session": {"state": "logged_out", "agent": null, "account": null, "session_id": null},
                "status": null,
                "chatbox": null,
                "custom_statuses": [],
                "connection": "offline",
                "lifecycle": "active",
                "lease_until": null,
                "outbox": {"pending": 0, "wedged": []},
                "last_error": null
            })
        );
        s.session = SessionSnapshot {
            state: SessionState::Active,
            agent: Some(Agent {
                id: "a1".into(),
                name: "Ann".into(),
                email: "ann@example.com".into(),
                groups: vec![],
                role: Role::Owner,
            }),
            account: Some("acme".into()),
            session_id: Some("s1".into()),
        };
        s.status = Some(StatusSnapshot {
            current: AgentStatus::Busy,
            confirmed: AgentStatus::Online,
            version: 3,
            pending: true,
            until: Some(4_000),
            then: Some(AgentStatus::Online),
            custom_status: Some("lunch".into()),
            note: Some("back soon".into()),
            cause: Cause::Manual,
            changed_by_agent: None,
        });
        s.custom_statuses = vec![CustomStatus {
            id: "lunch".into(),
            label: "Lunch".into(),
            emoji: Some("🥪".into()),
            base: AgentStatus::Busy,
            default_duration_ms: Some(3_600_000),
        }];
        s.chatbox = Some(ChatboxView {
            status: ChatboxStatus::Online,
            reason: Reason::AgentsOnline,
            version: 9,
            next_change_at: None,
            groups: vec![],
            message: None,
            back_at: None,
        });
        s.connection = Connection::NoNetwork;
        s.lifecycle = Lifecycle::Background;
        s.lease_until = Some(123);
        s.outbox = OutboxSnapshot {
            pending: 1,
            wedged: vec![WedgedOp {
                op_id: "o1".into(),
                kind: OpKind::SetStatus,
                code: "invalid_field".into(),
                detail: "status".into(),
            }],
        };
        s.last_error = Some(LastError {
            code: "timeout".into(),
            detail: "x".into(),
        });
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["session"]["state"], "active");
        assert_eq!(v["session"]["agent"]["role"], "owner");
        assert_eq!(
            v["status"],
            serde_json::json!({"current": "busy", "confirmed": "online", "version": 3, "pending": true,
                               "until": 4_000, "then": "online", "custom_status": "lunch",
                               "note": "back soon", "cause": "manual", "changed_by_agent": null})
        );
        assert_eq!(
            v["custom_statuses"][0],
            serde_json::json!({"id": "lunch", "label": "Lunch", "emoji": "🥪", "base": "busy",
                               "default_duration_ms": 3_600_000})
        );
        assert_eq!(v["chatbox"]["reason"], "agents_online");
        assert_eq!(v["connection"], "no_network");
        assert_eq!(v["lifecycle"], "background");
        assert_eq!(
            v["outbox"]["wedged"][0],
            serde_json::json!({"op_id": "o1", "kind": "set_status", "code": "invalid_field", "detail": "status"})
        );
        assert_eq!(
            v["last_error"],
            serde_json::json!({"code": "timeout", "detail": "x"})
        );
        let back: ClientSnapshot = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
    }
}

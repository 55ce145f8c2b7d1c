//! Records and enums of the snapshot contract (presence-core's `ClientSnapshot`) and of the
//! protocol types it embeds, with the conversions from and to presence-core.
//!
//! Field names are the contract's (`session`, `status`, `chatbox`, `connection`, `lifecycle`,
//! `lease_until`, `outbox`, `last_error`); the generated code renders them in each language's
//! case (`leaseUntil` in Kotlin and Swift). Times are milliseconds since the Unix epoch on the
//! server's clock.

use std::path::PathBuf;
use std::time::Duration;

use presence_core as core;

// The plain enums cross as presence-core's and presence-protocol's own types: `remote`
// derives uniffi's converters for them here, in this crate's namespace, so the generated
// Kotlin and Swift keep their names (`dev.presence.AgentStatus`, `Presence.AgentStatus`).
// Deriving in the defining crates instead would put them in namespaces of their own
// (another Kotlin package, another Swift module). The variants listed below are checked
// against the real enums by the compiler (the generated converters match on them), and no
// conversion is written by hand.
pub use presence_core::{
    AgentStatus, Cause, ChatboxStatus, Connection, CustomStatus, Lifecycle, OpKind, Platform,
    PushProvider, Reason, SessionState, UnifiedPushKeys,
};
pub use presence_protocol::Role;

/// What an agent chose to be.
#[uniffi::remote(Enum)]
pub enum AgentStatus {
    Online,
    Busy,
    Offline,
}

/// Why an agent's status is what it is.
#[uniffi::remote(Enum)]
pub enum Cause {
    /// The agent, on a device.
    Manual,
    /// An admin (or an API key).
    Admin,
    /// A timed status ended.
    Timer,
    /// The agent went idle (automatic away).
    Idle,
    /// The agent came back from idle.
    Return,
}

/// One of the account's custom statuses: a named flavour of a base status ("Lunch", busy,
/// 1 h).
#[uniffi::remote(Record)]
pub struct CustomStatus {
    pub id: String,
    pub label: String,
    pub emoji: Option<String>,
    /// The status an agent has while this custom status is theirs.
    pub base: AgentStatus,
    /// How long it lasts when a change names no duration.
    pub default_duration_ms: Option<i64>,
}

/// A status change: the status, and optionally how long it lasts (1 000 ms to 7 days), what
/// follows it (default: the status before it), one of the account's custom statuses (whose
/// base must be `status`; without a duration its default duration applies) and a note for
/// teammates (at most 100 characters).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct StatusRequest {
    pub status: AgentStatus,
    #[uniffi(default = None)]
    pub duration_ms: Option<i64>,
    #[uniffi(default = None)]
    pub then: Option<AgentStatus>,
    #[uniffi(default = None)]
    pub custom_status: Option<String>,
    #[uniffi(default = None)]
    pub note: Option<String>,
}

impl From<StatusRequest> for core::StatusRequest {
    fn from(r: StatusRequest) -> Self {
        core::StatusRequest {
            status: r.status,
            duration_ms: r.duration_ms,
            then: r.then,
            custom_status: r.custom_status,
            note: r.note,
        }
    }
}

/// One applied change of the agent's status, as the status log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct StatusLogEntry {
    pub status: AgentStatus,
    pub version: i64,
    pub intent_at: i64,
    pub until: Option<i64>,
    pub then: Option<AgentStatus>,
    pub custom_status: Option<String>,
    pub note: Option<String>,
    pub cause: Cause,
    pub changed_by_device: Option<String>,
    pub changed_by_agent: Option<String>,
    /// When the server applied it (server clock, ms).
    pub applied_at: i64,
}

/// A page of the status log, newest first; pass `next` as `after` for the page after it
/// (`None`: this was the last).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct StatusLogPage {
    pub entries: Vec<StatusLogEntry>,
    pub next: Option<String>,
}

impl From<core::StatusLogPage> for StatusLogPage {
    fn from(p: core::StatusLogPage) -> Self {
        StatusLogPage {
            entries: p
                .entries
                .into_iter()
                .map(|e| StatusLogEntry {
                    status: e.status.status,
                    version: e.status.version,
                    intent_at: e.status.intent_at,
                    until: e.status.until,
                    then: e.status.then,
                    custom_status: e.status.custom_status,
                    note: e.status.note,
                    cause: e.status.cause,
                    changed_by_device: e.status.changed_by_device,
                    changed_by_agent: e.status.changed_by_agent,
                    applied_at: e.applied_at,
                })
                .collect(),
            next: p.next,
        }
    }
}

/// What a chat box shows.
#[uniffi::remote(Enum)]
pub enum ChatboxStatus {
    Online,
    Busy,
    Offline,
}

/// Why a chat box shows what it shows.
#[uniffi::remote(Enum)]
pub enum Reason {
    AgentsOnline,
    AgentsBusy,
    NoAgentsOnline,
    OutsideOpeningHours,
}

#[uniffi::remote(Enum)]
pub enum Role {
    Owner,
    Admin,
    Agent,
}

#[uniffi::remote(Enum)]
pub enum Platform {
    Android,
    Ios,
    Desktop,
    Web,
    Cli,
}

#[uniffi::remote(Enum)]
pub enum PushProvider {
    Webhook,
    Fcm,
    Apns,
    Unifiedpush,
}

/// The keys a UnifiedPush distributor gave the app for its endpoint (RFC 8291), base64url.
#[uniffi::remote(Record)]
pub struct UnifiedPushKeys {
    /// The device's P-256 public key (65-byte uncompressed point).
    pub p256dh: String,
    /// The 16-byte auth secret.
    pub auth: String,
}

#[uniffi::remote(Enum)]
pub enum SessionState {
    LoggedOut,
    Active,
    /// The server ended the session: log in again. Unsent changes are kept.
    Expired,
}

#[uniffi::remote(Enum)]
pub enum Connection {
    /// Active: the event stream is open. Background: the last request got through.
    Connected,
    /// Trying to reach the server.
    Connecting,
    /// The server is unreachable, or there is nothing to connect to (logged out).
    Offline,
    /// The OS said there is no network; nothing is attempted until it says otherwise.
    NoNetwork,
}

/// What the host app is doing: foreground (`Active`) or background.
#[uniffi::remote(Enum)]
pub enum Lifecycle {
    Active,
    Background,
}

/// What an outbox op does.
#[uniffi::remote(Enum)]
pub enum OpKind {
    SetStatus,
    EndSession,
    RegisterPush,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Agent {
    pub id: String,
    pub name: String,
    pub email: String,
    pub groups: Vec<String>,
    pub role: Role,
}

/// One group's chat box.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct GroupView {
    pub key: String,
    pub name: String,
    pub status: ChatboxStatus,
    pub reason: Reason,
    /// The account's busy or offline message for this group's status, if any.
    pub message: Option<String>,
    /// When this group's chat box is expected back (a busy or offline view), if known.
    pub back_at: Option<i64>,
}

/// The account's chat box, with one view per group (empty when the account has no groups).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ChatboxView {
    pub status: ChatboxStatus,
    pub reason: Reason,
    pub version: i64,
    /// When the opening hours alone will flip the view.
    pub next_change_at: Option<i64>,
    pub groups: Vec<GroupView>,
    /// The account's busy message while busy, its offline message while offline.
    pub message: Option<String>,
    /// Inside opening hours, when the chat box is expected back: the earliest end of a timed
    /// status that makes an agent who counts online (a busy view) or online or busy (an
    /// offline view).
    pub back_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SessionSnapshot {
    pub state: SessionState,
    pub agent: Option<Agent>,
    /// The account's slug.
    pub account: Option<String>,
    pub session_id: Option<String>,
}

/// The agent's status. `current` and the fields after `pending` describe the status shown:
/// this device's pending change (as the server will make it) until it is acknowledged, else
/// the server's.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct StatusSnapshot {
    /// What the agent chose last on this device (shown in the UI).
    pub current: AgentStatus,
    /// The server's status as last heard.
    pub confirmed: AgentStatus,
    /// Version of `confirmed`; grows with every applied change.
    pub version: i64,
    /// A change of this device is stored but not yet acknowledged.
    pub pending: bool,
    /// When the status shown ends (server clock, ms); `None` when it is not timed.
    pub until: Option<i64>,
    /// What it becomes at `until`.
    pub then: Option<AgentStatus>,
    /// The id of one of the account's custom statuses (see `custom_statuses`).
    pub custom_status: Option<String>,
    /// The agent's note for teammates.
    pub note: Option<String>,
    /// Why the status is what it is (`Manual` for a pending change).
    pub cause: Cause,
    /// The admin who set it, if one did.
    pub changed_by_agent: Option<String>,
}

/// A change the server refused; retry or discard it by `op_id`.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct WedgedOp {
    pub op_id: String,
    pub kind: OpKind,
    /// The server's error code, e.g. `invalid_field`.
    pub code: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct OutboxSnapshot {
    /// Changes stored and waiting for delivery (wedged ones not counted).
    pub pending: u32,
    pub wedged: Vec<WedgedOp>,
}

/// The most recent failure worth showing.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct LastError {
    pub code: String,
    pub detail: String,
}

/// Everything a UI shows, in the field names of the snapshot contract.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ClientSnapshot {
    pub session: SessionSnapshot,
    pub status: Option<StatusSnapshot>,
    pub chatbox: Option<ChatboxView>,
    /// The account's custom statuses, as the server last listed them.
    pub custom_statuses: Vec<CustomStatus>,
    pub connection: Connection,
    pub lifecycle: Lifecycle,
    /// When this device's session lease ends, on the server's clock.
    pub lease_until: Option<i64>,
    pub outbox: OutboxSnapshot,
    pub last_error: Option<LastError>,
}

/// How this device describes itself to the server at login.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct DeviceInfo {
    pub platform: Platform,
    /// Human name shown in session lists, e.g. "Jana's Pixel".
    pub name: String,
    pub app_version: String,
}

/// Timing knobs; leave a field `null`/`nil` for the production default. Tests shorten them.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct ClientTuning {
    /// Whole-request deadline (default 10 s).
    #[uniffi(default = None)]
    pub request_timeout_ms: Option<u64>,
    /// First retry window of the exponential backoff (default 500 ms).
    #[uniffi(default = None)]
    pub backoff_base_ms: Option<u64>,
    /// Largest retry window (default 60 s). A server's Retry-After may ask for longer.
    #[uniffi(default = None)]
    pub backoff_cap_ms: Option<u64>,
    /// An event stream silent for this long is reconnected (default 45 s).
    #[uniffi(default = None)]
    pub sse_idle_timeout_ms: Option<u64>,
    /// Added to the device's wall clock, to simulate a wrong device clock (default 0).
    #[uniffi(default = None)]
    pub clock_skew_ms: Option<i64>,
}

/// What [`PresenceClient::open`](crate::PresenceClient::open) needs.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ClientConfig {
    /// Base URL of the presence server, e.g. `https://presence.example.com`. `None` uses the
    /// URL stored at the last successful login.
    pub server_url: Option<String>,
    /// Directory for the engine's database (the app's private files dir); created if missing.
    pub data_dir: String,
    pub device: DeviceInfo,
    #[uniffi(default = None)]
    pub tuning: Option<ClientTuning>,
}

impl From<ClientConfig> for core::ClientConfig {
    fn from(c: ClientConfig) -> Self {
        let t = c.tuning.unwrap_or_default();
        let mut overrides = core::Overrides::default();
        let ms = Duration::from_millis;
        if let Some(v) = t.request_timeout_ms {
            overrides.request_timeout = ms(v);
        }
        if let Some(v) = t.backoff_base_ms {
            overrides.backoff_base = ms(v);
        }
        if let Some(v) = t.backoff_cap_ms {
            overrides.backoff_cap = ms(v);
        }
        if let Some(v) = t.sse_idle_timeout_ms {
            overrides.sse_idle_timeout = ms(v);
        }
        if let Some(v) = t.clock_skew_ms {
            overrides.clock_skew_ms = v;
        }
        core::ClientConfig {
            server_url: c.server_url,
            data_dir: PathBuf::from(c.data_dir),
            device: core::DeviceInfo {
                platform: c.device.platform,
                name: c.device.name,
                app_version: c.device.app_version,
            },
            overrides,
        }
    }
}

impl From<core::Agent> for Agent {
    fn from(a: core::Agent) -> Self {
        Agent {
            id: a.id,
            name: a.name,
            email: a.email,
            groups: a.groups,
            role: a.role,
        }
    }
}

impl From<core::GroupView> for GroupView {
    fn from(g: core::GroupView) -> Self {
        GroupView {
            key: g.key,
            name: g.name,
            status: g.status,
            reason: g.reason,
            message: g.message,
            back_at: g.back_at,
        }
    }
}

impl From<core::ChatboxView> for ChatboxView {
    fn from(v: core::ChatboxView) -> Self {
        ChatboxView {
            status: v.status,
            reason: v.reason,
            version: v.version,
            next_change_at: v.next_change_at,
            groups: v.groups.into_iter().map(Into::into).collect(),
            message: v.message,
            back_at: v.back_at,
        }
    }
}

impl From<core::ClientSnapshot> for ClientSnapshot {
    fn from(s: core::ClientSnapshot) -> Self {
        ClientSnapshot {
            session: SessionSnapshot {
                state: s.session.state,
                agent: s.session.agent.map(Into::into),
                account: s.session.account,
                session_id: s.session.session_id,
            },
            status: s.status.map(|st| StatusSnapshot {
                current: st.current,
                confirmed: st.confirmed,
                version: st.version,
                pending: st.pending,
                until: st.until,
                then: st.then,
                custom_status: st.custom_status,
                note: st.note,
                cause: st.cause,
                changed_by_agent: st.changed_by_agent,
            }),
            chatbox: s.chatbox.map(Into::into),
            custom_statuses: s.custom_statuses,
            connection: s.connection,
            lifecycle: s.lifecycle,
            lease_until: s.lease_until,
            outbox: OutboxSnapshot {
                pending: s.outbox.pending,
                wedged: s
                    .outbox
                    .wedged
                    .into_iter()
                    .map(|w| WedgedOp {
                        op_id: w.op_id,
                        kind: w.kind,
                        code: w.code,
                        detail: w.detail,
                    })
                    .collect(),
            },
            last_error: s.last_error.map(|e| LastError {
                code: e.code,
                detail: e.detail,
            }),
        }
    }
}

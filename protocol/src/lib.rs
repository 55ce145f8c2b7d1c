//! Presence wire protocol, v1: every request, response, event and push payload that crosses
//! the network, plus the pure rules that decide what a chat box shows.
//!
//! This crate does no I/O. The server and the client engine both depend on it, so a field
//! renamed here is renamed on both sides at once. The contract it implements is
//! `docs/PROTOCOL.md`; names and shapes here follow it exactly.
//!
//! - [`resolve`](resolve::resolve) turns agents, their live sessions and the opening hours into
//!   a [`ChatboxView`] (DESIGN rules 1-8).
//! - [`WeeklySchedule`](schedule::WeeklySchedule) evaluates opening hours in an IANA time zone.

pub mod events;
pub mod history;
pub mod resolve;
pub mod schedule;
pub mod webhooks;

use serde::{Deserialize, Serialize};

pub use events::{
    AccountEvent, AgentAvailabilityData, AgentStatusData, ChatboxViewData, EventType,
    PresenceAgent, PresenceSnapshot, SessionData,
};
pub use history::{
    AgentTime, Availability, AvailabilityReport, ChatboxCoverage, CoverageDay, CoverageReport,
    DayTime, TimeInStates, TimelineInterval, TimelineReport,
};
pub use resolve::{AgentAvailability, resolve};
pub use schedule::{ScheduleError, WeeklySchedule};
pub use webhooks::{
    CreatedWebhook, Delivery, DeliveryState, DisabledReason, NewWebhook, RotatedSecret, Webhook,
    WebhookPatch, WebhookTestResult,
};

/// Milliseconds since the Unix epoch on the server's clock.
pub type Millis = i64;

/// What an agent chose to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::EnumString, strum::EnumIter)]
#[strum(serialize_all = "snake_case")]
pub enum AgentStatus {
    Online,
    Busy,
    Offline,
}

impl AgentStatus {
    /// The wire name (serde's; strum applies the same case rule).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The variant with this wire name.
    pub fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }
}

impl std::fmt::Display for AgentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a chat box shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::EnumString, strum::EnumIter)]
#[strum(serialize_all = "snake_case")]
pub enum ChatboxStatus {
    Online,
    Busy,
    Offline,
}

impl ChatboxStatus {
    /// The wire name (serde's; strum applies the same case rule).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Why a chat box shows what it shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::EnumString, strum::EnumIter)]
#[strum(serialize_all = "snake_case")]
pub enum Reason {
    AgentsOnline,
    AgentsBusy,
    NoAgentsOnline,
    OutsideOpeningHours,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::EnumString, strum::EnumIter)]
#[strum(serialize_all = "snake_case")]
pub enum Platform {
    Android,
    Ios,
    Desktop,
    Web,
    Cli,
}

impl Platform {
    /// The wire name (serde's; strum applies the same case rule).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Lifecycle of a device session: `active` heartbeats often, `background` holds a long lease
/// renewed by push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::EnumString, strum::EnumIter)]
#[strum(serialize_all = "snake_case")]
pub enum Mode {
    #[default]
    Active,
    Background,
}

impl Mode {
    /// The wire name (serde's; strum applies the same case rule).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::EnumString, strum::EnumIter)]
#[strum(serialize_all = "snake_case")]
pub enum Role {
    Owner,
    Admin,
    #[default]
    Agent,
}

impl Role {
    /// The wire name (serde's; strum applies the same case rule).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The variant with this wire name.
    pub fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }

    /// Owners and admins may use the administration routes.
    pub fn is_admin(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

/// Push providers a session may register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::EnumString, strum::EnumIter)]
#[strum(serialize_all = "snake_case")]
pub enum PushProvider {
    Webhook,
    Fcm,
    Apns,
    Unifiedpush,
}

impl PushProvider {
    /// The wire name (serde's; strum applies the same case rule).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The variant with this wire name.
    pub fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::EnumString, strum::EnumIter)]
#[strum(serialize_all = "snake_case")]
pub enum EndReason {
    Logout,
    Expired,
    Replaced,
    Removed,
    /// The agent's password was changed (`PUT /v1/me/password` ends the other sessions, an
    /// admin's `PUT /v1/admin/agents/{id}/password` all of them).
    CredentialsChanged,
}

impl EndReason {
    /// The wire name (serde's; strum applies the same case rule).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The variant with this wire name.
    pub fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

/// Every error code of the protocol, with its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::EnumString, strum::EnumIter)]
#[strum(serialize_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    InvalidCredentials,
    Unauthorized,
    SessionExpired,
    Forbidden,
    NotFound,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    InvalidField,
    RateLimited,
    Internal,
    /// A store the request needs cannot be reached, or the server is too busy right now;
    /// retry after `Retry-After`.
    Unavailable,
}

impl ErrorCode {
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::InvalidCredentials | ErrorCode::Unauthorized | ErrorCode::SessionExpired => {
                401
            }
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::InvalidField => 422,
            ErrorCode::RateLimited => 429,
            ErrorCode::Internal => 500,
            ErrorCode::Unavailable => 503,
        }
    }

    /// The wire name (serde's; strum applies the same case rule).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// `{"error": {"code", "detail"}}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// One of the codes of [`ErrorCode`]; kept a string so a newer server's codes still parse.
    pub code: String,
    pub detail: String,
}

// ---------------------------------------------------------------------------------------------
// Shapes

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusView {
    pub status: AgentStatus,
    pub version: i64,
    pub intent_at: Millis,
    pub changed_by_device: Option<String>,
    /// When a timed status ends; null when it does not.
    #[serde(default)]
    pub until: Option<Millis>,
    /// What a timed status becomes at `until`; null when it is not timed.
    #[serde(default)]
    pub then: Option<AgentStatus>,
    /// The id of one of the account's custom statuses, whose `base` is `status`.
    #[serde(default)]
    pub custom_status: Option<String>,
    /// Free text for teammates (never shown to visitors).
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub cause: Cause,
    /// The agent id of the admin who set this status; null otherwise.
    #[serde(default)]
    pub changed_by_agent: Option<String>,
}

impl StatusView {
    /// A status set by hand (cause `manual`), not timed, with no custom status or note.
    pub fn manual(
        status: AgentStatus,
        version: i64,
        intent_at: Millis,
        changed_by_device: Option<String>,
    ) -> StatusView {
        StatusView {
            status,
            version,
            intent_at,
            changed_by_device,
            until: None,
            then: None,
            custom_status: None,
            note: None,
            cause: Cause::Manual,
            changed_by_agent: None,
        }
    }
}

/// Why an agent's status is what it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::EnumString, strum::EnumIter)]
#[strum(serialize_all = "snake_case")]
pub enum Cause {
    /// The agent, on a device.
    #[default]
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

impl Cause {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupView {
    pub key: String,
    pub name: String,
    pub status: ChatboxStatus,
    pub reason: Reason,
    /// The account's busy message while this group is busy, its offline message while
    /// offline, otherwise null.
    #[serde(default)]
    pub message: Option<String>,
    /// When this group's chat box is expected back (see [`ChatboxView::back_at`]).
    #[serde(default)]
    pub back_at: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChatboxView {
    pub status: ChatboxStatus,
    pub reason: Reason,
    pub version: i64,
    pub next_change_at: Option<Millis>,
    pub groups: Vec<GroupView>,
    /// The account's busy message while the view is busy, its offline message while
    /// offline, otherwise null.
    #[serde(default)]
    pub message: Option<String>,
    /// Inside opening hours, the earliest `until` at which an agent who counts and holds a
    /// live session turns online (a busy view) or online or busy (an offline view).
    #[serde(default)]
    pub back_at: Option<Millis>,
}

impl ChatboxView {
    /// True when both views show the same thing (everything but the version).
    pub fn same_content(&self, other: &ChatboxView) -> bool {
        self.status == other.status
            && self.reason == other.reason
            && self.next_change_at == other.next_change_at
            && self.groups == other.groups
            && self.message == other.message
            && self.back_at == other.back_at
    }

    /// Fills `message` on the view and on every group from the account's messages.
    pub fn with_messages(mut self, m: &Messages) -> ChatboxView {
        self.message = m.for_status(self.status).map(str::to_owned);
        for g in &mut self.groups {
            g.message = m.for_status(g.status).map(str::to_owned);
        }
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Agent {
    pub id: String,
    pub name: String,
    pub email: String,
    pub groups: Vec<String>,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Device {
    pub id: String,
    pub platform: Platform,
    pub name: String,
    pub app_version: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Heartbeat {
    pub interval_ms: i64,
    pub ttl_ms: i64,
    pub lease_until: Millis,
    pub server_time: Millis,
    pub status_version: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Group {
    pub key: String,
    pub name: String,
}

/// One of an account's custom statuses (`PUT /v1/admin/custom-statuses`): a named flavour of
/// a base status ("Lunch", busy, 1 h).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CustomStatus {
    /// `^[a-z0-9][a-z0-9_-]{0,63}$`
    pub id: String,
    /// 1 to 40 characters.
    pub label: String,
    #[serde(default)]
    pub emoji: Option<String>,
    /// The status an agent has while this custom status is theirs.
    pub base: AgentStatus,
    /// How long it lasts when a change names no `duration_ms`.
    #[serde(default)]
    pub default_duration_ms: Option<i64>,
}

// ---------------------------------------------------------------------------------------------
// Accounts

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewOwner {
    pub name: String,
    pub email: String,
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateAccountRequest {
    pub name: String,
    pub slug: String,
    pub owner: NewOwner,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountInfo {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub widget_key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateAccountResponse {
    pub account: AccountInfo,
    pub owner: Agent,
}

// ---------------------------------------------------------------------------------------------
// Device session

/// A session's push registration. `p256dh` and `auth` are the UnifiedPush (RFC 8291) keys
/// of the device and are absent for the other providers; `secret` is the Standard Webhooks
/// signing secret the device's owner chose for a `webhook` registration, and absent otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushRegistration {
    pub provider: PushProvider,
    pub token: String,
    /// The device's P-256 public key, base64url (uncompressed point, 65 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p256dh: Option<String>,
    /// The device's 16-byte auth secret, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<String>,
    /// `whsec_<base64 of 24 to 64 bytes>`: push webhooks are signed with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl PushRegistration {
    /// A registration for a provider that needs no keys (webhook, fcm, apns).
    pub fn new(provider: PushProvider, token: impl Into<String>) -> Self {
        PushRegistration {
            provider,
            token: token.into(),
            p256dh: None,
            auth: None,
            secret: None,
        }
    }

    /// A `webhook` registration whose pushes are signed with `secret` (`whsec_...`).
    pub fn signed_webhook(url: impl Into<String>, secret: impl Into<String>) -> Self {
        PushRegistration {
            secret: Some(secret.into()),
            ..PushRegistration::new(PushProvider::Webhook, url)
        }
    }

    /// A UnifiedPush registration: the endpoint URL and the device's RFC 8291 keys.
    pub fn unifiedpush(
        endpoint: impl Into<String>,
        p256dh: impl Into<String>,
        auth: impl Into<String>,
    ) -> Self {
        PushRegistration {
            provider: PushProvider::Unifiedpush,
            token: endpoint.into(),
            p256dh: Some(p256dh.into()),
            auth: Some(auth.into()),
            secret: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginRequest {
    pub account: String,
    pub email: String,
    pub password: String,
    pub device: Device,
    #[serde(default)]
    pub push: Option<PushRegistration>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginResponse {
    pub token: String,
    pub session_id: String,
    pub agent: Agent,
    pub status: StatusView,
    pub heartbeat: Heartbeat,
    pub server_time: Millis,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HeartbeatRequest {
    #[serde(default)]
    pub mode: Mode,
    /// How long the person has not touched this device (web and desktop clients; phones
    /// send nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_ms: Option<i64>,
}

impl From<Mode> for HeartbeatRequest {
    /// A heartbeat in `mode` with no activity report.
    fn from(mode: Mode) -> Self {
        HeartbeatRequest {
            mode,
            idle_ms: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionInfo {
    pub session_id: String,
    pub device: Device,
    pub mode: Mode,
    pub lease_until: Millis,
    pub connected: bool,
    /// The session's push provider (never its token), or null.
    #[serde(default)]
    pub push: Option<PushInfo>,
    /// The `idle_ms` this session last reported with a heartbeat, or null.
    #[serde(default)]
    pub idle_ms: Option<i64>,
}

/// What `/v1/me` tells about a session's push registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushInfo {
    pub provider: PushProvider,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MeResponse {
    pub agent: Agent,
    pub status: StatusView,
    pub chatbox: ChatboxView,
    pub sessions: Vec<SessionInfo>,
    /// The account's custom statuses.
    #[serde(default)]
    pub custom_statuses: Vec<CustomStatus>,
}

/// One applied status change, as the status log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusLogEntry {
    #[serde(flatten)]
    pub status: StatusView,
    pub applied_at: Millis,
}

/// A page of the status log, newest first; `next` asks for the page after it (`&after=`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusLogPage {
    pub entries: Vec<StatusLogEntry>,
    pub next: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetStatusRequest {
    pub status: AgentStatus,
    pub op_id: String,
    #[serde(default)]
    pub intent_at: Option<Millis>,
    /// The status ends `duration_ms` after its `intent_at` (1 000 to 7 days).
    #[serde(default)]
    pub duration_ms: Option<i64>,
    /// What it becomes then; null: the status before this change (or that one's `then`).
    #[serde(default)]
    pub then: Option<AgentStatus>,
    #[serde(default)]
    pub custom_status: Option<String>,
    /// At most 100 characters.
    #[serde(default)]
    pub note: Option<String>,
}

impl SetStatusRequest {
    /// A change to `status`, untimed, with no custom status or note.
    pub fn new(status: AgentStatus, op_id: impl Into<String>, intent_at: Option<Millis>) -> Self {
        SetStatusRequest {
            status,
            op_id: op_id.into(),
            intent_at,
            duration_ms: None,
            then: None,
            custom_status: None,
            note: None,
        }
    }

    /// What the change says besides the status.
    pub fn timing(&self) -> StatusTiming {
        StatusTiming {
            duration_ms: self.duration_ms,
            then: self.then,
            custom_status: self.custom_status.clone(),
            note: self.note.clone(),
        }
    }
}

/// What a status change may say besides the status: how long it lasts, what follows, which
/// custom status, a note (the fields of [`SetStatusRequest`] and [`AdminSetStatusRequest`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusTiming {
    pub duration_ms: Option<i64>,
    pub then: Option<AgentStatus>,
    pub custom_status: Option<String>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetStatusResponse {
    pub applied: bool,
    pub status: StatusView,
}

/// `PUT /v1/admin/agents/{id}/status`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminSetStatusRequest {
    pub status: AgentStatus,
    /// The status ends `duration_ms` after its `intent_at` (1 000 to 7 days).
    #[serde(default)]
    pub duration_ms: Option<i64>,
    /// What it becomes then; null: the status before this change (or that one's `then`).
    #[serde(default)]
    pub then: Option<AgentStatus>,
    #[serde(default)]
    pub custom_status: Option<String>,
    /// At most 100 characters.
    #[serde(default)]
    pub note: Option<String>,
}

impl AdminSetStatusRequest {
    /// What the change says besides the status.
    pub fn timing(&self) -> StatusTiming {
        StatusTiming {
            duration_ms: self.duration_ms,
            then: self.then,
            custom_status: self.custom_status.clone(),
            note: self.note.clone(),
        }
    }
}

/// First event of `/v1/me/events`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SnapshotEvent {
    pub status: StatusView,
    pub chatbox: ChatboxView,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionEndedEvent {
    pub reason: EndReason,
}

/// Event names on the SSE streams.
pub mod event {
    pub const SNAPSHOT: &str = "snapshot";
    pub const STATUS: &str = "status";
    pub const CHATBOX: &str = "chatbox";
    pub const SESSION_ENDED: &str = "session_ended";
    /// Sent on every stream at a fixed interval so a client can tell a dead stream from a
    /// quiet one.
    pub const PING: &str = "ping";
}

/// `event: ping` on every stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PingEvent {
    pub server_time: Millis,
}

// ---------------------------------------------------------------------------------------------
// Administration

/// A `["HH:MM", "HH:MM"]` range of opening hours, in the account's wall-clock time.
pub type TimeRange = (String, String);

/// Schemas the derives cannot spell (tuples), for the OpenAPI document.
#[cfg(feature = "openapi")]
mod openapi {
    use utoipa::openapi::schema::{ArrayBuilder, ArrayItems, ObjectBuilder, Schema, Type};

    /// A list of `["HH:MM", "HH:MM"]` pairs.
    pub fn time_ranges() -> Schema {
        let time = || {
            Schema::Object(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some("^[0-9]{2}:[0-9]{2}$"))
                    .build(),
            )
        };
        let pair = ArrayBuilder::new()
            .prefix_items([time(), time()])
            .items(ArrayItems::False)
            .min_items(Some(2))
            .max_items(Some(2))
            .description(Some("A range of opening hours, start and end in wall-clock time; an end not after its start crosses midnight."))
            .build();
        Schema::Array(
            ArrayBuilder::new()
                .items(ArrayItems::RefOrSchema(Box::new(
                    Schema::Array(pair).into(),
                )))
                .build(),
        )
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WeekDays {
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = openapi::time_ranges))]
    pub mon: Vec<TimeRange>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = openapi::time_ranges))]
    pub tue: Vec<TimeRange>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = openapi::time_ranges))]
    pub wed: Vec<TimeRange>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = openapi::time_ranges))]
    pub thu: Vec<TimeRange>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = openapi::time_ranges))]
    pub fri: Vec<TimeRange>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = openapi::time_ranges))]
    pub sat: Vec<TimeRange>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = openapi::time_ranges))]
    pub sun: Vec<TimeRange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DateException {
    /// `YYYY-MM-DD` in the account's time zone.
    pub date: String,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = openapi::time_ranges))]
    pub ranges: Vec<TimeRange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OpeningHours {
    pub enabled: bool,
    pub timezone: String,
    #[serde(default)]
    pub days: WeekDays,
    #[serde(default)]
    pub exceptions: Vec<DateException>,
}

impl Default for OpeningHours {
    fn default() -> Self {
        OpeningHours {
            enabled: false,
            timezone: "UTC".to_owned(),
            days: WeekDays::default(),
            exceptions: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Settings {
    pub active_interval_ms: i64,
    pub active_ttl_ms: i64,
    pub background_ttl_ms: i64,
    pub renew_margin_ms: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            active_interval_ms: 20_000,
            active_ttl_ms: 60_000,
            background_ttl_ms: 1_800_000,
            renew_margin_ms: 300_000,
        }
    }
}

/// Longest busy or offline message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 280;

/// What the chat box says while it is busy or offline (null: nothing beyond the status).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Messages {
    #[serde(default)]
    pub busy_message: Option<String>,
    #[serde(default)]
    pub offline_message: Option<String>,
}

impl Messages {
    /// The message a view with this status carries.
    pub fn for_status(&self, status: ChatboxStatus) -> Option<&str> {
        match status {
            ChatboxStatus::Busy => self.busy_message.as_deref(),
            ChatboxStatus::Offline => self.offline_message.as_deref(),
            ChatboxStatus::Online => None,
        }
    }
}

/// An account's settings as the admin routes show them: the timings and the messages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountSettings {
    #[serde(flatten)]
    pub timings: Settings,
    #[serde(flatten)]
    pub messages: Messages,
    #[serde(flatten)]
    pub idle: IdleSettings,
}

/// Automatic away and back: after how long without activity on every device an `online`
/// agent is set to `idle_status` (null: never), and whether activity restores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IdleSettings {
    #[serde(default)]
    pub idle_after_ms: Option<i64>,
    #[serde(default = "IdleSettings::default_status")]
    pub idle_status: AgentStatus,
    #[serde(default = "IdleSettings::default_return")]
    pub return_on_activity: bool,
}

impl IdleSettings {
    fn default_status() -> AgentStatus {
        AgentStatus::Busy
    }
    fn default_return() -> bool {
        true
    }
}

impl Default for IdleSettings {
    fn default() -> Self {
        IdleSettings {
            idle_after_ms: None,
            idle_status: AgentStatus::Busy,
            return_on_activity: true,
        }
    }
}

/// `Some(None)` for an explicit `null`, `None` for an absent field.
fn explicit_null<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SettingsPatch {
    #[serde(default)]
    pub active_interval_ms: Option<i64>,
    #[serde(default)]
    pub active_ttl_ms: Option<i64>,
    #[serde(default)]
    pub background_ttl_ms: Option<i64>,
    #[serde(default)]
    pub renew_margin_ms: Option<i64>,
    /// Absent: unchanged; `null`: cleared.
    #[serde(
        default,
        deserialize_with = "explicit_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub busy_message: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "explicit_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub offline_message: Option<Option<String>>,
    /// Absent: unchanged; `null`: automatic away off.
    #[serde(
        default,
        deserialize_with = "explicit_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub idle_after_ms: Option<Option<i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_status: Option<AgentStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_on_activity: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminAccountResponse {
    pub account: AccountInfo,
    pub groups: Vec<Group>,
    pub opening_hours: OpeningHours,
    pub settings: AccountSettings,
    pub agents: Vec<Agent>,
    #[serde(default)]
    pub custom_statuses: Vec<CustomStatus>,
    /// The account's sign-in settings, without secrets.
    #[serde(default)]
    pub sign_in: SignInView,
}

/// `POST /v1/admin/sign-in/test` (owner or admin): a token to check against the account's
/// sign-in settings, without signing anyone in.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenTestRequest {
    pub token: String,
}

/// What signing in with a tested token would do.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenTestAction {
    /// The agent linked to the token's `sub` signs in as it is.
    SignsIn,
    /// The agent with the token's email is linked to its `sub`.
    Links,
    /// The linked agent's name, groups or role change to follow the claims.
    Updates,
    /// A new agent is made from the claims.
    Provisions,
}

/// The answer of `POST /v1/admin/sign-in/test`: accepted, or exactly why not.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenTestResponse {
    pub ok: bool,
    /// Why the token is refused (`null` when it is accepted).
    pub reason: Option<String>,
    /// The token's `sub`, once its signature and claims checked out.
    pub sub: Option<String>,
    /// What a sign-in with it would do, when accepted.
    pub action: Option<TokenTestAction>,
    /// The agent it signs in as (not for a provisioned one, which does not exist yet).
    pub agent_id: Option<String>,
}

/// `PUT /v1/admin/sign-in` (owner only): how the account's agents sign in.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignInRequest {
    /// Delegated sign-in with the customer's JWTs; `null`: none.
    #[serde(default)]
    pub jwt: Option<JwtSettings>,
    /// `false`: `POST /v1/login` answers `403 forbidden` for this account.
    #[serde(default = "yes")]
    pub password_login: bool,
    /// Whether a valid token of an unknown user creates its agent.
    #[serde(default)]
    pub provision: bool,
}

fn yes() -> bool {
    true
}

/// The customer's token issuer: its `iss`, the `aud` tokens carry, and exactly one key
/// source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JwtSettings {
    pub issuer: String,
    pub audience: String,
    #[serde(default)]
    pub hs256_secret: Option<String>,
    #[serde(default)]
    pub jwks: Option<serde_json::Value>,
    #[serde(default)]
    pub jwks_url: Option<String>,
}

/// The sign-in settings as `GET /v1/admin/account` shows them: never the HS256 secret, only
/// whether one is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignInView {
    pub jwt: Option<JwtView>,
    pub password_login: bool,
    pub provision: bool,
}

impl Default for SignInView {
    fn default() -> Self {
        SignInView {
            jwt: None,
            password_login: true,
            provision: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JwtView {
    pub issuer: String,
    pub audience: String,
    pub hs256_secret_set: bool,
    pub jwks: Option<serde_json::Value>,
    pub jwks_url: Option<String>,
}

/// `POST /v1/login/token`: a session from the customer's signed token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenLoginRequest {
    pub account: String,
    pub token: String,
    pub device: Device,
    #[serde(default)]
    pub push: Option<PushRegistration>,
}

/// `POST /v1/admin/api-keys`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewApiKeyRequest {
    pub name: String,
}

/// An API key as listed (`GET /v1/admin/api-keys`); the key itself is shown only once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKeyInfo {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

/// `201` to `POST /v1/admin/api-keys`: the only time `key` is shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewApiKeyResponse {
    pub id: String,
    pub name: String,
    pub key: String,
    pub created_at: i64,
}

/// Which agent `POST /v1/admin/sessions` opens a session for: exactly one of the three.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentRef {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub sub: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

/// `POST /v1/admin/sessions` (an API key or an admin): a session for one of the account's
/// agents, answered like a login.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminSessionRequest {
    pub agent: AgentRef,
    pub device: Device,
    #[serde(default)]
    pub push: Option<PushRegistration>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewAgentRequest {
    pub name: String,
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub role: Role,
}

/// `PUT /v1/me/password`: the agent's current password and the new one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChangePasswordRequest {
    pub current: String,
    pub new: String,
}

/// `PUT /v1/admin/agents/{id}/password`: an agent's new password, set by an admin.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetPasswordRequest {
    pub password: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PatchAgentRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub groups: Option<Vec<String>>,
    #[serde(default)]
    pub role: Option<Role>,
}

// ---------------------------------------------------------------------------------------------
// Push payloads

/// A push payload, `{"v": 1, "type": ..., "session_id", ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushPayload {
    pub v: u32,
    #[serde(flatten)]
    pub body: PushBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PushBody {
    Status {
        session_id: String,
        status: StatusView,
    },
    Renew {
        session_id: String,
        lease_until: Millis,
    },
    SessionEnded {
        session_id: String,
        reason: EndReason,
    },
}

impl PushPayload {
    pub const VERSION: u32 = 1;

    pub fn new(body: PushBody) -> Self {
        PushPayload {
            v: Self::VERSION,
            body,
        }
    }

    pub fn session_id(&self) -> &str {
        match &self.body {
            PushBody::Status { session_id, .. }
            | PushBody::Renew { session_id, .. }
            | PushBody::SessionEnded { session_id, .. } => session_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_payload_matches_the_contract_shape() {
        let p = PushPayload::new(PushBody::Renew {
            session_id: "s1".into(),
            lease_until: 42,
        });
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"v": 1, "type": "renew", "session_id": "s1", "lease_until": 42})
        );
        let back: PushPayload = serde_json::from_value(v).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn opening_hours_ranges_are_two_element_arrays() {
        let oh: OpeningHours = serde_json::from_str(
            r#"{"enabled": true, "timezone": "Europe/Prague",
                "days": {"mon": [["09:00","17:30"]], "sun": []},
                "exceptions": [{"date": "2026-12-24", "ranges": []}]}"#,
        )
        .unwrap();
        assert_eq!(oh.days.mon, vec![("09:00".to_owned(), "17:30".to_owned())]);
        assert!(oh.days.tue.is_empty());
        assert_eq!(oh.exceptions[0].date, "2026-12-24");
    }

    #[test]
    fn error_codes_map_to_their_http_status() {
        assert_eq!(ErrorCode::InvalidField.http_status(), 422);
        assert_eq!(ErrorCode::SessionExpired.http_status(), 401);
        assert_eq!(
            serde_json::to_string(&ErrorCode::UnsupportedMediaType).unwrap(),
            "\"unsupported_media_type\""
        );
    }
}

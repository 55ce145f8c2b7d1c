//! The seam between HTTP handlers and state.
//!
//! Handlers only ever talk to a [`Backend`]. The embedded backend ([`crate::embedded`]) keeps
//! hot state in memory and durable state in SQLite; a scale-out backend on a distributed store
//! implements the same trait, and no handler changes. What belongs to the HTTP layer (auth
//! header parsing, role checks, login rate limits, JSON errors) stays out of this trait.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use bytes::Bytes;
use presence_protocol::{
    ChatboxView, EndReason, Heartbeat, LoginRequest, LoginResponse, MeResponse, Mode,
    PushRegistration, Role, SetStatusResponse, SnapshotEvent, StatusView,
};
use tokio::sync::{broadcast, watch};

mod error;

pub use error::{BackendError, BackendResult, storage};

use crate::auth::TokenHash;
use crate::metrics::Gauges;
use crate::ops::status::{StatusChange, StatusPlan};
use crate::ops::{AccountEdit, AccountKey, AccountPlan, AccountSlice};
use crate::rows::{AccountRow, AgentRow};

/// The session a bearer token resolved to.
#[derive(Debug, Clone)]
pub struct Principal {
    pub session_id: Arc<str>,
    pub agent_id: Arc<str>,
    pub account_id: Arc<str>,
    pub role: Role,
}

/// A chat box view as published to every subscriber, shared. The backend makes the value;
/// the HTTP layer encodes it (event frame, JSON body) the first time a subscriber needs it,
/// into these slots, so each change is encoded once however many subscribers it reaches and
/// no encoding lives below the seam.
#[derive(Debug)]
pub struct ViewFrame {
    pub view: ChatboxView,
    /// The `chatbox` event, encoded by the first stream that sends it.
    pub event: OnceLock<Bytes>,
    /// The JSON body, encoded by the first request that answers with it.
    pub json: OnceLock<Bytes>,
}

impl ViewFrame {
    pub fn new(view: ChatboxView) -> Self {
        ViewFrame {
            view,
            event: OnceLock::new(),
            json: OnceLock::new(),
        }
    }
}

/// A status change as published to an agent's device streams, shared like [`ViewFrame`].
#[derive(Debug)]
pub struct StatusFrame {
    pub status: StatusView,
    /// The `status` event, encoded by the first stream that sends it.
    pub event: OnceLock<Bytes>,
}

/// Events for one agent's device streams.
#[derive(Debug, Clone)]
pub enum AgentEvent {
    Status(Arc<StatusFrame>),
    /// A session of this agent ended; only that session's stream shows it, then closes.
    SessionEnded {
        session_id: Arc<str>,
        reason: EndReason,
    },
}

impl AgentEvent {
    pub fn status(status: StatusView) -> AgentEvent {
        AgentEvent::Status(Arc::new(StatusFrame {
            status,
            event: OnceLock::new(),
        }))
    }
}

/// Something held by an open stream; dropping it marks the stream closed.
pub trait StreamGuard: Send + Sync {}

/// What `/v1/me/events` streams from.
pub struct DeviceStream {
    pub session_id: Arc<str>,
    /// Sent first.
    pub snapshot: SnapshotEvent,
    pub events: broadcast::Receiver<AgentEvent>,
    pub views: watch::Receiver<Arc<ViewFrame>>,
    pub guard: Box<dyn StreamGuard>,
}

/// What `/v1/widget/{key}/events` streams from.
pub struct WidgetStream {
    pub views: watch::Receiver<Arc<ViewFrame>>,
    pub guard: Box<dyn StreamGuard>,
}

#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Stores a new account and its owner (rows planned by `ops::account::new_account`);
    /// a taken slug is a `Conflict`.
    async fn create_account(&self, account: AccountRow, owner: AgentRow) -> BackendResult<()>;
    /// Verifies credentials and opens a session. Wrong credentials give
    /// `invalid_credentials`, whether or not the account or email exists.
    async fn login(&self, req: LoginRequest) -> BackendResult<LoginResponse>;
    /// The live session behind a bearer token (by its SHA-256; raw tokens stay in the HTTP
    /// layer). Unknown: `unauthorized`; ended or lapsed: `session_expired`.
    async fn authenticate(&self, token: &TokenHash) -> BackendResult<Principal>;
    /// Authenticates like [`Backend::authenticate`] and renews that session's lease, in one
    /// step: this is the hottest path of the server.
    async fn heartbeat(&self, token: &TokenHash, mode: Mode) -> BackendResult<Heartbeat>;
    /// Ends a live session of the caller's agent now, with reason `logout`: its own
    /// (`DELETE /v1/session`) or another (its stream and push are told). A session of
    /// another agent, or none: `not_found`.
    async fn end_session(&self, p: &Principal, session_id: &str) -> BackendResult<()>;
    /// Registers (or with `None` removes) the caller's push registration; a provider that
    /// cannot reach the device is an `InvalidField`.
    async fn set_push(&self, p: &Principal, push: Option<PushRegistration>) -> BackendResult<()>;
    /// The caller's agent, status, the account's view and the agent's live sessions.
    async fn me(&self, p: &Principal) -> BackendResult<MeResponse>;
    /// Under the agent's turn: an op id seen within the retention is answered as it was
    /// first; otherwise the agent's status (and the device of `origin`) is loaded, `plan`
    /// decides, its answer is committed with the op id, and if it applied, every device
    /// stream, the widget views and the pushes to the agent's other sessions follow. An
    /// agent not in the account is `not_found`.
    async fn change_status(
        &self,
        change: StatusChange,
        plan: StatusPlan,
    ) -> BackendResult<SetStatusResponse>;
    /// A stream for the caller's device: the snapshot first, then its agent's events and the
    /// account's views; the session counts as connected while the stream is held.
    async fn open_device_stream(&self, p: &Principal) -> BackendResult<DeviceStream>;

    /// The account and its agents, as stored (a read: no turn is taken); `not_found` if no
    /// account has this key.
    async fn account_slice(&self, key: AccountKey<'_>) -> BackendResult<AccountSlice>;
    /// Under the account's turn: loads its slice, runs `plan` on it, and applies the edit it
    /// returns atomically (one transaction), then recomputes the account's views and fans
    /// out (an agent removed has its sessions ended with reason `removed`). Two edits of one
    /// account never interleave, on any number of nodes.
    async fn edit_account(&self, account_id: &str, plan: AccountPlan)
    -> BackendResult<AccountEdit>;
    /// The account's current view for a widget key, encoded once.
    async fn widget_view(&self, widget_key: &str) -> BackendResult<Arc<ViewFrame>>;
    /// A stream of the account's views for a widget key, starting with the current one.
    async fn open_widget_stream(&self, widget_key: &str) -> BackendResult<WidgetStream>;

    /// Whether the stores this backend needs answer (`/healthz`); why not if they do not.
    async fn health(&self) -> BackendResult<()>;

    /// Point-in-time counts for `/metrics`.
    async fn gauges(&self) -> Gauges;
    /// Writes whatever is only in memory (leases, view versions).
    async fn flush(&self);
}

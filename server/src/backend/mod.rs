//! The storage seam, under the planning layer.
//!
//! Handlers call [`crate::ops::Ops`], which plans every operation and calls a [`Backend`]:
//! the embedded backend ([`crate::embedded`]) keeps hot state in memory and durable state in
//! SQLite, the cluster backend ([`crate::cluster`]) PostgreSQL and Redis; both implement the
//! same methods, and nothing above changes. A backend reads slices, applies planned
//! changes atomically under a turn, times what must be timed, and fans out; it decides
//! nothing. What belongs to the HTTP layer (auth header parsing, role checks, login rate
//! limits, JSON errors) stays out of this trait.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use bytes::Bytes;
use presence_protocol::{
    ChatboxView, DeliveryState, EndReason, Heartbeat, Mode, PresenceSnapshot, Role,
    SetStatusResponse, SnapshotEvent, StatusLogEntry, StatusView,
};
use tokio::sync::{broadcast, watch};

mod error;

pub use error::{BackendError, BackendResult, storage};

use crate::auth::TokenHash;
use crate::history::Logged;
use crate::history::events::Stored;
use crate::history::query::{HistoryQuery, HistoryRows};
use crate::ops::idle::Report;
use crate::ops::sessions::{AgentKey, AgentSlice, SessionEdit, SessionPlan, Sessions};
use crate::ops::status::{StatusChange, StatusPlan};
use crate::ops::{AccountEdit, AccountKey, AccountPlan, AccountSlice, AccountTarget};
use crate::webhooks::{Claims, DeliveryRow, Job, Settle, WebhookEdit, WebhookRow};

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

/// Which part of an agent's status log to read: changes applied in `[from, to)` with a
/// version below `before_version`, newest first, at most `limit`.
#[derive(Debug, Clone)]
pub struct LogQuery {
    pub account_id: Arc<str>,
    pub agent_id: String,
    pub from: i64,
    pub to: i64,
    pub before_version: i64,
    pub limit: u32,
}

/// What an event stream waits on between reads of its account's events.
pub enum EventSignal {
    /// Changes after every commit of this process's store (the embedded backend).
    Commits(watch::Receiver<u64>),
    /// This node's commits signal at once; other nodes' commits reach no signal here, so
    /// read again after this long too (cluster mode).
    CommitsOrPoll(watch::Receiver<u64>, std::time::Duration),
}

impl EventSignal {
    /// Counts every commit so far as seen: a read that starts after this sees them, and
    /// [`EventSignal::next`] then waits for a later one.
    pub fn seen(&mut self) {
        match self {
            EventSignal::Commits(rx) | EventSignal::CommitsOrPoll(rx, _) => {
                rx.borrow_and_update();
            }
        }
    }

    /// Returns when new events may have been committed.
    pub async fn next(&mut self) {
        match self {
            EventSignal::Commits(rx) => {
                if rx.changed().await.is_err() {
                    // The store is gone (shutting down): never wake again.
                    std::future::pending::<()>().await;
                }
            }
            EventSignal::CommitsOrPoll(rx, every) => {
                let _ = tokio::time::timeout(*every, rx.changed()).await;
            }
        }
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

/// The account's views for a widget key: the current one, and the ones after it when the
/// caller follows them.
pub struct WidgetViews {
    pub current: Arc<ViewFrame>,
    /// Present when asked for: a stream starting with `current`.
    pub stream: Option<WidgetStream>,
}

/// What a heartbeat asks of [`Backend::session`]: the lease renewed in `mode`, and the
/// session's activity report (`idle_ms`; none: this session does not report) stored with it.
#[derive(Debug, Clone, Copy)]
pub struct Renewal {
    pub mode: Mode,
    pub idle_ms: Option<i64>,
}

/// A heartbeat's activity report, stored, of an agent whose account has automatic away on:
/// the planning layer decides what it changes.
#[derive(Debug, Clone)]
pub struct Reported {
    pub account_id: Arc<str>,
    pub agent_id: Arc<str>,
    pub report: Report,
}

/// What a live session's token answered: who it is, or (renewed) its new terms and, when
/// the heartbeat reported activity and its account has automatic away on, that report.
#[derive(Debug)]
pub enum SessionCheck {
    Authenticated(Principal),
    Renewed(Heartbeat, Option<Reported>),
}

/// The seam: reads of a slice, turns that apply a planned change, and streams. Every rule is
/// above it (`crate::ops`, `crate::rules`); a backend loads, stores atomically, times and
/// fans out. Lifecycle (flushing at shutdown) and gauges (`Metrics::set_gauges`) are wired by
/// the composition root, not called by handlers.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The account and its agents, as stored (a read: no turn is taken); `not_found` if no
    /// account has this key.
    async fn account_slice(&self, key: AccountKey<'_>) -> BackendResult<AccountSlice>;
    /// Under the account's turn: loads its slice (`None` for a new account's slug that no
    /// account has), runs `plan` on it, and applies the edit it returns atomically (one
    /// transaction), then recomputes the account's views and fans out (an agent removed has
    /// its sessions ended with reason `removed`). Two edits of one account never interleave,
    /// on any number of nodes; a new slug is taken once.
    async fn edit_account(
        &self,
        target: AccountTarget<'_>,
        plan: AccountPlan,
    ) -> BackendResult<AccountEdit>;

    /// An agent, its account's timings and view, and its live sessions (a read: no turn is
    /// taken; by login: the agent and timings only); `not_found` if no agent has this key.
    async fn agent_slice(&self, key: AgentKey<'_>) -> BackendResult<AgentSlice>;
    /// Under the agent's turn: loads its slice with the live `sessions` asked for, runs
    /// `plan`, stores the session edit it returns atomically and fans it out (ended
    /// sessions' streams and pushes, the views). Answers the slice planned on and the edit.
    /// An agent not in the account is `not_found`.
    async fn edit_sessions(
        &self,
        account_id: &str,
        agent_id: &str,
        sessions: Sessions,
        plan: SessionPlan,
    ) -> BackendResult<(AgentSlice, SessionEdit)>;
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

    /// The live session behind a bearer token (by its SHA-256; raw tokens stay in the HTTP
    /// layer): who it is, or with `renew`, its lease renewed in that mode by the lease rules,
    /// its activity report replaced by the renewal's (stamped with the server's time), and the
    /// new terms, in the same step (the hottest path of the server). Unknown:
    /// `unauthorized`; ended or lapsed: `session_expired`.
    async fn session(
        &self,
        token: &TokenHash,
        renew: Option<Renewal>,
    ) -> BackendResult<SessionCheck>;
    /// A stream for the caller's device: the snapshot first, then its agent's events and the
    /// account's views; the session counts as connected while the stream is held.
    async fn open_device_stream(&self, p: &Principal) -> BackendResult<DeviceStream>;
    /// The account's current view for a widget key, encoded once; with `follow`, a stream of
    /// the views after it too.
    async fn widget(&self, widget_key: &str, follow: bool) -> BackendResult<WidgetViews>;

    /// Part of an agent's status log (a read of the store: every applied change is written
    /// with it); `not_found` if the agent is not in the account.
    async fn status_log(&self, q: LogQuery) -> BackendResult<Vec<StatusLogEntry>>;

    /// The availability log rows a report over `q` needs, and the backend's time after it
    /// read them (a read of the store on a connection of its own: never under a turn, the
    /// state lock, or a table lock); an agent asked for that is not in the account is
    /// `not_found`.
    async fn history(&self, q: HistoryQuery) -> BackendResult<HistoryRows>;

    /// Adds availability log rows made elsewhere (the demo's weeks of history, a benchmark's
    /// 90 days), as they are, in one transaction. Not for live changes: nothing is checked
    /// or published.
    async fn import_history(&self, account_id: &str, rows: Vec<Logged>) -> BackendResult<()>;

    /// Every agent of the account (status, availability and since when, live devices), its
    /// chat box view, and the `seq` of the account's last event, as of one moment of the
    /// store (the view: the current one).
    async fn presence(&self, account_id: &str) -> BackendResult<PresenceSnapshot>;

    /// The account's events after `seq` `after`, in order, at most `limit` (a read of the
    /// store).
    async fn events(&self, account_id: &str, after: i64, limit: u32) -> BackendResult<Vec<Stored>>;

    /// What an event stream waits on for new events.
    fn event_signal(&self) -> EventSignal;

    /// Whether the agent had a session on `device_id` (live, or ended within the session
    /// retention): such a device keeps its own login window when the agent's is full.
    async fn known_device(&self, agent_id: &str, device_id: &str) -> BackendResult<bool>;

    /// Whether the stores this backend needs answer (`/healthz`); why not if they do not.
    async fn health(&self) -> BackendResult<()>;

    /// The account's webhook endpoints, oldest first.
    async fn webhooks(&self, account_id: &str) -> BackendResult<Vec<WebhookRow>>;

    /// Keeps an endpoint edit planned by [`crate::webhooks::rules`]: a new one past
    /// [`crate::webhooks::MAX_WEBHOOKS`] is `409 conflict`, an unknown one `not_found`.
    async fn edit_webhook(&self, edit: WebhookEdit) -> BackendResult<()>;

    /// Takes up to `limit` endpoints with an event due at `now` for `owner` until
    /// `lease_until` (no other worker takes them meanwhile), each with its next event.
    async fn claim_webhooks(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> BackendResult<Claims>;

    /// Keeps what came of a claimed job, if `owner` still holds its endpoint.
    async fn settle_webhook(&self, owner: &str, job: &Job, settle: &Settle) -> BackendResult<()>;

    /// The endpoint's delivery rows (newest first, at most `limit`, of `state` if given),
    /// and, when pending ones are asked for, the events after its cursor (for
    /// [`crate::webhooks::listing`]).
    async fn webhook_deliveries(
        &self,
        webhook: &WebhookRow,
        state: Option<DeliveryState>,
        limit: usize,
    ) -> BackendResult<(Vec<DeliveryRow>, Vec<Stored>)>;

    /// Sends a dead (or pending) event of the endpoint again, next; the state it was in,
    /// `None` when the endpoint has no delivery of that `seq`.
    async fn retry_webhook(
        &self,
        webhook: &WebhookRow,
        seq: i64,
        now: i64,
    ) -> BackendResult<Option<DeliveryState>>;
}

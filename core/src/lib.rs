//! presence-core: the client engine every Presence device runs.
//!
//! The desktop CLI links it directly; the Android and iOS apps reach it through presence-ffi,
//! which wraps [`PresenceClient`] one to one. Everything a device does lives here: the login
//! session, heartbeats that keep the session's lease alive, the durable [`outbox`] of status
//! changes, the live event stream, push handling and the clock-offset estimate that puts every
//! status intent on the server's time scale.
//!
//! ```text
//!  PresenceClient (cheap handle, any thread)
//!        │ commands (mpsc)                       ▲ ClientSnapshot (watch + listener)
//!        ▼                                       │
//!  ┌──────────────── engine actor: the only owner of state ─────────────────┐
//!  │ routes to: session · outbox · heartbeat · event stream (a file each)   │
//!  │        │ outbox: synchronous=FULL before replying; caches: no fsync    │
//!  │        ▼                                                               │
//!  │   store (presence.db)      request tasks (JoinSet) ── transport ──▶ server
//!  │                            SSE task (/v1/me/events) ◀──────────────── server
//!  └────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! Rules the engine keeps:
//!
//! - **One owner.** The actor task owns all state; the handle only sends it commands. Network
//!   requests run in their own tasks and report back, so a hung server never delays a
//!   `set_status` from being stored.
//! - **Durable before acknowledged.** [`PresenceClient::set_status`] (and
//!   [`set_status_with`](PresenceClient::set_status_with), for a timed, custom or annotated
//!   change) returns only after the change is committed to SQLite with `synchronous=FULL`; a
//!   crash after that loses nothing.
//! - **Latest intent wins.** Each change carries `intent_at` on the server's clock, estimated
//!   from every response ([`clock`]), so a device whose clock is hours off still orders its
//!   changes correctly against the agent's other devices, and a timed change ends at
//!   `intent_at + duration_ms` however late it is delivered.
//! - **Tokio's clock only.** Every timer (heartbeats, retries, reconnects, timeouts) uses
//!   `tokio::time`, so tests run with paused time.
//!
//! Start with [`PresenceClient::open`]; read [`ClientSnapshot`] for what the UI shows.

pub mod clock;
mod config;
mod engine;
mod error;
mod heartbeat;
mod meter;
pub mod outbox;
mod session;
mod snapshot;
pub mod sse;
mod status;
mod store;
mod stream;
pub mod transport;
pub mod widget;

mod api;
mod client;

pub use api::ReportQuery;
pub use client::{PresenceClient, SnapshotListener, UnifiedPushKeys};
pub use config::{ClientConfig, DeviceInfo, Overrides};
pub use error::ClientError;
pub use meter::EngineCounters;
pub use snapshot::{
    ClientSnapshot, Connection, LastError, Lifecycle, OpKind, OutboxSnapshot, SessionSnapshot,
    SessionState, StatusSnapshot, WedgedOp,
};
pub use status::{MAX_DURATION_MS, MAX_NOTE_CHARS, MIN_DURATION_MS, StatusRequest};

pub use presence_protocol::{
    Agent, AgentStatus, AgentTime, AvailabilityReport, Cause, ChatboxStatus, ChatboxView,
    CustomStatus, DayTime, GroupView, Millis, Platform, PushProvider, Reason, StatusLogEntry,
    StatusLogPage, StatusView, TimeInStates,
};

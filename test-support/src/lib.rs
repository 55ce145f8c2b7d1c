//! What the tests of every crate share, in one place: the real server started in-process
//! (or as a cluster node on PostgreSQL and Redis), a client of its contract, an event-stream
//! reader, engines logged in as devices, and waiting for a condition with a generous deadline
//! (never a bare sleep).
//!
//! - [`server`]: [`TestServer`], in-process on a free loopback port; stop, restart, and
//!   cluster mode with `PRESENCE_TEST_BACKEND=cluster`.
//! - [`api`]: [`Api`], a thin HTTP client of the contract, and the accounts, agents and
//!   sessions tests start from.
//! - [`sse`]: [`Sse`], reading events from an open stream.
//! - [`wait`]: [`DEADLINE`], [`eventually`] for server-side facts, [`wait_until`] for an
//!   engine's snapshot.
//! - [`engine`]: engine configs with short timings and logged-in [`Device`]s.
//! - [`contract`]: what PROTOCOL.md says each answer looks like, and the small calls the
//!   route tests share (not re-exported at the root: `use presence_test_support::contract::*`).
//! - [`webhook`]: a loopback receiver for the server's webhook push provider.
//! - [`standard_webhooks`]: webhook signatures checked by the Standard Webhooks project's
//!   own library.
//! - [`idp`]: the customer's identity provider: tokens signed HS256, RS256 or ES256 (or
//!   not at all), and a JWKS server on loopback that counts its requests.
//! - [`push`]: wire-level doubles of FCM (with its OAuth2 token endpoint), APNs and a
//!   UnifiedPush endpoint.
//! - [`fake`]: an in-memory fake server for paused-time tests.
//! - [`proxy`]: a fault-injecting TCP proxy.
//! - [`fsync`]: a SQLite VFS that counts the syncs a database really asks the disk for.
//! - [`stores`]: real PostgreSQL and Redis (standalone and a six-node cluster) on free
//!   loopback ports, in temp dirs, never left running.
//! - [`phone`]: what an engine costs a phone per hour of each lifecycle state (shared by the
//!   tests and `cargo xtask bench`).

pub mod api;
pub mod contract;
pub mod engine;
pub mod fake;
pub mod fsync;
pub mod idp;
pub mod phone;
pub mod proxy;
pub mod push;
pub mod receiver;
pub mod server;
pub mod sse;
pub mod standard_webhooks;
pub mod stores;
pub mod wait;
pub mod webhook;

pub use api::*;
pub use engine::*;
pub use server::*;
pub use sse::*;
pub use wait::*;
pub use webhook::WebhookReceiver;

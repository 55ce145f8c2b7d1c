//! The embedded backend: all hot state in memory, durable state in SQLite ([`Store`]).
//!
//! # Shape
//! One `State` behind one mutex holds accounts, agents, live sessions, token hashes, the
//! timer set and the fan-out channels. Critical sections are short, never await and never
//! touch the disk: every change is planned under the lock, committed to SQLite off it (a
//! group commit, `writer.rs`), then applied under it, holding the agent's or account's
//! write turn from plan to apply, so memory and disk agree on the order of changes and
//! memory never shows one that is not durable.
//!
//! # Leases and the sweeper
//! A heartbeat only moves `lease_until` in memory and marks the session dirty; a flusher
//! writes dirty leases in one transaction every [`FLUSH_EVERY`]. Timers (lease ends, renew
//! pushes, opening-hours flips) sit in one ordered set; each session has at most one live
//! expiry entry (`scheduled_expiry`), and a heartbeat that moves the lease later leaves it in
//! place: when it fires, the sweeper sees the later lease and re-arms. So heartbeats touch no
//! ordered structure at all, and the sweeper wakes within a millisecond of a lease end.
//!
//! # Fan-out
//! Each account has a `watch` channel of its current chat box view (widget streams and the
//! `chatbox` events of device streams); a watch never blocks the publisher and a slow reader
//! simply sees the newest view. Each agent has a `broadcast` channel of status and
//! session-ended events; a reader that lags is disconnected (it reconnects and gets a fresh
//! snapshot). Frames are encoded once per change, not once per subscriber.
//!
//! # Files
//! - `state.rs`: the memory (accounts, agents, sessions, tokens, timers) and the in-memory
//!   half of each change: views recomputed, statuses applied, sessions ended.
//! - `ops.rs`: the [`Backend`](crate::backend::Backend) operations: reads answered from
//!   memory; writes handed to their apply path in a task of their own.
//! - `edits.rs`, `sessions.rs`, `writes.rs`: the slice each plan reads and the apply path
//!   of each planned change (account edits, session edits, status changes), under its turn.
//! - `writer.rs`: the group commit and the write turns.
//! - `restore.rs`: start-up from the store, with grace leases.
//! - `timers.rs`: the sweeper (lease ends, renew pushes, opening-hours flips).
//! - `flush.rs`: the background writes (leases, pruning, checkpoints, view versions
//!   reserved ahead).
//!
//! The rules themselves (intent ordering, lease terms, push targeting) live in
//! [`crate::rules`], shared with any other backend.

mod edits;
mod flush;
mod ops;
mod restore;
mod sessions;
mod state;
mod timers;
mod writer;
mod writes;

use flush::*;
use state::*;
use timers::*;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::Retention;
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::push::Pusher;
use crate::rules;
use crate::store::Store;

/// How often in-memory leases are written to SQLite.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Buffered events per agent before a slow device stream is dropped.
const AGENT_EVENT_BUFFER: usize = 256;

struct Inner {
    state: Mutex<State>,
    store: Arc<Store>,
    /// Commits every change off the state lock (see `writer.rs`).
    writer: Arc<writer::Writer>,
    /// Write turns by agent id (see `writes.rs`).
    turns: writer::Turns,
    /// Write turns by account id, or slug for a new account; taken before an agent's.
    account_turns: writer::Turns,
    /// View versions to reserve ahead, committed by `flush::reserver`.
    reservations: tokio::sync::mpsc::UnboundedSender<(Arc<str>, i64)>,
    /// Views published, recorded as `chatbox.view` events in order by `flush::view_recorder`.
    view_events:
        tokio::sync::mpsc::UnboundedSender<(Arc<str>, presence_protocol::ChatboxView, i64)>,
    clock: Clock,
    pusher: Arc<Pusher>,
    retention: Retention,
    metrics: Arc<Metrics>,
    sweeper_wake: Notify,
    device_streams: AtomicU64,
    widget_streams: AtomicU64,
    /// Webhook endpoints a worker of this process holds (see `ops.rs`, `claim_webhooks`).
    webhook_leases: Mutex<WebhookLeases>,
}

/// The leases of webhook endpoints, kept in memory (this process is the file's only user,
/// so a lease never needs to outlive it): endpoint id -> (owner, lease end).
type WebhookLeases = std::collections::HashMap<String, (String, i64)>;

/// The embedded SQLite backend. Cheap to clone.
#[derive(Clone)]
pub struct Embedded {
    inner: Arc<Inner>,
}

fn arc(s: &str) -> Arc<str> {
    Arc::from(s)
}

impl Inner {
    /// [`State::recompute`] with this backend's metrics and store.
    fn recompute(&self, st: &mut State, account_id: &str, now: i64, fx: &mut Effects) {
        st.recompute(account_id, now, &self.metrics, &self.store, fx);
    }

    fn finish(&self, fx: Effects) {
        for r in fx.reservations {
            let _ = self.reservations.send(r);
        }
        for v in fx.views {
            let _ = self.view_events.send(v);
        }
        for job in fx.pushes {
            self.pusher.dispatch(job);
        }
        if fx.wake_sweeper {
            self.sweeper_wake.notify_one();
        }
    }
}

impl Embedded {
    pub fn clock(&self) -> Clock {
        self.inner.clock.clone()
    }

    /// Writes whatever is only in memory (leases, view versions); at shutdown.
    pub fn flush(&self) {
        flush_once(&self.inner);
    }
}

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
//!   memory; writes validated, then handed to `writes.rs` in a task of their own.
//! - `writes.rs`: each write's plan, commit and apply, under its turn.
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
use presence_protocol::Heartbeat;
use tokio::sync::Notify;

use crate::Retention;
use crate::backend::Principal;
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
    clock: Clock,
    pusher: Pusher,
    retention: Retention,
    metrics: Arc<Metrics>,
    sweeper_wake: Notify,
    device_streams: AtomicU64,
    widget_streams: AtomicU64,
    /// Password checks at login (the verified-password cache, the dummy hash).
    credentials: crate::ops::credentials::Credentials,
}

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
        for job in fx.pushes {
            self.pusher.dispatch(job);
        }
        if fx.wake_sweeper {
            self.sweeper_wake.notify_one();
        }
    }

    fn heartbeat_for(&self, st: &State, s: &SessionState, now: i64) -> Heartbeat {
        let settings = st
            .accounts
            .get(&s.account_id)
            .map(|a| a.settings)
            .unwrap_or_default();
        let (interval_ms, ttl_ms) = rules::lease_terms(&settings, s.mode, s.push.is_some());
        let status_version = st.agents.get(&s.agent_id).map_or(0, |a| a.status.version);
        Heartbeat {
            interval_ms,
            ttl_ms,
            lease_until: s.lease_until,
            server_time: now,
            status_version,
        }
    }
}

impl Embedded {
    pub fn clock(&self) -> Clock {
        self.inner.clock.clone()
    }

    fn flush_now(&self) {
        flush_once(&self.inner);
    }
}

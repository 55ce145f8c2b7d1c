//! What the engine costs the device it runs on, counted as it happens.
//!
//! A phone pays for every wakeup (the CPU leaving sleep for a timer, the radio powering up for
//! a request) and every fsync. The engine counts each of them here, so a benchmark or an app's
//! diagnostics screen can read the real figures with [`PresenceClient::counters`]
//! (crate::PresenceClient::counters) rather than estimate them:
//!
//! - `timer_wakeups`: the actor woke from its sleep because one of its own timers came due
//!   (a heartbeat, a retry, a reconnect, a store poll). Commands, pushes and stream events
//!   are not counted here: something else woke the device for them.
//! - `requests`: HTTP requests started (each event-stream connection counts once).
//! - `bytes_sent` / `bytes_received`: HTTP message bytes the engine wrote and read: request
//!   line, the headers it sets and the body; status line, headers and body of the answer,
//!   event-stream chunks included. Headers the HTTP library adds on its own (`host`,
//!   `accept`), TLS and TCP/IP framing are not counted.
//! - `stream_events`: events that arrived on the event stream.
//! - `durable_commits`, `cache_commits`, `checkpoints`: the store's writes by durability
//!   (see the store's docs: only durable commits and checkpoints fsync).
//!
//! Counters only grow; subtract two readings to get what happened in between. Relaxed
//! atomics: the figures are statistics, not synchronisation.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::store::StoreCounters;

/// A reading of the engine's counters (see the module docs for what each one counts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineCounters {
    pub timer_wakeups: u64,
    pub requests: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub stream_events: u64,
    pub durable_commits: u64,
    pub cache_commits: u64,
    pub checkpoints: u64,
}

impl std::ops::Sub for EngineCounters {
    type Output = EngineCounters;
    fn sub(self, o: EngineCounters) -> EngineCounters {
        EngineCounters {
            timer_wakeups: self.timer_wakeups - o.timer_wakeups,
            requests: self.requests - o.requests,
            bytes_sent: self.bytes_sent - o.bytes_sent,
            bytes_received: self.bytes_received - o.bytes_received,
            stream_events: self.stream_events - o.stream_events,
            durable_commits: self.durable_commits - o.durable_commits,
            cache_commits: self.cache_commits - o.cache_commits,
            checkpoints: self.checkpoints - o.checkpoints,
        }
    }
}

/// The live counters, shared by the actor, its request tasks and the client handle.
#[derive(Debug, Default)]
pub(crate) struct Meter {
    timer_wakeups: AtomicU64,
    requests: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    stream_events: AtomicU64,
    durable_commits: AtomicU64,
    cache_commits: AtomicU64,
    checkpoints: AtomicU64,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Meter {
    pub(crate) fn timer_wakeup(&self) {
        add(&self.timer_wakeups, 1);
    }

    pub(crate) fn request(&self, bytes: u64) {
        add(&self.requests, 1);
        add(&self.bytes_sent, bytes);
    }

    pub(crate) fn received(&self, bytes: u64) {
        add(&self.bytes_received, bytes);
    }

    pub(crate) fn stream_event(&self) {
        add(&self.stream_events, 1);
    }

    /// Mirrors the store's own counters (the store is owned by the actor, readers are not).
    pub(crate) fn store(&self, s: StoreCounters) {
        self.durable_commits
            .store(s.durable_commits, Ordering::Relaxed);
        self.cache_commits.store(s.cache_commits, Ordering::Relaxed);
        self.checkpoints.store(s.checkpoints, Ordering::Relaxed);
    }

    pub(crate) fn read(&self) -> EngineCounters {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        EngineCounters {
            timer_wakeups: r(&self.timer_wakeups),
            requests: r(&self.requests),
            bytes_sent: r(&self.bytes_sent),
            bytes_received: r(&self.bytes_received),
            stream_events: r(&self.stream_events),
            durable_commits: r(&self.durable_commits),
            cache_commits: r(&self.cache_commits),
            checkpoints: r(&self.checkpoints),
        }
    }
}

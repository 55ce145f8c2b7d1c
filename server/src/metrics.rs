//! Prometheus counters for `/metrics`. Gauges (sessions, subscribers) are read from the live
//! state when scraped; counters are plain atomics bumped on the paths they count.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::push::PushMetrics;

#[derive(Debug, Default)]
pub struct Metrics {
    pub logins: AtomicU64,
    pub login_failures: AtomicU64,
    pub heartbeats: AtomicU64,
    pub status_changes: AtomicU64,
    pub expiries: AtomicU64,
    pub logouts: AtomicU64,
    /// Per-provider push counters and latency.
    pub push: Arc<PushMetrics>,
    pub view_changes: AtomicU64,
    /// Ended sessions forgotten after their retention.
    pub pruned_sessions: AtomicU64,
    /// Status op ids forgotten after their retention.
    pub pruned_status_ops: AtomicU64,
}

/// Point-in-time gauges supplied by the backend.
#[derive(Debug, Default, Clone, Copy)]
pub struct Gauges {
    pub live_sessions: u64,
    /// Ended sessions whose tokens are still remembered (within the retention).
    pub ended_tokens: u64,
    pub device_subscribers: u64,
    pub widget_subscribers: u64,
    pub accounts: u64,
}

impl Metrics {
    pub fn render(&self, g: Gauges) -> String {
        let mut out = String::with_capacity(2048);
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        counter(
            "presence_logins_total",
            "Successful logins.",
            self.logins.load(Relaxed),
        );
        counter(
            "presence_login_failures_total",
            "Failed login attempts.",
            self.login_failures.load(Relaxed),
        );
        counter(
            "presence_heartbeats_total",
            "Heartbeats accepted.",
            self.heartbeats.load(Relaxed),
        );
        counter(
            "presence_status_changes_total",
            "Agent status changes applied.",
            self.status_changes.load(Relaxed),
        );
        counter(
            "presence_session_expiries_total",
            "Sessions ended because their lease expired.",
            self.expiries.load(Relaxed),
        );
        counter(
            "presence_logouts_total",
            "Sessions ended by logout.",
            self.logouts.load(Relaxed),
        );
        counter(
            "presence_chatbox_view_changes_total",
            "Chat box view changes published.",
            self.view_changes.load(Relaxed),
        );
        counter(
            "presence_pruned_sessions_total",
            "Ended sessions forgotten after their retention.",
            self.pruned_sessions.load(Relaxed),
        );
        counter(
            "presence_pruned_status_ops_total",
            "Status op ids forgotten after their retention.",
            self.pruned_status_ops.load(Relaxed),
        );
        let mut gauge = |name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        gauge(
            "presence_sessions",
            "Live device sessions.",
            g.live_sessions,
        );
        gauge(
            "presence_sse_subscribers",
            "Open event streams (device and widget).",
            g.device_subscribers + g.widget_subscribers,
        );
        gauge(
            "presence_device_sse_subscribers",
            "Open /v1/me/events streams.",
            g.device_subscribers,
        );
        gauge(
            "presence_widget_sse_subscribers",
            "Open widget event streams.",
            g.widget_subscribers,
        );
        gauge(
            "presence_ended_sessions_remembered",
            "Ended sessions whose tokens still answer session_expired.",
            g.ended_tokens,
        );
        gauge("presence_accounts", "Accounts.", g.accounts);
        self.push.render(&mut out);
        out
    }
}

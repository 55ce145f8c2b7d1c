//! Prometheus counters for `/metrics`. Gauges (sessions, subscribers) are read when scraped
//! from the source the backend registers at start ([`Metrics::set_gauges`]); counters are
//! plain atomics bumped on the paths they count.

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
    /// Status log entries forgotten after `--history-retention-ms`.
    pub pruned_status_log: AtomicU64,
    /// Cluster mode's work with its stores.
    pub store: Arc<StoreMetrics>,
    /// Webhook deliveries.
    pub webhooks: Arc<crate::webhooks::metrics::WebhookMetrics>,
    gauges: GaugeSource,
}

/// A read of the gauges, as the backend registers it.
pub type GaugeRead = std::pin::Pin<Box<dyn std::future::Future<Output = Gauges> + Send>>;

/// Where gauges come from: the read the backend registers.
#[derive(Default)]
struct GaugeSource(std::sync::OnceLock<Box<dyn Fn() -> GaugeRead + Send + Sync>>);

impl std::fmt::Debug for GaugeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "GaugeSource(set)"
        } else {
            "GaugeSource(unset)"
        })
    }
}

/// What a cluster node counts of its work with PostgreSQL and Redis; rendered only in
/// cluster mode (`active`).
#[derive(Debug, Default)]
pub struct StoreMetrics {
    pub active: std::sync::atomic::AtomicBool,
    /// Redis calls (one script or command: one round trip), their summed time, failures.
    pub redis_calls: AtomicU64,
    pub redis_us: AtomicU64,
    pub redis_errors: AtomicU64,
    /// PostgreSQL operations (a query or a transaction), their summed time, failures.
    pub postgres_ops: AtomicU64,
    pub postgres_us: AtomicU64,
    pub postgres_errors: AtomicU64,
    /// Status commits in PostgreSQL (the acknowledged part of a status change), as a
    /// histogram over [`COMMIT_BUCKETS_MS`] (cumulative, then `+Inf`).
    pub status_commits: AtomicU64,
    pub status_commit_us: AtomicU64,
    pub status_commit_buckets: [AtomicU64; COMMIT_BUCKETS_MS.len() + 1],
    pub sweeps: AtomicU64,
    /// Lease end to its handling by this node, of the last lease end it handled.
    pub sweep_lag_ms: AtomicU64,
    pub reconciler_repairs: AtomicU64,
    pub pubsub_reconnects: AtomicU64,
    /// Accounts this node seeded into Redis from PostgreSQL.
    pub seeds: AtomicU64,
}

/// Upper bounds (ms) of the status commit histogram's buckets.
pub const COMMIT_BUCKETS_MS: [f64; 12] = [
    0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 25.0, 50.0, 100.0, 1000.0,
];

impl StoreMetrics {
    /// One status commit's duration.
    pub fn observe_commit(&self, took: std::time::Duration) {
        let ms = took.as_secs_f64() * 1e3;
        for (b, bound) in self
            .status_commit_buckets
            .iter()
            .zip(COMMIT_BUCKETS_MS.iter().chain([&f64::INFINITY]))
        {
            if ms <= *bound {
                b.fetch_add(1, Relaxed);
            }
        }
        self.status_commits.fetch_add(1, Relaxed);
        self.status_commit_us
            .fetch_add(took.as_micros() as u64, Relaxed);
    }

    fn render(&self, out: &mut String) {
        if !self.active.load(Relaxed) {
            return;
        }
        let us = |a: &AtomicU64| a.load(Relaxed) as f64 / 1e6;
        let counters: [(&str, &str, f64); 9] = [
            (
                "presence_cluster_redis_calls_total",
                "Redis round trips (a script or a command).",
                self.redis_calls.load(Relaxed) as f64,
            ),
            (
                "presence_cluster_redis_seconds_total",
                "Time spent in Redis round trips.",
                us(&self.redis_us),
            ),
            (
                "presence_cluster_redis_errors_total",
                "Redis calls that failed.",
                self.redis_errors.load(Relaxed) as f64,
            ),
            (
                "presence_cluster_postgres_ops_total",
                "PostgreSQL operations (a query or a transaction).",
                self.postgres_ops.load(Relaxed) as f64,
            ),
            (
                "presence_cluster_postgres_seconds_total",
                "Time spent in PostgreSQL operations.",
                us(&self.postgres_us),
            ),
            (
                "presence_cluster_postgres_errors_total",
                "PostgreSQL operations that failed.",
                self.postgres_errors.load(Relaxed) as f64,
            ),
            (
                "presence_cluster_sweeps_total",
                "Partition sweeps run by this node.",
                self.sweeps.load(Relaxed) as f64,
            ),
            (
                "presence_cluster_reconciler_repairs_total",
                "Committed statuses the reconciler applied to Redis.",
                self.reconciler_repairs.load(Relaxed) as f64,
            ),
            (
                "presence_cluster_pubsub_reconnects_total",
                "Times this node's pub/sub connection was made again.",
                self.pubsub_reconnects.load(Relaxed) as f64,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        }
        let name = "presence_cluster_status_commit_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} The PostgreSQL transaction of a status change.\n# TYPE {name} histogram"
        );
        for (b, bound) in self.status_commit_buckets.iter().zip(COMMIT_BUCKETS_MS) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{}\"}} {}",
                bound / 1e3,
                b.load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"+Inf\"}} {n}\n{name}_sum {}\n{name}_count {n}",
            us(&self.status_commit_us),
            n = self.status_commits.load(Relaxed)
        );
        let name = "presence_cluster_sweep_lag_ms";
        let _ = writeln!(
            out,
            "# HELP {name} Lease end to its handling, for the last lease end this node handled.\n# TYPE {name} gauge\n{name} {}",
            self.sweep_lag_ms.load(Relaxed)
        );
        let name = "presence_cluster_seeds_total";
        let _ = writeln!(
            out,
            "# HELP {name} Accounts this node seeded into Redis from PostgreSQL.\n# TYPE {name} counter\n{name} {}",
            self.seeds.load(Relaxed)
        );
    }
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
    /// Registers the backend's gauges (once; a later call is ignored): read on each scrape.
    pub fn set_gauges(&self, source: impl Fn() -> GaugeRead + Send + Sync + 'static) {
        let _ = self.gauges.0.set(Box::new(source));
    }

    /// The page `/metrics` serves, with the gauges read now.
    pub async fn render(&self) -> String {
        let g = match self.gauges.0.get() {
            Some(read) => read().await,
            None => Gauges::default(),
        };
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
        counter(
            "presence_pruned_status_log_total",
            "Status log entries forgotten after the history retention.",
            self.pruned_status_log.load(Relaxed),
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
        self.webhooks.render(&mut out);
        self.store.render(&mut out);
        out
    }
}

//! What a cluster node counts of its work with PostgreSQL and Redis, in a registry of its
//! own that `/metrics` shows only in cluster mode (once [`StoreMetrics::active`] is set).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds (seconds) of the status commit histogram's buckets.
const COMMIT_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 1.0,
];

/// A counter of seconds (a float, summed exactly enough for a rate).
pub type SecondsCounter = Counter<f64, AtomicU64>;

pub struct StoreMetrics {
    pub active: AtomicBool,
    /// Redis calls (one script or command: one round trip), their summed time, failures.
    pub redis_calls: Counter,
    pub redis_seconds: SecondsCounter,
    pub redis_errors: Counter,
    /// PostgreSQL operations (a query or a transaction), their summed time, failures.
    pub postgres_ops: Counter,
    pub postgres_seconds: SecondsCounter,
    pub postgres_errors: Counter,
    /// Status commits in PostgreSQL (the acknowledged part of a status change).
    pub status_commits: Histogram,
    pub sweeps: Counter,
    /// Lease end to its handling by this node, of the last lease end it handled.
    pub sweep_lag_ms: Gauge,
    pub reconciler_repairs: Counter,
    pub pubsub_reconnects: Counter,
    /// Accounts this node seeded into Redis from PostgreSQL.
    pub seeds: Counter,
    registry: Registry,
}

impl std::fmt::Debug for StoreMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreMetrics")
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

impl Default for StoreMetrics {
    fn default() -> StoreMetrics {
        let mut m = StoreMetrics {
            active: AtomicBool::new(false),
            redis_calls: Counter::default(),
            redis_seconds: SecondsCounter::default(),
            redis_errors: Counter::default(),
            postgres_ops: Counter::default(),
            postgres_seconds: SecondsCounter::default(),
            postgres_errors: Counter::default(),
            status_commits: Histogram::new(COMMIT_BUCKETS),
            sweeps: Counter::default(),
            sweep_lag_ms: Gauge::default(),
            reconciler_repairs: Counter::default(),
            pubsub_reconnects: Counter::default(),
            seeds: Counter::default(),
            registry: Registry::default(),
        };
        let r = &mut m.registry;
        r.register(
            "presence_cluster_redis_calls",
            "Redis round trips (a script or a command)",
            m.redis_calls.clone(),
        );
        r.register(
            "presence_cluster_redis_seconds",
            "Time spent in Redis round trips",
            m.redis_seconds.clone(),
        );
        r.register(
            "presence_cluster_redis_errors",
            "Redis calls that failed",
            m.redis_errors.clone(),
        );
        r.register(
            "presence_cluster_postgres_ops",
            "PostgreSQL operations (a query or a transaction)",
            m.postgres_ops.clone(),
        );
        r.register(
            "presence_cluster_postgres_seconds",
            "Time spent in PostgreSQL operations",
            m.postgres_seconds.clone(),
        );
        r.register(
            "presence_cluster_postgres_errors",
            "PostgreSQL operations that failed",
            m.postgres_errors.clone(),
        );
        r.register(
            "presence_cluster_sweeps",
            "Partition sweeps run by this node",
            m.sweeps.clone(),
        );
        r.register(
            "presence_cluster_reconciler_repairs",
            "Committed statuses the reconciler applied to Redis",
            m.reconciler_repairs.clone(),
        );
        r.register(
            "presence_cluster_pubsub_reconnects",
            "Times this node's pub/sub connection was made again",
            m.pubsub_reconnects.clone(),
        );
        r.register(
            "presence_cluster_status_commit_seconds",
            "The PostgreSQL transaction of a status change",
            m.status_commits.clone(),
        );
        r.register(
            "presence_cluster_sweep_lag_ms",
            "Lease end to its handling, for the last lease end this node handled",
            m.sweep_lag_ms.clone(),
        );
        r.register(
            "presence_cluster_seeds",
            "Accounts this node seeded into Redis from PostgreSQL",
            m.seeds.clone(),
        );
        m
    }
}

impl StoreMetrics {
    /// One status commit's duration.
    pub fn observe_commit(&self, took: Duration) {
        self.status_commits.observe(took.as_secs_f64());
    }

    /// Appends this registry to `/metrics`, in cluster mode only.
    pub(super) fn render(&self, out: &mut String) {
        if self.active.load(Relaxed) {
            // Writing into a `String` cannot fail.
            let _ = prometheus_text::encode(out, &self.registry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_metrics_show_only_once_active_with_their_names() {
        let m = StoreMetrics::default();
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.is_empty());
        m.active.store(true, Relaxed);
        m.redis_calls.inc();
        m.redis_seconds.inc_by(0.25);
        m.observe_commit(Duration::from_micros(2500));
        m.sweep_lag_ms.set(12);
        m.render(&mut out);
        for line in [
            "presence_cluster_redis_calls_total 1",
            "presence_cluster_redis_seconds_total 0.25",
            "# TYPE presence_cluster_status_commit_seconds histogram",
            "presence_cluster_status_commit_seconds_bucket{le=\"0.002\"} 0",
            "presence_cluster_status_commit_seconds_bucket{le=\"0.003\"} 1",
            "presence_cluster_status_commit_seconds_count 1",
            "# TYPE presence_cluster_sweep_lag_ms gauge",
            "presence_cluster_sweep_lag_ms 12",
            "presence_cluster_seeds_total 0",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} in:\n{out}");
        }
    }
}

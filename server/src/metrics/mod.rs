//! Everything `/metrics` shows, kept with the Prometheus project's client
//! (`prometheus-client`) and served in the Prometheus text format (0.0.4).
//!
//! Guarantees:
//! - Every metric's name, type and labels are those docs/METRICS.md lists; each labelled
//!   series is made at start, so a scrape shows it at zero before anything happened.
//! - Counters and gauges are atomics bumped on the paths they count, a histogram one
//!   uncontended lock; labelled series are looked up once at start (the request latency's
//!   by route, without allocating), so counting costs no allocation.
//! - The backend's gauges (sessions, subscribers, accounts) are read when scraped, from the
//!   source the backend registers at start ([`Metrics::set_gauges`]).
//! - The cluster's store metrics ([`StoreMetrics`]) appear only in cluster mode.

pub mod http;
mod store;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::push::PushMetrics;
use crate::webhooks::metrics::WebhookMetrics;

pub use http::HttpMetrics;
pub use store::StoreMetrics;

/// The `Content-Type` of `/metrics`: the Prometheus text format, version 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Upper bounds (seconds) of `presence_status_fanout_seconds`: in-process on one node, over
/// pub/sub in a cluster.
const FANOUT_BUCKETS: [f64; 13] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
];

/// Upper bounds (seconds) of `presence_expiry_lag_seconds`.
const EXPIRY_LAG_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

pub struct Metrics {
    pub logins: Counter,
    pub login_failures: Counter,
    pub heartbeats: Counter,
    pub status_changes: Counter,
    pub expiries: Counter,
    pub logouts: Counter,
    pub view_changes: Counter,
    /// Ended sessions forgotten after their retention.
    pub pruned_sessions: Counter,
    /// Status op ids forgotten after their retention.
    pub pruned_status_ops: Counter,
    /// Status log entries forgotten after `--history-retention-ms`.
    pub pruned_status_log: Counter,
    /// A status change's commit to its hand-off to this node's event streams.
    pub status_fanout: Histogram,
    /// A lease's end to the sweep that ends its session.
    pub expiry_lag: Histogram,
    /// Per-provider push counters and latency.
    pub push: Arc<PushMetrics>,
    /// Cluster mode's work with its stores.
    pub store: Arc<StoreMetrics>,
    /// Webhook deliveries.
    pub webhooks: Arc<WebhookMetrics>,
    /// Request latency, open streams and connections.
    pub http: Arc<HttpMetrics>,
    scraped: Scraped,
    gauges: GaugeSource,
    registry: Registry,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("gauges", &self.gauges)
            .finish_non_exhaustive()
    }
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

/// The registered gauges a scrape sets from the backend's [`Gauges`] before encoding.
#[derive(Default)]
struct Scraped {
    sessions: Gauge,
    subscribers: Gauge,
    device_subscribers: Gauge,
    widget_subscribers: Gauge,
    ended_tokens: Gauge,
    accounts: Gauge,
}

impl Scraped {
    fn set(&self, g: &Gauges) {
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.sessions.set(n(g.live_sessions));
        self.subscribers
            .set(n(g.device_subscribers.saturating_add(g.widget_subscribers)));
        self.device_subscribers.set(n(g.device_subscribers));
        self.widget_subscribers.set(n(g.widget_subscribers));
        self.ended_tokens.set(n(g.ended_tokens));
        self.accounts.set(n(g.accounts));
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        let m = Metrics {
            logins: Counter::default(),
            login_failures: Counter::default(),
            heartbeats: Counter::default(),
            status_changes: Counter::default(),
            expiries: Counter::default(),
            logouts: Counter::default(),
            view_changes: Counter::default(),
            pruned_sessions: Counter::default(),
            pruned_status_ops: Counter::default(),
            pruned_status_log: Counter::default(),
            status_fanout: Histogram::new(FANOUT_BUCKETS),
            expiry_lag: Histogram::new(EXPIRY_LAG_BUCKETS),
            push: Arc::default(),
            store: Arc::default(),
            webhooks: Arc::default(),
            http: Arc::default(),
            scraped: Scraped::default(),
            gauges: GaugeSource::default(),
            registry: Registry::default(),
        };
        m.registered()
    }
}

impl Metrics {
    /// Registers every metric but the store's (which has its own registry) once, in the
    /// order a scrape shows them. Names given without the `_total` a counter gets.
    fn registered(mut self) -> Metrics {
        let r = &mut self.registry;
        let counters = [
            ("presence_logins", "Successful logins", &self.logins),
            (
                "presence_login_failures",
                "Failed login attempts",
                &self.login_failures,
            ),
            (
                "presence_heartbeats",
                "Heartbeats accepted",
                &self.heartbeats,
            ),
            (
                "presence_status_changes",
                "Agent status changes applied",
                &self.status_changes,
            ),
            (
                "presence_session_expiries",
                "Sessions ended because their lease expired",
                &self.expiries,
            ),
            (
                "presence_logouts",
                "Sessions ended by logout",
                &self.logouts,
            ),
            (
                "presence_chatbox_view_changes",
                "Chat box view changes published",
                &self.view_changes,
            ),
            (
                "presence_pruned_sessions",
                "Ended sessions forgotten after their retention",
                &self.pruned_sessions,
            ),
            (
                "presence_pruned_status_ops",
                "Status op ids forgotten after their retention",
                &self.pruned_status_ops,
            ),
            (
                "presence_pruned_status_log",
                "Status log entries forgotten after the history retention",
                &self.pruned_status_log,
            ),
        ];
        for (name, help, c) in counters {
            r.register(name, help, c.clone());
        }
        let s = &self.scraped;
        let gauges = [
            ("presence_sessions", "Live device sessions", &s.sessions),
            (
                "presence_sse_subscribers",
                "Open event streams (device and widget)",
                &s.subscribers,
            ),
            (
                "presence_device_sse_subscribers",
                "Open /v1/me/events streams",
                &s.device_subscribers,
            ),
            (
                "presence_widget_sse_subscribers",
                "Open widget event streams",
                &s.widget_subscribers,
            ),
            (
                "presence_ended_sessions_remembered",
                "Ended sessions whose tokens still answer session_expired",
                &s.ended_tokens,
            ),
            ("presence_accounts", "Accounts", &s.accounts),
        ];
        for (name, help, g) in gauges {
            r.register(name, help, g.clone());
        }
        r.register(
            "presence_status_fanout_seconds",
            "From a status change's commit to its hand-off to this node's event streams",
            self.status_fanout.clone(),
        );
        r.register(
            "presence_expiry_lag_seconds",
            "From a lease's end to the sweep that ends its session",
            self.expiry_lag.clone(),
        );
        self.push.register(r);
        self.webhooks.register(r);
        self.http.register(r);
        self
    }

    /// Registers the backend's gauges (once; a later call is ignored): read on each scrape.
    pub fn set_gauges(&self, source: impl Fn() -> GaugeRead + Send + Sync + 'static) {
        let _ = self.gauges.0.set(Box::new(source));
    }

    /// One status change handed to the streams `took` after its commit.
    pub fn fanned_out(&self, took: Duration) {
        self.status_fanout.observe(took.as_secs_f64());
    }

    /// One lease found ended `lag_ms` after its end.
    pub fn expired_after(&self, lag_ms: i64) {
        self.expiry_lag.observe(lag_ms.max(0) as f64 / 1e3);
    }

    /// The page `/metrics` serves, with the gauges read now.
    pub async fn render(&self) -> String {
        let g = match self.gauges.0.get() {
            Some(read) => read().await,
            None => Gauges::default(),
        };
        self.scraped.set(&g);
        let mut out = String::with_capacity(16 * 1024);
        // Writing into a `String` cannot fail.
        let _ = prometheus_text::encode(&mut out, &self.registry);
        self.store.render(&mut out);
        out
    }
}

/// Microseconds since the Unix epoch, by the system clock: the instant a status commit
/// carries to the nodes that fan it out (the test clock does not move real time).
pub fn wall_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_metric_keeps_its_name_type_and_the_backend_gauges_are_read_when_scraped() {
        let m = Metrics::default();
        m.logins.inc();
        m.expiries.inc_by(3);
        m.set_gauges(|| {
            Box::pin(async {
                Gauges {
                    live_sessions: 4,
                    device_subscribers: 2,
                    widget_subscribers: 5,
                    ..Gauges::default()
                }
            })
        });
        m.fanned_out(Duration::from_micros(700));
        m.expired_after(40);
        let page = m.render().await;
        for line in [
            "# TYPE presence_logins_total counter",
            "presence_logins_total 1",
            "presence_session_expiries_total 3",
            "# TYPE presence_sessions gauge",
            "presence_sessions 4",
            "presence_sse_subscribers 7",
            "presence_widget_sse_subscribers 5",
            "# TYPE presence_status_fanout_seconds histogram",
            "presence_status_fanout_seconds_bucket{le=\"0.0005\"} 0",
            "presence_status_fanout_seconds_bucket{le=\"0.001\"} 1",
            "presence_expiry_lag_seconds_bucket{le=\"0.05\"} 1",
            "presence_expiry_lag_seconds_count 1",
            "presence_push_sends_total{provider=\"fcm\"} 0",
            "presence_webhook_backlog 0",
            "presence_streams{kind=\"admin\"} 0",
            "presence_connections 0",
        ] {
            assert!(page.lines().any(|l| l == line), "{line} in:\n{page}");
        }
        assert!(
            !page.contains("presence_cluster_"),
            "store metrics only in cluster mode"
        );
    }
}

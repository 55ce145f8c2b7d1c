//! `presence_webhook_deliveries_total{result}`, `presence_webhook_latency_seconds` and
//! `presence_webhook_backlog`, registered into `/metrics`.
//!
//! - `result` is `ok` (2xx), `retry` (another attempt is due), `dead` (given up) or `gone`
//!   (410: the endpoint was disabled).
//! - The latency is from the event (its commit) to its 2xx answer: what a receiver waits.
//! - The backlog is events of enabled endpoints not yet done with, as last claimed.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds (seconds) of the latency histogram's buckets.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 300.0, 3600.0,
];

/// How one attempt counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Result {
    Ok,
    Retry,
    Dead,
    Gone,
}

const RESULTS: [(Result, &str); 4] = [
    (Result::Ok, "ok"),
    (Result::Retry, "retry"),
    (Result::Dead, "dead"),
    (Result::Gone, "gone"),
];

pub struct WebhookMetrics {
    deliveries: Family<[(&'static str, &'static str); 1], Counter>,
    /// Each result's series, looked up once, in the order of [`RESULTS`].
    results: [Counter; 4],
    latency: Histogram,
    backlog: Gauge,
}

impl std::fmt::Debug for WebhookMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookMetrics")
            .field("backlog", &self.backlog.get())
            .finish_non_exhaustive()
    }
}

impl Default for WebhookMetrics {
    fn default() -> WebhookMetrics {
        let deliveries = Family::<[(&'static str, &'static str); 1], Counter>::default();
        let results =
            RESULTS.map(|(_, label)| deliveries.get_or_create_owned(&[("result", label)]));
        WebhookMetrics {
            deliveries,
            results,
            latency: Histogram::new(BUCKETS),
            backlog: Gauge::default(),
        }
    }
}

impl WebhookMetrics {
    pub fn counted(&self, r: Result) {
        let i = RESULTS.iter().position(|(x, _)| *x == r).unwrap_or(0);
        self.results[i].inc();
    }

    /// An event answered 2xx `d` after it happened.
    pub fn delivered_after(&self, d: Duration) {
        self.latency.observe(d.as_secs_f64());
    }

    pub fn set_backlog(&self, n: i64) {
        self.backlog.set(n);
    }

    /// Registers the webhook metrics into `/metrics`' registry.
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "presence_webhook_deliveries",
            "Webhook delivery attempts, by how they counted",
            self.deliveries.clone(),
        );
        r.register(
            "presence_webhook_latency_seconds",
            "From an event to its 2xx answer",
            self.latency.clone(),
        );
        r.register(
            "presence_webhook_backlog",
            "Events of enabled webhook endpoints not yet delivered or given up",
            self.backlog.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_latency_and_backlog_are_rendered() {
        let m = WebhookMetrics::default();
        m.counted(Result::Ok);
        m.counted(Result::Retry);
        m.counted(Result::Retry);
        m.delivered_after(Duration::from_millis(15));
        m.set_backlog(7);
        let mut r = Registry::default();
        m.register(&mut r);
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &r).unwrap();
        assert!(out.contains("presence_webhook_deliveries_total{result=\"ok\"} 1"));
        assert!(out.contains("presence_webhook_deliveries_total{result=\"retry\"} 2"));
        assert!(out.contains("presence_webhook_latency_seconds_bucket{le=\"0.01\"} 0"));
        assert!(out.contains("presence_webhook_latency_seconds_bucket{le=\"0.02\"} 1"));
        assert!(out.contains("presence_webhook_latency_seconds_count 1"));
        assert!(out.contains("presence_webhook_backlog 7"));
    }
}

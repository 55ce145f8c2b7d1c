//! `presence_webhook_deliveries_total{result}`, `presence_webhook_latency_seconds` and
//! `presence_webhook_backlog`, rendered into `/metrics`.
//!
//! - `result` is `ok` (2xx), `retry` (another attempt is due), `dead` (given up) or `gone`
//!   (410: the endpoint was disabled).
//! - The latency is from the event (its commit) to its 2xx answer: what a receiver waits.
//! - The backlog is events of enabled endpoints not yet done with, as last claimed.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

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

#[derive(Debug, Default)]
pub struct WebhookMetrics {
    results: [AtomicU64; 4],
    /// Cumulative counts per bucket, then `+Inf`.
    latency: [AtomicU64; BUCKETS.len() + 1],
    latency_sum_us: AtomicU64,
    backlog: AtomicI64,
}

impl WebhookMetrics {
    pub fn counted(&self, r: Result) {
        let i = RESULTS.iter().position(|(x, _)| *x == r).unwrap_or(0);
        self.results[i].fetch_add(1, Relaxed);
    }

    /// An event answered 2xx `d` after it happened.
    pub fn delivered_after(&self, d: Duration) {
        let s = d.as_secs_f64();
        for (bucket, bound) in self.latency.iter().zip(BUCKETS.iter()) {
            if s <= *bound {
                bucket.fetch_add(1, Relaxed);
            }
        }
        self.latency[BUCKETS.len()].fetch_add(1, Relaxed);
        self.latency_sum_us.fetch_add(d.as_micros() as u64, Relaxed);
    }

    pub fn set_backlog(&self, n: i64) {
        self.backlog.store(n, Relaxed);
    }

    pub fn render(&self, out: &mut String) {
        let name = "presence_webhook_deliveries_total";
        let _ = writeln!(
            out,
            "# HELP {name} Webhook delivery attempts, by how they counted.\n# TYPE {name} counter"
        );
        for (i, (_, label)) in RESULTS.iter().enumerate() {
            let v = self.results[i].load(Relaxed);
            let _ = writeln!(out, "{name}{{result=\"{label}\"}} {v}");
        }
        let name = "presence_webhook_latency_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} From an event to its 2xx answer.\n# TYPE {name} histogram"
        );
        for (bucket, bound) in self.latency.iter().zip(BUCKETS.iter()) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Relaxed)
            );
        }
        let count = self.latency[BUCKETS.len()].load(Relaxed);
        let sum = self.latency_sum_us.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"+Inf\"}} {count}\n{name}_sum {sum}\n{name}_count {count}"
        );
        let name = "presence_webhook_backlog";
        let _ = writeln!(
            out,
            "# HELP {name} Events of enabled webhook endpoints not yet delivered or given up.\n\
             # TYPE {name} gauge\n{name} {}",
            self.backlog.load(Relaxed)
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
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains("presence_webhook_deliveries_total{result=\"ok\"} 1"));
        assert!(out.contains("presence_webhook_deliveries_total{result=\"retry\"} 2"));
        assert!(out.contains("presence_webhook_latency_seconds_bucket{le=\"0.01\"} 0"));
        assert!(out.contains("presence_webhook_latency_seconds_bucket{le=\"0.02\"} 1"));
        assert!(out.contains("presence_webhook_latency_seconds_count 1"));
        assert!(out.contains("presence_webhook_backlog 7"));
    }
}

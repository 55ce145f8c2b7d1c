//! Per-provider push counters and the send latency histogram, rendered into `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use presence_protocol::PushProvider;
use strum::IntoEnumIterator;

/// Upper bounds (seconds) of the latency histogram's buckets.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default)]
struct Counters {
    sends: AtomicU64,
    failures: AtomicU64,
    retries: AtomicU64,
    invalid_tokens: AtomicU64,
    /// Cumulative counts per bucket, then `+Inf`.
    latency: [AtomicU64; BUCKETS.len() + 1],
    latency_sum_us: AtomicU64,
}

/// Picks one counter out of a provider's set.
type Field = fn(&Counters) -> &AtomicU64;

/// Counters for each provider.
#[derive(Debug, Default)]
pub struct PushMetrics {
    providers: [Counters; 4],
}

fn index(p: PushProvider) -> usize {
    match p {
        PushProvider::Webhook => 0,
        PushProvider::Fcm => 1,
        PushProvider::Apns => 2,
        PushProvider::Unifiedpush => 3,
    }
}

impl PushMetrics {
    fn of(&self, p: PushProvider) -> &Counters {
        &self.providers[index(p)]
    }

    pub fn sent(&self, p: PushProvider) {
        self.of(p).sends.fetch_add(1, Relaxed);
    }

    pub fn failed(&self, p: PushProvider) {
        self.of(p).failures.fetch_add(1, Relaxed);
    }

    pub fn retried(&self, p: PushProvider) {
        self.of(p).retries.fetch_add(1, Relaxed);
    }

    pub fn invalid_token(&self, p: PushProvider) {
        self.of(p).invalid_tokens.fetch_add(1, Relaxed);
    }

    /// One attempt's duration, whatever its outcome.
    pub fn observe(&self, p: PushProvider, took: Duration) {
        let c = self.of(p);
        let secs = took.as_secs_f64();
        for (bucket, bound) in c.latency.iter().zip(BUCKETS.iter().chain([&f64::INFINITY])) {
            if secs <= *bound {
                bucket.fetch_add(1, Relaxed);
            }
        }
        c.latency_sum_us.fetch_add(took.as_micros() as u64, Relaxed);
    }

    /// Pushes delivered, all providers.
    pub fn total_sent(&self) -> u64 {
        self.providers.iter().map(|c| c.sends.load(Relaxed)).sum()
    }

    /// Prometheus text for every push metric.
    pub fn render(&self, out: &mut String) {
        let counters: [(&str, &str, Field); 4] = [
            (
                "presence_push_sends_total",
                "Pushes delivered to a provider.",
                |c| &c.sends,
            ),
            (
                "presence_push_failures_total",
                "Push attempts that did not deliver, and pushes dropped unsent.",
                |c| &c.failures,
            ),
            (
                "presence_push_retries_total",
                "Push attempts retried because the provider was busy.",
                |c| &c.retries,
            ),
            (
                "presence_push_invalid_tokens_total",
                "Push registrations removed because the provider said the token is gone.",
                |c| &c.invalid_tokens,
            ),
        ];
        for (name, help, field) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for p in PushProvider::iter() {
                let v = field(self.of(p)).load(Relaxed);
                let _ = writeln!(out, "{name}{{provider=\"{}\"}} {v}", p.as_str());
            }
        }
        let name = "presence_push_latency_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Duration of one push attempt.\n# TYPE {name} histogram"
        );
        for p in PushProvider::iter() {
            let c = self.of(p);
            let provider = p.as_str();
            for (bucket, bound) in c.latency.iter().zip(BUCKETS.iter()) {
                let v = bucket.load(Relaxed);
                let _ = writeln!(
                    out,
                    "{name}_bucket{{provider=\"{provider}\",le=\"{bound}\"}} {v}"
                );
            }
            let count = c.latency[BUCKETS.len()].load(Relaxed);
            let sum = c.latency_sum_us.load(Relaxed) as f64 / 1e6;
            let _ = writeln!(
                out,
                "{name}_bucket{{provider=\"{provider}\",le=\"+Inf\"}} {count}\n\
                 {name}_sum{{provider=\"{provider}\"}} {sum}\n\
                 {name}_count{{provider=\"{provider}\"}} {count}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_labelled_per_provider() {
        let m = PushMetrics::default();
        m.observe(PushProvider::Apns, Duration::from_millis(20));
        m.observe(PushProvider::Apns, Duration::from_secs(20));
        m.sent(PushProvider::Fcm);
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains("presence_push_sends_total{provider=\"fcm\"} 1"));
        assert!(out.contains("presence_push_sends_total{provider=\"apns\"} 0"));
        assert!(
            out.contains("presence_push_latency_seconds_bucket{provider=\"apns\",le=\"0.01\"} 0")
        );
        assert!(
            out.contains("presence_push_latency_seconds_bucket{provider=\"apns\",le=\"0.025\"} 1")
        );
        assert!(
            out.contains("presence_push_latency_seconds_bucket{provider=\"apns\",le=\"10\"} 1")
        );
        assert!(
            out.contains("presence_push_latency_seconds_bucket{provider=\"apns\",le=\"+Inf\"} 2")
        );
        assert!(out.contains("presence_push_latency_seconds_count{provider=\"apns\"} 2"));
    }
}

//! Per-provider push counters and the send latency histogram, registered into `/metrics`;
//! every provider's series exists from start (at zero).

use std::time::Duration;

use presence_protocol::PushProvider;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds (seconds) of the latency histogram's buckets.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// `{provider="..."}`.
type Provider = [(&'static str, &'static str); 1];

/// One provider's series, looked up once.
struct Series {
    sends: Counter,
    failures: Counter,
    retries: Counter,
    invalid_tokens: Counter,
    latency: Histogram,
}

/// Counters for each provider.
pub struct PushMetrics {
    sends: Family<Provider, Counter>,
    failures: Family<Provider, Counter>,
    retries: Family<Provider, Counter>,
    invalid_tokens: Family<Provider, Counter>,
    latency: Family<Provider, Histogram, fn() -> Histogram>,
    providers: [Series; 4],
}

impl std::fmt::Debug for PushMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushMetrics")
            .field("sent", &self.total_sent())
            .finish_non_exhaustive()
    }
}

/// The providers in the order of [`PushMetrics::providers`].
const ORDER: [PushProvider; 4] = [
    PushProvider::Webhook,
    PushProvider::Fcm,
    PushProvider::Apns,
    PushProvider::Unifiedpush,
];

fn index(p: PushProvider) -> usize {
    match p {
        PushProvider::Webhook => 0,
        PushProvider::Fcm => 1,
        PushProvider::Apns => 2,
        PushProvider::Unifiedpush => 3,
    }
}

impl Default for PushMetrics {
    fn default() -> PushMetrics {
        let sends = Family::<Provider, Counter>::default();
        let failures = Family::<Provider, Counter>::default();
        let retries = Family::<Provider, Counter>::default();
        let invalid_tokens = Family::<Provider, Counter>::default();
        let latency: Family<Provider, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(BUCKETS));
        let providers = ORDER.map(|p| {
            let l = [("provider", p.as_str())];
            Series {
                sends: sends.get_or_create_owned(&l),
                failures: failures.get_or_create_owned(&l),
                retries: retries.get_or_create_owned(&l),
                invalid_tokens: invalid_tokens.get_or_create_owned(&l),
                latency: latency.get_or_create_owned(&l),
            }
        });
        PushMetrics {
            sends,
            failures,
            retries,
            invalid_tokens,
            latency,
            providers,
        }
    }
}

impl PushMetrics {
    fn of(&self, p: PushProvider) -> &Series {
        &self.providers[index(p)]
    }

    pub fn sent(&self, p: PushProvider) {
        self.of(p).sends.inc();
    }

    pub fn failed(&self, p: PushProvider) {
        self.of(p).failures.inc();
    }

    pub fn retried(&self, p: PushProvider) {
        self.of(p).retries.inc();
    }

    pub fn invalid_token(&self, p: PushProvider) {
        self.of(p).invalid_tokens.inc();
    }

    /// One attempt's duration, whatever its outcome.
    pub fn observe(&self, p: PushProvider, took: Duration) {
        self.of(p).latency.observe(took.as_secs_f64());
    }

    /// Pushes delivered, all providers.
    pub fn total_sent(&self) -> u64 {
        self.providers.iter().map(|c| c.sends.get()).sum()
    }

    /// Registers every push metric into `/metrics`' registry.
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "presence_push_sends",
            "Pushes delivered to a provider",
            self.sends.clone(),
        );
        r.register(
            "presence_push_failures",
            "Push attempts that did not deliver, and pushes dropped unsent",
            self.failures.clone(),
        );
        r.register(
            "presence_push_retries",
            "Push attempts retried because the provider was busy",
            self.retries.clone(),
        );
        r.register(
            "presence_push_invalid_tokens",
            "Push registrations removed because the provider said the token is gone",
            self.invalid_tokens.clone(),
        );
        r.register(
            "presence_push_latency_seconds",
            "Duration of one push attempt",
            self.latency.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_provider_has_its_place() {
        use strum::IntoEnumIterator;
        for p in PushProvider::iter() {
            assert_eq!(ORDER[index(p)], p);
        }
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_labelled_per_provider() {
        let m = PushMetrics::default();
        m.observe(PushProvider::Apns, Duration::from_millis(20));
        m.observe(PushProvider::Apns, Duration::from_secs(20));
        m.sent(PushProvider::Fcm);
        let mut r = Registry::default();
        m.register(&mut r);
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &r).unwrap();
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

//! Keys from an account's `jwks_url`: fetched under the outbound rules, cached.
//!
//! Guarantees:
//! - A fetch goes through [`crate::outbound`]: the URL passes the target rules (checked when
//!   the owner sets it, and again on every address its name resolves to), no proxy, at most
//!   64 KiB read, no redirect, one tenant at most a tenth of the fetch slots, and the whole
//!   fetch bounded by [`FETCH_TIMEOUT`].
//! - Keys are cached per URL for the answer's `Cache-Control: max-age` ([`DEFAULT_MAX_AGE`]
//!   without one, at most [`MAX_MAX_AGE`]; `no-store`/`no-cache`: not cached).
//! - A token whose `kid` the cached keys lack makes a refetch at most once per
//!   [`UNKNOWN_KID_EVERY`] per URL; within it, such tokens are refused from the cache.
//! - No lock is held across a fetch but the URL's own gate: a slow or huge URL delays only
//!   sign-ins that need that URL, and those that waited for a fetch use its result rather
//!   than fetch again. A failed fetch keeps the keys fetched before for
//!   [`UNKNOWN_KID_EVERY`] more.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rustc_hash::FxHashMap as HashMap;
use tokio::time::Instant;

use super::{Keys, Refusal};
use crate::outbound::{self, ClientOptions, PublicOnly, ReadError, Slots, TargetRules};

/// The longest one JWKS fetch may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long keys are kept when the answer says nothing.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);
/// The longest keys are kept, whatever the answer says.
pub const MAX_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// How often an unknown `kid` may make a refetch.
pub const UNKNOWN_KID_EVERY: Duration = Duration::from_secs(60);
/// JWKS fetches in flight at once, all accounts together.
const FETCH_SLOTS: usize = 50;

/// The cache of one URL's keys, and when to fetch them again.
#[derive(Default)]
pub struct Cached {
    keys: Option<Arc<Keys>>,
    fresh_until: Option<Instant>,
    /// When the last fetch (of any outcome) finished.
    fetched_at: Option<Instant>,
    /// When an unknown kid last made a refetch.
    kid_refetch_at: Option<Instant>,
}

/// What a sign-in does with the cache.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Use the cached keys.
    Use,
    /// Fetch (`for_kid`: because the cached keys lack the token's kid).
    Fetch { for_kid: bool },
}

impl Cached {
    /// What to do at `now` for a token whose kid the cached keys have (`kid_known`) or not.
    pub fn step(&self, now: Instant, kid_known: bool) -> Step {
        let fresh = self.keys.is_some() && self.fresh_until.is_some_and(|t| now < t);
        if !fresh {
            return Step::Fetch { for_kid: false };
        }
        if kid_known {
            return Step::Use;
        }
        match self.kid_refetch_at {
            Some(at) if now < at + UNKNOWN_KID_EVERY => Step::Use,
            _ => Step::Fetch { for_kid: true },
        }
    }

    /// Records a fetch that finished at `now`.
    pub fn record(&mut self, now: Instant, for_kid: bool, got: Result<(Keys, Duration), String>) {
        self.fetched_at = Some(now);
        if for_kid {
            self.kid_refetch_at = Some(now);
        }
        match got {
            Ok((keys, max_age)) => {
                self.keys = Some(Arc::new(keys));
                self.fresh_until = Some(now + max_age);
            }
            // The keys from before serve a while longer, then the next sign-in tries again.
            Err(_) if self.keys.is_some() => self.fresh_until = Some(now + UNKNOWN_KID_EVERY),
            Err(_) => self.fresh_until = None,
        }
    }

    pub fn keys(&self) -> Option<Arc<Keys>> {
        self.keys.clone()
    }
}

/// How long an answer's `Cache-Control` lets its keys be kept.
pub fn max_age(cache_control: Option<&str>) -> Duration {
    let Some(cc) = cache_control else {
        return DEFAULT_MAX_AGE;
    };
    let mut age = None;
    for d in cc.split(',').map(|d| d.trim().to_ascii_lowercase()) {
        if d == "no-store" || d == "no-cache" {
            return Duration::ZERO;
        }
        if let Some(v) = d.strip_prefix("max-age=") {
            age = v.trim_matches('"').parse::<u64>().ok();
        }
    }
    age.map_or(DEFAULT_MAX_AGE, |s| Duration::from_secs(s).min(MAX_MAX_AGE))
}

struct Url {
    cached: Mutex<Cached>,
    /// Held while this URL is fetched (never the map's lock).
    gate: tokio::sync::Mutex<()>,
}

/// Every account's fetched JWKS, by URL.
pub struct JwksCache {
    /// The client, or why none could be built (then every fetch fails with it).
    client: Result<reqwest::Client, String>,
    rules: TargetRules,
    slots: Arc<Slots>,
    urls: Mutex<HashMap<String, Arc<Url>>>,
}

impl JwksCache {
    /// A cache whose fetches follow `rules` (`--push-webhook-allow`).
    pub fn new(rules: TargetRules) -> JwksCache {
        let client = outbound::client(ClientOptions {
            roots: &[],
            http2_only: false,
            resolver: Some(Arc::new(PublicOnly {
                rules: rules.clone(),
            })),
            timeout: FETCH_TIMEOUT,
        });
        JwksCache {
            client,
            rules,
            slots: Slots::new(FETCH_SLOTS),
            urls: Mutex::new(HashMap::default()),
        }
    }

    /// Whether the owner may set this URL (the outbound target rules).
    pub fn check_url(&self, url: &str) -> Result<(), String> {
        self.rules.public(url).map(drop)
    }

    /// The keys of `url` for a token of `tenant` whose header is `h`: cached, or fetched
    /// by the rules above.
    pub async fn keys(
        &self,
        tenant: &str,
        url: &str,
        h: &super::Header,
    ) -> Result<Arc<Keys>, Refusal> {
        let entry = self
            .urls
            .lock()
            .entry(url.to_owned())
            .or_insert_with(|| {
                Arc::new(Url {
                    cached: Mutex::new(Cached::default()),
                    gate: tokio::sync::Mutex::new(()),
                })
            })
            .clone();
        let known = |c: &Cached| {
            c.keys
                .as_ref()
                .is_some_and(|k| !matches!(k.find(h), super::Lookup::UnknownKid))
        };
        let asked_at = Instant::now();
        let for_kid = {
            let c = entry.cached.lock();
            match c.step(asked_at, known(&c)) {
                Step::Use => return c.keys().ok_or_else(|| Refusal::new("no keys")),
                Step::Fetch { for_kid } => for_kid,
            }
        };
        let _gate = entry.gate.lock().await;
        {
            // A fetch that finished while this one waited answers it too.
            let c = entry.cached.lock();
            if c.fetched_at.is_some_and(|t| t >= asked_at) {
                return c
                    .keys()
                    .ok_or_else(|| Refusal::new("the JWKS could not be fetched"));
            }
        }
        let got = match tokio::time::timeout(FETCH_TIMEOUT, self.fetch(tenant, url)).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {FETCH_TIMEOUT:?}")),
        };
        if let Err(e) = &got {
            tracing::warn!(tenant, error = %e, "a JWKS fetch failed");
        }
        let mut c = entry.cached.lock();
        c.record(Instant::now(), for_kid, got);
        c.keys()
            .ok_or_else(|| Refusal::new("the JWKS could not be fetched"))
    }

    async fn fetch(&self, tenant: &str, url: &str) -> Result<(Keys, Duration), String> {
        let target = self.rules.public(url)?;
        let _slot = self
            .slots
            .try_take(tenant)
            .ok_or("too many JWKS fetches under way")?;
        let resp = self
            .client
            .as_ref()
            .map_err(Clone::clone)?
            .get(target)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if !resp.status().is_success() {
            return Err(format!("answered {}", resp.status().as_u16()));
        }
        let age = max_age(
            resp.headers()
                .get("cache-control")
                .and_then(|v| v.to_str().ok()),
        );
        let body = outbound::read_capped(resp).await.map_err(|e| match e {
            ReadError::TooLarge => e.to_string(),
            ReadError::Transport(t) => t.to_string(),
        })?;
        let value: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))?;
        Ok((Keys::parse(&value)?, age))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        let jwks = serde_json::json!({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": "a",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
        }]});
        Keys::parse(&jwks).unwrap()
    }

    #[test]
    fn cache_control_sets_how_long_keys_are_kept() {
        assert_eq!(max_age(None), DEFAULT_MAX_AGE);
        assert_eq!(
            max_age(Some("public, max-age=120")),
            Duration::from_secs(120)
        );
        assert_eq!(max_age(Some("max-age=0")), Duration::ZERO);
        assert_eq!(max_age(Some("no-store")), Duration::ZERO);
        assert_eq!(max_age(Some("max-age=999999999")), MAX_MAX_AGE);
        assert_eq!(max_age(Some("max-age=oops")), DEFAULT_MAX_AGE);
    }

    #[test]
    fn keys_are_used_until_their_max_age_then_fetched_again() {
        let t0 = Instant::now();
        let mut c = Cached::default();
        assert_eq!(c.step(t0, false), Step::Fetch { for_kid: false });
        c.record(t0, false, Ok((keys(), Duration::from_secs(600))));
        assert_eq!(c.step(t0 + Duration::from_secs(599), true), Step::Use);
        assert_eq!(
            c.step(t0 + Duration::from_secs(600), true),
            Step::Fetch { for_kid: false }
        );
    }

    #[test]
    fn an_unknown_kid_refetches_at_most_once_a_minute() {
        let t0 = Instant::now();
        let mut c = Cached::default();
        c.record(t0, false, Ok((keys(), Duration::from_secs(3600))));
        // The first unknown kid refetches at once, however fresh the keys are.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(c.step(t1, false), Step::Fetch { for_kid: true });
        c.record(t1, true, Ok((keys(), Duration::from_secs(3600))));
        // Within the minute, unknown kids are answered from the cache.
        for s in [0, 1, 30, 59] {
            assert_eq!(c.step(t1 + Duration::from_secs(s), false), Step::Use, "{s}");
        }
        assert_eq!(
            c.step(t1 + UNKNOWN_KID_EVERY, false),
            Step::Fetch { for_kid: true }
        );
    }

    #[test]
    fn a_failed_fetch_keeps_the_keys_from_before_for_a_minute() {
        let t0 = Instant::now();
        let mut c = Cached::default();
        c.record(t0, false, Ok((keys(), Duration::from_secs(10))));
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(c.step(t1, true), Step::Fetch { for_kid: false });
        c.record(t1, false, Err("down".into()));
        assert!(c.keys().is_some());
        assert_eq!(c.step(t1 + Duration::from_secs(59), true), Step::Use);
        assert_eq!(
            c.step(t1 + UNKNOWN_KID_EVERY, true),
            Step::Fetch { for_kid: false }
        );
        // Never any keys: nothing to use, every sign-in tries.
        let mut empty = Cached::default();
        empty.record(t0, false, Err("down".into()));
        assert!(empty.keys().is_none());
        assert_eq!(empty.step(t0, true), Step::Fetch { for_kid: false });
    }
}

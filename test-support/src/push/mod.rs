//! Wire-level doubles of the push services, started by tests on loopback: an OAuth2 token
//! endpoint and the FCM HTTP v1 send endpoint over HTTPS ([`fcm`]), APNs over HTTP/2 with TLS
//! ([`apns`]), and a UnifiedPush (RFC 8030) endpoint that decrypts RFC 8291 bodies with the
//! device's private key ([`unifiedpush`]).
//!
//! Each double checks what the real service checks (signatures, claims, headers, sizes,
//! value types) and answers as it would; what it found wrong is kept in
//! [`Double::violations`], which a test asserts empty. A test steers answers per token with
//! [`Behaviour`]: accept, token gone, busy (`429` with `Retry-After`), never answer, or an
//! answer far larger than any client should read.
//! Certificates come from one test CA ([`tls::TestCa`]) whose PEM the server trusts through
//! `--push-ca-file`.

pub mod apns;
pub mod fcm;
pub mod tls;
pub mod unifiedpush;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How a double answers pushes to one token.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Behaviour {
    /// Deliver.
    #[default]
    Accept,
    /// The token is dead (the provider's own answer for that).
    Gone,
    /// `429` with `Retry-After: {retry_after_secs}` for the next `times` attempts, then accept.
    Busy { times: u32, retry_after_secs: u64 },
    /// Never answer.
    Hang,
    /// Answer as delivered, but the device never gets it (out of coverage, app killed).
    Lose,
    /// `500` with a body of [`tls::FLOOD_BYTES`] (far more than a client should read).
    Flood,
}

/// A push the double accepted and handed to the device.
#[derive(Debug, Clone)]
pub struct Received {
    /// The device token or endpoint id it was sent to.
    pub token: String,
    /// The push payload (`{"v": 1, "type": ...}`), as the app would get it.
    pub payload: Value,
    /// The bytes the app is handed: the FCM `presence` string, the APNs `presence` object
    /// as JSON, the decrypted UnifiedPush message.
    pub app_bytes: String,
    /// Request headers, lower-case names.
    pub headers: HashMap<String, String>,
    pub at: Instant,
}

/// What every double shares: behaviours, received pushes, attempts and violations.
#[derive(Clone)]
pub struct Double {
    inner: Arc<DoubleState>,
}

struct DoubleState {
    behaviours: Mutex<HashMap<String, Behaviour>>,
    violations: Mutex<Vec<String>>,
    attempts: Mutex<Vec<(String, Instant)>>,
    tx: mpsc::UnboundedSender<Received>,
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Received>>,
    received: AtomicU64,
    flooded: Arc<AtomicU64>,
}

/// What the double does with one request, decided from the token's behaviour.
pub(crate) enum Answer {
    Deliver,
    Lose,
    Gone,
    Busy(u64),
    Hang,
    Flood,
}

impl Default for Double {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Double {
            inner: Arc::new(DoubleState {
                behaviours: Mutex::new(HashMap::new()),
                violations: Mutex::new(Vec::new()),
                attempts: Mutex::new(Vec::new()),
                tx,
                rx: tokio::sync::Mutex::new(rx),
                received: AtomicU64::new(0),
                flooded: Arc::new(AtomicU64::new(0)),
            }),
        }
    }
}

impl Double {
    pub fn set(&self, token: &str, b: Behaviour) {
        self.inner.behaviours.lock().insert(token.to_owned(), b);
    }

    /// What the double found wrong in requests so far.
    pub fn violations(&self) -> Vec<String> {
        self.inner.violations.lock().clone()
    }

    /// Asserts every request so far was what the real service accepts.
    pub fn assert_no_violations(&self) {
        let v = self.violations();
        assert!(
            v.is_empty(),
            "the double saw requests the service refuses: {v:#?}"
        );
    }

    pub(crate) fn violation(&self, what: impl Into<String>) {
        let what = what.into();
        eprintln!("push double: {what}");
        self.inner.violations.lock().push(what);
    }

    /// Send attempts per token, with their times (every request, whatever the answer).
    pub fn attempts(&self, token: &str) -> Vec<Instant> {
        self.inner
            .attempts
            .lock()
            .iter()
            .filter(|(t, _)| t == token)
            .map(|(_, at)| *at)
            .collect()
    }

    /// Send attempts so far, to any token.
    pub fn attempts_total(&self) -> usize {
        self.inner.attempts.lock().len()
    }

    /// Pushes delivered so far.
    pub fn received_count(&self) -> u64 {
        self.inner.received.load(Relaxed)
    }

    /// Bytes of flood answers handed to connections so far (about what clients read).
    pub fn flooded_bytes(&self) -> u64 {
        self.inner.flooded.load(Relaxed)
    }

    /// A flood answer ([`Behaviour::Flood`]), counted in [`Double::flooded_bytes`].
    pub(crate) fn flood(&self) -> tls::Resp {
        tls::flood(500, self.inner.flooded.clone())
    }

    /// The next push handed to a device, waiting at most `within`.
    pub async fn next(&self, within: Duration) -> Option<Received> {
        let mut rx = self.inner.rx.lock().await;
        tokio::time::timeout(within, rx.recv()).await.ok().flatten()
    }

    /// The next push whose payload has this `type`, skipping others.
    pub async fn next_of(&self, kind: &str, within: Duration) -> Option<Received> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let r = self.next(left).await?;
            if r.payload["type"] == kind {
                return Some(r);
            }
        }
    }

    /// Records the attempt and decides the answer.
    pub(crate) fn answer(&self, token: &str) -> Answer {
        self.inner
            .attempts
            .lock()
            .push((token.to_owned(), Instant::now()));
        let mut map = self.inner.behaviours.lock();
        match map.get_mut(token).cloned().unwrap_or_default() {
            Behaviour::Accept => Answer::Deliver,
            Behaviour::Lose => Answer::Lose,
            Behaviour::Gone => Answer::Gone,
            Behaviour::Hang => Answer::Hang,
            Behaviour::Flood => Answer::Flood,
            Behaviour::Busy {
                times,
                retry_after_secs,
            } => {
                if times <= 1 {
                    map.remove(token);
                } else {
                    map.insert(
                        token.to_owned(),
                        Behaviour::Busy {
                            times: times - 1,
                            retry_after_secs,
                        },
                    );
                }
                Answer::Busy(retry_after_secs)
            }
        }
    }

    pub(crate) fn deliver(&self, mut r: Received) {
        r.at = Instant::now();
        self.inner.received.fetch_add(1, Relaxed);
        let _ = self.inner.tx.send(r);
    }
}

/// Lower-cased header map of a request.
pub(crate) fn headers_of(h: &hyper::HeaderMap) -> HashMap<String, String> {
    h.iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// Splits and decodes a compact JWS, checking its signature with `verify`.
pub(crate) fn read_jwt(
    jwt: &str,
    verify: impl Fn(&[u8], &[u8]) -> bool,
) -> Result<(Value, Value), String> {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    let parts: Vec<&str> = jwt.split('.').collect();
    let [h, c, s] = parts[..] else {
        return Err(format!("not a compact JWS: {jwt}"));
    };
    let decode = |p: &str| {
        B64.decode(p)
            .map_err(|e| format!("JWT part not base64url: {e}"))
    };
    let header: Value =
        serde_json::from_slice(&decode(h)?).map_err(|e| format!("JWT header not JSON: {e}"))?;
    let claims: Value =
        serde_json::from_slice(&decode(c)?).map_err(|e| format!("JWT claims not JSON: {e}"))?;
    let sig = decode(s)?;
    if !verify(format!("{h}.{c}").as_bytes(), &sig) {
        return Err("JWT signature does not verify with the account's public key".into());
    }
    Ok((header, claims))
}

pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

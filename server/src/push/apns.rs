//! The `apns` provider: HTTP/2 over TLS to `/3/device/{token}` with an ES256 provider token.
//!
//! - The provider token is made once and reused for [`TOKEN_REUSE`] (Apple wants 20 to 60
//!   minutes; sooner earns `TooManyProviderTokenUpdates`), or until APNs calls it expired.
//! - Pushes are background pushes (`apns-push-type: background`, `apns-priority: 5`,
//!   `content-available`), collapsed under `presence`, expiring with the lease they serve.
//! - `410` and `400 BadDeviceToken` mean the token is gone.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use async_trait::async_trait;
use presence_protocol::{PushProvider, PushRegistration};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::json;
use tokio::time::Instant;

use super::http;
use super::jwt::SigningKey;
use super::{Delivery, MAX_PAYLOAD_BYTES, PushError, PushSender, Refusal};

/// How long one provider token is used.
pub const TOKEN_REUSE: Duration = Duration::from_secs(40 * 60);

/// `--apns-key`, `--apns-key-id`, `--apns-team-id`, `--apns-topic`, `--apns-endpoint`.
#[derive(Debug, Clone)]
pub struct ApnsConfig {
    pub key: PathBuf,
    pub key_id: String,
    pub team_id: String,
    pub topic: String,
    pub endpoint: String,
}

#[derive(Deserialize)]
struct Reason {
    reason: String,
}

struct ProviderToken {
    value: String,
    made: Instant,
}

pub struct ApnsSender {
    client: reqwest::Client,
    endpoint: String,
    topic: String,
    key_id: String,
    team_id: String,
    key: SigningKey,
    token: parking_lot::Mutex<Option<ProviderToken>>,
    tokens_made: AtomicU64,
}

impl ApnsSender {
    pub fn new(config: &ApnsConfig, roots: &[reqwest::Certificate]) -> Result<Self, String> {
        let file = config.key.display();
        let pem = std::fs::read(&config.key).map_err(|e| format!("--apns-key {file}: {e}"))?;
        let key = SigningKey::es256(&pem).map_err(|e| format!("--apns-key {file}: {e}"))?;
        for (flag, v) in [
            ("--apns-key-id", &config.key_id),
            ("--apns-team-id", &config.team_id),
            ("--apns-topic", &config.topic),
        ] {
            if v.trim().is_empty() {
                return Err(format!("{flag} is required with --apns-key"));
            }
        }
        let endpoint = config.endpoint.trim_end_matches('/').to_owned();
        reqwest::Url::parse(&endpoint)
            .map_err(|e| format!("--apns-endpoint {endpoint}: not a URL ({e})"))?;
        Ok(ApnsSender {
            client: http::client(roots, true, None)?,
            endpoint,
            topic: config.topic.clone(),
            key_id: config.key_id.clone(),
            team_id: config.team_id.clone(),
            key,
            token: parking_lot::Mutex::new(None),
            tokens_made: AtomicU64::new(0),
        })
    }

    /// Provider tokens made so far.
    pub fn tokens_made(&self) -> u64 {
        self.tokens_made.load(Relaxed)
    }

    fn provider_token(&self) -> Result<String, PushError> {
        let mut cached = self.token.lock();
        if let Some(t) = cached.as_ref()
            && t.made.elapsed() < TOKEN_REUSE
        {
            return Ok(t.value.clone());
        }
        let value = self
            .key
            .sign(
                json!({"kid": self.key_id}),
                &json!({"iss": self.team_id, "iat": chrono::Utc::now().timestamp()}),
            )
            .map_err(PushError::Failed)?;
        self.tokens_made.fetch_add(1, Relaxed);
        *cached = Some(ProviderToken {
            value: value.clone(),
            made: Instant::now(),
        });
        Ok(value)
    }
}

#[async_trait]
impl PushSender for ApnsSender {
    fn provider(&self) -> PushProvider {
        PushProvider::Apns
    }

    fn validate(&self, reg: &PushRegistration) -> Result<(), Refusal> {
        let t = &reg.token;
        if t.len() > 400 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Refusal::new(
                "token",
                "not an APNs device token (hex digits)",
            ));
        }
        Ok(())
    }

    async fn send(&self, d: &Delivery<'_>) -> Result<(), PushError> {
        let body = json!({"aps": {"content-available": 1}, "presence": d.job.payload}).to_string();
        if body.len() > MAX_PAYLOAD_BYTES {
            return Err(PushError::Failed(format!(
                "payload of {} bytes is over APNs' {MAX_PAYLOAD_BYTES}",
                body.len()
            )));
        }
        let token = self.provider_token()?;
        let url = format!("{}/3/device/{}", self.endpoint, d.job.reg.token);
        let resp = self
            .client
            .post(url)
            // As Apple writes it: `authorization: bearer <provider token>`.
            .header(reqwest::header::AUTHORIZATION, format!("bearer {token}"))
            .header("apns-push-type", "background")
            .header("apns-priority", "5")
            .header("apns-topic", &self.topic)
            .header("apns-collapse-id", "presence")
            .header(
                "apns-expiration",
                (d.job.expires_at / 1000).max(0).to_string(),
            )
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(http::transport)?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let headers = resp.headers().clone();
        let text = http::read_answer(resp).await?;
        let reason = serde_json::from_str::<Reason>(&text)
            .map(|r| r.reason)
            .unwrap_or_default();
        match (status, reason.as_str()) {
            (StatusCode::GONE, _) | (StatusCode::BAD_REQUEST, "BadDeviceToken") => {
                Err(PushError::Gone(format!("APNs answered {status} {reason}")))
            }
            (StatusCode::FORBIDDEN, "ExpiredProviderToken" | "InvalidProviderToken") => {
                *self.token.lock() = None;
                Err(PushError::Busy {
                    detail: format!("APNs refused the provider token ({reason}); making a new one"),
                    retry_after: None,
                })
            }
            _ => Err(http::busy_or_failed(status, &headers, &text)),
        }
    }
}

//! The `fcm` provider: FCM HTTP v1 with an OAuth2 access token from the service account's
//! `token_uri` (RFC 7523 JWT bearer grant, RS256).
//!
//! - One token serves every send until a minute before it ends; concurrent sends wait for the
//!   one request in flight rather than each asking (a `401` drops it and the send is retried).
//! - Data values are strings: the payload JSON goes as the `presence` string; the whole message
//!   is at most [`MAX_PAYLOAD_BYTES`]. `404` (`UNREGISTERED`) means the token is gone.

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

/// The OAuth2 scope FCM sends need.
pub const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// A cached token is replaced this long before it ends.
const REFRESH_BEFORE_END: Duration = Duration::from_secs(60);

/// `--fcm-credentials` and `--fcm-endpoint`.
#[derive(Debug, Clone)]
pub struct FcmConfig {
    pub credentials: PathBuf,
    pub endpoint: String,
}

/// The fields of a Google service-account key file we use.
#[derive(Deserialize)]
struct ServiceAccount {
    project_id: String,
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
    token_uri: String,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default = "default_expires_in")]
    expires_in: u64,
}

fn default_expires_in() -> u64 {
    3600
}

struct AccessToken {
    value: String,
    refresh_at: Instant,
}

pub struct FcmSender {
    client: reqwest::Client,
    send_url: String,
    client_email: String,
    key_id: Option<String>,
    key: SigningKey,
    token_uri: String,
    token: tokio::sync::Mutex<Option<AccessToken>>,
    token_requests: AtomicU64,
}

impl FcmSender {
    pub fn new(config: &FcmConfig, roots: &[reqwest::Certificate]) -> Result<Self, String> {
        let file = config.credentials.display();
        let text = std::fs::read_to_string(&config.credentials)
            .map_err(|e| format!("--fcm-credentials {file}: {e}"))?;
        let sa: ServiceAccount = serde_json::from_str(&text).map_err(|e| {
            format!("--fcm-credentials {file}: not a service-account key file ({e})")
        })?;
        let key = SigningKey::rs256(sa.private_key.as_bytes())
            .map_err(|e| format!("--fcm-credentials {file}: private_key is {e}"))?;
        reqwest::Url::parse(&sa.token_uri)
            .map_err(|e| format!("--fcm-credentials {file}: token_uri is not a URL ({e})"))?;
        let endpoint = config.endpoint.trim_end_matches('/');
        reqwest::Url::parse(endpoint)
            .map_err(|e| format!("--fcm-endpoint {endpoint}: not a URL ({e})"))?;
        Ok(FcmSender {
            client: http::client(roots, false, None)?,
            send_url: format!("{endpoint}/v1/projects/{}/messages:send", sa.project_id),
            client_email: sa.client_email,
            key_id: sa.private_key_id,
            key,
            token_uri: sa.token_uri,
            token: tokio::sync::Mutex::new(None),
            token_requests: AtomicU64::new(0),
        })
    }

    /// OAuth token requests made so far.
    pub fn token_requests(&self) -> u64 {
        self.token_requests.load(Relaxed)
    }

    async fn access_token(&self) -> Result<String, PushError> {
        let mut cached = self.token.lock().await;
        if let Some(t) = cached.as_ref()
            && Instant::now() < t.refresh_at
        {
            return Ok(t.value.clone());
        }
        let t = self.fetch_token().await?;
        let value = t.value.clone();
        *cached = Some(t);
        Ok(value)
    }

    async fn fetch_token(&self) -> Result<AccessToken, PushError> {
        self.token_requests.fetch_add(1, Relaxed);
        let iat = chrono::Utc::now().timestamp();
        let mut header = json!({"typ": "JWT"});
        if let Some(kid) = &self.key_id {
            header["kid"] = json!(kid);
        }
        let claims = json!({
            "iss": self.client_email,
            "scope": SCOPE,
            "aud": self.token_uri,
            "iat": iat,
            "exp": iat + 3600,
        });
        let assertion = self.key.sign(header, &claims).map_err(PushError::Failed)?;
        let started = Instant::now();
        let resp = self
            .client
            .post(&self.token_uri)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(format!(
                "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}"
            ))
            .send()
            .await
            .map_err(http::transport)?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = http::read_answer(resp).await?;
        if !status.is_success() {
            return Err(match http::busy_or_failed(status, &headers, &text) {
                PushError::Failed(d) => PushError::Failed(format!("OAuth token endpoint {d}")),
                busy => busy,
            });
        }
        let answer: TokenAnswer = serde_json::from_str(&text).map_err(|e| {
            PushError::Failed(format!("OAuth token endpoint answered no token ({e})"))
        })?;
        let lifetime = Duration::from_secs(answer.expires_in);
        Ok(AccessToken {
            value: answer.access_token,
            refresh_at: started + lifetime.saturating_sub(REFRESH_BEFORE_END),
        })
    }
}

#[async_trait]
impl PushSender for FcmSender {
    fn provider(&self) -> PushProvider {
        PushProvider::Fcm
    }

    fn validate(&self, reg: &PushRegistration) -> Result<(), Refusal> {
        let ok = reg
            .token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b'.'));
        if !ok {
            return Err(Refusal::new(
                "token",
                "not an FCM registration token (letters, digits, '-', '_', ':' only)",
            ));
        }
        Ok(())
    }

    async fn send(&self, d: &Delivery<'_>) -> Result<(), PushError> {
        let body = json!({
            "message": {
                "token": d.job.reg.token,
                "data": {"presence": d.json},
                "android": {
                    "priority": "high",
                    "ttl": format!("{}s", d.job.ttl.as_secs()),
                    "collapse_key": "presence",
                },
            }
        })
        .to_string();
        if body.len() > MAX_PAYLOAD_BYTES {
            return Err(PushError::Failed(format!(
                "message of {} bytes is over FCM's {MAX_PAYLOAD_BYTES}",
                body.len()
            )));
        }
        let token = self.access_token().await?;
        let resp = self
            .client
            .post(&self.send_url)
            .bearer_auth(token)
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
        match status {
            StatusCode::NOT_FOUND => Err(PushError::Gone(format!(
                "FCM answered 404: {}",
                http::snippet(&text)
            ))),
            StatusCode::UNAUTHORIZED => {
                *self.token.lock().await = None;
                Err(PushError::Busy {
                    detail: "FCM refused the access token; asking for a new one".to_owned(),
                    retry_after: None,
                })
            }
            _ => Err(http::busy_or_failed(status, &headers, &text)),
        }
    }
}

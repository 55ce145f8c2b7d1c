//! Push delivery: the [`PushSender`] trait, the `webhook` provider, and the dispatcher that
//! keeps push off every request's path.
//!
//! Guarantees: a push never blocks the request or timer that caused it (each send runs in its
//! own task, at most [`MAX_IN_FLIGHT`] at once; beyond that a push is dropped and counted). A
//! failing provider is logged and counted in `/metrics`, nothing more. Webhook targets must be
//! on the operator's allow-list (`--push-webhook-allow`), so a device cannot make the server
//! call arbitrary hosts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use presence_protocol::{PushPayload, PushProvider, PushRegistration};
use tokio::sync::Semaphore;

use crate::metrics::Metrics;

/// Pushes allowed in flight at once; more are dropped (and counted) rather than queued.
pub const MAX_IN_FLIGHT: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("provider {0} is not configured on this server")]
    NotConfigured(&'static str),
    #[error("push target rejected: {0}")]
    Rejected(String),
    #[error("push delivery failed: {0}")]
    Delivery(String),
}

/// One push provider (webhook today; FCM, APNs and UnifiedPush later).
#[async_trait]
pub trait PushSender: Send + Sync + 'static {
    fn provider(&self) -> PushProvider;
    /// Checks a registration token when a device registers it.
    fn validate_token(&self, token: &str) -> Result<(), String>;
    async fn send(&self, token: &str, payload: &PushPayload) -> Result<(), PushError>;
}

/// POSTs the JSON payload to the URL the device registered as its token.
pub struct WebhookSender {
    client: reqwest::Client,
    allow: Vec<String>,
}

impl WebhookSender {
    pub fn new(allow: Vec<String>) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        WebhookSender {
            client,
            allow: allow
                .into_iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
        }
    }
}

#[async_trait]
impl PushSender for WebhookSender {
    fn provider(&self) -> PushProvider {
        PushProvider::Webhook
    }

    fn validate_token(&self, token: &str) -> Result<(), String> {
        let url = reqwest::Url::parse(token).map_err(|e| format!("not a URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("must be an http or https URL".to_owned());
        }
        let host = url.host_str().unwrap_or("").to_ascii_lowercase();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if !self.allow.iter().any(|a| a == host) {
            return Err(format!(
                "host {host:?} is not in this server's --push-webhook-allow list"
            ));
        }
        Ok(())
    }

    async fn send(&self, token: &str, payload: &PushPayload) -> Result<(), PushError> {
        self.validate_token(token).map_err(PushError::Rejected)?;
        let resp = self
            .client
            .post(token)
            .json(payload)
            .send()
            .await
            .map_err(|e| PushError::Delivery(e.to_string()))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(PushError::Delivery(format!(
                "webhook answered {}",
                resp.status()
            )))
        }
    }
}

/// Routes payloads to their provider, off the caller's path.
pub struct Pusher {
    senders: HashMap<PushProvider, Arc<dyn PushSender>>,
    in_flight: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

impl Pusher {
    pub fn new(senders: Vec<Arc<dyn PushSender>>, metrics: Arc<Metrics>) -> Self {
        Pusher {
            senders: senders.into_iter().map(|s| (s.provider(), s)).collect(),
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            metrics,
        }
    }

    /// Validates a registration: webhook targets must be allowed; other providers need a
    /// non-empty token.
    pub fn validate(&self, reg: &PushRegistration) -> Result<(), String> {
        if reg.token.trim().is_empty() {
            return Err("must not be empty".to_owned());
        }
        if reg.token.len() > 4096 {
            return Err("longer than 4096 bytes".to_owned());
        }
        match self.senders.get(&reg.provider) {
            Some(s) => s.validate_token(&reg.token),
            None => Ok(()),
        }
    }

    /// Sends in the background. Must be called from within a tokio runtime.
    pub fn dispatch(&self, reg: &PushRegistration, payload: PushPayload) {
        use std::sync::atomic::Ordering::Relaxed;
        let Some(sender) = self.senders.get(&reg.provider).cloned() else {
            self.metrics.push_failures.fetch_add(1, Relaxed);
            tracing::debug!(
                provider = reg.provider.as_str(),
                "push provider not configured"
            );
            return;
        };
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            self.metrics.push_failures.fetch_add(1, Relaxed);
            tracing::warn!("push dropped: too many pushes in flight");
            return;
        };
        let metrics = self.metrics.clone();
        let token = reg.token.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match sender.send(&token, &payload).await {
                Ok(()) => {
                    metrics.push_sends.fetch_add(1, Relaxed);
                }
                Err(e) => {
                    metrics.push_failures.fetch_add(1, Relaxed);
                    tracing::warn!(error = %e, session_id = payload.session_id(), "push failed");
                }
            }
        });
    }
}

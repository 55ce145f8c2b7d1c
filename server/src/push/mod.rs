//! Push delivery: the [`PushSender`] seam, one sender per provider (`webhook`, `fcm`, `apns`,
//! `unifiedpush`), and the [`Pusher`] that keeps every send off the request's path.
//!
//! Guarantees:
//! - A push never blocks the request or timer that caused it: each send runs in its own task.
//!   Each provider has its own pools, so a hung provider holds up only its own pushes: at most
//!   [`MAX_PENDING`] pushes under way and [`MAX_IN_FLIGHT`] requests in flight. One account
//!   holds at most a tenth of each ([`crate::outbound::slots`]): its hung or slow targets fill
//!   its own share, and other accounts' pushes still go out. A push beyond its account's share
//!   of pushes under way is dropped and counted; one beyond its share of requests waits, until
//!   its deadline at most.
//! - A request slot is held only while a request is in flight, never during a backoff.
//! - A provider that is busy (`429`, `5xx`, a timeout) is retried with capped exponential
//!   backoff, honouring `Retry-After`, and never past the job's deadline (the end of the lease
//!   a renew push is meant to renew).
//! - A provider that says the token is gone removes the registration: the [`DeadToken`] goes
//!   to the backend, which clears it so the session's next heartbeat gets the active lease.
//! - Registration refuses a provider this server has no sender for (`provider`), so a device
//!   never holds a background lease that nothing can renew.
//! - Every outbound connection trusts the built-in Mozilla roots plus `--push-ca-file`, takes
//!   no proxy from the environment and reads at most 64 KiB of an answer; targets a device
//!   chose (webhook, UnifiedPush) are held to the outbound target rules
//!   ([`crate::outbound`]).

mod apns;
mod fcm;
pub(crate) mod http;
mod jwt;
mod metrics;
#[cfg(test)]
mod tests;
mod unifiedpush;
mod webhook;
pub mod webpush;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use presence_protocol::{PushBody, PushPayload, PushProvider, PushRegistration};
use tokio::sync::mpsc;
use tokio::time::Instant;

pub use apns::{ApnsConfig, ApnsSender};
pub use fcm::{FcmConfig, FcmSender};
pub use metrics::PushMetrics;
pub use unifiedpush::UnifiedPushSender;
pub use webhook::WebhookSender;

use crate::outbound::{Slots, TargetRules};

/// Requests one provider may have in flight at once, a tenth of them per account; more wait.
pub const MAX_IN_FLIGHT: usize = 512;
/// Pushes one provider may have under way (in flight, waiting or backing off), a tenth of
/// them per account; more are dropped (and counted).
pub const MAX_PENDING: usize = 4096;
/// Payloads larger than this are refused by FCM and APNs; we hold every provider to it.
pub const MAX_PAYLOAD_BYTES: usize = 4096;
/// Longest one attempt may take before it counts as a busy provider.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// First retry delay; doubled per attempt up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Why one delivery attempt did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The provider says the token will never work again.
    #[error("token is gone: {0}")]
    Gone(String),
    /// Worth another try later (`429`, `5xx`, a timeout or a connection failure).
    #[error("provider busy: {detail}")]
    Busy {
        detail: String,
        retry_after: Option<Duration>,
    },
    /// Will not work on a retry either (a refused target, a bad request).
    #[error("push failed: {0}")]
    Failed(String),
}

impl PushError {
    fn busy(detail: impl Into<String>) -> Self {
        PushError::Busy {
            detail: detail.into(),
            retry_after: None,
        }
    }
}

/// What a registration check found wrong: the request field and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub field: &'static str,
    pub detail: String,
}

impl Refusal {
    pub fn new(field: &'static str, detail: impl Into<String>) -> Self {
        Refusal {
            field,
            detail: detail.into(),
        }
    }
}

/// One push to one session, as the backend decided it.
#[derive(Debug, Clone)]
pub struct PushJob {
    /// The session's account: what its share of the outbound slots is counted against.
    pub account_id: String,
    pub reg: PushRegistration,
    pub payload: PushPayload,
    /// Server time (ms) after which the push is worth nothing: the lease end for `renew` and
    /// `status`, a short while for `session_ended`.
    pub expires_at: i64,
    /// Time left until `expires_at` when the job was made.
    pub ttl: Duration,
}

impl PushJob {
    pub fn new(
        account_id: &str,
        reg: PushRegistration,
        payload: PushPayload,
        expires_at: i64,
        now: i64,
    ) -> Self {
        PushJob {
            account_id: account_id.to_owned(),
            reg,
            payload,
            expires_at,
            ttl: Duration::from_millis((expires_at - now).max(0) as u64),
        }
    }

    /// Renew pushes must wake the device now.
    pub fn urgent(&self) -> bool {
        matches!(self.payload.body, PushBody::Renew { .. })
    }
}

/// What one attempt is asked to deliver.
pub struct Delivery<'a> {
    pub job: &'a PushJob,
    /// The payload as JSON, made once per job.
    pub json: &'a str,
    /// An id made once per job, the same on every attempt (`webhook-id`).
    pub id: &'a str,
}

/// One push provider.
#[async_trait]
pub trait PushSender: Send + Sync + 'static {
    fn provider(&self) -> PushProvider;
    /// Checks a registration when a device registers it (token and keys).
    fn validate(&self, reg: &PushRegistration) -> Result<(), Refusal>;
    /// One delivery attempt; retries are the [`Pusher`]'s.
    async fn send(&self, d: &Delivery<'_>) -> Result<(), PushError>;
}

/// A registration a provider declared dead, for the backend to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadToken {
    pub session_id: String,
    pub reg: PushRegistration,
}

/// The providers an operator configured (`--fcm-*`, `--apns-*`, `--push-ca-file`).
#[derive(Debug, Clone, Default)]
pub struct PushConfig {
    /// Hosts webhook targets must be on; UnifiedPush endpoints on them may be `http` and
    /// loopback or private.
    pub webhook_allow: Vec<String>,
    pub fcm: Option<FcmConfig>,
    pub apns: Option<ApnsConfig>,
    /// Extra root certificates (PEM) trusted for every provider.
    pub ca_file: Option<PathBuf>,
}

impl PushConfig {
    /// Builds the senders: webhook and UnifiedPush always, FCM and APNs when configured. A
    /// key or credentials file that cannot be read or parsed is an error naming the file.
    pub fn senders(&self) -> Result<Vec<Arc<dyn PushSender>>, String> {
        let roots = match &self.ca_file {
            Some(path) => http::load_ca_file(path)?,
            None => Vec::new(),
        };
        let rules = Arc::new(TargetRules::new(&self.webhook_allow));
        let mut senders: Vec<Arc<dyn PushSender>> = vec![
            Arc::new(WebhookSender::new(rules.clone(), &roots)?),
            Arc::new(UnifiedPushSender::new(rules, &roots)?),
        ];
        if let Some(fcm) = &self.fcm {
            senders.push(Arc::new(FcmSender::new(fcm, &roots)?));
        }
        if let Some(apns) = &self.apns {
            senders.push(Arc::new(ApnsSender::new(apns, &roots)?));
        }
        Ok(senders)
    }
}

struct Lane {
    sender: Arc<dyn PushSender>,
    /// Pushes under way.
    pending: Arc<Slots>,
    /// Requests in flight.
    in_flight: Arc<Slots>,
}

/// Routes jobs to their provider, off the caller's path, with retries and dead-token removal.
pub struct Pusher {
    lanes: HashMap<PushProvider, Lane>,
    metrics: Arc<PushMetrics>,
    dead_tx: mpsc::UnboundedSender<DeadToken>,
    dead_rx: Mutex<Option<mpsc::UnboundedReceiver<DeadToken>>>,
}

impl Pusher {
    pub fn new(senders: Vec<Arc<dyn PushSender>>, metrics: Arc<PushMetrics>) -> Self {
        let (dead_tx, dead_rx) = mpsc::unbounded_channel();
        Pusher {
            lanes: senders
                .into_iter()
                .map(|sender| {
                    let lane = Lane {
                        sender,
                        pending: Slots::new(MAX_PENDING),
                        in_flight: Slots::new(MAX_IN_FLIGHT),
                    };
                    (lane.sender.provider(), lane)
                })
                .collect(),
            metrics,
            dead_tx,
            dead_rx: Mutex::new(Some(dead_rx)),
        }
    }

    /// The registrations providers declared dead, once: the backend that owns the sessions
    /// takes this at start.
    pub fn take_dead_tokens(&self) -> Option<mpsc::UnboundedReceiver<DeadToken>> {
        self.dead_rx.lock().take()
    }

    /// Checks a registration: the provider must be configured here, and its sender must
    /// accept the token and keys.
    pub fn validate(&self, reg: &PushRegistration) -> Result<(), Refusal> {
        if reg.token.trim().is_empty() {
            return Err(Refusal::new("token", "must not be empty"));
        }
        if reg.token.len() > 4096 {
            return Err(Refusal::new("token", "longer than 4096 bytes"));
        }
        if reg.secret.is_some() && reg.provider != PushProvider::Webhook {
            return Err(Refusal::new("secret", "only for the webhook provider"));
        }
        let Some(lane) = self.lanes.get(&reg.provider) else {
            return Err(Refusal::new(
                "provider",
                format!(
                    "push provider {} is not configured on this server",
                    reg.provider.as_str()
                ),
            ));
        };
        lane.sender.validate(reg)
    }

    /// Sends in the background, retrying a busy provider until the job's deadline. Must be
    /// called from within a tokio runtime.
    pub fn dispatch(&self, job: PushJob) {
        let provider = job.reg.provider;
        let Some(lane) = self.lanes.get(&provider) else {
            self.metrics.failed(provider);
            tracing::debug!(provider = provider.as_str(), "push provider not configured");
            return;
        };
        let Some(pending) = lane.pending.try_take(&job.account_id) else {
            self.metrics.failed(provider);
            tracing::warn!(
                provider = provider.as_str(),
                account_id = job.account_id,
                "push dropped: too many pushes of this account under way"
            );
            return;
        };
        let sender = lane.sender.clone();
        let in_flight = lane.in_flight.clone();
        let metrics = self.metrics.clone();
        let dead_tx = self.dead_tx.clone();
        tokio::spawn(async move {
            let _pending = pending;
            deliver(&*sender, &in_flight, &job, &metrics, &dead_tx).await;
        });
    }
}

/// Attempts until delivered, gone, failed, or past the deadline; each attempt holds a slot
/// of `in_flight` for the account, and only while its request is in flight.
async fn deliver(
    sender: &dyn PushSender,
    in_flight: &Arc<Slots>,
    job: &PushJob,
    metrics: &PushMetrics,
    dead_tx: &mpsc::UnboundedSender<DeadToken>,
) {
    let provider = job.reg.provider;
    let session_id = job.payload.session_id();
    let json = match serde_json::to_string(&job.payload) {
        Ok(json) => json,
        Err(e) => {
            metrics.failed(provider);
            tracing::error!(error = %e, "push payload could not be encoded");
            return;
        }
    };
    let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
    let deadline = Instant::now() + job.ttl;
    let mut backoff = FIRST_BACKOFF;
    loop {
        let Ok(slot) = tokio::time::timeout_at(deadline, in_flight.take(&job.account_id)).await
        else {
            metrics.failed(provider);
            tracing::warn!(
                provider = provider.as_str(),
                session_id,
                "push given up: its account's share of requests stayed in use until its deadline"
            );
            return;
        };
        let started = Instant::now();
        let left = deadline.saturating_duration_since(started);
        let delivery = Delivery {
            job,
            json: &json,
            id: &id,
        };
        let attempt = sender.send(&delivery);
        let outcome = match tokio::time::timeout(left.min(ATTEMPT_TIMEOUT), attempt).await {
            Ok(outcome) => outcome,
            Err(_) => Err(PushError::busy("no answer in time")),
        };
        drop(slot);
        metrics.observe(provider, started.elapsed());
        if outcome.is_err() {
            metrics.failed(provider);
        }
        let (detail, retry_after) = match outcome {
            Ok(()) => {
                metrics.sent(provider);
                return;
            }
            Err(PushError::Gone(why)) => {
                metrics.invalid_token(provider);
                tracing::info!(
                    provider = provider.as_str(),
                    session_id,
                    why,
                    "push token gone; registration removed"
                );
                let _ = dead_tx.send(DeadToken {
                    session_id: session_id.to_owned(),
                    reg: job.reg.clone(),
                });
                return;
            }
            Err(PushError::Failed(why)) => {
                tracing::warn!(provider = provider.as_str(), session_id, why, "push failed");
                return;
            }
            Err(PushError::Busy {
                detail,
                retry_after,
            }) => (detail, retry_after),
        };
        let wait = retry_after.unwrap_or(backoff).min(MAX_BACKOFF);
        backoff = (backoff * 2).min(MAX_BACKOFF);
        if Instant::now() + wait >= deadline {
            tracing::warn!(
                provider = provider.as_str(),
                session_id,
                detail,
                "push given up: the provider stayed busy until the push's deadline"
            );
            return;
        }
        metrics.retried(provider);
        tracing::debug!(
            provider = provider.as_str(),
            session_id,
            detail,
            wait_ms = wait.as_millis() as u64,
            "push retried"
        );
        tokio::time::sleep(wait).await;
    }
}

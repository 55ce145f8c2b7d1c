//! The `webhook` provider: POSTs the JSON payload to the URL the device registered, which
//! must be on `--push-webhook-allow`, with the Standard Webhooks headers: `webhook-id` (the
//! same on every attempt of one push) and `webhook-timestamp` always, and
//! `webhook-signature` when the registration carries the device owner's `secret`.
//! `404`/`410` mean the hook is gone.

use std::sync::Arc;

use async_trait::async_trait;
use presence_protocol::{PushProvider, PushRegistration};
use reqwest::StatusCode;

use super::http;
use super::{Delivery, PushError, PushSender, Refusal};
use crate::outbound::TargetRules;
use crate::outbound::signature::{self, Secret};

pub struct WebhookSender {
    client: reqwest::Client,
    rules: Arc<TargetRules>,
}

impl WebhookSender {
    pub fn new(rules: Arc<TargetRules>, roots: &[reqwest::Certificate]) -> Result<Self, String> {
        Ok(WebhookSender {
            client: http::client(roots, false, None)?,
            rules,
        })
    }
}

fn secret(reg: &PushRegistration) -> Result<Option<Secret>, Refusal> {
    reg.secret
        .as_deref()
        .map(Secret::parse)
        .transpose()
        .map_err(|why| Refusal::new("secret", why))
}

#[async_trait]
impl PushSender for WebhookSender {
    fn provider(&self) -> PushProvider {
        PushProvider::Webhook
    }

    fn validate(&self, reg: &PushRegistration) -> Result<(), Refusal> {
        self.rules
            .allowed(&reg.token)
            .map_err(|why| Refusal::new("token", why))?;
        secret(reg).map(drop)
    }

    async fn send(&self, d: &Delivery<'_>) -> Result<(), PushError> {
        let url = self
            .rules
            .allowed(&d.job.reg.token)
            .map_err(PushError::Failed)?;
        let secret = secret(&d.job.reg)
            .map_err(|r| PushError::Failed(format!("{}: {}", r.field, r.detail)))?;
        let body = d.json.as_bytes();
        let now = chrono::Utc::now().timestamp();
        let mut req = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        for (name, value) in signature::headers(secret.as_ref(), d.id, now, body) {
            req = req.header(name, value);
        }
        let resp = req
            .body(d.json.to_owned())
            .send()
            .await
            .map_err(http::transport)?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        if matches!(status, StatusCode::NOT_FOUND | StatusCode::GONE) {
            return Err(PushError::Gone(format!("webhook answered {status}")));
        }
        let headers = resp.headers().clone();
        let body = http::read_answer(resp).await?;
        Err(http::busy_or_failed(status, &headers, &body))
    }
}

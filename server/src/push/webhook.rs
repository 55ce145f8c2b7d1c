//! The `webhook` provider: POSTs the JSON payload to the URL the device registered, which
//! must be on `--push-webhook-allow`. `404`/`410` mean the hook is gone.

use std::sync::Arc;

use async_trait::async_trait;
use presence_protocol::{PushProvider, PushRegistration};
use reqwest::StatusCode;

use super::http::{self, ClientOptions};
use super::target::TargetRules;
use super::{Delivery, PushError, PushSender, Refusal};

pub struct WebhookSender {
    client: reqwest::Client,
    rules: Arc<TargetRules>,
}

impl WebhookSender {
    pub fn new(rules: Arc<TargetRules>, roots: &[reqwest::Certificate]) -> Self {
        WebhookSender {
            client: http::client(ClientOptions {
                roots,
                http2_only: false,
                resolver: None,
            }),
            rules,
        }
    }
}

#[async_trait]
impl PushSender for WebhookSender {
    fn provider(&self) -> PushProvider {
        PushProvider::Webhook
    }

    fn validate(&self, reg: &PushRegistration) -> Result<(), Refusal> {
        self.rules
            .webhook(&reg.token)
            .map(drop)
            .map_err(|why| Refusal::new("token", why))
    }

    async fn send(&self, d: &Delivery<'_>) -> Result<(), PushError> {
        let url = self
            .rules
            .webhook(&d.job.reg.token)
            .map_err(PushError::Failed)?;
        let resp = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
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
        let body = resp.text().await.unwrap_or_default();
        Err(http::busy_or_failed(status, &headers, &body))
    }
}

//! The `unifiedpush` provider: an RFC 8030 POST of the payload encrypted for the device
//! (RFC 8291, `aes128gcm`) to the endpoint it registered, within the outbound target rules
//! ([`crate::outbound::target`]: https, port 443, public addresses, unless allowed).
//! `TTL` is the time left until the job's deadline; renew pushes carry `Urgency: high`.
//! `404`/`410` mean the subscription is gone.

use std::sync::Arc;

use async_trait::async_trait;
use presence_protocol::{PushProvider, PushRegistration};
use reqwest::StatusCode;

use super::http;
use super::webpush::{self, DeviceKeys};
use super::{Delivery, PushError, PushSender, Refusal};
use crate::outbound::{PublicOnly, TargetRules};

pub struct UnifiedPushSender {
    client: reqwest::Client,
    rules: Arc<TargetRules>,
}

impl UnifiedPushSender {
    pub fn new(rules: Arc<TargetRules>, roots: &[reqwest::Certificate]) -> Result<Self, String> {
        let resolver = Arc::new(PublicOnly {
            rules: (*rules).clone(),
        });
        Ok(UnifiedPushSender {
            client: http::client(roots, false, Some(resolver))?,
            rules,
        })
    }
}

fn keys(reg: &PushRegistration) -> Result<DeviceKeys, Refusal> {
    let (Some(p256dh), Some(auth)) = (&reg.p256dh, &reg.auth) else {
        let missing = if reg.p256dh.is_none() {
            "p256dh"
        } else {
            "auth"
        };
        return Err(Refusal::new(missing, "required for unifiedpush"));
    };
    DeviceKeys::parse(p256dh, auth).map_err(|(field, why)| Refusal::new(field, why))
}

#[async_trait]
impl PushSender for UnifiedPushSender {
    fn provider(&self) -> PushProvider {
        PushProvider::Unifiedpush
    }

    fn validate(&self, reg: &PushRegistration) -> Result<(), Refusal> {
        self.rules
            .public(&reg.token)
            .map_err(|why| Refusal::new("token", why))?;
        keys(reg).map(drop)
    }

    async fn send(&self, d: &Delivery<'_>) -> Result<(), PushError> {
        let reg = &d.job.reg;
        let url = self.rules.public(&reg.token).map_err(PushError::Failed)?;
        let keys =
            keys(reg).map_err(|r| PushError::Failed(format!("{}: {}", r.field, r.detail)))?;
        let body = webpush::encrypt(&keys, d.json.as_bytes()).map_err(PushError::Failed)?;
        let urgency = if d.job.urgent() { "high" } else { "normal" };
        let resp = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_ENCODING, "aes128gcm")
            .header("ttl", d.job.ttl.as_secs().to_string())
            .header("urgency", urgency)
            .body(body)
            .send()
            .await
            .map_err(http::transport)?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        if matches!(status, StatusCode::NOT_FOUND | StatusCode::GONE) {
            return Err(PushError::Gone(format!("push endpoint answered {status}")));
        }
        let headers = resp.headers().clone();
        let text = http::read_answer(resp).await?;
        Err(http::busy_or_failed(status, &headers, &text))
    }
}

//! The webhook routes' operations, for every backend: endpoints made, listed, changed,
//! removed and their secrets rotated; deliveries listed and retried; a test event sent.
//!
//! Guarantees: every operation checks the caller is an owner, admin or API key of the
//! account as stored; an endpoint of another account is `not_found`; the rules are
//! [`crate::webhooks::rules`]'s, the limits the store's.

use std::time::Instant;

use presence_protocol::{
    CreatedWebhook, Delivery, DeliveryState, NewWebhook, RotatedSecret, Webhook, WebhookPatch,
    WebhookTestResult,
};

use super::Ops;
use crate::backend::{BackendError, BackendResult, Principal};
use crate::webhooks::{WebhookEdit, WebhookRow, deliver, listing, rules, seq_of};

/// The default and largest page of deliveries.
pub const DEFAULT_DELIVERIES: usize = 50;
pub const MAX_DELIVERIES: usize = 500;

/// `GET .../deliveries` parameters, as read from the query string.
#[derive(Debug, Default, Clone)]
pub struct DeliveryParams {
    pub state: Option<DeliveryState>,
    pub limit: Option<usize>,
}

/// `GET /v1/admin/webhooks/{id}/deliveries` parameters (documentation of the route).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct DeliveriesQuery {
    /// Only deliveries in this state: `pending`, `ok` or `dead`.
    state: Option<String>,
    /// At most this many, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Ops {
    /// The account's endpoint `id`, for an owner, admin or key of the account.
    async fn webhook(&self, p: &Principal, id: &str) -> BackendResult<WebhookRow> {
        self.admin_slice(p).await?;
        self.backend
            .webhooks(&p.account_id)
            .await?
            .into_iter()
            .find(|w| w.id == id)
            .ok_or(BackendError::not_found("webhook"))
    }

    /// Makes an endpoint; its secret is in this answer only.
    pub async fn create_webhook(
        &self,
        p: &Principal,
        req: NewWebhook,
    ) -> BackendResult<CreatedWebhook> {
        self.admin_slice(p).await?;
        let row = rules::create(&self.outbound, &p.account_id, &req, now_ms())?;
        let answer = CreatedWebhook {
            id: row.id.clone(),
            url: row.url.clone(),
            events: row.events.names(),
            description: row.description.clone(),
            enabled: row.enabled,
            created_at: row.created_at,
            secret: row.secret.clone(),
        };
        self.backend.edit_webhook(WebhookEdit::Create(row)).await?;
        self.webhook_poke.notify_one();
        Ok(answer)
    }

    /// The account's endpoints, without secrets.
    pub async fn webhooks(&self, p: &Principal) -> BackendResult<Vec<Webhook>> {
        self.admin_slice(p).await?;
        Ok(self
            .backend
            .webhooks(&p.account_id)
            .await?
            .iter()
            .map(WebhookRow::to_wire)
            .collect())
    }

    /// Changes the fields given.
    pub async fn patch_webhook(
        &self,
        p: &Principal,
        id: &str,
        patch: WebhookPatch,
    ) -> BackendResult<Webhook> {
        let row = self.webhook(p, id).await?;
        let next = rules::patch(&self.outbound, &row, &patch)?;
        let answer = next.to_wire();
        self.backend.edit_webhook(WebhookEdit::Update(next)).await?;
        self.webhook_poke.notify_one();
        Ok(answer)
    }

    /// Removes an endpoint and its deliveries.
    pub async fn delete_webhook(&self, p: &Principal, id: &str) -> BackendResult<()> {
        self.admin_slice(p).await?;
        self.backend
            .edit_webhook(WebhookEdit::Delete {
                account_id: p.account_id.to_string(),
                id: id.to_owned(),
            })
            .await
    }

    /// A new secret; the old one signs beside it for a day.
    pub async fn rotate_webhook_secret(
        &self,
        p: &Principal,
        id: &str,
    ) -> BackendResult<RotatedSecret> {
        let row = rules::rotate(&self.webhook(p, id).await?, now_ms());
        let answer = RotatedSecret {
            secret: row.secret.clone(),
            previous_secret_until: row.previous_until.unwrap_or_default(),
        };
        self.backend.edit_webhook(WebhookEdit::Update(row)).await?;
        Ok(answer)
    }

    /// The endpoint's deliveries, newest first.
    pub async fn webhook_deliveries(
        &self,
        p: &Principal,
        id: &str,
        q: DeliveryParams,
    ) -> BackendResult<Vec<Delivery>> {
        let row = self.webhook(p, id).await?;
        let limit = q.limit.unwrap_or(DEFAULT_DELIVERIES);
        if !(1..=MAX_DELIVERIES).contains(&limit) {
            return Err(BackendError::invalid_field(
                "limit",
                format!("must be 1 to {MAX_DELIVERIES}"),
            ));
        }
        let (rows, upcoming) = self
            .backend
            .webhook_deliveries(&row, q.state, limit)
            .await?;
        Ok(listing(
            &p.account_id,
            &row,
            rows,
            &upcoming,
            q.state,
            limit,
        ))
    }

    /// Sends a dead event again, next (or a pending one at once); a delivered one is a
    /// `409`.
    pub async fn retry_webhook_delivery(
        &self,
        p: &Principal,
        id: &str,
        event_id: &str,
    ) -> BackendResult<()> {
        let row = self.webhook(p, id).await?;
        let seq = seq_of(&p.account_id, event_id).ok_or(BackendError::not_found("delivery"))?;
        match self.backend.retry_webhook(&row, seq, now_ms()).await? {
            None => Err(BackendError::not_found("delivery")),
            Some(DeliveryState::Ok) => Err(BackendError::conflict(
                "this event was delivered (answered 2xx); only pending and dead ones are retried",
            )),
            Some(_) => {
                self.webhook_poke.notify_one();
                Ok(())
            }
        }
    }

    /// Sends one `webhook.test` event to the endpoint now, outside its queue (enabled or
    /// not), signed like every event, and says how it answered.
    pub async fn test_webhook(&self, p: &Principal, id: &str) -> BackendResult<WebhookTestResult> {
        let row = self.webhook(p, id).await?;
        let slice = self.admin_slice(p).await?;
        let now = now_ms();
        let event_id = format!("test_{}", crate::auth::new_token());
        let body = serde_json::json!({
            "type": "webhook.test",
            "timestamp": crate::history::events::rfc3339(now),
            "account": slice.account.slug,
            "seq": 0,
            "data": {"webhook_id": row.id},
        });
        let client = self
            .webhook_client
            .as_ref()
            .as_ref()
            .map_err(|e| BackendError::unavailable(e.clone(), 60))?;
        let started = Instant::now();
        let a = deliver::send(
            client,
            &row,
            &event_id,
            body.to_string().into_bytes(),
            now,
            self.webhook_timeout,
        )
        .await;
        Ok(WebhookTestResult {
            ok: a.ok(),
            status: a.status,
            error: a.error,
            duration_ms: started.elapsed().as_millis() as u64,
        })
    }
}

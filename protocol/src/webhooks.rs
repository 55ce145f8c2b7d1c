//! Webhooks to the customer's backend (PROTOCOL.md, third part, "Events to the customer's
//! backend: webhooks"): endpoints as made, listed and changed, and their deliveries.
//!
//! What it guarantees: the shapes are the wire contract's; a secret appears only in the
//! answers that make or rotate it.

use serde::{Deserialize, Serialize};

use crate::{EventType, Millis};

/// The event types an endpoint takes: `["*"]` for all, or a list of [`EventType`] names.
pub const ALL_EVENTS: &str = "*";

/// `POST /v1/admin/webhooks`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewWebhook {
    /// Where events are POSTed (`https` on port 443 at a public address).
    pub url: String,
    /// Event type names, or `["*"]` for every type.
    pub events: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// `PATCH /v1/admin/webhooks/{id}`: each field present is changed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookPatch {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub events: Option<Vec<String>>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub description: Option<String>,
}

/// Why an endpoint is disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DisabledReason {
    /// An owner, admin or API key disabled it.
    Admin,
    /// It answered `410 Gone`.
    Gone,
}

/// An endpoint as listed (`GET /v1/admin/webhooks` answers a list of them; never a
/// secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Webhook {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    pub enabled: bool,
    /// Why it is disabled; null while enabled.
    pub disabled_reason: Option<DisabledReason>,
    pub created_at: Millis,
    /// Until when the secret before the last rotation still signs beside the new one.
    pub previous_secret_until: Option<Millis>,
}

/// `201` to `POST /v1/admin/webhooks`: the only time the secret is shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedWebhook {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    pub enabled: bool,
    pub created_at: Millis,
    /// `whsec_<base64>`: shown only here.
    pub secret: String,
}

/// `200` to `POST /v1/admin/webhooks/{id}/rotate-secret`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RotatedSecret {
    pub secret: String,
    /// Until when the old secret keeps signing beside this one.
    pub previous_secret_until: Millis,
}

/// Where one event stands for one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::EnumString)]
#[strum(serialize_all = "snake_case")]
pub enum DeliveryState {
    /// Not yet answered 2xx, and still tried.
    Pending,
    /// Answered 2xx.
    Ok,
    /// Given up after the retries (kept 7 days; can be retried by hand).
    Dead,
}

/// One event's delivery to one endpoint (`GET /v1/admin/webhooks/{id}/deliveries` answers
/// a list of them, newest first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Delivery {
    /// The event's `webhook-id`, the same on every attempt.
    pub event_id: String,
    pub seq: i64,
    #[serde(rename = "type")]
    pub kind: EventType,
    /// When the event happened.
    pub at: Millis,
    pub state: DeliveryState,
    /// Attempts made so far.
    pub attempts: u32,
    /// The status code of the last answer; null when none came (timeout, refused
    /// connection) or no attempt was made yet.
    pub last_status: Option<u16>,
    /// Why the last attempt failed, in words; null after a 2xx.
    pub last_error: Option<String>,
    /// When the last attempt was made.
    pub last_attempt_at: Option<Millis>,
    /// When the next attempt is due (pending only; null when due as soon as the events
    /// before it are done).
    pub next_attempt_at: Option<Millis>,
}

/// `200` to `POST /v1/admin/webhooks/{id}/test`: one `webhook.test` event sent at once,
/// outside the endpoint's queue, and how the endpoint answered.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookTestResult {
    /// Whether it answered 2xx.
    pub ok: bool,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: u64,
}

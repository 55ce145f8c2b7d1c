//! Webhook endpoints of the customer's backend, under `/v1/admin/webhooks` (owners, admins
//! and API keys).
//!
//! Guarantees: a new endpoint answers `201` with its secret (the only time it is shown), a
//! removed one `204`, a retry `202`; a query parameter out of its range is a `422` naming
//! it; an endpoint of another account is `404`.

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use presence_protocol::{
    CreatedWebhook, Delivery, DeliveryState, ErrorBody, NewWebhook, RotatedSecret, Webhook,
    WebhookPatch, WebhookTestResult,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::extract::{Admin, JsonBody, PathParam, PathParams2};
use crate::error::{ApiError, ApiResult};
use crate::ops::webhooks::DeliveryParams;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(patch_webhook, delete_webhook))
        .routes(routes!(rotate_secret))
        .routes(routes!(deliveries))
        .routes(routes!(retry_delivery))
        .routes(routes!(test_webhook))
}

/// The query of a deliveries list: `state` one of the states, `limit` an integer.
pub struct Query(DeliveryParams);

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let mut p = DeliveryParams::default();
        let query = parts.uri.query().unwrap_or("");
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match &*key {
                "state" => {
                    p.state = Some(value.parse::<DeliveryState>().map_err(|_| {
                        ApiError::invalid_field("state", "must be pending, ok or dead")
                    })?)
                }
                "limit" => {
                    p.limit = Some(value.parse::<usize>().map_err(|_| {
                        ApiError::invalid_field("limit", "must be an integer from 1 to 500")
                    })?)
                }
                _ => {}
            }
        }
        Ok(Query(p))
    }
}

/// Adds an endpoint; its signing secret is shown only in this answer.
#[utoipa::path(
    post,
    path = "/v1/admin/webhooks",
    tag = "webhooks",
    security(("session" = []), ("api_key" = [])),
    request_body = NewWebhook,
    responses(
        (status = 201, description = "The new endpoint, with its secret", body = CreatedWebhook),
        (status = 403, description = "`forbidden`: the caller is not an owner or admin", body = ErrorBody),
        (status = 409, description = "`conflict`: the account has 10 endpoints already", body = ErrorBody),
        (status = 422, description = "`invalid_field`: `url` (not https on port 443 at a public address), `events` or `description`", body = ErrorBody),
    ),
)]
async fn create_webhook(
    State(state): State<AppState>,
    Admin(p): Admin,
    JsonBody(req): JsonBody<NewWebhook>,
) -> ApiResult<Response> {
    let created = state.ops.create_webhook(&p, req).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// The account's endpoints (never their secrets).
#[utoipa::path(
    get,
    path = "/v1/admin/webhooks",
    tag = "webhooks",
    security(("session" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The endpoints, oldest first", body = [Webhook]),
        (status = 403, description = "`forbidden`: the caller is not an owner or admin", body = ErrorBody),
    ),
)]
async fn list_webhooks(State(state): State<AppState>, Admin(p): Admin) -> ApiResult<Response> {
    Ok(Json(state.ops.webhooks(&p).await?).into_response())
}

/// Changes an endpoint's URL, events, description, or whether it is enabled.
#[utoipa::path(
    patch,
    path = "/v1/admin/webhooks/{id}",
    tag = "webhooks",
    security(("session" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "The endpoint's id")),
    request_body = WebhookPatch,
    responses(
        (status = 200, description = "The endpoint as changed", body = Webhook),
        (status = 403, description = "`forbidden`: the caller is not an owner or admin", body = ErrorBody),
        (status = 404, description = "`not_found`: no such endpoint in the account", body = ErrorBody),
        (status = 422, description = "`invalid_field`: `url`, `events` or `description`", body = ErrorBody),
    ),
)]
async fn patch_webhook(
    State(state): State<AppState>,
    Admin(p): Admin,
    PathParam(id): PathParam,
    JsonBody(patch): JsonBody<WebhookPatch>,
) -> ApiResult<Response> {
    Ok(Json(state.ops.patch_webhook(&p, &id, patch).await?).into_response())
}

/// Removes an endpoint and its deliveries.
#[utoipa::path(
    delete,
    path = "/v1/admin/webhooks/{id}",
    tag = "webhooks",
    security(("session" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "`forbidden`: the caller is not an owner or admin", body = ErrorBody),
        (status = 404, description = "`not_found`: no such endpoint in the account", body = ErrorBody),
    ),
)]
async fn delete_webhook(
    State(state): State<AppState>,
    Admin(p): Admin,
    PathParam(id): PathParam,
) -> ApiResult<StatusCode> {
    state.ops.delete_webhook(&p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new signing secret, shown only here; the old one keeps signing beside it for 24 h.
#[utoipa::path(
    post,
    path = "/v1/admin/webhooks/{id}/rotate-secret",
    tag = "webhooks",
    security(("session" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "The new secret", body = RotatedSecret),
        (status = 403, description = "`forbidden`: the caller is not an owner or admin", body = ErrorBody),
        (status = 404, description = "`not_found`: no such endpoint in the account", body = ErrorBody),
    ),
)]
async fn rotate_secret(
    State(state): State<AppState>,
    Admin(p): Admin,
    PathParam(id): PathParam,
) -> ApiResult<Response> {
    Ok(Json(state.ops.rotate_webhook_secret(&p, &id).await?).into_response())
}

/// The endpoint's deliveries, newest first: pending (with attempts so far and the next
/// one), delivered and dead events.
#[utoipa::path(
    get,
    path = "/v1/admin/webhooks/{id}/deliveries",
    tag = "webhooks",
    security(("session" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "The endpoint's id"), crate::ops::webhooks::DeliveriesQuery),
    responses(
        (status = 200, description = "The deliveries", body = [Delivery]),
        (status = 403, description = "`forbidden`: the caller is not an owner or admin", body = ErrorBody),
        (status = 404, description = "`not_found`: no such endpoint in the account", body = ErrorBody),
        (status = 422, description = "`invalid_field`: `state` or `limit`", body = ErrorBody),
    ),
)]
async fn deliveries(
    State(state): State<AppState>,
    Admin(p): Admin,
    PathParam(id): PathParam,
    Query(q): Query,
) -> ApiResult<Response> {
    Ok(Json(state.ops.webhook_deliveries(&p, &id, q).await?).into_response())
}

/// Sends a dead event again, before the endpoint's next one (a pending one: at once).
#[utoipa::path(
    post,
    path = "/v1/admin/webhooks/{id}/deliveries/{event_id}/retry",
    tag = "webhooks",
    security(("session" = []), ("api_key" = [])),
    params(
        ("id" = String, Path, description = "The endpoint's id"),
        ("event_id" = String, Path, description = "The event's id (its `webhook-id`)"),
    ),
    responses(
        (status = 202, description = "It will be sent again"),
        (status = 403, description = "`forbidden`: the caller is not an owner or admin", body = ErrorBody),
        (status = 404, description = "`not_found`: no such endpoint, or no delivery of that event to it", body = ErrorBody),
        (status = 409, description = "`conflict`: the event was delivered", body = ErrorBody),
    ),
)]
async fn retry_delivery(
    State(state): State<AppState>,
    Admin(p): Admin,
    PathParams2(id, event_id): PathParams2,
) -> ApiResult<StatusCode> {
    state.ops.retry_webhook_delivery(&p, &id, &event_id).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Sends one `webhook.test` event to the endpoint now, outside its queue, and says how it
/// answered.
#[utoipa::path(
    post,
    path = "/v1/admin/webhooks/{id}/test",
    tag = "webhooks",
    security(("session" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "How the endpoint answered", body = WebhookTestResult),
        (status = 403, description = "`forbidden`: the caller is not an owner or admin", body = ErrorBody),
        (status = 404, description = "`not_found`: no such endpoint in the account", body = ErrorBody),
    ),
)]
async fn test_webhook(
    State(state): State<AppState>,
    Admin(p): Admin,
    PathParam(id): PathParam,
) -> ApiResult<Response> {
    Ok(Json(state.ops.test_webhook(&p, &id).await?).into_response())
}

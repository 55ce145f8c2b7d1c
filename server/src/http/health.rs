//! For the people who run the server: `GET /healthz` and `GET /metrics`.
//!
//! Guarantees:
//! - `/healthz` answers `{"status":"ok"}` only while every store the backend needs is in
//!   reach, `503 unavailable` otherwise.
//! - `/metrics` is the Prometheus text format (0.0.4): every metric of [`crate::metrics`],
//!   with the backend's gauges read at the scrape.
//! - Neither needs a token.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use crate::error::ApiError;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(metrics))
}

/// `{"status": "ok"}` of `/healthz`.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Health {
    /// Always `ok`.
    status: &'static str,
}

/// `{"status":"ok"}`, or `503 unavailable` while a store the backend needs is out of reach.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "Every store is in reach", body = Health)),
)]
async fn healthz(State(state): State<AppState>) -> Result<Response, ApiError> {
    state.ops.backend().health().await?;
    Ok(Json(Health { status: "ok" }).into_response())
}

/// Counters and gauges in the Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String)),
)]
async fn metrics(State(state): State<AppState>) -> Response {
    let body = state.metrics.render().await;
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body).into_response()
}

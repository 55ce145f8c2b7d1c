//! For the people who run the server: `GET /healthz` and `GET /metrics`.
//!
//! Guarantees:
//! - `/healthz` answers `{"status":"ok"}` only while every store the backend needs is in
//!   reach, `503 unavailable` otherwise.
//! - `/metrics` is the Prometheus text format, counters and the backend's gauges.
//! - Neither needs a token.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::AppState;
use crate::error::ApiError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
}

/// `{"status":"ok"}`, or `503 unavailable` while a store the backend needs is out of reach.
async fn healthz(State(state): State<AppState>) -> Result<Response, ApiError> {
    state.ops.backend().health().await?;
    Ok(Json(serde_json::json!({"status": "ok"})).into_response())
}

async fn metrics(State(state): State<AppState>) -> Response {
    let body = state.metrics.render().await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

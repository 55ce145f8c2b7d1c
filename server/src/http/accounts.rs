//! Account creation by the server operator: `POST /v1/accounts`.
//!
//! Guarantees:
//! - Only the bearer of `--admin-token` creates accounts: without the flag the route answers
//!   `403 forbidden`, with a wrong or missing token `401 unauthorized` (compared in constant
//!   time).
//! - A new account gets the server's timing settings and answers `201 Created`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use presence_protocol::CreateAccountRequest;

use super::AppState;
use super::extract::{JsonBody, Operator};
use crate::error::ApiResult;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/accounts", post(create_account))
}

async fn create_account(
    State(state): State<AppState>,
    _: Operator,
    JsonBody(req): JsonBody<CreateAccountRequest>,
) -> ApiResult<Response> {
    let resp = state.ops.create_account(req, state.defaults).await?;
    Ok((StatusCode::CREATED, Json(resp)).into_response())
}

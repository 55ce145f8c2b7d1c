//! Account creation by the server operator: `POST /v1/accounts`.
//!
//! Guarantees:
//! - Only the bearer of `--admin-token` creates accounts: without the flag the route answers
//!   `403 forbidden`, with a wrong or missing token `401 unauthorized` (compared in constant
//!   time).
//! - A new account gets the server's timing settings and answers `201 Created`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use presence_protocol::{CreateAccountRequest, CreateAccountResponse, ErrorBody};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::extract::{JsonBody, Operator};
use crate::error::ApiResult;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_account))
}

/// Creates an account and its owner.
#[utoipa::path(
    post,
    path = "/v1/accounts",
    tag = "accounts",
    security(("operator" = [])),
    request_body = CreateAccountRequest,
    responses(
        (status = 201, description = "The account and its owner", body = CreateAccountResponse),
        (status = 403, description = "`forbidden`: the server runs without `--admin-token`", body = ErrorBody),
        (status = 409, description = "`conflict`: the slug is taken", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many wrong operator tokens from this address", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until an attempt may succeed"))),
    ),
)]
async fn create_account(
    State(state): State<AppState>,
    _: Operator,
    JsonBody(req): JsonBody<CreateAccountRequest>,
) -> ApiResult<Response> {
    let resp = state.ops.create_account(req, state.defaults).await?;
    Ok((StatusCode::CREATED, Json(resp)).into_response())
}

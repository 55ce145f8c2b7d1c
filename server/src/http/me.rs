//! The calling agent's own view: `GET /v1/me`, `PUT /v1/me/status`, its status log
//! `GET /v1/me/status-log`, its password `PUT /v1/me/password`, ending one of its own
//! sessions, and the device event stream `GET /v1/me/events`.
//!
//! Guarantees:
//! - Every route acts for the session behind the bearer token, on its own agent only: a
//!   session of another agent is `404 not_found`.
//! - A status change is ordered by its `intent_at` and idempotent by its `op_id` (the same
//!   `op_id` again gets its first answer); the answer says whether it applied.
//! - The event stream is not under the request deadline: it lasts as long as its reader
//!   reads, so it is served by [`streams`], apart from [`router`].

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put};
use axum::{Json, Router};
use presence_protocol::{ChangePasswordRequest, SetStatusRequest};

use super::AppState;
use super::extract::{Auth, ClientIp, JsonBody, LogParams, PathParam};
use super::sse;
use crate::error::ApiResult;

/// The routes answered within the request deadline.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/me", get(me))
        .route("/v1/me/status", put(set_status))
        .route("/v1/me/status-log", get(status_log))
        .route("/v1/me/password", put(change_password))
        .route("/v1/me/sessions/{session_id}", delete(end_my_session))
}

/// The device event stream.
pub fn streams() -> Router<AppState> {
    Router::new().route("/v1/me/events", get(me_events))
}

async fn me(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<Response> {
    Ok(Json(state.ops.me(&p).await?).into_response())
}

async fn set_status(
    State(state): State<AppState>,
    Auth(p): Auth,
    JsonBody(req): JsonBody<SetStatusRequest>,
) -> ApiResult<Response> {
    Ok(Json(state.ops.set_status(&p, req).await?).into_response())
}

async fn status_log(
    State(state): State<AppState>,
    Auth(p): Auth,
    q: LogParams,
) -> ApiResult<Response> {
    let agent = p.agent_id.to_string();
    Ok(Json(state.ops.status_log(&p, &agent, q).await?).into_response())
}

/// A wrong current password counts like a failed login, in a window of the agent's own (by
/// account and agent id) and in the client address's: a stolen token cannot guess on.
async fn change_password(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Auth(p): Auth,
    JsonBody(req): JsonBody<ChangePasswordRequest>,
) -> ApiResult<StatusCode> {
    let attempt = state
        .limiter
        .take(&p.account_id, &p.agent_id, None, ip)
        .await
        .map_err(super::session::refused)?;
    match state.ops.change_own_password(&p, req).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(e) => {
            if e == crate::backend::BackendError::InvalidCredentials {
                attempt.failed();
            }
            Err(e.into())
        }
    }
}

async fn end_my_session(
    State(state): State<AppState>,
    Auth(p): Auth,
    PathParam(id): PathParam,
) -> ApiResult<StatusCode> {
    state.ops.end_own_session(&p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn me_events(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Auth(p): Auth,
) -> ApiResult<Response> {
    let permit = state.stream_limiter.acquire(ip)?;
    let s = state.ops.open_device_stream(&p).await?;
    Ok(sse::device_stream(s, state.streams.clone(), permit))
}

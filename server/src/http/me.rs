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

use super::conn::StreamStop;
use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use presence_protocol::{
    ChangePasswordRequest, ErrorBody, MeResponse, SetStatusRequest, SetStatusResponse,
    StatusLogPage,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::extract::{Auth, ClientIp, JsonBody, LogParams, PathParam};
use super::sse;
use crate::error::ApiResult;

/// The routes answered within the request deadline.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(set_status))
        .routes(routes!(status_log))
        .routes(routes!(change_password))
        .routes(routes!(end_my_session))
}

/// The device event stream.
pub fn streams() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(me_events))
}

/// The calling agent, its status, the chat box as visitors see it, and its sessions.
#[utoipa::path(
    get,
    path = "/v1/me",
    tag = "me",
    security(("session" = [])),
    responses((status = 200, description = "The agent's own view", body = MeResponse)),
)]
async fn me(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<Response> {
    Ok(Json(state.ops.me(&p).await?).into_response())
}

/// Changes the agent's status, ordered by `intent_at` and idempotent by `op_id`.
#[utoipa::path(
    put,
    path = "/v1/me/status",
    tag = "me",
    security(("session" = [])),
    request_body = SetStatusRequest,
    responses((status = 200, description = "Whether the change applied, and the status now", body = SetStatusResponse)),
)]
async fn set_status(
    State(state): State<AppState>,
    Auth(p): Auth,
    JsonBody(req): JsonBody<SetStatusRequest>,
) -> ApiResult<Response> {
    Ok(Json(state.ops.set_status(&p, req).await?).into_response())
}

/// The agent's applied status changes, newest first.
#[utoipa::path(
    get,
    path = "/v1/me/status-log",
    tag = "me",
    security(("session" = [])),
    params(super::extract::LogParams),
    responses((status = 200, description = "A page of the status log", body = StatusLogPage)),
)]
async fn status_log(
    State(state): State<AppState>,
    Auth(p): Auth,
    q: LogParams,
) -> ApiResult<Response> {
    let agent = p.agent_id.to_string();
    Ok(Json(state.ops.status_log(&p, &agent, q).await?).into_response())
}

/// Changes the agent's password; its other sessions end (`credentials_changed`).
#[utoipa::path(
    put,
    path = "/v1/me/password",
    tag = "me",
    security(("session" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "Changed"),
        (status = 401, description = "`invalid_credentials`: `current` is wrong (or the token is: `unauthorized`, `session_expired`)", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many wrong passwords", body = ErrorBody,
         headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
)]
// A wrong current password counts like a failed login, in a window of the agent's own (by
// account and agent id) and in the client address's: a stolen token cannot guess on.
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

/// Signs one of the agent's own devices out (reason `logout`).
#[utoipa::path(
    delete,
    path = "/v1/me/sessions/{session_id}",
    tag = "me",
    security(("session" = [])),
    params(("session_id" = String, Path, description = "One of the agent's sessions")),
    responses(
        (status = 204, description = "The session has ended"),
        (status = 404, description = "`not_found`: no such session of this agent", body = ErrorBody),
    ),
)]
async fn end_my_session(
    State(state): State<AppState>,
    Auth(p): Auth,
    PathParam(id): PathParam,
) -> ApiResult<StatusCode> {
    state.ops.end_own_session(&p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The device event stream: `snapshot` first, then `status`, `chatbox`, `session_ended` and
/// `ping` events.
#[utoipa::path(
    get,
    path = "/v1/me/events",
    tag = "me",
    security(("session" = [])),
    responses(
        (status = 200, description = "Server-sent events: `snapshot` (`SnapshotEvent`), `status` (`StatusView`), `chatbox` (`ChatboxView`), `session_ended` (`SessionEndedEvent`), `ping` (`PingEvent`)", content_type = "text/event-stream", body = String),
        (status = 503, description = "`unavailable`: too many streams from this address, or a store is out of reach", body = ErrorBody,
         headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
)]
async fn me_events(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Auth(p): Auth,
    stop: Option<Extension<StreamStop>>,
) -> ApiResult<Response> {
    let permit = state.stream_limiter.acquire(ip)?;
    let s = state.ops.open_device_stream(&p).await?;
    Ok(sse::device_stream(
        s,
        state.streams.clone(),
        permit,
        stop.map(|Extension(s)| s),
    ))
}

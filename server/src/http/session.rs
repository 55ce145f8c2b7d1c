//! A device's session: `POST /v1/login`, `POST /v1/login/token` (the customer's signed
//! token), `POST /v1/session/heartbeat`, `DELETE /v1/session`, and the session's push
//! registration under `/v1/session/push`.
//!
//! Guarantees:
//! - A login takes a slot in the failed-login windows (per account and e-mail, per client
//!   address) before any password is checked: a full window answers `429 rate_limited` with a
//!   retry delay. Only wrong credentials count as failures.
//! - A heartbeat authenticates and renews in one backend call; a dead token answers before a
//!   bad body, as on every other route.
//! - Logout ends only the calling session; push registration is set or removed for it alone.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use presence_protocol::{
    ErrorBody, Heartbeat, HeartbeatRequest, LoginRequest, LoginResponse, PushRegistration,
    TokenLoginRequest,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::extract::{Auth, Bearer, ClientIp, JsonBody, OptionalJsonBody};
use crate::auth::{AttemptSlot, Refused};
use crate::backend::BackendError;
use crate::error::{ApiError, ApiResult};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(login_token))
        .routes(routes!(heartbeat))
        .routes(routes!(logout))
        .routes(routes!(put_push, delete_push))
}

/// Ends a login's attempt: wrong credentials count as a failure in its slot (and in
/// `presence_login_failures_total`); any other answer frees the slot.
fn settle<T>(
    state: &AppState,
    attempt: Box<dyn AttemptSlot + '_>,
    answer: Result<T, BackendError>,
) -> ApiResult<T> {
    if answer.as_ref().err() == Some(&BackendError::InvalidCredentials) {
        attempt.failed();
        state.metrics.login_failures.inc();
    }
    Ok(answer?)
}

/// The answer to a refused limiter slot.
pub(super) fn refused(r: Refused) -> ApiError {
    match r {
        Refused::Limited(secs) => ApiError::rate_limited(secs),
        Refused::Unavailable => {
            BackendError::unavailable("the hot store is out of reach; retry in a moment", 1).into()
        }
    }
}

/// Opens a session for a device with an agent's e-mail and password.
///
/// Logging in again with the same device id replaces that device's old session. Only failed
/// attempts count towards the limits.
#[utoipa::path(
    post,
    path = "/v1/login",
    tag = "session",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "The new session", body = LoginResponse),
        (status = 401, description = "`invalid_credentials`", body = ErrorBody),
        (status = 403, description = "`forbidden`: the account signs in with its own tokens only", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many failed attempts", body = ErrorBody,
         headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
)]
async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    JsonBody(req): JsonBody<LoginRequest>,
) -> ApiResult<Response> {
    // Checked before a limiter slot is taken: nothing unbounded becomes a key.
    state.ops.check_login(&req)?;
    let limiter = &state.limiter;
    let attempt = match limiter.take(&req.account, &req.email, None, ip).await {
        // The agent's window is full (or the address's): a device it signed in from before
        // still gets attempts of its own, so knowing an email cannot keep an agent out.
        Err(Refused::Limited(secs)) => {
            if !state.ops.known_device(&req).await? {
                return Err(ApiError::rate_limited(secs));
            }
            let device = Some(req.device.id.as_str());
            limiter
                .take(&req.account, &req.email, device, ip)
                .await
                .map_err(refused)?
        }
        other => other.map_err(refused)?,
    };
    let answer = state.ops.login(req).await;
    Ok(Json(settle(&state, attempt, answer)?).into_response())
}

/// Opens a session with the customer's signed token (JWT), as `/v1/login` does with a password.
#[utoipa::path(
    post,
    path = "/v1/login/token",
    tag = "session",
    request_body = TokenLoginRequest,
    responses(
        (status = 200, description = "The new session", body = LoginResponse),
        (status = 401, description = "`invalid_credentials`: the token is not valid for the account", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many failed attempts", body = ErrorBody,
         headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
)]
// A sign-in with the customer's token takes a slot in the same failed-login windows as a
// password: per account and the `sub` the token claims (unchecked: a forged token fills
// that user's window, as a wrong password fills an email's), and per client address.
async fn login_token(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    JsonBody(req): JsonBody<TokenLoginRequest>,
) -> ApiResult<Response> {
    state.ops.check_token_login(&req)?;
    // A namespace of its own: no email has a NUL in it.
    let who = format!(
        "\0sub:{}",
        crate::jwt::unverified_sub(&req.token).unwrap_or_default()
    );
    let attempt = state
        .limiter
        .take(&req.account, &who, None, ip)
        .await
        .map_err(refused)?;
    let answer = state.ops.login_token(req).await;
    Ok(Json(settle(&state, attempt, answer)?).into_response())
}

/// Renews the session's lease; an empty body is an active heartbeat.
#[utoipa::path(
    post,
    path = "/v1/session/heartbeat",
    tag = "session",
    security(("session" = [])),
    request_body(content = Option<HeartbeatRequest>, description = "Empty: `{\"mode\": \"active\"}`"),
    responses((status = 200, description = "The renewed lease", body = Heartbeat)),
)]
// Authentication and renewal happen in one backend call (one lock, one session lookup).
async fn heartbeat(
    State(state): State<AppState>,
    Bearer(token): Bearer,
    body: Result<OptionalJsonBody<HeartbeatRequest>, ApiError>,
) -> ApiResult<Response> {
    let req = match body {
        Ok(OptionalJsonBody(req)) => req,
        Err(e) => {
            // Same order as every other route: a dead token answers before a bad body.
            state.ops.authenticate(&token).await?;
            return Err(e);
        }
    };
    let hb = state.ops.heartbeat(&token, req).await?;
    Ok(Json(hb).into_response())
}

/// Ends this session now.
#[utoipa::path(
    delete,
    path = "/v1/session",
    tag = "session",
    security(("session" = [])),
    responses((status = 204, description = "The session has ended")),
)]
async fn logout(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<StatusCode> {
    state.ops.logout(&p).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Registers (or replaces) this session's push target.
#[utoipa::path(
    put,
    path = "/v1/session/push",
    tag = "session",
    security(("session" = [])),
    request_body = PushRegistration,
    responses((status = 204, description = "Registered")),
)]
async fn put_push(
    State(state): State<AppState>,
    Auth(p): Auth,
    JsonBody(reg): JsonBody<PushRegistration>,
) -> ApiResult<StatusCode> {
    state.ops.set_push(&p, Some(reg)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes this session's push registration.
#[utoipa::path(
    delete,
    path = "/v1/session/push",
    tag = "session",
    security(("session" = [])),
    responses((status = 204, description = "Removed")),
)]
async fn delete_push(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<StatusCode> {
    state.ops.set_push(&p, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

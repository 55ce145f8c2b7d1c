//! Handlers: each one parses, checks the caller, calls the backend, and shapes the answer.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use presence_protocol::{
    AdminSetStatusRequest, CreateAccountRequest, Group, HeartbeatRequest, LoginRequest,
    NewAgentRequest, OpeningHours, PatchAgentRequest, PushRegistration, SetStatusRequest,
    SettingsPatch,
};

use super::AppState;
use super::extract::{
    Admin, Auth, Bearer, ClientIp, JsonBody, JsonListBody, Operator, OptionalJsonBody, PathParam,
};
use super::sse;
use crate::backend::BackendError;
use crate::error::{ApiError, ApiResult};

// ----- accounts (server operator) ------------------------------------------------------------

pub async fn create_account(
    State(state): State<AppState>,
    _: Operator,
    JsonBody(req): JsonBody<CreateAccountRequest>,
) -> ApiResult<Response> {
    let resp = state.ops.create_account(req, state.defaults).await?;
    Ok((StatusCode::CREATED, Json(resp)).into_response())
}

// ----- device session ------------------------------------------------------------------------

pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    JsonBody(req): JsonBody<LoginRequest>,
) -> ApiResult<Response> {
    let attempt = state
        .limiter
        .take(&req.account, &req.email, ip)
        .await
        .map_err(|r| match r {
            crate::auth::Refused::Limited(secs) => ApiError::rate_limited(secs),
            crate::auth::Refused::Unavailable => {
                BackendError::unavailable("the hot store is out of reach; retry in a moment", 1)
                    .into()
            }
        })?;
    match state.backend.login(req).await {
        Ok(resp) => Ok(Json(resp).into_response()),
        Err(e) => {
            if e == BackendError::InvalidCredentials {
                attempt.failed();
                state
                    .metrics
                    .login_failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Err(e.into())
        }
    }
}

/// Authentication and renewal happen in one backend call (one lock, one session lookup).
pub async fn heartbeat(
    State(state): State<AppState>,
    Bearer(token): Bearer,
    body: Result<OptionalJsonBody<HeartbeatRequest>, ApiError>,
) -> ApiResult<Response> {
    let req = match body {
        Ok(OptionalJsonBody(req)) => req,
        Err(e) => {
            // Same order as every other route: a dead token answers before a bad body.
            state.backend.authenticate(&token).await?;
            return Err(e);
        }
    };
    let hb = state.backend.heartbeat(&token, req.mode).await?;
    Ok(Json(hb).into_response())
}

pub async fn logout(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<StatusCode> {
    state.backend.logout(&p).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn end_my_session(
    State(state): State<AppState>,
    Auth(p): Auth,
    PathParam(id): PathParam,
) -> ApiResult<StatusCode> {
    state.backend.end_own_session(&p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn put_push(
    State(state): State<AppState>,
    Auth(p): Auth,
    JsonBody(reg): JsonBody<PushRegistration>,
) -> ApiResult<StatusCode> {
    state.backend.set_push(&p, Some(reg)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn delete_push(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<StatusCode> {
    state.backend.set_push(&p, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn me(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<Response> {
    Ok(Json(state.backend.me(&p).await?).into_response())
}

pub async fn set_status(
    State(state): State<AppState>,
    Auth(p): Auth,
    JsonBody(req): JsonBody<SetStatusRequest>,
) -> ApiResult<Response> {
    Ok(Json(state.backend.set_status(&p, req).await?).into_response())
}

pub async fn me_events(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<Response> {
    let s = state.backend.open_device_stream(&p).await?;
    Ok(sse::device_stream(s, state.streams.clone()))
}

// ----- administration ------------------------------------------------------------------------

pub async fn admin_account(State(state): State<AppState>, Admin(p): Admin) -> ApiResult<Response> {
    Ok(Json(state.ops.admin_account(&p).await?).into_response())
}

pub async fn create_agent(
    State(state): State<AppState>,
    Admin(p): Admin,
    JsonBody(req): JsonBody<NewAgentRequest>,
) -> ApiResult<Response> {
    let agent = state.ops.create_agent(&p, req).await?;
    Ok((StatusCode::CREATED, Json(agent)).into_response())
}

pub async fn patch_agent(
    State(state): State<AppState>,
    Admin(p): Admin,
    PathParam(id): PathParam,
    JsonBody(req): JsonBody<PatchAgentRequest>,
) -> ApiResult<Response> {
    Ok(Json(state.ops.patch_agent(&p, &id, req).await?).into_response())
}

pub async fn delete_agent(
    State(state): State<AppState>,
    Admin(p): Admin,
    PathParam(id): PathParam,
) -> ApiResult<StatusCode> {
    state.ops.delete_agent(&p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn admin_set_status(
    State(state): State<AppState>,
    Admin(p): Admin,
    PathParam(id): PathParam,
    JsonBody(req): JsonBody<AdminSetStatusRequest>,
) -> ApiResult<Response> {
    Ok(Json(state.backend.admin_set_status(&p, &id, req.status).await?).into_response())
}

pub async fn put_groups(
    State(state): State<AppState>,
    Admin(p): Admin,
    JsonListBody(groups): JsonListBody<Group>,
) -> ApiResult<Response> {
    Ok(Json(state.ops.put_groups(&p, groups).await?).into_response())
}

pub async fn put_opening_hours(
    State(state): State<AppState>,
    Admin(p): Admin,
    JsonBody(oh): JsonBody<OpeningHours>,
) -> ApiResult<Response> {
    Ok(Json(state.ops.put_opening_hours(&p, oh).await?).into_response())
}

pub async fn put_settings(
    State(state): State<AppState>,
    Admin(p): Admin,
    JsonBody(patch): JsonBody<SettingsPatch>,
) -> ApiResult<Response> {
    Ok(Json(state.ops.put_settings(&p, patch).await?).into_response())
}

// ----- widget (public) -----------------------------------------------------------------------

/// True when `If-None-Match` names this version (quoted or not, weak or strong, or `*`).
fn matches_etag(headers: &HeaderMap, version: i64) -> bool {
    let Some(v) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let want = version.to_string();
    v.split(',').any(|tag| {
        let t = tag.trim();
        let t = t.strip_prefix("W/").unwrap_or(t);
        t == "*" || t.trim_matches('"') == want
    })
}

pub async fn widget_status(
    State(state): State<AppState>,
    PathParam(key): PathParam,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let frame = state.backend.widget_view(&key).await?;
    let etag = HeaderValue::from_str(&format!("\"{}\"", frame.view.version))
        .map_err(ApiError::internal)?;
    let cache = HeaderValue::from_static("no-cache");
    if matches_etag(&headers, frame.view.version) {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag), (header::CACHE_CONTROL, cache)],
        )
            .into_response());
    }
    Ok((
        [
            (header::ETAG, etag),
            (header::CACHE_CONTROL, cache),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
        ],
        sse::view_json(&frame),
    )
        .into_response())
}

pub async fn widget_events(
    State(state): State<AppState>,
    PathParam(key): PathParam,
) -> ApiResult<Response> {
    let s = state.backend.open_widget_stream(&key).await?;
    Ok(sse::widget_stream(s, state.streams.clone()))
}

// ----- operations ----------------------------------------------------------------------------

/// `{"status":"ok"}`, or `503 unavailable` while a store the backend needs is out of reach.
pub async fn healthz(State(state): State<AppState>) -> Result<Response, ApiError> {
    state.backend.health().await?;
    Ok(Json(serde_json::json!({"status": "ok"})).into_response())
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    let body = state.metrics.render(state.backend.gauges().await);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

//! Administration of an account by its owner or admins: the account, its agents (and an
//! agent's status), groups, opening hours and settings, under `/v1/admin/`.
//!
//! Guarantees:
//! - Every route needs a live session with the owner or admin role (`403 forbidden` for an
//!   agent), or an API key of the account, and acts on the caller's account only. A key
//!   acts as an admin, except on `sign-in` and `api-keys` (`403`); `sign-in` is an owner's.
//! - A new agent answers `201 Created`, a removed one `204 No Content` (its sessions end
//!   with reason `removed`), a password set `204` (its sessions end with reason
//!   `credentials_changed`); every other edit answers `200` with its result.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use axum::{Json, Router};
use presence_protocol::{
    AdminSessionRequest, AdminSetStatusRequest, CustomStatus, Group, NewAgentRequest,
    NewApiKeyRequest, OpeningHours, PatchAgentRequest, SetPasswordRequest, SettingsPatch,
    SignInRequest, TokenTestRequest,
};

use super::AppState;
use super::extract::{Admin, AdminSession, JsonBody, JsonListBody, LogParams, PathParam};
use crate::error::ApiResult;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/account", get(admin_account))
        .route("/v1/admin/agents", post(create_agent))
        .route(
            "/v1/admin/agents/{id}",
            patch(patch_agent).delete(delete_agent),
        )
        .route("/v1/admin/agents/{id}/status", put(admin_set_status))
        .route("/v1/admin/agents/{id}/password", put(set_agent_password))
        .route("/v1/admin/agents/{id}/status-log", get(agent_status_log))
        .route("/v1/admin/groups", put(put_groups))
        .route("/v1/admin/custom-statuses", put(put_custom_statuses))
        .route("/v1/admin/opening-hours", put(put_opening_hours))
        .route("/v1/admin/settings", put(put_settings))
        .route("/v1/admin/sign-in", put(put_sign_in))
        .route("/v1/admin/sign-in/test", post(test_token))
        .route(
            "/v1/admin/api-keys",
            post(create_api_key).get(list_api_keys),
        )
        .route("/v1/admin/api-keys/{id}", delete(revoke_api_key))
        .route("/v1/admin/sessions", post(admin_session))
}

async fn put_sign_in(
    State(state): State<AppState>,
    AdminSession(p): AdminSession,
    JsonBody(req): JsonBody<SignInRequest>,
) -> ApiResult<Response> {
    Ok(Json(state.ops.put_sign_in(&p, req).await?).into_response())
}

/// Says why a token would be refused, or what signing in with it would do; changes nothing.
async fn test_token(
    State(state): State<AppState>,
    AdminSession(p): AdminSession,
    JsonBody(req): JsonBody<TokenTestRequest>,
) -> ApiResult<Response> {
    Ok(Json(state.ops.test_token(&p, req).await?).into_response())
}

async fn create_api_key(
    State(state): State<AppState>,
    AdminSession(p): AdminSession,
    JsonBody(req): JsonBody<NewApiKeyRequest>,
) -> ApiResult<Response> {
    let key = state.ops.create_api_key(&p, req).await?;
    Ok((StatusCode::CREATED, Json(key)).into_response())
}

async fn list_api_keys(
    State(state): State<AppState>,
    AdminSession(p): AdminSession,
) -> ApiResult<Response> {
    Ok(Json(state.ops.api_keys(&p).await?).into_response())
}

async fn revoke_api_key(
    State(state): State<AppState>,
    AdminSession(p): AdminSession,
    PathParam(id): PathParam,
) -> ApiResult<StatusCode> {
    state.ops.revoke_api_key(&p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn admin_session(
    State(state): State<AppState>,
    Admin(p): Admin,
    JsonBody(req): JsonBody<AdminSessionRequest>,
) -> ApiResult<Response> {
    Ok(Json(state.ops.admin_session(&p, req).await?).into_response())
}

async fn put_custom_statuses(
    State(state): State<AppState>,
    Admin(p): Admin,
    JsonListBody(list): JsonListBody<CustomStatus>,
) -> ApiResult<Response> {
    Ok(Json(state.ops.put_custom_statuses(&p, list).await?).into_response())
}

async fn agent_status_log(
    State(state): State<AppState>,
    Admin(p): Admin,
    PathParam(id): PathParam,
    q: LogParams,
) -> ApiResult<Response> {
    Ok(Json(state.ops.status_log(&p, &id, q).await?).into_response())
}

async fn admin_account(State(state): State<AppState>, Admin(p): Admin) -> ApiResult<Response> {
    Ok(Json(state.ops.admin_account(&p).await?).into_response())
}

async fn create_agent(
    State(state): State<AppState>,
    Admin(p): Admin,
    JsonBody(req): JsonBody<NewAgentRequest>,
) -> ApiResult<Response> {
    let agent = state.ops.create_agent(&p, req).await?;
    Ok((StatusCode::CREATED, Json(agent)).into_response())
}

async fn patch_agent(
    State(state): State<AppState>,
    Admin(p): Admin,
    PathParam(id): PathParam,
    JsonBody(req): JsonBody<PatchAgentRequest>,
) -> ApiResult<Response> {
    Ok(Json(state.ops.patch_agent(&p, &id, req).await?).into_response())
}

async fn delete_agent(
    State(state): State<AppState>,
    Admin(p): Admin,
    PathParam(id): PathParam,
) -> ApiResult<StatusCode> {
    state.ops.delete_agent(&p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn admin_set_status(
    State(state): State<AppState>,
    Admin(p): Admin,
    PathParam(id): PathParam,
    JsonBody(req): JsonBody<AdminSetStatusRequest>,
) -> ApiResult<Response> {
    Ok(Json(state.ops.admin_set_status(&p, &id, req).await?).into_response())
}

async fn set_agent_password(
    State(state): State<AppState>,
    Admin(p): Admin,
    PathParam(id): PathParam,
    JsonBody(req): JsonBody<SetPasswordRequest>,
) -> ApiResult<StatusCode> {
    state.ops.set_agent_password(&p, &id, req).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn put_groups(
    State(state): State<AppState>,
    Admin(p): Admin,
    JsonListBody(groups): JsonListBody<Group>,
) -> ApiResult<Response> {
    Ok(Json(state.ops.put_groups(&p, groups).await?).into_response())
}

async fn put_opening_hours(
    State(state): State<AppState>,
    Admin(p): Admin,
    JsonBody(oh): JsonBody<OpeningHours>,
) -> ApiResult<Response> {
    Ok(Json(state.ops.put_opening_hours(&p, oh).await?).into_response())
}

async fn put_settings(
    State(state): State<AppState>,
    Admin(p): Admin,
    JsonBody(patch): JsonBody<SettingsPatch>,
) -> ApiResult<Response> {
    Ok(Json(state.ops.put_settings(&p, patch).await?).into_response())
}

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

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use presence_protocol::{
    AccountSettings, AdminAccountResponse, AdminSessionRequest, AdminSetStatusRequest, Agent,
    ApiKeyInfo, CustomStatus, ErrorBody, Group, LoginResponse, NewAgentRequest, NewApiKeyRequest,
    NewApiKeyResponse, OpeningHours, PatchAgentRequest, SetPasswordRequest, SettingsPatch,
    SignInRequest, SignInView, StatusLogPage, StatusView, TokenTestRequest, TokenTestResponse,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::extract::{Admin, AdminSession, JsonBody, JsonListBody, LogParams, PathParam};
use crate::error::ApiResult;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(admin_account))
        .routes(routes!(create_agent))
        .routes(routes!(patch_agent, delete_agent))
        .routes(routes!(admin_set_status))
        .routes(routes!(set_agent_password))
        .routes(routes!(agent_status_log))
        .routes(routes!(put_groups))
        .routes(routes!(put_custom_statuses))
        .routes(routes!(put_opening_hours))
        .routes(routes!(put_settings))
        .routes(routes!(put_sign_in))
        .routes(routes!(test_token))
        .routes(routes!(create_api_key, list_api_keys))
        .routes(routes!(revoke_api_key))
        .routes(routes!(admin_session))
}

/// How the account's agents sign in: the customer's JWTs, passwords, provisioning (owner only).
#[utoipa::path(
    put,
    path = "/v1/admin/sign-in",
    tag = "admin",
    security(("session" = [])),
    request_body = SignInRequest,
    responses(
        (status = 200, description = "The sign-in settings, without secrets", body = SignInView),
        (status = 403, description = "`forbidden`: the caller is not an owner (an API key never is)", body = ErrorBody),
    ),
)]
async fn put_sign_in(
    State(state): State<AppState>,
    AdminSession(p): AdminSession,
    JsonBody(req): JsonBody<SignInRequest>,
) -> ApiResult<Response> {
    Ok(Json(state.ops.put_sign_in(&p, req).await?).into_response())
}

/// Says why a token would be refused, or what signing in with it would do; changes nothing.
#[utoipa::path(
    post,
    path = "/v1/admin/sign-in/test",
    tag = "admin",
    security(("session" = [])),
    request_body = TokenTestRequest,
    responses(
        (status = 200, description = "Accepted and what a sign-in would do, or exactly why not", body = TokenTestResponse),
        (status = 403, description = "`forbidden`: the caller is not an owner or admin (an API key never is)", body = ErrorBody),
    ),
)]
async fn test_token(
    State(state): State<AppState>,
    AdminSession(p): AdminSession,
    JsonBody(req): JsonBody<TokenTestRequest>,
) -> ApiResult<Response> {
    Ok(Json(state.ops.test_token(&p, req).await?).into_response())
}

/// Creates an API key for the customer's backend; the key is shown only in this answer.
#[utoipa::path(
    post,
    path = "/v1/admin/api-keys",
    tag = "admin",
    security(("session" = [])),
    request_body = NewApiKeyRequest,
    responses(
        (status = 201, description = "The new key", body = NewApiKeyResponse),
        (status = 403, description = "`forbidden`: the caller is not an owner or admin (an API key never is)", body = ErrorBody),
    ),
)]
async fn create_api_key(
    State(state): State<AppState>,
    AdminSession(p): AdminSession,
    JsonBody(req): JsonBody<NewApiKeyRequest>,
) -> ApiResult<Response> {
    let key = state.ops.create_api_key(&p, req).await?;
    Ok((StatusCode::CREATED, Json(key)).into_response())
}

/// The account's API keys (never the keys themselves).
#[utoipa::path(
    get,
    path = "/v1/admin/api-keys",
    tag = "admin",
    security(("session" = [])),
    responses(
        (status = 200, description = "The keys", body = [ApiKeyInfo]),
        (status = 403, description = "`forbidden`: the caller is not an owner or admin (an API key never is)", body = ErrorBody),
    ),
)]
async fn list_api_keys(
    State(state): State<AppState>,
    AdminSession(p): AdminSession,
) -> ApiResult<Response> {
    Ok(Json(state.ops.api_keys(&p).await?).into_response())
}

/// Revokes an API key.
#[utoipa::path(
    delete,
    path = "/v1/admin/api-keys/{id}",
    tag = "admin",
    security(("session" = [])),
    params(("id" = String, Path, description = "The key's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 403, description = "`forbidden`: the caller is not an owner or admin (an API key never is)", body = ErrorBody),
        (status = 404, description = "`not_found`: no such key in the account", body = ErrorBody),
    ),
)]
async fn revoke_api_key(
    State(state): State<AppState>,
    AdminSession(p): AdminSession,
    PathParam(id): PathParam,
) -> ApiResult<StatusCode> {
    state.ops.revoke_api_key(&p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Opens a session for one of the account's agents, answered like a login.
#[utoipa::path(
    post,
    path = "/v1/admin/sessions",
    tag = "admin",
    security(("session" = []), ("api_key" = [])),
    request_body = AdminSessionRequest,
    responses(
        (status = 200, description = "The new session", body = LoginResponse),
        (status = 403, description = "`forbidden`: the caller is not an owner or admin", body = ErrorBody),
        (status = 404, description = "`not_found`: no such agent in the account", body = ErrorBody),
    ),
)]
async fn admin_session(
    State(state): State<AppState>,
    Admin(p): Admin,
    JsonBody(req): JsonBody<AdminSessionRequest>,
) -> ApiResult<Response> {
    Ok(Json(state.ops.admin_session(&p, req).await?).into_response())
}

/// Replaces the account's custom statuses (at most 50).
#[utoipa::path(
    put,
    path = "/v1/admin/custom-statuses",
    tag = "admin",
    security(("session" = []), ("api_key" = [])),
    request_body = Vec<CustomStatus>,
    responses(
        (status = 200, description = "The custom statuses now", body = [CustomStatus]),
        (status = 403, description = "`forbidden`: the caller is not an owner or admin", body = ErrorBody),
    ),
)]
async fn put_custom_statuses(
    State(state): State<AppState>,
    Admin(p): Admin,
    JsonListBody(list): JsonListBody<CustomStatus>,
) -> ApiResult<Response> {
    Ok(Json(state.ops.put_custom_statuses(&p, list).await?).into_response())
}

/// An agent's applied status changes, newest first.
#[utoipa::path(
    get,
    path = "/v1/admin/agents/{id}/status-log",
    tag = "admin",
    security(("session" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "The agent's id"), super::extract::LogParams),
    responses(
        (status = 200, description = "A page of the status log", body = StatusLogPage),
        (status = 403, description = "`forbidden`: the caller is not an owner or admin", body = ErrorBody),
        (status = 404, description = "`not_found`: no such agent in the account", body = ErrorBody),
    ),
)]
async fn agent_status_log(
    State(state): State<AppState>,
    Admin(p): Admin,
    PathParam(id): PathParam,
    q: LogParams,
) -> ApiResult<Response> {
    Ok(Json(state.ops.status_log(&p, &id, q).await?).into_response())
}

/// The account, its groups, opening hours, settings, agents, custom statuses and sign-in.
#[utoipa::path(
    get,
    path = "/v1/admin/account",
    tag = "admin",
    security(("session" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The account", body = AdminAccountResponse),
        (status = 403, description = "`forbidden`: the caller is not an owner or admin", body = ErrorBody),
    ),
)]
async fn admin_account(State(state): State<AppState>, Admin(p): Admin) -> ApiResult<Response> {
    Ok(Json(state.ops.admin_account(&p).await?).into_response())
}

/// Adds an agent to the account.
#[utoipa::path(
    post,
    path = "/v1/admin/agents",
    tag = "admin",
    security(("session" = []), ("api_key" = [])),
    request_body = NewAgentRequest,
    responses(
        (status = 201, description = "The new agent", body = Agent),
        (status = 403, description = "`forbidden`: the caller is not an owner or admin, or only an owner may grant `owner`", body = ErrorBody),
        (status = 409, description = "`conflict`: the e-mail is taken, or the account has 1 000 agents", body = ErrorBody),
    ),
)]
async fn create_agent(
    State(state): State<AppState>,
    Admin(p): Admin,
    JsonBody(req): JsonBody<NewAgentRequest>,
) -> ApiResult<Response> {
    let agent = state.ops.create_agent(&p, req).await?;
    Ok((StatusCode::CREATED, Json(agent)).into_response())
}

/// Changes an agent's name, groups or role.
#[utoipa::path(
    patch,
    path = "/v1/admin/agents/{id}",
    tag = "admin",
    security(("session" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "The agent's id")),
    request_body = PatchAgentRequest,
    responses(
        (status = 200, description = "The agent now", body = Agent),
        (status = 403, description = "`forbidden`: the caller is not an owner or admin, or only an owner may change an owner", body = ErrorBody),
        (status = 404, description = "`not_found`: no such agent in the account", body = ErrorBody),
        (status = 409, description = "`conflict`: the last owner cannot be demoted", body = ErrorBody),
    ),
)]
async fn patch_agent(
    State(state): State<AppState>,
    Admin(p): Admin,
    PathParam(id): PathParam,
    JsonBody(req): JsonBody<PatchAgentRequest>,
) -> ApiResult<Response> {
    Ok(Json(state.ops.patch_agent(&p, &id, req).await?).into_response())
}

/// Removes an agent; its sessions end with reason `removed`.
#[utoipa::path(
    delete,
    path = "/v1/admin/agents/{id}",
    tag = "admin",
    security(("session" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "The agent's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "`forbidden`: the caller is not an owner or admin, or only an owner may remove an owner", body = ErrorBody),
        (status = 404, description = "`not_found`: no such agent in the account", body = ErrorBody),
        (status = 409, description = "`conflict`: the last owner cannot be removed", body = ErrorBody),
    ),
)]
async fn delete_agent(
    State(state): State<AppState>,
    Admin(p): Admin,
    PathParam(id): PathParam,
) -> ApiResult<StatusCode> {
    state.ops.delete_agent(&p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets an agent's status (`cause: admin`).
#[utoipa::path(
    put,
    path = "/v1/admin/agents/{id}/status",
    tag = "admin",
    security(("session" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "The agent's id")),
    request_body = AdminSetStatusRequest,
    responses(
        (status = 200, description = "The agent's status now", body = StatusView),
        (status = 403, description = "`forbidden`: the caller is not an owner or admin", body = ErrorBody),
        (status = 404, description = "`not_found`: no such agent in the account", body = ErrorBody),
    ),
)]
async fn admin_set_status(
    State(state): State<AppState>,
    Admin(p): Admin,
    PathParam(id): PathParam,
    JsonBody(req): JsonBody<AdminSetStatusRequest>,
) -> ApiResult<Response> {
    Ok(Json(state.ops.admin_set_status(&p, &id, req).await?).into_response())
}

/// Sets an agent's password; all its sessions end (`credentials_changed`).
#[utoipa::path(
    put,
    path = "/v1/admin/agents/{id}/password",
    tag = "admin",
    security(("session" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "The agent's id")),
    request_body = SetPasswordRequest,
    responses(
        (status = 204, description = "Set"),
        (status = 403, description = "`forbidden`: the caller is not an owner or admin, or only an owner may change an owner", body = ErrorBody),
        (status = 404, description = "`not_found`: no such agent in the account", body = ErrorBody),
    ),
)]
async fn set_agent_password(
    State(state): State<AppState>,
    Admin(p): Admin,
    PathParam(id): PathParam,
    JsonBody(req): JsonBody<SetPasswordRequest>,
) -> ApiResult<StatusCode> {
    state.ops.set_agent_password(&p, &id, req).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces the account's groups; unknown keys are removed from agents.
#[utoipa::path(
    put,
    path = "/v1/admin/groups",
    tag = "admin",
    security(("session" = []), ("api_key" = [])),
    request_body = Vec<Group>,
    responses(
        (status = 200, description = "The groups now", body = [Group]),
        (status = 403, description = "`forbidden`: the caller is not an owner or admin", body = ErrorBody),
        (status = 409, description = "`conflict`: more than 200 groups", body = ErrorBody),
    ),
)]
async fn put_groups(
    State(state): State<AppState>,
    Admin(p): Admin,
    JsonListBody(groups): JsonListBody<Group>,
) -> ApiResult<Response> {
    Ok(Json(state.ops.put_groups(&p, groups).await?).into_response())
}

/// Replaces the account's opening hours.
#[utoipa::path(
    put,
    path = "/v1/admin/opening-hours",
    tag = "admin",
    security(("session" = []), ("api_key" = [])),
    request_body = OpeningHours,
    responses(
        (status = 200, description = "The opening hours now", body = OpeningHours),
        (status = 403, description = "`forbidden`: the caller is not an owner or admin", body = ErrorBody),
    ),
)]
async fn put_opening_hours(
    State(state): State<AppState>,
    Admin(p): Admin,
    JsonBody(oh): JsonBody<OpeningHours>,
) -> ApiResult<Response> {
    Ok(Json(state.ops.put_opening_hours(&p, oh).await?).into_response())
}

/// Changes some of the account's settings (any subset).
#[utoipa::path(
    put,
    path = "/v1/admin/settings",
    tag = "admin",
    security(("session" = []), ("api_key" = [])),
    request_body = SettingsPatch,
    responses(
        (status = 200, description = "The settings now", body = AccountSettings),
        (status = 403, description = "`forbidden`: the caller is not an owner or admin", body = ErrorBody),
    ),
)]
async fn put_settings(
    State(state): State<AppState>,
    Admin(p): Admin,
    JsonBody(patch): JsonBody<SettingsPatch>,
) -> ApiResult<Response> {
    Ok(Json(state.ops.put_settings(&p, patch).await?).into_response())
}

//! The account's live picture: `GET /v1/admin/presence` (a snapshot) and
//! `GET /v1/admin/events` (the snapshot, then every event), for owners, admins and API keys.

use super::conn::StreamStop;
use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use presence_protocol::{ErrorBody, PresenceSnapshot};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::extract::{Admin, ClientIp};
use super::sse::{self, AccountEvents};
use crate::error::ApiResult;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(presence))
}

/// The event stream, outside the request deadline (it lasts as long as its reader reads).
pub fn streams() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(events))
}

/// Every agent (status, availability and since when, devices signed in) and the chat box,
/// consistent with the account's events up to `seq`.
#[utoipa::path(
    get,
    path = "/v1/admin/presence",
    tag = "admin",
    security(("session" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The snapshot", body = PresenceSnapshot),
        (status = 403, description = "`forbidden`: the caller is not an owner or admin", body = ErrorBody),
    ),
)]
async fn presence(State(state): State<AppState>, Admin(p): Admin) -> ApiResult<Response> {
    Ok(Json(state.ops.presence(&p).await?).into_response())
}

/// The account's events: `snapshot` (the body of `GET /v1/admin/presence`) first, then every
/// event after its `seq` (`id:` the `seq`, `event:` the type, `data:` an `AccountEvent`), and
/// `ping` while quiet.
#[utoipa::path(
    get,
    path = "/v1/admin/events",
    tag = "admin",
    security(("session" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Server-sent events: `snapshot` (`PresenceSnapshot`), then `agent.status`, `agent.availability`, `chatbox.view`, `session.started`, `session.ended` (each an `AccountEvent`), and `ping` (`PingEvent`)", content_type = "text/event-stream", body = String),
        (status = 403, description = "`forbidden`: the caller is not an owner or admin", body = ErrorBody),
        (status = 503, description = "`unavailable`: too many streams from this address, or a store is out of reach", body = ErrorBody,
         headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
)]
async fn events(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Admin(p): Admin,
    stop: Option<Extension<StreamStop>>,
) -> ApiResult<Response> {
    let permit = state.stream_limiter.acquire(ip)?;
    let (snapshot, slug) = state.ops.account_events(&p).await?;
    let src = AccountEvents {
        backend: state.ops.backend().clone(),
        account_id: p.account_id.to_string(),
        slug,
        snapshot,
    };
    Ok(sse::account_stream(
        src,
        state.streams.clone(),
        permit,
        stop.map(|Extension(s)| s),
    ))
}

//! The public widget API: `GET /v1/widget/{widget_key}/status` and the stream
//! `GET /v1/widget/{widget_key}/events`, for the chat box on any website.
//!
//! Guarantees:
//! - No authentication: the widget key names the account (unknown key: `404 not_found`).
//! - CORS from any origin, on these routes only ([`cors`]): `GET` and preflight `OPTIONS`
//!   (answered `200` by the CORS layer, which takes every `OPTIONS`), with `ETag` exposed to scripts.
//! - The status carries `ETag` = the view's version and [`STATUS_CACHE`]: a CDN in front of
//!   the server may answer it for one second without asking, browsers ask every time;
//!   `If-None-Match` naming the `ETag` (quoted or not, weak or strong, or `*`) answers `304`
//!   with the same headers. An unknown key's `404` is not cached.
//! - The event stream is not under the request deadline: it is served by [`streams`], apart
//!   from [`router`].

use super::conn::StreamStop;
use axum::Extension;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use presence_protocol::{ChatboxView, ErrorBody};
use tower_http::cors::{Any, CorsLayer};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::extract::{ClientIp, PathParam};
use super::sse;
use crate::error::{ApiError, ApiResult};

/// `Cache-Control` of the widget's status: browsers revalidate every time (an `ETag` makes
/// that a `304`), a shared cache (a CDN) may serve it for 1 s, so a million visitors' page
/// loads reach the server at most once a second per widget key and edge (docs/SCALING.md).
pub const STATUS_CACHE: &str = "public, max-age=0, s-maxage=1";

/// The status, answered within the request deadline.
pub fn router() -> OpenApiRouter<AppState> {
    // `options` lets preflight requests reach the CORS layer, which answers them.
    OpenApiRouter::new().routes(routes!(widget_status, status_preflight))
}

/// The widget's event stream.
pub fn streams() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(widget_events, events_preflight))
}

/// The CORS layer over both widget routers, outside the request deadline so that its
/// `503` carries the CORS headers too.
pub fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::OPTIONS])
        .allow_headers(Any)
        .expose_headers([header::ETAG])
        .max_age(Duration::from_secs(3600))
}

/// CORS preflight of the status (any origin).
#[utoipa::path(
    options,
    path = "/v1/widget/{widget_key}/status",
    tag = "widget",
    params(("widget_key" = String, Path, description = "The account's widget key")),
    responses((status = 200, description = "Allowed from any origin (answered by the CORS layer)")),
)]
async fn status_preflight() -> StatusCode {
    StatusCode::OK
}

/// CORS preflight of the event stream (any origin).
#[utoipa::path(
    options,
    path = "/v1/widget/{widget_key}/events",
    tag = "widget",
    params(("widget_key" = String, Path, description = "The account's widget key")),
    responses((status = 200, description = "Allowed from any origin (answered by the CORS layer)")),
)]
async fn events_preflight() -> StatusCode {
    StatusCode::OK
}

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

/// The chat box as visitors see it. `ETag` is the view's version; `If-None-Match` naming it
/// answers `304`.
#[utoipa::path(
    get,
    path = "/v1/widget/{widget_key}/status",
    tag = "widget",
    params(
        ("widget_key" = String, Path, description = "The account's widget key"),
        ("If-None-Match" = Option<String>, Header, description = "An `ETag` seen before"),
    ),
    responses(
        (status = 200, description = "The chat box view", body = ChatboxView,
         headers(("ETag" = String, description = "The view's version, quoted"))),
        (status = 304, description = "Not modified since the `ETag` named",
         headers(("ETag" = String, description = "The view's version, quoted"))),
        (status = 404, description = "`not_found`: no account has this widget key", body = ErrorBody),
    ),
)]
async fn widget_status(
    State(state): State<AppState>,
    PathParam(key): PathParam,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let frame = state.ops.widget_view(&key).await?;
    let etag = HeaderValue::from_str(&format!("\"{}\"", frame.view.version))
        .map_err(ApiError::internal)?;
    let cache = HeaderValue::from_static(STATUS_CACHE);
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

/// The chat box's event stream: `chatbox` events (the first at once) and `ping`.
#[utoipa::path(
    get,
    path = "/v1/widget/{widget_key}/events",
    tag = "widget",
    params(("widget_key" = String, Path, description = "The account's widget key")),
    responses(
        (status = 200, description = "Server-sent events: `chatbox` (`ChatboxView`), `ping` (`PingEvent`)", content_type = "text/event-stream", body = String),
        (status = 404, description = "`not_found`: no account has this widget key", body = ErrorBody),
        (status = 503, description = "`unavailable`: too many streams from this address, or a store is out of reach", body = ErrorBody,
         headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
)]
async fn widget_events(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    PathParam(key): PathParam,
    stop: Option<Extension<StreamStop>>,
) -> ApiResult<Response> {
    let permit = state.stream_limiter.acquire(ip)?;
    let stream = state.ops.open_widget_stream(&key).await?;
    Ok(sse::widget_stream(
        stream,
        state.streams.clone(),
        permit,
        stop.map(|Extension(s)| s),
    ))
}

//! The public widget API: `GET /v1/widget/{widget_key}/status` and the stream
//! `GET /v1/widget/{widget_key}/events`, for the chat box on any website.
//!
//! Guarantees:
//! - No authentication: the widget key names the account (unknown key: `404 not_found`).
//! - CORS from any origin, on these routes only ([`cors`]): `GET` and preflight `OPTIONS`
//!   (answered `204` by the CORS layer), with `ETag` exposed to scripts.
//! - The status carries `ETag` = the view's version and `Cache-Control: no-cache`;
//!   `If-None-Match` naming it (quoted or not, weak or strong, or `*`) answers `304`.
//! - The event stream is not under the request deadline: it is served by [`streams`], apart
//!   from [`router`].

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::cors::{Any, CorsLayer};

use super::AppState;
use super::extract::{ClientIp, PathParam};
use super::sse;
use crate::error::{ApiError, ApiResult};

/// The status, answered within the request deadline.
pub fn router() -> Router<AppState> {
    // `options` lets preflight requests reach the CORS layer, which answers them.
    Router::new().route(
        "/v1/widget/{widget_key}/status",
        get(widget_status).options(preflight),
    )
}

/// The widget's event stream.
pub fn streams() -> Router<AppState> {
    Router::new().route(
        "/v1/widget/{widget_key}/events",
        get(widget_events).options(preflight),
    )
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

async fn preflight() -> StatusCode {
    StatusCode::NO_CONTENT
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

async fn widget_status(
    State(state): State<AppState>,
    PathParam(key): PathParam,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let frame = state.ops.widget_view(&key).await?;
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

async fn widget_events(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    PathParam(key): PathParam,
) -> ApiResult<Response> {
    let permit = state.stream_limiter.acquire(ip)?;
    let stream = state.ops.open_widget_stream(&key).await?;
    Ok(sse::widget_stream(stream, state.streams.clone(), permit))
}

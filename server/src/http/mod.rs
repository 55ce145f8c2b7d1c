//! The HTTP surface: a router per area, the extractors that turn bad input into contract
//! errors, and the middleware stack.
//!
//! Areas, one module each, each with its own routes and handlers: `accounts` (account
//! creation by the operator), `session` (login, heartbeat, logout, push registration), `me`
//! (the caller's agent, status, sessions and device stream), `admin`, `widget` (public, with
//! its CORS), `health` (`/healthz`, `/metrics`) and `assets` (the web files). `router`
//! composes them and puts the layers on.
//!
//! Every rejection axum would produce on its own (bad JSON, wrong content type, body too big,
//! unknown path, wrong method) is rewritten here into the `{"error": {...}}` shape.

mod accounts;
mod admin;
mod assets;
mod conn;
mod events;
mod extract;
mod health;
mod layer;
mod me;
pub mod openapi;
mod reports;
mod session;
pub mod sse;
pub mod stream_limit;
mod strict_json;
mod webhooks;
mod widget;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use presence_protocol::Settings;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceBuilder;
use utoipa::{Modify, OpenApi as _};
use utoipa_axum::router::OpenApiRouter;

use crate::Limits;
use crate::error::ApiError;
use crate::metrics::{HttpMetrics, Metrics};

/// Request bodies above this are refused with `413 payload_too_large`.
pub const BODY_LIMIT: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    /// The operations planned above the backend: all a handler calls.
    pub ops: crate::ops::Ops,
    pub limiter: Arc<dyn crate::auth::LoginGate>,
    pub metrics: Arc<Metrics>,
    pub admin_token: Option<Arc<str>>,
    /// Settings for new accounts (the server's timing flags).
    pub defaults: Settings,
    /// What event streams need: the shutdown signal, the ping interval, the clock.
    pub streams: sse::StreamConfig,
    /// `--demo`: the demo host page is served under `/demo/`.
    pub demo: bool,
    /// `--trusted-proxy`: see [`extract::ClientIp`].
    pub trusted_proxies: Arc<[ipnet::IpNet]>,
    /// `--max-streams-per-ip`.
    pub stream_limiter: Arc<stream_limit::StreamLimiter>,
}

/// Serves the API on `listener` until `stop` turns true.
///
/// The request layer and the body limit wrap the router once, outside it: layers added with
/// `Router::layer` are cloned into every route and re-boxed per request.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    limits: Limits,
    stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let drain_every = state.streams.ping_every;
    let http = state.metrics.http.clone();
    let deadline = Deadline {
        limit: limits.request_timeout,
        metrics: http.clone(),
    };
    let app = ServiceBuilder::new()
        .layer(layer::RequestLayer::new())
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .service(router(state, deadline));
    conn::serve(listener, app, limits, drain_every, http, stop).await
}

/// What [`deadline`] needs: the limit, and where it records each answer's latency.
#[derive(Clone)]
struct Deadline {
    limit: Duration,
    metrics: Arc<HttpMetrics>,
}

impl Deadline {
    /// For building the OpenAPI document, which serves nothing.
    fn document() -> Deadline {
        Deadline {
            limit: Duration::from_secs(1),
            metrics: Arc::default(),
        }
    }
}

/// Answers `503 unavailable` for a request not answered within its deadline, rather than
/// leaving the client waiting or closing with an empty body, and records how long the
/// answer took under the matched route's template. Event streams are not under it: they
/// last as long as their reader reads.
async fn deadline(
    State(d): State<Deadline>,
    req: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = std::time::Instant::now();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let resp = match tokio::time::timeout(d.limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::unavailable(
            format!(
                "the request was not answered within {} ms",
                d.limit.as_millis()
            ),
            1,
        )
        .into_response(),
    };
    if let Some(route) = &route {
        d.metrics.answered(route, resp.status(), started.elapsed());
    }
    resp
}

/// All areas under one router, the web files' beside the documented API's; unknown paths and
/// methods answer in the contract's shape.
fn router(state: AppState, limit: Deadline) -> Router {
    let (api, _) = api(limit.clone()).split_for_parts();
    api.merge(assets::router().layer(axum::middleware::from_fn_with_state(limit, deadline)))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// Every route of the API with its document ([`openapi`]). The deadline wraps every route
/// but the two event streams; the widget's CORS wraps the widget routes only, outside their
/// deadline.
fn api(limit: Deadline) -> OpenApiRouter<AppState> {
    let within_deadline = axum::middleware::from_fn_with_state(limit, deadline);
    let widget_routes = widget::router()
        .layer(within_deadline.clone())
        // Streams are added after the deadline layer, so it does not wrap them.
        .merge(widget::streams())
        .layer(widget::cors());
    let mut api = OpenApiRouter::with_openapi(openapi::Frame::openapi())
        .merge(accounts::router())
        .merge(session::router())
        .merge(me::router())
        .merge(admin::router())
        .merge(reports::router())
        .merge(events::router())
        .merge(webhooks::router())
        .merge(health::router())
        .merge(openapi::router())
        .layer(within_deadline)
        .merge(me::streams())
        .merge(events::streams())
        .merge(widget_routes);
    openapi::Errors.modify(api.get_openapi_mut());
    api
}

async fn not_found() -> ApiError {
    ApiError::not_found("route")
}

async fn method_not_allowed() -> ApiError {
    let mut e = ApiError::bad_request("method not allowed on this path");
    e.status_override = Some(StatusCode::METHOD_NOT_ALLOWED);
    e
}

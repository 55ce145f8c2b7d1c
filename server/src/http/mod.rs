//! The HTTP surface: routers per area (accounts, session, me, admin, widget, ops), the
//! extractors that turn bad input into contract errors, and the middleware stack.
//!
//! Every rejection axum would produce on its own (bad JSON, wrong content type, body too big,
//! unknown path, wrong method) is rewritten here into the `{"error": {...}}` shape.

mod assets;
mod conn;
mod extract;
mod layer;
mod routes;
pub mod sse;
mod strict_json;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{delete, get, patch, post, put};
use presence_protocol::Settings;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceBuilder;
use tower_http::cors::{Any, CorsLayer};

use crate::Limits;
use crate::backend::Backend;
use crate::error::ApiError;
use crate::metrics::Metrics;

/// Request bodies above this are refused with `413 payload_too_large`.
pub const BODY_LIMIT: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub backend: Arc<dyn Backend>,
    /// The operations planned above the backend.
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
    let app = ServiceBuilder::new()
        .layer(layer::RequestLayer::new())
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .service(router(state, limits.request_timeout));
    conn::serve(listener, app, limits, stop).await
}

/// Answers `503 unavailable` for a request not answered within its deadline, rather than
/// leaving the client waiting or closing with an empty body. Event streams are not under
/// it: they last as long as their reader reads.
async fn deadline(
    State(limit): State<Duration>,
    req: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::unavailable(
            format!(
                "the request was not answered within {} ms",
                limit.as_millis()
            ),
            1,
        )
        .into_response(),
    }
}

fn router(state: AppState, request_timeout: Duration) -> Router {
    let widget_cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::OPTIONS])
        .allow_headers(Any)
        .expose_headers([header::ETAG])
        .max_age(Duration::from_secs(3600));
    let widget = Router::new()
        // `options` lets preflight requests reach the CORS layer, which answers them.
        .route(
            "/v1/widget/{widget_key}/status",
            get(routes::widget_status).options(preflight),
        )
        .layer(axum::middleware::from_fn_with_state(
            request_timeout,
            deadline,
        ))
        // Streams are added after the deadline layer, so it does not wrap them.
        .route(
            "/v1/widget/{widget_key}/events",
            get(routes::widget_events).options(preflight),
        )
        .layer(widget_cors);
    Router::new()
        .route("/v1/accounts", post(routes::create_account))
        .route("/v1/login", post(routes::login))
        .route("/v1/session/heartbeat", post(routes::heartbeat))
        .route("/v1/session", delete(routes::logout))
        .route(
            "/v1/session/push",
            put(routes::put_push).delete(routes::delete_push),
        )
        .route("/v1/me", get(routes::me))
        .route("/v1/me/status", put(routes::set_status))
        .route(
            "/v1/me/sessions/{session_id}",
            delete(routes::end_my_session),
        )
        .route("/v1/admin/account", get(routes::admin_account))
        .route("/v1/admin/agents", post(routes::create_agent))
        .route(
            "/v1/admin/agents/{id}",
            patch(routes::patch_agent).delete(routes::delete_agent),
        )
        .route(
            "/v1/admin/agents/{id}/status",
            put(routes::admin_set_status),
        )
        .route("/v1/admin/groups", put(routes::put_groups))
        .route("/v1/admin/opening-hours", put(routes::put_opening_hours))
        .route("/v1/admin/settings", put(routes::put_settings))
        .route("/healthz", get(routes::healthz))
        .route("/metrics", get(routes::metrics))
        .route("/widget.js", get(assets::widget_js))
        .route("/app", get(assets::app_redirect))
        .route("/app/", get(assets::app_page))
        .route("/app/app.js", get(assets::app_js))
        .route("/app/app.css", get(assets::app_css))
        .route("/app/beat.js", get(assets::app_beat_js))
        .route("/app/favicon.svg", get(assets::app_icon))
        .route("/app/{*view}", get(assets::app_page))
        .route("/demo", get(assets::demo_redirect))
        .route("/demo/", get(assets::demo_page))
        .route("/demo/demo.js", get(assets::demo_js))
        .route("/demo/demo.css", get(assets::demo_css))
        .route("/demo/favicon.svg", get(assets::demo_icon))
        .layer(axum::middleware::from_fn_with_state(
            request_timeout,
            deadline,
        ))
        .route("/v1/me/events", get(routes::me_events))
        .merge(widget)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn preflight() -> StatusCode {
    StatusCode::NO_CONTENT
}

async fn not_found() -> ApiError {
    ApiError::not_found("route")
}

async fn method_not_allowed() -> ApiError {
    let mut e = ApiError::bad_request("method not allowed on this path");
    e.status_override = Some(StatusCode::METHOD_NOT_ALLOWED);
    e
}

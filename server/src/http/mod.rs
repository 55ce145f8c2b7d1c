//! The HTTP surface: routers per area (accounts, session, me, admin, widget, ops), the
//! extractors that turn bad input into contract errors, and the middleware stack.
//!
//! Every rejection axum would produce on its own (bad JSON, wrong content type, body too big,
//! unknown path, wrong method) is rewritten here into the `{"error": {...}}` shape.

mod extract;
mod layer;
mod routes;
mod sse;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{Method, StatusCode, header};
use axum::routing::{delete, get, patch, post, put};
use presence_protocol::Settings;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceBuilder;
use tower_http::cors::{Any, CorsLayer};

use crate::auth::LoginLimiter;
use crate::backend::Backend;
use crate::error::ApiError;
use crate::metrics::Metrics;

/// Request bodies above this are refused with `413 payload_too_large`.
pub const BODY_LIMIT: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub backend: Arc<dyn Backend>,
    pub limiter: Arc<LoginLimiter>,
    pub metrics: Arc<Metrics>,
    pub admin_token: Option<Arc<str>>,
    /// Settings for new accounts (the server's timing flags).
    pub defaults: Settings,
    /// Flips to true on shutdown; open event streams end.
    pub shutdown: watch::Receiver<bool>,
}

/// Serves the API on `listener` until `stop` turns true.
///
/// The request layer and the body limit wrap the router once, outside it: layers added with
/// `Router::layer` are cloned into every route and re-boxed per request.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let app = ServiceBuilder::new()
        .layer(layer::RequestLayer::new())
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .service(router(state));
    let app = axum::ServiceExt::<Request>::into_make_service_with_connect_info::<SocketAddr>(app);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|v| *v).await;
        })
        .await
}

fn router(state: AppState) -> Router {
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
        .route("/v1/me/events", get(routes::me_events))
        .route("/v1/admin/account", get(routes::admin_account))
        .route("/v1/admin/agents", post(routes::create_agent))
        .route(
            "/v1/admin/agents/{id}",
            patch(routes::patch_agent).delete(routes::delete_agent),
        )
        .route("/v1/admin/groups", put(routes::put_groups))
        .route("/v1/admin/opening-hours", put(routes::put_opening_hours))
        .route("/v1/admin/settings", put(routes::put_settings))
        .route("/healthz", get(routes::healthz))
        .route("/metrics", get(routes::metrics))
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

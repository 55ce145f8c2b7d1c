//! The web files the server serves from its own binary: `GET /widget.js` (the chat box
//! widget), the dashboard under `/app/`, and, with `--demo`, the demo host page under `/demo/`.
//!
//! Guarantees:
//! - The bytes are the committed bundles in `web/dist/` (built by esbuild, checked current by
//!   `cargo xtask test`), embedded with `include_bytes!`: no Node and no files at run time.
//! - Each answer carries a strong `ETag` (a hash of the uncompressed bytes, the same for both
//!   encodings), `Cache-Control`, `Vary: Accept-Encoding`, the right `Content-Type` and
//!   `X-Content-Type-Options: nosniff`; `If-None-Match` naming it answers `304`.
//! - `widget.js` is sent gzip (precompressed at build time) to a client whose
//!   `Accept-Encoding` accepts gzip, identity otherwise.
//! - The demo page is served under a strict Content-Security-Policy (no inline script or
//!   style): the same policy a site owner is told to use, so the demo proves it works.
//! - The dashboard is one page: every address under `/app/` that is not one of its files
//!   answers the same `index.html` (the page routes itself, so each view is bookmarkable), under
//!   [`APP_CSP`]. Its scripts (the administration pages are a second one, `admin.js`, loaded
//!   when an owner or admin opens one) and stylesheet are sent gzip when accepted.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{MethodRouter, get};
use sha2::{Digest, Sha256};

use super::AppState;
use crate::error::ApiError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/widget.js", get(widget_js))
        .route("/app", get(app_redirect))
        .route("/app/", app_file(&APP_HTML))
        .route("/app/app.js", app_file(&APP_JS))
        .route("/app/app.css", app_file(&APP_CSS))
        .route("/app/beat.js", app_file(&APP_BEAT_JS))
        .route("/app/admin.js", app_file(&APP_ADMIN_JS))
        .route("/app/favicon.svg", app_file(&DEMO_ICON))
        // Every other address under `/app/` is the dashboard's page, which routes itself.
        .route("/app/{*view}", app_file(&APP_HTML))
        .route("/demo", get(demo_redirect))
        .route("/demo/", get(demo_page))
        .route("/demo/demo.js", demo_file(&DEMO_JS))
        .route("/demo/demo.css", demo_file(&DEMO_CSS))
        .route("/demo/favicon.svg", demo_file(&DEMO_ICON))
}

/// One embedded file.
pub struct Asset {
    pub body: &'static [u8],
    pub gzip: Option<&'static [u8]>,
    pub content_type: &'static str,
    pub cache_control: &'static str,
    pub etag: LazyLock<HeaderValue>,
}

fn etag_of(body: &[u8]) -> HeaderValue {
    let h = Sha256::digest(body);
    HeaderValue::from_str(&format!("\"{}\"", hex::encode(&h[..12])))
        .expect("hex is a valid header value")
}

macro_rules! asset {
    ($path:literal, $gz:expr, $ct:literal, $cache:literal) => {
        Asset {
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../web/", $path)),
            gzip: $gz,
            content_type: $ct,
            cache_control: $cache,
            etag: LazyLock::new(|| {
                etag_of(include_bytes!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../web/",
                    $path
                )))
            }),
        }
    };
}

/// Sites paste the widget's URL without a version in it: caches keep it five minutes, then
/// revalidate with the ETag (a cheap 304), so a new server version reaches visitors quickly.
pub static WIDGET_JS: Asset = asset!(
    "dist/widget.js",
    Some(include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../web/dist/widget.js.gz"
    ))),
    "text/javascript; charset=utf-8",
    "public, max-age=300"
);
static DEMO_HTML: Asset = asset!(
    "demo/index.html",
    None,
    "text/html; charset=utf-8",
    "no-cache"
);
static DEMO_JS: Asset = asset!(
    "dist/demo.js",
    None,
    "text/javascript; charset=utf-8",
    "no-cache"
);
static DEMO_CSS: Asset = asset!("demo/demo.css", None, "text/css; charset=utf-8", "no-cache");

static DEMO_ICON: Asset = asset!(
    "demo/favicon.svg",
    None,
    "image/svg+xml",
    "public, max-age=86400"
);

static APP_HTML: Asset = asset!(
    "app/index.html",
    None,
    "text/html; charset=utf-8",
    "no-cache"
);
pub static APP_JS: Asset = asset!(
    "dist/app.js",
    Some(include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../web/dist/app.js.gz"
    ))),
    "text/javascript; charset=utf-8",
    "no-cache"
);
pub static APP_CSS: Asset = asset!(
    "dist/app.css",
    Some(include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../web/dist/app.css.gz"
    ))),
    "text/css; charset=utf-8",
    "no-cache"
);

/// The dashboard's administration pages, loaded only when an owner or admin opens one.
static APP_ADMIN_JS: Asset = asset!(
    "dist/admin.js",
    Some(include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../web/dist/admin.js.gz"
    ))),
    "text/javascript; charset=utf-8",
    "no-cache"
);

/// The dashboard's heartbeat worker (small: no gzip copy).
static APP_BEAT_JS: Asset = asset!(
    "dist/beat.js",
    None,
    "text/javascript; charset=utf-8",
    "no-cache"
);

/// The dashboard's policy: nothing inline, nothing from elsewhere, no framing. The page loads
/// `/widget.js` from this server for its live previews.
pub const APP_CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; \
     style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

const APP_HEADERS: &[(&str, &str)] = &[
    ("content-security-policy", APP_CSP),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
];

/// `GET /app`: the dashboard lives at `/app/`.
async fn app_redirect() -> Response {
    Redirect::permanent("/app/").into_response()
}

/// `GET` of one of the dashboard's files, under the dashboard's headers.
fn app_file(asset: &'static Asset) -> MethodRouter<AppState> {
    get(move |headers: HeaderMap| async move { serve(asset, &headers, APP_HEADERS) })
}

/// The demo page's policy: scripts, styles and connections from this server only.
pub const DEMO_CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; \
     style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// True when `If-None-Match` names `etag` (weak or strong) or is `*`.
fn not_modified(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let Some(v) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let want = etag.to_str().unwrap_or_default();
    v.split(',').any(|tag| {
        let t = tag.trim();
        t == "*" || t.strip_prefix("W/").unwrap_or(t) == want
    })
}

/// True when `Accept-Encoding` accepts gzip: listed as `gzip` (or `x-gzip`, or `*`) with a
/// quality above zero.
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut star = false;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(v) = value.to_str() else { continue };
        for item in v.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .filter_map(|q| q.trim().parse::<f32>().ok())
                .next()
                .unwrap_or(1.0);
            match coding.as_str() {
                "gzip" | "x-gzip" => return q > 0.0,
                "*" => star = q > 0.0,
                _ => {}
            }
        }
    }
    star
}

fn serve(
    asset: &'static Asset,
    headers: &HeaderMap,
    extra: &[(&'static str, &'static str)],
) -> Response {
    let etag = (*asset.etag).clone();
    let mut h = HeaderMap::new();
    h.insert(header::ETAG, etag.clone());
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(asset.cache_control),
    );
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    for (k, v) in extra {
        h.insert(*k, HeaderValue::from_static(v));
    }
    if not_modified(headers, &etag) {
        return (StatusCode::NOT_MODIFIED, h).into_response();
    }
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    let body = match asset.gzip {
        Some(gz) if accepts_gzip(headers) => {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            gz
        }
        _ => asset.body,
    };
    (h, body).into_response()
}

/// `GET /widget.js`. Any site may load it, including pages that isolate themselves
/// (`Cross-Origin-Embedder-Policy`), hence the resource policy.
async fn widget_js(headers: HeaderMap) -> Response {
    serve(
        &WIDGET_JS,
        &headers,
        &[
            ("cross-origin-resource-policy", "cross-origin"),
            ("access-control-allow-origin", "*"),
        ],
    )
}

fn demo_only(state: &AppState) -> Result<(), ApiError> {
    if state.demo {
        Ok(())
    } else {
        Err(ApiError::not_found("route"))
    }
}

async fn demo_redirect(State(state): State<AppState>) -> Result<Response, ApiError> {
    demo_only(&state)?;
    Ok(Redirect::permanent("/demo/").into_response())
}

async fn demo_page(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    demo_only(&state)?;
    Ok(serve(
        &DEMO_HTML,
        &headers,
        &[
            ("content-security-policy", DEMO_CSP),
            ("referrer-policy", "no-referrer"),
        ],
    ))
}

/// `GET` of one of the demo page's files; `404 not_found` without `--demo`.
fn demo_file(asset: &'static Asset) -> MethodRouter<AppState> {
    get(
        move |State(state): State<AppState>, headers: HeaderMap| async move {
            demo_only(&state)?;
            Ok::<_, ApiError>(serve(asset, &headers, &[]))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ae(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn gzip_negotiation() {
        assert!(accepts_gzip(&ae("gzip, deflate, br")));
        assert!(accepts_gzip(&ae("br;q=1.0, GZIP;q=0.5")));
        assert!(accepts_gzip(&ae("*")));
        assert!(!accepts_gzip(&ae("gzip;q=0")));
        assert!(!accepts_gzip(&ae("*, gzip;q=0")));
        assert!(!accepts_gzip(&ae("br, identity")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn embedded_gzip_is_the_widget() {
        // The committed .gz must start with the gzip magic; its content is checked against
        // widget.js by `web/build.mjs --check` and by tests/tests/widget_assets.rs.
        let gz = WIDGET_JS.gzip.expect("widget.js has a gzip copy");
        assert_eq!(&gz[..2], &[0x1f, 0x8b]);
        assert!(gz.len() < WIDGET_JS.body.len());
    }
}

//! The dashboard under `/app/`: every address under it answers the one page (it routes
//! itself), under a strict CSP; its script and stylesheet are the committed bundles, gzip only
//! when accepted, with ETag revalidation; `/app` redirects to `/app/`; the API paths stay API.
//!
//! The dashboard's behaviour in a browser is pinned by the browser suite (`web/test/`).

use presence_test_support::*;
use reqwest::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, ETAG, IF_NONE_MATCH};

const APP_HTML: &[u8] = include_bytes!("../../web/app/index.html");
const APP_JS: &[u8] = include_bytes!("../../web/dist/app.js");
const APP_CSS: &[u8] = include_bytes!("../../web/dist/app.css");
const APP_BEAT_JS: &[u8] = include_bytes!("../../web/dist/beat.js");
const APP_ICON: &[u8] = include_bytes!("../../web/demo/favicon.svg");
const APP_JS_GZ: &[u8] = include_bytes!("../../web/dist/app.js.gz");
const APP_ADMIN_JS: &[u8] = include_bytes!("../../web/dist/admin.js");
const APP_ADMIN_JS_GZ: &[u8] = include_bytes!("../../web/dist/admin.js.gz");
const APP_CSS_GZ: &[u8] = include_bytes!("../../web/dist/app.css.gz");

/// A client that neither decompresses nor follows redirects: the wire is what we check.
fn raw_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_gzip()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

fn assert_strict_csp(h: &reqwest::header::HeaderMap, what: &str) {
    let csp = h["content-security-policy"].to_str().unwrap();
    for want in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(want), "{what}: {want} in {csp}");
    }
    assert!(!csp.contains("unsafe-"), "{what}: nothing unsafe in {csp}");
}

#[tokio::test]
async fn every_address_under_app_is_the_page_under_a_strict_csp() {
    let s = TestServer::start().await;
    let c = raw_client();
    for path in [
        "/app/",
        "/app/devices",
        "/app/admin/agents",
        "/app/admin/hours",
        "/app/some/deeper/address",
    ] {
        let r = c.get(format!("{}{path}", s.url)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers().clone();
        assert_eq!(h[CONTENT_TYPE], "text/html; charset=utf-8", "{path}");
        assert_strict_csp(&h, path);
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "no-referrer");
        let body = r.bytes().await.unwrap();
        assert_eq!(body.as_ref(), APP_HTML, "{path} is the dashboard page");
    }
    let html = String::from_utf8_lossy(APP_HTML);
    assert!(!html.contains("<style"), "no inline style");
    assert!(!html.contains("<script>"), "no inline script");
    assert!(
        html.contains("<script defer src=\"/app/app.js\">"),
        "the script"
    );
}

#[tokio::test]
async fn app_redirects_to_app_slash() {
    let s = TestServer::start().await;
    let r = raw_client()
        .get(format!("{}/app", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(r.headers()["location"], "/app/");
}

#[tokio::test]
async fn script_and_stylesheet_are_the_bundles_gzip_when_accepted() {
    let s = TestServer::start().await;
    let c = raw_client();
    for (path, body, gzip, ct) in [
        (
            "/app/app.js",
            APP_JS,
            APP_JS_GZ,
            "text/javascript; charset=utf-8",
        ),
        (
            "/app/admin.js",
            APP_ADMIN_JS,
            APP_ADMIN_JS_GZ,
            "text/javascript; charset=utf-8",
        ),
        (
            "/app/app.css",
            APP_CSS,
            APP_CSS_GZ,
            "text/css; charset=utf-8",
        ),
    ] {
        let plain = c.get(format!("{}{path}", s.url)).send().await.unwrap();
        assert_eq!(plain.status(), 200, "{path}");
        assert_eq!(plain.headers()[CONTENT_TYPE], ct, "{path}");
        assert!(plain.headers().get(CONTENT_ENCODING).is_none(), "{path}");
        assert_strict_csp(plain.headers(), path);
        let etag = plain.headers()[ETAG].clone();
        assert_eq!(plain.bytes().await.unwrap().as_ref(), body, "{path}");

        let gz = c
            .get(format!("{}{path}", s.url))
            .header(ACCEPT_ENCODING, "gzip, deflate, br")
            .send()
            .await
            .unwrap();
        assert_eq!(gz.headers()[CONTENT_ENCODING], "gzip", "{path}");
        assert_eq!(gz.headers()[ETAG], etag, "one ETag for both encodings");
        let wire = gz.bytes().await.unwrap();
        assert!(wire.len() < body.len(), "{path} is smaller gzip");
        // That the .gz holds the same bundle is checked by `web/build.mjs --check`.
        assert_eq!(wire.as_ref(), gzip, "{path} gzip is the committed copy");

        let again = c
            .get(format!("{}{path}", s.url))
            .header(IF_NONE_MATCH, etag.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path} revalidates");
    }
}

#[tokio::test]
async fn heartbeat_worker_and_icon_are_served() {
    let s = TestServer::start().await;
    let c = raw_client();
    for (path, body, ct) in [
        (
            "/app/beat.js",
            APP_BEAT_JS,
            "text/javascript; charset=utf-8",
        ),
        ("/app/favicon.svg", APP_ICON, "image/svg+xml"),
    ] {
        let r = c.get(format!("{}{path}", s.url)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()[CONTENT_TYPE], ct, "{path}");
        assert_strict_csp(r.headers(), path);
        assert_eq!(r.bytes().await.unwrap().as_ref(), body, "{path}");
    }
}

#[tokio::test]
async fn api_paths_are_not_the_page() {
    let s = TestServer::start().await;
    let c = raw_client();
    let r = c.get(format!("{}/v1/me", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 401, "the API under /v1 is untouched");
    let r = c
        .get(format!("{}/application", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "only /app/ is the dashboard");
    let r = c.post(format!("{}/app/", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 405);
}

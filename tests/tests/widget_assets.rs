//! `GET /widget.js` and the demo page: content type, ETag, 304 on `If-None-Match`, gzip only
//! when accepted (and then the same bytes once decompressed), caching headers; `/demo/` only
//! with `--demo`, under a strict CSP.
//!
//! The widget's behaviour in a browser is pinned by the browser suite (`web/test/`).

use presence_test_support::*;
use reqwest::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, ETAG, IF_NONE_MATCH, VARY,
};

const WIDGET_JS: &[u8] = include_bytes!("../../web/dist/widget.js");
const WIDGET_JS_GZ: &[u8] = include_bytes!("../../web/dist/widget.js.gz");

/// A client that does not decompress for us, so the wire bytes are what we check.
fn raw_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_gzip()
        .build()
        .expect("client")
}

#[tokio::test]
async fn widget_js_is_javascript_with_etag_and_caching() {
    let s = TestServer::start().await;
    let r = raw_client()
        .get(format!("{}/widget.js", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(h[CONTENT_TYPE], "text/javascript; charset=utf-8");
    assert!(h.get(CONTENT_ENCODING).is_none(), "no gzip unless asked");
    assert_eq!(h[CACHE_CONTROL], "public, max-age=300");
    assert_eq!(h[VARY], "accept-encoding");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let etag = h[ETAG].to_str().unwrap().to_owned();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 10,
        "a strong, quoted ETag: {etag}"
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), WIDGET_JS);
}

#[tokio::test]
async fn widget_js_is_gzip_when_accepted_and_the_same_script() {
    let s = TestServer::start().await;
    let c = raw_client();
    let plain = c.get(format!("{}/widget.js", s.url)).send().await.unwrap();
    let plain_etag = plain.headers()[ETAG].clone();
    for ae in ["gzip", "br, gzip;q=0.8", "gzip, deflate, br, zstd", "*"] {
        let r = c
            .get(format!("{}/widget.js", s.url))
            .header(ACCEPT_ENCODING, ae)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()[CONTENT_ENCODING],
            "gzip",
            "Accept-Encoding: {ae}"
        );
        assert_eq!(
            r.headers()[ETAG],
            plain_etag,
            "one ETag for both encodings of one script"
        );
        let body = r.bytes().await.unwrap();
        assert_eq!(body.as_ref(), WIDGET_JS_GZ);
        assert!(body.len() < WIDGET_JS.len() / 2, "gzip is much smaller");
    }
    for ae in ["identity", "br", "gzip;q=0", "*, gzip;q=0"] {
        let r = c
            .get(format!("{}/widget.js", s.url))
            .header(ACCEPT_ENCODING, ae)
            .send()
            .await
            .unwrap();
        assert!(
            r.headers().get(CONTENT_ENCODING).is_none(),
            "Accept-Encoding: {ae} gets identity"
        );
        assert_eq!(r.bytes().await.unwrap().as_ref(), WIDGET_JS);
    }
}

#[tokio::test]
async fn widget_js_revalidates_with_304() {
    let s = TestServer::start().await;
    let c = raw_client();
    let first = c.get(format!("{}/widget.js", s.url)).send().await.unwrap();
    let etag = first.headers()[ETAG].to_str().unwrap().to_owned();
    for inm in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"x\", {etag}"),
        "*".into(),
    ] {
        let r = c
            .get(format!("{}/widget.js", s.url))
            .header(IF_NONE_MATCH, &inm)
            .header(ACCEPT_ENCODING, "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 304, "If-None-Match: {inm}");
        assert_eq!(r.headers()[ETAG].to_str().unwrap(), etag);
        assert_eq!(r.headers()[CACHE_CONTROL], "public, max-age=300");
        assert!(r.bytes().await.unwrap().is_empty(), "a 304 has no body");
    }
    let r = c
        .get(format!("{}/widget.js", s.url))
        .header(IF_NONE_MATCH, "\"some-other-version\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "another ETag gets the script");
    assert_eq!(r.bytes().await.unwrap().as_ref(), WIDGET_JS);
}

#[tokio::test]
async fn widget_js_head_and_wrong_method() {
    let s = TestServer::start().await;
    let c = raw_client();
    let r = c.head(format!("{}/widget.js", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key(ETAG));
    let r = c.post(format!("{}/widget.js", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 405);
}

#[tokio::test]
async fn demo_page_only_with_demo() {
    let s = TestServer::start().await;
    for path in ["/demo/", "/demo", "/demo/demo.js", "/demo/demo.css"] {
        let r = raw_client()
            .get(format!("{}{path}", s.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path} without --demo");
    }
    let d = TestServer::with(|c| c.demo = true).await;
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = c.get(format!("{}/demo", d.url)).send().await.unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(r.headers()["location"], "/demo/");
    let r = c.get(format!("{}/demo/", d.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("style-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let html = r.text().await.unwrap();
    assert!(
        html.contains("src=\"/widget.js\""),
        "the page loads the widget"
    );
    assert!(!html.contains("<style"), "no inline style");
    for (path, ct) in [
        ("/demo/demo.js", "text/javascript; charset=utf-8"),
        ("/demo/demo.css", "text/css; charset=utf-8"),
        ("/demo/favicon.svg", "image/svg+xml"),
    ] {
        let r = c.get(format!("{}{path}", d.url)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()[CONTENT_TYPE], ct, "{path}");
    }
}

//! The widget's routes: `GET /v1/widget/{key}/status` (the chat box view with an ETag, `304`
//! on `If-None-Match`, a new ETag after a change, `404` for an unknown key), CORS open to any
//! origin with its preflight, and `GET /v1/widget/{key}/events` starting with the chat box at
//! once.
//!
//! `accounts.rs`, `login.rs`, `session.rs`, `me.rs`, `admin.rs`, `widget.rs` and
//! `operations.rs` together pin the surface of every route of PROTOCOL.md: its success answer
//! and each error it can return (the shape checks are `presence_test_support::contract`). Each
//! test runs its own server. Behaviour across routes (expiry, restarts, push delivery,
//! event-stream sync, intent ordering, tenant isolation of views) is pinned elsewhere.

use presence_test_support::contract::*;
use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, ORIGIN};
use serde_json::{Value, json};

// ----- widget ----------------------------------------------------------------------------------

fn etag_version(etag: &str) -> i64 {
    etag.trim_start_matches("W/")
        .trim_matches('"')
        .parse()
        .unwrap_or_else(|_| panic!("ETag {etag:?} is the version"))
}

#[tokio::test]
async fn widget_status_returns_chatbox_view_with_etag() {
    let (_srv, api, acc) = setup("acme").await;
    let r = api
        .get(&format!("/v1/widget/{}/status", acc.widget_key), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    check_chatbox(&r.body);
    assert_eq!(r.body["groups"], json!([]), "no groups: []");
    assert_eq!(r.body["status"], "offline");
    assert_eq!(r.body["reason"], "no_agents_online");
    let etag = r.header("etag").expect("ETag");
    assert_eq!(etag_version(&etag), int(&r.body["version"], "version"));
}

#[tokio::test]
async fn widget_status_may_be_cached_by_a_cdn_for_one_second_and_never_by_browsers() {
    let (_srv, api, acc) = setup("acme").await;
    let path = format!("/v1/widget/{}/status", acc.widget_key);
    let r = api.get(&path, None).await;
    assert_eq!(
        r.header("cache-control").as_deref(),
        Some("public, max-age=0, s-maxage=1")
    );
    let etag = r.header("etag").expect("ETag");
    let r = api
        .send(
            api.request(Method::GET, &path)
                .header("if-none-match", &etag),
        )
        .await;
    assert_eq!(r.status, 304);
    assert_eq!(
        r.header("cache-control").as_deref(),
        Some("public, max-age=0, s-maxage=1"),
        "a 304 refreshes what a cache holds"
    );
    // An unknown key is not kept by any cache.
    let r = api.get("/v1/widget/wk_unknown/status", None).await;
    assert_eq!(r.status, 404);
    let cc = r.header("cache-control").unwrap_or_default();
    assert!(cc.contains("no-store"), "{cc:?}");
}

#[tokio::test]
async fn widget_status_if_none_match_is_not_modified() {
    let (_srv, api, acc) = setup("acme").await;
    let path = format!("/v1/widget/{}/status", acc.widget_key);
    let r = api.get(&path, None).await;
    let etag = r.header("etag").expect("ETag");
    let r = api
        .send(
            api.request(Method::GET, &path)
                .header("if-none-match", &etag),
        )
        .await;
    assert_eq!(r.status, 304, "{}", r.body);
    assert_eq!(r.body, Value::Null, "304 has no body");
    assert_eq!(r.header("etag").as_deref(), Some(etag.as_str()));
    // A stale tag gets the full view.
    let r = api
        .send(
            api.request(Method::GET, &path)
                .header("if-none-match", "\"999999\""),
        )
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn widget_status_after_a_change_has_a_new_etag() {
    let (_srv, api, acc) = setup("acme").await;
    let path = format!("/v1/widget/{}/status", acc.widget_key);
    let before = api.get(&path, None).await;
    let old = before.header("etag").expect("ETag");
    let owner = owner_session(&acc);
    assert_eq!(api.set_status(&owner, "online").await.status, 200);
    let r = api
        .send(
            api.request(Method::GET, &path)
                .header("if-none-match", &old),
        )
        .await;
    assert_eq!(r.status, 200, "changed: the old ETag no longer matches");
    check_chatbox(&r.body);
    assert_eq!(r.body["status"], "online");
    assert_eq!(r.body["reason"], "agents_online");
    let new = r.header("etag").expect("ETag");
    assert_ne!(new, old);
    assert!(etag_version(&new) > etag_version(&old));
    assert_eq!(etag_version(&new), int(&r.body["version"], "version"));
    assert!(int(&r.body["version"], "version") > int(&before.body["version"], "version"));
}

#[tokio::test]
async fn widget_unknown_key_is_not_found() {
    let (_srv, api, _acc) = setup("acme").await;
    api.get("/v1/widget/wk_nope/status", None)
        .await
        .assert_error(404, "not_found");
    api.get("/v1/widget/wk_nope/events", None)
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn widget_routes_send_cors_allow_origin_any() {
    let (_srv, api, acc) = setup("acme").await;
    let origin = "https://shop.example";
    let status_path = format!("/v1/widget/{}/status", acc.widget_key);
    let r = api
        .send(
            api.request(Method::GET, &status_path)
                .header(ORIGIN, origin),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("*")
    );

    let r = api
        .send(
            api.request(Method::GET, "/v1/widget/wk_nope/status")
                .header(ORIGIN, origin),
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("*")
    );

    let (status, headers, _stream) = api
        .open_stream(
            api.request(
                Method::GET,
                &format!("/v1/widget/{}/events", acc.widget_key),
            )
            .header(ORIGIN, origin),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        headers
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("*")
    );
}

#[tokio::test]
async fn widget_cors_preflight_is_allowed() {
    let (_srv, api, acc) = setup("acme").await;
    let origin = "https://shop.example";
    for path in [
        format!("/v1/widget/{}/status", acc.widget_key),
        format!("/v1/widget/{}/events", acc.widget_key),
    ] {
        // A browser preflight (If-None-Match is not a safelisted request header).
        let r = api
            .send(
                api.request(Method::OPTIONS, &path)
                    .header(ORIGIN, origin)
                    .header("access-control-request-method", "GET")
                    .header("access-control-request-headers", "if-none-match"),
            )
            .await;
        assert!(
            r.status < 300,
            "{path}: preflight answered: {} {}",
            r.status,
            r.body
        );
        assert_eq!(
            r.header("access-control-allow-origin").as_deref(),
            Some("*"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn widget_events_first_event_is_chatbox_at_once() {
    let (_srv, api, acc) = setup("acme").await;
    let (status, headers, mut stream) = api
        .open_stream(api.request(
            Method::GET,
            &format!("/v1/widget/{}/events", acc.widget_key),
        ))
        .await;
    assert_eq!(status, 200);
    let ct = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(ct.starts_with("text/event-stream"), "content-type {ct}");
    let ev = stream.next().await.expect("a first event");
    assert_eq!(ev.name, "chatbox");
    check_chatbox(&ev.data);
    assert_eq!(ev.data, api.widget(&acc).await);
}

//! Operations and fallbacks: `/healthz`, the `/metrics` a deployment watches, a JSON error
//! body for an unknown path or a wrong method, and a request id on every response (a sane
//! caller's id kept).
//!
//! `accounts.rs`, `login.rs`, `session.rs`, `me.rs`, `admin.rs`, `widget.rs` and
//! `operations.rs` together pin the surface of every route of PROTOCOL.md: its success answer
//! and each error it can return (the shape checks are `presence_test_support::contract`). Each
//! test runs its own server. Behaviour across routes (expiry, restarts, push delivery,
//! event-stream sync, intent ordering, tenant isolation of views) is pinned elsewhere.

use std::collections::BTreeSet;

use presence_test_support::contract::*;
use presence_test_support::{DEADLINE, TestServer, WebhookReceiver, eventually, free_port};
use reqwest::Method;
use serde_json::json;

// ----- operations and fallbacks ----------------------------------------------------------------

#[tokio::test]
async fn healthz_is_ok() {
    let srv = TestServer::start().await;
    let r = srv.api().get("/healthz", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn metrics_expose_sessions_heartbeats_changes_expiries_subscribers_and_pushes() {
    let (_srv, api, acc) = setup("acme").await;
    let page = metrics_page(&api).await;
    for name in [
        "presence_sessions",
        "presence_heartbeats_total",
        "presence_status_changes_total",
        "presence_session_expiries_total",
        "presence_sse_subscribers",
        "presence_push_sends_total",
        "presence_push_failures_total",
    ] {
        metric(&page, name);
    }
    assert_eq!(
        metric(&page, "presence_sessions"),
        1.0,
        "the owner's session"
    );
    assert_eq!(metric(&page, "presence_sse_subscribers"), 0.0);

    // Each one moves with what it counts.
    heartbeat(&api, &acc.owner_token, json!({})).await;
    let recv = WebhookReceiver::start().await;
    let pushed = api
        .login(&acc.slug, &owner_email(&acc), "pw-owner-secret", "pushed")
        .await;
    let r = api
        .put(
            "/v1/session/push",
            Some(&pushed.token),
            json!({"provider": "webhook", "token": recv.url}),
        )
        .await;
    assert_eq!(r.status, 204);
    let dead = api
        .login(&acc.slug, &owner_email(&acc), "pw-owner-secret", "dead")
        .await;
    let dead_url = format!("http://127.0.0.1:{}/push", free_port());
    let r = api
        .put(
            "/v1/session/push",
            Some(&dead.token),
            json!({"provider": "webhook", "token": dead_url}),
        )
        .await;
    assert_eq!(r.status, 204);
    let owner = owner_session(&acc);
    assert_eq!(api.set_status(&owner, "online").await.status, 200);
    let _widget = api
        .sse(&format!("/v1/widget/{}/events", acc.widget_key), None)
        .await;
    let page = metrics_page(&api).await;
    assert!(metric(&page, "presence_heartbeats_total") >= 1.0);
    assert!(metric(&page, "presence_status_changes_total") >= 1.0);
    assert_eq!(metric(&page, "presence_sse_subscribers"), 1.0);
    // Store-wide counts may be a moment old (a cluster node counts at most every 2 s).
    eventually("the three sessions are counted", DEADLINE, || {
        let api = api.clone();
        async move { metric(&metrics_page(&api).await, "presence_sessions") == 3.0 }
    })
    .await;
    eventually("a push is sent and one fails", DEADLINE, || {
        let api = api.clone();
        async move {
            let page = metrics_page(&api).await;
            metric(&page, "presence_push_sends_total") >= 1.0
                && metric(&page, "presence_push_failures_total") >= 1.0
        }
    })
    .await;

    // A lease that runs out is counted.
    let r = api
        .put(
            "/v1/admin/settings",
            Some(&acc.owner_token),
            json!({"active_interval_ms": 200, "active_ttl_ms": 1000}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    api.login(
        &acc.slug,
        &owner_email(&acc),
        "pw-owner-secret",
        "short-lived",
    )
    .await;
    eventually("an expiry is counted", DEADLINE, || {
        let api = api.clone();
        async move { metric(&metrics_page(&api).await, "presence_session_expiries_total") >= 1.0 }
    })
    .await;
}

#[tokio::test]
async fn unknown_path_is_not_found_json() {
    let srv = TestServer::start().await;
    let api = srv.api();
    for path in ["/v1/nope", "/nope", "/v1/me/nope", "/v2/me"] {
        let r = api.get(path, None).await;
        assert_eq!(r.code(), "not_found", "{path}: {}", r.body);
        r.assert_error(404, "not_found");
        assert!(
            r.header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            "{path}: JSON content type"
        );
    }
    let r = api.post("/v1/nope", None, json!({})).await;
    r.assert_error(404, "not_found");
}

#[tokio::test]
async fn wrong_method_still_answers_with_an_error_body() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let r = api.get("/v1/login", None).await;
    assert!((400..500).contains(&r.status), "a 4xx: {}", r.status);
    let code = r.code().to_owned();
    r.assert_error(r.status, &code);
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_a_sane_caller_id_is_kept() {
    let (_srv, api, acc) = setup("acme").await;
    let mut seen = BTreeSet::new();
    for req in [
        api.request(Method::GET, "/healthz"),
        api.request(Method::GET, "/no/such/route"),
        api.request(Method::POST, "/v1/session/heartbeat")
            .bearer_auth(&acc.owner_token),
        api.request(Method::POST, "/v1/session/heartbeat"),
        api.request(
            Method::GET,
            &format!("/v1/widget/{}/status", acc.widget_key),
        ),
    ] {
        let r = api.send(req).await;
        let id = r
            .header("x-request-id")
            .unwrap_or_else(|| panic!("x-request-id on a {} answer", r.status));
        assert!(!id.is_empty());
        assert!(
            seen.insert(id.clone()),
            "request ids are unique: {id} twice"
        );
    }

    let r = api
        .send(
            api.request(Method::GET, "/healthz")
                .header("x-request-id", "lb-7f3a.42"),
        )
        .await;
    assert_eq!(r.header("x-request-id").as_deref(), Some("lb-7f3a.42"));

    // Empty, too long, or with spaces: replaced by the server's own.
    for bad in ["", "has space", &"x".repeat(129)] {
        let r = api
            .send(
                api.request(Method::GET, "/healthz")
                    .header("x-request-id", bad),
            )
            .await;
        let id = r.header("x-request-id").expect("x-request-id");
        assert_ne!(id, bad);
        assert!(seen.insert(id.clone()), "a fresh id: {id}");
    }
}

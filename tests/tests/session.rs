//! The session routes: `POST /v1/session/heartbeat` (active and background terms, the token
//! checked before the body), `DELETE /v1/session` (then every route that takes a token answers
//! `session_expired`; without or with an unknown token, `unauthorized`) and
//! `PUT`/`DELETE /v1/session/push` (providers, tokens, the webhook allow-list).
//!
//! `accounts.rs`, `login.rs`, `session.rs`, `me.rs`, `admin.rs`, `widget.rs` and
//! `operations.rs` together pin the surface of every route of PROTOCOL.md: its success answer
//! and each error it can return (the shape checks are `presence_test_support::contract`). Each
//! test runs its own server. Behaviour across routes (expiry, restarts, push delivery,
//! event-stream sync, intent ordering, tenant isolation of views) is pinned elsewhere.

use presence_test_support::WebhookReceiver;
use presence_test_support::contract::*;
use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

// ----- POST /v1/session/heartbeat --------------------------------------------------------------

#[tokio::test]
async fn heartbeat_with_empty_body_returns_active_heartbeat() {
    let (_srv, api, acc) = setup("acme").await;
    let req = api
        .request(Method::POST, "/v1/session/heartbeat")
        .bearer_auth(&acc.owner_token);
    let r = api.send(req).await;
    assert_eq!(r.status, 200, "{}", r.body);
    check_heartbeat(&r.body);
    assert_eq!(r.body["interval_ms"], 20_000);
    assert_eq!(r.body["ttl_ms"], 60_000);
    assert_eq!(r.body["status_version"], 0);

    // status_version follows the agent's status.
    let owner = owner_session(&acc);
    let s = api.set_status(&owner, "online").await;
    assert_eq!(s.status, 200, "{}", s.body);
    let req = api
        .request(Method::POST, "/v1/session/heartbeat")
        .bearer_auth(&acc.owner_token)
        .json(&json!({}));
    let r = api.send(req).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status_version"], s.body["status"]["version"]);
}

#[tokio::test]
async fn heartbeat_active_mode_returns_active_heartbeat() {
    let (_srv, api, acc) = setup("acme").await;
    let r = heartbeat(&api, &acc.owner_token, json!({"mode": "active"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    check_heartbeat(&r.body);
    assert_eq!(r.body["interval_ms"], 20_000);
    assert_eq!(r.body["ttl_ms"], 60_000);
    let m = me(&api, &acc.owner_token).await;
    assert_eq!(m["sessions"][0]["lease_until"], r.body["lease_until"]);
}

#[tokio::test]
async fn heartbeat_background_without_push_gets_active_ttl() {
    let (_srv, api, acc) = setup("acme").await;
    let r = heartbeat(&api, &acc.owner_token, json!({"mode": "background"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    check_heartbeat(&r.body);
    assert_eq!(r.body["ttl_ms"], 60_000, "no push: the active ttl applies");
    assert_eq!(r.body["interval_ms"], 20_000);
}

#[tokio::test]
async fn heartbeat_background_with_webhook_push_gets_background_ttl() {
    let (_srv, api, acc) = setup("acme").await;
    let recv = WebhookReceiver::start().await;
    let r = api
        .put(
            "/v1/session/push",
            Some(&acc.owner_token),
            json!({"provider": "webhook", "token": recv.url}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = heartbeat(&api, &acc.owner_token, json!({"mode": "background"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    check_heartbeat(&r.body);
    assert_eq!(
        r.body["ttl_ms"], 1_800_000,
        "background ttl with a push registration"
    );

    // Active again: the active ttl.
    let r = heartbeat(&api, &acc.owner_token, json!({"mode": "active"})).await;
    assert_eq!(r.body["ttl_ms"], 60_000);

    // Without the registration, background gets the active ttl again.
    let r = api.delete("/v1/session/push", Some(&acc.owner_token)).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = heartbeat(&api, &acc.owner_token, json!({"mode": "background"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["ttl_ms"], 60_000, "push removed: active ttl");
}

#[tokio::test]
async fn heartbeat_without_or_with_unknown_token_is_unauthorized() {
    let (_srv, api, _acc) = setup("acme").await;
    heartbeat(&api, "", json!({}))
        .await
        .assert_error(401, "unauthorized");
    api.send(api.request(Method::POST, "/v1/session/heartbeat"))
        .await
        .assert_error(401, "unauthorized");
    heartbeat(&api, "0123456789abcdef", json!({}))
        .await
        .assert_error(401, "unauthorized");
}

#[tokio::test]
async fn heartbeat_after_logout_is_session_expired() {
    let (_srv, api, acc) = setup("acme").await;
    assert_eq!(
        api.delete("/v1/session", Some(&acc.owner_token))
            .await
            .status,
        204
    );
    heartbeat(&api, &acc.owner_token, json!({"mode": "active"}))
        .await
        .assert_error(401, "session_expired");
}

#[tokio::test]
async fn heartbeat_with_unknown_mode_is_invalid_field() {
    let (_srv, api, acc) = setup("acme").await;
    let r = heartbeat(&api, &acc.owner_token, json!({"mode": "sideways"})).await;
    let detail = r.assert_error(422, "invalid_field");
    assert!(detail.contains("mode"), "detail names mode: {detail}");
}

#[tokio::test]
async fn heartbeat_checks_the_token_before_the_body() {
    let (_srv, api, acc) = setup("acme").await;
    let bad_body = || {
        api.request(Method::POST, "/v1/session/heartbeat")
            .header(CONTENT_TYPE, "application/json")
            .body("{not json")
    };
    api.send(bad_body().bearer_auth("0123456789abcdef"))
        .await
        .assert_error(401, "unauthorized");
    api.send(bad_body().bearer_auth(&acc.owner_token))
        .await
        .assert_error(400, "bad_request");
    // The refused heartbeat renewed nothing.
    let before = me(&api, &acc.owner_token).await["sessions"][0]["lease_until"].clone();
    api.send(
        api.request(Method::POST, "/v1/session/heartbeat")
            .bearer_auth(&acc.owner_token)
            .json(&json!({"mode": "sideways"})),
    )
    .await
    .assert_error(422, "invalid_field");
    let after = me(&api, &acc.owner_token).await["sessions"][0]["lease_until"].clone();
    assert_eq!(
        before, after,
        "a refused heartbeat does not renew the lease"
    );
}

// ----- DELETE /v1/session ----------------------------------------------------------------------

#[tokio::test]
async fn logout_returns_204_then_every_authed_route_is_session_expired() {
    let (_srv, api, acc) = setup("acme").await;
    let ann = api.add_agent(&acc, "ann", &[]).await;
    let r = api.delete("/v1/session", Some(&acc.owner_token)).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(r.body, Value::Null, "204 has no body");
    for (method, path, body) in authed_routes(&ann) {
        let r = api
            .call(method.clone(), &path, Some(&acc.owner_token), body)
            .await;
        assert_eq!(r.code(), "session_expired", "{method} {path}: {}", r.body);
        r.assert_error(401, "session_expired");
    }
    // Nothing the dead token asked for happened.
    let s = api
        .login(&acc.slug, &owner_email(&acc), "pw-owner-secret", "d2")
        .await;
    let r = api.get("/v1/admin/account", Some(&s.token)).await;
    assert!(
        array(&r.body["agents"], "agents")
            .iter()
            .any(|a| a["id"] == ann.as_str()),
        "ann still exists"
    );
    assert_eq!(r.body["groups"], json!([]));
}

#[tokio::test]
async fn every_authed_route_without_or_with_unknown_token_is_unauthorized() {
    let (_srv, api, acc) = setup("acme").await;
    for (method, path, body) in authed_routes(&acc.owner_id) {
        let r = api.call(method.clone(), &path, None, body.clone()).await;
        assert_eq!(
            r.code(),
            "unauthorized",
            "{method} {path} without token: {}",
            r.body
        );
        r.assert_error(401, "unauthorized");
        let r = api
            .call(method.clone(), &path, Some("bogus-token"), body)
            .await;
        assert_eq!(
            r.code(),
            "unauthorized",
            "{method} {path} unknown token: {}",
            r.body
        );
        r.assert_error(401, "unauthorized");
    }
}

// ----- PUT/DELETE /v1/session/push -------------------------------------------------------------

#[tokio::test]
async fn put_and_delete_push_return_204() {
    let (_srv, api, acc) = setup("acme").await;
    let recv = WebhookReceiver::start().await;
    for reg in [
        json!({"provider": "webhook", "token": recv.url}),
        json!({"provider": "webhook", "token": recv.url.replace("127.0.0.1", "localhost")}),
        // fcm, apns and unifiedpush registrations: tests/tests/push.rs, against doubles.
    ] {
        let r = api
            .put("/v1/session/push", Some(&acc.owner_token), reg.clone())
            .await;
        assert_eq!(r.status, 204, "{reg}: {}", r.body);
        assert_eq!(r.body, Value::Null, "204 has no body");
    }
    let r = api.delete("/v1/session/push", Some(&acc.owner_token)).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(r.body, Value::Null);
    // Deleting when none is registered is fine too.
    let r = api.delete("/v1/session/push", Some(&acc.owner_token)).await;
    assert_eq!(r.status, 204, "{}", r.body);
}

#[tokio::test]
async fn put_push_with_unknown_provider_is_invalid_field() {
    let (_srv, api, acc) = setup("acme").await;
    let r = api
        .put(
            "/v1/session/push",
            Some(&acc.owner_token),
            json!({"provider": "pigeon", "token": "coo"}),
        )
        .await;
    let detail = r.assert_error(422, "invalid_field");
    assert!(
        detail.contains("provider"),
        "detail names provider: {detail}"
    );
}

#[tokio::test]
async fn put_push_with_empty_token_is_invalid_field() {
    let (_srv, api, acc) = setup("acme").await;
    for provider in ["fcm", "webhook"] {
        let r = api
            .put(
                "/v1/session/push",
                Some(&acc.owner_token),
                json!({"provider": provider, "token": ""}),
            )
            .await;
        let detail = r.assert_error(422, "invalid_field");
        assert!(detail.contains("token"), "detail names token: {detail}");
    }
}

#[tokio::test]
async fn put_push_webhook_to_host_not_on_allow_list_is_invalid_field() {
    let (_srv, api, acc) = setup("acme").await;
    for url in [
        "http://example.com/push",
        "http://169.254.169.254/latest/meta-data",
        "http://127.0.0.2/push",
        "ftp://127.0.0.1/push",
        "not a url",
    ] {
        let r = api
            .put(
                "/v1/session/push",
                Some(&acc.owner_token),
                json!({"provider": "webhook", "token": url}),
            )
            .await;
        let detail = r.assert_error(422, "invalid_field");
        assert!(
            detail.contains("token"),
            "{url}: detail names token: {detail}"
        );
    }
    // None of them was registered: background still gets the active ttl.
    let r = heartbeat(&api, &acc.owner_token, json!({"mode": "background"})).await;
    assert_eq!(r.body["ttl_ms"], 60_000);
}

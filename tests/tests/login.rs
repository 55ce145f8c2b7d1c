//! `POST /v1/login`: the token, session, agent, status and heartbeat it answers with, and each
//! error it can return (wrong credentials, unknown platform, no device, a bad body, a webhook
//! push to a host off the allow-list); the rate limits per account and email and per IP, which
//! successful logins never hit; and a login with the same device id replacing the old
//! session.
//!
//! `accounts.rs`, `login.rs`, `session.rs`, `me.rs`, `admin.rs`, `widget.rs` and
//! `operations.rs` together pin the surface of every route of PROTOCOL.md: its success answer
//! and each error it can return (the shape checks are `presence_test_support::contract`). Each
//! test runs its own server. Behaviour across routes (expiry, restarts, push delivery,
//! event-stream sync, intent ordering, tenant isolation of views) is pinned elsewhere.

use std::collections::BTreeSet;

use presence_test_support::contract::*;
use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

// ----- POST /v1/login --------------------------------------------------------------------------

#[tokio::test]
async fn login_returns_token_session_agent_status_and_heartbeat() {
    let (_srv, api, acc) = setup("acme").await;
    api.put_groups(&acc, &[("sales", "Sales")]).await;
    let ann = api.add_agent(&acc, "ann", &["sales"]).await;
    let before = now_ms();
    let r = api
        .post(
            "/v1/login",
            None,
            json!({"account": "acme", "email": "ann@acme.test", "password": "pw-ann-secret",
                   "device": device("ann-phone", "android"), "push": null}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let b = &r.body;
    let token = string(&b["token"], "token");
    assert!(token.len() >= 32, "token carries enough entropy: {token}");
    assert!(!string(&b["session_id"], "session_id").is_empty());
    check_agent(&b["agent"]);
    assert_eq!(b["agent"]["id"], ann.as_str());
    assert_eq!(b["agent"]["name"], "ann");
    assert_eq!(b["agent"]["email"], "ann@acme.test");
    assert_eq!(b["agent"]["groups"], json!(["sales"]));
    assert_eq!(b["agent"]["role"], "agent");
    check_status_view(&b["status"]);
    check_heartbeat(&b["heartbeat"]);
    assert_eq!(
        b["heartbeat"]["interval_ms"], 20_000,
        "default active interval"
    );
    assert_eq!(b["heartbeat"]["ttl_ms"], 60_000, "default active ttl");
    assert_eq!(
        b["heartbeat"]["status_version"], b["status"]["version"],
        "status_version is the agent's status version"
    );
    let server_time = int(&b["server_time"], "server_time");
    assert!(
        (server_time - before).abs() < 60_000,
        "server_time {server_time} is epoch ms (local {before})"
    );

    // The token works, and the session is the one announced.
    let m = me(&api, &token).await;
    let sessions = array(&m["sessions"], "sessions");
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["session_id"], b["session_id"]);
    assert_eq!(sessions[0]["device"], device("ann-phone", "android"));

    // Another login gets another token and session.
    let again = api.login_agent(&acc, "ann", "ann-desktop").await;
    assert_ne!(again.token, token);
    assert_ne!(again.session_id, b["session_id"].as_str().unwrap());
}

#[tokio::test]
async fn login_wrong_password_is_invalid_credentials() {
    let (_srv, api, acc) = setup("acme").await;
    let r = api
        .login_raw("acme", &owner_email(&acc), "wrong", "d1", Value::Null)
        .await;
    r.assert_error(401, "invalid_credentials");
}

#[tokio::test]
async fn login_unknown_email_is_invalid_credentials() {
    let (_srv, api, _acc) = setup("acme").await;
    let r = api
        .login_raw(
            "acme",
            "nobody@acme.test",
            "pw-owner-secret",
            "d1",
            Value::Null,
        )
        .await;
    r.assert_error(401, "invalid_credentials");
}

#[tokio::test]
async fn login_unknown_account_is_invalid_credentials() {
    let (_srv, api, acc) = setup("acme").await;
    let r = api
        .login_raw(
            "no-such-account",
            &owner_email(&acc),
            "pw-owner-secret",
            "d1",
            Value::Null,
        )
        .await;
    r.assert_error(401, "invalid_credentials");
}

#[tokio::test]
async fn login_with_unknown_device_platform_is_invalid_field() {
    let (_srv, api, acc) = setup("acme").await;
    let r = api
        .post(
            "/v1/login",
            None,
            json!({"account": "acme", "email": owner_email(&acc), "password": "pw-owner-secret",
                   "device": device("d1", "palmos")}),
        )
        .await;
    let detail = r.assert_error(422, "invalid_field");
    assert!(
        detail.contains("platform"),
        "detail names device.platform: {detail}"
    );
}

#[tokio::test]
async fn login_without_device_is_invalid_field() {
    let (_srv, api, acc) = setup("acme").await;
    let r = api
        .post(
            "/v1/login",
            None,
            json!({"account": "acme", "email": owner_email(&acc), "password": "pw-owner-secret"}),
        )
        .await;
    let detail = r.assert_error(422, "invalid_field");
    assert!(detail.contains("device"), "detail names device: {detail}");
}

#[tokio::test]
async fn login_with_malformed_or_non_json_body_is_rejected() {
    let (_srv, api, _acc) = setup("acme").await;
    let bad = api
        .request(Method::POST, "/v1/login")
        .header(CONTENT_TYPE, "application/json")
        .body("{not json");
    api.send(bad).await.assert_error(400, "bad_request");
    let plain = api
        .request(Method::POST, "/v1/login")
        .header(CONTENT_TYPE, "text/plain")
        .body("{}");
    api.send(plain)
        .await
        .assert_error(415, "unsupported_media_type");
}

#[tokio::test]
async fn login_with_webhook_push_to_disallowed_host_is_invalid_field() {
    let (_srv, api, acc) = setup("acme").await;
    let r = api
        .login_raw(
            "acme",
            &owner_email(&acc),
            "pw-owner-secret",
            "d1",
            json!({"provider": "webhook", "token": "http://example.com/push"}),
        )
        .await;
    let detail = r.assert_error(422, "invalid_field");
    assert!(
        detail.contains("push"),
        "detail names the push field: {detail}"
    );
}

#[tokio::test]
async fn login_is_rate_limited_after_ten_failures_for_one_account_and_email() {
    let (_srv, api, acc) = setup("acme").await;
    api.add_agent(&acc, "ann", &[]).await;
    let email = owner_email(&acc);
    for i in 0..10 {
        let r = api
            .login_raw("acme", &email, "wrong", "d1", Value::Null)
            .await;
        assert_eq!(r.code(), "invalid_credentials", "failure {i}: {}", r.body);
    }
    let r = api
        .login_raw("acme", &email, "wrong", "d1", Value::Null)
        .await;
    r.assert_error(429, "rate_limited");
    let retry = r
        .header("retry-after")
        .expect("429 carries Retry-After")
        .parse::<u64>()
        .expect("Retry-After is whole seconds");
    assert!(
        (1..=300).contains(&retry),
        "Retry-After {retry} within the 5 min window"
    );
    // Further attempts for that account+email are refused, even with the right password.
    api.login_raw("acme", &email, "pw-owner-secret", "d1", Value::Null)
        .await
        .assert_error(429, "rate_limited");
    // Another email of the same account is not affected.
    api.login_agent(&acc, "ann", "ann-dev").await;
}

#[tokio::test]
async fn login_is_rate_limited_after_a_hundred_failures_from_one_ip() {
    let (_srv, api, _acc) = setup("acme").await;
    for i in 0..100 {
        let r = api
            .login_raw(
                "acme",
                &format!("nobody{i}@acme.test"),
                "wrong",
                "d1",
                Value::Null,
            )
            .await;
        assert_eq!(r.code(), "invalid_credentials", "failure {i}: {}", r.body);
    }
    let r = api
        .login_raw("acme", "someone-else@acme.test", "wrong", "d1", Value::Null)
        .await;
    r.assert_error(429, "rate_limited");
    let retry = r
        .header("retry-after")
        .expect("429 carries Retry-After")
        .parse::<u64>()
        .expect("Retry-After is whole seconds");
    assert!(
        (1..=60).contains(&retry),
        "Retry-After {retry} within the 1 min window"
    );
}

#[tokio::test]
async fn successful_logins_are_never_rate_limited() {
    let (_srv, api, acc) = setup("acme").await;
    let email = owner_email(&acc);
    for i in 0..30 {
        let r = api
            .login_raw(
                "acme",
                &email,
                "pw-owner-secret",
                &format!("dev-{i}"),
                Value::Null,
            )
            .await;
        assert_eq!(r.status, 200, "login {i}: {}", r.body);
    }
    // Failures below the limit do not block successes either.
    for _ in 0..9 {
        api.login_raw("acme", &email, "wrong", "d1", Value::Null)
            .await
            .assert_error(401, "invalid_credentials");
    }
    for i in 0..5 {
        let r = api
            .login_raw(
                "acme",
                &email,
                "pw-owner-secret",
                &format!("after-{i}"),
                Value::Null,
            )
            .await;
        assert_eq!(r.status, 200, "login after failures {i}: {}", r.body);
    }
}

#[tokio::test]
async fn login_with_same_device_id_replaces_old_session() {
    let (_srv, api, acc) = setup("acme").await;
    api.add_agent(&acc, "ann", &[]).await;
    let old = api.login_agent(&acc, "ann", "ann-phone").await;
    let other = api.login_agent(&acc, "ann", "ann-desktop").await;
    let new = api.login_agent(&acc, "ann", "ann-phone").await;
    assert_ne!(old.session_id, new.session_id);

    api.get("/v1/me", Some(&old.token))
        .await
        .assert_error(401, "session_expired");
    heartbeat(&api, &old.token, json!({}))
        .await
        .assert_error(401, "session_expired");

    let m = me(&api, &new.token).await;
    let ids: BTreeSet<String> = array(&m["sessions"], "sessions")
        .iter()
        .map(|s| string(&s["session_id"], "session_id"))
        .collect();
    assert_eq!(
        ids,
        BTreeSet::from([new.session_id.clone(), other.session_id.clone()]),
        "the phone has one session, the desktop keeps its own"
    );
    assert_eq!(heartbeat(&api, &other.token, json!({})).await.status, 200);
}

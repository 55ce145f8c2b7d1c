//! `POST /v1/accounts`: the account and owner agent it creates (every field the contract
//! lists, with the right JSON type), and each error it can return: a missing or wrong admin
//! token, a taken or bad slug, a missing owner field, a body that is not JSON, malformed or
//! over 64 KiB.
//!
//! `accounts.rs`, `login.rs`, `session.rs`, `me.rs`, `admin.rs`, `widget.rs` and
//! `operations.rs` together pin the surface of every route of PROTOCOL.md: its success answer
//! and each error it can return (the shape checks are `presence_test_support::contract`). Each
//! test runs its own server. Behaviour across routes (expiry, restarts, push delivery,
//! event-stream sync, intent ordering, tenant isolation of views) is pinned elsewhere.

use presence_test_support::contract::*;
use presence_test_support::{ADMIN_TOKEN, TestServer};
use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use serde_json::json;

// ----- POST /v1/accounts -----------------------------------------------------------------------

#[tokio::test]
async fn create_account_returns_account_and_owner_agent() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let r = api
        .post(
            "/v1/accounts",
            Some(ADMIN_TOKEN),
            json!({"name": "Acme", "slug": "acme",
                   "owner": {"name": "Olga Owner", "email": "olga@acme.test", "password": "s3cret-pass"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    check_account_info(&r.body["account"]);
    assert_eq!(r.body["account"]["slug"], "acme");
    assert_eq!(r.body["account"]["name"], "Acme");
    let owner = &r.body["owner"];
    check_agent(owner);
    assert_eq!(owner["name"], "Olga Owner");
    assert_eq!(owner["email"], "olga@acme.test");
    assert_eq!(owner["groups"], json!([]));
    assert_eq!(owner["role"], "owner");

    // The owner can log in with the password given.
    let s = api
        .login("acme", "olga@acme.test", "s3cret-pass", "d1")
        .await;
    assert_eq!(s.agent_id, owner["id"].as_str().unwrap());
}

#[tokio::test]
async fn create_account_without_or_with_wrong_admin_token_is_unauthorized() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let body = json!({"name": "Acme", "slug": "acme",
                      "owner": {"name": "O", "email": "o@acme.test", "password": "pw-secret-1"}});
    api.post("/v1/accounts", None, body.clone())
        .await
        .assert_error(401, "unauthorized");
    api.post("/v1/accounts", Some("not-the-admin-token"), body.clone())
        .await
        .assert_error(401, "unauthorized");
    let basic = api
        .request(Method::POST, "/v1/accounts")
        .json(&body)
        .header(
            reqwest::header::AUTHORIZATION,
            format!("Basic {ADMIN_TOKEN}"),
        );
    api.send(basic).await.assert_error(401, "unauthorized");
    // Nothing was created: the slug is still free.
    let r = api.post("/v1/accounts", Some(ADMIN_TOKEN), body).await;
    assert_eq!(r.status, 201, "{}", r.body);
}

#[tokio::test]
async fn create_account_with_taken_slug_is_conflict() {
    let (_srv, api, _acc) = setup("acme").await;
    let r = api
        .post(
            "/v1/accounts",
            Some(ADMIN_TOKEN),
            json!({"name": "Other", "slug": "acme",
                   "owner": {"name": "O", "email": "o@other.test", "password": "pw-secret-1"}}),
        )
        .await;
    r.assert_error(409, "conflict");
}

#[tokio::test]
async fn create_account_with_bad_slug_is_invalid_field() {
    let srv = TestServer::start().await;
    let api = srv.api();
    for slug in ["Bad Slug!", "", "acme/../x"] {
        let r = api
            .post(
                "/v1/accounts",
                Some(ADMIN_TOKEN),
                json!({"name": "Acme", "slug": slug,
                       "owner": {"name": "O", "email": "o@acme.test", "password": "pw-secret-1"}}),
            )
            .await;
        let detail = r.assert_error(422, "invalid_field");
        assert!(detail.contains("slug"), "detail names the field: {detail}");
    }
}

#[tokio::test]
async fn create_account_without_owner_email_names_the_field() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let r = api
        .post(
            "/v1/accounts",
            Some(ADMIN_TOKEN),
            json!({"name": "Acme", "slug": "acme", "owner": {"name": "O", "password": "pw-secret-1"}}),
        )
        .await;
    let detail = r.assert_error(422, "invalid_field");
    assert!(
        detail.contains("owner.email"),
        "detail names owner.email: {detail}"
    );

    let r = api
        .post(
            "/v1/accounts",
            Some(ADMIN_TOKEN),
            json!({"name": "Acme", "slug": "acme",
                   "owner": {"name": "O", "email": "not-an-email", "password": "pw-secret-1"}}),
        )
        .await;
    let detail = r.assert_error(422, "invalid_field");
    assert!(
        detail.contains("owner.email"),
        "detail names owner.email: {detail}"
    );
}

#[tokio::test]
async fn create_account_without_json_content_type_is_unsupported_media_type() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let body = r#"{"name": "Acme", "slug": "acme",
                   "owner": {"name": "O", "email": "o@acme.test", "password": "pw-secret-1"}}"#;
    let plain = api
        .request(Method::POST, "/v1/accounts")
        .bearer_auth(ADMIN_TOKEN)
        .header(CONTENT_TYPE, "text/plain")
        .body(body);
    api.send(plain)
        .await
        .assert_error(415, "unsupported_media_type");
    let none = api
        .request(Method::POST, "/v1/accounts")
        .bearer_auth(ADMIN_TOKEN)
        .body(body);
    api.send(none)
        .await
        .assert_error(415, "unsupported_media_type");
}

#[tokio::test]
async fn create_account_with_malformed_json_is_bad_request() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let req = api
        .request(Method::POST, "/v1/accounts")
        .bearer_auth(ADMIN_TOKEN)
        .header(CONTENT_TYPE, "application/json")
        .body(r#"{"name": "Acme", "slug": "#);
    api.send(req).await.assert_error(400, "bad_request");
}

#[tokio::test]
async fn create_account_with_body_over_64_kib_is_payload_too_large() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let body = |slug: &str, pad: usize| {
        json!({"name": "Acme", "slug": slug, "padding": "x".repeat(pad),
               "owner": {"name": "O", "email": "o@acme.test", "password": "pw-secret-1"}})
    };
    let r = api
        .post("/v1/accounts", Some(ADMIN_TOKEN), body("big", 65 * 1024))
        .await;
    r.assert_error(413, "payload_too_large");
    // Just under the limit is fine (and the unknown field is ignored).
    let r = api
        .post("/v1/accounts", Some(ADMIN_TOKEN), body("small", 60 * 1024))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

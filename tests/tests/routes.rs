//! Every route of PROTOCOL.md: its success answer (every field the contract lists, with the
//! right JSON type) and each error it can return. Each test runs its own server.
//!
//! Behaviour across routes (expiry, restarts, push delivery, SSE sync, intent ordering, tenant
//! isolation of views) is pinned elsewhere; this file pins the surface.

use std::collections::BTreeSet;
use std::time::Duration;

use presence_test_support::*;
use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, ORIGIN};
use serde_json::{Value, json};

const AGENT_STATUSES: &[&str] = &["online", "busy", "offline"];
const CHATBOX_STATUSES: &[&str] = &["online", "busy", "offline"];
const REASONS: &[&str] = &[
    "agents_online",
    "agents_busy",
    "no_agents_online",
    "outside_opening_hours",
];
const PLATFORMS: &[&str] = &["android", "ios", "desktop", "web", "cli"];
const MODES: &[&str] = &["active", "background"];
const ROLES: &[&str] = &["owner", "admin", "agent"];

/// How long to wait for a dropped event stream to be noticed (the server may only see the
/// closed connection on its next keep-alive write, every 15 s).
const DISCONNECT_DEADLINE: Duration = Duration::from_secs(40);

// ----- shape checks ----------------------------------------------------------------------------

#[track_caller]
fn int(v: &Value, what: &str) -> i64 {
    v.as_i64()
        .unwrap_or_else(|| panic!("{what} is an integer, got {v}"))
}

#[track_caller]
fn string(v: &Value, what: &str) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("{what} is a string, got {v}"))
        .to_owned()
}

#[track_caller]
fn one_of(v: &Value, allowed: &[&str], what: &str) -> String {
    let s = string(v, what);
    assert!(
        allowed.contains(&s.as_str()),
        "{what} is one of {allowed:?}, got {s:?}"
    );
    s
}

#[track_caller]
fn array<'a>(v: &'a Value, what: &str) -> &'a Vec<Value> {
    v.as_array()
        .unwrap_or_else(|| panic!("{what} is an array, got {v}"))
}

#[track_caller]
fn check_agent(v: &Value) {
    assert!(
        !string(&v["id"], "agent.id").is_empty(),
        "agent.id not empty"
    );
    string(&v["name"], "agent.name");
    string(&v["email"], "agent.email");
    for g in array(&v["groups"], "agent.groups") {
        string(g, "agent.groups[]");
    }
    one_of(&v["role"], ROLES, "agent.role");
}

#[track_caller]
fn check_status_view(v: &Value) {
    one_of(&v["status"], AGENT_STATUSES, "status.status");
    assert!(int(&v["version"], "status.version") >= 0);
    int(&v["intent_at"], "status.intent_at");
    let d = &v["changed_by_device"];
    assert!(
        d.is_string() || d.is_null(),
        "changed_by_device is a string or null, got {d}"
    );
    assert!(
        v.as_object()
            .is_some_and(|o| o.contains_key("changed_by_device")),
        "changed_by_device is present (null when unset): {v}"
    );
}

#[track_caller]
fn check_chatbox(v: &Value) {
    one_of(&v["status"], CHATBOX_STATUSES, "chatbox.status");
    one_of(&v["reason"], REASONS, "chatbox.reason");
    int(&v["version"], "chatbox.version");
    let n = &v["next_change_at"];
    assert!(
        v.as_object()
            .is_some_and(|o| o.contains_key("next_change_at")),
        "next_change_at is present (null when none): {v}"
    );
    assert!(
        n.is_null() || n.is_i64(),
        "next_change_at is int|null, got {n}"
    );
    for g in array(&v["groups"], "chatbox.groups") {
        string(&g["key"], "chatbox.groups[].key");
        string(&g["name"], "chatbox.groups[].name");
        one_of(&g["status"], CHATBOX_STATUSES, "chatbox.groups[].status");
        one_of(&g["reason"], REASONS, "chatbox.groups[].reason");
    }
}

#[track_caller]
fn check_heartbeat(v: &Value) {
    let interval = int(&v["interval_ms"], "heartbeat.interval_ms");
    let ttl = int(&v["ttl_ms"], "heartbeat.ttl_ms");
    let lease = int(&v["lease_until"], "heartbeat.lease_until");
    let now = int(&v["server_time"], "heartbeat.server_time");
    int(&v["status_version"], "heartbeat.status_version");
    assert!(
        interval > 0 && ttl >= interval,
        "interval {interval}, ttl {ttl}"
    );
    assert!(
        (lease - (now + ttl)).abs() <= 1000,
        "lease_until {lease} is about server_time {now} + ttl {ttl}"
    );
}

#[track_caller]
fn check_device(v: &Value) {
    string(&v["id"], "device.id");
    one_of(&v["platform"], PLATFORMS, "device.platform");
    string(&v["name"], "device.name");
    string(&v["app_version"], "device.app_version");
}

#[track_caller]
fn check_account_info(v: &Value) {
    for f in ["id", "slug", "name", "widget_key"] {
        assert!(
            !string(&v[f], &format!("account.{f}")).is_empty(),
            "account.{f} not empty"
        );
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The sum of a metric's samples in a Prometheus text page.
#[track_caller]
fn metric(page: &str, name: &str) -> f64 {
    let mut found = false;
    let mut sum = 0.0;
    for line in page.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        let value = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
        sum += value.unwrap_or_else(|| panic!("sample of {name} has a value: {line}"));
        found = true;
    }
    assert!(found, "metric {name} is exposed:\n{page}");
    sum
}

// ----- setup -----------------------------------------------------------------------------------

async fn setup(slug: &str) -> (TestServer, Api, Account) {
    let srv = TestServer::start().await;
    let api = srv.api();
    let acc = api.create_account(slug).await;
    (srv, api, acc)
}

/// The owner's first session (device `owner-dev`), as the harness opened it.
fn owner_session(acc: &Account) -> Session {
    Session {
        token: acc.owner_token.clone(),
        session_id: String::new(),
        agent_id: acc.owner_id.clone(),
        login: Value::Null,
    }
}

fn owner_email(acc: &Account) -> String {
    format!("owner@{}.test", acc.slug)
}

fn device(id: &str, platform: &str) -> Value {
    json!({"id": id, "platform": platform, "name": format!("{id} name"), "app_version": "2.3.4"})
}

async fn heartbeat(api: &Api, token: &str, body: Value) -> Resp {
    api.post("/v1/session/heartbeat", Some(token), body).await
}

async fn me(api: &Api, token: &str) -> Value {
    let r = api.get("/v1/me", Some(token)).await;
    assert_eq!(r.status, 200, "me: {}", r.body);
    r.body
}

async fn admin_account(api: &Api, acc: &Account) -> Value {
    let r = api.get("/v1/admin/account", Some(&acc.owner_token)).await;
    assert_eq!(r.status, 200, "admin account: {}", r.body);
    r.body
}

async fn metrics_page(api: &Api) -> String {
    let r = api.get("/metrics", None).await;
    assert_eq!(r.status, 200);
    r.body.as_str().expect("metrics are text").to_owned()
}

/// Every route that takes a bearer token, with a body it would accept.
fn authed_routes(agent_id: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (
            Method::POST,
            "/v1/session/heartbeat".into(),
            Some(json!({"mode": "active"})),
        ),
        (Method::DELETE, "/v1/session".into(), None),
        (
            Method::PUT,
            "/v1/session/push".into(),
            Some(json!({"provider": "fcm", "token": "fcm-token"})),
        ),
        (Method::DELETE, "/v1/session/push".into(), None),
        (Method::GET, "/v1/me".into(), None),
        (
            Method::PUT,
            "/v1/me/status".into(),
            Some(json!({"status": "online", "op_id": new_op_id()})),
        ),
        (Method::GET, "/v1/me/events".into(), None),
        (Method::GET, "/v1/admin/account".into(), None),
        (
            Method::POST,
            "/v1/admin/agents".into(),
            Some(
                json!({"name": "x", "email": "x@x.test", "password": "pw", "groups": [],
                        "role": "agent"}),
            ),
        ),
        (
            Method::PATCH,
            format!("/v1/admin/agents/{agent_id}"),
            Some(json!({"name": "renamed"})),
        ),
        (Method::DELETE, format!("/v1/admin/agents/{agent_id}"), None),
        (
            Method::PUT,
            "/v1/admin/groups".into(),
            Some(json!([{"key": "sales", "name": "Sales"}])),
        ),
        (
            Method::PUT,
            "/v1/admin/opening-hours".into(),
            Some(json!({"enabled": false, "timezone": "UTC", "days": {}, "exceptions": []})),
        ),
        (
            Method::PUT,
            "/v1/admin/settings".into(),
            Some(json!({"active_ttl_ms": 50000})),
        ),
    ]
}

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
                   "owner": {"name": "Olga Owner", "email": "olga@acme.test", "password": "s3cret"}}),
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
    let s = api.login("acme", "olga@acme.test", "s3cret", "d1").await;
    assert_eq!(s.agent_id, owner["id"].as_str().unwrap());
}

#[tokio::test]
async fn create_account_without_or_with_wrong_admin_token_is_unauthorized() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let body = json!({"name": "Acme", "slug": "acme",
                      "owner": {"name": "O", "email": "o@acme.test", "password": "pw"}});
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
                   "owner": {"name": "O", "email": "o@other.test", "password": "pw"}}),
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
                       "owner": {"name": "O", "email": "o@acme.test", "password": "pw"}}),
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
            json!({"name": "Acme", "slug": "acme", "owner": {"name": "O", "password": "pw"}}),
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
                   "owner": {"name": "O", "email": "not-an-email", "password": "pw"}}),
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
                   "owner": {"name": "O", "email": "o@acme.test", "password": "pw"}}"#;
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
               "owner": {"name": "O", "email": "o@acme.test", "password": "pw"}})
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
            json!({"account": "acme", "email": "ann@acme.test", "password": "pw-ann",
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
        .login_raw("acme", "nobody@acme.test", "pw-owner", "d1", Value::Null)
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
            "pw-owner",
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
            json!({"account": "acme", "email": owner_email(&acc), "password": "pw-owner",
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
            json!({"account": "acme", "email": owner_email(&acc), "password": "pw-owner"}),
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
            "pw-owner",
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
    api.login_raw("acme", &email, "pw-owner", "d1", Value::Null)
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
            .login_raw("acme", &email, "pw-owner", &format!("dev-{i}"), Value::Null)
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
                "pw-owner",
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
        .login(&acc.slug, &owner_email(&acc), "pw-owner", "d2")
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

// ----- GET /v1/me ------------------------------------------------------------------------------

#[tokio::test]
async fn me_returns_agent_status_chatbox_and_sessions() {
    let (_srv, api, acc) = setup("acme").await;
    api.put_groups(&acc, &[("sales", "Sales")]).await;
    let ann = api.add_agent(&acc, "ann", &["sales"]).await;
    let desk = api.login_agent(&acc, "ann", "ann-desk").await;
    let phone = api
        .post(
            "/v1/login",
            None,
            json!({"account": "acme", "email": "ann@acme.test", "password": "pw-ann",
                   "device": device("ann-phone", "ios")}),
        )
        .await;
    assert_eq!(phone.status, 200, "{}", phone.body);
    let phone = Session::from_login(&phone.body);
    let hb = heartbeat(&api, &phone.token, json!({"mode": "background"})).await;
    assert_eq!(hb.status, 200);

    let m = me(&api, &desk.token).await;
    check_agent(&m["agent"]);
    assert_eq!(m["agent"]["id"], ann.as_str());
    assert_eq!(m["agent"]["groups"], json!(["sales"]));
    check_status_view(&m["status"]);
    check_chatbox(&m["chatbox"]);
    let groups = array(&m["chatbox"]["groups"], "chatbox.groups");
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0]["key"], "sales");
    assert_eq!(groups[0]["name"], "Sales");
    assert_eq!(m["chatbox"], api.widget(&acc).await, "the account's view");

    let sessions = array(&m["sessions"], "sessions");
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    for s in sessions {
        string(&s["session_id"], "sessions[].session_id");
        check_device(&s["device"]);
        one_of(&s["mode"], MODES, "sessions[].mode");
        int(&s["lease_until"], "sessions[].lease_until");
        assert_eq!(s["connected"], false, "no stream open");
    }
    let find = |id: &str| {
        sessions
            .iter()
            .find(|s| s["session_id"] == id)
            .unwrap_or_else(|| panic!("session {id} listed"))
    };
    let d = find(&desk.session_id);
    assert_eq!(
        d["device"],
        json!({"id": "ann-desk", "platform": "desktop", "name": "ann-desk", "app_version": "1.0.0"})
    );
    assert_eq!(d["mode"], "active");
    let p = find(&phone.session_id);
    assert_eq!(p["device"], device("ann-phone", "ios"));
    assert_eq!(
        p["mode"], "background",
        "the mode the session last reported"
    );
    assert_eq!(p["lease_until"], hb.body["lease_until"]);

    // The owner's sessions are not ann's.
    let om = me(&api, &acc.owner_token).await;
    assert_eq!(om["agent"]["id"], acc.owner_id.as_str());
    assert_eq!(array(&om["sessions"], "sessions").len(), 1);
}

#[tokio::test]
async fn me_session_is_connected_only_while_an_event_stream_is_open() {
    let (_srv, api, acc) = setup("acme").await;
    let connected = |api: Api, token: String| async move {
        let m = me(&api, &token).await;
        m["sessions"][0]["connected"]
            .as_bool()
            .expect("connected is a bool")
    };
    assert!(!connected(api.clone(), acc.owner_token.clone()).await);
    let mut stream = api.sse("/v1/me/events", Some(&acc.owner_token)).await;
    let first = stream.next().await.expect("snapshot");
    assert_eq!(first.name, "snapshot");
    eventually("connected becomes true", DEADLINE, || {
        connected(api.clone(), acc.owner_token.clone())
    })
    .await;
    drop(stream);
    eventually("connected becomes false", DISCONNECT_DEADLINE, || {
        let c = connected(api.clone(), acc.owner_token.clone());
        async move { !c.await }
    })
    .await;
}

// ----- PUT /v1/me/status -----------------------------------------------------------------------

#[tokio::test]
async fn set_status_returns_applied_and_status_view() {
    let (_srv, api, acc) = setup("acme").await;
    let before = me(&api, &acc.owner_token).await["status"]["version"]
        .as_i64()
        .unwrap();
    let r = api
        .put(
            "/v1/me/status",
            Some(&acc.owner_token),
            json!({"status": "busy", "op_id": new_op_id(), "intent_at": null}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["applied"], true);
    check_status_view(&r.body["status"]);
    assert_eq!(r.body["status"]["status"], "busy");
    assert_eq!(r.body["status"]["version"], before + 1);
    assert_eq!(r.body["status"]["changed_by_device"], "owner-dev");
    let intent = int(&r.body["status"]["intent_at"], "intent_at");
    let hb = heartbeat(&api, &acc.owner_token, json!({})).await;
    let server_time = int(&hb.body["server_time"], "server_time");
    assert!(
        intent <= server_time && intent > server_time - 60_000,
        "missing intent_at = now: {intent} vs server_time {server_time}"
    );
    assert_eq!(me(&api, &acc.owner_token).await["status"], r.body["status"]);
}

#[tokio::test]
async fn set_status_version_grows_by_one_per_applied_change() {
    let (_srv, api, acc) = setup("acme").await;
    let owner = api
        .login(&acc.slug, &owner_email(&acc), "pw-owner", "d2")
        .await;
    let v0 = me(&api, &owner.token).await["status"]["version"]
        .as_i64()
        .unwrap();
    for (i, st) in ["online", "busy", "offline", "online"].iter().enumerate() {
        let r = api.set_status(&owner, st).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["applied"], true);
        assert_eq!(r.body["status"]["status"], *st);
        assert_eq!(r.body["status"]["version"], v0 + i as i64 + 1);
    }
    // Setting the same status again is still an applied change.
    let r = api.set_status(&owner, "online").await;
    assert_eq!(r.body["applied"], true);
    assert_eq!(r.body["status"]["version"], v0 + 5);
    assert_eq!(me(&api, &owner.token).await["status"]["version"], v0 + 5);
    let hb = heartbeat(&api, &owner.token, json!({})).await;
    assert_eq!(hb.body["status_version"], v0 + 5);
}

#[tokio::test]
async fn set_status_same_op_id_returns_first_answer_without_new_version() {
    let (_srv, api, acc) = setup("acme").await;
    let op = new_op_id();
    let put = |status: &str| {
        api.put(
            "/v1/me/status",
            Some(&acc.owner_token),
            json!({"status": status, "op_id": op}),
        )
    };
    let first = put("online").await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.body["applied"], true);
    let again = put("online").await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body, first.body, "the same answer");
    let other = put("busy").await;
    assert_eq!(
        other.body, first.body,
        "the first answer, whatever the body"
    );
    let m = me(&api, &acc.owner_token).await;
    assert_eq!(m["status"], first.body["status"], "no new version");
}

#[tokio::test]
async fn set_status_with_older_intent_is_not_applied() {
    let (_srv, api, acc) = setup("acme").await;
    let first = api
        .put(
            "/v1/me/status",
            Some(&acc.owner_token),
            json!({"status": "online", "op_id": new_op_id()}),
        )
        .await;
    assert_eq!(first.body["applied"], true);
    let older = int(&first.body["status"]["intent_at"], "intent_at") - 10_000;
    let r = api
        .put(
            "/v1/me/status",
            Some(&acc.owner_token),
            json!({"status": "busy", "op_id": new_op_id(), "intent_at": older}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["applied"], false);
    check_status_view(&r.body["status"]);
    assert_eq!(r.body["status"], first.body["status"], "the current status");
}

#[tokio::test]
async fn set_status_with_non_uuid_op_id_is_invalid_field() {
    let (_srv, api, acc) = setup("acme").await;
    for body in [
        json!({"status": "online", "op_id": "not-a-uuid"}),
        json!({"status": "online", "op_id": ""}),
        json!({"status": "online"}),
    ] {
        let r = api
            .put("/v1/me/status", Some(&acc.owner_token), body.clone())
            .await;
        let detail = r.assert_error(422, "invalid_field");
        assert!(
            detail.contains("op_id"),
            "{body}: detail names op_id: {detail}"
        );
    }
    assert_eq!(me(&api, &acc.owner_token).await["status"]["version"], 0);
}

#[tokio::test]
async fn set_status_with_unknown_status_is_invalid_field() {
    let (_srv, api, acc) = setup("acme").await;
    for status in [json!("away"), json!("ONLINE"), json!("")] {
        let r = api
            .put(
                "/v1/me/status",
                Some(&acc.owner_token),
                json!({"status": status, "op_id": new_op_id()}),
            )
            .await;
        let detail = r.assert_error(422, "invalid_field");
        assert!(detail.contains("status"), "detail names status: {detail}");
    }
    assert_eq!(me(&api, &acc.owner_token).await["status"]["version"], 0);
}

#[tokio::test]
async fn enum_fields_of_the_wrong_json_type_are_invalid_field() {
    // Valid JSON whose field has the wrong type is an invalid field (422 naming it), not a
    // malformed body (400).
    let (_srv, api, acc) = setup("acme").await;
    let mut failures = Vec::new();
    for bad in [json!(null), json!(1), json!(true), json!(["online"])] {
        let cases = [
            (
                Method::PUT,
                "/v1/me/status",
                json!({"status": bad, "op_id": new_op_id()}),
                "status",
            ),
            (
                Method::POST,
                "/v1/session/heartbeat",
                json!({"mode": bad}),
                "mode",
            ),
            (
                Method::PUT,
                "/v1/session/push",
                json!({"provider": bad, "token": "t"}),
                "provider",
            ),
            (
                Method::POST,
                "/v1/admin/agents",
                json!({"name": "A", "email": "a@acme.test", "password": "pw", "role": bad}),
                "role",
            ),
        ];
        for (method, path, body, field) in cases {
            let r = api
                .call(method.clone(), path, Some(&acc.owner_token), Some(body))
                .await;
            let detail = r.body["error"]["detail"].as_str().unwrap_or_default();
            if r.status != 422 || r.code() != "invalid_field" || !detail.contains(field) {
                failures.push(format!(
                    "{method} {path} {field}={bad}: {} {}",
                    r.status, r.body
                ));
            }
        }
        let r = api
            .post(
                "/v1/login",
                None,
                json!({"account": "acme", "email": owner_email(&acc), "password": "pw-owner",
                       "device": {"id": "d", "platform": bad, "name": "d", "app_version": "1"}}),
            )
            .await;
        let detail = r.body["error"]["detail"].as_str().unwrap_or_default();
        if r.status != 422 || r.code() != "invalid_field" || !detail.contains("platform") {
            failures.push(format!(
                "POST /v1/login device.platform={bad}: {} {}",
                r.status, r.body
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "not 422 invalid_field:\n{}",
        failures.join("\n")
    );
}

#[tokio::test]
async fn set_status_future_intent_is_clamped_to_now() {
    let (_srv, api, acc) = setup("acme").await;
    let login_time = int(
        &heartbeat(&api, &acc.owner_token, json!({})).await.body["server_time"],
        "server_time",
    );
    let future = login_time + 3_600_000;
    let r = api
        .put(
            "/v1/me/status",
            Some(&acc.owner_token),
            json!({"status": "online", "op_id": new_op_id(), "intent_at": future}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["applied"], true);
    let intent = int(&r.body["status"]["intent_at"], "intent_at");
    let hb = heartbeat(&api, &acc.owner_token, json!({})).await;
    let server_time = int(&hb.body["server_time"], "server_time");
    assert!(
        intent <= server_time + 5_000,
        "intent_at {intent} clamped to about now (server_time {server_time})"
    );
    assert!(
        intent >= login_time,
        "clamped to now, not to the past: {intent}"
    );
    // A later change now wins: the clamp did not block the agent for an hour.
    let r = api
        .put(
            "/v1/me/status",
            Some(&acc.owner_token),
            json!({"status": "busy", "op_id": new_op_id(), "intent_at": server_time + 5_500}),
        )
        .await;
    assert_eq!(r.body["applied"], true, "{}", r.body);
}

// ----- GET /v1/me/events -----------------------------------------------------------------------

#[tokio::test]
async fn me_events_is_an_event_stream_starting_with_snapshot() {
    let (_srv, api, acc) = setup("acme").await;
    api.set_status(
        &api.login(&acc.slug, &owner_email(&acc), "pw-owner", "d2")
            .await,
        "online",
    )
    .await;
    let (status, headers, mut stream) = api
        .open_stream(
            api.request(Method::GET, "/v1/me/events")
                .bearer_auth(&acc.owner_token),
        )
        .await;
    assert_eq!(status, 200);
    let ct = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(ct.starts_with("text/event-stream"), "content-type {ct}");
    let ev = stream.next().await.expect("a first event");
    assert_eq!(ev.name, "snapshot");
    check_status_view(&ev.data["status"]);
    check_chatbox(&ev.data["chatbox"]);
    let m = me(&api, &acc.owner_token).await;
    assert_eq!(ev.data["status"], m["status"]);
    assert_eq!(ev.data["status"]["status"], "online");
    assert_eq!(ev.data["chatbox"], api.widget(&acc).await);
}

// ----- administration --------------------------------------------------------------------------

#[tokio::test]
async fn admin_account_returns_account_groups_opening_hours_settings_agents() {
    let (_srv, api, acc) = setup("acme").await;
    api.put_groups(&acc, &[("sales", "Sales")]).await;
    let ann = api.add_agent(&acc, "ann", &["sales"]).await;
    let b = admin_account(&api, &acc).await;
    check_account_info(&b["account"]);
    assert_eq!(b["account"]["id"], acc.id.as_str());
    assert_eq!(b["account"]["slug"], "acme");
    assert_eq!(b["account"]["widget_key"], acc.widget_key.as_str());
    assert_eq!(b["groups"], json!([{"key": "sales", "name": "Sales"}]));
    let oh = &b["opening_hours"];
    assert!(oh["enabled"].is_boolean(), "opening_hours.enabled: {oh}");
    string(&oh["timezone"], "opening_hours.timezone");
    assert!(oh["days"].is_object(), "opening_hours.days: {oh}");
    array(&oh["exceptions"], "opening_hours.exceptions");
    assert_eq!(
        b["settings"],
        json!({"active_interval_ms": 20000, "active_ttl_ms": 60000,
               "background_ttl_ms": 1800000, "renew_margin_ms": 300000,
               "busy_message": null, "offline_message": null}),
        "the defaults"
    );
    let agents = array(&b["agents"], "agents");
    assert_eq!(agents.len(), 2);
    agents.iter().for_each(check_agent);
    let a = agents
        .iter()
        .find(|a| a["id"] == ann.as_str())
        .expect("ann");
    assert_eq!(a["groups"], json!(["sales"]));
    assert_eq!(a["role"], "agent");
    let o = agents
        .iter()
        .find(|a| a["id"] == acc.owner_id.as_str())
        .expect("owner");
    assert_eq!(o["role"], "owner");
}

#[tokio::test]
async fn admin_create_agent_returns_201_agent() {
    let (_srv, api, acc) = setup("acme").await;
    api.put_groups(&acc, &[("sales", "Sales"), ("support", "Support")])
        .await;
    let r = api
        .post(
            "/v1/admin/agents",
            Some(&acc.owner_token),
            json!({"name": "Ann", "email": "ann@acme.test", "password": "pw-ann",
                   "groups": ["support", "sales"], "role": "admin"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    check_agent(&r.body);
    assert_eq!(r.body["name"], "Ann");
    assert_eq!(r.body["email"], "ann@acme.test");
    let groups: BTreeSet<&str> = array(&r.body["groups"], "groups")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(groups, BTreeSet::from(["sales", "support"]));
    assert_eq!(r.body["role"], "admin");
    // The new agent can log in and is the same agent.
    let s = api
        .login("acme", "ann@acme.test", "pw-ann", "ann-dev")
        .await;
    assert_eq!(s.agent_id, r.body["id"].as_str().unwrap());
    assert_eq!(s.login["agent"], r.body);
}

#[tokio::test]
async fn admin_create_agent_with_duplicate_email_is_conflict() {
    let (_srv, api, acc) = setup("acme").await;
    api.add_agent(&acc, "ann", &[]).await;
    for email in ["ann@acme.test".to_owned(), owner_email(&acc)] {
        let r = api
            .post(
                "/v1/admin/agents",
                Some(&acc.owner_token),
                json!({"name": "Dup", "email": email, "password": "pw", "groups": [],
                       "role": "agent"}),
            )
            .await;
        r.assert_error(409, "conflict");
    }
    assert_eq!(
        array(&admin_account(&api, &acc).await["agents"], "agents").len(),
        2
    );
}

#[tokio::test]
async fn admin_create_agent_with_unknown_group_is_invalid_field() {
    let (_srv, api, acc) = setup("acme").await;
    api.put_groups(&acc, &[("sales", "Sales")]).await;
    let r = api
        .post(
            "/v1/admin/agents",
            Some(&acc.owner_token),
            json!({"name": "Ann", "email": "ann@acme.test", "password": "pw",
                   "groups": ["sales", "nope"], "role": "agent"}),
        )
        .await;
    let detail = r.assert_error(422, "invalid_field");
    assert!(detail.contains("groups"), "detail names groups: {detail}");
    assert_eq!(
        array(&admin_account(&api, &acc).await["agents"], "agents").len(),
        1
    );
}

#[tokio::test]
async fn admin_create_agent_with_bad_role_is_invalid_field() {
    let (_srv, api, acc) = setup("acme").await;
    let r = api
        .post(
            "/v1/admin/agents",
            Some(&acc.owner_token),
            json!({"name": "Ann", "email": "ann@acme.test", "password": "pw",
                   "groups": [], "role": "superuser"}),
        )
        .await;
    let detail = r.assert_error(422, "invalid_field");
    assert!(detail.contains("role"), "detail names role: {detail}");
}

#[tokio::test]
async fn admin_create_agent_without_password_is_invalid_field() {
    let (_srv, api, acc) = setup("acme").await;
    for body in [
        json!({"name": "Ann", "email": "ann@acme.test", "groups": [], "role": "agent"}),
        json!({"name": "Ann", "email": "ann@acme.test", "password": "", "groups": [],
               "role": "agent"}),
    ] {
        let r = api
            .post("/v1/admin/agents", Some(&acc.owner_token), body.clone())
            .await;
        let detail = r.assert_error(422, "invalid_field");
        assert!(
            detail.contains("password"),
            "{body}: detail names password: {detail}"
        );
    }
    let r = api
        .post(
            "/v1/admin/agents",
            Some(&acc.owner_token),
            json!({"name": "Ann", "email": "not-an-email", "password": "pw"}),
        )
        .await;
    let detail = r.assert_error(422, "invalid_field");
    assert!(detail.contains("email"), "detail names email: {detail}");
}

#[tokio::test]
async fn admin_patch_agent_returns_updated_agent() {
    let (_srv, api, acc) = setup("acme").await;
    api.put_groups(&acc, &[("sales", "Sales"), ("support", "Support")])
        .await;
    let ann = api.add_agent(&acc, "ann", &["sales"]).await;
    let path = format!("/v1/admin/agents/{ann}");
    let r = api
        .patch(
            &path,
            Some(&acc.owner_token),
            json!({"name": "Ann B", "groups": ["support"], "role": "admin"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    check_agent(&r.body);
    assert_eq!(
        r.body,
        json!({"id": ann, "name": "Ann B", "email": "ann@acme.test", "groups": ["support"],
               "role": "admin"})
    );
    // A partial patch keeps the rest.
    let r = api
        .patch(&path, Some(&acc.owner_token), json!({"name": "Ann C"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["name"], "Ann C");
    assert_eq!(r.body["groups"], json!(["support"]));
    assert_eq!(r.body["role"], "admin");
    let listed = admin_account(&api, &acc).await;
    let a = array(&listed["agents"], "agents")
        .iter()
        .find(|a| a["id"] == ann.as_str())
        .cloned()
        .expect("ann");
    assert_eq!(a, r.body, "stored");
    // Unknown group: 422, nothing changed.
    let bad = api
        .patch(&path, Some(&acc.owner_token), json!({"groups": ["nope"]}))
        .await;
    bad.assert_error(422, "invalid_field");
}

#[tokio::test]
async fn admin_patch_unknown_agent_is_not_found() {
    let (_srv, api, acc) = setup("acme").await;
    let r = api
        .patch(
            "/v1/admin/agents/agt_does_not_exist",
            Some(&acc.owner_token),
            json!({"name": "X"}),
        )
        .await;
    r.assert_error(404, "not_found");
}

#[tokio::test]
async fn admin_delete_agent_returns_204_then_not_found() {
    let (_srv, api, acc) = setup("acme").await;
    let ann = api.add_agent(&acc, "ann", &[]).await;
    let s = api.login_agent(&acc, "ann", "ann-dev").await;
    let path = format!("/v1/admin/agents/{ann}");
    let r = api.delete(&path, Some(&acc.owner_token)).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(r.body, Value::Null);
    api.delete(&path, Some(&acc.owner_token))
        .await
        .assert_error(404, "not_found");
    api.patch(&path, Some(&acc.owner_token), json!({"name": "X"}))
        .await
        .assert_error(404, "not_found");
    api.delete(
        "/v1/admin/agents/agt_does_not_exist",
        Some(&acc.owner_token),
    )
    .await
    .assert_error(404, "not_found");
    // Its session ended; it is no longer listed and cannot log in.
    api.get("/v1/me", Some(&s.token))
        .await
        .assert_error(401, "session_expired");
    let listed = admin_account(&api, &acc).await;
    assert!(
        !array(&listed["agents"], "agents")
            .iter()
            .any(|a| a["id"] == ann.as_str())
    );
    api.login_raw("acme", "ann@acme.test", "pw-ann", "ann-dev", Value::Null)
        .await
        .assert_error(401, "invalid_credentials");
}

#[tokio::test]
async fn agent_role_gets_forbidden_on_every_admin_route() {
    let (_srv, api, acc) = setup("acme").await;
    api.add_agent(&acc, "ann", &[]).await;
    let ann = api.login_agent(&acc, "ann", "ann-dev").await;
    let admin_routes: Vec<_> = authed_routes(&acc.owner_id)
        .into_iter()
        .filter(|(_, path, _)| path.starts_with("/v1/admin/"))
        .collect();
    assert_eq!(admin_routes.len(), 7);
    for (method, path, body) in admin_routes {
        let r = api
            .call(method.clone(), &path, Some(&ann.token), body)
            .await;
        assert_eq!(r.code(), "forbidden", "{method} {path}: {}", r.body);
        r.assert_error(403, "forbidden");
    }
    // Nothing changed.
    let b = admin_account(&api, &acc).await;
    assert_eq!(b["groups"], json!([]));
    assert_eq!(b["settings"]["active_ttl_ms"], 60_000);
    let owner = array(&b["agents"], "agents")
        .iter()
        .find(|a| a["id"] == acc.owner_id.as_str())
        .cloned()
        .expect("owner still exists");
    assert_eq!(owner["name"], "Owner");
}

#[tokio::test]
async fn admin_role_may_use_admin_routes() {
    let (_srv, api, acc) = setup("acme").await;
    let r = api
        .post(
            "/v1/admin/agents",
            Some(&acc.owner_token),
            json!({"name": "Adam", "email": "adam@acme.test", "password": "pw-adam",
                   "groups": [], "role": "admin"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let adam = api
        .login("acme", "adam@acme.test", "pw-adam", "adam-dev")
        .await;
    let r = api.get("/v1/admin/account", Some(&adam.token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = api
        .post(
            "/v1/admin/agents",
            Some(&adam.token),
            json!({"name": "Ann", "email": "ann@acme.test", "password": "pw-ann"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["role"], "agent", "role defaults to agent");
    let r = api
        .put(
            "/v1/admin/settings",
            Some(&adam.token),
            json!({"active_ttl_ms": 50000}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn put_groups_replaces_set_and_removes_unknown_keys_from_agents() {
    let (_srv, api, acc) = setup("acme").await;
    api.put_groups(&acc, &[("sales", "Sales"), ("support", "Support")])
        .await;
    let ann = api.add_agent(&acc, "ann", &["sales", "support"]).await;
    let bob = api.add_agent(&acc, "bob", &["sales"]).await;
    let r = api
        .put(
            "/v1/admin/groups",
            Some(&acc.owner_token),
            json!([{"key": "support", "name": "Customer support"},
                   {"key": "billing", "name": "Billing"}]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let b = admin_account(&api, &acc).await;
    let groups: BTreeSet<(String, String)> = array(&b["groups"], "groups")
        .iter()
        .map(|g| (string(&g["key"], "key"), string(&g["name"], "name")))
        .collect();
    assert_eq!(
        groups,
        BTreeSet::from([
            ("billing".to_owned(), "Billing".to_owned()),
            ("support".to_owned(), "Customer support".to_owned()),
        ])
    );
    let agent = |id: &str| {
        array(&b["agents"], "agents")
            .iter()
            .find(|a| a["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("agent {id}"))
    };
    assert_eq!(agent(&ann)["groups"], json!(["support"]));
    assert_eq!(agent(&bob)["groups"], json!([]));
    // The account's view lists the new set.
    let keys: BTreeSet<String> = array(&api.widget(&acc).await["groups"], "groups")
        .iter()
        .map(|g| string(&g["key"], "key"))
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["billing".to_owned(), "support".to_owned()])
    );

    // An empty set is allowed; a duplicate key is not.
    let r = api
        .put("/v1/admin/groups", Some(&acc.owner_token), json!([]))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = api
        .put(
            "/v1/admin/groups",
            Some(&acc.owner_token),
            json!([{"key": "a", "name": "A"}, {"key": "a", "name": "A again"}]),
        )
        .await;
    r.assert_error(422, "invalid_field");
}

#[tokio::test]
async fn put_opening_hours_returns_200_and_is_stored() {
    let (_srv, api, acc) = setup("acme").await;
    let hours = json!({
        "enabled": true,
        "timezone": "Europe/Prague",
        "days": {"mon": [["09:00", "17:30"]], "tue": [["09:00", "12:00"], ["13:00", "17:00"]],
                 "wed": [["22:00", "02:00"]], "thu": [], "fri": [["00:00", "24:00"]],
                 "sat": [], "sun": []},
        "exceptions": [{"date": "2026-12-24", "ranges": []}]
    });
    let r = api
        .put(
            "/v1/admin/opening-hours",
            Some(&acc.owner_token),
            hours.clone(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let b = admin_account(&api, &acc).await;
    assert_eq!(b["opening_hours"], hours);
    // With a schedule, the view says when it will flip next.
    assert!(api.widget(&acc).await["next_change_at"].is_i64());
}

#[tokio::test]
async fn put_opening_hours_with_invalid_zone_is_invalid_field() {
    let (_srv, api, acc) = setup("acme").await;
    let r = api
        .put(
            "/v1/admin/opening-hours",
            Some(&acc.owner_token),
            json!({"enabled": true, "timezone": "Mars/Olympus",
                   "days": {"mon": [["09:00", "17:00"]]}, "exceptions": []}),
        )
        .await;
    let detail = r.assert_error(422, "invalid_field");
    assert!(
        detail.contains("timezone"),
        "detail names timezone: {detail}"
    );
    let b = admin_account(&api, &acc).await;
    assert_eq!(b["opening_hours"]["enabled"], false, "nothing stored");
}

#[tokio::test]
async fn put_opening_hours_with_invalid_time_is_invalid_field() {
    let (_srv, api, acc) = setup("acme").await;
    for range in [
        json!(["25:00", "26:00"]),
        json!(["09:00", "17:60"]),
        json!(["9am", "5pm"]),
    ] {
        let r = api
            .put(
                "/v1/admin/opening-hours",
                Some(&acc.owner_token),
                json!({"enabled": true, "timezone": "Europe/Prague",
                       "days": {"mon": [range]}, "exceptions": []}),
            )
            .await;
        let detail = r.assert_error(422, "invalid_field");
        assert!(
            detail.contains("mon"),
            "{range}: detail names days.mon: {detail}"
        );
    }
    let r = api
        .put(
            "/v1/admin/opening-hours",
            Some(&acc.owner_token),
            json!({"enabled": true, "timezone": "UTC", "days": {},
                   "exceptions": [{"date": "2026-13-45", "ranges": []}]}),
        )
        .await;
    let detail = r.assert_error(422, "invalid_field");
    assert!(
        detail.contains("exceptions"),
        "detail names exceptions: {detail}"
    );
    let b = admin_account(&api, &acc).await;
    assert_eq!(b["opening_hours"]["enabled"], false, "nothing stored");
}

#[tokio::test]
async fn put_settings_partial_subset_keeps_the_others() {
    let (_srv, api, acc) = setup("acme").await;
    let r = api
        .put(
            "/v1/admin/settings",
            Some(&acc.owner_token),
            json!({"active_ttl_ms": 45000}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let expected = json!({"active_interval_ms": 20000, "active_ttl_ms": 45000,
                          "background_ttl_ms": 1800000, "renew_margin_ms": 300000,
               "busy_message": null, "offline_message": null});
    assert_eq!(admin_account(&api, &acc).await["settings"], expected);
    let r = api
        .put(
            "/v1/admin/settings",
            Some(&acc.owner_token),
            json!({"active_interval_ms": 10000, "renew_margin_ms": 60000}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let expected = json!({"active_interval_ms": 10000, "active_ttl_ms": 45000,
                          "background_ttl_ms": 1800000, "renew_margin_ms": 60000,
                          "busy_message": null, "offline_message": null});
    assert_eq!(admin_account(&api, &acc).await["settings"], expected);
    // New leases follow the settings.
    let hb = heartbeat(&api, &acc.owner_token, json!({})).await;
    assert_eq!(hb.body["interval_ms"], 10_000);
    assert_eq!(hb.body["ttl_ms"], 45_000);
}

#[tokio::test]
async fn put_settings_ttl_below_twice_interval_is_invalid_field() {
    let (_srv, api, acc) = setup("acme").await;
    for (patch, field) in [
        (json!({"active_interval_ms": 40000}), "active_ttl_ms"),
        (json!({"active_ttl_ms": 39999}), "active_ttl_ms"),
        (
            json!({"active_interval_ms": 1000, "active_ttl_ms": 2000, "background_ttl_ms": 1500,
                   "renew_margin_ms": 100}),
            "background_ttl_ms",
        ),
    ] {
        let r = api
            .put("/v1/admin/settings", Some(&acc.owner_token), patch.clone())
            .await;
        let detail = r.assert_error(422, "invalid_field");
        assert!(
            detail.contains(field),
            "{patch}: detail names {field}: {detail}"
        );
    }
    assert_eq!(
        admin_account(&api, &acc).await["settings"],
        json!({"active_interval_ms": 20000, "active_ttl_ms": 60000,
               "background_ttl_ms": 1800000, "renew_margin_ms": 300000,
               "busy_message": null, "offline_message": null}),
        "nothing stored"
    );
}

#[tokio::test]
async fn put_settings_active_ttl_below_1000_is_invalid_field() {
    let (_srv, api, acc) = setup("acme").await;
    let r = api
        .put(
            "/v1/admin/settings",
            Some(&acc.owner_token),
            json!({"active_interval_ms": 100, "active_ttl_ms": 999}),
        )
        .await;
    let detail = r.assert_error(422, "invalid_field");
    assert!(
        detail.contains("active_ttl_ms"),
        "detail names active_ttl_ms: {detail}"
    );
    // Exactly 1000 with an interval of 500 is within bounds.
    let r = api
        .put(
            "/v1/admin/settings",
            Some(&acc.owner_token),
            json!({"active_interval_ms": 500, "active_ttl_ms": 1000}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn other_tenants_agent_cannot_be_patched_or_deleted() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let a = api.create_account("alpha").await;
    let b = api.create_account("beta").await;
    let bob = api.add_agent(&b, "bob", &[]).await;
    for id in [&bob, &b.owner_id] {
        let path = format!("/v1/admin/agents/{id}");
        api.patch(
            &path,
            Some(&a.owner_token),
            json!({"name": "pwned", "role": "agent"}),
        )
        .await
        .assert_error(404, "not_found");
        api.delete(&path, Some(&a.owner_token))
            .await
            .assert_error(404, "not_found");
    }
    let listed = admin_account(&api, &b).await;
    let agents = array(&listed["agents"], "agents");
    assert_eq!(agents.len(), 2);
    let bob_now = agents
        .iter()
        .find(|x| x["id"] == bob.as_str())
        .expect("bob");
    assert_eq!(bob_now["name"], "bob");
    let owner = agents
        .iter()
        .find(|x| x["id"] == b.owner_id.as_str())
        .expect("owner");
    assert_eq!(owner["role"], "owner");
    let alpha = admin_account(&api, &a).await;
    assert!(
        !array(&alpha["agents"], "agents")
            .iter()
            .any(|x| x["id"] == bob.as_str()),
        "alpha does not see beta's agents"
    );
    // Beta's agent still logs in.
    api.login_agent(&b, "bob", "bob-dev").await;
}

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
        .login(&acc.slug, &owner_email(&acc), "pw-owner", "pushed")
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
        .login(&acc.slug, &owner_email(&acc), "pw-owner", "dead")
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
    assert_eq!(metric(&page, "presence_sessions"), 3.0);
    assert_eq!(metric(&page, "presence_sse_subscribers"), 1.0);
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
    api.login(&acc.slug, &owner_email(&acc), "pw-owner", "short-lived")
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

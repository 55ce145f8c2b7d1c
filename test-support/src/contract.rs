//! What PROTOCOL.md says each answer looks like, checked field by field (every field the
//! contract lists, with the right JSON type), and the small calls the route tests share. Not
//! re-exported at the crate root (its `device` is a JSON body, not an engine): route tests
//! `use presence_test_support::contract::*`.

use reqwest::Method;
use serde_json::{Value, json};

use crate::api::{Account, Api, Resp, Session, new_op_id};
use crate::server::TestServer;

pub const AGENT_STATUSES: &[&str] = &["online", "busy", "offline"];
pub const CHATBOX_STATUSES: &[&str] = &["online", "busy", "offline"];
pub const REASONS: &[&str] = &[
    "agents_online",
    "agents_busy",
    "no_agents_online",
    "outside_opening_hours",
];
pub const PLATFORMS: &[&str] = &["android", "ios", "desktop", "web", "cli"];
pub const MODES: &[&str] = &["active", "background"];
pub const ROLES: &[&str] = &["owner", "admin", "agent"];

// ----- shape checks ----------------------------------------------------------------------------

#[track_caller]
pub fn int(v: &Value, what: &str) -> i64 {
    v.as_i64()
        .unwrap_or_else(|| panic!("{what} is an integer, got {v}"))
}

#[track_caller]
pub fn string(v: &Value, what: &str) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("{what} is a string, got {v}"))
        .to_owned()
}

#[track_caller]
pub fn one_of(v: &Value, allowed: &[&str], what: &str) -> String {
    let s = string(v, what);
    assert!(
        allowed.contains(&s.as_str()),
        "{what} is one of {allowed:?}, got {s:?}"
    );
    s
}

#[track_caller]
pub fn array<'a>(v: &'a Value, what: &str) -> &'a Vec<Value> {
    v.as_array()
        .unwrap_or_else(|| panic!("{what} is an array, got {v}"))
}

#[track_caller]
pub fn check_agent(v: &Value) {
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
pub fn check_status_view(v: &Value) {
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
    one_of(&v["cause"], CAUSES, "status.cause");
    for key in ["until", "then", "custom_status", "note", "changed_by_agent"] {
        assert!(
            v.as_object().is_some_and(|o| o.contains_key(key)),
            "{key} is present (null when unset): {v}"
        );
    }
    let until = &v["until"];
    assert!(
        until.is_i64() || until.is_null(),
        "until is an int or null: {v}"
    );
    if until.is_null() {
        assert!(v["then"].is_null(), "then is null when not timed: {v}");
    } else {
        one_of(&v["then"], AGENT_STATUSES, "status.then");
    }
}

/// Every `Cause`.
pub const CAUSES: &[&str] = &["manual", "admin", "timer", "idle", "return"];

#[track_caller]
pub fn check_chatbox(v: &Value) {
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
    back_at(v, "chatbox");
    for g in array(&v["groups"], "chatbox.groups") {
        string(&g["key"], "chatbox.groups[].key");
        string(&g["name"], "chatbox.groups[].name");
        one_of(&g["status"], CHATBOX_STATUSES, "chatbox.groups[].status");
        one_of(&g["reason"], REASONS, "chatbox.groups[].reason");
        back_at(g, "chatbox.groups[]");
    }
}

/// `back_at` is present, an int or null, and null while the view is online.
#[track_caller]
fn back_at(v: &Value, what: &str) {
    assert!(
        v.as_object().is_some_and(|o| o.contains_key("back_at")),
        "{what}.back_at is present (null when none): {v}"
    );
    let b = &v["back_at"];
    assert!(
        b.is_null() || b.is_i64(),
        "{what}.back_at is int|null, got {b}"
    );
    if v["status"] == "online" {
        assert!(b.is_null(), "{what}.back_at is null while online: {v}");
    }
}

#[track_caller]
pub fn check_heartbeat(v: &Value) {
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
pub fn check_device(v: &Value) {
    string(&v["id"], "device.id");
    one_of(&v["platform"], PLATFORMS, "device.platform");
    string(&v["name"], "device.name");
    string(&v["app_version"], "device.app_version");
}

#[track_caller]
pub fn check_account_info(v: &Value) {
    for f in ["id", "slug", "name", "widget_key"] {
        assert!(
            !string(&v[f], &format!("account.{f}")).is_empty(),
            "account.{f} not empty"
        );
    }
}

/// Milliseconds since the Unix epoch, by this machine's clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The sum of a metric's samples in a Prometheus text page.
#[track_caller]
pub fn metric(page: &str, name: &str) -> f64 {
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

/// A server of its own, its client, and account `slug` with the owner logged in.
pub async fn setup(slug: &str) -> (TestServer, Api, Account) {
    let srv = TestServer::start().await;
    let api = srv.api();
    let acc = api.create_account(slug).await;
    (srv, api, acc)
}

/// The owner's first session (device `owner-dev`), as the harness opened it.
pub fn owner_session(acc: &Account) -> Session {
    Session {
        token: acc.owner_token.clone(),
        session_id: String::new(),
        agent_id: acc.owner_id.clone(),
        login: Value::Null,
    }
}

/// `owner@<slug>.test`, the owner of an account the harness made.
pub fn owner_email(acc: &Account) -> String {
    format!("owner@{}.test", acc.slug)
}

/// A login's `device` object.
pub fn device(id: &str, platform: &str) -> Value {
    json!({"id": id, "platform": platform, "name": format!("{id} name"), "app_version": "2.3.4"})
}

/// `POST /v1/session/heartbeat`, whatever it answers.
pub async fn heartbeat(api: &Api, token: &str, body: Value) -> Resp {
    api.post("/v1/session/heartbeat", Some(token), body).await
}

/// `GET /v1/me`; see [`Api::me`].
pub async fn me(api: &Api, token: &str) -> Value {
    api.me(token).await
}

/// `GET /v1/admin/account` as the owner; panics unless it answers 200.
pub async fn admin_account(api: &Api, acc: &Account) -> Value {
    let r = api.get("/v1/admin/account", Some(&acc.owner_token)).await;
    assert_eq!(r.status, 200, "admin account: {}", r.body);
    r.body
}

/// The `/metrics` page as text.
pub async fn metrics_page(api: &Api) -> String {
    let r = api.get("/metrics", None).await;
    assert_eq!(r.status, 200);
    r.body.as_str().expect("metrics are text").to_owned()
}

/// Every route that takes a bearer token, with a body it would accept.
pub fn authed_routes(agent_id: &str) -> Vec<(Method, String, Option<Value>)> {
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
                json!({"name": "x", "email": "x@x.test", "password": "pw-secret-1", "groups": [],
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

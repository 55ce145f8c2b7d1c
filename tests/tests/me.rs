//! The agent's own routes: `GET /v1/me` (agent, status, chat box and sessions, a session
//! `connected` only while its event stream is open), `PUT /v1/me/status` (versions, op id
//! idempotency, intent ordering and clamping, invalid fields) and `GET /v1/me/events` (an
//! event stream starting with a snapshot).
//!
//! `accounts.rs`, `login.rs`, `session.rs`, `me.rs`, `admin.rs`, `widget.rs` and
//! `operations.rs` together pin the surface of every route of PROTOCOL.md: its success answer
//! and each error it can return (the shape checks are `presence_test_support::contract`). Each
//! test runs its own server. Behaviour across routes (expiry, restarts, push delivery,
//! event-stream sync, intent ordering, tenant isolation of views) is pinned elsewhere.

use std::time::Duration;

use presence_test_support::contract::*;
use presence_test_support::{Api, DEADLINE, Session, eventually, new_op_id};
use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use serde_json::json;

/// How long to wait for a dropped event stream to be noticed (the server may only see the
/// closed connection on its next keep-alive write, every 15 s).
const DISCONNECT_DEADLINE: Duration = Duration::from_secs(40);

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
            json!({"account": "acme", "email": "ann@acme.test", "password": "pw-ann-secret",
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
        .login(&acc.slug, &owner_email(&acc), "pw-owner-secret", "d2")
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
                json!({"name": "A", "email": "a@acme.test", "password": "pw-secret-1", "role": bad}),
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
                json!({"account": "acme", "email": owner_email(&acc), "password": "pw-owner-secret",
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
        &api.login(&acc.slug, &owner_email(&acc), "pw-owner-secret", "d2")
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

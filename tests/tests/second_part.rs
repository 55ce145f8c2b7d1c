//! The server side of the contract's second part: stream framing (`retry:`, `id:`, `ping`),
//! chat box messages, signing out another device, admin status changes, `push` in `/v1/me`
//! sessions. Each test runs its own server.

use std::time::Duration;

use presence_test_support::*;
use serde_json::{Value, json};

async fn settings(api: &Api, acc: &Account, patch: Value) -> Resp {
    api.put("/v1/admin/settings", Some(&acc.owner_token), patch)
        .await
}

// ----- stream framing ------------------------------------------------------------------------

#[tokio::test]
async fn widget_stream_opens_with_retry_and_ids_chatbox_events_by_view_version() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    let mut w = api
        .sse(&format!("/v1/widget/{}/events", acc.widget_key), None)
        .await;
    let first = w.next().await.expect("first event");
    assert_eq!(first.name, "chatbox");
    assert_eq!(
        w.retry.as_deref(),
        Some("2000"),
        "stream starts with retry: 2000"
    );
    assert_eq!(
        first.id.as_deref(),
        Some(first.data["version"].to_string().as_str()),
        "id: is the view version"
    );
    let s = api
        .login(&acc.slug, "owner@acme.test", "pw-owner-secret", "d2")
        .await;
    api.set_status(&s, "online").await;
    let next = w.wait_for("chatbox", |v| v["status"] == "online").await;
    let ev_version = next["version"].as_i64().unwrap();
    assert!(ev_version > first.data["version"].as_i64().unwrap());
}

#[tokio::test]
async fn device_stream_ids_status_events_with_an_s_prefix() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    let a = api
        .login(&acc.slug, "owner@acme.test", "pw-owner-secret", "a")
        .await;
    let b = api
        .login(&acc.slug, "owner@acme.test", "pw-owner-secret", "b")
        .await;
    let mut stream = api.sse("/v1/me/events", Some(&b.token)).await;
    let snap = stream.next().await.expect("snapshot");
    assert_eq!(snap.name, "snapshot");
    assert_eq!(stream.retry.as_deref(), Some("2000"));
    api.set_status(&a, "busy").await;
    loop {
        let ev = stream.next().await.expect("an event");
        if ev.name == "status" {
            let v = ev.data["version"].as_i64().unwrap();
            assert_eq!(ev.id, Some(format!("s{v}")));
            break;
        }
    }
}

#[tokio::test]
async fn every_stream_sends_ping_events_with_the_server_time() {
    let srv = TestServer::with(|c| c.stream_ping = Duration::from_millis(150)).await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    let mut w = api
        .sse(&format!("/v1/widget/{}/events", acc.widget_key), None)
        .await;
    let ping = w.wait_for("ping", |_| true).await;
    let t = ping["server_time"]
        .as_i64()
        .expect("server_time is an integer");
    let now = now_ms();
    assert!(
        (t - now).abs() < 60_000,
        "server_time {t} is near now {now}"
    );
    let mut d = api.sse("/v1/me/events", Some(&acc.owner_token)).await;
    d.wait_for("ping", |v| v["server_time"].is_i64()).await;
}

// ----- chat box messages ---------------------------------------------------------------------

#[tokio::test]
async fn busy_and_offline_messages_show_on_the_view_and_its_groups() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    api.put_groups(&acc, &[("sales", "Sales")]).await;
    let r = settings(
        &api,
        &acc,
        json!({"busy_message": "Back in 5 minutes", "offline_message": "Write to us"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["busy_message"], "Back in 5 minutes");
    assert_eq!(r.body["offline_message"], "Write to us");
    let admin = api.get("/v1/admin/account", Some(&acc.owner_token)).await;
    assert_eq!(admin.body["settings"]["busy_message"], "Back in 5 minutes");

    let view = api.widget(&acc).await;
    assert_eq!(view["status"], "offline");
    assert_eq!(view["message"], "Write to us");
    assert_eq!(view["groups"][0]["message"], "Write to us");

    let mut w = api
        .sse(&format!("/v1/widget/{}/events", acc.widget_key), None)
        .await;
    let owner = api
        .login(&acc.slug, "owner@acme.test", "pw-owner-secret", "d")
        .await;
    api.set_status(&owner, "busy").await;
    let busy = w.wait_for("chatbox", |v| v["status"] == "busy").await;
    assert_eq!(busy["message"], "Back in 5 minutes");
    assert_eq!(busy["groups"][0]["message"], "Back in 5 minutes");
    api.set_status(&owner, "online").await;
    let online = w.wait_for("chatbox", |v| v["status"] == "online").await;
    assert_eq!(online["message"], Value::Null);
    assert_eq!(online["groups"][0]["message"], Value::Null);
}

#[tokio::test]
async fn changing_a_message_is_a_new_view_and_null_clears_it() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    let before = api.widget(&acc).await;
    settings(&api, &acc, json!({"offline_message": "Closed for today"})).await;
    let after = api.widget(&acc).await;
    assert_eq!(after["message"], "Closed for today");
    assert!(after["version"].as_i64() > before["version"].as_i64());
    // Another field alone leaves the message as it is.
    settings(&api, &acc, json!({"active_ttl_ms": 50000})).await;
    assert_eq!(api.widget(&acc).await["message"], "Closed for today");
    let r = settings(&api, &acc, json!({"offline_message": null})).await;
    assert_eq!(r.body["offline_message"], Value::Null);
    assert_eq!(api.widget(&acc).await["message"], Value::Null);
}

#[tokio::test]
async fn a_message_over_280_characters_is_an_invalid_field() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    let ok = "é".repeat(280);
    assert_eq!(
        settings(&api, &acc, json!({"busy_message": ok}))
            .await
            .status,
        200
    );
    let r = settings(&api, &acc, json!({"busy_message": "x".repeat(281)})).await;
    let detail = r.assert_error(422, "invalid_field");
    assert!(detail.starts_with("busy_message"), "{detail}");
    let r = settings(&api, &acc, json!({"offline_message": 5})).await;
    r.assert_error(422, "invalid_field");
    // The refused patch changed nothing.
    let admin = api.get("/v1/admin/account", Some(&acc.owner_token)).await;
    assert_eq!(admin.body["settings"]["busy_message"], "é".repeat(280));
}

// ----- signing out another device ------------------------------------------------------------

#[tokio::test]
async fn an_agent_signs_out_another_of_its_devices() {
    let push = WebhookReceiver::start().await;
    let srv = TestServer::start().await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    api.add_agent(&acc, "ann", &[]).await;
    let laptop = api.login_agent(&acc, "ann", "laptop").await;
    let phone = api
        .login_raw(
            &acc.slug,
            "ann@acme.test",
            "pw-ann-secret",
            "phone",
            json!({"provider": "webhook", "token": push.url}),
        )
        .await;
    assert_eq!(phone.status, 200);
    let phone = Session::from_login(&phone.body);
    let mut push = push;
    let mut phone_stream = api.sse("/v1/me/events", Some(&phone.token)).await;
    phone_stream.next().await.expect("snapshot");

    let r = api
        .delete(
            &format!("/v1/me/sessions/{}", phone.session_id),
            Some(&laptop.token),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let ended = phone_stream.wait_for("session_ended", |_| true).await;
    assert_eq!(ended["reason"], "logout");
    let pushed = push.next_of("session_ended").await;
    assert_eq!(pushed["session_id"], phone.session_id.as_str());
    assert_eq!(pushed["reason"], "logout");
    let hb = api
        .post("/v1/session/heartbeat", Some(&phone.token), json!({}))
        .await;
    hb.assert_error(401, "session_expired");
    let me = api.get("/v1/me", Some(&laptop.token)).await;
    let ids: Vec<&str> = me.body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["session_id"].as_str())
        .collect();
    assert_eq!(ids, vec![laptop.session_id.as_str()]);
}

#[tokio::test]
async fn another_agents_session_is_not_found() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    api.add_agent(&acc, "ann", &[]).await;
    api.add_agent(&acc, "bob", &[]).await;
    let ann = api.login_agent(&acc, "ann", "a").await;
    let bob = api.login_agent(&acc, "bob", "b").await;
    let r = api
        .delete(
            &format!("/v1/me/sessions/{}", bob.session_id),
            Some(&ann.token),
        )
        .await;
    r.assert_error(404, "not_found");
    let r = api
        .delete("/v1/me/sessions/ses_nothing", Some(&ann.token))
        .await;
    r.assert_error(404, "not_found");
    // Bob's session is untouched.
    let hb = api
        .post("/v1/session/heartbeat", Some(&bob.token), json!({}))
        .await;
    assert_eq!(hb.status, 200);
}

// ----- admin status --------------------------------------------------------------------------

#[tokio::test]
async fn an_admin_sets_an_agents_status_and_every_device_hears_it() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    let ann_id = api.add_agent(&acc, "ann", &[]).await;
    let ann = api.login_agent(&acc, "ann", "a").await;
    api.set_status(&ann, "online").await;
    let mut dev = api.sse("/v1/me/events", Some(&ann.token)).await;
    dev.next().await.expect("snapshot");
    let mut w = api
        .sse(&format!("/v1/widget/{}/events", acc.widget_key), None)
        .await;
    w.wait_for("chatbox", |v| v["status"] == "online").await;

    let r = api
        .put(
            &format!("/v1/admin/agents/{ann_id}/status"),
            Some(&acc.owner_token),
            json!({"status": "offline"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "offline");
    assert_eq!(r.body["changed_by_device"], Value::Null);
    assert_eq!(r.body["version"], 2);
    let ev = dev.wait_for("status", |v| v["status"] == "offline").await;
    assert_eq!(ev["changed_by_device"], Value::Null);
    w.wait_for("chatbox", |v| v["status"] == "offline").await;
    let me = api.get("/v1/me", Some(&ann.token)).await;
    assert_eq!(me.body["status"]["status"], "offline");
}

#[tokio::test]
async fn an_admin_change_wins_over_a_device_intent_ahead_of_the_server_clock() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    let ann_id = api.add_agent(&acc, "ann", &[]).await;
    let ann = api.login_agent(&acc, "ann", "a").await;
    let ahead = now_ms() + 4_000;
    let r = api
        .put(
            "/v1/me/status",
            Some(&ann.token),
            json!({"status": "online", "op_id": new_op_id(), "intent_at": ahead}),
        )
        .await;
    assert_eq!(r.body["applied"], true);
    let r = api
        .put(
            &format!("/v1/admin/agents/{ann_id}/status"),
            Some(&acc.owner_token),
            json!({"status": "offline"}),
        )
        .await;
    assert_eq!(r.body["status"], "offline");
    assert!(r.body["intent_at"].as_i64().unwrap() > ahead);
}

#[tokio::test]
async fn admin_status_refuses_agents_other_accounts_and_bad_bodies() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    let other = api.create_account("other").await;
    let ann_id = api.add_agent(&acc, "ann", &[]).await;
    let ann = api.login_agent(&acc, "ann", "a").await;
    let path = format!("/v1/admin/agents/{ann_id}/status");
    api.put(&path, Some(&ann.token), json!({"status": "offline"}))
        .await
        .assert_error(403, "forbidden");
    api.put(
        &path,
        Some(&other.owner_token),
        json!({"status": "offline"}),
    )
    .await
    .assert_error(404, "not_found");
    let d = api
        .put(&path, Some(&acc.owner_token), json!({"status": "away"}))
        .await
        .assert_error(422, "invalid_field");
    assert!(d.starts_with("status"), "{d}");
}

// ----- push in /v1/me ------------------------------------------------------------------------

#[tokio::test]
async fn me_sessions_show_the_push_provider_but_never_the_token() {
    let push = WebhookReceiver::start().await;
    let srv = TestServer::start().await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    let phone = api
        .login_raw(
            &acc.slug,
            "owner@acme.test",
            "pw-owner-secret",
            "phone",
            json!({"provider": "webhook", "token": push.url}),
        )
        .await;
    let phone = Session::from_login(&phone.body);
    let me = api.get("/v1/me", Some(&phone.token)).await;
    let sessions = me.body["sessions"].as_array().unwrap();
    let by_id = |id: &str| {
        sessions
            .iter()
            .find(|s| s["session_id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        by_id(&phone.session_id)["push"],
        json!({"provider": "webhook"})
    );
    assert_eq!(by_id(&phone.session_id)["push"].get("token"), None);
    // The owner's first session (from create_account) has none.
    let owner_session = sessions
        .iter()
        .find(|s| s["session_id"] != phone.session_id.as_str())
        .unwrap();
    assert_eq!(owner_session["push"], Value::Null);
    assert!(!me.body.to_string().contains(&push.url));
    api.delete("/v1/session/push", Some(&phone.token)).await;
    let me = api.get("/v1/me", Some(&phone.token)).await;
    let s = me.body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["session_id"] == phone.session_id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(s["push"], Value::Null);
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

//! Automatic away and the status log over HTTP (PROTOCOL.md, third part, "Automatic away and
//! back" and "Status log and history"): idle settings and reports and their bounds, an idle
//! agent seen on another device and back on activity, and the two status-log routes with
//! their paging, bounds and rights. The rules are pinned in `server/src/ops/` and, on every
//! backend, in the conformance suite.

use presence_test_support::contract::{check_status_view, heartbeat};
use presence_test_support::{Api, TestServer, new_op_id};
use serde_json::{Value, json};

async fn set(api: &Api, token: &str, status: &str) -> Value {
    let r = api
        .put(
            "/v1/me/status",
            Some(token),
            json!({"status": status, "op_id": new_op_id()}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["status"].clone()
}

#[tokio::test]
async fn idle_settings_and_reports_are_checked_and_shown() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    let t = &acc.owner_token;
    for (body, field) in [
        (json!({"idle_after_ms": 999}), "idle_after_ms"),
        (json!({"idle_after_ms": 86_400_001}), "idle_after_ms"),
        (json!({"idle_status": "online"}), "idle_status"),
        (json!({"idle_status": "away"}), "idle_status"),
        (json!({"return_on_activity": "yes"}), "return_on_activity"),
    ] {
        let r = api.put("/v1/admin/settings", Some(t), body.clone()).await;
        let detail = r.assert_error(422, "invalid_field");
        assert!(detail.contains(field), "{body}: {detail}");
    }
    let r = api
        .put(
            "/v1/admin/settings",
            Some(t),
            json!({"idle_after_ms": 600_000, "idle_status": "offline", "return_on_activity": false}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["idle_after_ms"], 600_000);
    assert_eq!(r.body["idle_status"], "offline");
    assert_eq!(r.body["return_on_activity"], false);
    for bad in [json!({"idle_ms": -1}), json!({"idle_ms": "long"})] {
        heartbeat(&api, t, bad.clone())
            .await
            .assert_error(422, "invalid_field");
    }
    let r = heartbeat(&api, t, json!({"mode": "active", "idle_ms": 4_000})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let me = api.me(t).await;
    assert_eq!(me["sessions"][0]["idle_ms"], 4_000);
    heartbeat(&api, t, json!({})).await;
    let me = api.me(t).await;
    assert_eq!(
        me["sessions"][0]["idle_ms"],
        Value::Null,
        "a heartbeat without a report"
    );
}

#[tokio::test]
async fn an_idle_agent_is_away_on_every_device_and_back_on_activity() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    let desk = &acc.owner_token;
    let r = api
        .put(
            "/v1/admin/settings",
            Some(desk),
            json!({"idle_after_ms": 1_000}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    set(&api, desk, "online").await;
    let mut other = api.sse("/v1/me/events", Some(desk)).await;
    other.next().await.expect("snapshot");
    heartbeat(&api, desk, json!({"idle_ms": 0})).await;
    let idle = loop {
        let e = other.next().await.expect("the idle change");
        if e.name == "status" && e.data["cause"] == "idle" {
            break e.data;
        }
    };
    check_status_view(&idle);
    assert_eq!(idle["status"], "busy");
    let r = heartbeat(&api, desk, json!({"idle_ms": 10})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let me = api.me(desk).await;
    assert_eq!(me["status"]["status"], "online");
    assert_eq!(me["status"]["cause"], "return");
    assert_eq!(r.body["status_version"], me["status"]["version"]);
}

#[tokio::test]
async fn the_status_log_routes_page_newest_first_within_their_rights() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    api.add_agent(&acc, "ann", &[]).await;
    let ann = api.login_agent(&acc, "ann", "phone").await;
    for s in ["online", "busy", "offline"] {
        set(&api, &ann.token, s).await;
    }
    let r = api.get("/v1/me/status-log?limit=2", Some(&ann.token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let entries = r.body["entries"].as_array().unwrap();
    let statuses: Vec<_> = entries.iter().map(|e| e["status"].clone()).collect();
    assert_eq!(statuses, vec![json!("offline"), json!("busy")]);
    for e in entries {
        check_status_view(e);
        assert!(e["applied_at"].is_i64(), "{e}");
    }
    let next = r.body["next"].as_str().expect("a next page").to_owned();
    let path = format!(
        "/v1/admin/agents/{}/status-log?limit=2&after={next}",
        ann.agent_id
    );
    let r = api.get(&path, Some(&acc.owner_token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["entries"][0]["status"], "online");
    assert_eq!(r.body["next"], Value::Null);
    for (q, field) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("from=x", "from"),
        ("from=5&to=4", "to"),
    ] {
        let r = api
            .get(&format!("/v1/me/status-log?{q}"), Some(&ann.token))
            .await;
        let detail = r.assert_error(422, "invalid_field");
        assert!(detail.contains(field), "{q}: {detail}");
    }
    let own = format!("/v1/admin/agents/{}/status-log", acc.owner_id);
    api.get(&own, Some(&ann.token))
        .await
        .assert_error(403, "forbidden");
    let r = api
        .get(
            "/v1/admin/agents/agt_nobody/status-log",
            Some(&acc.owner_token),
        )
        .await;
    r.assert_error(404, "not_found");
    api.get("/v1/me/status-log", None)
        .await
        .assert_error(401, "unauthorized");
}

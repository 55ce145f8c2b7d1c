//! Timed and custom statuses over HTTP (PROTOCOL.md, third part, "Timed status, custom
//! statuses, notes"): the fields a change may carry and their bounds, the shape every
//! `StatusView` now has, the end of a timed status reaching another device, that end
//! surviving a restart, and the account's custom statuses (`PUT /v1/admin/custom-statuses`).
//! The rules themselves are pinned in `server/src/ops/` and, on every backend, in the
//! conformance suite.

use presence_test_support::contract::check_status_view;
use presence_test_support::{Api, Sse, TestServer, new_op_id};
use serde_json::{Value, json};

async fn setup() -> (TestServer, Api, presence_test_support::Account) {
    let srv = TestServer::start().await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    (srv, api, acc)
}

/// A device stream's first event (the snapshot's status), then every status event.
async fn status_stream(api: &Api, token: &str) -> (Sse, Value) {
    let mut sse = api.sse("/v1/me/events", Some(token)).await;
    let first = sse.next().await.expect("snapshot");
    assert_eq!(first.name, "snapshot");
    (sse, first.data["status"].clone())
}

#[tokio::test]
async fn timed_fields_out_of_bounds_are_invalid_field_naming_them() {
    let (_srv, api, acc) = setup().await;
    let long_note = "n".repeat(101);
    let cases = [
        (json!({"duration_ms": 999}), "duration_ms"),
        (json!({"duration_ms": 604_800_001_i64}), "duration_ms"),
        (json!({"duration_ms": "soon"}), "duration_ms"),
        (json!({"then": "away"}), "then"),
        (json!({"note": long_note}), "note"),
        (json!({"custom_status": "lunch"}), "custom_status"),
    ];
    for (extra, field) in cases {
        let mut body = json!({"status": "busy", "op_id": new_op_id()});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let r = api
            .put("/v1/me/status", Some(&acc.owner_token), body.clone())
            .await;
        let detail = r.assert_error(422, "invalid_field");
        assert!(
            detail.contains(field),
            "{body}: detail names {field}: {detail}"
        );
    }
    let me = api.me(&acc.owner_token).await;
    assert_eq!(me["status"]["version"], 0, "nothing was applied");
    // The admin route checks the same fields.
    let r = api
        .put(
            &format!("/v1/admin/agents/{}/status", acc.owner_id),
            Some(&acc.owner_token),
            json!({"status": "busy", "duration_ms": 10}),
        )
        .await;
    let detail = r.assert_error(422, "invalid_field");
    assert!(detail.contains("duration_ms"), "{detail}");
}

#[tokio::test]
async fn a_timed_status_reaches_another_device_with_its_end_and_then_its_then() {
    let (_srv, api, acc) = setup().await;
    let phone = api
        .login(&acc.slug, &acc.email, &acc.password, "phone")
        .await;
    let (mut sse, snapshot) = status_stream(&api, &phone.token).await;
    check_status_view(&snapshot);
    assert_eq!(snapshot["cause"], "manual");
    let r = api
        .put(
            "/v1/me/status",
            Some(&acc.owner_token),
            json!({"status": "busy", "op_id": new_op_id(), "duration_ms": 1_000,
                   "then": "online", "note": "Back from the dentist"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let set = &r.body["status"];
    check_status_view(set);
    let until = set["until"].as_i64().expect("until");
    assert_eq!(until, set["intent_at"].as_i64().unwrap() + 1_000);
    assert_eq!(
        (&set["then"], &set["note"], &set["cause"]),
        (
            &json!("online"),
            &json!("Back from the dentist"),
            &json!("manual")
        )
    );
    let seen = sse.wait_for("status", |s| s["status"] == "busy").await;
    assert_eq!(&seen, set, "the other device sees the same timed status");
    let ended = sse.wait_for("status", |s| s["cause"] == "timer").await;
    check_status_view(&ended);
    assert_eq!(ended["status"], "online");
    assert_eq!(ended["intent_at"], until);
    assert_eq!(ended["version"], set["version"].as_i64().unwrap() + 1);
    assert!(ended["until"].is_null() && ended["note"].is_null());
    assert_eq!(api.me(&acc.owner_token).await["status"], ended);
}

#[tokio::test]
async fn a_timed_status_ends_after_a_restart() {
    let (mut srv, api, acc) = setup().await;
    let r = api
        .put(
            "/v1/me/status",
            Some(&acc.owner_token),
            json!({"status": "offline", "op_id": new_op_id(), "duration_ms": 2_000,
                   "then": "busy"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let until = r.body["status"]["until"].as_i64().unwrap();
    srv.restart().await;
    let (mut sse, snapshot) = status_stream(&api, &acc.owner_token).await;
    let ended = if snapshot["cause"] == "timer" {
        snapshot
    } else {
        sse.wait_for("status", |s| s["cause"] == "timer").await
    };
    assert_eq!(ended["status"], "busy");
    assert_eq!(ended["intent_at"], until);
}

#[tokio::test]
async fn custom_statuses_are_replaced_by_admins_shown_to_agents_and_checked_field_by_field() {
    let (_srv, api, acc) = setup().await;
    let list = json!([
        {"id": "lunch", "label": "Lunch", "emoji": "🍜", "base": "busy",
         "default_duration_ms": 3_600_000},
        {"id": "on-a-call", "label": "On a call", "base": "busy"}
    ]);
    let r = api
        .put(
            "/v1/admin/custom-statuses",
            Some(&acc.owner_token),
            list.clone(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body[0]["id"], "lunch");
    assert_eq!(r.body[1]["emoji"], Value::Null);
    assert_eq!(r.body[1]["default_duration_ms"], Value::Null);
    let admin = api.get("/v1/admin/account", Some(&acc.owner_token)).await;
    assert_eq!(admin.body["custom_statuses"], r.body);
    api.add_agent(&acc, "ann", &[]).await;
    let ann = api.login_agent(&acc, "ann", "ann-desk").await;
    assert_eq!(api.me(&ann.token).await["custom_statuses"], r.body);
    let set = api
        .put(
            "/v1/me/status",
            Some(&ann.token),
            json!({"status": "busy", "op_id": new_op_id(), "custom_status": "lunch"}),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.body);
    check_status_view(&set.body["status"]);
    assert_eq!(set.body["status"]["custom_status"], "lunch");
    // Agents may not change the set.
    let r = api
        .put("/v1/admin/custom-statuses", Some(&ann.token), json!([]))
        .await;
    r.assert_error(403, "forbidden");
    let cases = [
        (
            json!([{"id": "Lunch", "label": "L", "base": "busy"}]),
            "[0].id",
        ),
        (
            json!([{"id": "a", "label": "", "base": "busy"}]),
            "[0].label",
        ),
        (
            json!([{"id": "a", "label": "A", "base": "busy"}, {"id": "a", "label": "B", "base": "online"}]),
            "[1].id",
        ),
        (json!([{"id": "a", "label": "A", "base": "away"}]), "base"),
        (
            json!([{"id": "a", "label": "A", "base": "busy", "default_duration_ms": 10}]),
            "[0].default_duration_ms",
        ),
        (json!({"id": "a"}), "body"),
    ];
    for (body, field) in cases {
        let r = api
            .put(
                "/v1/admin/custom-statuses",
                Some(&acc.owner_token),
                body.clone(),
            )
            .await;
        let detail = r.assert_error(422, "invalid_field");
        assert!(detail.contains(field), "{body}: names {field}: {detail}");
    }
    let too_many: Vec<Value> = (0..51)
        .map(|i| json!({"id": format!("s{i}"), "label": "S", "base": "busy"}))
        .collect();
    let r = api
        .put(
            "/v1/admin/custom-statuses",
            Some(&acc.owner_token),
            json!(too_many),
        )
        .await;
    r.assert_error(422, "invalid_field");
}

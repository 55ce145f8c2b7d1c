//! DESIGN.md's rules, end to end: a real server on loopback, real HTTP, real event streams.

use presence_test_support::*;
use serde_json::json;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn rule1_status_change_on_one_device_reaches_the_other_devices_stream() {
    let ts = TestServer::start().await;
    let api = ts.api();
    let acc = api.create_account("acme").await;
    api.add_agent(&acc, "ann", &[]).await;
    let phone = api.login_agent(&acc, "ann", "phone").await;
    let desk = api.login_agent(&acc, "ann", "desk").await;
    let mut stream = api.sse("/v1/me/events", Some(&phone.token)).await;
    let first = stream.next().await.expect("first event");
    assert_eq!(first.name, "snapshot", "snapshot comes first");
    assert_eq!(first.data["status"]["status"], "offline");
    assert!(first.data["chatbox"]["version"].is_i64());

    let r = api.set_status(&desk, "online").await;
    assert_eq!(r.body["applied"], true);
    let ev = stream.wait_for("status", |d| d["status"] == "online").await;
    assert_eq!(ev["version"], 1);
    assert_eq!(ev["changed_by_device"], "desk");
    // ...and the chat box view follows on the same stream.
    stream
        .wait_for("chatbox", |d| d["status"] == "online")
        .await;
}

#[tokio::test]
async fn rule2_busy_without_online_gives_agents_busy() {
    let ts = TestServer::start().await;
    let api = ts.api();
    let acc = api.create_account("acme").await;
    api.add_agent(&acc, "ann", &[]).await;
    let s = api.login_agent(&acc, "ann", "d").await;
    api.set_status(&s, "busy").await;
    let w = api.widget(&acc).await;
    assert_eq!(w["status"], "busy");
    assert_eq!(w["reason"], "agents_busy");
    // One online agent beats any number of busy ones.
    let owner = api
        .login(&acc.slug, "owner@acme.test", "pw-owner-secret", "o2")
        .await;
    api.set_status(&owner, "online").await;
    assert_eq!(api.widget(&acc).await["status"], "online");
}

#[tokio::test]
async fn rule3_agent_counts_only_while_it_has_a_live_session() {
    let ts = TestServer::start().await;
    let api = ts.api();
    let acc = api.create_account("acme").await;
    api.add_agent(&acc, "ann", &[]).await;
    let s = api.login_agent(&acc, "ann", "d").await;
    api.set_status(&s, "online").await;
    assert_eq!(api.widget(&acc).await["status"], "online");
    api.delete("/v1/session", Some(&s.token)).await;
    let w = api.widget(&acc).await;
    assert_eq!(w["status"], "offline");
    assert_eq!(w["reason"], "no_agents_online");
    // The status still belongs to the agent: a new login counts at once.
    let again = api.login_agent(&acc, "ann", "d2").await;
    assert_eq!(again.login["status"]["status"], "online");
    assert_eq!(api.widget(&acc).await["status"], "online");
}

#[tokio::test]
async fn rule4_logout_publishes_offline_at_once() {
    let ts = TestServer::start().await;
    let api = ts.api();
    let acc = api.create_account("acme").await;
    api.add_agent(&acc, "ann", &[]).await;
    let s = api.login_agent(&acc, "ann", "d").await;
    api.set_status(&s, "online").await;
    let mut widget = api
        .sse(&format!("/v1/widget/{}/events", acc.widget_key), None)
        .await;
    let first = widget.next().await.expect("first chatbox");
    assert_eq!(first.name, "chatbox");
    assert_eq!(first.data["status"], "online");
    let mut me = api.sse("/v1/me/events", Some(&s.token)).await;
    me.next().await.expect("snapshot");
    let r = api.delete("/v1/session", Some(&s.token)).await;
    assert_eq!(r.status, 204);
    let ev = widget
        .wait_for("chatbox", |d| d["status"] == "offline")
        .await;
    assert_eq!(ev["reason"], "no_agents_online");
    // The device's own stream says why it ended, then closes.
    let ended = me.wait_for("session_ended", |_| true).await;
    assert_eq!(ended["reason"], "logout");
    assert!(me.next_within(DEADLINE).await.expect("closes").is_none());
}

#[tokio::test]
async fn rule4_expiry_lands_between_ttl_and_ttl_plus_one_second() {
    let ts = TestServer::with(|c| c.defaults = fast_settings()).await;
    let api = ts.api();
    let acc = api.create_account("acme").await;
    api.add_agent(&acc, "ann", &[]).await;
    let s = api.login_agent(&acc, "ann", "d").await;
    api.set_status(&s, "online").await;
    let mut widget = api
        .sse(&format!("/v1/widget/{}/events", acc.widget_key), None)
        .await;
    widget
        .wait_for("chatbox", |d| d["status"] == "online")
        .await;
    let hb = api
        .post("/v1/session/heartbeat", Some(&s.token), json!({}))
        .await;
    let lease_until = hb.body["lease_until"].as_i64().unwrap();
    assert_eq!(lease_until - hb.body["server_time"].as_i64().unwrap(), 1000);
    // The server's clock runs at a fixed offset from ours; measure the publish on its scale.
    let offset = hb.body["server_time"].as_i64().unwrap() - now_ms();
    widget
        .wait_for("chatbox", |d| d["status"] == "offline")
        .await;
    let seen = now_ms() + offset;
    assert!(
        seen >= lease_until,
        "expired {} ms early",
        lease_until - seen
    );
    assert!(
        seen <= lease_until + 1000,
        "expiry published {} ms after the lease end",
        seen - lease_until
    );
    // The session is gone and its token answers session_expired.
    let r = api.get("/v1/me", Some(&s.token)).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.code(), "session_expired");
    // Counted (the owner's idle session from account setup expires too).
    let metrics = api.get("/metrics", None).await;
    let expiries: u64 = metrics
        .body
        .as_str()
        .unwrap_or("")
        .lines()
        .find_map(|l| l.strip_prefix("presence_session_expiries_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(expiries >= 1, "expiry counted");
}

#[tokio::test]
async fn rule5_no_groups_online_if_one_available_agent_is_online() {
    let ts = TestServer::start().await;
    let api = ts.api();
    let acc = api.create_account("acme").await;
    let w = api.widget(&acc).await;
    assert_eq!(w["status"], "offline");
    assert_eq!(w["groups"], json!([]));
    api.add_agent(&acc, "ann", &[]).await;
    let s = api.login_agent(&acc, "ann", "d").await;
    api.set_status(&s, "online").await;
    let w = api.widget(&acc).await;
    assert_eq!(w["status"], "online");
    assert_eq!(w["reason"], "agents_online");
}

#[tokio::test]
async fn rule6_ungrouped_agent_counts_for_every_group() {
    let ts = TestServer::start().await;
    let api = ts.api();
    let acc = api.create_account("acme").await;
    api.put_groups(&acc, &[("sales", "Sales"), ("support", "Support")])
        .await;
    api.add_agent(&acc, "ann", &[]).await;
    let s = api.login_agent(&acc, "ann", "d").await;
    api.set_status(&s, "online").await;
    let w = api.widget(&acc).await;
    assert_eq!(w["status"], "online");
    let groups = w["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    for g in groups {
        assert_eq!(g["status"], "online", "{g}");
    }
}

#[tokio::test]
async fn rule6_grouped_agent_counts_only_for_its_group() {
    let ts = TestServer::start().await;
    let api = ts.api();
    let acc = api.create_account("acme").await;
    api.put_groups(&acc, &[("sales", "Sales"), ("support", "Support")])
        .await;
    api.add_agent(&acc, "sam", &["sales"]).await;
    let s = api.login_agent(&acc, "sam", "d").await;
    api.set_status(&s, "online").await;
    let w = api.widget(&acc).await;
    assert_eq!(w["status"], "online", "the account view counts all agents");
    let groups = w["groups"].as_array().unwrap();
    assert_eq!(groups[0]["key"], "sales");
    assert_eq!(groups[0]["name"], "Sales");
    assert_eq!(groups[0]["status"], "online");
    assert_eq!(groups[1]["key"], "support");
    assert_eq!(groups[1]["status"], "offline");
    assert_eq!(groups[1]["reason"], "no_agents_online");
}

#[tokio::test]
async fn rule7_outside_opening_hours_is_offline_whoever_is_online() {
    let ts = TestServer::start().await;
    let api = ts.api();
    let acc = api.create_account("acme").await;
    api.put_groups(&acc, &[("sales", "Sales")]).await;
    api.add_agent(&acc, "ann", &[]).await;
    let s = api.login_agent(&acc, "ann", "d").await;
    api.set_status(&s, "online").await;
    let mut widget = api
        .sse(&format!("/v1/widget/{}/events", acc.widget_key), None)
        .await;
    widget
        .wait_for("chatbox", |d| d["status"] == "online")
        .await;
    // Open on no day at all.
    let r = api
        .put(
            "/v1/admin/opening-hours",
            Some(&acc.owner_token),
            json!({"enabled": true, "timezone": "Europe/Prague", "days": {}, "exceptions": []}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ev = widget
        .wait_for("chatbox", |d| d["status"] == "offline")
        .await;
    assert_eq!(ev["reason"], "outside_opening_hours");
    assert_eq!(ev["groups"][0]["status"], "offline");
    assert_eq!(ev["groups"][0]["reason"], "outside_opening_hours");
    assert!(ev["next_change_at"].is_null(), "never opens");
    // Open around the clock on every day: back online.
    let all_day = json!([["00:00", "24:00"]]);
    let r = api
        .put(
            "/v1/admin/opening-hours",
            Some(&acc.owner_token),
            json!({"enabled": true, "timezone": "UTC",
                   "days": {"mon": all_day, "tue": all_day, "wed": all_day, "thu": all_day,
                            "fri": all_day, "sat": all_day, "sun": all_day}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    widget
        .wait_for("chatbox", |d| d["status"] == "online")
        .await;
}

#[tokio::test]
async fn rule8_view_carries_next_change_at_when_the_schedule_will_flip_it() {
    let ts = TestServer::start().await;
    let api = ts.api();
    let acc = api.create_account("acme").await;
    let r = api
        .put(
            "/v1/admin/opening-hours",
            Some(&acc.owner_token),
            json!({"enabled": true, "timezone": "UTC", "days": {"mon": [["09:00", "17:00"]]}}),
        )
        .await;
    assert_eq!(r.status, 200);
    let w = api.widget(&acc).await;
    let next = w["next_change_at"].as_i64().expect("next_change_at set");
    let now = now_ms();
    assert!(next > now - 5_000 && next <= now + 7 * 86_400_000, "{next}");
    // Monday 09:00 or 17:00 UTC, on a whole minute.
    assert_eq!(next % 60_000, 0);
}

#[tokio::test]
async fn latest_intent_wins_over_an_older_intent_at() {
    let ts = TestServer::start().await;
    let api = ts.api();
    let acc = api.create_account("acme").await;
    api.add_agent(&acc, "ann", &[]).await;
    let a = api.login_agent(&acc, "ann", "a").await;
    let b = api.login_agent(&acc, "ann", "b").await;
    let now = a.login["server_time"].as_i64().unwrap();
    let r = api
        .put(
            "/v1/me/status",
            Some(&a.token),
            json!({"status": "online", "op_id": new_op_id(), "intent_at": now}),
        )
        .await;
    assert_eq!(r.body["applied"], true);
    // Device b was offline for an hour and now delivers an older intent.
    let r = api
        .put(
            "/v1/me/status",
            Some(&b.token),
            json!({"status": "offline", "op_id": new_op_id(), "intent_at": now - 3_600_000}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["applied"], false, "superseded");
    assert_eq!(r.body["status"]["status"], "online");
    assert_eq!(r.body["status"]["version"], 1);
}

#[tokio::test]
async fn equal_intent_at_goes_to_the_higher_op_id() {
    let ts = TestServer::start().await;
    let api = ts.api();
    let acc = api.create_account("acme").await;
    let s = api
        .login(&acc.slug, "owner@acme.test", "pw-owner-secret", "x")
        .await;
    let t = s.login["server_time"].as_i64().unwrap();
    let low = "01900000-0000-7000-8000-000000000001";
    let high = "01900000-0000-7000-8000-000000000002";
    let r = api
        .put(
            "/v1/me/status",
            Some(&s.token),
            json!({"status": "busy", "op_id": high, "intent_at": t}),
        )
        .await;
    assert_eq!(r.body["applied"], true);
    let r = api
        .put(
            "/v1/me/status",
            Some(&s.token),
            json!({"status": "online", "op_id": low, "intent_at": t}),
        )
        .await;
    assert_eq!(r.body["applied"], false);
    assert_eq!(r.body["status"]["status"], "busy");
}

#[tokio::test]
async fn tenants_never_see_each_other() {
    let ts = TestServer::start().await;
    let api = ts.api();
    let a = api.create_account("alpha").await;
    let b = api.create_account("beta").await;
    api.add_agent(&a, "ann", &[]).await;
    let ann = api.login_agent(&a, "ann", "d").await;
    api.set_status(&ann, "online").await;
    assert_eq!(api.widget(&a).await["status"], "online");
    assert_eq!(
        api.widget(&b).await["status"],
        "offline",
        "b's chat box ignores a's agents"
    );
    // a's agent cannot log in to b, even with the right password.
    let r = api
        .login_raw(
            "beta",
            "ann@alpha.test",
            "pw-ann-secret",
            "d",
            serde_json::Value::Null,
        )
        .await;
    assert_eq!(r.code(), "invalid_credentials");
    // b's owner sees only b's agents and cannot touch a's.
    let admin = api.get("/v1/admin/account", Some(&b.owner_token)).await;
    let emails: Vec<String> = admin.body["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["email"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(emails, vec!["owner@beta.test"]);
    let r = api
        .patch(
            &format!("/v1/admin/agents/{}", ann.agent_id),
            Some(&b.owner_token),
            json!({"name": "stolen"}),
        )
        .await;
    assert_eq!(r.status, 404);
    let r = api
        .delete(
            &format!("/v1/admin/agents/{}", ann.agent_id),
            Some(&b.owner_token),
        )
        .await;
    assert_eq!(r.status, 404);
    // The same email in two accounts is two different agents.
    let same = api
        .post(
            "/v1/admin/agents",
            Some(&b.owner_token),
            json!({"name": "Ann B", "email": "ann@alpha.test", "password": "other-password", "groups": []}),
        )
        .await;
    assert_eq!(same.status, 201);
    let me = api.get("/v1/me", Some(&ann.token)).await;
    assert_eq!(me.body["agent"]["name"], "ann");
}

#[tokio::test]
async fn webhook_status_push_reaches_a_session_without_a_stream() {
    let ts = TestServer::start().await;
    let api = ts.api();
    let mut rx = WebhookReceiver::start().await;
    let acc = api.create_account("acme").await;
    api.add_agent(&acc, "ann", &[]).await;
    let phone = api
        .login_raw(
            &acc.slug,
            "ann@acme.test",
            "pw-ann-secret",
            "phone",
            json!({"provider": "webhook", "token": rx.url}),
        )
        .await;
    assert_eq!(phone.status, 200, "{}", phone.body);
    let phone = Session::from_login(&phone.body);
    let desk = api.login_agent(&acc, "ann", "desk").await;
    api.set_status(&desk, "busy").await;
    let p = rx.next_of("status").await;
    assert_eq!(p["v"], 1);
    assert_eq!(p["session_id"], phone.session_id.as_str());
    assert_eq!(p["status"]["status"], "busy");
    assert_eq!(p["status"]["version"], 1);
}

#[tokio::test]
async fn renew_push_arrives_before_the_background_lease_ends() {
    let ts = TestServer::with(|c| c.defaults = fast_settings()).await;
    let api = ts.api();
    let mut rx = WebhookReceiver::start().await;
    let acc = api.create_account("acme").await;
    api.add_agent(&acc, "ann", &[]).await;
    let r = api
        .login_raw(
            &acc.slug,
            "ann@acme.test",
            "pw-ann-secret",
            "phone",
            json!({"provider": "webhook", "token": rx.url}),
        )
        .await;
    let s = Session::from_login(&r.body);
    let hb = api
        .post(
            "/v1/session/heartbeat",
            Some(&s.token),
            json!({"mode": "background"}),
        )
        .await;
    assert_eq!(hb.status, 200);
    assert_eq!(
        hb.body["ttl_ms"], 3000,
        "background lease granted with push"
    );
    let lease_until = hb.body["lease_until"].as_i64().unwrap();
    let renew = rx.next_of("renew").await;
    assert_eq!(renew["session_id"], s.session_id.as_str());
    assert_eq!(renew["lease_until"], lease_until);
    // Answering the renew with one heartbeat still works: the lease had not ended.
    let answer = api
        .post(
            "/v1/session/heartbeat",
            Some(&s.token),
            json!({"mode": "background"}),
        )
        .await;
    assert_eq!(answer.status, 200, "the renew came before the lease ended");
    assert!(answer.body["server_time"].as_i64().unwrap() < lease_until);
}

#[tokio::test]
async fn failing_push_provider_is_counted_and_never_blocks_a_request() {
    let ts = TestServer::start().await;
    let api = ts.api();
    let acc = api.create_account("acme").await;
    api.add_agent(&acc, "ann", &[]).await;
    // A registered webhook on a port nobody listens on.
    let dead = format!("http://127.0.0.1:{}/push", free_port());
    let r = api
        .login_raw(
            &acc.slug,
            "ann@acme.test",
            "pw-ann-secret",
            "phone",
            json!({"provider": "webhook", "token": dead}),
        )
        .await;
    assert_eq!(r.status, 200);
    let desk = api.login_agent(&acc, "ann", "desk").await;
    let r = api.set_status(&desk, "online").await;
    assert_eq!(r.status, 200);
    // The failure is counted once the push has been tried.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let m = api.get("/metrics", None).await;
        let text = m.body.as_str().unwrap_or("").to_owned();
        let failures = text.lines().find_map(|l| {
            l.strip_prefix("presence_push_failures_total{provider=\"webhook\"} ")?
                .parse::<u64>()
                .ok()
        });
        if failures.is_some_and(|n| n >= 1) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "failure not counted: {text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

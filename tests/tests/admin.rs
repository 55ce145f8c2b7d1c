//! The administration routes: `GET /v1/admin/account`, agents created, patched and deleted,
//! groups, opening hours and settings replaced, with each error they can return; who may use
//! them (owner and admin, never agent), and no reach into another tenant's agents.
//!
//! `accounts.rs`, `login.rs`, `session.rs`, `me.rs`, `admin.rs`, `widget.rs` and
//! `operations.rs` together pin the surface of every route of PROTOCOL.md: its success answer
//! and each error it can return (the shape checks are `presence_test_support::contract`). Each
//! test runs its own server. Behaviour across routes (expiry, restarts, push delivery,
//! event-stream sync, intent ordering, tenant isolation of views) is pinned elsewhere.

use std::collections::BTreeSet;

use presence_test_support::TestServer;
use presence_test_support::contract::*;
use serde_json::{Value, json};

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
               "busy_message": null, "offline_message": null,
               "idle_after_ms": null, "idle_status": "busy", "return_on_activity": true}),
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
            json!({"name": "Ann", "email": "ann@acme.test", "password": "pw-ann-secret",
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
        .login("acme", "ann@acme.test", "pw-ann-secret", "ann-dev")
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
                json!({"name": "Dup", "email": email, "password": "pw-secret-1", "groups": [],
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
            json!({"name": "Ann", "email": "ann@acme.test", "password": "pw-secret-1",
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
            json!({"name": "Ann", "email": "ann@acme.test", "password": "pw-secret-1",
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
            json!({"name": "Ann", "email": "not-an-email", "password": "pw-secret-1"}),
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
    api.login_raw(
        "acme",
        "ann@acme.test",
        "pw-ann-secret",
        "ann-dev",
        Value::Null,
    )
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
    api.add_agent_as(&acc, "adam", &[], "admin").await;
    let adam = api
        .login("acme", "adam@acme.test", "pw-adam-secret", "adam-dev")
        .await;
    let r = api.get("/v1/admin/account", Some(&adam.token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = api
        .post(
            "/v1/admin/agents",
            Some(&adam.token),
            json!({"name": "Ann", "email": "ann@acme.test", "password": "pw-ann-secret"}),
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
               "busy_message": null, "offline_message": null,
               "idle_after_ms": null, "idle_status": "busy", "return_on_activity": true});
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
                          "busy_message": null, "offline_message": null,
               "idle_after_ms": null, "idle_status": "busy", "return_on_activity": true});
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
               "busy_message": null, "offline_message": null,
               "idle_after_ms": null, "idle_status": "busy", "return_on_activity": true}),
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

#[tokio::test]
async fn only_an_owner_grants_owner_or_changes_or_removes_an_owner() {
    let s = TestServer::start().await;
    let api = s.api();
    let acc = api.create_account("acme").await;
    let r = api
        .post(
            "/v1/admin/agents",
            Some(&acc.owner_token),
            json!({"name": "Ada", "email": "ada@acme.test", "password": "pw-ada-admin",
                   "role": "admin"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let ada_id = r.body["id"].as_str().unwrap().to_owned();
    let ada = api
        .login("acme", "ada@acme.test", "pw-ada-admin", "ada-desk")
        .await;
    let owner_path = format!("/v1/admin/agents/{}", acc.owner_id);
    for (method, path, body) in [
        (
            "PATCH",
            format!("/v1/admin/agents/{ada_id}"),
            json!({"role": "owner"}),
        ),
        ("PATCH", owner_path.clone(), json!({"role": "agent"})),
        (
            "PATCH",
            owner_path.clone(),
            json!({"name": "Not the owner"}),
        ),
        ("DELETE", owner_path.clone(), json!(null)),
        (
            "POST",
            "/v1/admin/agents".to_owned(),
            json!({"name": "Eve", "email": "eve@acme.test", "password": "pw-eve-owner",
                   "role": "owner"}),
        ),
    ] {
        let r = match method {
            "PATCH" => api.patch(&path, Some(&ada.token), body.clone()).await,
            "DELETE" => api.delete(&path, Some(&ada.token)).await,
            _ => api.post(&path, Some(&ada.token), body.clone()).await,
        };
        r.assert_error(403, "forbidden");
    }
    let me = api.me(&acc.owner_token).await;
    assert_eq!(me["agent"]["role"], "owner", "the owner is untouched");
    // The owner may make the admin an owner.
    let r = api
        .patch(
            &format!("/v1/admin/agents/{ada_id}"),
            Some(&acc.owner_token),
            json!({"role": "owner"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["role"], "owner");
}

#[tokio::test]
async fn a_device_id_reused_by_another_agent_never_ends_their_session() {
    let s = TestServer::start().await;
    let api = s.api();
    let acc = api.create_account("acme").await;
    api.add_agent(&acc, "ann", &[]).await;
    api.add_agent(&acc, "bob", &[]).await;
    let ann = api.login_agent(&acc, "ann", "shared-device").await;
    let bob = api.login_agent(&acc, "bob", "shared-device").await;
    let me = api.me(&ann.token).await;
    assert_eq!(
        me["sessions"].as_array().unwrap().len(),
        1,
        "ann's still live"
    );
    assert_eq!(
        api.me(&bob.token).await["sessions"][0]["session_id"],
        bob.session_id.as_str()
    );
    // The same agent on the same device: the earlier session is replaced.
    let again = api.login_agent(&acc, "ann", "shared-device").await;
    api.get("/v1/me", Some(&ann.token))
        .await
        .assert_error(401, "session_expired");
    assert_eq!(
        api.me(&again.token).await["sessions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn group_keys_are_plain_and_groups_are_capped_per_account_and_agent() {
    let s = TestServer::start().await;
    let api = s.api();
    let acc = api.create_account("acme").await;
    let t = Some(acc.owner_token.as_str());
    for key in ["Sales", "a\"b", "<x>", "-lead", "", &"k".repeat(65)] {
        let r = api
            .put(
                "/v1/admin/groups",
                t,
                json!([{"key": key, "name": "Group"}]),
            )
            .await;
        let detail = r.assert_error(422, "invalid_field");
        assert!(detail.contains("[0].key"), "{key:?}: {detail}");
    }
    let many: Vec<_> = (0..201)
        .map(|i| json!({"key": format!("g{i}"), "name": "G"}))
        .collect();
    api.put("/v1/admin/groups", t, json!(many))
        .await
        .assert_error(409, "conflict");
    let most: Vec<_> = many[..200].to_vec();
    let r = api.put("/v1/admin/groups", t, json!(most)).await;
    assert_eq!(r.status, 200, "200 groups are allowed");
    let keys: Vec<String> = (0..51).map(|i| format!("g{i}")).collect();
    let r = api
        .post(
            "/v1/admin/agents",
            t,
            json!({"name": "Gus", "email": "gus@acme.test", "password": "pw-gus-1234",
                   "groups": keys}),
        )
        .await;
    let detail = r.assert_error(422, "invalid_field");
    assert!(detail.contains("groups"), "{detail}");
    let r = api
        .post(
            "/v1/admin/agents",
            t,
            json!({"name": "Gus", "email": "gus@acme.test", "password": "pw-gus-1234",
                   "groups": keys[..50]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

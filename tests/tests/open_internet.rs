//! Facing the open internet over HTTP, on every backend (PROTOCOL.md, third part): what a
//! login may send before it counts against any limit.

use presence_test_support::TestServer;
use serde_json::json;

#[tokio::test]
async fn oversized_login_strings_are_refused_before_they_count_or_are_kept() {
    let srv = TestServer::start().await;
    let api = srv.api();
    api.create_account("acme").await;
    let long = "x".repeat(4_000);
    let cases = [
        (json!({"account": long, "email": "a@acme.test"}), "account"),
        (
            json!({"account": "acme", "email": format!("{long}@acme.test")}),
            "email",
        ),
    ];
    // Many more than the failure limit: none is counted, none is 429.
    for _ in 0..12 {
        for (fields, field) in &cases {
            let mut body = json!({"password": "whatever-1", "device": {"id": "d", "platform": "web", "name": "Desk", "app_version": "1"}});
            body.as_object_mut()
                .unwrap()
                .extend(fields.as_object().unwrap().clone());
            let detail = api
                .post("/v1/login", None, body)
                .await
                .assert_error(422, "invalid_field");
            assert!(detail.contains(field), "{detail}");
        }
    }
}

/// A wrong password for `email` of account `acme`, sent through a proxy that says it
/// forwards for `client`; the answer's status.
async fn wrong_login(api: &presence_test_support::Api, email: &str, client: &str) -> u16 {
    let body = json!({"account": "acme", "email": email, "password": "wrong-password",
                      "device": {"id": "d", "platform": "web", "name": "Desk", "app_version": "1"}});
    let req = api
        .request(reqwest::Method::POST, "/v1/login")
        .header("x-forwarded-for", format!("6.6.6.6, {client}"))
        .json(&body);
    api.send(req).await.status
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_has_its_own_address_window() {
    let srv = TestServer::with(|c| c.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()]).await;
    let api = srv.api();
    api.create_account("acme").await;
    // The per-address window (100 failures a minute), filled by one client: distinct emails,
    // so no account+email window fills first.
    for i in 0..100 {
        assert_eq!(
            wrong_login(&api, &format!("u{i}@acme.test"), "198.51.100.1").await,
            401
        );
    }
    assert_eq!(
        wrong_login(&api, "next@acme.test", "198.51.100.1").await,
        429
    );
    // Another client behind the same balancer is not blocked, nor is the first one's
    // left-hand claim of being someone else believed (6.6.6.6 is what it wrote).
    assert_eq!(
        wrong_login(&api, "other@acme.test", "198.51.100.2").await,
        401
    );
}

#[tokio::test]
async fn without_a_trusted_proxy_forwarded_addresses_are_ignored() {
    let srv = TestServer::start().await;
    let api = srv.api();
    api.create_account("acme").await;
    for i in 0..100 {
        let client = format!("198.51.100.{i}");
        assert_eq!(
            wrong_login(&api, &format!("u{i}@acme.test"), &client).await,
            401
        );
    }
    // All from the one peer: its window is full whatever the header says.
    assert_eq!(
        wrong_login(&api, "next@acme.test", "203.0.113.1").await,
        429
    );
}

#[tokio::test]
async fn a_known_device_still_signs_in_when_someone_fills_its_agents_window() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    api.add_agent(&acc, "ann", &[]).await;
    let phone = api.login_agent(&acc, "ann", "ann-phone").await;
    api.delete("/v1/session", Some(&phone.token)).await;
    let login = |device: &'static str, password: &'static str| {
        let api = api.clone();
        async move {
            api.login_raw(
                "acme",
                "ann@acme.test",
                password,
                device,
                serde_json::Value::Null,
            )
            .await
            .status
        }
    };
    // Someone who knows ann's email fills her window from a device of their own.
    for _ in 0..10 {
        assert_eq!(login("attacker", "guess-guess").await, 401);
    }
    assert_eq!(
        login("attacker", "pw-ann-secret").await,
        429,
        "even the right password"
    );
    assert_eq!(
        login("new-laptop", "pw-ann-secret").await,
        429,
        "a device ann never used"
    );
    // Her phone signs in with the right password; a wrong one there counts in its own window.
    assert_eq!(login("ann-phone", "pw-ann-secret").await, 200);
    for _ in 0..10 {
        assert_eq!(login("ann-phone", "guess-guess").await, 401);
    }
    assert_eq!(
        login("ann-phone", "pw-ann-secret").await,
        429,
        "its own window is full now"
    );
}

/// A counter of `/metrics` (a float in the text format, whole here).
async fn counter(api: &presence_test_support::Api, name: &str) -> f64 {
    let page = presence_test_support::contract::metrics_page(api).await;
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} in /metrics"))
}

#[tokio::test]
async fn made_up_tokens_and_widget_keys_cost_the_stores_next_to_nothing() {
    let srv = TestServer::start().await;
    let api = srv.api();
    api.create_account("acme").await;
    // Not the shape of a token: refused without asking anyone.
    api.get("/v1/me", Some("not-a-token"))
        .await
        .assert_error(401, "unauthorized");
    let made_up = "ab".repeat(32);
    if !presence_test_support::cluster_mode() {
        api.get("/v1/me", Some(&made_up))
            .await
            .assert_error(401, "unauthorized");
        return;
    }
    // In cluster mode each made-up one is looked up once in PostgreSQL, then remembered.
    let before = counter(&api, "presence_cluster_postgres_ops_total").await;
    for _ in 0..200 {
        api.get("/v1/me", Some(&made_up))
            .await
            .assert_error(401, "unauthorized");
        api.get("/v1/widget/wk_made_up", None)
            .await
            .assert_error(404, "not_found");
    }
    let after = counter(&api, "presence_cluster_postgres_ops_total").await;
    // 400 requests; the node's own reconciler and pruning run meanwhile too.
    assert!(
        after - before < 40.0,
        "{before} -> {after} PostgreSQL operations"
    );
}

#[tokio::test]
async fn new_passwords_have_at_least_ten_characters_where_they_are_made() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let detail = api
        .post(
            "/v1/accounts",
            Some(presence_test_support::ADMIN_TOKEN),
            json!({"name": "Acme", "slug": "acme",
                   "owner": {"name": "O", "email": "o@acme.test", "password": "123456789"}}),
        )
        .await
        .assert_error(422, "invalid_field");
    assert!(detail.contains("owner.password"), "{detail}");
    let acc = api.create_account("acme").await;
    let agent = json!({"name": "Ann", "email": "ann@acme.test", "password": "ninechars",
                       "groups": [], "role": "agent"});
    let detail = api
        .post("/v1/admin/agents", Some(&acc.owner_token), agent)
        .await
        .assert_error(422, "invalid_field");
    assert!(detail.contains("password"), "{detail}");
    // Ten characters, counted as characters: ten accented letters are twenty bytes.
    let agent = json!({"name": "Ann", "email": "ann@acme.test", "password": "ééééééééééé",
                       "groups": [], "role": "agent"});
    assert_eq!(
        api.post("/v1/admin/agents", Some(&acc.owner_token), agent)
            .await
            .status,
        201
    );
}

#[tokio::test]
async fn an_agent_changes_its_password_and_its_other_devices_are_told_why_they_ended() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    api.add_agent(&acc, "ann", &[]).await;
    let laptop = api.login_agent(&acc, "ann", "ann-laptop").await;
    let phone = api.login_agent(&acc, "ann", "ann-phone").await;
    let mut stream = api.sse("/v1/me/events", Some(&phone.token)).await;
    stream.wait_for("snapshot", |_| true).await;
    let change = |current: &str, new: &str| json!({"current": current, "new": new});

    let detail = api
        .put(
            "/v1/me/password",
            Some(&laptop.token),
            change("pw-ann-secret", "short"),
        )
        .await
        .assert_error(422, "invalid_field");
    assert!(
        detail.contains("new") && detail.contains("password"),
        "{detail}"
    );
    api.put(
        "/v1/me/password",
        Some(&laptop.token),
        change("not-her-password", "a-longer-secret"),
    )
    .await
    .assert_error(401, "invalid_credentials");
    let r = api
        .put(
            "/v1/me/password",
            Some(&laptop.token),
            change("pw-ann-secret", "a-longer-secret"),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let ended = stream.wait_for("session_ended", |_| true).await;
    assert_eq!(ended["reason"], "credentials_changed");
    api.get("/v1/me", Some(&phone.token))
        .await
        .assert_error(401, "session_expired");
    assert_eq!(api.get("/v1/me", Some(&laptop.token)).await.status, 200);
    let old = api
        .login_raw(
            "acme",
            "ann@acme.test",
            "pw-ann-secret",
            "ann-tablet",
            serde_json::Value::Null,
        )
        .await;
    old.assert_error(401, "invalid_credentials");
    api.login("acme", "ann@acme.test", "a-longer-secret", "ann-tablet")
        .await;
}

#[tokio::test]
async fn wrong_current_passwords_count_like_failed_logins() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    for _ in 0..10 {
        api.put(
            "/v1/me/password",
            Some(&acc.owner_token),
            json!({"current": "guess-guess", "new": "a-longer-secret"}),
        )
        .await
        .assert_error(401, "invalid_credentials");
    }
    api.put(
        "/v1/me/password",
        Some(&acc.owner_token),
        json!({"current": "pw-owner-secret", "new": "a-longer-secret"}),
    )
    .await
    .assert_error(429, "rate_limited");
}

#[tokio::test]
async fn an_admin_resets_a_password_ending_every_session_but_not_an_owners() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    api.add_agent(&acc, "ann", &[]).await;
    api.add_agent_as(&acc, "adam", &[], "admin").await;
    let adam = api
        .login("acme", "adam@acme.test", "pw-adam-secret", "adam-laptop")
        .await;
    let ann = api.login_agent(&acc, "ann", "ann-laptop").await;
    let ann_id = ann.agent_id.clone();
    let mut stream = api.sse("/v1/me/events", Some(&ann.token)).await;
    stream.wait_for("snapshot", |_| true).await;

    api.put(
        &format!("/v1/admin/agents/{}/password", acc.owner_id),
        Some(&adam.token),
        json!({"password": "taken-over-1"}),
    )
    .await
    .assert_error(403, "forbidden");
    api.put(
        &format!("/v1/admin/agents/{}/password", acc.owner_id),
        Some(&ann.token),
        json!({"password": "taken-over-1"}),
    )
    .await
    .assert_error(403, "forbidden");
    let r = api
        .put(
            &format!("/v1/admin/agents/{ann_id}/password"),
            Some(&adam.token),
            json!({"password": "reset-by-adam"}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let ended = stream.wait_for("session_ended", |_| true).await;
    assert_eq!(ended["reason"], "credentials_changed");
    api.login("acme", "ann@acme.test", "reset-by-adam", "ann-laptop")
        .await;
}

#[tokio::test]
async fn scrapes_and_health_checks_cost_the_stores_a_bounded_number_of_queries() {
    let srv = TestServer::start().await;
    let api = srv.api();
    api.create_account("acme").await;
    if !presence_test_support::cluster_mode() {
        // One process, nothing to query: both answer from memory.
        assert_eq!(api.get("/healthz", None).await.status, 200);
        return;
    }
    let before = counter(&api, "presence_cluster_postgres_ops_total").await;
    let started = std::time::Instant::now();
    for _ in 0..200 {
        assert_eq!(api.get("/healthz", None).await.status, 200);
        presence_test_support::contract::metrics_page(&api).await;
    }
    let after = counter(&api, "presence_cluster_postgres_ops_total").await;
    // At most a ping a second and two counts every two seconds, plus the node's own
    // reconciler and pruning; 400 uncached requests would be 600 operations.
    let secs = started.elapsed().as_secs_f64().ceil();
    assert!(
        after - before <= 3.0 * secs + 20.0,
        "{before} -> {after} PostgreSQL operations in {secs} s"
    );
}

/// `POST /v1/accounts` with `token` as the operator, through a proxy that says it forwards
/// for `client`; the answer's status.
async fn operator_call(api: &presence_test_support::Api, token: &str, client: &str) -> u16 {
    let req = api
        .request(reqwest::Method::POST, "/v1/accounts")
        .bearer_auth(token)
        .header("x-forwarded-for", client)
        .json(&json!({"name": "Acme", "slug": format!("s{}", client.replace('.', "-")),
                      "owner": {"name": "O", "email": "o@acme.test", "password": "pw-owner-secret"}}));
    api.send(req).await.status
}

#[tokio::test]
async fn wrong_operator_tokens_count_per_client_address_like_failed_logins() {
    let srv = TestServer::with(|c| c.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()]).await;
    let api = srv.api();
    let right = presence_test_support::ADMIN_TOKEN;
    for _ in 0..10 {
        assert_eq!(
            operator_call(&api, "guess-guess-guess", "198.51.100.7").await,
            401
        );
    }
    assert_eq!(
        operator_call(&api, right, "198.51.100.7").await,
        429,
        "that address has used its attempts"
    );
    assert_eq!(
        operator_call(&api, right, "198.51.100.8").await,
        201,
        "another address is not locked out"
    );
}

//! Cluster mode over HTTP: three nodes in this process on one PostgreSQL and one Redis, each
//! a real server on its own loopback port, and what any node does is seen through every
//! other.

use std::time::Duration;

use presence_server::cluster::ClusterConfig;
use presence_test_support::stores::{Redis, shared_postgres};
use presence_test_support::*;
use serde_json::{Value, json};

struct Nodes {
    nodes: Vec<TestServer>,
    _redis: Redis,
}

impl Nodes {
    async fn start(n: usize) -> Nodes {
        let postgres_url = shared_postgres().fresh_database();
        let redis = Redis::start();
        let mut nodes = Vec::new();
        for _ in 0..n {
            let cluster = ClusterConfig {
                postgres_url: postgres_url.clone(),
                redis_urls: vec![redis.url()],
                redis_ca_file: None,
            };
            nodes.push(
                TestServer::with(|c| {
                    c.cluster = Some(cluster);
                    c.defaults = fast_settings();
                })
                .await,
            );
        }
        Nodes {
            nodes,
            _redis: redis,
        }
    }

    fn api(&self, i: usize) -> Api {
        self.nodes[i].api()
    }
}

async fn metric(api: &Api, name: &str) -> u64 {
    let r = api.get("/metrics", None).await;
    let text = r.body.as_str().unwrap_or_default().to_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_through_one_node_reaches_device_and_widget_streams_on_the_others() {
    let c = Nodes::start(3).await;
    let (a, b, cc) = (c.api(0), c.api(1), c.api(2));
    let acc = a.create_account("acme").await;
    let phone = a.login_agent_owner(&acc, "phone").await;
    let laptop = b.login_agent_owner(&acc, "laptop").await;
    let mut device = b.sse("/v1/me/events", Some(&laptop.token)).await;
    device.wait_for("snapshot", |_| true).await;
    let mut widget = cc
        .sse(&format!("/v1/widget/{}/events", acc.widget_key), None)
        .await;
    widget
        .wait_for("chatbox", |v| v["status"] == "offline")
        .await;

    let r = a.set_status(&phone, "online").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ev = device.wait_for("status", |v| v["status"] == "online").await;
    assert_eq!(ev["changed_by_device"], "phone");
    widget
        .wait_for("chatbox", |v| v["status"] == "online")
        .await;
    assert_eq!(cc.widget(&acc).await["status"], "online");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_opened_on_one_node_heartbeats_changes_status_and_logs_out_on_another() {
    let c = Nodes::start(3).await;
    let (a, b, cc) = (c.api(0), c.api(1), c.api(2));
    let acc = a.create_account("acme").await;
    let s = a.login_agent_owner(&acc, "phone").await;

    let hb = b
        .post(
            "/v1/session/heartbeat",
            Some(&s.token),
            json!({"mode": "active"}),
        )
        .await;
    assert_eq!(hb.status, 200, "{}", hb.body);
    assert!(hb.body["lease_until"].as_i64().unwrap_or(0) > 0);
    let r = cc.set_status(&s, "busy").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["applied"], true);
    let me = a.get("/v1/me", Some(&s.token)).await;
    assert_eq!(me.body["status"]["status"], "busy");
    assert_eq!(a.widget(&acc).await["status"], "busy");

    let out = b.delete("/v1/session", Some(&s.token)).await;
    assert_eq!(out.status, 204, "{}", out.body);
    for api in [&a, &b, &cc] {
        api.post(
            "/v1/session/heartbeat",
            Some(&s.token),
            json!({"mode": "active"}),
        )
        .await
        .assert_error(401, "session_expired");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_on_one_node_takes_the_widget_on_another_offline_at_once() {
    let c = Nodes::start(3).await;
    let (a, cc) = (c.api(0), c.api(2));
    let acc = a.create_account("acme").await;
    let s = a.login_agent_owner(&acc, "phone").await;
    assert_eq!(a.set_status(&s, "online").await.status, 200);
    let mut widget = a
        .sse(&format!("/v1/widget/{}/events", acc.widget_key), None)
        .await;
    widget
        .wait_for("chatbox", |v| v["status"] == "online")
        .await;
    // The owner's own session from `create_account` is online too: end it first.
    assert_eq!(
        cc.delete("/v1/session", Some(&acc.owner_token))
            .await
            .status,
        204
    );
    assert_eq!(cc.delete("/v1/session", Some(&s.token)).await.status, 204);
    widget
        .wait_for("chatbox", |v| v["status"] == "offline")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn view_versions_grow_on_every_node_and_agree_across_them() {
    let c = Nodes::start(3).await;
    let acc = c.api(0).create_account("acme").await;
    let s = c.api(0).login_agent_owner(&acc, "phone").await;
    let mut widgets = Vec::new();
    for i in 0..3 {
        let mut w = c
            .api(i)
            .sse(&format!("/v1/widget/{}/events", acc.widget_key), None)
            .await;
        w.wait_for("chatbox", |_| true).await;
        widgets.push(w);
    }
    let mut last = [0i64; 3];
    for (round, status) in ["online", "busy", "offline", "online", "busy"]
        .iter()
        .enumerate()
    {
        let via = c.api(round % 3);
        assert_eq!(via.set_status(&s, status).await.status, 200);
        let want = if *status == "offline" {
            "offline"
        } else {
            status
        };
        let mut seen = Vec::new();
        for (i, w) in widgets.iter_mut().enumerate() {
            let v = w.wait_for("chatbox", |v| v["status"] == want).await;
            let version = v["version"].as_i64().unwrap_or(-1);
            assert!(version > last[i], "node {i}: {version} after {}", last[i]);
            last[i] = version;
            seen.push(version);
        }
        assert!(
            seen.windows(2).all(|w| w[0] == w[1]),
            "every node serves one version for one view: {seen:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_lease_end_is_published_once_across_three_nodes() {
    const SESSIONS: usize = 60;
    let c = Nodes::start(3).await;
    let acc = c.api(0).create_account("acme").await;
    // The owner's session from `create_account` lapses too.
    let mut tokens = vec![acc.owner_token.clone()];
    // Spread over three agents: an agent keeps at most twenty live sessions.
    let names = ["ann", "bob", "cat"];
    for name in names {
        c.api(0).add_agent(&acc, name, &[]).await;
    }
    for i in 0..SESSIONS - 1 {
        let s = c
            .api(i % 3)
            .login_agent(&acc, names[i % 3], &format!("dev-{i}"))
            .await;
        tokens.push(s.token);
    }
    let apis: Vec<Api> = (0..3).map(|i| c.api(i)).collect();
    let total = || async {
        let mut n = 0;
        for api in &apis {
            n += metric(api, "presence_session_expiries_total").await;
        }
        n
    };
    eventually(
        "every silent session ends",
        Duration::from_secs(30),
        || async {
            let n = total().await;
            assert!(n <= SESSIONS as u64, "{n} lease ends for {SESSIONS} leases");
            n == SESSIONS as u64
        },
    )
    .await;
    for t in &tokens {
        c.api(1)
            .post("/v1/session/heartbeat", Some(t), json!({"mode": "active"}))
            .await
            .assert_error(401, "session_expired");
    }
    // Every node has swept every partition at least once more since: still one per lease.
    let swept_again = |api: &Api| {
        let api = api.clone();
        async move { metric(&api, "presence_cluster_sweeps_total").await }
    };
    let before: Vec<u64> = futures_util::future::join_all(apis.iter().map(swept_again)).await;
    eventually(
        "a full sweep round on every node",
        Duration::from_secs(20),
        || async {
            let now: Vec<u64> = futures_util::future::join_all(apis.iter().map(swept_again)).await;
            now.iter().zip(&before).all(|(n, b)| *n >= b + 64)
        },
    )
    .await;
    assert_eq!(total().await, SESSIONS as u64);
    let w: Value = c.api(2).widget(&acc).await;
    assert_eq!(w["status"], "offline");
}

trait OwnerLogin {
    async fn login_agent_owner(&self, acc: &Account, device: &str) -> Session;
}

impl OwnerLogin for Api {
    /// The account's owner on another device.
    async fn login_agent_owner(&self, acc: &Account, device: &str) -> Session {
        self.login(
            &acc.slug,
            &format!("owner@{}.test", acc.slug),
            "pw-owner-secret",
            device,
        )
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_made_on_one_node_works_on_every_node_and_once_revoked_on_none() {
    let c = Nodes::start(3).await;
    let acc = c.api(0).create_account("keys").await;
    let r = c
        .api(0)
        .post(
            "/v1/admin/api-keys",
            Some(&acc.owner_token),
            json!({"name": "crm"}),
        )
        .await;
    let (key, id) = (
        r.body["key"].as_str().unwrap(),
        r.body["id"].as_str().unwrap(),
    );
    for i in 0..3 {
        assert_eq!(
            c.api(i).get("/v1/admin/account", Some(key)).await.status,
            200,
            "node {i}"
        );
    }
    let r = c
        .api(1)
        .delete(&format!("/v1/admin/api-keys/{id}"), Some(&acc.owner_token))
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    // At once, with no wait: every node reads the keys where they are kept.
    for i in 0..3 {
        c.api(i)
            .get("/v1/admin/account", Some(key))
            .await
            .assert_error(401, "unauthorized");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_login_limits_hold_across_the_cluster_even_for_simultaneous_attempts() {
    let c = Nodes::start(3).await;
    let acc = c.api(0).create_account("acme").await;
    let wrong = |i: usize| {
        let api = c.api(i % 3);
        let slug = acc.slug.clone();
        async move {
            api.login_raw(&slug, "owner@acme.test", "wrong", "d", Value::Null)
                .await
                .status
        }
    };
    // 40 wrong passwords at once, spread over three nodes: the window holds 10.
    let codes = futures_util::future::join_all((0..40).map(wrong)).await;
    let checked = codes.iter().filter(|c| **c == 401).count();
    let limited = codes.iter().filter(|c| **c == 429).count();
    assert_eq!(checked, 10, "passwords checked: {codes:?}");
    assert_eq!(limited, 30, "{codes:?}");
    // And on every node after that, the right password too.
    for i in 0..3 {
        let r = c
            .api(i)
            .login_raw(
                &acc.slug,
                "owner@acme.test",
                "pw-owner-secret",
                "d",
                Value::Null,
            )
            .await;
        r.assert_error(429, "rate_limited");
        assert!(r.header("retry-after").is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_redis_cluster_a_primary_failover_loses_no_status_and_views_go_on() {
    use presence_test_support::stores::RedisCluster;
    let mut rc = RedisCluster::start();
    let postgres_url = shared_postgres().fresh_database();
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let cluster = ClusterConfig {
            postgres_url: postgres_url.clone(),
            redis_urls: rc.seed_urls(),
            redis_ca_file: None,
        };
        nodes.push(
            TestServer::with(|c| {
                c.cluster = Some(cluster);
            })
            .await,
        );
    }
    let (a, b) = (nodes[0].api(), nodes[1].api());
    let acc = a.create_account("acme").await;
    let s = a.login_agent_owner(&acc, "phone").await;
    assert_eq!(a.set_status(&s, "online").await.status, 200);
    let mut widget = b
        .sse(&format!("/v1/widget/{}/events", acc.widget_key), None)
        .await;
    let before = widget
        .wait_for("chatbox", |v| v["status"] == "online")
        .await;
    let version_before = before["version"].as_i64().unwrap_or(0);

    // Fail over the primary that holds the account's keys.
    let key = presence_server::cluster::hot::Keys::of(&acc.id).meta;
    let port = rc.ports()[0];
    let slot: u16 = rc
        .command(port, &["CLUSTER", "KEYSLOT", &key])
        .parse()
        .expect("a slot");
    rc.kill_primary_of_slot(slot);
    rc.wait_healthy();

    eventually(
        "status changes go through again",
        Duration::from_secs(30),
        || async { b.set_status(&s, "busy").await.status == 200 },
    )
    .await;
    let after = widget.wait_for("chatbox", |v| v["status"] == "busy").await;
    assert!(after["version"].as_i64().unwrap_or(0) > version_before);
    eventually(
        "every node serves the change",
        Duration::from_secs(30),
        || async { a.widget(&acc).await["status"] == "busy" },
    )
    .await;
    let me = a.get("/v1/me", Some(&s.token)).await;
    assert_eq!(me.body["status"]["status"], "busy");
    assert_eq!(
        a.post(
            "/v1/session/heartbeat",
            Some(&s.token),
            json!({"mode": "active"})
        )
        .await
        .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_status_whose_end_no_node_swept_is_ended_by_the_reconciler() {
    let c = Nodes::start(2).await;
    let (a, b) = (c.api(0), c.api(1));
    let acc = a.create_account("acme").await;
    // Leases long enough to outlive the wait (the nodes start with fast test settings).
    let r = a
        .put(
            "/v1/admin/settings",
            Some(&acc.owner_token),
            json!({"active_ttl_ms": 60_000, "active_interval_ms": 20_000,
                   "background_ttl_ms": 120_000}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let phone = b.login_agent_owner(&acc, "phone").await;
    let r = a
        .post("/v1/session/heartbeat", Some(&acc.owner_token), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut events = b.sse("/v1/me/events", Some(&phone.token)).await;
    events.wait_for("snapshot", |_| true).await;
    let r = a
        .put(
            "/v1/me/status",
            Some(&acc.owner_token),
            json!({"status": "busy", "op_id": new_op_id(), "duration_ms": 1_000}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let until = r.body["status"]["until"].as_i64().unwrap();
    // The node that would have swept the end is lost with it: the entry is gone unhandled.
    let p = presence_server::cluster::hot::partition(&acc.id);
    let key = presence_server::cluster::hot::deadlines_key(p);
    let member = format!("t {} {}", acc.id, acc.owner_id);
    assert_eq!(
        c._redis.command(&["ZREM", &key, &member]),
        "1",
        "the timed status's end sat in the deadline index"
    );
    let ended = events.wait_for("status", |s| s["cause"] == "timer").await;
    // `then` defaults to the status before: the owner never set one.
    assert_eq!(ended["status"], "offline");
    assert_eq!(ended["intent_at"], until);
}

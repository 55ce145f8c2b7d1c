//! Cluster mode under real faults: node processes of this crate's binary on a real
//! PostgreSQL and Redis of their own, and kill -9 of a node, kill -9 of Redis (started again
//! empty), PostgreSQL stopped and started, a node frozen with SIGSTOP, the pub/sub
//! connections killed, and a node cut from Redis by a fault proxy (resets it does not see, a
//! blackhole). Each test waits for what it expects with a deadline.

mod common;

use std::time::Duration;

use presence_test_support::proxy::{Fault, FaultProxy};
use presence_test_support::receiver::{Answer, Received, Receiver};
use presence_test_support::stores::{Postgres, Redis, shared_postgres};
use presence_test_support::{
    ADMIN_TOKEN, Account, Api, DEADLINE, Session, client, eventually, new_op_id,
};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// Fault tests run one at a time: each freezes, kills or starves processes, and two cores
/// shared by several such scenes would blur what each one measures.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Node processes sharing one PostgreSQL database and one Redis.
struct Cluster {
    nodes: Vec<Option<common::Proc>>,
    postgres_url: String,
    redis: Redis,
    dir: tempfile::TempDir,
}

impl Cluster {
    fn start(n: usize, postgres_url: String) -> Cluster {
        let redis = Redis::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = Cluster {
            nodes: Vec::new(),
            postgres_url,
            redis,
            dir,
        };
        for _ in 0..n {
            let p = c.spawn_node();
            c.nodes.push(Some(p));
        }
        c
    }

    /// A node process, once it prints its `listening on` line.
    fn spawn_node(&self) -> common::Proc {
        self.spawn_node_on(&self.redis.url())
    }

    /// Starts one more node, which reaches Redis at `redis_url` (a proxy in front of it);
    /// its index.
    fn add_node_on(&mut self, redis_url: &str) -> usize {
        let p = self.spawn_node_on(redis_url);
        self.nodes.push(Some(p));
        self.nodes.len() - 1
    }

    fn spawn_node_on(&self, redis_url: &str) -> common::Proc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_presence-server"))
            .args(["--listen", "127.0.0.1:0", "--admin-token", ADMIN_TOKEN])
            .args(["--postgres-url", &self.postgres_url])
            .args(["--redis-url", redis_url])
            .args(["--active-ttl-ms", "3000", "--active-interval-ms", "1000"])
            .args([
                "--push-webhook-allow",
                "127.0.0.1",
                "--webhook-retry-ms",
                "10",
            ])
            .args(["--webhook-timeout-ms", "2000"])
            .arg("--data-dir")
            .arg(self.dir.path())
            .env("PRESENCE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn a node");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the listening line");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        common::Proc { child, url }
    }

    fn api(&self, i: usize) -> Api {
        Api {
            url: self.nodes[i].as_ref().expect("node running").url.clone(),
            client: client(),
        }
    }

    fn pid(&self, i: usize) -> u32 {
        self.nodes[i].as_ref().expect("node running").child.id()
    }

    fn kill9(&mut self, i: usize) {
        if let Some(p) = self.nodes[i].take() {
            p.kill9();
        }
    }
}

/// An account made through `api`, its owner logged in on `owner-dev`.
async fn account(api: &Api, slug: &str) -> Account {
    api.create_account(slug).await
}

async fn owner_on(api: &Api, acc: &Account, device: &str) -> Session {
    api.login(
        &acc.slug,
        &format!("owner@{}.test", acc.slug),
        "pw-owner-secret",
        device,
    )
    .await
}

/// Sends a signal (`STOP`, `CONT`) to a process.
fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("kill runs")
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

async fn heartbeat(api: &Api, s: &Session) -> u16 {
    api.post(
        "/v1/session/heartbeat",
        Some(&s.token),
        json!({"mode": "active"}),
    )
    .await
    .status
}

/// Heartbeats `s` through `api` every 500 ms until dropped (a device that stays online).
fn keep_alive(api: Api, s: Session) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            let _ = heartbeat(&api, &s).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_node_under_load_loses_nothing_acknowledged_and_heartbeating_agents_stay_online()
{
    let _one = ONE_AT_A_TIME.lock().await;
    let mut c = Cluster::start(3, shared_postgres().fresh_database());
    let acc = account(&c.api(1), "acme").await;
    let writer = owner_on(&c.api(0), &acc, "writer").await;
    let steady = owner_on(&c.api(1), &acc, "steady").await;
    let _alive = keep_alive(c.api(2), steady.clone());
    let _alive_owner = keep_alive(
        c.api(1),
        Session {
            token: acc.owner_token.clone(),
            ..steady.clone()
        },
    );
    let _alive_writer = keep_alive(c.api(1), writer.clone());
    assert_eq!(c.api(1).set_status(&steady, "online").await.status, 200);
    let mut widget = c
        .api(2)
        .sse(&format!("/v1/widget/{}/events", acc.widget_key), None)
        .await;
    widget
        .wait_for("chatbox", |v| v["status"] == "online")
        .await;

    // Status writes through node 0, acknowledged ones remembered; node 0 dies mid-burst.
    let a = c.api(0);
    let w = writer.clone();
    let burst = tokio::spawn(async move {
        let mut acked: Option<Value> = None;
        for i in 0..400 {
            let s = if i % 2 == 0 { "online" } else { "busy" };
            let r = a
                .client
                .put(format!("{}/v1/me/status", a.url))
                .bearer_auth(&w.token)
                .json(&json!({"status": s, "op_id": new_op_id()}))
                .send()
                .await;
            match r {
                Ok(r) if r.status() == 200 => acked = r.json::<Value>().await.ok(),
                _ => break,
            }
        }
        acked
    });
    eventually("some writes land", DEADLINE, || async {
        let me = c.api(1).get("/v1/me", Some(&writer.token)).await;
        me.body["status"]["version"].as_i64().unwrap_or(0) >= 20
    })
    .await;
    c.kill9(0);
    let acked = burst
        .await
        .expect("burst task")
        .expect("some writes acknowledged");
    let acked_version = acked["status"]["version"].as_i64().unwrap();

    // Every acknowledged change is there, through the survivors.
    let me = c.api(2).get("/v1/me", Some(&writer.token)).await;
    assert_eq!(me.status, 200, "{}", me.body);
    let version = me.body["status"]["version"].as_i64().unwrap();
    assert!(
        version >= acked_version,
        "acknowledged version {acked_version}, stored {version}"
    );
    // A stream reconnects to another node and starts from the latest status.
    let mut device = c.api(1).sse("/v1/me/events", Some(&writer.token)).await;
    let snap = device.wait_for("snapshot", |_| true).await;
    assert!(snap["status"]["version"].as_i64().unwrap() >= acked_version);
    // The chat box never showed offline: the steady device kept heartbeating elsewhere.
    assert_ne!(c.api(1).widget(&acc).await["status"], "offline");
    let started = tokio::time::Instant::now();
    while started.elapsed() < Duration::from_secs(4) {
        // Past a whole active ttl of the dead node's own sessions.
        match widget.next_within(Duration::from_millis(500)).await {
            Ok(Some(ev)) if ev.name == "chatbox" => {
                assert_ne!(ev.data["status"], "offline", "flapped offline: {}", ev.data)
            }
            Ok(Some(_)) | Err(()) => {}
            Ok(None) => panic!("the widget stream on a live node ended"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_started_empty_loses_no_status_and_views_do_not_go_backwards() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut c = Cluster::start(2, shared_postgres().fresh_database());
    let acc = account(&c.api(0), "acme").await;
    let s = owner_on(&c.api(0), &acc, "phone").await;
    for st in ["online", "busy", "online", "busy"] {
        assert_eq!(c.api(0).set_status(&s, st).await.status, 200);
    }
    let before = c.api(1).widget(&acc).await;
    assert_eq!(before["status"], "busy");
    let version_before = before["version"].as_i64().unwrap();

    c.redis.kill();
    c.redis.start_again();

    // Each node reconnects by itself (until then it answers `503 unavailable`); sessions
    // come back from PostgreSQL with a grace lease; the status was never lost.
    for node in 0..2 {
        eventually(
            "the session heartbeats again through every node",
            DEADLINE,
            || async { heartbeat(&c.api(node), &s).await == 200 },
        )
        .await;
    }
    let me = c.api(0).get("/v1/me", Some(&s.token)).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["status"]["status"], "busy");
    let after = c.api(1).widget(&acc).await;
    assert_eq!(after["status"], "busy");
    assert!(
        after["version"].as_i64().unwrap() >= version_before,
        "version {} after {version_before}",
        after["version"]
    );
    // A change after the restart gets a version above every one served before.
    assert_eq!(c.api(1).set_status(&s, "online").await.status, 200);
    let changed = c.api(0).widget(&acc).await;
    assert_eq!(changed["status"], "online");
    assert!(changed["version"].as_i64().unwrap() > version_before);
    let _ = &mut c;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_answers_unavailable_for_status_while_heartbeats_go_on_then_recovers() {
    let _one = ONE_AT_A_TIME.lock().await;
    // A PostgreSQL of this test's own: it is stopped and started.
    let mut pg = Postgres::start();
    let c = Cluster::start(2, pg.fresh_database());
    let acc = account(&c.api(0), "acme").await;
    let s = owner_on(&c.api(0), &acc, "phone").await;
    assert_eq!(c.api(0).set_status(&s, "online").await.status, 200);
    let mut widget = c
        .api(1)
        .sse(&format!("/v1/widget/{}/events", acc.widget_key), None)
        .await;
    widget
        .wait_for("chatbox", |v| v["status"] == "online")
        .await;
    // Warm the nodes' token caches, as a running cluster has them.
    assert_eq!(heartbeat(&c.api(1), &s).await, 200);

    pg.stop();
    let r = c
        .api(1)
        .put(
            "/v1/me/status",
            Some(&s.token),
            json!({"status": "busy", "op_id": new_op_id()}),
        )
        .await;
    r.assert_error(503, "unavailable");
    assert!(r.header("retry-after").is_some(), "503 says when to retry");
    assert_eq!(heartbeat(&c.api(0), &s).await, 200, "heartbeats go on");
    assert_eq!(heartbeat(&c.api(1), &s).await, 200, "heartbeats go on");
    assert_eq!(c.api(0).widget(&acc).await["status"], "online");
    // `/healthz` pings the stores at most once a second: it says so within one.
    eventually("health says PostgreSQL is gone", DEADLINE, || async {
        let r = c.api(0).get("/healthz", None).await;
        r.status == 503 && r.code() == "unavailable"
    })
    .await;

    pg.start_again();
    eventually("status changes work again", DEADLINE, || async {
        c.api(1).set_status(&s, "busy").await.status == 200
    })
    .await;
    widget.wait_for("chatbox", |v| v["status"] == "busy").await;
    eventually("health is back", DEADLINE, || async {
        c.api(0).get("/healthz", None).await.status == 200
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_frozen_for_five_seconds_publishes_nothing_stale_when_it_thaws() {
    let _one = ONE_AT_A_TIME.lock().await;
    let c = Cluster::start(2, shared_postgres().fresh_database());
    let acc = account(&c.api(0), "acme").await;
    let s = owner_on(&c.api(1), &acc, "phone").await;
    let _alive = keep_alive(c.api(1), s.clone());
    let _alive_owner = keep_alive(
        c.api(1),
        Session {
            token: acc.owner_token.clone(),
            ..s.clone()
        },
    );
    assert_eq!(c.api(0).set_status(&s, "online").await.status, 200);
    let mut widget = c
        .api(1)
        .sse(&format!("/v1/widget/{}/events", acc.widget_key), None)
        .await;
    widget
        .wait_for("chatbox", |v| v["status"] == "online")
        .await;

    let frozen = c.pid(0);
    signal(frozen, "STOP");
    // While node 0 is frozen (its sweeper and timers too), node 1 goes on.
    assert_eq!(c.api(1).set_status(&s, "busy").await.status, 200);
    let busy = widget.wait_for("chatbox", |v| v["status"] == "busy").await;
    let busy_version = busy["version"].as_i64().unwrap();
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < until {
        let _ = widget.next_within(Duration::from_millis(250)).await;
    }
    signal(frozen, "CONT");
    // Once thawed, node 0 serves the present and publishes nothing older.
    eventually("the thawed node answers", DEADLINE, || async {
        c.api(0).get("/healthz", None).await.status == 200
    })
    .await;
    assert_eq!(c.api(0).widget(&acc).await["status"], "busy");
    let until = tokio::time::Instant::now() + Duration::from_secs(2);
    while tokio::time::Instant::now() < until {
        match widget.next_within(Duration::from_millis(250)).await {
            Ok(Some(ev)) if ev.name == "chatbox" => panic!("stale view published: {}", ev.data),
            _ => {}
        }
    }
    assert_eq!(c.api(1).widget(&acc).await["version"], busy_version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_pubsub_connections_recover_without_losing_or_repeating_an_event() {
    let _one = ONE_AT_A_TIME.lock().await;
    let c = Cluster::start(2, shared_postgres().fresh_database());
    let acc = account(&c.api(0), "acme").await;
    let phone = owner_on(&c.api(0), &acc, "phone").await;
    let laptop = owner_on(&c.api(1), &acc, "laptop").await;
    let mut device = c.api(1).sse("/v1/me/events", Some(&laptop.token)).await;
    let snap = device.wait_for("snapshot", |_| true).await;
    let mut last = snap["status"]["version"].as_i64().unwrap();

    let killed = c.redis.command(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    assert!(killed.parse::<u32>().unwrap_or(0) >= 1, "killed {killed}");
    // Changes made right away, while the nodes reconnect.
    let mut want = Vec::new();
    for st in ["online", "busy", "online"] {
        let r = c.api(0).set_status(&phone, st).await;
        assert_eq!(r.status, 200);
        want.push(r.body["status"]["version"].as_i64().unwrap());
    }
    // Each one arrives once, in order, on the other node's stream.
    let mut seen = Vec::new();
    while seen.last() != want.last() {
        let ev = device.wait_for("status", |_| true).await;
        let v = ev["version"].as_i64().unwrap();
        assert!(
            v > last,
            "status version {v} after {last}: repeated or out of order"
        );
        last = v;
        seen.push(v);
    }
    assert!(
        seen.ends_with(&want[want.len() - 1..]),
        "{seen:?} ends with the last change of {want:?}"
    );
    let mut widget = c
        .api(1)
        .sse(&format!("/v1/widget/{}/events", acc.widget_key), None)
        .await;
    widget
        .wait_for("chatbox", |v| v["status"] == "online")
        .await;
}

/// How soon after its link to Redis heals a node's streams show what it missed: the
/// subscriber notices a dead connection within about a second and reconnects at once.
const CATCH_UP: Duration = Duration::from_secs(5);

/// The next `name` event of `stream` that satisfies `pred`, if one comes within `within`.
async fn event_within(
    stream: &mut presence_test_support::Sse,
    within: Duration,
    name: &str,
    pred: impl Fn(&Value) -> bool,
) -> Option<Value> {
    let until = tokio::time::Instant::now() + within;
    loop {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        match stream.next_within(left).await {
            Ok(Some(ev)) if ev.name == name && pred(&ev.data) => return Some(ev.data),
            Ok(Some(_)) => continue,
            Ok(None) => panic!("stream ended while waiting for {name}"),
            Err(()) => return None,
        }
    }
}

/// The connection a node subscribes on, told from its others by what it sends.
const SUBSCRIBER: &[u8] = b"SUBSCRIBE";

/// Node 1 reaches Redis through a fault proxy, node 0 directly. While `fault` cuts node 1
/// from Redis (all its connections, or with `subscriber_only` its pub/sub connection), a
/// status changes through node 0; once the fault is over, node 1's widget and device streams
/// show that change within [`CATCH_UP`], and then the next one.
async fn a_node_cut_from_redis_catches_up_soon_after_the_link_heals(
    fault: Fault,
    subscriber_only: bool,
) {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut c = Cluster::start(1, shared_postgres().fresh_database());
    let redis_addr = std::net::SocketAddr::from(([127, 0, 0, 1], c.redis.port()));
    let proxy = FaultProxy::start(redis_addr).await;
    let cut = c.add_node_on(&format!("redis://{}/", proxy.addr()));
    let acc = account(&c.api(0), "acme").await;
    let phone = owner_on(&c.api(0), &acc, "phone").await;
    let laptop = owner_on(&c.api(cut), &acc, "laptop").await;
    let _alive = keep_alive(c.api(0), phone.clone());
    let _alive_laptop = keep_alive(c.api(0), laptop.clone());
    assert_eq!(c.api(0).set_status(&phone, "online").await.status, 200);
    let mut device = c.api(cut).sse("/v1/me/events", Some(&laptop.token)).await;
    device.wait_for("snapshot", |_| true).await;
    let mut widget = c
        .api(cut)
        .sse(&format!("/v1/widget/{}/events", acc.widget_key), None)
        .await;
    widget
        .wait_for("chatbox", |v| v["status"] == "online")
        .await;

    if subscriber_only {
        proxy.set_where(fault, SUBSCRIBER);
    } else {
        proxy.set(fault);
    }
    let r = c.api(0).set_status(&phone, "busy").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let busy = r.body["status"]["version"].as_i64().unwrap();
    // The cut lasts a while (the chaos run's lasted seconds).
    let cut_ends = tokio::time::Instant::now() + Duration::from_secs(2);
    while tokio::time::Instant::now() < cut_ends {
        let _ = widget.next_within(Duration::from_millis(250)).await;
    }
    proxy.set(Fault::Pass);
    let healed = tokio::time::Instant::now();

    // What changed during the cut reaches node 1's streams soon after the heal.
    let status = event_within(&mut device, CATCH_UP, "status", |v| {
        v["version"].as_i64() >= Some(busy)
    })
    .await;
    assert!(
        status.is_some(),
        "the status changed during the cut did not reach the device stream within \
         {CATCH_UP:?} of the heal"
    );
    let left = CATCH_UP.saturating_sub(healed.elapsed());
    let view = event_within(&mut widget, left, "chatbox", |v| v["status"] == "busy").await;
    assert!(
        view.is_some(),
        "the view changed during the cut did not reach the widget stream within {CATCH_UP:?} \
         of the heal"
    );
    eprintln!("{fault:?}: caught up {:?} after the heal", healed.elapsed());
    // And so does the next change.
    let changed = tokio::time::Instant::now();
    let r = c.api(0).set_status(&phone, "online").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let online = r.body["status"]["version"].as_i64().unwrap();
    let status = event_within(&mut device, CATCH_UP, "status", |v| {
        v["version"].as_i64() == Some(online)
    })
    .await;
    assert!(status.is_some(), "the next status did not reach the device");
    let left = CATCH_UP.saturating_sub(changed.elapsed());
    let view = event_within(&mut widget, left, "chatbox", |v| v["status"] == "online").await;
    assert!(view.is_some(), "the next view did not reach the widget");
    // Node 1 serves the present to a new reader too.
    assert_eq!(c.api(cut).widget(&acc).await["status"], "online");
}

/// The chaos run's cut: Redis's side of the node's connections reset, the node's side never
/// told (only what it sends after the heal is answered with a reset).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_redis_connections_are_reset_unseen_catches_up_within_seconds_of_the_heal() {
    a_node_cut_from_redis_catches_up_soon_after_the_link_heals(Fault::ResetUnseen, false).await;
}

/// Resets the node sees at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_redis_connections_are_reset_catches_up_within_seconds_of_the_heal() {
    a_node_cut_from_redis_catches_up_soon_after_the_link_heals(Fault::Reset, false).await;
}

/// The subscriber's connection silently blackholed: it stays open, and what was published
/// meanwhile never comes. (Only that connection: a blackhole that drops bytes and then
/// forwards again would leave a multiplexed command connection expecting answers to
/// requests Redis never got, which no real network does.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_subscriber_is_blackholed_catches_up_within_seconds_of_the_heal() {
    a_node_cut_from_redis_catches_up_soon_after_the_link_heals(Fault::Blackhole, true).await;
}

/// Makes an endpoint of `acc` for `agent.status` events at `url`.
async fn status_webhook(api: &Api, acc: &Account, url: &str) {
    let r = api
        .post(
            "/v1/admin/webhooks",
            Some(&acc.owner_token),
            json!({"url": url, "events": ["agent.status"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

/// The statuses the receiver gets after `after`, in order, until `last`; each event once
/// beyond the repeats at-least-once allows (the same `webhook-id` as the attempt before).
async fn statuses_until(rx: &mut Receiver, after: &Received, last: &str) -> Vec<String> {
    let mut seen: Vec<(String, String)> = vec![(after.id().to_owned(), String::new())];
    loop {
        let r = rx.next().await;
        let status = r.body["data"]["status"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if seen.last().is_some_and(|(id, _)| id == r.id()) {
            continue;
        }
        assert!(
            !seen.iter().any(|(id, _)| id == r.id()),
            "{} came again after a later event",
            r.id()
        );
        seen.push((r.id().to_owned(), status.clone()));
        if status == last {
            return seen.into_iter().skip(1).map(|(_, s)| s).collect();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_delivery_leaves_the_event_to_another_node_in_order() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut c = Cluster::start(1, shared_postgres().fresh_database());
    let acc = account(&c.api(0), "acme").await;
    let mut rx = Receiver::start().await;
    status_webhook(&c.api(0), &acc, &rx.url).await;
    rx.script([Answer::Hang]);
    let s = owner_on(&c.api(0), &acc, "phone").await;
    assert_eq!(c.api(0).set_status(&s, "online").await.status, 200);
    assert_eq!(c.api(0).set_status(&s, "busy").await.status, 200);
    // The only node holds the first event's attempt open; a second node joins; the first
    // dies with the attempt unanswered.
    let first = rx.next().await;
    assert_eq!(first.body["data"]["status"]["status"], "online");
    let second = c.add_node_on(&c.redis.url());
    c.kill9(0);
    assert_eq!(c.api(second).set_status(&s, "offline").await.status, 200);
    // The second node sends it again once the lease lapses, then the rest in order.
    let again = rx.next().await;
    assert_eq!(again.id(), first.id());
    assert_eq!(again.hook.body, first.hook.body);
    assert_eq!(
        statuses_until(&mut rx, &again, "offline").await,
        ["busy", "offline"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_mid_delivery_loses_no_event_and_keeps_their_order() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut pg = Postgres::start();
    let c = Cluster::start(1, pg.fresh_database());
    let acc = account(&c.api(0), "acme").await;
    let mut rx = Receiver::start().await;
    status_webhook(&c.api(0), &acc, &rx.url).await;
    rx.script([Answer::Hang]);
    let s = owner_on(&c.api(0), &acc, "phone").await;
    assert_eq!(c.api(0).set_status(&s, "online").await.status, 200);
    assert_eq!(c.api(0).set_status(&s, "busy").await.status, 200);
    let first = rx.next().await;
    // PostgreSQL goes away while the attempt hangs: its outcome cannot be kept.
    pg.stop();
    rx.release();
    pg.start_again();
    eventually("status changes work again", DEADLINE, || async {
        c.api(0).set_status(&s, "offline").await.status == 200
    })
    .await;
    let again = rx.next().await;
    assert_eq!(again.id(), first.id(), "the unanswered event first");
    assert_eq!(
        statuses_until(&mut rx, &again, "offline").await,
        ["busy", "offline"]
    );
}

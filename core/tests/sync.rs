//! The engine against the real presence server, in-process on 127.0.0.1:0: devices in sync,
//! changes made while the server is down, clock skew, superseded intents, logout, sessions
//! ended elsewhere, and pushes through the real webhook provider.

use presence_test_support as common;

use std::time::Duration;

use common::webhook::WebhookReceiver;
use common::{DEADLINE, TestServer, device, device_with, wait_until};
use presence_core::{
    AgentStatus, ClientError, Connection, Lifecycle, PresenceClient, PushProvider, SessionState,
};

fn confirmed(s: &presence_core::ClientSnapshot, status: AgentStatus) -> bool {
    s.status
        .as_ref()
        .is_some_and(|st| st.confirmed == status && st.current == status && !st.pending)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_of_one_agent_stay_in_sync() {
    let server = TestServer::start().await;
    let acct = server.api().create_account_without_login("sync").await;
    let a = device(&server.url, &acct).await;
    let b = device(&server.url, &acct).await;
    assert_ne!(a.client.device_id(), b.client.device_id());
    wait_until(&a.client, "A connected", |s| {
        s.connection == Connection::Connected
    })
    .await;
    wait_until(&b.client, "B connected", |s| {
        s.connection == Connection::Connected
    })
    .await;

    a.client.set_status(AgentStatus::Busy).await.unwrap();
    wait_until(&b.client, "B sees busy", |s| {
        confirmed(s, AgentStatus::Busy)
    })
    .await;
    wait_until(&a.client, "A confirmed busy", |s| {
        confirmed(s, AgentStatus::Busy)
    })
    .await;

    b.client.set_status(AgentStatus::Online).await.unwrap();
    wait_until(&a.client, "A sees online", |s| {
        confirmed(s, AgentStatus::Online)
    })
    .await;
    let s = wait_until(&a.client, "A's chat box online", |s| {
        s.chatbox
            .as_ref()
            .is_some_and(|c| c.status == presence_core::ChatboxStatus::Online)
    })
    .await;
    assert_eq!(s.status.unwrap().version, 2);
    assert_eq!(server.api().widget(&acct).await["status"], "online");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_while_the_server_is_down_is_stored_and_delivered_when_it_returns() {
    let mut server = TestServer::start().await;
    let acct = server.api().create_account_without_login("down").await;
    let a = device(&server.url, &acct).await;
    wait_until(&a.client, "connected", |s| {
        s.connection == Connection::Connected
    })
    .await;
    server.stop().await;

    let t0 = std::time::Instant::now();
    a.client.set_status(AgentStatus::Busy).await.unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "set_status waited for the network"
    );
    let s = a.client.snapshot();
    let st = s.status.unwrap();
    assert_eq!(
        (st.current, st.confirmed, st.pending),
        (AgentStatus::Busy, AgentStatus::Offline, true)
    );
    assert_eq!(s.outbox.pending, 1);
    wait_until(&a.client, "offline", |s| {
        s.connection == Connection::Offline
    })
    .await;

    // The app is closed and opened again while the server is still down.
    let dir = a.dir;
    a.client.shutdown().await;
    drop(a.client);
    let client = PresenceClient::open(common::config(&server.url, dir.path()))
        .await
        .unwrap();
    assert_eq!(client.snapshot().outbox.pending, 1);
    assert_eq!(client.snapshot().status.unwrap().current, AgentStatus::Busy);

    server.restart().await;
    wait_until(&client, "delivered", |s| confirmed(s, AgentStatus::Busy)).await;
    let token = server.api().login_owner(&acct, "observer").await;
    let me = server.api().me(&token).await;
    assert_eq!(me["status"]["status"], "busy");
    assert_eq!(me["status"]["version"], 1, "applied exactly once");
}

/// Lets the server's clock move past the last intent, so two intents cannot tie.
async fn let_the_clock_move() {
    tokio::time::sleep(Duration::from_millis(25)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_clock_skewed_by_hours_still_orders_intents_correctly() {
    let server = TestServer::start().await;
    let acct = server.api().create_account_without_login("skew").await;
    let hours = 3 * 3_600_000;
    let fast = device_with(&server.url, &acct, |c| c.overrides.clock_skew_ms = hours).await;
    let slow = device_with(&server.url, &acct, |c| c.overrides.clock_skew_ms = -hours).await;

    // 1. The fast device (clock 3 h ahead) chooses online offline; later the slow one chooses
    //    busy. Busy is the later intent and must win, although the fast device's own clock
    //    would stamp its choice hours in the future.
    fast.client.set_network_available(false).await;
    fast.client.set_status(AgentStatus::Online).await.unwrap();
    let_the_clock_move().await;
    slow.client.set_status(AgentStatus::Busy).await.unwrap();
    wait_until(&slow.client, "busy confirmed", |s| {
        confirmed(s, AgentStatus::Busy)
    })
    .await;
    fast.client.set_network_available(true).await;
    wait_until(&fast.client, "fast adopts busy", |s| {
        confirmed(s, AgentStatus::Busy)
    })
    .await;
    let token = server.api().login_owner(&acct, "observer").await;
    assert_eq!(server.api().me(&token).await["status"]["status"], "busy");

    // 2. The fast device chooses offline (delivered); later the slow device (clock 3 h
    //    behind) chooses online while offline. Online is later and must win when delivered,
    //    although the slow clock would stamp it hours in the past.
    fast.client.set_status(AgentStatus::Offline).await.unwrap();
    wait_until(&fast.client, "offline confirmed", |s| {
        confirmed(s, AgentStatus::Offline)
    })
    .await;
    slow.client.set_network_available(false).await;
    let_the_clock_move().await;
    slow.client.set_status(AgentStatus::Online).await.unwrap();
    slow.client.set_network_available(true).await;
    wait_until(&slow.client, "slow's online applied", |s| {
        confirmed(s, AgentStatus::Online)
    })
    .await;
    wait_until(&fast.client, "fast sees online", |s| {
        confirmed(s, AgentStatus::Online)
    })
    .await;
    assert_eq!(server.api().me(&token).await["status"]["status"], "online");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_superseded_change_is_adopted_not_wedged() {
    let server = TestServer::start().await;
    let acct = server
        .api()
        .create_account_without_login("superseded")
        .await;
    let a = device(&server.url, &acct).await;
    let b = device(&server.url, &acct).await;
    a.client.set_network_available(false).await;
    a.client.set_status(AgentStatus::Online).await.unwrap();
    let_the_clock_move().await;
    b.client.set_status(AgentStatus::Busy).await.unwrap();
    wait_until(&b.client, "busy confirmed", |s| {
        confirmed(s, AgentStatus::Busy)
    })
    .await;

    a.client.set_network_available(true).await;
    let s = wait_until(&a.client, "A adopts busy", |s| {
        confirmed(s, AgentStatus::Busy)
    })
    .await;
    assert_eq!(s.outbox.pending, 0);
    assert!(s.outbox.wedged.is_empty(), "superseded is not wedged");
    assert!(
        s.last_error.is_none(),
        "superseded is not an error: {:?}",
        s.last_error
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_ends_the_session_on_the_server_at_once() {
    let server = TestServer::start().await;
    let acct = server.api().create_account_without_login("logout").await;
    let a = device(&server.url, &acct).await;
    let b = device(&server.url, &acct).await;
    a.client.set_status(AgentStatus::Online).await.unwrap();
    wait_until(&b.client, "B sees online", |s| {
        confirmed(s, AgentStatus::Online)
    })
    .await;
    // B leaves: A still makes the agent available.
    b.client.logout().await.unwrap();
    assert_eq!(b.client.snapshot().session.state, SessionState::LoggedOut);
    assert_eq!(
        b.client.snapshot().outbox.pending,
        0,
        "told the server, nothing queued"
    );
    assert_eq!(server.api().widget(&acct).await["status"], "online");
    // A leaves: the widget is offline the moment logout returns.
    a.client.logout().await.unwrap();
    let s = a.client.snapshot();
    assert_eq!(s.session.state, SessionState::LoggedOut);
    assert!(s.status.is_none() && s.chatbox.is_none() && s.lease_until.is_none());
    let w = server.api().widget(&acct).await;
    assert_eq!(w["status"], "offline", "{w}");
    // Logging out twice is fine.
    a.client.logout().await.unwrap();
    // And a logged-out device cannot change the status.
    let e = a.client.set_status(AgentStatus::Busy).await.unwrap_err();
    assert!(matches!(e, ClientError::Unauthorized { .. }), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_while_the_server_is_down_is_delivered_when_it_returns() {
    let mut server = TestServer::start().await;
    let acct = server.api().create_account_without_login("lateout").await;
    let a = device(&server.url, &acct).await;
    a.client.set_status(AgentStatus::Online).await.unwrap();
    wait_until(&a.client, "online", |s| confirmed(s, AgentStatus::Online)).await;
    let session_id = a.client.snapshot().session.session_id.unwrap();
    server.stop().await;

    a.client.logout().await.unwrap();
    let s = a.client.snapshot();
    assert_eq!(s.session.state, SessionState::LoggedOut);
    assert_eq!(s.outbox.pending, 1, "end_session queued");

    server.restart().await;
    wait_until(&a.client, "end_session delivered", |s| {
        s.outbox.pending == 0
    })
    .await;
    let token = server.api().login_owner(&acct, "observer").await;
    let me = server.api().me(&token).await;
    let ids: Vec<&str> = me["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session_id"].as_str().unwrap())
        .collect();
    assert!(!ids.contains(&session_id.as_str()), "{ids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_replaced_elsewhere_is_surfaced_as_expired_and_a_new_login_recovers() {
    let server = TestServer::start().await;
    let acct = server.api().create_account_without_login("replaced").await;
    let a = device(&server.url, &acct).await;
    wait_until(&a.client, "connected", |s| {
        s.connection == Connection::Connected
    })
    .await;
    // Someone logs in with this device's id: the server replaces the session.
    server.api().login_owner(&acct, a.client.device_id()).await;
    let s = wait_until(&a.client, "expired", |s| {
        s.session.state == SessionState::Expired
    })
    .await;
    assert_eq!(s.last_error.unwrap().code, "session_expired");
    assert_eq!(s.connection, Connection::Offline);

    // Changes made meanwhile are kept and go out after logging in again.
    a.client.set_status(AgentStatus::Busy).await.unwrap();
    assert_eq!(a.client.snapshot().outbox.pending, 1);
    let e = a.client.refresh().await.unwrap_err();
    assert!(matches!(e, ClientError::SessionExpired { .. }), "{e:?}");
    a.client
        .login(&acct.slug, &acct.email, &acct.password)
        .await
        .unwrap();
    let s = wait_until(&a.client, "delivered", |s| confirmed(s, AgentStatus::Busy)).await;
    assert_eq!(s.session.state, SessionState::Active);
    assert!(s.last_error.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_errors_are_typed() {
    let server = TestServer::start().await;
    let acct = server.api().create_account_without_login("errors").await;
    let dir = tempfile::tempdir().unwrap();
    let client = PresenceClient::open(common::config(&server.url, dir.path()))
        .await
        .unwrap();
    let e = client
        .login(&acct.slug, &acct.email, "wrong password")
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Unauthorized { .. }), "{e:?}");
    let e = client
        .login("no-such-account", &acct.email, "x")
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Unauthorized { .. }), "{e:?}");
    assert_eq!(client.snapshot().session.state, SessionState::LoggedOut);

    // Nothing listens on this port.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let client = PresenceClient::open(common::config(&format!("http://{dead}"), dir.path()))
        .await
        .unwrap();
    let e = client
        .login(&acct.slug, &acct.email, &acct.password)
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Network { .. }), "{e:?}");

    // No server configured at all.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config("http://unused", dir.path());
    cfg.server_url = None;
    let client = PresenceClient::open(cfg).await.unwrap();
    let e = client.login("a", "b", "c").await.unwrap_err();
    assert!(matches!(e, ClientError::InvalidInput { .. }), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_session_is_restored_on_open_with_the_same_device_id() {
    let server = TestServer::start().await;
    let acct = server.api().create_account_without_login("restore").await;
    let a = device(&server.url, &acct).await;
    a.client.set_status(AgentStatus::Busy).await.unwrap();
    wait_until(&a.client, "busy", |s| confirmed(s, AgentStatus::Busy)).await;
    let before = a.client.snapshot();
    let id = a.client.device_id().to_owned();
    a.client.shutdown().await;

    // Opened without a URL: the one stored at login is used.
    let mut cfg = common::config("http://unused", a.dir.path());
    cfg.server_url = None;
    let client = PresenceClient::open(cfg).await.unwrap();
    assert_eq!(client.device_id(), id);
    let s = client.snapshot();
    assert_eq!(s.session, before.session);
    assert_eq!(s.status.unwrap().confirmed, AgentStatus::Busy);
    wait_until(&client, "connected again", |s| {
        s.connection == Connection::Connected
    })
    .await;
    let s = wait_until(&client, "a fresh lease", |s| s.lease_until.is_some()).await;
    assert_eq!(s.session.state, SessionState::Active);
}

/// A server with short leases, so renew pushes come within seconds.
async fn push_server() -> TestServer {
    TestServer::with(|c| {
        c.defaults.active_interval_ms = 500;
        c.defaults.active_ttl_ms = 2_000;
        c.defaults.background_ttl_ms = 3_000;
        c.defaults.renew_margin_ms = 1_500;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renew_push_from_the_server_leads_to_a_background_heartbeat() {
    let server = push_server().await;
    let acct = server.api().create_account_without_login("renew").await;
    let mut hook = WebhookReceiver::start().await;
    let a = device(&server.url, &acct).await;
    a.client
        .register_push(PushProvider::Webhook, &hook.url, None)
        .await
        .unwrap();
    wait_until(&a.client, "push registered", |s| s.outbox.pending == 0).await;
    a.client.set_lifecycle(Lifecycle::Background).await;
    wait_until(&a.client, "background, no stream", |s| {
        s.lifecycle == Lifecycle::Background && s.connection == Connection::Connected
    })
    .await;

    let payload = hook.next_body_of("renew").await;
    let ending: i64 = serde_json::from_str::<serde_json::Value>(&payload).unwrap()["lease_until"]
        .as_i64()
        .unwrap();
    a.client.handle_push(&payload).await.unwrap();
    // Answered with a heartbeat before `handle_push` returned: the lease the push warned
    // about is extended. (The exact count of heartbeats is pinned in paused.rs; here the
    // engine's own schedule runs too.)
    let after = a.client.snapshot().lease_until.unwrap();
    assert!(after > ending, "lease ending {ending}, now {after}");
    let token = server.api().login_owner(&acct, "observer").await;
    let me = server.api().me(&token).await;
    let mine = me["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["device"]["id"] == a.client.device_id())
        .unwrap()
        .clone();
    assert_eq!(mine["mode"], "background", "{mine}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_push_reaches_a_background_device_and_old_versions_are_ignored() {
    let server = push_server().await;
    let acct = server
        .api()
        .create_account_without_login("statuspush")
        .await;
    let mut hook = WebhookReceiver::start().await;
    let a = device(&server.url, &acct).await;
    a.client
        .register_push(PushProvider::Webhook, &hook.url, None)
        .await
        .unwrap();
    a.client.set_lifecycle(Lifecycle::Background).await;
    wait_until(&a.client, "push registered", |s| s.outbox.pending == 0).await;
    // The stream is closed once the server sees it gone; only then do status pushes flow.
    let token = server.api().login_owner(&acct, "observer").await;
    common::eventually("A's stream closed on the server", DEADLINE, || {
        let server = &server;
        let token = token.clone();
        let id = a.client.device_id().to_owned();
        async move {
            let me = server.api().me(&token).await;
            me["sessions"].as_array().unwrap().iter().any(|s| {
                s["device"]["id"] == id.as_str()
                    && s["connected"] == false
                    && s["mode"] == "background"
            })
        }
    })
    .await;

    let r = server
        .api()
        .put(
            "/v1/me/status",
            Some(&token),
            serde_json::json!({"status": "busy", "op_id": uuid_like(1), "intent_at": null}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let payload = hook.next_body_of("status").await;
    a.client.handle_push(&payload).await.unwrap();
    let st = a.client.snapshot().status.unwrap();
    assert_eq!((st.confirmed, st.version), (AgentStatus::Busy, 1));

    // A newer change, then the older push delivered late (push services reorder).
    let r = server
        .api()
        .put(
            "/v1/me/status",
            Some(&token),
            serde_json::json!({"status": "online", "op_id": uuid_like(2), "intent_at": null}),
        )
        .await;
    assert_eq!(r.status, 200);
    let newer = hook.next_body_of("status").await;
    a.client.handle_push(&newer).await.unwrap();
    a.client.handle_push(&payload).await.unwrap();
    let st = a.client.snapshot().status.unwrap();
    assert_eq!((st.confirmed, st.version), (AgentStatus::Online, 2));
}

fn uuid_like(n: u8) -> String {
    format!("0190a000-0000-7000-8000-0000000000{n:02}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_stored_by_another_process_on_the_same_data_dir_is_delivered_by_the_running_one() {
    // `presence watch` runs while `presence status busy` (another process, here another
    // engine on the same data dir) stores a change without getting it out.
    let server = TestServer::start().await;
    let acct = server.api().create_account_without_login("shared").await;
    let running = device(&server.url, &acct).await;
    wait_until(&running.client, "connected", |s| {
        s.connection == Connection::Connected
    })
    .await;
    let other = PresenceClient::open(common::config(&server.url, running.dir.path()))
        .await
        .unwrap();
    other.set_network_available(false).await;
    other.set_status(AgentStatus::Busy).await.unwrap();
    other.shutdown().await;

    wait_until(&running.client, "the running engine delivers it", |s| {
        confirmed(s, AgentStatus::Busy) && s.outbox.pending == 0
    })
    .await;
    let token = server.api().login_owner(&acct, "observer").await;
    assert_eq!(server.api().me(&token).await["status"]["status"], "busy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_sees_every_settled_state_off_the_engine_task() {
    let server = TestServer::start().await;
    let acct = server.api().create_account_without_login("listener").await;
    let a = device(&server.url, &acct).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    a.client.set_listener(Some(std::sync::Arc::new(
        move |s: presence_core::ClientSnapshot| {
            let _ = tx.send(s);
        },
    )));
    // The current snapshot comes first.
    let first = tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.session.state, SessionState::Active);
    a.client.set_status(AgentStatus::Busy).await.unwrap();
    let seen = tokio::time::timeout(DEADLINE, async {
        while let Some(s) = rx.recv().await {
            if confirmed(&s, AgentStatus::Busy) {
                return s;
            }
        }
        panic!("listener channel closed");
    })
    .await
    .expect("the listener saw the confirmed change");
    assert_eq!(seen.outbox.pending, 0);

    // Removed: no more calls (the sender is dropped with the listener).
    a.client.set_listener(None);
    let closed = tokio::time::timeout(DEADLINE, async { while rx.recv().await.is_some() {} }).await;
    assert!(closed.is_ok(), "the listener was not dropped");
}

//! Engine behaviour pinned under tokio's paused clock, against the in-memory fake server:
//! timings (heartbeat cadence, backoff, Retry-After, no retries without network) and the
//! answers that are hard to provoke from a real server (422, 429, 401, garbage bodies).

use presence_test_support as common;

use std::time::Duration;

use common::fake::{FakeServer, error, is};
use presence_core::transport::{Method, Response, TransportError, TransportErrorKind};
use presence_core::{
    AgentStatus, ClientConfig, ClientError, Connection, DeviceInfo, Lifecycle, OpKind, Overrides,
    Platform, PresenceClient, SessionState,
};
use serde_json::json;
use tokio::time::Instant;

const STATUS: &str = "/v1/me/status";
const HEARTBEAT: &str = "/v1/session/heartbeat";

fn overrides(fake: &FakeServer) -> Overrides {
    Overrides {
        request_timeout: Duration::from_secs(10),
        backoff_base: Duration::from_millis(100),
        backoff_cap: Duration::from_millis(1600),
        sse_idle_timeout: Duration::from_secs(45),
        // The cross-process check is pinned elsewhere; here it would only add wakeups.
        store_poll_interval: None,
        transport: Some(fake.transport()),
        rng_seed: Some(42),
        ..Overrides::default()
    }
}

async fn open(fake: &FakeServer, dir: &std::path::Path) -> PresenceClient {
    open_with(dir, overrides(fake)).await
}

async fn open_with(dir: &std::path::Path, overrides: Overrides) -> PresenceClient {
    PresenceClient::open(ClientConfig {
        server_url: Some("http://fake.invalid".into()),
        data_dir: dir.to_path_buf(),
        device: DeviceInfo {
            platform: Platform::Android,
            name: "fake phone".into(),
            app_version: "1".into(),
        },
        overrides,
    })
    .await
    .unwrap()
}

async fn logged_in(fake: &FakeServer) -> (PresenceClient, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let client = open(fake, dir.path()).await;
    client
        .login("acme", "ann@example.com", "pw-secret-1")
        .await
        .unwrap();
    (client, dir)
}

/// Paused time: a day of virtual time passes in an instant, so "within a day" means "never
/// without a reason".
const A_DAY: Duration = Duration::from_secs(86_400);

async fn wait(
    client: &PresenceClient,
    what: &str,
    pred: impl FnMut(&presence_core::ClientSnapshot) -> bool,
) -> presence_core::ClientSnapshot {
    client.wait_for(A_DAY, pred).await.unwrap_or_else(|| {
        panic!(
            "never saw {what}; last snapshot {}",
            serde_json::to_string_pretty(&client.snapshot()).unwrap()
        )
    })
}

fn refused() -> Result<Response, TransportError> {
    Err(TransportError::new(
        TransportErrorKind::Connect,
        "connection refused",
    ))
}

#[tokio::test(start_paused = true)]
async fn nothing_is_retried_while_the_network_is_unavailable() {
    let fake = FakeServer::new();
    let (client, _dir) = logged_in(&fake).await;
    fake.intercept(|r| is(r, Method::Put, STATUS).then(refused));
    client.set_status(AgentStatus::Busy).await.unwrap();
    fake.wait_requests(Method::Put, STATUS, 1).await;

    client.set_network_available(false).await;
    wait(&client, "no_network", |s| {
        s.connection == Connection::NoNetwork
    })
    .await;
    let before = fake.total();
    tokio::time::sleep(A_DAY).await;
    assert_eq!(
        fake.total(),
        before,
        "requests were made during a day without network"
    );
    let s = client.snapshot();
    assert_eq!(s.outbox.pending, 1);
    assert_eq!(s.status.unwrap().current, AgentStatus::Busy);

    // The network is back and so is the server: delivered at once, no backoff wait.
    fake.clear_intercepts();
    let back = Instant::now();
    client.set_network_available(true).await;
    wait(&client, "the change confirmed", |s| {
        s.status
            .as_ref()
            .is_some_and(|st| st.confirmed == AgentStatus::Busy && !st.pending)
    })
    .await;
    assert!(Instant::now() - back < Duration::from_millis(5));
}

#[tokio::test(start_paused = true)]
async fn heartbeat_cadence_follows_the_server_interval() {
    let fake = FakeServer::new();
    fake.set_interval(700, 2_100);
    let (client, _dir) = logged_in(&fake).await;
    fake.wait_requests(Method::Post, HEARTBEAT, 4).await;
    let t = fake.times(Method::Post, HEARTBEAT);
    for w in t.windows(2) {
        let gap = w[1] - w[0];
        assert!(
            gap >= Duration::from_millis(700) && gap <= Duration::from_millis(702),
            "gap {gap:?} at interval 700"
        );
    }

    // The server changes its mind: the next answer carries the new interval, and the gaps
    // after it follow.
    fake.set_interval(1_500, 4_500);
    fake.wait_requests(Method::Post, HEARTBEAT, 8).await;
    let t = fake.times(Method::Post, HEARTBEAT);
    for w in t[4..].windows(2) {
        let gap = w[1] - w[0];
        assert!(
            gap >= Duration::from_millis(1_500) && gap <= Duration::from_millis(1_502),
            "gap {gap:?} at interval 1500"
        );
    }
    let lease = client.snapshot().lease_until.unwrap();
    assert!(lease > fake.now_ms(), "lease_until {lease} is in the past");

    // Going to the background asks for the background lease at once.
    client.set_lifecycle(Lifecycle::Background).await;
    fake.wait_requests(Method::Post, HEARTBEAT, 9).await;
    let bodies = fake.bodies(Method::Post, HEARTBEAT);
    assert_eq!(bodies.last().unwrap(), &json!({"mode": "background"}));
    assert_eq!(bodies[0], json!({"mode": "active"}));
}

#[tokio::test(start_paused = true)]
async fn backoff_between_retries_stays_within_its_caps() {
    let fake = FakeServer::new();
    let (client, _dir) = logged_in(&fake).await;
    fake.intercept(|r| {
        is(r, Method::Put, STATUS).then(|| Ok(error(503, "internal", "overloaded")))
    });
    client.set_status(AgentStatus::Online).await.unwrap();
    fake.wait_requests(Method::Put, STATUS, 12).await;
    let t = fake.times(Method::Put, STATUS);
    let base = Duration::from_millis(100);
    let cap = Duration::from_millis(1600);
    let mut gaps = Vec::new();
    for (i, w) in t.windows(2).enumerate() {
        let gap = w[1] - w[0];
        let window = base.saturating_mul(1 << i.min(20)).min(cap);
        assert!(
            gap <= window + Duration::from_millis(1),
            "retry {i}: gap {gap:?} exceeds window {window:?}"
        );
        gaps.push(gap);
    }
    // Full jitter: not a fixed schedule.
    let distinct: std::collections::HashSet<_> = gaps.iter().collect();
    assert!(distinct.len() > 5, "gaps {gaps:?}");
    let s = client.snapshot();
    assert_eq!(s.outbox.pending, 1, "a 503 keeps the op");
    assert!(s.outbox.wedged.is_empty());
    assert_eq!(s.last_error.unwrap().code, "internal");

    fake.clear_intercepts();
    wait(&client, "delivery after the outage", |s| {
        s.outbox.pending == 0
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn retry_after_from_a_429_is_honoured() {
    let fake = FakeServer::new();
    let (client, _dir) = logged_in(&fake).await;
    let mut first = true;
    fake.intercept(move |r| {
        if is(r, Method::Put, STATUS) && std::mem::take(&mut first) {
            Some(Ok(
                error(429, "rate_limited", "slow down").with_header("Retry-After", "30")
            ))
        } else {
            None
        }
    });
    client.set_status(AgentStatus::Busy).await.unwrap();
    wait(&client, "delivery", |s| s.outbox.pending == 0).await;
    let t = fake.times(Method::Put, STATUS);
    assert_eq!(t.len(), 2);
    let gap = t[1] - t[0];
    assert!(
        gap >= Duration::from_secs(30) && gap < Duration::from_secs(31),
        "retried after {gap:?}, Retry-After said 30 s"
    );
}

#[tokio::test(start_paused = true)]
async fn a_422_wedges_the_op_until_the_user_retries_or_discards_it() {
    let fake = FakeServer::new();
    let (client, _dir) = logged_in(&fake).await;
    let reject = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let r2 = reject.clone();
    fake.intercept(move |r| {
        (is(r, Method::Put, STATUS) && r2.load(std::sync::atomic::Ordering::SeqCst))
            .then(|| Ok(error(422, "invalid_field", "status")))
    });
    client.set_status(AgentStatus::Busy).await.unwrap();
    let s = wait(&client, "a wedged op", |s| !s.outbox.wedged.is_empty()).await;
    let wedged = s.outbox.wedged[0].clone();
    assert_eq!(wedged.kind, OpKind::SetStatus);
    assert_eq!(wedged.code, "invalid_field");
    assert_eq!(wedged.detail, "status");
    assert_eq!(s.outbox.pending, 0, "a wedged op is not pending");
    let st = s.status.unwrap();
    assert_eq!(
        st.current,
        AgentStatus::Offline,
        "the refused change is not shown as current"
    );
    assert!(!st.pending);
    assert_eq!(s.last_error.unwrap().code, "invalid_field");

    // A wedged op is never retried on its own (an hour of heartbeats and reconnects later).
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(fake.count(Method::Put, STATUS), 1);

    // Unknown ids are a typed error.
    let e = client.retry_wedged("no-such-op").await.unwrap_err();
    assert!(matches!(e, ClientError::InvalidInput { .. }), "{e:?}");

    // Retried after the server is fixed: delivered.
    reject.store(false, std::sync::atomic::Ordering::SeqCst);
    client.retry_wedged(&wedged.op_id).await.unwrap();
    let s = wait(&client, "the retried op delivered", |s| {
        s.outbox.wedged.is_empty() && s.outbox.pending == 0
    })
    .await;
    assert_eq!(s.status.unwrap().confirmed, AgentStatus::Busy);
    let sent = fake.bodies(Method::Put, STATUS);
    assert_eq!(
        sent[0]["op_id"], sent[1]["op_id"],
        "a retry keeps its op_id"
    );

    // Discarding removes it for good.
    reject.store(true, std::sync::atomic::Ordering::SeqCst);
    client.set_status(AgentStatus::Online).await.unwrap();
    let s = wait(&client, "wedged again", |s| !s.outbox.wedged.is_empty()).await;
    client
        .discard_wedged(&s.outbox.wedged[0].op_id)
        .await
        .unwrap();
    let s = client.snapshot();
    assert!(s.outbox.wedged.is_empty());
    assert_eq!(s.status.unwrap().current, AgentStatus::Busy);
}

#[tokio::test(start_paused = true)]
async fn a_superseded_op_is_adopted_not_wedged() {
    let fake = FakeServer::new();
    let (client, _dir) = logged_in(&fake).await;
    fake.intercept(|r| {
        is(r, Method::Put, STATUS).then(|| {
            Ok(Response::json(
                200,
                &json!({"applied": false, "status": {"status": "online", "version": 9,
                        "intent_at": common::fake::EPOCH_MS + 5, "changed_by_device": "other"}}),
            ))
        })
    });
    client.set_status(AgentStatus::Busy).await.unwrap();
    let s = wait(&client, "the server's status adopted", |s| {
        s.outbox.pending == 0
    })
    .await;
    let st = s.status.unwrap();
    assert_eq!(
        (st.current, st.confirmed, st.version, st.pending),
        (AgentStatus::Online, AgentStatus::Online, 9, false)
    );
    assert!(s.outbox.wedged.is_empty());
    assert!(s.last_error.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_thousand_offline_toggles_cost_one_request() {
    let fake = FakeServer::new();
    let (client, _dir) = logged_in(&fake).await;
    client.set_network_available(false).await;
    for i in 0..1000 {
        let s = if i % 2 == 0 {
            AgentStatus::Busy
        } else {
            AgentStatus::Online
        };
        client.set_status(s).await.unwrap();
    }
    assert_eq!(client.snapshot().outbox.pending, 1);
    client.set_network_available(true).await;
    let s = wait(&client, "delivery", |s| s.outbox.pending == 0).await;
    assert_eq!(fake.count(Method::Put, STATUS), 1);
    assert_eq!(fake.bodies(Method::Put, STATUS)[0]["status"], "online");
    assert_eq!(s.status.unwrap().confirmed, AgentStatus::Online);
}

#[tokio::test(start_paused = true)]
async fn a_401_expires_the_session_and_keeps_the_change_for_the_next_login() {
    let fake = FakeServer::new();
    let (client, _dir) = logged_in(&fake).await;
    let mut once = true;
    fake.intercept(move |r| {
        (is(r, Method::Put, STATUS) && std::mem::take(&mut once))
            .then(|| Ok(error(401, "session_expired", "ended")))
    });
    client.set_status(AgentStatus::Busy).await.unwrap();
    let s = wait(&client, "an expired session", |s| {
        s.session.state == SessionState::Expired
    })
    .await;
    assert_eq!(s.outbox.pending, 1, "the change is kept");
    assert_eq!(s.last_error.unwrap().code, "session_expired");
    assert_eq!(s.connection, Connection::Offline);
    // Nothing is sent with a dead token.
    let n = fake.count(Method::Put, STATUS);
    tokio::time::sleep(A_DAY).await;
    assert_eq!(fake.count(Method::Put, STATUS), n);

    client
        .login("acme", "ann@example.com", "pw-secret-1")
        .await
        .unwrap();
    let s = wait(&client, "delivery after logging in again", |s| {
        s.outbox.pending == 0
    })
    .await;
    assert_eq!(s.session.state, SessionState::Active);
    assert_eq!(s.status.unwrap().confirmed, AgentStatus::Busy);
    assert!(s.last_error.is_none());
}

#[tokio::test(start_paused = true)]
async fn bad_responses_get_typed_errors() {
    let fake = FakeServer::new();
    let dir = tempfile::tempdir().unwrap();
    let client = open(&fake, dir.path()).await;

    // A login answer that is not the protocol's shape.
    let mut garbage = true;
    fake.intercept(move |r| {
        (is(r, Method::Post, "/v1/login") && std::mem::take(&mut garbage))
            .then(|| Ok(Response::bytes(200, "{\"token\": 5}")))
    });
    let e = client.login("acme", "a", "b").await.unwrap_err();
    assert!(matches!(e, ClientError::Server { .. }), "{e:?}");
    assert!(e.detail().contains("/v1/login"), "{e}");
    assert_eq!(client.snapshot().session.state, SessionState::LoggedOut);

    // 5xx, 401 and transport failures each map to their variant.
    fake.clear_intercepts();
    let mut answers = vec![
        Ok(error(500, "internal", "boom")),
        Ok(error(401, "invalid_credentials", "wrong password")),
        Ok(error(422, "invalid_field", "device.platform")),
        refused(),
    ];
    answers.reverse();
    let answers = std::sync::Arc::new(std::sync::Mutex::new(answers));
    let a2 = answers.clone();
    fake.intercept(move |r| {
        is(r, Method::Post, "/v1/login")
            .then(|| a2.lock().unwrap().pop())
            .flatten()
    });
    let kinds: Vec<&str> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(client.login("acme", "a", "b").await.unwrap_err().kind());
        }
        v
    };
    assert_eq!(
        kinds,
        vec!["server", "unauthorized", "invalid_input", "network"]
    );

    // Logged in; a garbled status answer is transient (the op may have been applied; the
    // resend with the same op_id is safe), and is reported.
    client.login("acme", "a", "b").await.unwrap();
    let mut garbled = true;
    fake.intercept(move |r| {
        (is(r, Method::Put, STATUS) && std::mem::take(&mut garbled))
            .then(|| Ok(Response::bytes(200, "<html>proxy error</html>")))
    });
    client.set_status(AgentStatus::Busy).await.unwrap();
    wait(&client, "the bad answer reported", |s| {
        s.last_error
            .as_ref()
            .is_some_and(|e| e.code == "bad_response")
    })
    .await;
    let s = wait(&client, "delivery on retry", |s| s.outbox.pending == 0).await;
    assert_eq!(s.status.unwrap().confirmed, AgentStatus::Busy);

    // A 404 that is not the presence server speaking (no protocol error body: a proxy, a
    // wrong URL) does not wedge the change: it is retried like a network failure.
    let mut strange = true;
    fake.intercept(move |r| {
        (is(r, Method::Put, STATUS) && std::mem::take(&mut strange))
            .then(|| Ok(Response::bytes(404, "<html>Not Found</html>")))
    });
    client.set_status(AgentStatus::Online).await.unwrap();
    wait(&client, "the strange answer reported", |s| {
        s.last_error.as_ref().is_some_and(|e| e.code == "http_404")
    })
    .await;
    let s = wait(&client, "delivery on retry", |s| s.outbox.pending == 0).await;
    assert!(s.outbox.wedged.is_empty());
    assert_eq!(s.status.unwrap().confirmed, AgentStatus::Online);

    // A garbled event on the stream is reported and changes nothing.
    wait(&client, "connected", |s| {
        s.connection == Connection::Connected
    })
    .await;
    let before = client.snapshot().status;
    fake.push_event("status", &json!({"status": "sleeping"}));
    let s = wait(&client, "the bad event reported", |s| {
        s.last_error
            .as_ref()
            .is_some_and(|e| e.code == "bad_response")
    })
    .await;
    assert_eq!(s.status, before);
}

#[tokio::test(start_paused = true)]
async fn the_event_stream_reconnects_and_refreshes_me_after_each_reconnect() {
    let fake = FakeServer::new();
    let (client, _dir) = logged_in(&fake).await;
    wait(&client, "connected", |s| {
        s.connection == Connection::Connected
    })
    .await;
    fake.wait_requests(Method::Get, "/v1/me", 1).await;
    for round in 2..=4 {
        fake.close_streams();
        fake.wait_requests(Method::Get, "/v1/me/events", round)
            .await;
        fake.wait_requests(Method::Get, "/v1/me", round).await;
        wait(&client, "reconnected", |s| {
            s.connection == Connection::Connected
        })
        .await;
    }

    // Events on the stream reach the snapshot; older versions do not regress it.
    fake.push_event(
        "status",
        &json!({"status": "busy", "version": 50, "intent_at": 1, "changed_by_device": "d2"}),
    );
    wait(&client, "the status event", |s| {
        s.status
            .as_ref()
            .is_some_and(|st| st.confirmed == AgentStatus::Busy && st.version == 50)
    })
    .await;
    fake.push_event(
        "status",
        &json!({"status": "online", "version": 49, "intent_at": 1, "changed_by_device": "d2"}),
    );
    fake.push_event("chatbox", &FakeServer::chatbox_view(77));
    let s = wait(&client, "the chatbox event", |s| {
        s.chatbox.as_ref().is_some_and(|c| c.version == 77)
    })
    .await;
    assert_eq!(
        s.status.unwrap().confirmed,
        AgentStatus::Busy,
        "an older version was applied"
    );

    // A stream that stays silent past the idle timeout is replaced.
    let streams = fake.count(Method::Get, "/v1/me/events");
    tokio::time::sleep(Duration::from_secs(46)).await;
    fake.wait_requests(Method::Get, "/v1/me/events", streams + 1)
        .await;

    // The server ending the session over the stream expires it.
    fake.push_event("session_ended", &json!({"reason": "replaced"}));
    let s = wait(&client, "expired", |s| {
        s.session.state == SessionState::Expired
    })
    .await;
    assert!(s.last_error.unwrap().detail.contains("replaced"));
}

#[tokio::test(start_paused = true)]
async fn a_renew_push_is_answered_with_one_background_heartbeat() {
    let fake = FakeServer::new();
    let (client, _dir) = logged_in(&fake).await;
    // One heartbeat right after login, one for the switch to the background.
    client.set_lifecycle(Lifecycle::Background).await;
    fake.wait_requests(Method::Post, HEARTBEAT, 2).await;
    let before = fake.count(Method::Post, HEARTBEAT);
    let t0 = Instant::now();
    client
        .handle_push(
            &json!({"v": 1, "type": "renew", "session_id": "sess-1",
                             "lease_until": fake.now_ms() + 1000})
            .to_string(),
        )
        .await
        .unwrap();
    assert_eq!(
        Instant::now(),
        t0,
        "answered at once, not at the next scheduled heartbeat"
    );
    assert_eq!(fake.count(Method::Post, HEARTBEAT), before + 1);
    assert_eq!(
        fake.bodies(Method::Post, HEARTBEAT).last().unwrap(),
        &json!({"mode": "background"})
    );
}

#[tokio::test(start_paused = true)]
async fn a_push_registration_that_lands_in_the_background_asks_for_the_background_lease_at_once() {
    let fake = FakeServer::new();
    let (client, _dir) = logged_in(&fake).await;
    // In the background with no push yet: the switch's heartbeat gets the active lease.
    client.set_lifecycle(Lifecycle::Background).await;
    fake.wait_requests(Method::Post, HEARTBEAT, 2).await;
    // The push token arrives late, while the app is in the background.
    client
        .register_push(
            presence_core::PushProvider::Webhook,
            "http://127.0.0.1:9/push",
            None,
        )
        .await
        .unwrap();
    fake.wait_requests(Method::Put, "/v1/session/push", 1).await;
    let t0 = Instant::now();
    fake.wait_requests(Method::Post, HEARTBEAT, 3).await;
    assert_eq!(
        Instant::now(),
        t0,
        "a background heartbeat right after the registration, not at the next scheduled one"
    );
    assert_eq!(
        fake.bodies(Method::Post, HEARTBEAT).last().unwrap(),
        &json!({"mode": "background"})
    );
    // In the foreground, a registration changes nothing about heartbeats.
    client.set_lifecycle(Lifecycle::Active).await;
    fake.wait_requests(Method::Post, HEARTBEAT, 4).await;
    let before = fake.count(Method::Post, HEARTBEAT);
    client
        .register_push(
            presence_core::PushProvider::Webhook,
            "http://127.0.0.1:9/push2",
            None,
        )
        .await
        .unwrap();
    fake.wait_requests(Method::Put, "/v1/session/push", 2).await;
    assert_eq!(fake.count(Method::Post, HEARTBEAT), before);
}

#[tokio::test(start_paused = true)]
async fn status_pushes_apply_only_newer_versions_and_bad_pushes_change_nothing() {
    let fake = FakeServer::new();
    let (client, _dir) = logged_in(&fake).await;
    client.set_lifecycle(Lifecycle::Background).await;
    let push = |version: i64, status: &str| {
        json!({"v": 1, "type": "status", "session_id": "sess-1",
               "status": {"status": status, "version": version, "intent_at": 1,
                          "changed_by_device": "other"}})
        .to_string()
    };
    client.handle_push(&push(5, "busy")).await.unwrap();
    let st = client.snapshot().status.unwrap();
    assert_eq!((st.confirmed, st.version), (AgentStatus::Busy, 5));

    // An old version arriving late is ignored.
    client.handle_push(&push(4, "online")).await.unwrap();
    let st = client.snapshot().status.unwrap();
    assert_eq!((st.confirmed, st.version), (AgentStatus::Busy, 5));

    // A push for another session (an old login on this device) is ignored.
    let other = push(6, "online").replace("sess-1", "sess-old");
    client.handle_push(&other).await.unwrap();
    assert_eq!(client.snapshot().status.unwrap().version, 5);

    let before = client.snapshot();
    for bad in [
        "",
        "{",
        "[]",
        r#"{"v": 1}"#,
        r#"{"v": 2, "type": "status", "session_id": "sess-1"}"#,
        r#"{"v": 1, "type": "party", "session_id": "sess-1"}"#,
        r#"{"v": 1, "type": "status", "session_id": "sess-1", "status": {"status": "online"}}"#,
        r#"{"v": 1, "type": "renew", "session_id": "sess-1", "lease_until": "soon"}"#,
    ] {
        let e = client.handle_push(bad).await.unwrap_err();
        assert!(
            matches!(e, ClientError::InvalidInput { .. }),
            "{bad}: {e:?}"
        );
    }
    assert_eq!(client.snapshot(), before, "a bad push changed the state");

    client
        .handle_push(r#"{"v":1,"type":"session_ended","session_id":"sess-1","reason":"removed"}"#)
        .await
        .unwrap();
    assert_eq!(client.snapshot().session.state, SessionState::Expired);
}

#[tokio::test(start_paused = true)]
async fn logout_while_unreachable_clears_local_state_and_queues_end_session() {
    let fake = FakeServer::new();
    let (client, dir) = logged_in(&fake).await;
    fake.intercept(|r| is(r, Method::Delete, "/v1/session").then(refused));
    client.logout().await.unwrap();
    let s = client.snapshot();
    assert_eq!(s.session.state, SessionState::LoggedOut);
    assert!(s.status.is_none());
    assert_eq!(s.outbox.pending, 1, "end_session is queued");
    let sent = fake.count(Method::Delete, "/v1/session");
    assert_eq!(sent, 1, "the server was tried at once");

    // Survives a restart, and is delivered when the server answers.
    client.shutdown().await;
    let client = open(&fake, dir.path()).await;
    assert_eq!(client.snapshot().outbox.pending, 1);
    fake.clear_intercepts();
    wait(&client, "end_session delivered", |s| s.outbox.pending == 0).await;
    assert_eq!(fake.count(Method::Delete, "/v1/session"), sent + 1);
    assert_eq!(client.snapshot().session.state, SessionState::LoggedOut);
}

#[tokio::test(start_paused = true)]
async fn background_refresh_heartbeats_and_drains_the_outbox_within_its_deadline() {
    let fake = FakeServer::new();
    let (client, _dir) = logged_in(&fake).await;
    client.set_lifecycle(Lifecycle::Background).await;
    client.set_network_available(false).await;
    client.set_status(AgentStatus::Busy).await.unwrap();
    client.set_network_available(true).await;
    let hb = fake.count(Method::Post, HEARTBEAT);
    client
        .background_refresh(Duration::from_secs(25))
        .await
        .unwrap();
    assert!(fake.count(Method::Post, HEARTBEAT) > hb);
    assert_eq!(client.snapshot().outbox.pending, 0);

    // A server that never answers: the deadline bounds the call.
    fake.intercept(|r| {
        (r.method == Method::Post || r.method == Method::Put)
            .then(|| Ok(Response::stream(200, futures_util::stream::pending())))
    });
    client.set_status(AgentStatus::Online).await.unwrap();
    let t0 = Instant::now();
    let e = client
        .background_refresh(Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Network { .. }), "{e:?}");
    assert!(Instant::now() - t0 <= Duration::from_secs(5) + Duration::from_millis(5));
}

#[tokio::test(start_paused = true)]
async fn a_session_and_its_queued_change_survive_a_restart() {
    let fake = FakeServer::new();
    let (client, dir) = logged_in(&fake).await;
    let device_id = client.device_id().to_owned();
    client.set_network_available(false).await;
    client.set_status(AgentStatus::Busy).await.unwrap();
    client.shutdown().await;
    assert!(matches!(
        client.set_status(AgentStatus::Online).await,
        Err(ClientError::Internal { .. })
    ));

    let client = open(&fake, dir.path()).await;
    assert_eq!(client.device_id(), device_id);
    let s = client.snapshot();
    assert_eq!(s.session.state, SessionState::Active);
    assert_eq!(s.session.session_id.as_deref(), Some("sess-1"));
    assert_eq!(s.outbox.pending, 1);
    let s = wait(&client, "delivered after reopening", |s| {
        s.outbox.pending == 0
    })
    .await;
    assert_eq!(s.status.unwrap().confirmed, AgentStatus::Busy);
    assert_eq!(
        fake.count(Method::Post, "/v1/login"),
        1,
        "no new login needed"
    );
}

#[tokio::test(start_paused = true)]
async fn a_push_token_the_server_refuses_does_not_block_login() {
    let fake = FakeServer::new();
    let dir = tempfile::tempdir().unwrap();
    let client = open(&fake, dir.path()).await;
    client
        .register_push(
            presence_core::PushProvider::Webhook,
            "http://not-allowed.example/hook",
            None,
        )
        .await
        .unwrap();
    fake.intercept(|r| {
        (is(r, Method::Post, "/v1/login") && !r.body_json().unwrap()["push"].is_null())
            .then(|| Ok(error(422, "invalid_field", "push.token: host not allowed")))
    });
    client
        .login("acme", "ann@example.com", "pw-secret-1")
        .await
        .unwrap();
    assert_eq!(client.snapshot().session.state, SessionState::Active);
    let logins = fake.bodies(Method::Post, "/v1/login");
    assert_eq!(logins.len(), 2);
    assert_eq!(
        logins[0]["push"]["token"],
        "http://not-allowed.example/hook"
    );
    assert!(logins[1]["push"].is_null());
}

#[tokio::test(start_paused = true)]
async fn logout_delivers_the_changes_queued_ahead_of_it_before_returning() {
    let fake = FakeServer::new();
    let (client, _dir) = logged_in(&fake).await;
    // A change stuck in backoff (the server was briefly unreachable).
    let mut fail = true;
    fake.intercept(move |r| {
        (is(r, Method::Put, STATUS) && std::mem::take(&mut fail)).then(refused)
    });
    client.set_status(AgentStatus::Busy).await.unwrap();
    fake.wait_requests(Method::Put, STATUS, 1).await;
    wait(&client, "the failure noted", |s| s.last_error.is_some()).await;

    // Logging out retries the queue now: the change, then the end of the session, both
    // before `logout` returns (a CLI exits right after).
    client.logout().await.unwrap();
    assert_eq!(fake.count(Method::Put, STATUS), 2);
    assert_eq!(fake.count(Method::Delete, "/v1/session"), 1);
    assert_eq!(client.snapshot().outbox.pending, 0);
    let sent = fake.bodies(Method::Put, STATUS);
    assert_eq!(sent[1]["status"], "busy");
}

#[tokio::test(start_paused = true)]
async fn a_refused_stored_push_registration_does_not_lock_the_user_out() {
    let fake = FakeServer::new();
    let dir = tempfile::tempdir().unwrap();
    let client = open(&fake, dir.path()).await;
    client
        .register_push(
            presence_core::PushProvider::Webhook,
            "http://gone.invalid/p",
            None,
        )
        .await
        .unwrap();
    // The server refuses the push field (its host left the allow-list), by code only.
    fake.intercept(|req| {
        (is(req, Method::Post, "/v1/login")
            && req.body_json().is_some_and(|b| !b["push"].is_null()))
        .then(|| Ok(error(422, "invalid_field", "not allowed")))
    });
    client
        .login("acme", "ann@example.com", "pw-secret-1")
        .await
        .unwrap();
    let logins = fake.bodies(Method::Post, "/v1/login");
    assert_eq!(logins.len(), 2);
    assert!(logins[1]["push"].is_null(), "{}", logins[1]);
    assert_eq!(client.snapshot().session.state, SessionState::Active);
}

#[tokio::test(start_paused = true)]
async fn each_heartbeat_carries_the_idle_time_reported_plus_the_time_since() {
    let fake = FakeServer::new();
    fake.set_interval(1_000, 3_000);
    let (client, _dir) = logged_in(&fake).await;
    fake.wait_requests(Method::Post, HEARTBEAT, 1).await;
    // Not reported yet (a phone never reports): no idle_ms at all.
    assert_eq!(
        fake.bodies(Method::Post, HEARTBEAT)[0],
        json!({"mode": "active"})
    );

    let n = fake.count(Method::Post, HEARTBEAT);
    client.report_idle(Some(0));
    let reported = Instant::now();
    // The first report goes out at once; the next ones with the cadence.
    fake.wait_requests(Method::Post, HEARTBEAT, n + 3).await;
    assert!(fake.times(Method::Post, HEARTBEAT)[n] - reported < Duration::from_millis(5));
    let times = fake.times(Method::Post, HEARTBEAT);
    let bodies = fake.bodies(Method::Post, HEARTBEAT);
    for (at, body) in times[n..].iter().zip(&bodies[n..]) {
        let since = (*at - reported).as_millis() as i64;
        assert_eq!(body["idle_ms"], json!(since), "{body}");
    }
    assert!(bodies.last().unwrap()["idle_ms"].as_i64().unwrap() >= 2_000);

    // The user was already away for a minute when the app first noticed.
    client.report_idle(Some(60_000));
    let n = fake.count(Method::Post, HEARTBEAT);
    fake.wait_requests(Method::Post, HEARTBEAT, n + 1).await;
    let idle = fake.bodies(Method::Post, HEARTBEAT)[n]["idle_ms"]
        .as_i64()
        .unwrap();
    assert!((60_000..=61_000).contains(&idle), "idle_ms {idle}");

    // No longer reported: the field is gone again.
    client.report_idle(None);
    let n = fake.count(Method::Post, HEARTBEAT);
    fake.wait_requests(Method::Post, HEARTBEAT, n + 1).await;
    assert_eq!(
        fake.bodies(Method::Post, HEARTBEAT)[n],
        json!({"mode": "active"})
    );
}

#[tokio::test(start_paused = true)]
async fn a_return_from_idle_is_reported_at_once_only_when_the_server_set_idle() {
    let fake = FakeServer::new();
    fake.set_interval(60_000, 180_000);
    let (client, _dir) = logged_in(&fake).await;
    wait(&client, "connected", |s| {
        s.connection == Connection::Connected
    })
    .await;
    client.report_idle(Some(0));
    tokio::time::sleep(Duration::from_secs(61)).await;
    fake.wait_requests(Method::Post, HEARTBEAT, 2).await;
    let n = fake.count(Method::Post, HEARTBEAT);
    assert!(fake.bodies(Method::Post, HEARTBEAT)[n - 1]["idle_ms"].as_i64() >= Some(1_000));

    // Back at the keyboard while the status is a manual one: no extra request.
    client.report_idle(Some(0));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(fake.count(Method::Post, HEARTBEAT), n);

    // The server set the agent away for idleness; the next idle heartbeat says so again.
    fake.push_event(
        "status",
        &json!({"status": "busy", "version": 7, "intent_at": 5, "changed_by_device": null,
                "until": null, "then": null, "custom_status": null, "note": null,
                "cause": "idle", "changed_by_agent": null}),
    );
    let s = wait(&client, "the idle status", |s| {
        s.status.as_ref().is_some_and(|st| st.version == 7)
    })
    .await;
    assert_eq!(s.status.unwrap().cause, presence_core::Cause::Idle);
    tokio::time::sleep(Duration::from_secs(60)).await;
    fake.wait_requests(Method::Post, HEARTBEAT, n + 1).await;
    let n = fake.count(Method::Post, HEARTBEAT);

    // Input: one heartbeat goes out now, not a minute later, carrying the return.
    let back = Instant::now();
    client.report_idle(Some(0));
    fake.wait_requests(Method::Post, HEARTBEAT, n + 1).await;
    assert!(fake.times(Method::Post, HEARTBEAT)[n] - back < Duration::from_millis(5));
    assert_eq!(fake.bodies(Method::Post, HEARTBEAT)[n]["idle_ms"], json!(0));
    // And only one: more input before the server answers the return costs nothing.
    client.report_idle(Some(0));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(fake.count(Method::Post, HEARTBEAT), n + 1);
}

#[tokio::test(start_paused = true)]
async fn a_timed_change_is_sent_with_its_duration_then_custom_status_and_note() {
    let fake = FakeServer::new();
    let (client, _dir) = logged_in(&fake).await;
    let before = client.server_time_now();
    fake.intercept(|r| is(r, Method::Put, STATUS).then(refused));
    client
        .set_status_with(presence_core::StatusRequest {
            duration_ms: Some(1_800_000),
            then: Some(AgentStatus::Online),
            custom_status: Some("lunch".into()),
            note: Some("back at 2".into()),
            ..presence_core::StatusRequest::new(AgentStatus::Busy)
        })
        .await
        .unwrap();
    // Shown at once, as the server will make it.
    let st = client.snapshot().status.unwrap();
    assert!(st.pending);
    assert_eq!(st.current, AgentStatus::Busy);
    let intent = st.until.unwrap() - 1_800_000;
    assert!(intent >= before, "until {:?} before the change", st.until);
    assert_eq!(st.then, Some(AgentStatus::Online));
    assert_eq!(st.custom_status.as_deref(), Some("lunch"));
    assert_eq!(st.note.as_deref(), Some("back at 2"));

    fake.wait_requests(Method::Put, STATUS, 1).await;
    fake.clear_intercepts();
    fake.wait_requests(Method::Put, STATUS, 2).await;
    let sent = &fake.bodies(Method::Put, STATUS)[1];
    assert_eq!(sent["duration_ms"], 1_800_000);
    assert_eq!(sent["then"], "online");
    assert_eq!(sent["custom_status"], "lunch");
    assert_eq!(sent["note"], "back at 2");
    assert_eq!(sent["intent_at"], intent);
}

#[tokio::test(start_paused = true)]
async fn a_duration_or_note_out_of_bounds_is_refused_naming_the_field_and_nothing_is_stored() {
    let fake = FakeServer::new();
    let (client, _dir) = logged_in(&fake).await;
    for (req, field) in [
        (
            presence_core::StatusRequest {
                duration_ms: Some(999),
                ..presence_core::StatusRequest::new(AgentStatus::Busy)
            },
            "duration_ms",
        ),
        (
            presence_core::StatusRequest {
                duration_ms: Some(presence_core::MAX_DURATION_MS + 1),
                ..presence_core::StatusRequest::new(AgentStatus::Busy)
            },
            "duration_ms",
        ),
        (
            presence_core::StatusRequest {
                note: Some("n".repeat(101)),
                ..presence_core::StatusRequest::new(AgentStatus::Busy)
            },
            "note",
        ),
    ] {
        match client.set_status_with(req).await {
            Err(ClientError::InvalidInput { detail }) => {
                assert!(detail.starts_with(field), "{detail}")
            }
            other => panic!("{field}: {other:?}"),
        }
    }
    assert_eq!(client.snapshot().outbox.pending, 0);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(fake.count(Method::Put, STATUS), 0);
    match client.status_log(Some(0), None).await {
        Err(ClientError::InvalidInput { detail }) => assert!(detail.starts_with("limit")),
        other => panic!("{other:?}"),
    }
}

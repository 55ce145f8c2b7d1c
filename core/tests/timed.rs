//! Timed statuses, custom statuses, notes, activity and the status log, the engine against
//! the real presence server in-process on 127.0.0.1:0: what the snapshot shows, what a change
//! made offline becomes when it is delivered late, and what the server sees.

use presence_test_support as common;

use std::time::Duration;

use common::{DEADLINE, TestServer, device, wait_until};
use presence_core::{AgentStatus, Cause, ClientError, Connection, OpKind, StatusRequest};
use serde_json::json;

fn busy_for(ms: i64) -> StatusRequest {
    StatusRequest {
        duration_ms: Some(ms),
        ..StatusRequest::new(AgentStatus::Busy)
    }
}

async fn put_custom_statuses(server: &TestServer, token: &str) {
    let r = server
        .api()
        .put(
            "/v1/admin/custom-statuses",
            Some(token),
            json!([
                {"id": "lunch", "label": "Lunch", "emoji": "🥪", "base": "busy",
                 "default_duration_ms": 3_600_000},
                {"id": "focus", "label": "Deep work", "emoji": null, "base": "busy",
                 "default_duration_ms": null}
            ]),
        )
        .await;
    assert_eq!(r.status, 200, "custom statuses: {}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_change_made_offline_keeps_its_exact_end_when_delivered_late() {
    let mut server = TestServer::start().await;
    let acct = server.api().create_account_without_login("late").await;
    let d = device(&server.url, &acct).await;
    wait_until(&d.client, "connected", |s| {
        s.connection == Connection::Connected
    })
    .await;

    server.stop().await;
    d.client
        .set_status_with(StatusRequest {
            then: Some(AgentStatus::Offline),
            note: Some("dentist".into()),
            ..busy_for(600_000)
        })
        .await
        .unwrap();
    let pending = d.client.snapshot().status.unwrap();
    assert!(pending.pending);
    let until = pending.until.expect("a pending timed change shows its end");
    assert_eq!(pending.then, Some(AgentStatus::Offline));
    // Delivered well after it was made: the end stays where the user put it.
    wait_until(&d.client, "the change failing to go out", |s| {
        s.last_error.is_some()
    })
    .await;
    server.restart().await;
    let s = wait_until(&d.client, "the change confirmed", |s| {
        s.outbox.pending == 0
            && s.status
                .as_ref()
                .is_some_and(|st| !st.pending && st.confirmed == AgentStatus::Busy)
    })
    .await;
    let st = s.status.unwrap();
    assert_eq!(st.until, Some(until));
    assert_eq!(st.then, Some(AgentStatus::Offline));
    assert_eq!(st.note.as_deref(), Some("dentist"));
    assert_eq!(st.cause, Cause::Manual);
    // The server has exactly that end too.
    let me = server
        .api()
        .me(&server.api().login_owner(&acct, "web").await)
        .await;
    assert_eq!(me["status"]["until"], until);
    assert_eq!(me["status"]["intent_at"], until - 600_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_change_whose_end_passed_before_delivery_is_not_applied() {
    let server = TestServer::start().await;
    let acct = server.api().create_account_without_login("passed").await;
    let d = device(&server.url, &acct).await;
    let before = wait_until(&d.client, "a status", |s| s.status.is_some()).await;
    let before = before.status.unwrap();

    d.client.set_network_available(false).await;
    d.client.set_status_with(busy_for(1_000)).await.unwrap();
    let until = d.client.snapshot().status.unwrap().until.unwrap();
    // The scenario itself: the device stays offline past the change's end.
    while d.client.server_time_now() <= until + 200 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    d.client.set_network_available(true).await;
    let s = wait_until(&d.client, "the op answered and dropped", |s| {
        s.outbox.pending == 0 && s.status.as_ref().is_some_and(|st| !st.pending)
    })
    .await;
    let st = s.status.unwrap();
    assert_eq!(st.current, before.confirmed, "the server's status is shown");
    assert_eq!(st.version, before.version, "nothing was applied");
    assert_eq!(st.until, None);
    assert!(s.outbox.wedged.is_empty(), "{:?}", s.outbox.wedged);
    assert!(s.last_error.is_none(), "{:?}", s.last_error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snapshot_shows_custom_statuses_and_a_custom_change_on_every_device() {
    let server = TestServer::start().await;
    let acct = server.api().create_account("custom").await;
    put_custom_statuses(&server, &acct.owner_token).await;
    let a = device(&server.url, &acct).await;
    let b = device(&server.url, &acct).await;
    let s = wait_until(&a.client, "the account's custom statuses", |s| {
        s.custom_statuses.len() == 2
    })
    .await;
    assert_eq!(s.custom_statuses[0].id, "lunch");
    assert_eq!(s.custom_statuses[0].emoji.as_deref(), Some("🥪"));
    assert_eq!(s.custom_statuses[0].default_duration_ms, Some(3_600_000));
    assert_eq!(s.custom_statuses[1].label, "Deep work");

    // No duration: the custom status's default applies, on the server as on the device.
    a.client
        .set_status_with(StatusRequest {
            custom_status: Some("lunch".into()),
            note: Some("back soon".into()),
            ..StatusRequest::new(AgentStatus::Busy)
        })
        .await
        .unwrap();
    let shown = a.client.snapshot().status.unwrap();
    let until = shown.until.expect("the default duration applies");
    for (name, dev) in [("A", &a), ("B", &b)] {
        let s = wait_until(&dev.client, &format!("{name} sees lunch"), |s| {
            s.status
                .as_ref()
                .is_some_and(|st| !st.pending && st.custom_status.as_deref() == Some("lunch"))
        })
        .await;
        let st = s.status.unwrap();
        assert_eq!(st.current, AgentStatus::Busy);
        assert_eq!(st.until, Some(until), "{name}");
        assert_eq!(
            st.then,
            Some(AgentStatus::Offline),
            "{name}: the status before"
        );
        assert_eq!(st.note.as_deref(), Some("back soon"));
        assert_eq!(st.cause, Cause::Manual);
        assert_eq!(st.changed_by_agent, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_custom_status_wedges_the_op_naming_the_field() {
    let server = TestServer::start().await;
    let acct = server.api().create_account("unknown").await;
    put_custom_statuses(&server, &acct.owner_token).await;
    let d = device(&server.url, &acct).await;
    for (id, status) in [("nap", AgentStatus::Busy), ("lunch", AgentStatus::Online)] {
        d.client
            .set_status_with(StatusRequest {
                custom_status: Some(id.into()),
                ..StatusRequest::new(status)
            })
            .await
            .unwrap();
        let s = wait_until(&d.client, &format!("{id} wedged"), |s| {
            s.outbox.wedged.len() == 1
        })
        .await;
        let w = &s.outbox.wedged[0];
        assert_eq!(w.kind, OpKind::SetStatus);
        assert_eq!(w.code, "invalid_field");
        assert!(w.detail.contains("custom_status"), "{}", w.detail);
        // The wedged change is not shown as the status.
        assert!(!s.status.as_ref().unwrap().pending);
        let op_id = w.op_id.clone();
        d.client.discard_wedged(&op_id).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_end_and_an_admin_change_reach_the_snapshot_with_their_cause() {
    let server = TestServer::start().await;
    let acct = server.api().create_account("causes").await;
    let d = device(&server.url, &acct).await;
    wait_until(&d.client, "connected", |s| {
        s.connection == Connection::Connected
    })
    .await;
    d.client
        .set_status_with(StatusRequest {
            then: Some(AgentStatus::Online),
            ..busy_for(1_000)
        })
        .await
        .unwrap();
    let s = wait_until(&d.client, "the timed busy confirmed", |s| {
        s.status
            .as_ref()
            .is_some_and(|st| !st.pending && st.confirmed == AgentStatus::Busy)
    })
    .await;
    let until = s.status.unwrap().until.unwrap();
    let s = wait_until(&d.client, "the timer's end", |s| {
        s.status.as_ref().is_some_and(|st| st.cause == Cause::Timer)
    })
    .await;
    let st = s.status.unwrap();
    assert_eq!(st.current, AgentStatus::Online);
    assert_eq!((st.until, st.then), (None, None));
    assert!(d.client.server_time_now() >= until);

    let r = server
        .api()
        .put(
            &format!("/v1/admin/agents/{}/status", acct.owner_id),
            Some(&acct.owner_token),
            json!({"status": "offline", "note": "holiday"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let s = wait_until(&d.client, "the admin's change", |s| {
        s.status.as_ref().is_some_and(|st| st.cause == Cause::Admin)
    })
    .await;
    let st = s.status.unwrap();
    assert_eq!(st.current, AgentStatus::Offline);
    assert_eq!(st.changed_by_agent.as_deref(), Some(acct.owner_id.as_str()));
    assert_eq!(st.note.as_deref(), Some("holiday"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chatbox_view_passes_back_at_through() {
    let server = TestServer::start().await;
    let acct = server.api().create_account_without_login("backat").await;
    let d = device(&server.url, &acct).await;
    d.client
        .set_status_with(StatusRequest {
            then: Some(AgentStatus::Online),
            ..busy_for(3_600_000)
        })
        .await
        .unwrap();
    let s = wait_until(&d.client, "busy with a back_at", |s| {
        s.chatbox.as_ref().is_some_and(|c| c.back_at.is_some())
    })
    .await;
    assert_eq!(s.chatbox.unwrap().back_at, s.status.unwrap().until);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_idle_makes_each_heartbeat_carry_the_idle_time_the_server_shows() {
    let server = TestServer::start().await;
    let acct = server.api().create_account("idle").await;
    let d = device(&server.url, &acct).await;
    let session_id = d.client.snapshot().session.session_id.unwrap();
    d.client.report_idle(Some(90_000));
    // The next heartbeat carries it; a background refresh sends one now.
    d.client
        .background_refresh(DEADLINE)
        .await
        .expect("a heartbeat");
    let me = server.api().me(&acct.owner_token).await;
    let mine = me["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["session_id"] == session_id.as_str())
        .cloned()
        .unwrap();
    let idle = mine["idle_ms"].as_i64().expect("idle_ms reported");
    assert!((90_000..90_000 + 10_000).contains(&idle), "{mine}");

    d.client.report_idle(None);
    d.client.background_refresh(DEADLINE).await.unwrap();
    let me = server.api().me(&acct.owner_token).await;
    let mine = me["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["session_id"] == session_id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(mine["idle_ms"], serde_json::Value::Null, "{mine}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_log_pages_newest_first() {
    let server = TestServer::start().await;
    let acct = server.api().create_account_without_login("log").await;
    let d = device(&server.url, &acct).await;
    for (i, status) in [AgentStatus::Online, AgentStatus::Busy, AgentStatus::Online]
        .into_iter()
        .enumerate()
    {
        d.client
            .set_status_with(StatusRequest {
                note: Some(format!("change {i}")),
                ..StatusRequest::new(status)
            })
            .await
            .unwrap();
        wait_until(&d.client, "delivered", |s| s.outbox.pending == 0).await;
    }
    let first = d.client.status_log(Some(2), None).await.unwrap();
    assert_eq!(first.entries.len(), 2);
    assert_eq!(first.entries[0].status.note.as_deref(), Some("change 2"));
    assert_eq!(first.entries[1].status.note.as_deref(), Some("change 1"));
    assert!(first.entries[0].status.version > first.entries[1].status.version);
    assert!(first.entries[0].applied_at >= first.entries[1].applied_at);
    let next = first.next.expect("more entries");
    let second = d.client.status_log(Some(2), Some(next)).await.unwrap();
    assert_eq!(second.entries[0].status.note.as_deref(), Some("change 0"));
    assert_eq!(second.entries[0].status.cause, Cause::Manual);

    match d.client.status_log(Some(501), None).await {
        Err(ClientError::InvalidInput { detail }) => assert!(detail.starts_with("limit")),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_desktop_goes_away_and_input_brings_it_back_at_once() {
    let server = TestServer::start().await;
    let acct = server.api().create_account("away").await;
    let r = server
        .api()
        .put(
            "/v1/admin/settings",
            Some(&acct.owner_token),
            json!({"idle_after_ms": 5_000, "idle_status": "busy", "return_on_activity": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // An agent of their own: the owner's admin session would count as a session that does
    // not report activity.
    server.api().add_agent(&acct, "dana", &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let client = presence_core::PresenceClient::open(common::config(&server.url, dir.path()))
        .await
        .unwrap();
    client
        .login(&acct.slug, "dana@away.test", "pw-dana-secret")
        .await
        .unwrap();
    client.set_status(AgentStatus::Online).await.unwrap();
    wait_until(&client, "online and connected", |s| {
        s.connection == Connection::Connected
            && s.status
                .as_ref()
                .is_some_and(|st| !st.pending && st.confirmed == AgentStatus::Online)
    })
    .await;

    // Away from the desk for a minute already: the first report goes out at once.
    client.report_idle(Some(60_000));
    let s = wait_until(&client, "set away for idleness", |s| {
        s.status.as_ref().is_some_and(|st| st.cause == Cause::Idle)
    })
    .await;
    assert_eq!(s.status.unwrap().current, AgentStatus::Busy);

    // Input: the return reaches the server without waiting for the next heartbeat (20 s).
    let back = std::time::Instant::now();
    client.report_idle(Some(0));
    let s = wait_until(&client, "back from idle", |s| {
        s.status
            .as_ref()
            .is_some_and(|st| st.cause == Cause::Return)
    })
    .await;
    assert_eq!(s.status.unwrap().current, AgentStatus::Online);
    assert!(
        back.elapsed() < Duration::from_secs(5),
        "the return took {:?}",
        back.elapsed()
    );
    client.shutdown().await;
}

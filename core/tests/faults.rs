//! The engine recovering from network faults, injected by a TCP proxy between one device and
//! the real server. For each fault, both directions are checked:
//!
//! 1. another device changes the status while the fault is on: once it is off, the faulty
//!    device learns the change (its event stream reconnects and refreshes);
//! 2. the faulty device changes the status while the fault is on: once it is off, the change
//!    reaches the server and the other device, exactly once, and nothing is left queued.

use presence_test_support as common;

use std::time::Duration;

use common::proxy::{Fault, FaultProxy};
use common::{DEADLINE, TestServer, device, device_with, wait_until};
use presence_core::{AgentStatus, ClientSnapshot, Connection};

fn confirmed(s: &ClientSnapshot, status: AgentStatus) -> bool {
    s.status
        .as_ref()
        .is_some_and(|st| st.confirmed == status && st.current == status && !st.pending)
}

async fn server_version(server: &TestServer, token: &str) -> (String, i64) {
    let me = server.api().me(token).await;
    (
        me["status"]["status"].as_str().unwrap().to_owned(),
        me["status"]["version"].as_i64().unwrap(),
    )
}

async fn recovers_from(fault: Fault, slug: &str) {
    let server = TestServer::start().await;
    let acct = server.api().create_account_without_login(slug).await;
    let proxy = FaultProxy::start(server.addr).await;
    let faulty = device_with(&proxy.url(), &acct, |c| {
        c.overrides.request_timeout = Duration::from_secs(1);
        // The server's keep-alive comes every 15 s; a short idle timeout makes a silent
        // (blackholed) stream visible quickly.
        c.overrides.sse_idle_timeout = Duration::from_secs(3);
    })
    .await;
    let other = device(&server.url, &acct).await;
    let observer = server.api().login_owner(&acct, "observer").await;
    wait_until(&faulty.client, "connected", |s| {
        s.connection == Connection::Connected
    })
    .await;
    faulty.client.set_status(AgentStatus::Online).await.unwrap();
    wait_until(&other.client, "online everywhere", |s| {
        confirmed(s, AgentStatus::Online)
    })
    .await;

    // 1. A change elsewhere during the fault is learnt after it.
    proxy.set(fault);
    other.client.set_status(AgentStatus::Busy).await.unwrap();
    wait_until(&other.client, "busy confirmed", |s| {
        confirmed(s, AgentStatus::Busy)
    })
    .await;
    proxy.set(Fault::Pass);
    wait_until(&faulty.client, "the faulty device learns busy", |s| {
        confirmed(s, AgentStatus::Busy)
    })
    .await;
    wait_until(&faulty.client, "reconnected", |s| {
        s.connection == Connection::Connected
    })
    .await;

    // 2. A change on the faulty device during the fault is delivered after it, once.
    let (_, before) = server_version(&server, &observer).await;
    proxy.set(fault);
    faulty
        .client
        .set_status(AgentStatus::Offline)
        .await
        .unwrap();
    if fault != Fault::Pass && !matches!(fault, Fault::Delay(_)) {
        // Let the fault bite: at least one attempt fails before the network heals.
        wait_until(&faulty.client, "a failed attempt", |s| {
            s.last_error.is_some()
        })
        .await;
    }
    proxy.set(Fault::Pass);
    let s = wait_until(&faulty.client, "offline delivered", |s| {
        confirmed(s, AgentStatus::Offline) && s.outbox.pending == 0
    })
    .await;
    assert!(s.outbox.wedged.is_empty(), "{:?}", s.outbox.wedged);
    wait_until(&other.client, "the other device sees offline", |s| {
        confirmed(s, AgentStatus::Offline)
    })
    .await;
    let (status, after) = server_version(&server, &observer).await;
    assert_eq!(status, "offline");
    assert_eq!(after, before + 1, "the change was applied exactly once");
    assert_eq!(s.status.unwrap().version, after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_from_delay_with_nothing_lost() {
    recovers_from(Fault::Delay(Duration::from_millis(300)), "delay").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_from_dropped_connections_with_nothing_lost() {
    recovers_from(Fault::Drop, "drop").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_from_reset_connections_with_nothing_lost() {
    recovers_from(Fault::Reset, "reset").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_from_a_blackhole_with_nothing_lost() {
    recovers_from(Fault::Blackhole, "blackhole").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_is_resent_and_applied_exactly_once() {
    recovers_from(Fault::LoseAnswers, "lostanswer").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_killed_mid_request_delivers_its_change_exactly_once_after_reopening() {
    // The answer to the status request is lost and the engine is dropped (as if killed):
    // the server applied it, the device does not know. The reopened engine resends it with
    // the same op_id and the server does not apply it twice.
    let server = TestServer::start().await;
    let acct = server.api().create_account_without_login("killed").await;
    let proxy = FaultProxy::start(server.addr).await;
    let observer = server.api().login_owner(&acct, "observer").await;
    let a = device(&proxy.url(), &acct).await;
    let (_, before) = server_version(&server, &observer).await;
    proxy.set(Fault::LoseAnswers);
    a.client.set_status(AgentStatus::Busy).await.unwrap();
    common::eventually("the server applied the change", DEADLINE, || {
        let server = &server;
        let observer = observer.clone();
        async move { server_version(server, &observer).await.1 == before + 1 }
    })
    .await;
    let dir = a.dir;
    drop(a.client);
    proxy.set(Fault::Pass);

    let client = presence_core::PresenceClient::open(common::config(&proxy.url(), dir.path()))
        .await
        .unwrap();
    assert_eq!(client.snapshot().outbox.pending, 1, "the change survived");
    wait_until(&client, "delivered", |s| {
        confirmed(s, AgentStatus::Busy) && s.outbox.pending == 0
    })
    .await;
    assert_eq!(
        server_version(&server, &observer).await,
        ("busy".into(), before + 1)
    );
}

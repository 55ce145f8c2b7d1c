//! The engine on a phone with a real push provider between it and the server: a UnifiedPush
//! endpoint (the double of `presence_test_support::push`) that decrypts the server's RFC 8291
//! message with the device's key and hands the bytes to the engine, as the connector library
//! does on Android.

use presence_test_support as common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use common::push::Behaviour;
use common::push::tls::TestCa;
use common::push::unifiedpush::UnifiedPushDouble;
use common::{DEADLINE, TestServer, device_with, wait_until};
use presence_core::widget::ChatboxStream;
use presence_core::{
    AgentStatus, ChatboxStatus, Lifecycle, Platform, PushProvider, UnifiedPushKeys,
};
use tokio::time::Instant;

const BACKGROUND_TTL_MS: i64 = 3_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backgrounded_phone_is_kept_online_by_unifiedpush_renews_alone_and_goes_offline_when_its_lease_ends()
 {
    let ca = TestCa::new();
    let up = UnifiedPushDouble::start(&ca).await;
    let server = TestServer::with(|c| {
        c.defaults.active_interval_ms = 500;
        c.defaults.active_ttl_ms = 2_000;
        c.defaults.background_ttl_ms = BACKGROUND_TTL_MS;
        c.defaults.renew_margin_ms = 1_500;
        c.push.ca_file = Some(ca.pem_path.clone());
    })
    .await;
    let acct = server.api().create_account_without_login("phone").await;
    let common::Device { client, dir: _dir } = device_with(&server.url, &acct, |c| {
        c.device.platform = Platform::Android;
    })
    .await;
    let client = Arc::new(client);
    let keys = UnifiedPushKeys {
        p256dh: up.keys().p256dh(),
        auth: up.keys().auth_b64(),
    };
    client
        .register_push(PushProvider::Unifiedpush, &up.endpoint("phone"), Some(keys))
        .await
        .unwrap();
    client.set_status(AgentStatus::Online).await.unwrap();
    wait_until(&client, "registered and online", |s| {
        s.outbox.pending == 0 && s.outbox.wedged.is_empty()
    })
    .await;
    let mut widget = ChatboxStream::open(&server.url, &acct.widget_key, DEADLINE, DEADLINE * 2)
        .await
        .unwrap();
    assert_eq!(
        widget.next().await.unwrap().unwrap().status,
        ChatboxStatus::Online
    );

    // The connector library's part: every message the distributor delivers goes to the engine.
    let handled = Arc::new(AtomicU64::new(0));
    let relay = {
        let (double, client, handled) = (up.double.clone(), client.clone(), handled.clone());
        tokio::spawn(async move {
            while let Some(msg) = double.next(Duration::from_secs(3600)).await {
                if client.handle_push(&msg.app_bytes).await.is_ok() {
                    handled.fetch_add(1, Relaxed);
                }
            }
        })
    };
    client.set_lifecycle(Lifecycle::Background).await;
    wait_until(&client, "a background lease", |s| {
        s.lifecycle == Lifecycle::Background && s.lease_until.is_some()
    })
    .await;
    let before = client.counters();

    // Four background lease periods: the widget never shows the agent offline, and the
    // engine makes only the heartbeats that answer a renew push.
    let watch_until = Instant::now() + Duration::from_millis(4 * BACKGROUND_TTL_MS as u64);
    while Instant::now() < watch_until {
        match tokio::time::timeout_at(watch_until, widget.next()).await {
            Err(_) => break,
            Ok(view) => {
                let view = view.unwrap().expect("the widget stream stays open");
                assert_eq!(view.status, ChatboxStatus::Online, "{view:?}");
            }
        }
    }
    let renews = handled.load(Relaxed);
    assert!(
        renews >= 3,
        "renew pushes handled in four lease periods: {renews}"
    );
    let requests = (client.counters() - before).requests;
    assert!(
        requests <= renews + 1,
        "{requests} requests for {renews} renew pushes: the engine woke on its own"
    );

    // The phone goes out of coverage: pushes no longer reach it and it cannot heartbeat.
    up.double.set("phone", Behaviour::Lose);
    client.set_network_available(false).await;
    let lease_until = client.snapshot().lease_until.unwrap();
    let offline = loop {
        let view = widget.next().await.unwrap().expect("stream open");
        if view.status == ChatboxStatus::Offline {
            break view;
        }
    };
    let now = client.server_time_now();
    assert!(
        now <= lease_until + 1_000,
        "offline {} ms after the lease's end",
        now - lease_until
    );
    assert!(
        now >= lease_until,
        "offline before the lease ended: {offline:?}"
    );
    relay.abort();
    up.double.assert_no_violations();
}

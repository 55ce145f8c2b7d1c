//! What a phone's disk pays: incoming events are cached without a single fsync; only the
//! outbox's commits are made durable. Measured through a SQLite VFS that counts every real
//! `xSync` call (presence-test-support's `fsync`), so any change that makes an incoming event
//! fsync again (a pragma, a checkpoint inside the wrong commit, a write moved to the durable
//! path) fails here.

use presence_test_support as common;

use std::time::Duration;

use common::fake::{EPOCH_MS, FakeServer};
use common::fsync::SyncCounter;
use presence_core::transport::Method;
use presence_core::{
    AgentStatus, ClientConfig, Connection, DeviceInfo, Lifecycle, Overrides, Platform,
    PresenceClient,
};
use serde_json::json;

const A_DAY: Duration = Duration::from_secs(86_400);

async fn open(fake: &FakeServer, dir: &std::path::Path, vfs: &SyncCounter) -> PresenceClient {
    PresenceClient::open(ClientConfig {
        server_url: Some("http://fake.invalid".into()),
        data_dir: dir.to_path_buf(),
        device: DeviceInfo {
            platform: Platform::Android,
            name: "fake phone".into(),
            app_version: "1".into(),
        },
        overrides: Overrides {
            transport: Some(fake.transport()),
            rng_seed: Some(7),
            sqlite_vfs: Some(vfs.vfs_name().to_owned()),
            ..Overrides::default()
        },
    })
    .await
    .unwrap()
}

/// Sends `n` status and `n` chat box events, versions after `from`, and waits until the
/// engine holds the last of each.
async fn incoming(fake: &FakeServer, client: &PresenceClient, from: i64, n: i64) {
    for v in from + 1..=from + n {
        let status = if v % 2 == 0 { "busy" } else { "online" };
        fake.push_event(
            "status",
            &json!({"status": status, "version": v, "intent_at": EPOCH_MS + v,
                    "changed_by_device": "other"}),
        );
        fake.push_event("chatbox", &FakeServer::chatbox_view(v));
    }
    let last = from + n;
    client
        .wait_for(A_DAY, |s| {
            s.status.as_ref().is_some_and(|st| st.version == last)
                && s.chatbox.as_ref().is_some_and(|c| c.version == last)
        })
        .await
        .expect("every event applied");
}

#[tokio::test(start_paused = true)]
async fn incoming_events_are_cached_without_a_single_fsync() {
    let fake = FakeServer::new();
    let vfs = SyncCounter::register();
    let dir = tempfile::tempdir().unwrap();
    let client = open(&fake, dir.path(), &vfs).await;
    client
        .login("acme", "ann@example.com", "pw-secret-1")
        .await
        .unwrap();
    client
        .wait_for(A_DAY, |s| s.connection == Connection::Connected)
        .await
        .unwrap();
    // Let the stream's snapshot and the refresh after connecting settle.
    fake.wait_requests(Method::Get, "/v1/me", 1).await;
    client
        .wait_for(A_DAY, |s| s.chatbox.is_some())
        .await
        .unwrap();

    let syncs = vfs.counts();
    let commits = client.counters();
    incoming(&fake, &client, 100, 300).await;
    let paid = vfs.counts() - syncs;
    let done = client.counters() - commits;
    assert_eq!(paid.total(), 0, "600 incoming events fsynced: {paid:?}");
    // They were written (so the count above means something), as cache writes.
    assert!(done.cache_commits >= 600, "{done:?}");
    assert_eq!(done.durable_commits, 0, "{done:?}");

    // The counter does see a durable commit: a status change is stored with an fsync. With
    // more than the checkpoint threshold in the log, it also checkpoints.
    let syncs = vfs.counts();
    client.set_status(AgentStatus::Busy).await.unwrap();
    let paid = vfs.counts() - syncs;
    assert!(paid.wal >= 1, "set_status was not fsynced: {paid:?}");

    // After that checkpoint the log starts over; restarting it costs incoming events nothing
    // either.
    client
        .wait_for(A_DAY, |s| s.outbox.pending == 0)
        .await
        .unwrap();
    let syncs = vfs.counts();
    incoming(&fake, &client, 1000, 50).await;
    let paid = vfs.counts() - syncs;
    assert_eq!(
        paid.total(),
        0,
        "events after a checkpoint fsynced: {paid:?}"
    );
    client.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_hour_of_heartbeats_and_clock_samples_costs_no_fsync() {
    let fake = FakeServer::new();
    let vfs = SyncCounter::register();
    let dir = tempfile::tempdir().unwrap();
    let client = open(&fake, dir.path(), &vfs).await;
    client
        .login("acme", "ann@example.com", "pw-secret-1")
        .await
        .unwrap();
    let before_hb = fake.count(Method::Post, "/v1/session/heartbeat");
    let syncs = vfs.counts();
    // An hour at the default 20 s interval: 180 heartbeats, each a clock sample.
    fake.wait_requests(Method::Post, "/v1/session/heartbeat", before_hb + 180)
        .await;
    let paid = vfs.counts() - syncs;
    assert_eq!(paid.total(), 0, "an hour active fsynced: {paid:?}");

    // Going to the background and an hour there (one renew push answered) cost none either.
    let syncs = vfs.counts();
    client.set_lifecycle(Lifecycle::Background).await;
    fake.wait_requests(Method::Post, "/v1/session/heartbeat", before_hb + 181)
        .await;
    client
        .handle_push(
            &json!({"v": 1, "type": "renew", "session_id": "sess-1",
                    "lease_until": fake.now_ms() + 60_000})
            .to_string(),
        )
        .await
        .unwrap();
    let paid = vfs.counts() - syncs;
    assert_eq!(paid.total(), 0, "the background fsynced: {paid:?}");
    client.shutdown().await;

    // A restart does not start the log over either (no checkpoint when closing), so the
    // first events after it are free as well.
    let vfs2 = SyncCounter::register();
    let client = open(&fake, dir.path(), &vfs2).await;
    client
        .wait_for(A_DAY, |s| s.connection == Connection::Connected)
        .await
        .unwrap();
    let syncs = vfs2.counts();
    let v = client.snapshot().status.unwrap().version;
    incoming(&fake, &client, v.max(2000), 5).await;
    assert_eq!((vfs2.counts() - syncs).total(), 0);
    client.shutdown().await;
}

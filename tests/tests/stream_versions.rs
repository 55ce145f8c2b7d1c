//! Stream versions under churn, on either backend (`PRESENCE_TEST_BACKEND=cluster` for the
//! cluster): while status changes flow (through another node in cluster mode, through the
//! same server on the embedded backend) and streams keep opening and closing,
//!
//! - a device stream's `status` versions are strictly above its snapshot's status version and
//!   strictly increasing, and so are its `chatbox` versions above the snapshot's chat box
//!   version;
//! - a widget stream's `chatbox` versions, from its first event on, strictly increase.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use presence_test_support::*;
use serde_json::Value;

/// Device streams open at once, each opened and closed [`ROUNDS`] times.
const DEVICES: usize = 6;
/// Widget streams open at once, each opened and closed [`ROUNDS`] times.
const WIDGETS: usize = 3;
const ROUNDS: usize = 15;
/// Events read from each stream after its first before it is closed.
const EVENTS_PER_STREAM: usize = 4;

/// What the streams saw: every rule broken, and how many events were checked.
#[derive(Default)]
struct Seen {
    broken: Vec<String>,
    statuses: u64,
    chatboxes: u64,
}

fn version(v: &Value) -> i64 {
    v["version"]
        .as_i64()
        .unwrap_or_else(|| panic!("no version in {v}"))
}

/// Opens `api`'s device stream of `token` [`ROUNDS`] times, each time checking its events
/// against its snapshot.
async fn device_rounds(api: Api, token: String, name: String) -> Seen {
    let mut seen = Seen::default();
    for round in 0..ROUNDS {
        let mut s = api.sse("/v1/me/events", Some(&token)).await;
        let snap = s.next().await.expect("the snapshot");
        assert_eq!(snap.name, "snapshot", "{name}: first event {snap:?}");
        let (mut status, mut chatbox) = (
            version(&snap.data["status"]),
            version(&snap.data["chatbox"]),
        );
        let mut read = 0;
        while read < EVENTS_PER_STREAM {
            let ev = s.next().await.expect("the stream stays open");
            let last = match ev.name.as_str() {
                "status" => {
                    seen.statuses += 1;
                    &mut status
                }
                "chatbox" => {
                    seen.chatboxes += 1;
                    &mut chatbox
                }
                _ => continue,
            };
            let v = version(&ev.data);
            if v <= *last {
                seen.broken.push(format!(
                    "{name} round {round}: {} version {v} after {} (snapshot {})",
                    ev.name, *last, snap.data
                ));
            }
            *last = v;
            read += 1;
        }
    }
    seen
}

/// Opens `api`'s widget stream of `key` [`ROUNDS`] times, each time checking that its
/// versions grow from its first event on.
async fn widget_rounds(api: Api, key: String, name: String) -> Seen {
    let mut seen = Seen::default();
    for round in 0..ROUNDS {
        let mut s = api.sse(&format!("/v1/widget/{key}/events"), None).await;
        let mut last = None;
        let mut read = 0;
        while read <= EVENTS_PER_STREAM {
            let ev = s.next().await.expect("the stream stays open");
            if ev.name != "chatbox" {
                continue;
            }
            seen.chatboxes += 1;
            let v = version(&ev.data);
            if let Some(last) = last
                && v <= last
            {
                seen.broken
                    .push(format!("{name} round {round}: chatbox {v} after {last}"));
            }
            last = Some(v);
            read += 1;
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_opened_during_status_churn_never_repeat_or_go_below_their_snapshot() {
    let server = TestServer::start().await;
    let other = server.another_node().await;
    let api = server.api();
    let writes = other.as_ref().map_or_else(|| server.api(), TestServer::api);
    let acc = api.create_account("acme").await;
    let writer = writes
        .login(&acc.slug, &acc.email, &acc.password, "writer")
        .await;

    // Status changes back and forth, as fast as they are answered, until the streams are done.
    let stop = Arc::new(AtomicBool::new(false));
    let changes = Arc::new(AtomicU64::new(0));
    let churn = {
        let (stop, changes, writes, writer) = (
            stop.clone(),
            changes.clone(),
            writes.clone(),
            writer.clone(),
        );
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let st = if i.is_multiple_of(2) {
                    "busy"
                } else {
                    "online"
                };
                let r = writes.set_status(&writer, st).await;
                assert_eq!(r.status, 200, "{}", r.body);
                changes.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        })
    };

    let mut streams = Vec::new();
    for d in 0..DEVICES {
        let device = format!("device-{d}");
        let s = api
            .login(&acc.slug, &acc.email, &acc.password, &device)
            .await;
        streams.push(tokio::spawn(device_rounds(api.clone(), s.token, device)));
    }
    for w in 0..WIDGETS {
        let name = format!("widget-{w}");
        streams.push(tokio::spawn(widget_rounds(
            api.clone(),
            acc.widget_key.clone(),
            name,
        )));
    }
    let mut seen = Seen::default();
    for s in streams {
        let s = tokio::time::timeout(DEADLINE * 3, s)
            .await
            .expect("the streams are read within the deadline")
            .expect("a stream task");
        seen.broken.extend(s.broken);
        seen.statuses += s.statuses;
        seen.chatboxes += s.chatboxes;
    }
    stop.store(true, Ordering::Relaxed);
    churn.await.expect("the churn task");

    assert!(
        seen.statuses > 0 && seen.chatboxes > 0,
        "events were checked: {} status, {} chatbox",
        seen.statuses,
        seen.chatboxes
    );
    assert!(
        seen.broken.is_empty(),
        "{} of {} status and {} chatbox events broke the order ({} changes made):\n{}",
        seen.broken.len(),
        seen.statuses,
        seen.chatboxes,
        changes.load(Ordering::Relaxed),
        seen.broken.join("\n")
    );
    drop(other);
}

//! Status ops are committed off the state lock (`server/src/embedded/writer.rs`): a commit
//! stuck in the disk holds up its own answer, and nothing that only reads memory. The disk
//! is the counting VFS of `presence_test_support::fsync`, told to hold every write to the
//! write-ahead log.

use std::sync::Arc;
use std::time::Duration;

use presence_protocol::{AgentStatus, Mode, SetStatusRequest};
use presence_server::Retention;
use presence_server::auth::token_hash;
use presence_server::backend::Backend;
use presence_server::conformance::{account, fast_settings, login};
use presence_server::embedded::Embedded;
use presence_server::hashing::HashPool;
use presence_server::metrics::Metrics;
use presence_server::push::Pusher;
use presence_server::store::Store;
use presence_test_support::fsync::SyncCounter;

const DEADLINE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_commit_stuck_in_the_disk_holds_up_no_heartbeat_and_no_read() {
    let Held { b, disk, .. } = Held::start().await;
    let (phone, _) = login(&*b, "acme", "owner@acme.test", "phone").await;
    let (desk, desk_token) = login(&*b, "acme", "owner@acme.test", "desk").await;
    let before = b.me(&desk).await.unwrap().status;

    disk.hold_wal_writes();
    let change = tokio::spawn({
        let b = b.clone();
        async move {
            b.set_status(
                &phone,
                SetStatusRequest {
                    status: AgentStatus::Busy,
                    op_id: "0190a000-0000-7000-8000-000000000001".into(),
                    intent_at: None,
                },
            )
            .await
        }
    });
    let held = tokio::task::spawn_blocking({
        let disk = disk.clone();
        move || disk.wait_for_held_write(DEADLINE)
    })
    .await
    .unwrap();
    assert!(held, "the status commit reached the disk");

    // While it waits there: heartbeats and reads are answered, and show no unacknowledged
    // change. (Each runs on a thread of its own, so a call that does wait fails the test
    // instead of hanging it.)
    let hb = answered_within(DEADLINE, {
        let b = b.clone();
        async move { b.heartbeat(&token_hash(&desk_token), Mode::Active).await }
    })
    .await;
    let me = answered_within(DEADLINE, {
        let (b, desk) = (b.clone(), desk.clone());
        async move { b.me(&desk).await }
    })
    .await;
    if hb.is_none() || me.is_none() {
        disk.release_wal_writes();
        panic!(
            "waited for another request's commit: heartbeat {}, read {}",
            if hb.is_none() { "held" } else { "answered" },
            if me.is_none() { "held" } else { "answered" }
        );
    }
    assert!(hb.unwrap().is_ok());
    assert_eq!(
        me.unwrap().unwrap().status,
        before,
        "not shown before it is durable"
    );
    assert!(!change.is_finished(), "answered before its commit");

    disk.release_wal_writes();
    let resp = tokio::time::timeout(DEADLINE, change)
        .await
        .expect("answered once the disk answers")
        .unwrap()
        .unwrap();
    assert!(resp.applied);
    assert_eq!(b.me(&desk).await.unwrap().status, resp.status);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_dropped_while_its_change_commits_still_sees_it_applied() {
    let Held { b, disk, .. } = Held::start().await;
    let (phone, _) = login(&*b, "acme", "owner@acme.test", "phone").await;
    let (desk, _) = login(&*b, "acme", "owner@acme.test", "desk").await;

    disk.hold_wal_writes();
    let change = tokio::spawn({
        let b = b.clone();
        async move {
            b.set_status(
                &phone,
                SetStatusRequest {
                    status: AgentStatus::Busy,
                    op_id: "0190a000-0000-7000-8000-000000000002".into(),
                    intent_at: None,
                },
            )
            .await
        }
    });
    let held = tokio::task::spawn_blocking({
        let disk = disk.clone();
        move || disk.wait_for_held_write(DEADLINE)
    })
    .await
    .unwrap();
    assert!(held, "the status commit reached the disk");
    // The client goes away (as hyper drops a handler whose connection closed).
    change.abort();
    disk.release_wal_writes();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let me = b.me(&desk).await.unwrap();
        if me.status.status == AgentStatus::Busy {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a committed change was never applied: {me:?}"
        );
        tokio::task::yield_now().await;
    }
}

/// An embedded backend whose database is on the counting VFS (which can hold WAL writes),
/// with account `acme`.
struct Held {
    b: Arc<dyn Backend>,
    disk: Arc<SyncCounter>,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::watch::Sender<bool>,
}

impl Held {
    async fn start() -> Held {
        let disk = SyncCounter::register();
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::default());
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let backend = Embedded::open(
            Store::open_dir_on(dir.path(), Some(disk.vfs_name())).unwrap(),
            Pusher::new(vec![], metrics.push.clone()),
            HashPool::new(1),
            Retention::default(),
            metrics,
            stop_rx,
        )
        .unwrap();
        let b: Arc<dyn Backend> = Arc::new(backend);
        account(&*b, "acme", fast_settings()).await;
        Held {
            b,
            disk,
            _dir: dir,
            _stop: stop,
        }
    }
}

/// Runs `f` on a thread and runtime of its own; `None` if it is not done within `within`.
async fn answered_within<T: Send + 'static>(
    within: Duration,
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let _ = tx.send(rt.block_on(f));
    });
    tokio::task::spawn_blocking(move || rx.recv_timeout(within).ok())
        .await
        .expect("waiter")
}

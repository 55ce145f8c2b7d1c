//! Every change is committed off the state lock (`server/src/embedded/writer.rs`): a commit
//! stuck in the disk holds up its own answer, and nothing that only reads memory; a commit
//! the disk fails fails every change of its group and leaves memory as it was. The disk is
//! the counting VFS of `presence_test_support::fsync`, told to hold or fail every write to
//! the write-ahead log.

use std::sync::Arc;
use std::time::Duration;

use presence_protocol::{
    AgentStatus, Mode, NewAgentRequest, Role, SetStatusRequest, Settings, SettingsPatch,
};
use presence_server::Retention;
use presence_server::auth::token_hash;
use presence_server::backend::{BackendError, Principal};
use presence_server::conformance::{account, fast_settings, login, login_req};
use presence_server::embedded::Embedded;
use presence_server::hashing::HashPool;
use presence_server::ops::Ops;

/// The operations of the API over the backend, as the HTTP layer calls them.
fn ops(b: &Ops) -> Ops {
    b.clone()
}
use presence_server::metrics::Metrics;
use presence_server::push::Pusher;
use presence_server::store::Store;
use presence_test_support::fsync::SyncCounter;

const DEADLINE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_commit_stuck_in_the_disk_holds_up_no_heartbeat_and_no_read() {
    let Held { b, disk, .. } = Held::start(fast_settings()).await;
    let (phone, _) = login(&b, "acme", "owner@acme.test", "phone").await;
    let (desk, desk_token) = login(&b, "acme", "owner@acme.test", "desk").await;
    let before = b.me(&desk).await.unwrap().status;

    disk.hold_wal_writes();
    let change = tokio::spawn({
        let b = b.clone();
        async move {
            ops(&b)
                .set_status(
                    &phone,
                    SetStatusRequest::new(
                        AgentStatus::Busy,
                        "0190a000-0000-7000-8000-000000000001",
                        None,
                    ),
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
        async move {
            b.heartbeat(&token_hash(&desk_token), Mode::Active.into())
                .await
        }
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
    let Held { b, disk, .. } = Held::start(fast_settings()).await;
    let (phone, _) = login(&b, "acme", "owner@acme.test", "phone").await;
    let (desk, _) = login(&b, "acme", "owner@acme.test", "desk").await;

    disk.hold_wal_writes();
    let change = tokio::spawn({
        let b = b.clone();
        async move {
            ops(&b)
                .set_status(
                    &phone,
                    SetStatusRequest::new(
                        AgentStatus::Busy,
                        "0190a000-0000-7000-8000-000000000002",
                        None,
                    ),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_stuck_in_the_disk_holds_up_no_heartbeat_and_no_read() {
    let Held { b, disk, .. } = Held::start(Settings::default()).await;
    let (desk, desk_token) = login(&b, "acme", "owner@acme.test", "desk").await;
    let login = {
        let b = b.clone();
        async move { b.login(login_req("acme", "owner@acme.test", "phone")).await }
    };
    let resp = while_held(&disk, &b, &desk, &desk_token, login, |me| {
        assert_eq!(
            me.sessions.len(),
            1,
            "the new session is not shown before it is durable"
        );
    })
    .await
    .expect("login");
    let me = b.me(&desk).await.unwrap();
    assert!(me.sessions.iter().any(|s| s.session_id == resp.session_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_stuck_in_the_disk_holds_up_no_heartbeat_and_no_read() {
    let Held { b, disk, .. } = Held::start(Settings::default()).await;
    let (phone, _) = login(&b, "acme", "owner@acme.test", "phone").await;
    let (desk, desk_token) = login(&b, "acme", "owner@acme.test", "desk").await;
    let logout = {
        let (b, phone) = (b.clone(), phone.clone());
        async move { ops(&b).logout(&phone).await }
    };
    while_held(&disk, &b, &desk, &desk_token, logout, |me| {
        assert_eq!(
            me.sessions.len(),
            2,
            "the session ends only once that is durable"
        );
    })
    .await
    .expect("logout");
    assert_eq!(b.me(&desk).await.unwrap().sessions.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_edit_stuck_in_the_disk_holds_up_no_heartbeat_and_no_read() {
    let Held { b, disk, .. } = Held::start(Settings::default()).await;
    let (desk, desk_token) = login(&b, "acme", "owner@acme.test", "desk").await;
    let patch = SettingsPatch {
        offline_message: Some(Some("Back at nine".into())),
        ..SettingsPatch::default()
    };
    let edit = {
        let (b, desk) = (b.clone(), desk.clone());
        async move { ops(&b).put_settings(&desk, patch).await }
    };
    while_held(&disk, &b, &desk, &desk_token, edit, |me| {
        assert_eq!(me.chatbox.message, None, "not shown before it is durable");
    })
    .await
    .expect("settings");
    assert_eq!(
        b.me(&desk).await.unwrap().chatbox.message.as_deref(),
        Some("Back at nine"),
        "the offline chat box shows it once durable"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_group_commit_fails_every_change_in_it_and_changes_nothing() {
    let Held { b, disk, .. } = Held::start(Settings::default()).await;
    let (owner, _) = login(&b, "acme", "owner@acme.test", "desk").await;
    let mut agents: Vec<Principal> = vec![owner.clone()];
    for n in 1..=3 {
        let email = format!("agent{n}@acme.test");
        ops(&b)
            .create_agent(
                &owner,
                NewAgentRequest {
                    name: format!("Agent {n}"),
                    email: email.clone(),
                    password: "pw-secret-1".into(),
                    groups: vec![],
                    role: Role::Agent,
                },
            )
            .await
            .unwrap();
        agents.push(login(&b, "acme", &email, "phone").await.0);
    }
    let before: Vec<_> = futures_status(&b, &agents).await;
    let op = |i: usize| {
        SetStatusRequest::new(
            AgentStatus::Busy,
            format!("0190a000-0000-7000-8000-00000000010{i}"),
            None,
        )
    };

    // The first change holds the disk; the others queue behind it and go in one group;
    // then the disk fails every write.
    disk.hold_wal_writes();
    let mut changes = Vec::new();
    for (i, p) in agents.iter().enumerate() {
        let (b, p, op) = (b.clone(), p.clone(), op(i));
        changes.push(tokio::spawn(
            async move { ops(&b).set_status(&p, op).await },
        ));
        if i == 0 {
            let disk = disk.clone();
            let held = tokio::task::spawn_blocking(move || disk.wait_for_held_write(DEADLINE));
            assert!(held.await.unwrap(), "the first commit reached the disk");
        }
    }
    disk.fail_wal_writes();
    disk.release_wal_writes();
    for change in changes {
        let answer = tokio::time::timeout(DEADLINE, change)
            .await
            .expect("answered")
            .unwrap();
        let err = answer.expect_err("a change the disk refused is not acknowledged");
        assert!(
            matches!(err, BackendError::Storage),
            "a storage failure, not a rule: {err:?}"
        );
    }
    assert_eq!(
        futures_status(&b, &agents).await,
        before,
        "memory shows none of them"
    );

    // The disk recovers: each device retries its op id and gets the change once, with the
    // next version, as if the failed attempt had never been.
    disk.heal_wal_writes();
    for (i, p) in agents.iter().enumerate() {
        let resp = ops(&b).set_status(p, op(i)).await.expect("retried");
        assert!(resp.applied);
        assert_eq!(resp.status.status, AgentStatus::Busy);
        assert_eq!(resp.status.version, before[i].version + 1);
    }
}

async fn futures_status(b: &Ops, agents: &[Principal]) -> Vec<presence_protocol::StatusView> {
    let mut out = Vec::new();
    for p in agents {
        out.push(b.me(p).await.unwrap().status);
    }
    out
}

/// Runs `write` with every WAL write held: once it waits in the disk, a heartbeat and a
/// `/v1/me` read of `reader` must be answered (`check` looks at the read: nothing of the
/// write may show yet) and `write` must not be; then the disk lets go and `write`'s answer
/// is returned.
async fn while_held<T: Send + 'static>(
    disk: &Arc<SyncCounter>,
    b: &Ops,
    reader: &Principal,
    reader_token: &str,
    write: impl std::future::Future<Output = Result<T, BackendError>> + Send + 'static,
    check: impl FnOnce(&presence_protocol::MeResponse),
) -> Result<T, BackendError> {
    disk.hold_wal_writes();
    let write = tokio::spawn(write);
    let held = tokio::task::spawn_blocking({
        let disk = disk.clone();
        move || disk.wait_for_held_write(DEADLINE)
    })
    .await
    .unwrap();
    assert!(held, "the write reached the disk");
    let hb = answered_within(DEADLINE, {
        let (b, token) = (b.clone(), token_hash(reader_token));
        async move { b.heartbeat(&token, Mode::Active.into()).await }
    })
    .await;
    let me = answered_within(DEADLINE, {
        let (b, reader) = (b.clone(), reader.clone());
        async move { b.me(&reader).await }
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
    let me = me.unwrap().unwrap();
    let finished = write.is_finished();
    if finished {
        disk.release_wal_writes();
        panic!("answered before its commit");
    }
    check(&me);
    disk.release_wal_writes();
    tokio::time::timeout(DEADLINE, write)
        .await
        .expect("answered once the disk answers")
        .unwrap()
}

/// An embedded backend whose database is on the counting VFS (which can hold WAL writes),
/// with account `acme`.
struct Held {
    b: Ops,
    disk: Arc<SyncCounter>,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::watch::Sender<bool>,
}

impl Held {
    async fn start(settings: Settings) -> Held {
        let disk = SyncCounter::register();
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::default());
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let pusher = Arc::new(Pusher::new(vec![], metrics.push.clone()));
        let backend = Embedded::open(
            Store::open_dir_on(dir.path(), Some(disk.vfs_name())).unwrap(),
            pusher.clone(),
            Retention::default(),
            metrics,
            stop_rx,
        )
        .unwrap();
        let b = Ops::new(Arc::new(backend), HashPool::new(1), pusher);
        account(&b, "acme", settings).await;
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

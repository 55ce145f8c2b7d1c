//! The exports as a foreign caller sees them: called from plain threads with no tokio runtime
//! (the futures are polled by a minimal executor, like a Kotlin or Swift one), against a real
//! server started in-process.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use presence_ffi::{
    AgentStatus, Cause, ClientConfig, ClientSnapshot, ClientTuning, DeviceInfo, Platform,
    PresenceClient, PresenceError, PresenceListener, SessionState, StatusRequest,
};

/// Polls `fut` on this thread, parking between wake-ups. No tokio anywhere.
fn block_on<F: Future>(fut: F) -> F::Output {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => thread::park(),
        }
    }
}

struct Server {
    url: String,
    // Keeps the server's runtime (and so the server) alive for the test.
    _runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

struct Credentials {
    account: String,
    email: String,
    password: String,
}

fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let config = presence_server::Config::for_tests(dir.path());
    let server = runtime.block_on(presence_server::start(config)).unwrap();
    let url = server.url();
    runtime.spawn(async move {
        // Own the server handle for as long as the runtime lives.
        let _server = server;
        std::future::pending::<()>().await;
    });
    Server {
        url,
        _runtime: runtime,
        _dir: dir,
    }
}

impl Server {
    fn create_account(&self, slug: &str) -> Credentials {
        let creds = Credentials {
            account: slug.into(),
            email: format!("owner@{slug}.example"),
            password: "correct horse battery".into(),
        };
        let body = serde_json::json!({"name": slug, "slug": slug,
            "owner": {"name": "Owner", "email": creds.email, "password": creds.password}});
        let url = format!("{}/v1/accounts", self.url);
        let status = self._runtime.block_on(async move {
            reqwest::Client::new()
                .post(url)
                .bearer_auth("test-admin-token")
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
        });
        assert_eq!(status, 201);
        creds
    }
}

fn config(url: &str, dir: &std::path::Path) -> ClientConfig {
    ClientConfig {
        server_url: Some(url.to_owned()),
        data_dir: dir.to_string_lossy().into_owned(),
        device: DeviceInfo {
            platform: Platform::Android,
            name: "ffi test".into(),
            app_version: "0".into(),
        },
        tuning: Some(ClientTuning {
            request_timeout_ms: Some(3_000),
            backoff_base_ms: Some(50),
            backoff_cap_ms: Some(500),
            ..ClientTuning::default()
        }),
    }
}

/// Records every snapshot and the thread it arrived on.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<(String, ClientSnapshot)>>,
}

impl PresenceListener for Recorder {
    fn on_snapshot(&self, snapshot: ClientSnapshot) -> Result<(), PresenceError> {
        let thread = thread::current().name().unwrap_or("").to_owned();
        self.seen.lock().unwrap().push((thread, snapshot));
        Ok(())
    }
}

impl Recorder {
    fn wait_for(&self, what: &str, pred: impl Fn(&ClientSnapshot) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.seen.lock().unwrap().iter().any(|(_, s)| pred(s)) {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
        panic!("no snapshot with {what}");
    }
}

#[test]
fn exports_run_on_the_crate_runtime_without_one_on_the_caller() {
    let server = server();
    let creds = server.create_account("ffi-runtime");
    let dir = tempfile::tempdir().unwrap();
    let client = block_on(PresenceClient::open(config(&server.url, dir.path()))).unwrap();
    let recorder = Arc::new(Recorder::default());
    let subscription = client.subscribe(recorder.clone());

    block_on(client.login(creds.account, creds.email, creds.password)).unwrap();
    block_on(client.set_status(AgentStatus::Busy)).unwrap();
    assert_eq!(client.snapshot().status.unwrap().current, AgentStatus::Busy);
    recorder.wait_for("busy confirmed", |s| {
        s.session.state == SessionState::Active
            && s.status
                .as_ref()
                .is_some_and(|st| st.confirmed == AgentStatus::Busy && !st.pending)
    });
    for (thread, _) in recorder.seen.lock().unwrap().iter() {
        assert!(
            thread.starts_with("presence-rt"),
            "listener ran on {thread:?}"
        );
    }

    subscription.cancel();
    block_on(client.shutdown());
    match block_on(client.set_status(AgentStatus::Online)) {
        Err(PresenceError::Internal { .. }) => {}
        other => panic!("a shut-down client answered {other:?}"),
    }
}

#[test]
fn errors_cross_as_presence_error_with_a_detail() {
    let server = server();
    let creds = server.create_account("ffi-errors");
    let dir = tempfile::tempdir().unwrap();
    let client = block_on(PresenceClient::open(config(&server.url, dir.path()))).unwrap();
    match block_on(client.login(creds.account, creds.email, "wrong".into())) {
        Err(PresenceError::Unauthorized { detail }) => assert!(!detail.is_empty()),
        other => panic!("wrong password gave {other:?}"),
    }
    match block_on(client.handle_push("{\"v\":1,\"type\":\"dance\"}".into())) {
        Err(PresenceError::InvalidInput { detail }) => assert!(!detail.is_empty()),
        other => panic!("malformed push gave {other:?}"),
    }
}

#[test]
fn a_client_released_on_a_plain_thread_while_working_does_not_panic() {
    let server = server();
    let creds = server.create_account("ffi-drop");
    let dir = tempfile::tempdir().unwrap();
    let client = block_on(PresenceClient::open(config(&server.url, dir.path()))).unwrap();
    let recorder = Arc::new(Recorder::default());
    client.set_listener(Some(recorder.clone()));
    block_on(client.login(creds.account, creds.email, creds.password)).unwrap();
    recorder.wait_for("an active session", |s| {
        s.session.state == SessionState::Active
    });
    // Like a JVM Cleaner thread: no runtime, last reference, engine still running.
    thread::Builder::new()
        .name("finalizer".into())
        .spawn(move || drop(client))
        .unwrap()
        .join()
        .expect("dropping the client panicked");
}

#[test]
fn timed_status_activity_and_log_exports_cross_from_a_plain_thread() {
    let server = server();
    let creds = server.create_account("ffi-timed");
    let dir = tempfile::tempdir().unwrap();
    let client = block_on(PresenceClient::open(config(&server.url, dir.path()))).unwrap();
    let recorder = Arc::new(Recorder::default());
    client.set_listener(Some(recorder.clone()));
    block_on(client.login(creds.account, creds.email, creds.password)).unwrap();
    // Not async: a plain call from any thread.
    client.report_idle(Some(0));

    block_on(client.set_status_with(StatusRequest {
        status: AgentStatus::Busy,
        duration_ms: Some(600_000),
        then: Some(AgentStatus::Online),
        custom_status: None,
        note: Some("dentist".into()),
    }))
    .unwrap();
    let until = client.snapshot().status.unwrap().until.expect("until");
    recorder.wait_for("the timed busy confirmed", |s| {
        s.status.as_ref().is_some_and(|st| {
            !st.pending && st.confirmed == AgentStatus::Busy && st.until == Some(until)
        })
    });

    let page = block_on(client.status_log(Some(10), None)).unwrap();
    let e = &page.entries[0];
    assert_eq!(e.status, AgentStatus::Busy);
    assert_eq!((e.until, e.then), (Some(until), Some(AgentStatus::Online)));
    assert_eq!(e.note.as_deref(), Some("dentist"));
    assert_eq!(e.cause, Cause::Manual);
    assert_eq!(e.intent_at, until - 600_000);
    // `intent_at` is the device's estimate of the server's clock, which may run a few
    // milliseconds ahead of it: applied at (about) the moment chosen, never long before.
    assert!(
        e.applied_at >= e.intent_at - 1_000,
        "applied at {}, chosen at {}",
        e.applied_at,
        e.intent_at
    );

    match block_on(client.set_status_with(StatusRequest {
        status: AgentStatus::Busy,
        duration_ms: Some(1),
        then: None,
        custom_status: None,
        note: None,
    })) {
        Err(PresenceError::InvalidInput { detail }) => assert!(detail.starts_with("duration_ms")),
        other => panic!("a 1 ms status gave {other:?}"),
    }
    match block_on(client.status_log(Some(0), None)) {
        Err(PresenceError::InvalidInput { detail }) => assert!(detail.starts_with("limit")),
        other => panic!("a limit of 0 gave {other:?}"),
    }
    block_on(client.shutdown());
}

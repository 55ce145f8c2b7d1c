//! What the engine's and the CLI's tests share, in one place: the real server started
//! in-process, account creation through the admin route, device configs with short timings,
//! waiting for a snapshot condition with a generous deadline (never a bare sleep), and the
//! harnesses in the modules below.
//!
//! - [`fake`]: an in-memory fake server for paused-time tests.
//! - [`proxy`]: a fault-injecting TCP proxy.
//! - [`webhook`]: a loopback receiver for the server's webhook push provider.
//! - [`push`]: wire-level doubles of FCM (with its OAuth2 token endpoint), APNs and a
//!   UnifiedPush endpoint.
//! - [`fsync`]: a SQLite VFS that counts the syncs a database really asks the disk for.
//! - [`stores`]: real PostgreSQL and Redis (standalone and a six-node cluster) on free
//!   loopback ports, in temp dirs, never left running.
//! - [`phone`]: what an engine costs a phone per hour of each lifecycle state (shared by the
//!   tests and `cargo xtask bench`).

pub mod fake;
pub mod fsync;
pub mod phone;
pub mod proxy;
pub mod push;
pub mod stores;
pub mod webhook;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use presence_core::{
    ClientConfig, ClientSnapshot, DeviceInfo, Overrides, Platform, PresenceClient,
};
use serde_json::{Value, json};

/// Long enough for a loaded CI machine; tests finish as soon as the condition holds.
pub const DEADLINE: Duration = Duration::from_secs(20);

pub struct TestServer {
    server: Option<presence_server::Server>,
    pub dir: tempfile::TempDir,
    pub addr: SocketAddr,
    config: presence_server::Config,
}

pub struct Account {
    pub slug: String,
    pub email: String,
    pub password: String,
    pub widget_key: String,
    pub owner_id: String,
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut presence_server::Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = presence_server::Config::for_tests(dir.path());
        tweak(&mut config);
        let server = presence_server::start(config.clone())
            .await
            .expect("server starts");
        let addr = server.addr();
        config.listen = addr;
        TestServer {
            server: Some(server),
            dir,
            addr,
            config,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }

    /// Starts again on the same data dir and address.
    pub async fn restart(&mut self) {
        self.stop().await;
        let mut tries = 0;
        loop {
            match presence_server::start(self.config.clone()).await {
                Ok(s) => {
                    self.server = Some(s);
                    return;
                }
                // The port may linger a moment after shutdown.
                Err(e) if tries < 50 => {
                    tries += 1;
                    eprintln!("restart: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("server restart failed: {e}"),
            }
        }
    }

    pub async fn create_account(&self, slug: &str) -> Account {
        let email = format!("owner@{slug}.example");
        let password = "correct horse battery".to_owned();
        let (status, body) = http(
            "POST",
            &format!("{}/v1/accounts", self.url()),
            Some("test-admin-token"),
            Some(json!({"name": slug, "slug": slug,
                        "owner": {"name": "Owner", "email": email, "password": password}})),
        )
        .await;
        assert_eq!(status, 201, "create account: {body}");
        Account {
            slug: slug.to_owned(),
            email,
            password,
            widget_key: body["account"]["widget_key"].as_str().unwrap().to_owned(),
            owner_id: body["owner"]["id"].as_str().unwrap().to_owned(),
        }
    }

    /// Logs in over plain HTTP (a device that is not an engine) and returns the token.
    pub async fn raw_login(&self, acct: &Account, device_id: &str) -> String {
        let (status, body) = http(
            "POST",
            &format!("{}/v1/login", self.url()),
            None,
            Some(
                json!({"account": acct.slug, "email": acct.email, "password": acct.password,
                        "device": {"id": device_id, "platform": "web", "name": "raw",
                                   "app_version": "0"}}),
            ),
        )
        .await;
        assert_eq!(status, 200, "login: {body}");
        body["token"].as_str().unwrap().to_owned()
    }

    pub async fn me(&self, token: &str) -> Value {
        let (status, body) = http("GET", &format!("{}/v1/me", self.url()), Some(token), None).await;
        assert_eq!(status, 200, "me: {body}");
        body
    }

    pub async fn widget(&self, acct: &Account) -> Value {
        let (status, body) = http(
            "GET",
            &format!("{}/v1/widget/{}/status", self.url(), acct.widget_key),
            None,
            None,
        )
        .await;
        assert_eq!(status, 200, "widget: {body}");
        body
    }
}

/// One JSON request; returns the status and the body (`null` when empty).
pub async fn http(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut req = client.request(method.parse().unwrap(), url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap_or_default();
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (status, value)
}

/// Short timings so failures and reconnects resolve quickly.
pub fn fast_overrides() -> Overrides {
    Overrides {
        request_timeout: Duration::from_secs(3),
        backoff_base: Duration::from_millis(50),
        backoff_cap: Duration::from_millis(500),
        sse_idle_timeout: Duration::from_secs(30),
        store_poll_interval: Some(Duration::from_millis(200)),
        ..Overrides::default()
    }
}

pub fn config(url: &str, dir: &Path) -> ClientConfig {
    ClientConfig {
        server_url: Some(url.to_owned()),
        data_dir: dir.to_path_buf(),
        device: DeviceInfo {
            platform: Platform::Desktop,
            name: "test device".into(),
            app_version: "0.0.0-test".into(),
        },
        overrides: fast_overrides(),
    }
}

/// A logged-in device of `acct`'s owner with its own data dir.
pub struct Device {
    pub client: PresenceClient,
    pub dir: tempfile::TempDir,
}

pub async fn device(url: &str, acct: &Account) -> Device {
    device_with(url, acct, |_| {}).await
}

pub async fn device_with(
    url: &str,
    acct: &Account,
    tweak: impl FnOnce(&mut ClientConfig),
) -> Device {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(url, dir.path());
    tweak(&mut cfg);
    let client = PresenceClient::open(cfg).await.expect("open");
    client
        .login(&acct.slug, &acct.email, &acct.password)
        .await
        .expect("login");
    Device { client, dir }
}

/// Waits until `pred` holds for a snapshot of `client`; panics with the last snapshot after
/// [`DEADLINE`].
pub async fn wait_until(
    client: &PresenceClient,
    what: &str,
    pred: impl FnMut(&ClientSnapshot) -> bool,
) -> ClientSnapshot {
    match client.wait_for(DEADLINE, pred).await {
        Some(s) => s,
        None => panic!(
            "timed out waiting for {what}; last snapshot:\n{}",
            serde_json::to_string_pretty(&client.snapshot()).unwrap()
        ),
    }
}

/// Polls an async condition (for server-side facts that have no channel) until it holds.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn status_of(
    s: &ClientSnapshot,
) -> Option<(presence_core::AgentStatus, presence_core::AgentStatus, bool)> {
    s.status.map(|st| (st.current, st.confirmed, st.pending))
}

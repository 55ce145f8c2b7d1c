//! Test harness for end-to-end tests: a real server on loopback (in-process via
//! [`presence_server::start`], or the real binary), an HTTP client speaking the contract, and
//! an SSE reader that waits for events with generous deadlines instead of sleeping.

use std::time::Duration;

use futures_util::StreamExt;
use presence_protocol::Settings;
use serde_json::{Value, json};

pub const ADMIN_TOKEN: &str = "test-admin-token";
/// How long a test waits for something that should happen at once. Generous: the machines
/// running tests are shared and noisy.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// A server running in this process on a free loopback port, with its own data dir.
///
/// With `PRESENCE_TEST_BACKEND=cluster` in the environment, every such server is instead a
/// cluster node on a fresh PostgreSQL database and a Redis of its own, so the same tests pin
/// that both backends behave alike.
pub struct TestServer {
    pub server: presence_server::Server,
    pub url: String,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
    /// The Redis of a cluster-mode server.
    pub redis: Option<presence_test_support::stores::Redis>,
}

/// Whether tests run their servers in cluster mode (`PRESENCE_TEST_BACKEND=cluster`).
pub fn cluster_mode() -> bool {
    std::env::var("PRESENCE_TEST_BACKEND").is_ok_and(|v| v == "cluster")
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::with(|_| {}).await
    }

    /// Starts with the test config changed by `f` (timings, allow-list).
    pub async fn with(f: impl FnOnce(&mut presence_server::Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = presence_server::Config::for_tests(dir.path());
        let mut redis = None;
        if cluster_mode() {
            let r = presence_test_support::stores::Redis::start();
            cfg.cluster = Some(presence_server::cluster::ClusterConfig {
                postgres_url: presence_test_support::stores::shared_postgres().fresh_database(),
                redis_urls: vec![r.url()],
            });
            redis = Some(r);
        }
        f(&mut cfg);
        let server = presence_server::start(cfg).await.expect("server starts");
        let url = server.url();
        TestServer {
            server,
            url,
            dir,
            client: client(),
            redis,
        }
    }

    pub fn api(&self) -> Api {
        Api {
            url: self.url.clone(),
            client: self.client.clone(),
        }
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// Settings with short leases for expiry tests.
pub fn fast_settings() -> Settings {
    Settings {
        active_interval_ms: 200,
        active_ttl_ms: 1000,
        background_ttl_ms: 3000,
        renew_margin_ms: 1500,
    }
}

/// A thin client of the contract: every call returns (status, JSON body or Null).
#[derive(Clone)]
pub struct Api {
    pub url: String,
    pub client: reqwest::Client,
}

pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    /// The error code of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

impl Api {
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut req = self.client.request(method, format!("{}{}", self.url, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request reaches the server");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.call(reqwest::Method::GET, path, token, None).await
    }
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }
    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.call(reqwest::Method::PUT, path, token, Some(body))
            .await
    }
    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.call(reqwest::Method::PATCH, path, token, Some(body))
            .await
    }
    pub async fn delete(&self, path: &str, token: Option<&str>) -> Resp {
        self.call(reqwest::Method::DELETE, path, token, None).await
    }

    /// Creates an account whose owner is `owner@<slug>.test` with password `pw-owner`.
    pub async fn create_account(&self, slug: &str) -> Account {
        let r = self
            .post(
                "/v1/accounts",
                Some(ADMIN_TOKEN),
                json!({"name": format!("{slug} Inc"), "slug": slug,
                       "owner": {"name": "Owner", "email": format!("owner@{slug}.test"),
                                 "password": "pw-owner"}}),
            )
            .await;
        assert_eq!(r.status, 201, "create account: {}", r.body);
        let owner = self
            .login(slug, &format!("owner@{slug}.test"), "pw-owner", "owner-dev")
            .await;
        Account {
            slug: slug.to_owned(),
            id: r.body["account"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            widget_key: r.body["account"]["widget_key"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            owner_token: owner.token,
            owner_id: r.body["owner"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        }
    }

    /// Logs in with a device id; panics unless it succeeds.
    pub async fn login(&self, slug: &str, email: &str, password: &str, device: &str) -> Session {
        let r = self
            .login_raw(slug, email, password, device, Value::Null)
            .await;
        assert_eq!(r.status, 200, "login: {}", r.body);
        Session::from_login(&r.body)
    }

    pub async fn login_raw(
        &self,
        slug: &str,
        email: &str,
        password: &str,
        device: &str,
        push: Value,
    ) -> Resp {
        self.post(
            "/v1/login",
            None,
            json!({"account": slug, "email": email, "password": password,
                   "device": {"id": device, "platform": "desktop", "name": device,
                              "app_version": "1.0.0"},
                   "push": push}),
        )
        .await
    }

    /// Adds an agent (password `pw-<name>`) through the admin API.
    pub async fn add_agent(&self, acc: &Account, name: &str, groups: &[&str]) -> String {
        let r = self
            .post(
                "/v1/admin/agents",
                Some(&acc.owner_token),
                json!({"name": name, "email": format!("{name}@{}.test", acc.slug),
                       "password": format!("pw-{name}"), "groups": groups, "role": "agent"}),
            )
            .await;
        assert_eq!(r.status, 201, "add agent: {}", r.body);
        r.body["id"].as_str().unwrap_or_default().to_owned()
    }

    pub async fn login_agent(&self, acc: &Account, name: &str, device: &str) -> Session {
        self.login(
            &acc.slug,
            &format!("{name}@{}.test", acc.slug),
            &format!("pw-{name}"),
            device,
        )
        .await
    }

    pub async fn set_status(&self, s: &Session, status: &str) -> Resp {
        self.put(
            "/v1/me/status",
            Some(&s.token),
            json!({"status": status, "op_id": new_op_id()}),
        )
        .await
    }

    pub async fn widget(&self, acc: &Account) -> Value {
        let r = self
            .get(&format!("/v1/widget/{}/status", acc.widget_key), None)
            .await;
        assert_eq!(r.status, 200);
        r.body
    }

    pub async fn put_groups(&self, acc: &Account, groups: &[(&str, &str)]) {
        let body: Vec<Value> = groups
            .iter()
            .map(|(k, n)| json!({"key": k, "name": n}))
            .collect();
        let r = self
            .put(
                "/v1/admin/groups",
                Some(&acc.owner_token),
                Value::Array(body),
            )
            .await;
        assert_eq!(r.status, 200, "groups: {}", r.body);
    }

    /// Opens an SSE stream.
    pub async fn sse(&self, path: &str, token: Option<&str>) -> Sse {
        let mut req = self
            .client
            .get(format!("{}{}", self.url, path))
            .timeout(Duration::from_secs(3600));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("stream opens");
        assert_eq!(resp.status().as_u16(), 200, "stream status");
        Sse {
            stream: Box::pin(resp.bytes_stream()),
            buf: String::new(),
            retry: None,
        }
    }
}

pub fn new_op_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

pub struct Account {
    pub slug: String,
    pub id: String,
    pub widget_key: String,
    pub owner_token: String,
    pub owner_id: String,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub token: String,
    pub session_id: String,
    pub agent_id: String,
    pub login: Value,
}

impl Session {
    pub fn from_login(v: &Value) -> Session {
        Session {
            token: v["token"].as_str().unwrap_or_default().to_owned(),
            session_id: v["session_id"].as_str().unwrap_or_default().to_owned(),
            agent_id: v["agent"]["id"].as_str().unwrap_or_default().to_owned(),
            login: v.clone(),
        }
    }
}

type ByteStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// Reads `event:`/`data:` frames from an SSE response; comments are skipped.
pub struct Sse {
    stream: ByteStream,
    buf: String,
    /// The last `retry:` value the stream sent.
    pub retry: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Event {
    pub name: String,
    pub data: Value,
    /// The event's `id:` line, if it had one.
    pub id: Option<String>,
}

impl Sse {
    /// The next event, or `None` if the stream ended. Panics after [`DEADLINE`].
    pub async fn next(&mut self) -> Option<Event> {
        self.next_within(DEADLINE)
            .await
            .expect("an event within the deadline")
    }

    /// `Err(())` on timeout, `Ok(None)` when the stream ended.
    pub async fn next_within(&mut self, d: Duration) -> Result<Option<Event>, ()> {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            if let Some(pos) = self.buf.find("\n\n") {
                let frame: String = self.buf.drain(..pos + 2).collect();
                let mut name = String::from("message");
                let mut data = String::new();
                let mut id = None;
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    } else if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("retry:") {
                        self.retry = Some(v.trim().to_owned());
                    }
                }
                if data.is_empty() {
                    continue; // a comment, or a `retry:` line on its own
                }
                let data = serde_json::from_str(&data).unwrap_or(Value::String(data));
                return Ok(Some(Event { name, data, id }));
            }
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return Err(()),
                Ok(None) | Ok(Some(Err(_))) => return Ok(None),
                Ok(Some(Ok(bytes))) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
            }
        }
    }

    /// Skips events until one named `name` satisfies `pred`.
    pub async fn wait_for(&mut self, name: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_within(left).await {
                Ok(Some(ev)) if ev.name == name && pred(&ev.data) => return ev.data,
                Ok(Some(_)) => continue,
                Ok(None) => panic!("stream ended while waiting for {name}"),
                Err(()) => panic!("no matching {name} event within {DEADLINE:?}"),
            }
        }
    }
}

/// A loopback HTTP receiver for webhook pushes: every POSTed JSON body is sent on the channel.
pub struct PushReceiver {
    pub url: String,
    pub rx: tokio::sync::mpsc::UnboundedReceiver<Value>,
}

impl PushReceiver {
    pub async fn start() -> PushReceiver {
        use axum::routing::post;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let app = axum::Router::new().route(
            "/push",
            post(move |body: axum::Json<Value>| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(body.0);
                    axum::http::StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind push receiver");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        PushReceiver {
            url: format!("http://{addr}/push"),
            rx,
        }
    }

    /// The next push whose `type` is `kind`, skipping others.
    pub async fn next_of(&mut self, kind: &str) -> Value {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(v)) if v["type"] == kind => return v,
                Ok(Some(_)) => continue,
                _ => panic!("no {kind} push within {DEADLINE:?}"),
            }
        }
    }
}

/// A free loopback port (for restarting the binary on the same address).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

// ----- raw requests, error shapes and polling (route tests) -------------------------------------

/// Reads a response the way [`Api::call`] does: JSON body, or the text as a string, or Null.
pub async fn read_resp(resp: reqwest::Response) -> Resp {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Resp {
        status,
        headers,
        body,
    }
}

impl Resp {
    /// Asserts an error answer: the HTTP status, the code, and a body that is exactly
    /// `{"error": {"code": string, "detail": non-empty string}}`. Returns the detail.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status, status, "status (body {})", self.body);
        let outer = self
            .body
            .as_object()
            .unwrap_or_else(|| panic!("error body is a JSON object: {}", self.body));
        assert_eq!(outer.len(), 1, "error body has only `error`: {}", self.body);
        let inner = self.body["error"]
            .as_object()
            .unwrap_or_else(|| panic!("`error` is an object: {}", self.body));
        assert_eq!(
            inner.len(),
            2,
            "`error` has only code and detail: {}",
            self.body
        );
        assert_eq!(
            self.body["error"]["code"].as_str(),
            Some(code),
            "code: {}",
            self.body
        );
        let detail = self.body["error"]["detail"]
            .as_str()
            .unwrap_or_else(|| panic!("detail is a string: {}", self.body));
        assert!(
            !detail.trim().is_empty(),
            "detail is not empty: {}",
            self.body
        );
        detail.to_owned()
    }

    /// A header as text, if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

impl Api {
    /// A request builder for `path`, for what the contract client does not cover (raw bodies,
    /// other content types, extra headers).
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}{}", self.url, path))
    }

    /// Sends a prepared request and reads the whole answer (not for open event streams).
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Resp {
        read_resp(req.send().await.expect("request reaches the server")).await
    }

    /// Opens an event stream with a prepared request; returns its status, headers and reader.
    pub async fn open_stream(
        &self,
        req: reqwest::RequestBuilder,
    ) -> (u16, reqwest::header::HeaderMap, Sse) {
        let resp = req
            .timeout(Duration::from_secs(3600))
            .send()
            .await
            .expect("stream opens");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (
            status,
            headers,
            Sse {
                stream: Box::pin(resp.bytes_stream()),
                buf: String::new(),
                retry: None,
            },
        )
    }
}

/// Polls `check` every 25 ms until it returns true; panics with `what` after `deadline`.
pub async fn eventually<F, Fut>(what: &str, deadline: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() >= end {
            panic!("{what}: not within {deadline:?}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

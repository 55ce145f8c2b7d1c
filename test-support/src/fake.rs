//! An in-memory fake of the presence server, plugged in through `Overrides::transport`.
//!
//! It answers every route the engine uses with protocol-shaped JSON, logs each request with
//! the tokio instant it arrived at (so paused-time tests can measure cadence and backoff),
//! and lets a test override any answer. No sockets are involved, so tokio's paused clock
//! only moves when every task is idle, exactly as the tests expect.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use presence_core::transport::{Method, Request, Response, Transport, TransportError};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Server time at tokio's start instant in these tests.
pub const EPOCH_MS: i64 = 1_800_000_000_000;

type Override = Box<dyn FnMut(&Request) -> Option<Result<Response, TransportError>> + Send>;

pub struct LoggedRequest {
    pub at: Instant,
    pub method: Method,
    pub path: String,
    pub body: Option<Value>,
}

struct State {
    started: Instant,
    /// Server time follows the device's wall clock instead of tokio's (see
    /// [`FakeServer::follow_wall_clock`]).
    wall_clock: bool,
    log: Vec<LoggedRequest>,
    overrides: VecDeque<Override>,
    status: Value,
    version: i64,
    interval_ms: i64,
    ttl_ms: i64,
    logins: usize,
    /// `(interval_ms, ttl_ms)` answered to background heartbeats once a push registration
    /// arrived, as the real server grants a background lease only with one.
    background: Option<(i64, i64)>,
    push_registered: bool,
    /// When the lease the last heartbeat granted ends (tokio's clock, which the scenarios
    /// sleep on), and whether it was a background one.
    lease_end: Instant,
    lease_background: bool,
    streams: Vec<mpsc::UnboundedSender<Result<Bytes, TransportError>>>,
}

#[derive(Clone)]
pub struct FakeServer {
    state: Arc<Mutex<State>>,
    notify: Arc<tokio::sync::Notify>,
}

impl FakeServer {
    pub fn new() -> FakeServer {
        FakeServer {
            state: Arc::new(Mutex::new(State {
                started: Instant::now(),
                wall_clock: false,
                log: Vec::new(),
                overrides: VecDeque::new(),
                status: json!("offline"),
                version: 1,
                interval_ms: 20_000,
                ttl_ms: 60_000,
                logins: 0,
                background: None,
                push_registered: false,
                lease_end: Instant::now(),
                lease_background: false,
                streams: Vec::new(),
            })),
            notify: Arc::new(tokio::sync::Notify::new()),
        }
    }

    pub fn transport(&self) -> Arc<dyn Transport> {
        Arc::new(self.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// Server time now: `EPOCH_MS` plus tokio time since the fake was made.
    pub fn now_ms(&self) -> i64 {
        let s = self.lock();
        if s.wall_clock {
            return wall_ms();
        }
        EPOCH_MS + Instant::now().duration_since(s.started).as_millis() as i64
    }

    /// From now on, server time is the device's wall clock. Under paused time tokio's clock
    /// jumps hours while the wall clock does not, so by default every answer tells the engine
    /// that the device's clock drifted by the time skipped, and the engine stores each new
    /// estimate; a real device's offset stays put. Scenarios that count writes use this.
    pub fn follow_wall_clock(&self) {
        self.lock().wall_clock = true;
    }

    pub fn set_interval(&self, interval_ms: i64, ttl_ms: i64) {
        let mut s = self.lock();
        s.interval_ms = interval_ms;
        s.ttl_ms = ttl_ms;
    }

    /// When the lease the last heartbeat (or login) granted ends, on tokio's clock.
    pub fn lease_end(&self) -> Instant {
        self.lock().lease_end
    }

    /// Background leases: background heartbeats of a session with a push registration get
    /// these terms (the real server's are `background_ttl - renew_margin` and
    /// `background_ttl`).
    pub fn set_background_terms(&self, interval_ms: i64, ttl_ms: i64) {
        self.lock().background = Some((interval_ms, ttl_ms));
    }

    /// Answers requests for which `f` returns `Some` with its answer, until `f` is removed.
    /// Overrides are consulted in the order added.
    pub fn intercept(
        &self,
        f: impl FnMut(&Request) -> Option<Result<Response, TransportError>> + Send + 'static,
    ) {
        self.lock().overrides.push_back(Box::new(f));
    }

    pub fn clear_intercepts(&self) {
        self.lock().overrides.clear();
    }

    /// Instants at which requests to `path` (exact) arrived.
    pub fn times(&self, method: Method, path: &str) -> Vec<Instant> {
        self.lock()
            .log
            .iter()
            .filter(|r| r.method == method && r.path == path)
            .map(|r| r.at)
            .collect()
    }

    pub fn count(&self, method: Method, path: &str) -> usize {
        self.times(method, path).len()
    }

    pub fn bodies(&self, method: Method, path: &str) -> Vec<Value> {
        self.lock()
            .log
            .iter()
            .filter(|r| r.method == method && r.path == path)
            .filter_map(|r| r.body.clone())
            .collect()
    }

    pub fn total(&self) -> usize {
        self.lock().log.len()
    }

    /// Waits (on tokio's clock, so paused time advances) until `n` requests to `path` arrived.
    pub async fn wait_requests(&self, method: Method, path: &str, n: usize) {
        loop {
            let notified = self.notify.notified();
            if self.count(method, path) >= n {
                return;
            }
            notified.await;
        }
    }

    /// Sends an event on every open event stream.
    pub fn push_event(&self, event: &str, data: &Value) {
        let chunk = Bytes::from(format!("event: {event}\ndata: {data}\n\n"));
        self.lock()
            .streams
            .retain(|tx| tx.send(Ok(chunk.clone())).is_ok());
    }

    /// Ends every open event stream (as a server restart would).
    pub fn close_streams(&self) {
        self.lock().streams.clear();
    }

    pub fn status_view(&self) -> Value {
        let s = self.lock();
        json!({"status": s.status, "version": s.version, "intent_at": EPOCH_MS,
               "changed_by_device": null})
    }

    pub fn chatbox_view(version: i64) -> Value {
        json!({"status": "offline", "reason": "no_agents_online", "version": version,
               "next_change_at": null, "groups": []})
    }

    fn answer(&self, req: &Request) -> Result<Response, TransportError> {
        let now_ms = self.now_ms();
        let mut s = self.lock();
        s.log.push(LoggedRequest {
            at: Instant::now(),
            method: req.method,
            path: req.path.clone(),
            body: req.body_json(),
        });
        for i in 0..s.overrides.len() {
            if let Some(r) = (s.overrides[i])(req) {
                return r;
            }
        }
        let background = req.body_json().is_some_and(|b| b["mode"] == "background");
        let (interval_ms, ttl_ms) = match s.background {
            Some(terms) if background && s.push_registered => terms,
            _ => (s.interval_ms, s.ttl_ms),
        };
        // The real server's rule: a background lease renewed in its renew window runs on
        // from its old end. Worked out on tokio's clock (ms since start), answered on the
        // server's.
        let tokio_ms = |at: Instant| at.duration_since(s.started).as_millis() as i64;
        let (now, prev_end) = (tokio_ms(Instant::now()), tokio_ms(s.lease_end));
        let end = match s.background {
            Some((bg_interval, bg_ttl)) if background && s.push_registered => {
                let settings = presence_protocol::Settings {
                    active_interval_ms: s.interval_ms,
                    active_ttl_ms: s.ttl_ms,
                    background_ttl_ms: bg_ttl,
                    renew_margin_ms: bg_ttl - bg_interval,
                };
                presence_server::rules::renewed_lease_until(
                    &settings,
                    s.lease_background,
                    presence_protocol::Mode::Background,
                    true,
                    prev_end,
                    now,
                )
            }
            _ => now + ttl_ms,
        };
        let lease_until = now_ms + (end - now);
        if req.path == "/v1/session/heartbeat" || req.path == "/v1/login" {
            s.lease_end = s.started + Duration::from_millis(end.max(0) as u64);
            s.lease_background = background && s.push_registered && s.background.is_some();
        }
        let heartbeat = json!({"interval_ms": interval_ms, "ttl_ms": ttl_ms,
                               "lease_until": lease_until, "server_time": now_ms,
                               "status_version": s.version});
        let status_view = json!({"status": s.status, "version": s.version,
                                 "intent_at": EPOCH_MS, "changed_by_device": null});
        let agent = json!({"id": "agent-1", "name": "Ann", "email": "ann@example.com",
                           "groups": [], "role": "owner"});
        Ok(match (req.method, req.path.as_str()) {
            (Method::Post, "/v1/login") => {
                s.logins += 1;
                let n = s.logins;
                Response::json(
                    200,
                    &json!({"token": format!("tok-{n}"), "session_id": format!("sess-{n}"),
                            "agent": agent, "status": status_view, "heartbeat": heartbeat,
                            "server_time": now_ms}),
                )
            }
            (Method::Post, "/v1/session/heartbeat") => Response::json(200, &heartbeat),
            (Method::Get, "/v1/me") => Response::json(
                200,
                &json!({"agent": agent, "status": status_view,
                        "chatbox": FakeServer::chatbox_view(1), "sessions": []}),
            ),
            (Method::Put, "/v1/me/status") => {
                let body = req.body_json().unwrap_or_default();
                s.status = body["status"].clone();
                s.version += 1;
                let view = json!({"status": s.status, "version": s.version,
                                  "intent_at": body["intent_at"], "changed_by_device": null});
                Response::json(200, &json!({"applied": true, "status": view}))
            }
            (Method::Get, "/v1/me/events") => {
                let (tx, rx) = mpsc::unbounded_channel();
                let first = format!(
                    "event: snapshot\ndata: {}\n\n",
                    json!({"status": status_view, "chatbox": FakeServer::chatbox_view(1)})
                );
                let _ = tx.send(Ok(Bytes::from(first)));
                s.streams.push(tx);
                let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                    rx.recv().await.map(|item| (item, rx))
                });
                Response::stream(200, stream)
            }
            (Method::Put, "/v1/session/push") => {
                s.push_registered = true;
                Response::bytes(204, Bytes::new())
            }
            (Method::Delete, "/v1/session") => Response::bytes(204, Bytes::new()),
            _ => Response::json(
                404,
                &json!({"error": {"code": "not_found", "detail": "fake has no such route"}}),
            ),
        })
    }
}

impl Default for FakeServer {
    fn default() -> Self {
        FakeServer::new()
    }
}

impl Transport for FakeServer {
    fn send(&self, request: Request) -> BoxFuture<'static, Result<Response, TransportError>> {
        let result = self.answer(&request);
        self.notify.notify_waiters();
        Box::pin(async move { result })
    }
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A protocol error answer.
pub fn error(status: u16, code: &str, detail: &str) -> Response {
    Response::json(status, &json!({"error": {"code": code, "detail": detail}}))
}

/// Matches a request by method and path.
pub fn is(req: &Request, method: Method, path: &str) -> bool {
    req.method == method && req.path == path
}

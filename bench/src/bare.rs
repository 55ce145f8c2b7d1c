//! The baselines: trivial axum handlers in their own process, on the same default
//! multi-threaded tokio runtime as our server, with no auth, no storage and no middleware.
//!
//! - `POST /v1/session/heartbeat` answers a heartbeat-shaped JSON body.
//! - `GET /v1/widget/{key}/events` is an SSE stream of one shared `watch` channel, and
//!   `PUT /v1/me/status` replaces its value: the least any axum server must do to fan one
//!   change out to many event streams.

use std::io::Write;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use serde_json::{Value, json};
use tokio::sync::watch;

#[derive(Clone)]
struct Fan {
    tx: std::sync::Arc<watch::Sender<Bytes>>,
    version: std::sync::Arc<AtomicU64>,
}

fn frame(version: u64, status: &str) -> Bytes {
    Bytes::from(format!(
        "event: chatbox\ndata: {{\"status\":\"{status}\",\"version\":{version}}}\n\n"
    ))
}

async fn events(State(f): State<Fan>) -> impl IntoResponse {
    let rx = f.tx.subscribe();
    let st = futures_util::stream::unfold((rx, true), |(mut rx, first)| async move {
        if !first && rx.changed().await.is_err() {
            return None;
        }
        let b = rx.borrow_and_update().clone();
        Some((Ok::<_, Infallible>(b), (rx, false)))
    });
    (
        [(header::CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(st),
    )
}

async fn status(State(f): State<Fan>) -> Json<Value> {
    let v = f.version.fetch_add(1, Ordering::Relaxed) + 1;
    f.tx.send_replace(frame(v, if v % 2 == 1 { "online" } else { "busy" }));
    Json(json!({"applied": true}))
}

async fn heartbeat() -> Json<Value> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    Json(json!({
        "interval_ms": 20000, "ttl_ms": 60000, "lease_until": now + 60000,
        "server_time": now, "status_version": 0
    }))
}

pub fn serve(listen: &str) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bare axum: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        let l = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("bare axum: cannot listen on {listen}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let addr = match l.local_addr() {
            Ok(a) => a,
            Err(e) => {
                eprintln!("bare axum: {e}");
                return ExitCode::FAILURE;
            }
        };
        let fan = Fan {
            tx: std::sync::Arc::new(watch::Sender::new(frame(0, "offline"))),
            version: std::sync::Arc::new(AtomicU64::new(0)),
        };
        let app = Router::new()
            .route("/v1/session/heartbeat", post(heartbeat))
            .route("/v1/widget/{key}/events", get(events))
            .route("/v1/me/status", put(status))
            .with_state(fan);
        {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "listening on http://{addr}");
            let _ = out.flush();
        }
        match axum::serve(l, app).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bare axum: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

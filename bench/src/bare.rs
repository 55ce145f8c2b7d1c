//! The baseline: a trivial axum handler on the heartbeat path, in its own process, on the
//! same default multi-threaded tokio runtime as our server. It answers a heartbeat-shaped
//! JSON body and does nothing else: no auth, no state, no middleware.

use std::io::Write;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::routing::post;
use serde_json::{Value, json};

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
        let app = Router::new().route("/v1/session/heartbeat", post(heartbeat));
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

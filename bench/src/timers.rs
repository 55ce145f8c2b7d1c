//! The lag of the changes the server makes by itself at a moment it computed, both measured
//! from that moment to the `status` event on a device stream:
//! - [`Scenario::Timer`]: a timed status's `until` -> its end (cause `timer`) on the agent's
//!   other device; each account sets `busy` for a short duration from one device and
//!   watches from another;
//! - [`Scenario::Idle`]: the moment a heartbeat's activity report implies (its server time
//!   plus the account's `idle_after_ms`, the report saying "active now") -> the idle change
//!   (cause `idle`) on the agent's stream; the next round's report brings the agent back.
//!
//! Accounts are staggered across one duration so the moments do not coincide. The server's
//! clock is mapped onto the bench's by each answer's server time (a status answer's
//! `intent_at`, a heartbeat's `server_time`), taking the answer with the shortest round
//! trip, as the expiry scenario does with logins.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::time::timeout;

use crate::api::{self, Account, e};
use crate::http::{Conn, Sse};
use crate::proc::Res;
use crate::stats::{Samples, Sighting, lags_after_deadlines};

/// How long each timed status lasts, and the accounts' `idle_after_ms`.
pub const DURATION_MS: i64 = 1_000;

/// Which server-made change a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Timer,
    Idle,
}
/// The longest wait for one event.
const EVENT_WAIT: Duration = Duration::from_secs(10);
/// How long a node keeps an account's settings before reading them again.
const CFG_CACHE: Duration = Duration::from_millis(1_100);

static OP_SEQ: AtomicU64 = AtomicU64::new(1);

/// What one run measured.
pub struct TimerLags {
    pub lags: Samples,
    /// Timed statuses whose end never came within the wait.
    pub missed: usize,
}

fn status_body(status: &str) -> String {
    let n = OP_SEQ.fetch_add(1, Ordering::Relaxed);
    json!({
        "status": status,
        "op_id": format!("7100{:04x}-0000-4000-8000-{:012x}", n >> 48, n),
    })
    .to_string()
}

fn timed_body() -> String {
    let mut body: Value = serde_json::from_str(&status_body("busy")).unwrap_or_default();
    body["duration_ms"] = json!(DURATION_MS);
    body["then"] = json!("online");
    body.to_string()
}

/// `accounts` accounts, each making the scenario's change through `set` and watching for the
/// server's through `watch` (the same address for one server), `rounds` each.
pub async fn run(
    scenario: Scenario,
    set: SocketAddr,
    watch: SocketAddr,
    prefix: &str,
    accounts: usize,
    rounds: usize,
) -> Res<TimerLags> {
    let mut accs: Vec<Account> = Vec::new();
    for i in 0..accounts {
        let mut c = Conn::connect(set).await.map_err(e)?;
        let acc = api::create_account(&mut c, &format!("{prefix}-{i}")).await?;
        // Leases that outlive the run: no session lapses while its timers run.
        let setup = api::login(&mut c, &acc, "setup").await?;
        let mut body = json!({"active_interval_ms": 20_000, "active_ttl_ms": 600_000});
        if scenario == Scenario::Idle {
            body["idle_after_ms"] = json!(DURATION_MS);
        }
        let body = body.to_string();
        c.call("PUT", "/v1/admin/settings", Some(&setup.token), Some(&body))
            .await
            .map_err(e)?
            .expect(200, "put settings")
            .map_err(e)?;
        api::logout(&mut c, &setup.token).await?;
        accs.push(acc);
    }
    // Every node reads the new settings before the sessions open.
    tokio::time::sleep(CFG_CACHE).await;
    let anchor = Instant::now();
    let local_ms = move |t: Instant| (t - anchor).as_secs_f64() * 1000.0;
    // Logins a few at a time: a node that has not seen an agent's password pays a full
    // password check, and the checks at once are bounded (503 beyond).
    let gate = Arc::new(Semaphore::new(4));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, acc) in accs.into_iter().enumerate() {
        let gate = gate.clone();
        tasks.spawn(async move {
            let permit = gate.acquire().await.map_err(e)?;
            let mut cs = Conn::connect(set).await.map_err(e)?;
            let setter = api::login(&mut cs, &acc, "setter").await?;
            // Idle needs every session to report: the reporting session watches itself.
            let watcher = match scenario {
                Scenario::Timer => {
                    let mut cw = Conn::connect(watch).await.map_err(e)?;
                    api::login(&mut cw, &acc, "watcher").await?
                }
                Scenario::Idle => setter.clone(),
            };
            drop(permit);
            let mut sse = Sse::open(watch, "/v1/me/events", Some(&watcher.token))
                .await
                .map_err(e)?;
            if scenario == Scenario::Idle {
                let online = status_body("online");
                cs.call("PUT", "/v1/me/status", Some(&setter.token), Some(&online))
                    .await
                    .map_err(e)?
                    .expect(200, "online")
                    .map_err(e)?;
            }
            next_status(&mut sse, |_| true).await?;
            tokio::time::sleep(Duration::from_micros(
                i as u64 * DURATION_MS as u64 * 1000 / accounts as u64,
            ))
            .await;
            // (until, offset estimate, round trip, event time), all local ms but `until`.
            let mut seen: Vec<Sighting> = Vec::new();
            let mut missed = 0usize;
            for _ in 0..rounds {
                let sent = Instant::now();
                let (method, path, body) = match scenario {
                    Scenario::Timer => ("PUT", "/v1/me/status", timed_body()),
                    Scenario::Idle => (
                        "POST",
                        "/v1/session/heartbeat",
                        json!({"idle_ms": 0}).to_string(),
                    ),
                };
                let resp = cs
                    .call(method, path, Some(&setter.token), Some(&body))
                    .await
                    .map_err(e)?
                    .expect(200, path)
                    .map_err(e)?;
                let v = resp.json().map_err(e)?;
                // (the moment the server acts at, the server's now when it answered)
                let (until, now) = match scenario {
                    Scenario::Timer => (
                        v["status"]["until"].as_i64().ok_or("no until")?,
                        v["status"]["intent_at"].as_i64().ok_or("no intent_at")?,
                    ),
                    Scenario::Idle => {
                        let now = v["server_time"].as_i64().ok_or("no server_time")?;
                        (now + DURATION_MS, now)
                    }
                };
                let mid = (local_ms(sent) + local_ms(resp.at)) / 2.0;
                let offset = mid - (now as f64 + 0.5);
                let rtt = local_ms(resp.at) - local_ms(sent);
                let cause = match scenario {
                    Scenario::Timer => "timer",
                    Scenario::Idle => "idle",
                };
                let end = |s: &Value| s["cause"] == cause && s["intent_at"] == until;
                let wait = Duration::from_millis(DURATION_MS as u64) + EVENT_WAIT;
                match timeout(wait, next_status(&mut sse, end)).await {
                    Ok(Ok(at)) => seen.push((until, offset, rtt, local_ms(at))),
                    _ => missed += 1,
                }
            }
            Ok::<_, String>((seen, missed))
        });
    }
    let mut raw = Vec::new();
    let mut missed = 0;
    while let Some(r) = tasks.join_next().await {
        let (seen, m) = r.map_err(e)??;
        raw.extend(seen);
        missed += m;
    }
    Ok(TimerLags {
        lags: lags_after_deadlines(raw),
        missed,
    })
}

/// The time of the next `snapshot` or `status` event whose status `want` accepts.
async fn next_status(sse: &mut Sse, want: impl Fn(&Value) -> bool) -> Res<Instant> {
    loop {
        let ev = timeout(EVENT_WAIT, sse.next())
            .await
            .map_err(|_| format!("no status event within {EVENT_WAIT:?}"))?
            .map_err(e)?;
        let status = match ev.name.as_str() {
            "status" => serde_json::from_str::<Value>(&ev.data).map_err(e)?,
            "snapshot" => serde_json::from_str::<Value>(&ev.data).map_err(e)?["status"].clone(),
            _ => continue,
        };
        if want(&status) {
            return Ok(ev.at);
        }
    }
}

//! Scenarios against our server, each on a fresh `presence-server` process over loopback.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::timeout;

use crate::Ctx;
use crate::api::{self, Account, e};
use crate::http::{Conn, Sse, request_bytes};
use crate::proc::{self, Res, Spawned};
use crate::stats::{Samples, lags_after_deadlines, median, round3, slope};

const STOP: Duration = Duration::from_secs(10);
const EVENT_WAIT: Duration = Duration::from_secs(10);

fn chatbox_status(data: &str) -> String {
    serde_json::from_str::<Value>(data)
        .ok()
        .and_then(|v| v["status"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

async fn next_chatbox(sse: &mut Sse, want: &str) -> Res<crate::http::Event> {
    loop {
        let ev = timeout(EVENT_WAIT, sse.next_named("chatbox"))
            .await
            .map_err(|_| format!("no chatbox {want} event within {EVENT_WAIT:?}"))?
            .map_err(e)?;
        if chatbox_status(&ev.data) == want {
            return Ok(ev);
        }
    }
}

async fn fresh_server(ctx: &Ctx, name: &str, extra: &[&str]) -> Res<(Spawned, SocketAddr)> {
    let dir = ctx.work.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    fresh_server_in(ctx, name, &dir, extra).await
}

async fn fresh_server_in(
    ctx: &Ctx,
    name: &str,
    dir: &std::path::Path,
    extra: &[&str],
) -> Res<(Spawned, SocketAddr)> {
    let s = api::start_server(&ctx.self_exe, name, dir, extra, &ctx.logs).await?;
    let addr = s.addr.ok_or("no address")?;
    Ok((s, addr))
}

/// `PUT /v1/me/status` on device A sent -> `status` event on device B's stream; also the
/// time until A's own answer arrived.
pub async fn status_to_device(addr: SocketAddr, slug: &str, n: usize) -> Res<(Samples, Samples)> {
    status_to_device_with(addr, slug, n, &[]).await
}

/// [`status_to_device`] on an account with an `agent.status` webhook endpoint at each of
/// `webhooks`.
pub async fn status_to_device_with(
    addr: SocketAddr,
    slug: &str,
    n: usize,
    webhooks: &[String],
) -> Res<(Samples, Samples)> {
    let warm = (n / 10).max(10);
    let mut c = Conn::connect(addr).await.map_err(e)?;
    let acc = api::create_account(&mut c, slug).await?;
    let a = api::login(&mut c, &acc, "device-a").await?;
    let b = api::login(&mut c, &acc, "device-b").await?;
    for url in webhooks {
        let body = json!({"url": url, "events": ["agent.status"]}).to_string();
        c.call("POST", "/v1/admin/webhooks", Some(&a.token), Some(&body))
            .await
            .map_err(e)?
            .expect(201, "add a webhook")
            .map_err(e)?;
    }
    let mut sse = Sse::open(addr, "/v1/me/events", Some(&b.token))
        .await
        .map_err(e)?;
    timeout(EVENT_WAIT, sse.next_named("snapshot"))
        .await
        .map_err(|_| "no snapshot")?
        .map_err(e)?;
    let mut s = Samples::default();
    let mut answers = Samples::default();
    for i in 0..warm + n {
        let status = if i % 2 == 0 { "online" } else { "busy" };
        let req = request_bytes(
            "PUT",
            "/v1/me/status",
            Some(&a.token),
            Some(&api::status_body(status)),
        );
        let t0 = Instant::now();
        c.send(&req).await.map_err(e)?;
        let ev = loop {
            let ev = timeout(EVENT_WAIT, sse.next_named("status"))
                .await
                .map_err(|_| "no status event")?
                .map_err(e)?;
            if chatbox_status(&ev.data) == status {
                break ev;
            }
        };
        let answer = c
            .recv()
            .await
            .map_err(e)?
            .expect(200, "set status")
            .map_err(e)?;
        if i >= warm {
            s.push(ev.at - t0);
            answers.push(answer.at - t0);
        }
    }
    Ok((s, answers))
}

/// The same path with nothing of ours on it: `PUT /v1/me/status` on the bare axum server
/// (a `watch` send, a fixed JSON answer) -> the event on another connection's SSE stream.
/// The floor for a change reaching another device: one request, one push to a second
/// connection, and both clients' reads.
pub async fn bare_status_to_other_connection(addr: SocketAddr, n: usize) -> Res<Samples> {
    let warm = (n / 10).max(10);
    let mut c = Conn::connect(addr).await.map_err(e)?;
    let mut sse = Sse::open(addr, "/v1/widget/bare/events", None)
        .await
        .map_err(e)?;
    timeout(EVENT_WAIT, sse.next())
        .await
        .map_err(|_| "no first frame")?
        .map_err(e)?;
    let mut s = Samples::default();
    for i in 0..warm + n {
        let req = request_bytes(
            "PUT",
            "/v1/me/status",
            None,
            Some(&api::status_body("busy")),
        );
        let t0 = Instant::now();
        c.send(&req).await.map_err(e)?;
        let ev = timeout(EVENT_WAIT, sse.next())
            .await
            .map_err(|_| "no bare event")?
            .map_err(e)?;
        c.recv()
            .await
            .map_err(e)?
            .expect(200, "bare status")
            .map_err(e)?;
        if i >= warm {
            s.push(ev.at - t0);
        }
    }
    Ok(s)
}

/// `DELETE /v1/session` sent -> the widget's `offline` event.
pub async fn logout_to_widget(addr: SocketAddr, slug: &str, n: usize) -> Res<Samples> {
    let warm = (n / 10).max(5);
    let mut c = Conn::connect(addr).await.map_err(e)?;
    let acc = api::create_account(&mut c, slug).await?;
    let setup = api::login(&mut c, &acc, "setup").await?;
    api::set_status(&mut c, &setup.token, "online").await?;
    api::logout(&mut c, &setup.token).await?;
    let mut w = Sse::open(addr, &format!("/v1/widget/{}/events", acc.widget_key), None)
        .await
        .map_err(e)?;
    next_chatbox(&mut w, "offline").await?;
    let mut s = Samples::default();
    for i in 0..warm + n {
        let l = api::login(&mut c, &acc, &format!("device-{i}")).await?;
        next_chatbox(&mut w, "online").await?;
        let req = request_bytes("DELETE", "/v1/session", Some(&l.token), None);
        let t0 = Instant::now();
        c.send(&req).await.map_err(e)?;
        let ev = next_chatbox(&mut w, "offline").await?;
        c.recv()
            .await
            .map_err(e)?
            .expect(204, "logout")
            .map_err(e)?;
        if i >= warm {
            s.push(ev.at - t0);
        }
    }
    Ok(s)
}

/// Status and logout latency on one fresh server.
pub async fn latency(ctx: &mut Ctx) -> Res<()> {
    let n = if ctx.quick { 100 } else { 1000 };
    let (server, addr) = fresh_server(ctx, "latency", &[]).await?;
    let status = status_to_device(addr, "lat-status", n).await;
    let logout = logout_to_widget(addr, "lat-logout", n / 2).await;
    let rss = server.rss_bytes().ok();
    server.stop(STOP).await?;
    let (status, answers) = status?;
    let logout = logout?;
    let (bare_srv, baddr) = start_bare(ctx, "bare-axum-latency").await?;
    let bare = bare_status_to_other_connection(baddr, n).await;
    bare_srv.stop(STOP).await?;
    let bare = bare?;
    let r = &mut ctx.report;
    r.set("bare_axum_status_to_other_connection_p50_ms", bare.p50());
    r.detail("bare_axum_status_to_other_connection_ms", bare.summary());
    r.set("status_to_other_device_p50_ms", status.p50());
    r.set("status_to_other_device_p99_ms", status.p99());
    r.set("logout_to_widget_offline_p50_ms", logout.p50());
    r.set("logout_to_widget_offline_p99_ms", logout.p99());
    r.set("status_put_answer_p50_ms", answers.p50());
    r.detail("status_to_other_device_ms", status.summary());
    r.detail("status_put_answer_ms", answers.summary());
    r.detail("logout_to_widget_offline_ms", logout.summary());
    r.detail("latency_server_rss_bytes", json!(rss));
    Ok(())
}

/// Lease end -> widget event, for sessions going silent at staggered times.
pub async fn expiry(ctx: &mut Ctx) -> Res<()> {
    let (accounts, rounds) = if ctx.quick { (20, 5) } else { (100, 10) };
    let ttl_ms: u64 = 1000;
    let (server, addr) = fresh_server(
        ctx,
        "expiry",
        &["--active-interval-ms", "250", "--active-ttl-ms", "1000"],
    )
    .await?;
    let result = expiry_run(addr, accounts, rounds, ttl_ms).await;
    server.stop(STOP).await?;
    let (lags, missed) = result?;
    let r = &mut ctx.report;
    r.set("expiry_detection_lag_p50_ms", lags.p50());
    r.set("expiry_detection_lag_p99_ms", lags.p99());
    r.detail(
        "expiry_detection_lag_ms",
        json!({"samples": lags.summary(), "accounts": accounts, "rounds": rounds,
               "ttl_ms": ttl_ms, "missed": missed}),
    );
    Ok(())
}

/// A timed status's end -> the `status` event on the agent's other device, 1,000 timers;
/// the moment activity reports imply -> the idle change on the agent's stream, 1,000 times.
pub async fn timers(ctx: &mut Ctx) -> Res<()> {
    use crate::timers::{Scenario, run};
    let (accounts, rounds) = if ctx.quick { (20, 3) } else { (100, 10) };
    let (server, addr) = fresh_server(ctx, "timers", &[]).await?;
    let timer = run(Scenario::Timer, addr, addr, "tmr", accounts, rounds).await;
    let idle = match timer {
        Ok(_) => run(Scenario::Idle, addr, addr, "idl", accounts, rounds).await,
        Err(_) => Err("not run".into()),
    };
    server.stop(STOP).await?;
    let (t, i) = (timer?, idle?);
    let r = &mut ctx.report;
    r.set("idle_lag_p50_ms", i.lags.p50());
    r.set("idle_lag_p99_ms", i.lags.p99());
    r.detail(
        "idle_lag_ms",
        json!({"samples": i.lags.summary(), "accounts": accounts, "rounds": rounds,
               "idle_after_ms": crate::timers::DURATION_MS, "missed": i.missed}),
    );
    r.set("status_timer_lag_p50_ms", t.lags.p50());
    r.set("status_timer_lag_p99_ms", t.lags.p99());
    r.detail(
        "status_timer_lag_ms",
        json!({"samples": t.lags.summary(), "accounts": accounts, "rounds": rounds,
               "duration_ms": crate::timers::DURATION_MS, "missed": t.missed}),
    );
    Ok(())
}

async fn expiry_run(
    addr: SocketAddr,
    accounts: usize,
    rounds: usize,
    ttl_ms: u64,
) -> Res<(Samples, usize)> {
    // Setup: one agent per account, online, no live session.
    let mut accs: Vec<Account> = Vec::new();
    let gate = Arc::new(Semaphore::new(4));
    let mut setup = tokio::task::JoinSet::new();
    for i in 0..accounts {
        let gate = gate.clone();
        setup.spawn(async move {
            let _p = gate.acquire().await.map_err(e)?;
            let mut c = Conn::connect(addr).await.map_err(e)?;
            let acc = api::create_account(&mut c, &format!("exp-{i}")).await?;
            let l = api::login(&mut c, &acc, "setup").await?;
            api::set_status(&mut c, &l.token, "online").await?;
            api::logout(&mut c, &l.token).await?;
            Ok::<_, String>((i, acc))
        });
    }
    let mut indexed = Vec::new();
    while let Some(r) = setup.join_next().await {
        indexed.push(r.map_err(e)??);
    }
    indexed.sort_by_key(|(i, _)| *i);
    accs.extend(indexed.into_iter().map(|(_, a)| a));

    let anchor = Instant::now();
    let local_ms = move |t: Instant| (t - anchor).as_secs_f64() * 1000.0;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, acc) in accs.into_iter().enumerate() {
        tasks.spawn(async move {
            let mut w = Sse::open(addr, &format!("/v1/widget/{}/events", acc.widget_key), None)
                .await
                .map_err(e)?;
            next_chatbox(&mut w, "offline").await?;
            let mut c = Conn::connect(addr).await.map_err(e)?;
            // Stagger the accounts across one ttl so expiries do not coincide.
            tokio::time::sleep(Duration::from_micros(
                i as u64 * ttl_ms * 1000 / accounts as u64,
            ))
            .await;
            // (lease_until, offset estimate, login round trip, event time), all local ms.
            let mut lags: Vec<(i64, f64, f64, f64)> = Vec::new();
            let mut missed = 0usize;
            for r in 0..rounds {
                let req = request_bytes(
                    "POST",
                    "/v1/login",
                    None,
                    Some(&api::login_body(&acc, &format!("device-{r}"))),
                );
                let sent = Instant::now();
                c.send(&req).await.map_err(e)?;
                let resp = c.recv().await.map_err(e)?.expect(200, "login").map_err(e)?;
                let l = api::parse_login(&resp.json().map_err(e)?)?;
                // Map server milliseconds onto the local monotonic scale; server_time is
                // floored to the millisecond, so its midpoint is server_time + 0.5.
                let mid = (local_ms(sent) + local_ms(resp.at)) / 2.0;
                let offset = mid - (l.server_time as f64 + 0.5);
                next_chatbox(&mut w, "online").await?;
                let wait = Duration::from_millis(ttl_ms) + EVENT_WAIT;
                match timeout(wait, next_chatbox(&mut w, "offline")).await {
                    Ok(Ok(ev)) => {
                        let rtt = local_ms(resp.at) - local_ms(sent);
                        lags.push((l.lease_until, offset, rtt, local_ms(ev.at)));
                    }
                    _ => missed += 1,
                }
            }
            Ok::<_, String>((lags, missed))
        });
    }
    let mut raw = Vec::new();
    let mut missed = 0;
    while let Some(r) = tasks.join_next().await {
        let (lags, m) = r.map_err(e)??;
        raw.extend(lags);
        missed += m;
    }
    Ok((lags_after_deadlines(raw), missed))
}

/// 10,000 widget streams on one account; each one's receipt of a status change.
/// One round of the 10k fan-out on each side: ours, then the bare axum server.
struct FanoutRound {
    ours: Samples,
    ours_missing: usize,
    ours_connect_s: f64,
    ours_cpu: FanoutCpu,
    ours_rss: Option<u64>,
    bare: Samples,
    bare_missing: usize,
    bare_cpu: FanoutCpu,
    bare_rss: Option<u64>,
}

impl FanoutRound {
    fn ratio(&self) -> f64 {
        self.ours.p99().unwrap_or(f64::NAN) / self.bare.p99().unwrap_or(f64::NAN)
    }

    fn json(&self) -> Value {
        json!({
            "ours": {"samples": self.ours.summary(), "missing_receipts": self.ours_missing,
                     "connect_all_s": round3(self.ours_connect_s),
                     "server_rss_bytes_with_streams": self.ours_rss,
                     "cpu_ms_per_change": self.ours_cpu.json()},
            "bare": {"samples": self.bare.summary(), "missing_receipts": self.bare_missing,
                     "rss_bytes": self.bare_rss, "cpu_ms_per_change": self.bare_cpu.json()},
            "p99_ratio": round3(self.ratio()),
        })
    }
}

async fn fanout_round(ctx: &Ctx, widgets: usize, toggles: usize) -> Res<FanoutRound> {
    let (server, addr) = fresh_server(ctx, "fanout", &["--active-ttl-ms", "600000"]).await?;
    let result = async {
        let mut c = Conn::connect(addr).await.map_err(e)?;
        let acc = api::create_account(&mut c, "fanout").await?;
        let actor = api::login(&mut c, &acc, "actor").await?;
        let path = format!("/v1/widget/{}/events", acc.widget_key);
        fanout_run(addr, server.pid, &path, &actor.token, widgets, toggles, 0).await
    }
    .await;
    let ours_rss = server.rss_bytes().ok();
    server.stop(STOP).await?;
    let (ours, ours_missing, ours_connect_s, ours_cpu) = result?;
    // The same clients against the bare axum fan-out (a watch channel and SSE, nothing else):
    // what this machine allows any axum server.
    let (bare, baddr) = start_bare(ctx, "bare-axum-fanout").await?;
    let b = fanout_run(
        baddr,
        bare.pid,
        "/v1/widget/bare/events",
        "bare",
        widgets,
        toggles,
        0,
    )
    .await;
    let bare_rss = bare.rss_bytes().ok();
    bare.stop(STOP).await?;
    let (b, bare_missing, _, bare_cpu) = b?;
    Ok(FanoutRound {
        ours,
        ours_missing,
        ours_connect_s,
        ours_cpu,
        ours_rss,
        bare: b,
        bare_missing,
        bare_cpu,
        bare_rss,
    })
}

/// The 10k fan-out against the bare axum one, A B A B A B (one round in quick mode): the
/// round with the median p99 ratio gives the latency figures and the ratio, the medians of
/// the rounds give CPU per change, so one slow moment of a shared machine moves no figure.
pub async fn fanout(ctx: &mut Ctx) -> Res<()> {
    let widgets = if ctx.quick { 1000 } else { 10_000 };
    let toggles = if ctx.quick { 5 } else { 20 };
    let rounds_n = if ctx.quick { 1 } else { 3 };
    let mut rounds = Vec::with_capacity(rounds_n);
    for _ in 0..rounds_n {
        rounds.push(fanout_round(ctx, widgets, toggles).await?);
    }
    let details: Vec<Value> = rounds.iter().map(FanoutRound::json).collect();
    let mut by_ratio: Vec<&FanoutRound> = rounds.iter().collect();
    by_ratio.sort_by(|a, b| a.ratio().total_cmp(&b.ratio()));
    let mid = by_ratio[by_ratio.len() / 2];
    let cpu = |f: &dyn Fn(&FanoutRound) -> f64| {
        median(&rounds.iter().map(f).collect::<Vec<_>>()).map(round3)
    };
    let r = &mut ctx.report;
    r.set("status_to_10k_widgets_p50_ms", mid.ours.p50());
    r.set("status_to_10k_widgets_p99_ms", mid.ours.p99());
    r.set("bare_axum_10k_widgets_p50_ms", mid.bare.p50());
    r.set("bare_axum_10k_widgets_p99_ms", mid.bare.p99());
    r.set(
        "fanout_server_cpu_ms_per_change",
        cpu(&|x| x.ours_cpu.server),
    );
    r.set(
        "fanout_clients_cpu_ms_per_change",
        cpu(&|x| x.ours_cpu.clients),
    );
    r.set(
        "bare_axum_fanout_server_cpu_ms_per_change",
        cpu(&|x| x.bare_cpu.server),
    );
    r.detail(
        "status_to_10k_widgets_ms",
        json!({"widgets": widgets, "toggles": toggles, "rounds": details,
               "figures_from_round_with_median_ratio": true}),
    );
    if widgets != 10_000 {
        r.note(
            "status_to_10k_widgets_p50_ms",
            &format!("{widgets} subscribers (quick mode)"),
        );
    }
    Ok(())
}

/// CPU time one change costs during the fan-out, per process side.
#[derive(Debug, Clone, Copy)]
struct FanoutCpu {
    server: f64,
    clients: f64,
}

impl FanoutCpu {
    fn json(self) -> Value {
        json!({"server": self.server, "clients": self.clients})
    }
}

/// Opens `widgets` widget streams on `path` (from `sources` loopback addresses, 127.0.0.2
/// on, when more than one is needed; 0: the default), then makes `toggles` status changes
/// with `token`: each stream's receipt of each change, the receipts missing, the seconds the
/// streams took to open, and CPU per change.
async fn fanout_run(
    addr: SocketAddr,
    server_pid: u32,
    path: &str,
    token: &str,
    widgets: usize,
    toggles: usize,
    sources: usize,
) -> Res<(Samples, usize, f64, FanoutCpu)> {
    let (s, missing, connect_s, cpu, ()) = fanout_run_between(
        addr,
        server_pid,
        path,
        token,
        (widgets, toggles, sources),
        || async { Ok(()) },
    )
    .await?;
    Ok((s, missing, connect_s, cpu))
}

/// [`fanout_run`], running `between` once every stream is open and before the changes.
async fn fanout_run_between<T, F, Fut>(
    addr: SocketAddr,
    server_pid: u32,
    path: &str,
    token: &str,
    (widgets, toggles, sources): (usize, usize, usize),
    between: F,
) -> Res<(Samples, usize, f64, FanoutCpu, T)>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Res<T>>,
{
    let mut c = Conn::connect(addr).await.map_err(e)?;
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<Result<(), String>>();
    let (rx_tx, mut rx_rx) = mpsc::unbounded_channel::<Instant>();
    let gate = Arc::new(Semaphore::new(128));
    let path = path.to_owned();
    let t_connect = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..widgets {
        let (ready_tx, rx_tx, gate, path) =
            (ready_tx.clone(), rx_tx.clone(), gate.clone(), path.clone());
        let from =
            (sources > 0).then(|| std::net::IpAddr::from([127, 0, 0, 2 + (i % sources) as u8]));
        tasks.spawn(async move {
            let opened = async {
                let _p = gate.acquire().await.map_err(e)?;
                let mut w = Sse::open_from(addr, from, &path, None).await.map_err(e)?;
                w.next_named("chatbox").await.map_err(e)?;
                Ok::<_, String>(w)
            }
            .await;
            let mut w = match opened {
                Ok(w) => {
                    let _ = ready_tx.send(Ok(()));
                    w
                }
                Err(err) => {
                    let _ = ready_tx.send(Err(err));
                    return;
                }
            };
            while let Ok(ev) = w.next_named("chatbox").await {
                if rx_tx.send(ev.at).is_err() {
                    return;
                }
            }
        });
    }
    drop(rx_tx);
    let mut ok = 0;
    for _ in 0..widgets {
        match timeout(Duration::from_secs(300), ready_rx.recv()).await {
            Ok(Some(Ok(()))) => ok += 1,
            Ok(Some(Err(err))) => return Err(format!("widget stream failed to open: {err}")),
            _ => return Err("widget streams did not open in time".into()),
        }
    }
    let connect_s = t_connect.elapsed().as_secs_f64();
    let between = between().await?;
    let mut s = Samples::default();
    let mut missing = 0;
    let me = std::process::id();
    let (server0, clients0) = (proc::cpu_ms(server_pid)?, proc::cpu_ms(me)?);
    for k in 0..toggles {
        let status = if k % 2 == 0 { "online" } else { "busy" };
        let req = request_bytes(
            "PUT",
            "/v1/me/status",
            Some(token),
            Some(&api::status_body(status)),
        );
        let t0 = Instant::now();
        c.send(&req).await.map_err(e)?;
        let mut got = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while got < ok {
            match tokio::time::timeout_at(deadline, rx_rx.recv()).await {
                Ok(Some(at)) => {
                    s.push(at.saturating_duration_since(t0));
                    got += 1;
                }
                _ => break,
            }
        }
        missing += ok - got;
        c.recv()
            .await
            .map_err(e)?
            .expect(200, "set status")
            .map_err(e)?;
    }
    let cpu = FanoutCpu {
        server: round3((proc::cpu_ms(server_pid)? - server0) / toggles as f64),
        clients: round3((proc::cpu_ms(me)? - clients0) / toggles as f64),
    };
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    Ok((s, missing, connect_s, cpu, between))
}

/// Pre-built heartbeat requests, one per session token.
async fn login_many(
    addr: SocketAddr,
    acc: &Account,
    from: usize,
    count: usize,
    workers: usize,
) -> Res<Vec<String>> {
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..workers {
        let acc = acc.clone();
        tasks.spawn(async move {
            let mut c = Conn::connect(addr).await.map_err(e)?;
            let mut tokens = Vec::new();
            let mut i = from + w;
            while i < from + count {
                tokens.push(
                    api::login(&mut c, &acc, &format!("device-{i}"))
                        .await?
                        .token,
                );
                i += workers;
            }
            Ok::<_, String>(tokens)
        });
    }
    let mut all = Vec::with_capacity(count);
    while let Some(r) = tasks.join_next().await {
        all.extend(r.map_err(e)??);
    }
    Ok(all)
}

/// Closed-loop load: `conns` keep-alive connections, each sending the next request as soon
/// as the previous answer is in. Returns answers per second counted in the window after
/// `warm`, and the number of non-200 answers.
pub async fn run_load(
    addr: SocketAddr,
    reqs: Arc<Vec<Vec<u8>>>,
    conns: usize,
    warm: Duration,
    dur: Duration,
) -> Res<(f64, u64)> {
    let start = Instant::now();
    let from = start + warm;
    let end = from + dur;
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..conns {
        let reqs = reqs.clone();
        tasks.spawn(async move {
            let mut c = Conn::connect(addr).await.map_err(e)?;
            let (mut ok, mut bad) = (0u64, 0u64);
            let mut i = t;
            loop {
                if Instant::now() >= end {
                    break;
                }
                c.send(&reqs[i % reqs.len()]).await.map_err(e)?;
                let r = c.recv().await.map_err(e)?;
                if r.status != 200 {
                    bad += 1;
                } else if r.at >= from && r.at < end {
                    ok += 1;
                }
                i += conns;
            }
            Ok::<_, String>((ok, bad))
        });
    }
    let (mut ok, mut bad) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        let (o, b) = r.map_err(e)??;
        ok += o;
        bad += b;
    }
    Ok((ok as f64 / dur.as_secs_f64(), bad))
}

/// Sequential round trips on one connection: the HTTP floor under every latency figure.
async fn rtt(addr: SocketAddr, reqs: &[Vec<u8>], n: usize) -> Res<Samples> {
    let mut c = Conn::connect(addr).await.map_err(e)?;
    let mut s = Samples::default();
    for i in 0..n + n / 10 {
        let t0 = Instant::now();
        c.send(&reqs[i % reqs.len()]).await.map_err(e)?;
        let r = c
            .recv()
            .await
            .map_err(e)?
            .expect(200, "heartbeat")
            .map_err(e)?;
        if i >= n / 10 {
            s.push(r.at - t0);
        }
    }
    Ok(s)
}

async fn start_bare(ctx: &Ctx, name: &str) -> Res<(Spawned, SocketAddr)> {
    let mut cmd = tokio::process::Command::new(&ctx.self_exe);
    cmd.args(["serve-bare", "--listen", "127.0.0.1:0"]);
    let s = crate::proc::spawn_until(
        name,
        cmd,
        "listening on http://",
        Duration::from_secs(30),
        &ctx.logs,
    )
    .await?;
    let addr = s.addr.ok_or("bare server printed no address")?;
    Ok((s, addr))
}

/// Authenticated heartbeats over many live sessions against a bare axum handler, A B A B.
pub async fn heartbeat(ctx: &mut Ctx) -> Res<()> {
    let (sessions, pairs, conns, secs) = if ctx.quick {
        (1000, 1, 16, 1.0)
    } else {
        (10_000, 3, 64, 5.0)
    };
    let warm = Duration::from_millis(if ctx.quick { 300 } else { 1000 });
    let dur = Duration::from_secs_f64(secs);
    let dir = ctx.work.join("heartbeat");
    let _ = std::fs::remove_dir_all(&dir);
    // Sessions are created once; every restart of our server restores them from SQLite.
    let extra = ["--active-ttl-ms", "600000"];
    let (server, addr) = fresh_server_in(ctx, "heartbeat-setup", &dir, &extra).await?;
    let setup = async {
        let mut c = Conn::connect(addr).await.map_err(e)?;
        let acc = api::create_account(&mut c, "hb").await?;
        api::login(&mut c, &acc, "warm").await?;
        login_many(addr, &acc, 0, sessions, 16).await
    }
    .await;
    server.stop(STOP).await?;
    let tokens = setup?;
    let reqs: Arc<Vec<Vec<u8>>> = Arc::new(
        tokens
            .iter()
            .map(|t| request_bytes("POST", "/v1/session/heartbeat", Some(t), None))
            .collect(),
    );
    let mut ours = Vec::new();
    let mut bare = Vec::new();
    let mut ratios = Vec::new();
    let mut errors = 0;
    let mut rtt_ours: Option<Samples> = None;
    let mut rtt_bare: Option<Samples> = None;
    for p in 0..pairs {
        let (server, addr) = fresh_server_in(ctx, &format!("heartbeat-a{p}"), &dir, &extra).await?;
        let a = async {
            if p == 0 {
                rtt_ours = Some(rtt(addr, &reqs, 1000).await?);
            }
            run_load(addr, reqs.clone(), conns, warm, dur).await
        }
        .await;
        server.stop(STOP).await?;
        let (a, ea) = a?;
        let (bare_srv, baddr) = start_bare(ctx, &format!("bare-axum-b{p}")).await?;
        let b = async {
            if p == 0 {
                rtt_bare = Some(rtt(baddr, &reqs, 1000).await?);
            }
            run_load(baddr, reqs.clone(), conns, warm, dur).await
        }
        .await;
        bare_srv.stop(STOP).await?;
        let (b, eb) = b?;
        errors += ea + eb;
        ours.push(a);
        bare.push(b);
        ratios.push(a / b);
    }
    let r = &mut ctx.report;
    r.set("heartbeat_throughput_per_s", median(&ours).map(f64::round));
    r.set(
        "heartbeat_throughput_ratio_vs_bare_axum",
        median(&ratios).map(round3),
    );
    r.set("bare_axum_throughput_per_s", median(&bare).map(f64::round));
    r.set(
        "heartbeat_rtt_p50_ms",
        rtt_ours.as_ref().and_then(Samples::p50),
    );
    r.set(
        "bare_axum_rtt_p50_ms",
        rtt_bare.as_ref().and_then(Samples::p50),
    );
    r.detail(
        "heartbeat",
        json!({"sessions": sessions, "connections": conns, "window_s": secs,
               "warmup_s": warm.as_secs_f64(), "pairs": pairs,
               "ours_per_s": ours.iter().map(|x| x.round()).collect::<Vec<_>>(),
               "bare_axum_per_s": bare.iter().map(|x| x.round()).collect::<Vec<_>>(),
               "ratios": ratios.iter().map(|x| round3(*x)).collect::<Vec<_>>(),
               "non_200_answers": errors,
               "rtt_ours_ms": rtt_ours.map(|s| s.summary()),
               "rtt_bare_axum_ms": rtt_bare.map(|s| s.summary())}),
    );
    if errors > 0 {
        r.note(
            "heartbeat_throughput_per_s",
            &format!("{errors} non-200 answers during the load"),
        );
    }
    Ok(())
}

/// Resident memory slope from 0 to 100k live sessions.
pub async fn rss(ctx: &mut Ctx) -> Res<()> {
    let (total, step) = if ctx.quick {
        (5_000, 1_000)
    } else {
        (100_000, 10_000)
    };
    let (server, addr) = fresh_server(ctx, "rss", &["--active-ttl-ms", "600000"]).await?;
    let result = async {
        let mut c = Conn::connect(addr).await.map_err(e)?;
        let acc = api::create_account(&mut c, "rss").await?;
        // The first login pays argon2 and fills the verified-password cache.
        let first = api::login(&mut c, &acc, "first").await?;
        api::logout(&mut c, &first.token).await?;
        let mut points = vec![(0.0, server.rss_bytes()? as f64)];
        let t = Instant::now();
        let mut done = 0;
        while done < total {
            login_many(addr, &acc, done, step, 8).await?;
            done += step;
            points.push((done as f64, server.rss_bytes()? as f64));
        }
        let live = api::metric(&mut c, "presence_sessions").await.ok();
        Ok::<_, String>((points, t.elapsed().as_secs_f64(), live))
    }
    .await;
    server.stop(STOP).await?;
    let (points, secs, live) = result?;
    let r = &mut ctx.report;
    r.set(
        "server_rss_bytes_per_session",
        slope(&points).map(f64::round),
    );
    r.detail(
        "server_rss",
        json!({"sessions": total, "login_s": round3(secs),
               "logins_per_s": (total as f64 / secs).round(),
               "live_sessions_metric": live,
               "points": points.iter().map(|(x, y)| json!([x, y])).collect::<Vec<_>>()}),
    );
    if ctx.quick {
        r.note(
            "server_rss_bytes_per_session",
            &format!("slope over {total} sessions (quick mode)"),
        );
    }
    Ok(())
}

/// Idle keep-alive connections: each made, used for one `/healthz`, then left open; the
/// server's resident memory per connection, and `/healthz` latency on a fresh connection
/// while they are held. Connections come from several loopback source addresses.
pub async fn idle_connections(ctx: &mut Ctx) -> Res<()> {
    let (wanted, probes) = if ctx.quick {
        (2_000, 100)
    } else {
        (20_000, 500)
    };
    // Each side holds one descriptor per connection: below a hard limit of open files (this
    // machine's is 20,000 a process, and it cannot be raised), hold what fits beside the
    // server's database, logs and listener.
    let total = wanted.min(proc::raise_nofile().saturating_sub(256) as usize);
    // Idle connections are closed after a minute by default; these are held while measured.
    let (server, addr) = fresh_server(ctx, "idle", &["--idle-timeout-ms", "600000"]).await?;
    let result = async {
        let health = request_bytes("GET", "/healthz", None, None);
        // A warm server: the first connections pay for lazily made state.
        for _ in 0..100 {
            let mut c = Conn::connect(addr).await.map_err(e)?;
            c.send(&health).await.map_err(e)?;
            c.recv().await.map_err(e)?;
        }
        let before = server.rss_bytes()? as f64;
        let t = Instant::now();
        let mut held = Vec::with_capacity(total);
        let mut batch = tokio::task::JoinSet::new();
        for i in 0..total {
            let from = std::net::IpAddr::from([127, 0, 0, 2 + (i % 8) as u8]);
            let health = health.clone();
            batch.spawn(async move {
                let mut c = Conn::connect_from(addr, from).await?;
                c.send(&health).await?;
                c.recv().await?.expect(200, "/healthz")?;
                Ok::<_, std::io::Error>(c)
            });
            if batch.len() >= 256 || i + 1 == total {
                while let Some(r) = batch.join_next().await {
                    held.push(r.map_err(e)?.map_err(e)?);
                }
            }
        }
        let opened_s = t.elapsed().as_secs_f64();
        let after = server.rss_bytes()? as f64;
        let mut lat = Samples::default();
        for _ in 0..probes {
            let t = Instant::now();
            let mut c = Conn::connect(addr).await.map_err(e)?;
            c.send(&health).await.map_err(e)?;
            c.recv()
                .await
                .map_err(e)?
                .expect(200, "/healthz")
                .map_err(e)?;
            lat.push(t.elapsed());
        }
        let open = held.len();
        drop(held);
        Ok::<_, String>((before, after, opened_s, lat, open))
    }
    .await;
    server.stop(STOP).await?;
    let (before, after, opened_s, lat, open) = result?;
    let r = &mut ctx.report;
    r.set(
        "idle_connection_rss_bytes",
        Some(((after - before) / open as f64).round()),
    );
    r.set("healthz_p99_ms_20k_idle", lat.p99());
    r.detail(
        "idle_connections",
        json!({"connections": open, "opened_s": round3(opened_s),
               "rss_before": before, "rss_after": after,
               "healthz_ms": lat.summary()}),
    );
    if open < wanted {
        r.note(
            "idle_connection_rss_bytes",
            &format!(
                "{open} connections held, not {wanted}: a process here may open at most \
                 {} files, and each side needs one per connection",
                proc::raise_nofile()
            ),
        );
    }
    Ok(())
}

/// What the durable commit on the status path costs: the same status scenario with the data
/// dir on tmpfs, and the store's commit alone on disk, on tmpfs and in memory.
pub async fn durability(ctx: &mut Ctx) -> Res<()> {
    let n = if ctx.quick { 100 } else { 500 };
    let shm = std::path::Path::new("/dev/shm");
    let mut tmpfs_e2e = None;
    if shm.is_dir() {
        let dir = tempfile::Builder::new()
            .prefix("presence-bench-")
            .tempdir_in(shm)
            .map_err(e)?;
        let (server, addr) = fresh_server_in(ctx, "durability-tmpfs", dir.path(), &[]).await?;
        let s = status_to_device(addr, "dur-tmpfs", n).await;
        server.stop(STOP).await?;
        tmpfs_e2e = Some(s?.0);
    }
    let (server, addr) = fresh_server(ctx, "durability-disk", &[]).await?;
    let disk_e2e = status_to_device(addr, "dur-disk", n).await;
    server.stop(STOP).await?;
    let disk_e2e = disk_e2e?.0;
    let commits = crate::durability::store_commit_costs(ctx, if ctx.quick { 300 } else { 2000 })?;
    let r = &mut ctx.report;
    r.set("durability_status_p50_ms_disk", disk_e2e.p50());
    r.set(
        "durability_status_p50_ms_tmpfs",
        tmpfs_e2e.as_ref().and_then(Samples::p50),
    );
    let disk_us = commits["disk"]["p50"].as_f64();
    let mem_us = commits["memory"]["p50"].as_f64();
    r.set("durability_commit_p50_us_disk", disk_us);
    r.set("durability_commit_p50_us_memory", mem_us);
    r.set(
        "durability_commit_wal_pages",
        commits["wal_frames_per_commit"].as_f64(),
    );
    // Without the commit the status path would be shorter by (disk - memory) commit time.
    let est = match (disk_e2e.p50(), disk_us, mem_us) {
        (Some(p), Some(d), Some(m)) => Some(round3(p - (d - m) / 1000.0)),
        _ => None,
    };
    r.set("durability_status_p50_ms_memory_estimate", est);
    r.detail(
        "durability",
        json!({"status_e2e_disk_ms": disk_e2e.summary(),
               "status_e2e_tmpfs_ms": tmpfs_e2e.map(|s| s.summary()),
               "store_commit_us": commits}),
    );
    Ok(())
}

/// 100,000 widget streams on one node: server memory per stream, `/healthz` while they are
/// held, and one change's fan-out to all of them against the bare axum fan-out of the same
/// 100,000 in the same run. Full runs only (it holds 200,000 descriptors on this machine).
pub async fn fanout_100k(ctx: &mut Ctx) -> Res<()> {
    const KEYS: [&str; 5] = [
        "widget_100k_rss_bytes_per_stream",
        "widget_100k_healthz_p99_ms",
        "status_to_100k_widgets_p99_ms",
        "status_to_100k_widgets_vs_bare_axum",
        "widget_100k_server_cpu_ms_per_change",
    ];
    if ctx.quick {
        for k in KEYS {
            ctx.report.set(k, None);
            ctx.report.note(k, "full runs only (100,000 streams)");
        }
        return Ok(());
    }
    // `PRESENCE_BENCH_100K_STREAMS` runs the same scenario with fewer streams (to try the
    // step where a process may not open 100,000 files); the figures then say so.
    let widgets = std::env::var("PRESENCE_BENCH_100K_STREAMS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(100_000);
    let toggles = 5;
    // The streams are spread over loopback source addresses, 25,000 each (within one
    // address's ephemeral ports).
    let sources = widgets.div_ceil(25_000).max(1);
    let limit = proc::raise_nofile() as usize;
    // The server holds one descriptor per stream, and so does this process.
    if limit < widgets + 1024 {
        for k in KEYS {
            ctx.report.set(k, None);
            ctx.report.note(
                k,
                &format!(
                    "not measured: a process here may open at most {limit} files (the hard \
                     limit; raising it needs CAP_SYS_RESOURCE), and {widgets} streams need a \
                     descriptor each in the server and in the load generator"
                ),
            );
        }
        return Ok(());
    }
    let (server, addr) = fresh_server(
        ctx,
        "fanout-100k",
        &[
            "--active-ttl-ms",
            "600000",
            "--idle-timeout-ms",
            "600000",
            "--max-connections",
            "250000",
        ],
    )
    .await?;
    let result = async {
        let mut c = Conn::connect(addr).await.map_err(e)?;
        let acc = api::create_account(&mut c, "fanout100k").await?;
        let actor = api::login(&mut c, &acc, "actor").await?;
        let path = format!("/v1/widget/{}/events", acc.widget_key);
        // A warm server, then its resident memory before the streams.
        let health = request_bytes("GET", "/healthz", None, None);
        for _ in 0..100 {
            let mut h = Conn::connect(addr).await.map_err(e)?;
            h.send(&health).await.map_err(e)?;
            h.recv().await.map_err(e)?;
        }
        let before = server.rss_bytes()? as f64;
        // While the streams are open: the server's memory, and `/healthz` on fresh
        // connections.
        let pid = server.pid;
        let probe = || async move {
            let after = proc::rss_bytes(pid)? as f64;
            let mut lat = Samples::default();
            for _ in 0..200 {
                let t = Instant::now();
                let mut h = Conn::connect(addr).await.map_err(e)?;
                h.send(&health).await.map_err(e)?;
                h.recv()
                    .await
                    .map_err(e)?
                    .expect(200, "/healthz")
                    .map_err(e)?;
                lat.push(t.elapsed());
            }
            Ok::<_, String>((after, lat))
        };
        let run = fanout_run_between(
            addr,
            server.pid,
            &path,
            &actor.token,
            (widgets, toggles, sources),
            probe,
        )
        .await?;
        Ok::<_, String>((before, run))
    }
    .await;
    server.stop(STOP).await?;
    let (before, (s, missing, connect_s, cpu, (after, healthz))) = result?;
    let (bare, baddr) = start_bare(ctx, "bare-axum-fanout-100k").await?;
    let bare_before = bare.rss_bytes()? as f64;
    let bare_pid = bare.pid;
    let b = fanout_run_between(
        baddr,
        bare.pid,
        "/v1/widget/bare/events",
        "bare",
        (widgets, toggles, sources),
        || async move { proc::rss_bytes(bare_pid).map(|v| v as f64) },
    )
    .await;
    bare.stop(STOP).await?;
    let (b, b_missing, _, b_cpu, bare_after) = b?;
    let r = &mut ctx.report;
    let per_stream = ((after - before) / widgets as f64).round();
    r.set("widget_100k_rss_bytes_per_stream", Some(per_stream));
    r.set(
        "bare_axum_100k_rss_bytes_per_stream",
        Some(((bare_after - bare_before) / widgets as f64).round()),
    );
    r.set("widget_100k_healthz_p99_ms", healthz.p99());
    r.set("status_to_100k_widgets_p50_ms", s.p50());
    r.set("status_to_100k_widgets_p99_ms", s.p99());
    r.set("bare_axum_100k_widgets_p99_ms", b.p99());
    let ratio = match (s.p99(), b.p99()) {
        (Some(o), Some(f)) if f > 0.0 => Some(round3(o / f)),
        _ => None,
    };
    r.set("status_to_100k_widgets_vs_bare_axum", ratio);
    r.set("widget_100k_server_cpu_ms_per_change", Some(cpu.server));
    if widgets != 100_000 {
        for k in KEYS {
            r.note(
                k,
                &format!("{widgets} streams (PRESENCE_BENCH_100K_STREAMS), not 100,000"),
            );
        }
    }
    r.detail(
        "fanout_100k",
        json!({"widgets": widgets, "toggles": toggles, "source_addresses": sources,
               "connect_all_s": round3(connect_s), "missing_receipts": missing,
               "rss_before": before, "rss_after": after, "healthz_ms": healthz.summary(),
               "samples": s.summary(), "cpu_ms_per_change": cpu.json(),
               "bare": {"samples": b.summary(), "missing_receipts": b_missing,
                        "cpu_ms_per_change": b_cpu.json()}}),
    );
    Ok(())
}

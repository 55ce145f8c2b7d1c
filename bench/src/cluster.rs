//! Cluster mode: three `presence-server` nodes (the release binary; the debug one in a quick run from a debug build) on one PostgreSQL and one
//! Redis, both started here on loopback for this step and stopped after it.
//!
//! - Cross-node status: `PUT /v1/me/status` sent to node A -> the `status` event on the same
//!   agent's other device, whose stream is on node B.
//! - Cross-node logout: `DELETE /v1/session` sent to node A (the agent's only session, status
//!   online) -> the widget stream on node B shows `offline`.
//! - Expiry: the nodes run with `--active-ttl-ms 3000 --active-interval-ms 1000`. Each session
//!   is the only session of its own account (so each lease end moves that account's view, and
//!   every lease end is one sample). Account `i` has its widget stream on node `i % 3` and its
//!   session on one of the two other nodes, so sessions are spread over the three nodes and
//!   the sweeping node is often neither. The sessions log in (a password check each) and keep
//!   heartbeating at the server's interval while the rest log in; then each makes one last
//!   heartbeat at its own moment, spread evenly over one ttl, and goes silent. Its lag is the
//!   widget's `offline` event minus the `lease_until` of that last heartbeat's answer (server
//!   clock in ms; the server and Redis run on this machine, so the bench's wall clock is
//!   theirs). Lease ends are counted from the nodes' `presence_session_expiries_total` summed
//!   over the three, before and after, read again after a further 300 ms (the contract
//!   publishes a lease end within 250 ms) so a late second publication is counted too.
//! - Heartbeat throughput: `C` keep-alive connections to node A, each looping heartbeats on its
//!   own session; the floor is `redis-benchmark` running the cluster's own heartbeat script
//!   (`EVALSHA`, same `C`, on the same Redis, in the same run) against a seeded lease.
//! - Status commit: node A's `presence_cluster_status_commit_seconds` histogram after the
//!   status samples; the p99 is the smallest bucket bound holding 99% of the commits.
//! - Kill -9 ghost (last, as it ends node C): an agent's only session is on node C, online,
//!   heartbeating at the interval; node C is killed with SIGKILL right after a heartbeat's
//!   answer -> the widget stream on node A shows `offline`. The lease ttl (3 s here) plus the
//!   250 ms publication bound is what the contract allows.
//!
//! PostgreSQL runs with `fsync=on`, so the commit figures are real commits.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::process::Command;
use tokio::sync::{Semaphore, watch};
use tokio::time::{sleep, sleep_until, timeout};

use crate::Ctx;
use crate::api::{self, ADMIN_TOKEN, Account, e};
use crate::http::{Conn, Sse, request_bytes};
use crate::proc::{self, Res, Spawned};
use crate::stats::{Samples, round3};

pub(crate) const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
const STOP: Duration = Duration::from_secs(10);
const EVENT_WAIT: Duration = Duration::from_secs(10);
/// The nodes' account defaults: what the expiry scenario runs with.
const TTL_MS: i64 = 3000;
const INTERVAL_MS: i64 = 1000;
/// Timings of the accounts of the other scenarios, whose sessions must outlive the step.
const LONG_TTL_MS: i64 = 600_000;
/// How long a node trusts its cached copy of an account's settings.
const CFG_CACHE: Duration = Duration::from_millis(1100);
const HB_BODY: &str = r#"{"mode":"active"}"#;

struct Sizes {
    status: usize,
    logout: usize,
    sessions: usize,
    conns: usize,
    hb_window: Duration,
    floor_requests: usize,
    /// Accounts of the timer-lag scenario (10 timers each).
    timer_accounts: usize,
}

pub async fn cluster(ctx: &mut Ctx) -> Res<()> {
    let sizes = if ctx.quick {
        Sizes {
            status: 20,
            logout: 10,
            sessions: 100,
            conns: 32,
            hb_window: Duration::from_secs(1),
            floor_requests: 50_000,
            timer_accounts: 10,
        }
    } else {
        Sizes {
            status: 200,
            logout: 50,
            sessions: 1000,
            conns: 32,
            hb_window: Duration::from_secs(3),
            floor_requests: 200_000,
            timer_accounts: 100,
        }
    };
    let server = build_server(ctx).await?;
    let dir = tempfile::Builder::new()
        .prefix("presence-bench-cluster-")
        .tempdir()
        .map_err(e)?;
    // Started in order, stopped in reverse: nodes, then Redis, then PostgreSQL.
    let mut procs: Vec<Spawned> = Vec::new();
    let result = run(ctx, &server, dir.path(), &mut procs, &sizes).await;
    for p in procs.into_iter().rev() {
        p.stop(STOP).await?;
    }
    drop(dir);
    let m = result?;
    let r = &mut ctx.report;
    r.set("cluster_status_cross_node_p50_ms", m.status.p50());
    r.set("cluster_status_cross_node_p99_ms", m.status.p99());
    r.set("cluster_logout_to_widget_offline_p99_ms", m.logout.p99());
    r.set("cluster_expiry_detection_lag_p99_ms", m.expiry.p99());
    r.set("cluster_status_timer_lag_p99_ms", m.timers.p99());
    r.detail(
        "cluster_status_timer_lag_ms",
        json!({"samples": m.timers.summary(), "missed": m.timers_missed}),
    );
    r.set(
        "cluster_expiry_publications_per_lease",
        (m.leases > 0).then(|| m.publications / m.leases as f64),
    );
    r.set(
        "cluster_heartbeat_throughput_per_s",
        Some(m.hb_per_s.round()),
    );
    r.set(
        "cluster_heartbeat_ratio_vs_redis_floor",
        (m.floor_per_s > 0.0).then(|| round3(m.hb_per_s / m.floor_per_s)),
    );
    r.set(
        "cluster_redis_heartbeat_floor_per_s",
        Some(m.floor_per_s.round()),
    );
    r.set("cluster_status_commit_p99_ms", m.commit_p99_ms);
    r.set("cluster_kill9_ghost_ms", Some(m.kill9_ghost_ms));
    r.detail(
        "cluster",
        json!({
            "nodes": 3,
            "status_cross_node_ms": m.status.summary(),
            "status_put_answer_ms": m.answers.summary(),
            "logout_to_widget_offline_ms": m.logout.summary(),
            "expiry": {"lag_ms": m.expiry.summary(), "sessions": sizes.sessions,
                       "ttl_ms": TTL_MS, "interval_ms": INTERVAL_MS,
                       "leases_ended": m.leases, "publications": m.publications,
                       "publications_per_node": m.per_node,
                       "lapsed_before_their_moment": m.lapsed_early,
                       "missed": m.missed},
            "heartbeat": {"connections": sizes.conns,
                          "window_s": sizes.hb_window.as_secs_f64(),
                          "per_s": m.hb_per_s.round(), "non_200_answers": m.hb_errors,
                          "redis_floor_per_s": m.floor_per_s.round(),
                          "redis_floor_requests": sizes.floor_requests,
                          "redis_floor": "redis-benchmark EVALSHA of the cluster's heartbeat script"},
            "status_commit": m.commit,
            "kill9_ghost": {"ms": m.kill9_ghost_ms, "ttl_ms": TTL_MS,
                            "killed_after_heartbeat": true},
            "postgres": m.pg_version,
            "redis": m.redis_version,
        }),
    );
    if m.missed > 0 || m.lapsed_early > 0 {
        r.note(
            "cluster_expiry_detection_lag_p99_ms",
            &format!(
                "{} lease ends never reached the widget; {} sessions lapsed before their \
                 moment (counted as leases, not as samples)",
                m.missed, m.lapsed_early
            ),
        );
    }
    if ctx.quick {
        r.note(
            "cluster_expiry_detection_lag_p99_ms",
            &format!("{} sessions (quick mode)", sizes.sessions),
        );
    }
    Ok(())
}

struct Measured {
    status: Samples,
    answers: Samples,
    logout: Samples,
    expiry: Samples,
    timers: Samples,
    timers_missed: usize,
    leases: usize,
    publications: f64,
    per_node: Vec<f64>,
    lapsed_early: usize,
    missed: usize,
    hb_per_s: f64,
    hb_errors: u64,
    floor_per_s: f64,
    commit_p99_ms: Option<f64>,
    commit: Value,
    kill9_ghost_ms: f64,
    pg_version: String,
    redis_version: String,
}

/// The `presence-server` binary of this bench's own profile (`target/release/` for a release
/// bench, `target/debug/` for the quick run `cargo xtask test` makes with the test build's
/// artifacts), built by a nested cargo (nothing to do when it is up to date).
async fn build_server(ctx: &Ctx) -> Res<PathBuf> {
    let (args, dir): (&[&str], &str) = if cfg!(debug_assertions) {
        (&["build", "-p", "presence-server", "--bin"], "debug")
    } else {
        (
            &["build", "--release", "-p", "presence-server", "--bin"],
            "release",
        )
    };
    let mut c = crate::cargo();
    c.args(args)
        .arg("presence-server")
        .current_dir(&ctx.root)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let st = timeout(Duration::from_secs(1800), c.status())
        .await
        .map_err(|_| "cargo build -p presence-server timed out")?
        .map_err(e)?;
    if !st.success() {
        return Err(format!("cargo {}: {st}", args.join(" ")));
    }
    Ok(ctx.target.join(dir).join("presence-server"))
}

async fn run(
    ctx: &Ctx,
    server: &Path,
    dir: &Path,
    procs: &mut Vec<Spawned>,
    sizes: &Sizes,
) -> Res<Measured> {
    let pg_port = proc::free_port()?;
    procs.push(start_postgres(ctx, dir, pg_port).await?);
    let pg_version = tool(&format!("{PG_BIN}/postgres"), &["--version"]).await;
    let redis_port = proc::free_port()?;
    procs.push(start_redis(ctx, dir, redis_port).await?);
    let redis_version = tool("redis-server", &["--version"]).await;
    let pg_url = format!("postgres://postgres@127.0.0.1:{pg_port}/bench");
    let redis_url = format!("redis://127.0.0.1:{redis_port}/");
    let mut nodes = Vec::new();
    for i in 0..3 {
        let node_dir = dir.join(format!("node-{i}"));
        std::fs::create_dir_all(&node_dir).map_err(e)?;
        let mut cmd = Command::new(server);
        cmd.args(["--listen", "127.0.0.1:0", "--admin-token", ADMIN_TOKEN])
            .args(["--postgres-url", &pg_url, "--redis-url", &redis_url])
            .args(["--active-ttl-ms", &TTL_MS.to_string()])
            .args(["--active-interval-ms", &INTERVAL_MS.to_string()])
            // Every bench client is one loopback address.
            .args(["--max-streams-per-ip", "1000000"])
            .args(["--max-sessions-per-agent", "1000000"])
            .arg("--data-dir")
            .arg(&node_dir);
        let s = proc::spawn_until(
            &format!("cluster-node-{i}"),
            cmd,
            "listening on http://",
            Duration::from_secs(60),
            &ctx.logs,
        )
        .await?;
        nodes.push(s.addr.ok_or("a node printed no address")?);
        procs.push(s);
    }
    let (a, b) = (nodes[0], nodes[1]);

    let (status, answers) = status_cross_node(a, b, sizes.status).await?;
    let (commit_p99_ms, commit) = commit_p99(a).await?;
    let logout = logout_cross_node(a, b, sizes.logout).await?;
    let (hb_per_s, hb_errors) = heartbeat_load(a, sizes.conns, sizes.hb_window).await?;
    let floor_per_s = redis_floor(redis_port, sizes.conns, sizes.floor_requests).await?;
    let ex = expiry(&nodes, sizes.sessions).await?;
    let timers = crate::timers::run(
        crate::timers::Scenario::Timer,
        a,
        b,
        "cl-tmr",
        sizes.timer_accounts,
        10,
    )
    .await?;
    // procs ends with node C (nodes[2]); the scenario kills it and reaps it.
    let victim = procs.pop().ok_or("no node to kill")?;
    let kill9_ghost_ms = kill9_ghost(a, nodes[2], victim).await?;
    Ok(Measured {
        status,
        answers,
        logout,
        expiry: ex.lags,
        timers: timers.lags,
        timers_missed: timers.missed,
        leases: ex.leases,
        publications: ex.publications,
        per_node: ex.per_node,
        lapsed_early: ex.lapsed_early,
        missed: ex.missed,
        hb_per_s,
        hb_errors,
        floor_per_s,
        commit_p99_ms,
        commit,
        kill9_ghost_ms,
        pg_version,
        redis_version,
    })
}

async fn tool(bin: &str, args: &[&str]) -> String {
    let mut c = Command::new(bin);
    c.args(args);
    proc::run(c, bin, Duration::from_secs(10))
        .await
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// A child whose output goes to log files (PostgreSQL logs to stderr, not a ready line).
pub(crate) fn spawn_logged(ctx: &Ctx, name: &str, mut cmd: Command) -> Res<Spawned> {
    std::fs::create_dir_all(&ctx.logs).map_err(e)?;
    let out = std::fs::File::create(ctx.logs.join(format!("{name}.log"))).map_err(e)?;
    let err = std::fs::File::create(ctx.logs.join(format!("{name}.stderr.log"))).map_err(e)?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .kill_on_drop(true);
    let child = cmd
        .spawn()
        .map_err(|err| format!("cannot start {name}: {err}"))?;
    let pid = child.id().ok_or("child has no pid")?;
    Ok(Spawned {
        child,
        pid,
        addr: None,
    })
}

/// A fresh PostgreSQL 15 cluster in `dir/pg` (owned by `postgres`, which it must run as),
/// with database `bench`; ready once `pg_isready` answers.
pub(crate) async fn start_postgres(ctx: &Ctx, dir: &Path, port: u16) -> Res<Spawned> {
    let data = dir.join("pg");
    std::fs::create_dir_all(&data).map_err(e)?;
    let mut chown = Command::new("chown");
    chown.args(["-R", "postgres:postgres"]).arg(dir);
    proc::run(chown, "chown postgres", Duration::from_secs(10)).await?;
    let mut initdb = Command::new("runuser");
    initdb
        .args(["-u", "postgres", "--"])
        .arg(format!("{PG_BIN}/initdb"))
        .arg("-D")
        .arg(&data)
        .args(["--auth=trust", "-U", "postgres"]);
    proc::run(initdb, "initdb", Duration::from_secs(120)).await?;
    let mut pg = Command::new("runuser");
    pg.args(["-u", "postgres", "--"])
        .arg(format!("{PG_BIN}/postgres"))
        .arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string()])
        .arg("-k")
        .arg(&data)
        .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=on"]);
    let server = spawn_logged(ctx, "cluster-postgres", pg)?;
    let ready = async {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut c = Command::new(format!("{PG_BIN}/pg_isready"));
            c.args(["-h", "127.0.0.1", "-p", &port.to_string()]);
            if proc::run(c, "pg_isready", Duration::from_secs(10))
                .await
                .is_ok()
            {
                break;
            }
            if Instant::now() >= deadline {
                return Err("PostgreSQL not ready within 60 s".to_owned());
            }
            sleep(Duration::from_millis(100)).await;
        }
        let mut c = Command::new(format!("{PG_BIN}/createdb"));
        c.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
            .arg("bench");
        proc::run(c, "createdb", Duration::from_secs(30)).await?;
        Ok(())
    }
    .await;
    match ready {
        Ok(()) => Ok(server),
        Err(err) => {
            server.stop(STOP).await?;
            Err(err)
        }
    }
}

pub(crate) async fn start_redis(ctx: &Ctx, dir: &Path, port: u16) -> Res<Spawned> {
    let rdir = dir.join("redis");
    std::fs::create_dir_all(&rdir).map_err(e)?;
    let mut cmd = Command::new("redis-server");
    cmd.args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--loglevel",
        "notice",
    ])
    .arg("--dir")
    .arg(&rdir);
    proc::spawn_until(
        "cluster-redis",
        cmd,
        "Ready to accept connections",
        Duration::from_secs(30),
        &ctx.logs,
    )
    .await
}

/// Logs in `device` and checks the lease it was given.
async fn login_checked(c: &mut Conn, acc: &Account, device: &str, ttl: i64) -> Res<api::Login> {
    let r = c
        .call(
            "POST",
            "/v1/login",
            None,
            Some(&api::login_body(acc, device)),
        )
        .await
        .map_err(e)?
        .expect(200, "login")
        .map_err(e)?;
    let v = r.json().map_err(e)?;
    let got = v["heartbeat"]["ttl_ms"].as_i64();
    if got != Some(ttl) {
        return Err(format!(
            "login of {device}: lease ttl {got:?}, expected {ttl}"
        ));
    }
    api::parse_login(&v)
}

/// A new account on `node` whose sessions get the long lease: its settings are changed from
/// a first session that logs out at once, then the nodes' cached settings are let go by.
async fn long_account(node: SocketAddr, slug: &str) -> Res<Account> {
    let mut c = Conn::connect(node).await.map_err(e)?;
    let acc = api::create_account(&mut c, slug).await?;
    let setup = api::login(&mut c, &acc, "setup").await?;
    let body = json!({"active_interval_ms": 20_000, "active_ttl_ms": LONG_TTL_MS}).to_string();
    c.call("PUT", "/v1/admin/settings", Some(&setup.token), Some(&body))
        .await
        .map_err(e)?
        .expect(200, "put settings")
        .map_err(e)?;
    api::set_status(&mut c, &setup.token, "online").await?;
    api::logout(&mut c, &setup.token).await?;
    sleep(CFG_CACHE).await;
    Ok(acc)
}

async fn next_named(sse: &mut Sse, name: &str) -> Res<crate::http::Event> {
    timeout(EVENT_WAIT, sse.next_named(name))
        .await
        .map_err(|_| format!("no {name} event within {EVENT_WAIT:?}"))?
        .map_err(e)
}

fn status_of(data: &str) -> String {
    serde_json::from_str::<Value>(data)
        .ok()
        .and_then(|v| v["status"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

async fn next_chatbox(sse: &mut Sse, want: &str) -> Res<crate::http::Event> {
    loop {
        let ev = next_named(sse, "chatbox").await?;
        if status_of(&ev.data) == want {
            return Ok(ev);
        }
    }
}

/// Status PUT on node `a` -> the `status` event on the other device's stream on node `b`;
/// also the PUT's own answer.
async fn status_cross_node(a: SocketAddr, b: SocketAddr, n: usize) -> Res<(Samples, Samples)> {
    let warm = (n / 10).max(5);
    let acc = long_account(a, "cl-status").await?;
    let mut ca = Conn::connect(a).await.map_err(e)?;
    let mut cb = Conn::connect(b).await.map_err(e)?;
    let da = login_checked(&mut ca, &acc, "device-a", LONG_TTL_MS).await?;
    let db = login_checked(&mut cb, &acc, "device-b", LONG_TTL_MS).await?;
    let mut sse = Sse::open(b, "/v1/me/events", Some(&db.token))
        .await
        .map_err(e)?;
    next_named(&mut sse, "snapshot").await?;
    let (mut s, mut answers) = (Samples::default(), Samples::default());
    for i in 0..warm + n {
        let status = if i % 2 == 0 { "busy" } else { "online" };
        let req = request_bytes(
            "PUT",
            "/v1/me/status",
            Some(&da.token),
            Some(&api::status_body(status)),
        );
        let t0 = Instant::now();
        ca.send(&req).await.map_err(e)?;
        let ev = loop {
            let ev = next_named(&mut sse, "status").await?;
            if status_of(&ev.data) == status {
                break ev;
            }
        };
        let answer = ca
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
    drop(sse);
    api::logout(&mut ca, &da.token).await?;
    api::logout(&mut cb, &db.token).await?;
    Ok((s, answers))
}

/// `DELETE /v1/session` on node `a` -> the widget stream on node `b` shows `offline`.
async fn logout_cross_node(a: SocketAddr, b: SocketAddr, n: usize) -> Res<Samples> {
    let warm = (n / 10).max(3);
    let acc = long_account(a, "cl-logout").await?;
    let mut c = Conn::connect(a).await.map_err(e)?;
    let mut w = Sse::open(b, &format!("/v1/widget/{}/events", acc.widget_key), None)
        .await
        .map_err(e)?;
    next_chatbox(&mut w, "offline").await?;
    let mut s = Samples::default();
    for i in 0..warm + n {
        let l = login_checked(&mut c, &acc, &format!("device-{i}"), LONG_TTL_MS).await?;
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

/// The agent's only session on node `c`, heartbeating; node `c` killed with SIGKILL right after
/// a heartbeat's answer -> the widget on node `a` shows `offline`. Milliseconds from the kill.
async fn kill9_ghost(a: SocketAddr, c: SocketAddr, victim: Spawned) -> Res<f64> {
    let setup = async {
        let mut ca = Conn::connect(a).await.map_err(e)?;
        let acc = api::create_account(&mut ca, "cl-kill9").await?;
        let mut w = Sse::open(a, &format!("/v1/widget/{}/events", acc.widget_key), None)
            .await
            .map_err(e)?;
        next_chatbox(&mut w, "offline").await?;
        let mut cc = Conn::connect(c).await.map_err(e)?;
        let l = login_checked(&mut cc, &acc, "device-on-c", TTL_MS).await?;
        api::set_status(&mut cc, &l.token, "online").await?;
        next_chatbox(&mut w, "online").await?;
        let hb = request_bytes(
            "POST",
            "/v1/session/heartbeat",
            Some(&l.token),
            Some(HB_BODY),
        );
        // A few beats at the interval, as a live device does; the kill follows the last.
        for _ in 0..3 {
            sleep(Duration::from_millis(INTERVAL_MS as u64)).await;
            cc.send(&hb).await.map_err(e)?;
            cc.recv()
                .await
                .map_err(e)?
                .expect(200, "heartbeat")
                .map_err(e)?;
        }
        Ok::<_, String>((w, cc))
    }
    .await;
    let (mut w, cc) = match setup {
        Ok(x) => x,
        Err(err) => {
            victim.stop(STOP).await?;
            return Err(err);
        }
    };
    let Spawned { mut child, pid, .. } = victim;
    proc::signal(pid, libc::SIGKILL);
    let t0 = Instant::now();
    let _ = child.wait().await;
    drop(cc);
    let wait = Duration::from_millis(TTL_MS as u64) + EVENT_WAIT;
    let ev = timeout(wait, next_chatbox(&mut w, "offline"))
        .await
        .map_err(|_| "the widget never showed the killed node's agent offline")??;
    Ok(round3((ev.at - t0).as_secs_f64() * 1000.0))
}

async fn metrics_text(node: SocketAddr) -> Res<String> {
    let mut c = Conn::connect(node).await.map_err(e)?;
    let r = c
        .call("GET", "/metrics", None, None)
        .await
        .map_err(e)?
        .expect(200, "metrics")
        .map_err(e)?;
    Ok(String::from_utf8_lossy(&r.body).into_owned())
}

/// The smallest bucket bound (ms) of the commit histogram that holds 99% of its count.
async fn commit_p99(node: SocketAddr) -> Res<(Option<f64>, Value)> {
    const NAME: &str = "presence_cluster_status_commit_seconds";
    let text = metrics_text(node).await?;
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    let mut count = None;
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((k, v)) = l.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = v.trim().parse::<f64>() else {
            continue;
        };
        if k == format!("{NAME}_count") {
            count = Some(v);
        } else if let Some(le) = k
            .strip_prefix(&format!("{NAME}_bucket{{le=\""))
            .and_then(|x| x.strip_suffix("\"}"))
        {
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse::<f64>().map_err(e)?
            };
            buckets.push((bound, v));
        }
    }
    let count = count.ok_or_else(|| format!("{NAME}_count not in node A's /metrics"))?;
    buckets.sort_by(|x, y| x.0.total_cmp(&y.0));
    let p99 = buckets
        .iter()
        .find(|(_, n)| *n >= 0.99 * count)
        .map(|(b, _)| b * 1000.0)
        .filter(|ms| ms.is_finite());
    let shown: Vec<Value> = buckets
        .iter()
        .map(|(b, n)| {
            json!([
                if b.is_finite() {
                    json!(round3(b * 1000.0))
                } else {
                    json!("+Inf")
                },
                n
            ])
        })
        .collect();
    Ok((
        p99.filter(|_| count > 0.0),
        json!({"count": count, "buckets_ms_cumulative": shown}),
    ))
}

/// `conns` connections to `node`, each looping heartbeats on its own session.
async fn heartbeat_load(node: SocketAddr, conns: usize, window: Duration) -> Res<(f64, u64)> {
    let acc = long_account(node, "cl-heartbeat").await?;
    let mut c = Conn::connect(node).await.map_err(e)?;
    let mut reqs = Vec::with_capacity(conns);
    for i in 0..conns {
        let l = login_checked(&mut c, &acc, &format!("hb-{i}"), LONG_TTL_MS).await?;
        reqs.push(request_bytes(
            "POST",
            "/v1/session/heartbeat",
            Some(&l.token),
            Some(HB_BODY),
        ));
    }
    crate::ours::run_load(
        node,
        Arc::new(reqs),
        conns,
        Duration::from_millis(500),
        window,
    )
    .await
}

/// `redis-benchmark` running the cluster's heartbeat script on a lease seeded for it (ends
/// far in the future), `conns` connections: the Redis side of a heartbeat, alone.
async fn redis_floor(port: u16, conns: usize, requests: usize) -> Res<f64> {
    let keys = presence_server::cluster::hot::Keys::of("acc_bench");
    let p = port.to_string();
    let cli = |args: &[&str]| {
        let mut c = Command::new("redis-cli");
        c.args(["-h", "127.0.0.1", "-p", &p]).args(args);
        c
    };
    proc::run(
        cli(&["HSET", &keys.meta, "cfg", "x"]),
        "redis-cli HSET",
        Duration::from_secs(10),
    )
    .await?;
    proc::run(
        cli(&[
            "HSET",
            &keys.leases,
            "ses_bench",
            "agt_bench|a|9999999999999|0",
        ]),
        "redis-cli HSET",
        Duration::from_secs(10),
    )
    .await?;
    let script = presence_server::cluster::hot::heartbeat_script_source();
    let sha = proc::run(
        cli(&["SCRIPT", "LOAD", &script]),
        "redis-cli SCRIPT LOAD",
        Duration::from_secs(10),
    )
    .await?
    .trim()
    .to_owned();
    if sha.len() != 40 {
        return Err(format!("SCRIPT LOAD answered {sha:?}"));
    }
    let mut bench = Command::new("redis-benchmark");
    bench
        .args(["-h", "127.0.0.1", "-p", &p, "-c", &conns.to_string()])
        .args(["-n", &requests.to_string(), "-q", "EVALSHA", &sha, "5"])
        .args([
            &keys.meta,
            &keys.leases,
            &keys.deadlines,
            &keys.agents,
            &keys.activity,
        ])
        .args([
            "ses_bench",
            "a",
            "60000",
            "1800000",
            "300000",
            "acc_bench",
            "",
        ]);
    let out = proc::run(bench, "redis-benchmark", Duration::from_secs(300)).await;
    // Leave nothing for the nodes' sweepers to find.
    let member = "s acc_bench ses_bench";
    let cleanup = proc::run(
        cli(&["ZREM", &keys.deadlines, member]),
        "redis-cli ZREM",
        Duration::from_secs(10),
    )
    .await;
    let out = out?;
    cleanup?;
    proc::run(
        cli(&["DEL", &keys.meta, &keys.leases]),
        "redis-cli DEL",
        Duration::from_secs(10),
    )
    .await?;
    let line = out
        .split(['\r', '\n'])
        .rfind(|l| l.contains("requests per second"))
        .ok_or_else(|| format!("no rate in redis-benchmark's output: {out:?}"))?;
    let head = line.split(" requests per second").next().unwrap_or("");
    head.rsplit([' ', ':'])
        .find(|t| !t.is_empty())
        .and_then(|t| t.parse::<f64>().ok())
        .ok_or_else(|| format!("cannot read the rate in {line:?}"))
}

/// Milliseconds since the Unix epoch of a local instant (same machine as the server).
struct WallClock {
    at: Instant,
    ms: f64,
}

impl WallClock {
    fn now() -> WallClock {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0);
        WallClock {
            at: Instant::now(),
            ms,
        }
    }

    fn ms(&self, t: Instant) -> f64 {
        if t >= self.at {
            self.ms + (t - self.at).as_secs_f64() * 1000.0
        } else {
            self.ms - (self.at - t).as_secs_f64() * 1000.0
        }
    }
}

struct Expiry {
    lags: Samples,
    leases: usize,
    publications: f64,
    per_node: Vec<f64>,
    lapsed_early: usize,
    missed: usize,
}

async fn expiries(nodes: &[SocketAddr]) -> Res<Vec<f64>> {
    let mut v = Vec::new();
    for &n in nodes {
        let mut c = Conn::connect(n).await.map_err(e)?;
        v.push(api::metric(&mut c, "presence_session_expiries_total").await?);
    }
    Ok(v)
}

/// What one session's task ends with.
enum Outcome {
    /// (lease_until of the last heartbeat, the widget's `offline` event), wall-clock ms.
    Lag(f64),
    LapsedEarly,
    Missed,
}

async fn expiry(nodes: &[SocketAddr], sessions: usize) -> Res<Expiry> {
    let clock = Arc::new(WallClock::now());
    let before = expiries(nodes).await?;
    let (go_tx, go_rx) = watch::channel::<Option<Instant>>(None);
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<Res<()>>();
    // Password checks dominate the setup: a few at a time keeps the heartbeats on time.
    let gate = Arc::new(Semaphore::new(nodes.len()));
    let span = Duration::from_millis(TTL_MS as u64);
    let interval = Duration::from_millis(INTERVAL_MS as u64);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..sessions {
        let widget_node = nodes[i % nodes.len()];
        let login_node = nodes[(i + 1 + (i / nodes.len()) % 2) % nodes.len()];
        let (gate, ready_tx, mut go, clock) =
            (gate.clone(), ready_tx.clone(), go_rx.clone(), clock.clone());
        let moment = span.mul_f64(i as f64 / sessions as f64);
        tasks.spawn(async move {
            let setup = async {
                let _p = gate.acquire().await.map_err(e)?;
                let mut c = Conn::connect(login_node).await.map_err(e)?;
                let acc = api::create_account(&mut c, &format!("cl-exp-{i}")).await?;
                let mut w = Sse::open(
                    widget_node,
                    &format!("/v1/widget/{}/events", acc.widget_key),
                    None,
                )
                .await
                .map_err(e)?;
                next_chatbox(&mut w, "offline").await?;
                let l = login_checked(&mut c, &acc, "device", TTL_MS).await?;
                api::set_status(&mut c, &l.token, "online").await?;
                next_chatbox(&mut w, "online").await?;
                Ok::<_, String>((c, w, l))
            }
            .await;
            let (mut c, mut w, l) = match setup {
                Ok(x) => {
                    let _ = ready_tx.send(Ok(()));
                    x
                }
                Err(err) => {
                    let _ = ready_tx.send(Err(err.clone()));
                    return Err(err);
                }
            };
            let hb = request_bytes(
                "POST",
                "/v1/session/heartbeat",
                Some(&l.token),
                Some(HB_BODY),
            );
            let mut last = l.lease_until;
            // Heartbeat at the interval until this session's moment, then once more there.
            loop {
                let next = Instant::now() + interval;
                let at = go.borrow_and_update().map(|t0| t0 + moment);
                let last_beat = match at {
                    Some(at) if at <= next => {
                        sleep_until(at.into()).await;
                        true
                    }
                    _ => false,
                };
                c.send(&hb).await.map_err(e)?;
                let r = c.recv().await.map_err(e)?;
                if r.status == 401 {
                    return Ok(Outcome::LapsedEarly);
                }
                let v = r.expect(200, "heartbeat").map_err(e)?.json().map_err(e)?;
                last = v["lease_until"].as_i64().unwrap_or(last);
                if last_beat {
                    break;
                }
                tokio::select! {
                    _ = sleep_until(next.into()) => {}
                    _ = go.changed() => {}
                }
            }
            drop(c);
            let wait = Duration::from_millis(TTL_MS as u64) + EVENT_WAIT;
            match timeout(wait, next_chatbox(&mut w, "offline")).await {
                Ok(Ok(ev)) => Ok(Outcome::Lag(clock.ms(ev.at) - last as f64)),
                _ => Ok(Outcome::Missed),
            }
        });
    }
    drop(ready_tx);
    for _ in 0..sessions {
        match timeout(Duration::from_secs(600), ready_rx.recv()).await {
            Ok(Some(Ok(()))) => {}
            Ok(Some(Err(err))) => return Err(format!("expiry setup: {err}")),
            _ => return Err("expiry setup did not finish in time".into()),
        }
    }
    let _ = go_tx.send(Some(Instant::now()));
    let mut out = Expiry {
        lags: Samples::default(),
        leases: sessions,
        publications: 0.0,
        per_node: Vec::new(),
        lapsed_early: 0,
        missed: 0,
    };
    while let Some(r) = tasks.join_next().await {
        match r.map_err(e)?? {
            Outcome::Lag(ms) => out.lags.push_ms(ms),
            Outcome::LapsedEarly => out.lapsed_early += 1,
            Outcome::Missed => out.missed += 1,
        }
    }
    // A second publication of a lease end would come within the contract's 250 ms.
    let deadline = Instant::now() + Duration::from_millis(300);
    let mut per_node;
    loop {
        let after = expiries(nodes).await?;
        per_node = after
            .iter()
            .zip(&before)
            .map(|(a, b)| a - b)
            .collect::<Vec<_>>();
        if Instant::now() >= deadline {
            break;
        }
        sleep(Duration::from_millis(50)).await;
    }
    out.publications = per_node.iter().sum();
    out.per_node = per_node;
    Ok(out)
}

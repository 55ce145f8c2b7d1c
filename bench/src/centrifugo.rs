//! Centrifugo v6.9.1 (channels with presence and join/leave), driven by the same HTTP and SSE
//! client as our server: devices and widgets are its unidirectional SSE connections
//! (`/connection/uni_sse`, HS256 connection tokens whose `channels` claim subscribes them),
//! changes and logouts go through its server API (`/api/*` with `X-API-Key`).
//!
//! Installed with the machine's Go toolchain (`go install MODULE@VERSION`, about 3 minutes the
//! first time) into `${XDG_CACHE_HOME:-$HOME/.cache}/presence/peers/centrifugo`: the binary in
//! `bin/`, the module and build caches in `gopath/` and `gocache/` beside it. The version is
//! read back with `go version -m` (the binary itself says 0.0.0). A quick run never installs it.
//!
//! One node (memory engine), each scenario the counterpart of one of ours:
//! - change: API `publish` to `agents:agent-1` sent -> the publication on another connection of
//!   `agent-1` (ours: status PUT -> the `status` event on the agent's other device);
//! - leave: API `disconnect` of user `agent-1` sent -> the `leave` push on a widget connection
//!   of `agents:acme` (ours: `DELETE /v1/session` -> the widget's `offline`);
//! - 10k fan-out: 10,000 widget streams on `widgets:acme` (history of 1, cache recovery, so a
//!   new stream that asks to recover the channel gets the current state in its first frame);
//!   API `publish` -> each receipt, and the server's CPU time per change;
//! - expiry: a client whose token's `exp` passes (a unidirectional client cannot refresh) ->
//!   the widget's `leave`; the lag is counted from `exp`, which is whole seconds.
//!
//! Cluster (step `centrifugo-cluster`): two nodes on one Redis (Redis engine). Cross-node
//! change (publish to node A -> the connection on node B), and the kill -9 ghost: a client of
//! node B, node B killed with SIGKILL right after the client's presence was written -> the
//! moment node A's presence no longer lists it. No leave is sent for it; the Redis
//! `presence_ttl` (default 60 s, kept) ends it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::process::Command;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::{sleep, timeout};

use crate::Ctx;
use crate::api::e;
use crate::http::{Conn, Sse};
use crate::proc::{self, Res, Spawned};
use crate::report::Report;
use crate::stats::{Samples, round3};

const VERSION: &str = "v6.9.1";
const MODULE: &str = "github.com/centrifugal/centrifugo/v6";
const HMAC_SECRET: &str = "presence-bench-centrifugo-hmac-secret";
const API_KEY: &str = "presence-bench-centrifugo-api-key";
const EVENT_WAIT: Duration = Duration::from_secs(10);
const STOP: Duration = Duration::from_secs(10);
/// Centrifugo's default Redis `presence_ttl`, left as shipped.
const PRESENCE_TTL: Duration = Duration::from_secs(60);

pub fn cache_dir() -> PathBuf {
    crate::soketi::peers_dir().join("centrifugo")
}

pub fn binary() -> PathBuf {
    cache_dir().join("bin").join("centrifugo")
}

/// The module version `go version -m` reads from the binary's build info.
async fn installed_version(bin: &Path) -> Option<String> {
    if !bin.is_file() {
        return None;
    }
    let mut c = Command::new("go");
    c.args(["version", "-m"]).arg(bin);
    let out = proc::run(c, "go version -m", Duration::from_secs(30))
        .await
        .ok()?;
    // A line `\tmod\tgithub.com/centrifugal/centrifugo/v6\tv6.9.1\th1:...`.
    out.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f.as_slice() {
            ["mod", m, v, ..] if *m == MODULE => Some((*v).to_owned()),
            _ => None,
        }
    })
}

/// Installs Centrifugo into the cache dir unless the right version is already there.
async fn ensure_installed(allow_install: bool) -> Res<PathBuf> {
    if proc::which("go").is_none() {
        return Err("the Go toolchain (`go`) is needed to install and check Centrifugo".into());
    }
    let bin = binary();
    if installed_version(&bin).await.as_deref() == Some(VERSION) {
        return Ok(bin);
    }
    if !allow_install {
        return Err(format!(
            "Centrifugo {VERSION} is not installed in {}",
            cache_dir().display()
        ));
    }
    let dir = cache_dir();
    std::fs::create_dir_all(&dir).map_err(e)?;
    println!(
        "    installing Centrifugo {VERSION} with `go install` (about 3 minutes the first time)"
    );
    let mut cmd = Command::new("go");
    cmd.args(["install", &format!("{MODULE}@{VERSION}")])
        .env("GOBIN", dir.join("bin"))
        .env("GOPATH", dir.join("gopath"))
        .env("GOMODCACHE", dir.join("gopath/pkg/mod"))
        .env("GOCACHE", dir.join("gocache"))
        .env("GOFLAGS", "-modcacherw")
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "0")
        .current_dir(&dir);
    proc::run(cmd, "go install centrifugo", Duration::from_secs(1800)).await?;
    match installed_version(&bin).await {
        Some(v) if v == VERSION => Ok(bin),
        other => Err(format!("the Centrifugo install left version {other:?}")),
    }
}

/// One node's configuration: everything on 127.0.0.1, the memory engine unless `redis`.
fn config(port: u16, redis: Option<u16>) -> Value {
    let mut c = json!({
        "http_server": {"address": "127.0.0.1", "port": port},
        "usage_stats": {"disabled": true},
        "log": {"level": "warn"},
        "http_api": {"key": API_KEY},
        "uni_sse": {"enabled": true},
        "uni_http_stream": {"enabled": true},
        "client": {
            "token": {"hmac_secret_key": HMAC_SECRET},
            // Default 25 s: how long an expired connection is kept before it is closed.
            "expired_close_delay": "1ms",
        },
        "channel": {"namespaces": [
            // Unidirectional clients cannot ask for join/leave: it is pushed to them.
            {"name": "agents", "presence": true, "join_leave": true,
             "force_push_join_leave": true},
            {"name": "widgets", "history_size": 1, "history_ttl": "600s",
             "force_recovery": true, "force_recovery_mode": "cache"},
        ]},
    });
    if let Some(p) = redis {
        c["engine"] = json!({"type": "redis",
                             "redis": {"address": [format!("redis://127.0.0.1:{p}")]}});
    }
    c
}

/// Starts a node; ready once its API answers (a small answer: the reader takes no chunked
/// bodies).
async fn start(
    ctx: &Ctx,
    bin: &Path,
    name: &str,
    redis: Option<u16>,
) -> Res<(Spawned, SocketAddr)> {
    let port = proc::free_port()?;
    std::fs::create_dir_all(&ctx.work).map_err(e)?;
    let cfg_path = ctx.work.join(format!("{name}.json"));
    std::fs::write(&cfg_path, config(port, redis).to_string()).map_err(e)?;
    let mut cmd = Command::new(bin);
    cmd.arg("--config").arg(&cfg_path).current_dir(&ctx.work);
    let server = crate::cluster::spawn_logged(ctx, name, cmd)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = async {
            let mut c = Conn::connect(addr).await.map_err(e)?;
            api(
                &mut c,
                "presence_stats",
                &json!({"channel": "agents:ready"}),
            )
            .await
        };
        match ready.await {
            Ok(_) => return Ok((server, addr)),
            Err(err) if Instant::now() >= deadline => {
                server.stop(STOP).await?;
                return Err(format!(
                    "{name} did not answer its API within 60 s ({err}); logs in {}",
                    ctx.logs.display()
                ));
            }
            Err(_) => sleep(Duration::from_millis(100)).await,
        }
    }
}

fn api_request(method: &str, body: &Value) -> Vec<u8> {
    let b = body.to_string();
    format!(
        "POST /api/{method} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {API_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
        b.len()
    )
    .into_bytes()
}

/// Reads the answer to an API request (errors come as 200 with an `error` member).
async fn api_answer(c: &mut Conn, method: &str) -> Res<Value> {
    let r = c.recv().await.map_err(e)?.expect(200, method).map_err(e)?;
    let v = r.json().map_err(e)?;
    if let Some(err) = v.get("error") {
        return Err(format!("Centrifugo API {method}: {err}"));
    }
    Ok(v)
}

async fn api(c: &mut Conn, method: &str, body: &Value) -> Res<Value> {
    c.send(&api_request(method, body)).await.map_err(e)?;
    api_answer(c, method).await
}

/// An HS256 connection token; `sub` empty is an anonymous connection.
fn token(sub: &str, channels: &[&str], exp: Option<u64>) -> Res<String> {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let mut claims = json!({"sub": sub, "channels": channels});
    if let Some(x) = exp {
        claims["exp"] = json!(x);
    }
    let signing = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
    let mut mac = Hmac::<Sha256>::new_from_slice(HMAC_SECRET.as_bytes()).map_err(e)?;
    mac.update(signing.as_bytes());
    Ok(format!(
        "{signing}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    ))
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A unidirectional SSE connection: one JSON push per `data:` frame, no event names.
struct Uni {
    sse: Sse,
}

impl Uni {
    /// Connects with `token` and reads the `connect` push, which it returns.
    async fn open(addr: SocketAddr, token: &str) -> Res<(Uni, Value)> {
        Self::open_with(addr, json!({"token": token})).await
    }

    /// Connects with `token`, asking to recover `channel`: in cache mode, the `connect` push
    /// then carries the channel's latest publication, the current state.
    async fn open_recovering(addr: SocketAddr, token: &str, channel: &str) -> Res<(Uni, Value)> {
        let subs = json!({ channel: {"recover": true} });
        Self::open_with(addr, json!({"token": token, "subs": subs})).await
    }

    async fn open_with(addr: SocketAddr, connect: Value) -> Res<(Uni, Value)> {
        let path = format!(
            "/connection/uni_sse?cf_connect={}",
            percent_encode(&connect.to_string())
        );
        let sse = Sse::open(addr, &path, None).await.map_err(e)?;
        let mut u = Uni { sse };
        let (v, _) = u.next().await?;
        let connect = v
            .get("connect")
            .cloned()
            .ok_or_else(|| format!("expected a connect push, got {v}"))?;
        Ok((u, connect))
    }

    /// The next push (pings, `{}`, skipped) and when the read carrying it returned.
    async fn next_push(sse: &mut Sse) -> Res<(Value, Instant)> {
        loop {
            let ev = sse.next().await.map_err(e)?;
            let v: Value = serde_json::from_str(&ev.data).map_err(e)?;
            if v.as_object().is_some_and(|o| o.is_empty()) {
                continue;
            }
            if let Some(d) = v.get("disconnect") {
                return Err(format!("Centrifugo disconnected the stream: {d}"));
            }
            return Ok((v, ev.at));
        }
    }

    async fn next(&mut self) -> Res<(Value, Instant)> {
        timeout(EVENT_WAIT, Self::next_push(&mut self.sse))
            .await
            .map_err(|_| format!("no Centrifugo push within {EVENT_WAIT:?}"))?
    }

    /// The next `kind` push (`pub`, `join`, `leave`) whose body satisfies `want`.
    async fn wait(&mut self, kind: &str, want: impl Fn(&Value) -> bool) -> Res<Instant> {
        loop {
            let (v, at) = self.next().await?;
            if v.get(kind).is_some_and(&want) {
                return Ok(at);
            }
        }
    }
}

fn user_is(info_holder: &Value, user: &str) -> bool {
    info_holder["info"]["user"].as_str() == Some(user)
}

/// API `publish` on `api_node` sent -> the publication on a connection of `stream_node`.
async fn change(api_node: SocketAddr, stream_node: SocketAddr, n: usize) -> Res<Samples> {
    let warm = (n / 10).max(10);
    let ch = "agents:agent-1";
    let (mut b, _) = Uni::open(stream_node, &token("agent-1", &[ch], None)?).await?;
    let mut c = Conn::connect(api_node).await.map_err(e)?;
    let mut s = Samples::default();
    for i in 0..warm + n {
        let status = if i % 2 == 0 { "online" } else { "busy" };
        let req = api_request(
            "publish",
            &json!({"channel": ch, "data": {"status": status, "seq": i}}),
        );
        let t0 = Instant::now();
        c.send(&req).await.map_err(e)?;
        let at = b
            .wait("pub", |p| p["data"]["seq"].as_u64() == Some(i as u64))
            .await?;
        api_answer(&mut c, "publish").await?;
        if i >= warm {
            s.push(at - t0);
        }
    }
    Ok(s)
}

/// API `disconnect` of the agent sent -> the widget's `leave` push.
async fn leave(addr: SocketAddr, n: usize) -> Res<Samples> {
    let warm = (n / 10).max(5);
    let ch = "agents:acme";
    let (mut w, _) = Uni::open(addr, &token("", &[ch], None)?).await?;
    let mut c = Conn::connect(addr).await.map_err(e)?;
    let device = token("agent-1", &[ch], None)?;
    let mut s = Samples::default();
    for i in 0..warm + n {
        let (d, _) = Uni::open(addr, &device).await?;
        w.wait("join", |j| user_is(j, "agent-1")).await?;
        let req = api_request("disconnect", &json!({"user": "agent-1"}));
        let t0 = Instant::now();
        c.send(&req).await.map_err(e)?;
        let at = w.wait("leave", |l| user_is(l, "agent-1")).await?;
        api_answer(&mut c, "disconnect").await?;
        drop(d);
        if i >= warm {
            s.push(at - t0);
        }
    }
    Ok(s)
}

struct Fanout {
    receipts: Samples,
    missing: usize,
    /// Streams whose first frame carried the state published before they connected.
    with_state: usize,
    connect_s: f64,
    server_cpu_ms: f64,
    clients_cpu_ms: f64,
}

/// `widgets` streams on `widgets:acme`; `toggles` publications, each one's receipts.
async fn fanout(addr: SocketAddr, pid: u32, widgets: usize, toggles: usize) -> Res<Fanout> {
    let ch = "widgets:acme";
    let mut c = Conn::connect(addr).await.map_err(e)?;
    api(
        &mut c,
        "publish",
        &json!({"channel": ch, "data": {"status": "offline", "seq": -1}}),
    )
    .await?;
    let tok = token("", &[ch], None)?;
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<Result<bool, String>>();
    let (rx_tx, mut rx_rx) = mpsc::unbounded_channel::<Instant>();
    let gate = Arc::new(Semaphore::new(128));
    let t_connect = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..widgets {
        let (ready_tx, rx_tx, gate, tok) =
            (ready_tx.clone(), rx_tx.clone(), gate.clone(), tok.clone());
        tasks.spawn(async move {
            let opened = async {
                let _p = gate.acquire().await.map_err(e)?;
                let (u, connect) = Uni::open_recovering(addr, &tok, ch).await?;
                let state = connect["subs"][ch]["publications"]
                    .as_array()
                    .is_some_and(|p| !p.is_empty());
                Ok::<_, String>((u, state))
            }
            .await;
            let mut u = match opened {
                Ok((u, state)) => {
                    let _ = ready_tx.send(Ok(state));
                    u
                }
                Err(err) => {
                    let _ = ready_tx.send(Err(err));
                    return;
                }
            };
            while let Ok((v, at)) = Uni::next_push(&mut u.sse).await {
                if v.get("pub").is_some() && rx_tx.send(at).is_err() {
                    return;
                }
            }
        });
    }
    drop(rx_tx);
    let (mut ok, mut with_state) = (0, 0);
    for _ in 0..widgets {
        match timeout(Duration::from_secs(120), ready_rx.recv()).await {
            Ok(Some(Ok(state))) => {
                ok += 1;
                with_state += usize::from(state);
            }
            Ok(Some(Err(err))) => return Err(format!("a widget stream failed to open: {err}")),
            _ => return Err("the widget streams did not open in time".into()),
        }
    }
    let connect_s = t_connect.elapsed().as_secs_f64();
    let mut receipts = Samples::default();
    let mut missing = 0;
    let me = std::process::id();
    let (server0, clients0) = (proc::cpu_ms(pid)?, proc::cpu_ms(me)?);
    for k in 0..toggles {
        let status = if k % 2 == 0 { "online" } else { "busy" };
        let req = api_request(
            "publish",
            &json!({"channel": ch, "data": {"status": status, "seq": k}}),
        );
        let t0 = Instant::now();
        c.send(&req).await.map_err(e)?;
        let mut got = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while got < ok {
            match tokio::time::timeout_at(deadline, rx_rx.recv()).await {
                Ok(Some(at)) => {
                    receipts.push(at.saturating_duration_since(t0));
                    got += 1;
                }
                _ => break,
            }
        }
        missing += ok - got;
        api_answer(&mut c, "publish").await?;
    }
    let server_cpu_ms = round3((proc::cpu_ms(pid)? - server0) / toggles as f64);
    let clients_cpu_ms = round3((proc::cpu_ms(me)? - clients0) / toggles as f64);
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    Ok(Fanout {
        receipts,
        missing,
        with_state,
        connect_s,
        server_cpu_ms,
        clients_cpu_ms,
    })
}

/// Milliseconds since the Unix epoch of a monotonic instant, from one pairing of the clocks.
#[derive(Clone, Copy)]
struct WallClock {
    at: Instant,
    unix_ms: f64,
}

impl WallClock {
    fn now() -> WallClock {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0);
        WallClock {
            at: Instant::now(),
            unix_ms,
        }
    }

    fn ms(&self, t: Instant) -> f64 {
        self.unix_ms + (t.saturating_duration_since(self.at)).as_secs_f64() * 1000.0
            - (self.at.saturating_duration_since(t)).as_secs_f64() * 1000.0
    }
}

/// `clients` agents, each watched by its own widget, connect with a token that ends at the
/// second after next and stay silent; lag = the widget's `leave` - `exp`. Each client connects
/// at its own moment within the second, so the moments are spread evenly over it.
async fn expiry(addr: SocketAddr, clients: usize, rounds: usize) -> Res<(Samples, usize)> {
    let clock = WallClock::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..clients {
        tasks.spawn(async move {
            let user = format!("exp-{i}");
            let ch = format!("agents:{user}");
            let (mut w, _) = Uni::open(addr, &token("", &[&ch], None)?).await?;
            // Stagger: client i connects at i/clients of a second.
            let now_ms = clock.ms(Instant::now());
            let phase = 1000.0 * i as f64 / clients as f64;
            let wait = (phase - now_ms.rem_euclid(1000.0)).rem_euclid(1000.0);
            sleep(Duration::from_secs_f64(wait / 1000.0)).await;
            let (mut lags, mut missed) = (Vec::new(), 0usize);
            for _ in 0..rounds {
                let exp = (clock.ms(Instant::now()) / 1000.0).floor() as u64 + 2;
                let (d, _) = Uni::open(addr, &token(&user, &[&ch], Some(exp))?).await?;
                w.wait("join", |j| user_is(j, &user)).await?;
                match timeout(
                    Duration::from_secs(2) + EVENT_WAIT,
                    w.wait("leave", |l| user_is(l, &user)),
                )
                .await
                {
                    Ok(Ok(at)) => lags.push(clock.ms(at) - exp as f64 * 1000.0),
                    _ => missed += 1,
                }
                drop(d);
            }
            Ok::<_, String>((lags, missed))
        });
    }
    let mut lags = Samples::default();
    let mut missed = 0;
    while let Some(r) = tasks.join_next().await {
        let (l, m) = r.map_err(e)??;
        for x in l {
            lags.push_ms(x);
        }
        missed += m;
    }
    Ok((lags, missed))
}

struct Sizes {
    latency: usize,
    widgets: usize,
    toggles: usize,
    expiry_clients: usize,
    expiry_rounds: usize,
    cluster: usize,
}

fn sizes(quick: bool) -> Sizes {
    if quick {
        Sizes {
            latency: 100,
            widgets: 1000,
            toggles: 5,
            expiry_clients: 20,
            expiry_rounds: 2,
            cluster: 20,
        }
    } else {
        Sizes {
            latency: 1000,
            widgets: 10_000,
            toggles: 20,
            expiry_clients: 100,
            expiry_rounds: 5,
            cluster: 200,
        }
    }
}

/// Step `centrifugo`: one node, the four scenarios.
pub async fn centrifugo(ctx: &mut Ctx) -> Res<()> {
    let bin = ensure_installed(!ctx.quick).await?;
    let sz = sizes(ctx.quick);
    let (server, addr) = start(ctx, &bin, "centrifugo", None).await?;
    let result = async {
        let change = change(addr, addr, sz.latency).await?;
        let leave = leave(addr, sz.latency / 2).await?;
        let expiry = expiry(addr, sz.expiry_clients, sz.expiry_rounds).await?;
        let fan = fanout(addr, server.pid, sz.widgets, sz.toggles).await?;
        Ok::<_, String>((change, leave, expiry, fan))
    }
    .await;
    let rss = server.rss_bytes().ok();
    server.stop(STOP).await?;
    let (change, leave, (expiry, expiry_missed), fan) = result?;
    let r = &mut ctx.report;
    r.set("peer_centrifugo_change_p50_ms", change.p50());
    r.set("peer_centrifugo_leave_p50_ms", leave.p50());
    r.set("peer_centrifugo_fanout_10k_p99_ms", fan.receipts.p99());
    r.set(
        "peer_centrifugo_fanout_server_cpu_ms_per_change",
        Some(fan.server_cpu_ms),
    );
    r.set("peer_centrifugo_expiry_lag_p50_ms", expiry.p50());
    r.set("peer_centrifugo_expiry_lag_p99_ms", expiry.p99());
    r.detail(
        "peer_centrifugo",
        json!({"version": VERSION, "module": MODULE, "transport": "uni_sse",
               "change_ms": change.summary(), "leave_ms": leave.summary(),
               "fanout": {"widgets": sz.widgets, "toggles": sz.toggles,
                          "receipts_ms": fan.receipts.summary(), "missing_receipts": fan.missing,
                          "first_frame_with_state": fan.with_state,
                          "connect_all_s": round3(fan.connect_s),
                          "cpu_ms_per_change": {"server": fan.server_cpu_ms,
                                                "clients": fan.clients_cpu_ms}},
               "expiry": {"lag_after_exp_ms": expiry.summary(), "clients": sz.expiry_clients,
                          "rounds": sz.expiry_rounds, "missed": expiry_missed},
               "rss_bytes_after": rss, "config": config(0, None)}),
    );
    if sz.widgets != 10_000 {
        r.note(
            "peer_centrifugo_fanout_10k_p99_ms",
            &format!("{} subscribers (quick mode)", sz.widgets),
        );
    }
    if fan.with_state < sz.widgets {
        r.note(
            "peer_centrifugo_fanout_10k_p99_ms",
            &format!(
                "only {} of {} streams got the current state in their first frame",
                fan.with_state, sz.widgets
            ),
        );
    }
    if fan.missing > 0 {
        r.note(
            "peer_centrifugo_fanout_10k_p99_ms",
            &format!("{} receipts never came within 15 s", fan.missing),
        );
    }
    Ok(())
}

/// Step `centrifugo-cluster`: two nodes on one Redis.
pub async fn cluster(ctx: &mut Ctx) -> Res<()> {
    let bin = ensure_installed(!ctx.quick).await?;
    let sz = sizes(ctx.quick);
    let dir = tempfile::Builder::new()
        .prefix("presence-bench-centrifugo-")
        .tempdir()
        .map_err(e)?;
    // Started in order, stopped in reverse: Redis, then the nodes still alive.
    let mut procs: Vec<Spawned> = Vec::new();
    let result = cluster_run(ctx, &bin, dir.path(), &mut procs, &sz).await;
    for p in procs.into_iter().rev() {
        p.stop(STOP).await?;
    }
    drop(dir);
    let (change, ghost) = result?;
    let r = &mut ctx.report;
    r.set("peer_centrifugo_cluster_change_p50_ms", change.p50());
    r.set("centrifugo_kill9_ghost_ms", ghost.as_ref().map(|g| g.ms));
    r.detail(
        "peer_centrifugo_cluster",
        json!({"nodes": 2, "engine": "redis", "change_ms": change.summary(),
               "kill9_ghost": ghost.as_ref().map(|g| json!({
                   "ms": g.ms, "presence_ttl_s": PRESENCE_TTL.as_secs(),
                   "widget_leave_after_ms": g.widget_leave_ms}))}),
    );
    if ghost.is_none() {
        r.note(
            "centrifugo_kill9_ghost_ms",
            "not measured in quick mode (it waits out the 60 s presence ttl)",
        );
    }
    Ok(())
}

struct Ghost {
    ms: f64,
    /// A `leave` for the killed node's client on node A's widget, if one ever came.
    widget_leave_ms: Option<f64>,
}

async fn cluster_run(
    ctx: &Ctx,
    bin: &Path,
    dir: &Path,
    procs: &mut Vec<Spawned>,
    sz: &Sizes,
) -> Res<(Samples, Option<Ghost>)> {
    let redis_port = proc::free_port()?;
    procs.push(crate::cluster::start_redis(ctx, dir, redis_port).await?);
    let (na, a) = start(ctx, bin, "centrifugo-node-a", Some(redis_port)).await?;
    procs.push(na);
    let (nb, b) = start(ctx, bin, "centrifugo-node-b", Some(redis_port)).await?;
    let change = match change(a, b, sz.cluster).await {
        Ok(c) => c,
        Err(err) => {
            nb.stop(STOP).await?;
            return Err(err);
        }
    };
    if ctx.quick {
        procs.push(nb);
        return Ok((change, None));
    }
    let ghost = kill9_ghost(a, b, nb).await?;
    Ok((change, Some(ghost)))
}

/// A client of node `b` (a widget of its channel on node `a`); `b` killed with SIGKILL right
/// after the client's presence was written -> node `a`'s presence no longer lists it.
async fn kill9_ghost(a: SocketAddr, b: SocketAddr, victim: Spawned) -> Res<Ghost> {
    let ch = "agents:acme";
    let (mut w, _) = Uni::open(a, &token("", &[ch], None)?).await?;
    let mut c = Conn::connect(a).await.map_err(e)?;
    let opened = async {
        let (d, _) = Uni::open(b, &token("agent-1", &[ch], None)?).await?;
        w.wait("join", |j| user_is(j, "agent-1")).await?;
        Ok::<_, String>(d)
    }
    .await;
    let d = match opened {
        Ok(d) => d,
        Err(err) => {
            victim.stop(STOP).await?;
            return Err(err);
        }
    };
    let present = |v: &Value| {
        v["result"]["presence"]
            .as_object()
            .is_some_and(|m| m.values().any(|x| x["user"].as_str() == Some("agent-1")))
    };
    let body = json!({"channel": ch});
    if !present(&api(&mut c, "presence", &body).await?) {
        victim.stop(STOP).await?;
        return Err("the client of node B is not in node A's presence".into());
    }
    let Spawned { mut child, pid, .. } = victim;
    proc::signal(pid, libc::SIGKILL);
    let t0 = Instant::now();
    let _ = child.wait().await;
    drop(d);
    let watcher = tokio::spawn(async move {
        loop {
            match Uni::next_push(&mut w.sse).await {
                Ok((v, at)) if v.get("leave").is_some_and(|l| user_is(l, "agent-1")) => {
                    return Some(at);
                }
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    });
    let deadline = t0 + PRESENCE_TTL + Duration::from_secs(30);
    let gone = loop {
        if !present(&api(&mut c, "presence", &body).await?) {
            break Instant::now();
        }
        if Instant::now() >= deadline {
            watcher.abort();
            return Err("the killed node's client was still present after 90 s".into());
        }
        sleep(Duration::from_millis(50)).await;
    };
    let widget_leave_ms = if watcher.is_finished() {
        watcher
            .await
            .ok()
            .flatten()
            .map(|at| round3((at - t0).as_secs_f64() * 1000.0))
    } else {
        watcher.abort();
        None
    };
    Ok(Ghost {
        ms: round3((gone - t0).as_secs_f64() * 1000.0),
        widget_leave_ms,
    })
}

/// Our figure over Centrifugo's, same run: at most 1 means we are as fast or faster.
const RATIOS: &[(&str, &str, &str)] = &[
    (
        "ratio_centrifugo_change",
        "status_to_other_device_p50_ms",
        "peer_centrifugo_change_p50_ms",
    ),
    (
        "ratio_centrifugo_leave",
        "logout_to_widget_offline_p50_ms",
        "peer_centrifugo_leave_p50_ms",
    ),
    (
        "ratio_centrifugo_fanout_10k",
        "status_to_10k_widgets_p99_ms",
        "peer_centrifugo_fanout_10k_p99_ms",
    ),
    (
        "ratio_centrifugo_fanout_cpu",
        "fanout_server_cpu_ms_per_change",
        "peer_centrifugo_fanout_server_cpu_ms_per_change",
    ),
    (
        "ratio_centrifugo_expiry",
        "expiry_detection_lag_p99_ms",
        "peer_centrifugo_expiry_lag_p99_ms",
    ),
    (
        "ratio_centrifugo_cluster_change",
        "cluster_status_cross_node_p50_ms",
        "peer_centrifugo_cluster_change_p50_ms",
    ),
];

/// The Centrifugo ratios, from figures of the same run (whichever steps measured them).
pub fn ratios(r: &mut Report) {
    for (key, ours, theirs) in RATIOS {
        let v = match (r.get(ours), r.get(theirs)) {
            (Some(o), Some(t)) if t > 0.0 => Some(round3(o / t)),
            _ => None,
        };
        r.set(key, v);
    }
}

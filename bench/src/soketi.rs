//! soketi 1.6.1 (Pusher protocol, presence channels), driven by a Rust Pusher client.
//!
//! Installed with the machine's npm into `${XDG_CACHE_HOME:-$HOME/.cache}/presence/peers/
//! soketi`, with an `overrides` entry that maps `uWebSockets.js` (pinned upstream to a git
//! URL that cannot be fetched here) to a registry build of the same library. Started with a
//! config file binding the server, the metrics server and cluster discovery to 127.0.0.1.
//!
//! Scenarios: an actor subscribes to a presence channel (join: the watcher gets
//! `pusher_internal:member_added`) and unsubscribes (leave: `member_removed`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::Ctx;
use crate::api::e;
use crate::proc::{self, Res};
use crate::stats::Samples;

const VERSION: &str = "1.6.1";
const UWS_OVERRIDE: &str = "npm:@trufflesuite/uws-js-unofficial@20.30.0-unofficial.0";
const APP_KEY: &str = "app-key";
const APP_SECRET: &str = "app-secret";
const CHANNEL: &str = "presence-bench";

/// `${XDG_CACHE_HOME:-$HOME/.cache}/presence/peers`: where every peer is installed.
pub fn peers_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache")
        });
    base.join("presence").join("peers")
}

pub fn cache_dir() -> PathBuf {
    peers_dir().join("soketi")
}

fn installed_version(dir: &Path) -> Option<String> {
    let p = dir.join("node_modules/@soketi/soketi/package.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()?;
    v["version"].as_str().map(str::to_owned)
}

/// Installs soketi into the cache dir unless the right version is already there.
async fn ensure_installed(allow_install: bool) -> Res<PathBuf> {
    let dir = cache_dir();
    if installed_version(&dir).as_deref() == Some(VERSION) {
        return Ok(dir);
    }
    if !allow_install {
        return Err(format!(
            "soketi {VERSION} is not installed in {}",
            dir.display()
        ));
    }
    if proc::which("npm").is_none() || proc::which("node").is_none() {
        return Err("node and npm are needed to install soketi".into());
    }
    std::fs::create_dir_all(&dir).map_err(e)?;
    let manifest = json!({
        "name": "presence-bench-soketi",
        "private": true,
        "version": "0.0.0",
        "dependencies": {"@soketi/soketi": VERSION},
        "overrides": {"uWebSockets.js": UWS_OVERRIDE}
    });
    std::fs::write(
        dir.join("package.json"),
        serde_json::to_string_pretty(&manifest).map_err(e)?,
    )
    .map_err(e)?;
    let mut cmd = Command::new("npm");
    cmd.args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir);
    proc::run(cmd, "npm install @soketi/soketi", Duration::from_secs(600)).await?;
    match installed_version(&dir) {
        Some(v) if v == VERSION => Ok(dir),
        other => Err(format!("soketi install left version {other:?}")),
    }
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct Pusher {
    ws: Ws,
    socket_id: String,
}

fn sign(socket_id: &str, channel: &str, channel_data: &str) -> Res<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(APP_SECRET.as_bytes()).map_err(e)?;
    mac.update(format!("{socket_id}:{channel}:{channel_data}").as_bytes());
    Ok(format!(
        "{APP_KEY}:{}",
        hex::encode(mac.finalize().into_bytes())
    ))
}

impl Pusher {
    async fn connect(port: u16) -> Res<Pusher> {
        let url = format!(
            "ws://127.0.0.1:{port}/app/{APP_KEY}?protocol=7&client=presence-bench&version=1"
        );
        // Nagle off, as on every other client here: otherwise a write that follows an
        // unanswered one (unsubscribe, then subscribe) waits for a delayed ACK (~40 ms).
        let (ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
            .await
            .map_err(e)?;
        let mut p = Pusher {
            ws,
            socket_id: String::new(),
        };
        let (ev, data, _) = p.next().await?;
        if ev != "pusher:connection_established" {
            return Err(format!("expected connection_established, got {ev}"));
        }
        p.socket_id = data["socket_id"].as_str().ok_or("no socket_id")?.to_owned();
        Ok(p)
    }

    /// (event, data as JSON, when the frame arrived).
    async fn next(&mut self) -> Res<(String, Value, Instant)> {
        loop {
            let msg = timeout(Duration::from_secs(10), self.ws.next())
                .await
                .map_err(|_| "no Pusher message within 10 s")?
                .ok_or("websocket closed")?
                .map_err(e)?;
            let at = Instant::now();
            if let Message::Text(t) = msg {
                let v: Value = serde_json::from_str(t.as_str()).map_err(e)?;
                let ev = v["event"].as_str().unwrap_or("").to_owned();
                // `data` is a JSON string inside the JSON message.
                let data = match &v["data"] {
                    Value::String(s) => serde_json::from_str(s).unwrap_or(Value::Null),
                    other => other.clone(),
                };
                return Ok((ev, data, at));
            }
        }
    }

    async fn send(&mut self, v: &Value) -> Res<()> {
        self.ws.send(Message::text(v.to_string())).await.map_err(e)
    }

    fn subscribe_msg(&self, user: &str) -> Res<Value> {
        let channel_data = json!({"user_id": user, "user_info": {}}).to_string();
        let auth = sign(&self.socket_id, CHANNEL, &channel_data)?;
        Ok(json!({"event": "pusher:subscribe",
                  "data": {"channel": CHANNEL, "auth": auth, "channel_data": channel_data}}))
    }

    async fn wait(&mut self, event: &str, user: &str) -> Res<Instant> {
        loop {
            let (ev, data, at) = self.next().await?;
            if ev == "pusher:error" {
                return Err(format!("soketi error: {data}"));
            }
            if ev == event && (user.is_empty() || data["user_id"].as_str() == Some(user)) {
                return Ok(at);
            }
        }
    }
}

pub async fn soketi(ctx: &mut Ctx) -> Res<()> {
    let dir = ensure_installed(true).await?;
    let n = if ctx.quick { 100 } else { 1000 };
    let port = proc::free_port()?;
    let metrics_port = proc::free_port()?;
    let cluster_port = proc::free_udp_port()?;
    let config = json!({
        "host": "127.0.0.1",
        "port": port,
        "metrics.enabled": false,
        "metrics.host": "127.0.0.1",
        "metrics.port": metrics_port,
        "cluster.hostname": "127.0.0.1",
        "cluster.broadcast": "127.0.0.1",
        "cluster.unicast": "127.0.0.1",
        "cluster.port": cluster_port,
        "presence.maxMembersPerChannel": 100000,
        "shutdownGracePeriod": 0
    });
    std::fs::create_dir_all(&ctx.work).map_err(e)?;
    let cfg_path = ctx.work.join("soketi.json");
    std::fs::write(&cfg_path, config.to_string()).map_err(e)?;
    let mut cmd = Command::new("node");
    cmd.arg(dir.join("node_modules/@soketi/soketi/bin/server.js"))
        .arg("start")
        .arg(format!("--config={}", cfg_path.display()))
        .env("SOKETI_PRESENCE_MAX_MEMBERS", "100000")
        .env("SOKETI_SHUTDOWN_GRACE_PERIOD", "0")
        .env("SOKETI_DEBUG", "0")
        .current_dir(&ctx.work);
    let server = proc::spawn_until(
        "soketi",
        cmd,
        "server is available at",
        Duration::from_secs(60),
        &ctx.logs,
    )
    .await?;
    let result = scenarios(port, n).await;
    let rss = server.rss_bytes().ok();
    server.stop(Duration::from_secs(5)).await?;
    let (change, leave) = result?;
    let ours = ctx.report.get("status_to_other_device_p50_ms");
    let r = &mut ctx.report;
    r.set("peer_soketi_change_p50_ms", change.p50());
    r.set("peer_soketi_leave_p50_ms", leave.p50());
    let ours_leave = r.get("logout_to_widget_offline_p50_ms");
    r.set(
        "ratio_soketi_leave",
        match (ours_leave, leave.p50()) {
            (Some(o), Some(t)) if t > 0.0 => Some(crate::stats::round3(o / t)),
            _ => None,
        },
    );
    r.set(
        "ratio_soketi_change",
        match (ours, change.p50()) {
            (Some(o), Some(t)) if t > 0.0 => Some(crate::stats::round3(o / t)),
            _ => None,
        },
    );
    r.detail(
        "peer_soketi",
        json!({"version": VERSION, "change_ms": change.summary(), "leave_ms": leave.summary(),
               "rss_bytes": rss, "config": config,
               "env": {"SOKETI_PRESENCE_MAX_MEMBERS": "100000",
                       "SOKETI_SHUTDOWN_GRACE_PERIOD": "0"}}),
    );
    Ok(())
}

async fn scenarios(port: u16, n: usize) -> Res<(Samples, Samples)> {
    let mut watcher = Pusher::connect(port).await?;
    let sub = watcher.subscribe_msg("watcher")?;
    watcher.send(&sub).await?;
    watcher
        .wait("pusher_internal:subscription_succeeded", "")
        .await?;
    let mut actor = Pusher::connect(port).await?;
    let warm = n / 10;
    let (mut change, mut leave) = (Samples::default(), Samples::default());
    let unsub = json!({"event": "pusher:unsubscribe", "data": {"channel": CHANNEL}});
    for i in 0..warm + n {
        let sub = actor.subscribe_msg("agent-1")?;
        let t0 = Instant::now();
        actor.send(&sub).await?;
        let at = watcher
            .wait("pusher_internal:member_added", "agent-1")
            .await?;
        actor
            .wait("pusher_internal:subscription_succeeded", "")
            .await?;
        if i >= warm {
            change.push(at - t0);
        }
        let t0 = Instant::now();
        actor.send(&unsub).await?;
        let at = watcher
            .wait("pusher_internal:member_removed", "agent-1")
            .await?;
        if i >= warm {
            leave.push(at - t0);
        }
    }
    Ok((change, leave))
}

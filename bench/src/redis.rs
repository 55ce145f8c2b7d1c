//! DIY Redis presence: `SET key EX ttl` / `DEL`, watched through keyspace notifications.
//!
//! Debian's `redis-server` (installed with apt-get when missing) runs on its own loopback
//! port with `--save '' --appendonly no --notify-keyspace-events KEA` and the default `hz 10`.
//! A watcher `PSUBSCRIBE`s `__keyspace@0__:presence:*`; an actor sets and deletes keys. A
//! tiny RESP client over `TcpStream` is all it takes.

use std::io;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::time::timeout;

use crate::Ctx;
use crate::api::e;
use crate::proc::{self, Res};
use crate::stats::Samples;

#[derive(Debug, Clone, PartialEq)]
enum Resp {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Resp>),
}

struct Redis {
    s: TcpStream,
    buf: Vec<u8>,
    pos: usize,
    last_read: Instant,
}

fn bad(m: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, m.to_owned())
}

impl Redis {
    async fn connect(port: u16) -> io::Result<Redis> {
        let s = TcpStream::connect(("127.0.0.1", port)).await?;
        s.set_nodelay(true)?;
        Ok(Redis {
            s,
            buf: Vec::with_capacity(4096),
            pos: 0,
            last_read: Instant::now(),
        })
    }

    fn encode(args: &[&str]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    async fn send(&mut self, args: &[&str]) -> io::Result<()> {
        self.s.write_all(&Self::encode(args)).await
    }

    /// Parses one value at `at`; `None` when more bytes are needed.
    fn parse(&self, at: usize) -> io::Result<Option<(Resp, usize)>> {
        let b = &self.buf[..];
        if at >= b.len() {
            return Ok(None);
        }
        let Some(eol) = b[at..].windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&b[at + 1..at + eol]).map_err(|_| bad("utf8"))?;
        let next = at + eol + 2;
        Ok(match b[at] {
            b'+' => Some((Resp::Simple(line.to_owned()), next)),
            b'-' => Some((Resp::Error(line.to_owned()), next)),
            b':' => Some((Resp::Int(line.parse().map_err(|_| bad("int"))?), next)),
            b'$' => {
                let n: i64 = line.parse().map_err(|_| bad("bulk len"))?;
                if n < 0 {
                    return Ok(Some((Resp::Bulk(None), next)));
                }
                let n = n as usize;
                if b.len() < next + n + 2 {
                    return Ok(None);
                }
                Some((Resp::Bulk(Some(b[next..next + n].to_vec())), next + n + 2))
            }
            b'*' => {
                let n: i64 = line.parse().map_err(|_| bad("array len"))?;
                let mut items = Vec::new();
                let mut p = next;
                for _ in 0..n.max(0) {
                    match self.parse(p)? {
                        Some((v, np)) => {
                            items.push(v);
                            p = np;
                        }
                        None => return Ok(None),
                    }
                }
                Some((Resp::Array(items), p))
            }
            _ => return Err(bad("unknown RESP type")),
        })
    }

    async fn read(&mut self) -> io::Result<Resp> {
        loop {
            if let Some((v, next)) = self.parse(self.pos)? {
                self.pos = next;
                if self.pos == self.buf.len() {
                    self.buf.clear();
                    self.pos = 0;
                }
                return Ok(v);
            }
            self.buf.reserve(4096);
            let n = self.s.read_buf(&mut self.buf).await?;
            self.last_read = Instant::now();
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
            }
        }
    }

    async fn cmd(&mut self, args: &[&str]) -> io::Result<Resp> {
        self.send(args).await?;
        let r = self.read().await?;
        if let Resp::Error(m) = &r {
            return Err(bad(m));
        }
        Ok(r)
    }

    /// The next keyspace notification: (key, event, when its read returned).
    async fn notification(&mut self) -> io::Result<(String, String, Instant)> {
        loop {
            let v = self.read().await?;
            let at = self.last_read;
            if let Resp::Array(items) = v
                && items.len() == 4
                && items[0] == Resp::Bulk(Some(b"pmessage".to_vec()))
                && let (Resp::Bulk(Some(ch)), Resp::Bulk(Some(msg))) = (&items[2], &items[3])
            {
                let ch = String::from_utf8_lossy(ch);
                let key = ch.split_once(':').map(|x| x.1).unwrap_or(&ch).to_owned();
                return Ok((key, String::from_utf8_lossy(msg).into_owned(), at));
            }
        }
    }

    async fn wait_for(&mut self, key: &str, event: &str) -> Res<Instant> {
        loop {
            let (k, ev, at) = timeout(Duration::from_secs(10), self.notification())
                .await
                .map_err(|_| format!("no {event} notification for {key}"))?
                .map_err(e)?;
            if k == key && ev == event {
                return Ok(at);
            }
        }
    }
}

/// Finds redis-server, installing Debian's package when it is missing and we may.
async fn ensure_installed() -> Res<std::path::PathBuf> {
    if let Some(p) = proc::which("redis-server") {
        return Ok(p);
    }
    if proc::which("apt-get").is_none() {
        return Err("redis-server is not installed and apt-get is not available".into());
    }
    let install = || {
        let mut c = Command::new("apt-get");
        c.args([
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            "redis-server",
        ])
        .env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    if proc::run(
        install(),
        "apt-get install redis-server",
        Duration::from_secs(300),
    )
    .await
    .is_err()
    {
        let mut up = Command::new("apt-get");
        up.args(["update", "-q"]);
        proc::run(up, "apt-get update", Duration::from_secs(300)).await?;
        proc::run(
            install(),
            "apt-get install redis-server",
            Duration::from_secs(300),
        )
        .await?;
    }
    proc::which("redis-server").ok_or_else(|| "redis-server still missing after install".into())
}

pub async fn redis(ctx: &mut Ctx) -> Res<()> {
    let bin = ensure_installed().await?;
    let (n, expiring) = if ctx.quick { (100, 30) } else { (1000, 200) };
    let port = proc::free_port()?;
    let dir = ctx.work.join("redis");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(e)?;
    let mut cmd = Command::new(&bin);
    cmd.args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--notify-keyspace-events",
        "KEA",
        "--daemonize",
        "no",
        "--loglevel",
        "notice",
    ])
    .arg("--dir")
    .arg(&dir);
    let server = proc::spawn_until(
        "redis",
        cmd,
        "Ready to accept connections",
        Duration::from_secs(30),
        &ctx.logs,
    )
    .await?;
    let version = proc::run(
        {
            let mut c = Command::new(&bin);
            c.arg("--version");
            c
        },
        "redis-server --version",
        Duration::from_secs(10),
    )
    .await
    .unwrap_or_default();
    let result = scenarios(port, n, expiring).await;
    let rss = server.rss_bytes().ok();
    server.stop(Duration::from_secs(5)).await?;
    let (change, leave, expiry) = result?;
    let ours_change = ctx.report.get("status_to_other_device_p50_ms");
    let r = &mut ctx.report;
    r.set("peer_redis_change_p50_ms", change.p50());
    r.set("peer_redis_leave_p50_ms", leave.p50());
    r.set("peer_redis_expiry_lag_p50_ms", expiry.p50());
    let ours_leave = r.get("logout_to_widget_offline_p50_ms");
    r.set(
        "ratio_redis_leave",
        match (ours_leave, leave.p50()) {
            (Some(o), Some(t)) if t > 0.0 => Some(crate::stats::round3(o / t)),
            _ => None,
        },
    );
    r.set(
        "ratio_redis_change",
        match (ours_change, change.p50()) {
            (Some(o), Some(t)) if t > 0.0 => Some(crate::stats::round3(o / t)),
            _ => None,
        },
    );
    r.detail(
        "peer_redis",
        json!({"version": version.trim(), "change_ms": change.summary(),
               "leave_ms": leave.summary(), "expiry_lag_ms": expiry.summary(),
               "rss_bytes": rss,
               "tuning": "--save '' --appendonly no --notify-keyspace-events KEA, hz 10 (default)"}),
    );
    Ok(())
}

async fn scenarios(port: u16, n: usize, expiring: usize) -> Res<(Samples, Samples, Samples)> {
    let mut watcher = Redis::connect(port).await.map_err(e)?;
    watcher
        .send(&["PSUBSCRIBE", "__keyspace@0__:presence:*"])
        .await
        .map_err(e)?;
    watcher.read().await.map_err(e)?;
    let mut actor = Redis::connect(port).await.map_err(e)?;
    let warm = n / 10;
    let (mut change, mut leave) = (Samples::default(), Samples::default());
    for i in 0..warm + n {
        let key = "presence:agent-1";
        let t0 = Instant::now();
        actor
            .send(&["SET", key, "online", "EX", "60"])
            .await
            .map_err(e)?;
        let at = watcher.wait_for(key, "set").await?;
        actor.read().await.map_err(e)?;
        if i >= warm {
            change.push(at - t0);
        }
        let t0 = Instant::now();
        actor.send(&["DEL", key]).await.map_err(e)?;
        let at = watcher.wait_for(key, "del").await?;
        actor.read().await.map_err(e)?;
        if i >= warm {
            leave.push(at - t0);
        }
    }
    // Expiry: keys with a 1 s ttl set at staggered times; lag = notification - (set + ttl).
    let ttl = Duration::from_millis(1000);
    let mut set_at = Vec::with_capacity(expiring);
    let start = Instant::now();
    let stagger = Duration::from_micros(1_000_000 / expiring as u64);
    for i in 0..expiring {
        tokio::time::sleep_until((start + stagger * i as u32).into()).await;
        let key = format!("presence:exp-{i}");
        let t0 = Instant::now();
        actor
            .cmd(&["SET", &key, "online", "PX", &ttl.as_millis().to_string()])
            .await
            .map_err(e)?;
        set_at.push((key, t0));
    }
    let mut expiry = Samples::default();
    let mut pending: std::collections::HashMap<String, Instant> = set_at.into_iter().collect();
    while !pending.is_empty() {
        let (k, ev, at) = timeout(Duration::from_secs(10), watcher.notification())
            .await
            .map_err(|_| format!("{} keys never expired", pending.len()))?
            .map_err(e)?;
        if ev == "expired"
            && let Some(t0) = pending.remove(&k)
        {
            expiry.push(at.saturating_duration_since(t0 + ttl));
        }
    }
    Ok((change, leave, expiry))
}

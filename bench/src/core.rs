//! presence-core: the durable enqueue of `set_status`, and how many requests 1,000 toggles
//! made while offline turn into once the network is back.
//!
//! The engine talks to the server through a counting proxy on loopback that counts
//! `PUT /v1/me/status` request lines, so the figure is what really went over the wire.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use presence_core::{
    AgentStatus, ClientConfig, Connection, DeviceInfo, Overrides, Platform, PresenceClient,
    SessionState,
};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::Ctx;
use crate::api::{self, e};
use crate::http::Conn;
use crate::proc::Res;
use crate::stats::Samples;

const NEEDLE: &[u8] = b"PUT /v1/me/status ";

/// A TCP proxy that counts status request lines going to the server.
struct CountingProxy {
    addr: SocketAddr,
    count: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingProxy {
    async fn start(upstream: SocketAddr) -> Res<CountingProxy> {
        let l = TcpListener::bind("127.0.0.1:0").await.map_err(e)?;
        let addr = l.local_addr().map_err(e)?;
        let count = Arc::new(AtomicU64::new(0));
        let c = count.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = l.accept().await {
                let c = c.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let up = async move {
                        let mut buf = vec![0u8; 16 * 1024];
                        // The tail of the previous read, so a request line split across
                        // reads is still seen once.
                        let mut tail: Vec<u8> = Vec::new();
                        loop {
                            let n = match cr.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            let mut scan = std::mem::take(&mut tail);
                            let carried = scan.len();
                            scan.extend_from_slice(&buf[..n]);
                            let hits = scan
                                .windows(NEEDLE.len())
                                .enumerate()
                                .filter(|(i, w)| *w == NEEDLE && i + NEEDLE.len() > carried)
                                .count();
                            c.fetch_add(hits as u64, Ordering::Relaxed);
                            let keep = scan.len().min(NEEDLE.len() - 1);
                            tail = scan[scan.len() - keep..].to_vec();
                            if sw.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = sw.shutdown().await;
                    };
                    let down = async move {
                        let _ = tokio::io::copy(&mut sr, &mut cw).await;
                        let _ = cw.shutdown().await;
                    };
                    tokio::join!(up, down);
                });
            }
        });
        Ok(CountingProxy { addr, count, task })
    }

    fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn core(ctx: &mut Ctx) -> Res<()> {
    let toggles = if ctx.quick { 200 } else { 1000 };
    let dir = ctx.work.join("core-server");
    let _ = std::fs::remove_dir_all(&dir);
    let server = api::start_server(&ctx.self_exe, "core", &dir, &[], &ctx.logs).await?;
    let addr = server.addr.ok_or("no address")?;
    let client_dir = ctx.work.join("core-client");
    let _ = std::fs::remove_dir_all(&client_dir);
    let floor_db = FloorDb::open(&ctx.work.join("fsync-floor"))?;
    let result = run(addr, &client_dir, toggles, &floor_db).await;
    server.stop(Duration::from_secs(10)).await?;
    let (lat, requests, applied, pending_during, floor) = result?;
    // Samples hold microseconds here.
    let r = &mut ctx.report;
    r.set("core_set_status_p50_us", lat.p50());
    r.set("core_set_status_p99_us", lat.p99());
    r.set("core_outbox_coalesce_requests", Some(requests as f64));
    r.set("core_fsync_floor_p50_us", floor.p50());
    r.set("core_fsync_floor_p99_us", floor.p99());
    r.detail(
        "core",
        json!({"set_status_us": lat.summary(), "toggles": toggles,
               "status_requests_seen_by_proxy": requests,
               "server_status_changes_applied": applied,
               "requests_while_offline": pending_during,
               "fsync_floor_us": floor.summary(),
               "store": "SQLite WAL, synchronous=FULL for the outbox, in target/bench/work"}),
    );
    if toggles != 1000 {
        r.note(
            "core_outbox_coalesce_requests",
            &format!("{toggles} toggles (quick mode)"),
        );
    }
    Ok(())
}

async fn run(
    server: SocketAddr,
    client_dir: &std::path::Path,
    toggles: usize,
    floor_db: &FloorDb,
) -> Res<(Samples, u64, f64, u64, Samples)> {
    let mut c = Conn::connect(server).await.map_err(e)?;
    let acc = api::create_account(&mut c, "core").await?;
    let proxy = CountingProxy::start(server).await?;
    let client = PresenceClient::open(ClientConfig {
        server_url: Some(format!("http://{}", proxy.addr)),
        data_dir: client_dir.to_path_buf(),
        device: DeviceInfo {
            platform: Platform::Desktop,
            name: "bench".into(),
            app_version: "1".into(),
        },
        overrides: Overrides::default(),
    })
    .await
    .map_err(e)?;
    let wait = Duration::from_secs(20);
    let outcome = async {
        client
            .login(&acc.slug, &acc.email, api::PASSWORD)
            .await
            .map_err(e)?;
        client
            .wait_for(wait, |s| {
                s.session.state == SessionState::Active && s.connection == Connection::Connected
            })
            .await
            .ok_or("core client never connected")?;
        let applied_before = api::metric(&mut c, "presence_status_changes_total").await?;
        client.set_network_available(false).await;
        client
            .wait_for(wait, |s| s.connection == Connection::NoNetwork)
            .await
            .ok_or("core client never went to no_network")?;
        let before = proxy.count();
        let mut lat = Samples::default();
        let mut floor = Samples::default();
        for i in 0..toggles {
            let status = if i % 2 == 0 {
                AgentStatus::Online
            } else {
                AgentStatus::Busy
            };
            let t = Instant::now();
            client.set_status(status).await.map_err(e)?;
            // Microseconds.
            lat.push_ms(t.elapsed().as_secs_f64() * 1e6);
            // The floor, interleaved so both see the same disk at the same moments.
            floor.push_ms(floor_db.commit(i)?);
        }
        let during = proxy.count() - before;
        let last = if toggles % 2 == 1 {
            AgentStatus::Online
        } else {
            AgentStatus::Busy
        };
        client.set_network_available(true).await;
        client
            .wait_for(wait, |s| {
                s.outbox.pending == 0
                    && s.status
                        .as_ref()
                        .is_some_and(|st| !st.pending && st.confirmed == last)
            })
            .await
            .ok_or("the outbox did not drain after the network came back")?;
        let requests = proxy.count() - before;
        let applied = api::metric(&mut c, "presence_status_changes_total").await? - applied_before;
        Ok::<_, String>((lat, requests, applied, during, floor))
    }
    .await;
    client.shutdown().await;
    outcome
}

/// The floor under any durable enqueue on this disk: one-row SQLite commits with WAL and
/// `synchronous=FULL` (one fsync each), in the same directory tree the client uses.
struct FloorDb {
    conn: rusqlite::Connection,
}

impl FloorDb {
    fn open(dir: &std::path::Path) -> Res<FloorDb> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).map_err(e)?;
        let conn = rusqlite::Connection::open(dir.join("floor.db")).map_err(e)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
             CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL);",
        )
        .map_err(e)?;
        Ok(FloorDb { conn })
    }

    /// One commit; its duration in microseconds.
    fn commit(&self, i: usize) -> Res<f64> {
        let t = Instant::now();
        self.conn
            .execute("INSERT INTO t (v) VALUES (?1)", [format!("op-{i}")])
            .map_err(e)?;
        Ok(t.elapsed().as_secs_f64() * 1e6)
    }
}

//! `webhooks`: a status change reaching the customer's backend, on both backends, and how
//! fast deliveries drain.
//!
//! - Latency: `PUT /v1/me/status` sent -> the `agent.status` webhook of that change received
//!   by a loopback receiver (an axum server in this process answering `204` at once), one
//!   change at a time.
//! - Throughput: a backlog made while the endpoints are disabled, then drained once they are
//!   enabled: events per second delivered to one endpoint (its events go one at a time, in
//!   `seq` order), and to 100 endpoints (10 accounts of 10).
//! - The status path's own figure (status -> the agent's other device, as the `latency` step
//!   measures it) with 10 endpoints attached against none, in rounds taken in turn on one
//!   server.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::timeout;

use crate::Ctx;
use crate::api::{self, e};
use crate::http::{Conn, request_bytes};
use crate::proc::{self, Res, Spawned};
use crate::stats::{Samples, round3};

const STOP: Duration = Duration::from_secs(10);
const WAIT: Duration = Duration::from_secs(30);

/// One webhook as received: which endpoint, when, and the body.
struct Got {
    endpoint: usize,
    at: Instant,
    body: Bytes,
}

/// A loopback receiver: `http://ADDR/N` is endpoint N.
struct Receiver {
    addr: SocketAddr,
    rx: mpsc::UnboundedReceiver<Got>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start() -> Res<Receiver> {
        let (tx, rx) = mpsc::unbounded_channel::<Got>();
        let app = Router::new()
            .route(
                "/{n}",
                post(
                    |State(tx): State<mpsc::UnboundedSender<Got>>,
                     Path(n): Path<usize>,
                     body: Bytes| async move {
                        let _ = tx.send(Got {
                            endpoint: n,
                            at: Instant::now(),
                            body,
                        });
                        StatusCode::NO_CONTENT
                    },
                ),
            )
            .with_state(tx);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(e)?;
        let addr = listener.local_addr().map_err(e)?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Receiver { addr, rx, task })
    }

    fn url(&self, n: usize) -> String {
        format!("http://{}/{n}", self.addr)
    }

    async fn next(&mut self) -> Res<Got> {
        timeout(WAIT, self.rx.recv())
            .await
            .map_err(|_| format!("no webhook within {WAIT:?}"))?
            .ok_or_else(|| "the receiver stopped".to_owned())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn status_of(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["data"]["status"]["status"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// An account with its owner signed in on `device`; the owner's token.
async fn owner(c: &mut Conn, slug: &str, device: &str) -> Res<String> {
    let acc = api::create_account(c, slug).await?;
    Ok(api::login(c, &acc, device).await?.token)
}

/// Adds an `agent.status` endpoint at `url`; its id.
async fn endpoint(c: &mut Conn, token: &str, url: &str, enabled: bool) -> Res<String> {
    let body = json!({"url": url, "events": ["agent.status"]}).to_string();
    let r = c
        .call("POST", "/v1/admin/webhooks", Some(token), Some(&body))
        .await
        .map_err(e)?
        .expect(201, "add a webhook")
        .map_err(e)?;
    let id = r.json().map_err(e)?["id"]
        .as_str()
        .ok_or("no webhook id")?
        .to_owned();
    if !enabled {
        enable(c, token, &id, false).await?;
    }
    Ok(id)
}

async fn enable(c: &mut Conn, token: &str, id: &str, on: bool) -> Res<()> {
    let body = json!({ "enabled": on }).to_string();
    c.call(
        "PATCH",
        &format!("/v1/admin/webhooks/{id}"),
        Some(token),
        Some(&body),
    )
    .await
    .map_err(e)?
    .expect(200, "enable a webhook")
    .map_err(e)?;
    Ok(())
}

/// Status sent -> its webhook received, `n` times after a tenth as many untimed.
async fn latency(addr: SocketAddr, slug: &str, n: usize) -> Res<Samples> {
    let warm = (n / 10).max(5);
    let mut rx = Receiver::start().await?;
    let mut c = Conn::connect(addr).await.map_err(e)?;
    let token = owner(&mut c, slug, "device-a").await?;
    endpoint(&mut c, &token, &rx.url(0), true).await?;
    let mut s = Samples::default();
    for i in 0..warm + n {
        let status = if i % 2 == 0 { "online" } else { "busy" };
        let req = request_bytes(
            "PUT",
            "/v1/me/status",
            Some(&token),
            Some(&api::status_body(status)),
        );
        let t0 = Instant::now();
        c.send(&req).await.map_err(e)?;
        let got = loop {
            let g = rx.next().await?;
            if status_of(&g.body) == status {
                break g;
            }
        };
        c.recv()
            .await
            .map_err(e)?
            .expect(200, "set status")
            .map_err(e)?;
        if i >= warm {
            s.push(got.at - t0);
        }
    }
    Ok(s)
}

/// A backlog of `changes` status changes per account made while its `per_account`
/// endpoints are disabled, then all enabled: deliveries per second until every endpoint has
/// every event.
async fn drain(
    addr: SocketAddr,
    slug: &str,
    accounts: usize,
    per_account: usize,
    changes: usize,
) -> Res<(f64, usize)> {
    let mut rx = Receiver::start().await?;
    let mut c = Conn::connect(addr).await.map_err(e)?;
    let mut owners = Vec::new();
    for a in 0..accounts {
        let token = owner(&mut c, &format!("{slug}-{a}"), "device-a").await?;
        let mut ids = Vec::new();
        for k in 0..per_account {
            ids.push(endpoint(&mut c, &token, &rx.url(a * per_account + k), false).await?);
        }
        for i in 0..changes {
            let status = if i % 2 == 0 { "online" } else { "busy" };
            api::set_status(&mut c, &token, status).await?;
        }
        owners.push((token, ids));
    }
    let total = accounts * per_account * changes;
    let t0 = Instant::now();
    for (token, ids) in &owners {
        for id in ids {
            enable(&mut c, token, id, true).await?;
        }
    }
    let mut per_endpoint = vec![0usize; accounts * per_account];
    let mut got = 0;
    let mut last = t0;
    while got < total {
        let g = rx.next().await?;
        per_endpoint[g.endpoint] += 1;
        got += 1;
        last = g.at;
    }
    if per_endpoint.iter().any(|n| *n != changes) {
        return Err(format!("uneven deliveries: {per_endpoint:?}"));
    }
    let secs = (last - t0).as_secs_f64().max(1e-6);
    Ok((round3(total as f64 / secs), total))
}

/// The status path with `hooks` endpoints attached to the account: status -> other device.
async fn status_path(
    addr: SocketAddr,
    slug: &str,
    hooks: usize,
    n: usize,
    rx: &Receiver,
) -> Res<Samples> {
    let urls: Vec<String> = (0..hooks).map(|k| rx.url(k)).collect();
    let (s, _) = crate::ours::status_to_device_with(addr, slug, n, &urls).await?;
    Ok(s)
}

async fn start(ctx: &Ctx, name: &str, extra: &[&str]) -> Res<(Spawned, SocketAddr)> {
    let dir = ctx.work.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    let s = api::start_server(&ctx.self_exe, name, &dir, extra, &ctx.logs).await?;
    let addr = s.addr.ok_or("no address")?;
    Ok((s, addr))
}

pub async fn webhooks(ctx: &mut Ctx) -> Res<()> {
    let quick = ctx.quick;
    let n = if quick { 100 } else { 1000 };
    let (one, hundred) = if quick { (200, 5) } else { (2000, 20) };
    let rounds = if quick { 1 } else { 3 };

    let (server, addr) = start(ctx, "webhooks", &[]).await?;
    let run = async {
        let lat = latency(addr, "wh-lat", n)
            .await
            .map_err(|e| format!("latency: {e}"))?;
        let drain_one = drain(addr, "wh-one", 1, 1, one)
            .await
            .map_err(|e| format!("one endpoint's backlog: {e}"))?;
        let drain_hundred = drain(addr, "wh-hundred", 10, 10, hundred)
            .await
            .map_err(|e| format!("100 endpoints' backlog: {e}"))?;
        // The status path with none and with 10 endpoints, in turn.
        let sink = Receiver::start().await?;
        let (mut bare, mut hooked) = (Samples::default(), Samples::default());
        for r in 0..rounds {
            for (hooks, into) in [(0, &mut bare), (10, &mut hooked)] {
                let slug = format!("wh-{hooks}-{r}");
                let s = status_path(addr, &slug, hooks, n / 2, &sink)
                    .await
                    .map_err(|e| format!("status path with {hooks} webhooks: {e}"))?;
                into.extend(&s);
            }
        }
        Ok::<_, String>((lat, drain_one, drain_hundred, bare, hooked))
    }
    .await;
    server.stop(STOP).await?;
    let (lat, drain_one, drain_hundred, bare, hooked) = run?;

    let cluster = cluster_latency(ctx, n / 2).await;
    let r = &mut ctx.report;
    r.set("webhook_latency_p50_ms", lat.p50());
    r.set("webhook_latency_p99_ms", lat.p99());
    r.set("webhook_throughput_one_endpoint_per_s", Some(drain_one.0));
    r.set(
        "webhook_throughput_100_endpoints_per_s",
        Some(drain_hundred.0),
    );
    let ratio = match (hooked.p50(), bare.p50()) {
        (Some(h), Some(b)) if b > 0.0 => Some(round3(h / b)),
        _ => None,
    };
    r.set("status_with_10_webhooks_vs_none", ratio);
    let mut details = json!({
        "latency_ms": lat.summary(),
        "one_endpoint": {"deliveries": drain_one.1, "per_s": drain_one.0},
        "hundred_endpoints": {"deliveries": drain_hundred.1, "per_s": drain_hundred.0},
        "status_to_other_device_no_webhooks_ms": bare.summary(),
        "status_to_other_device_10_webhooks_ms": hooked.summary(),
    });
    match cluster {
        Ok(c) => {
            r.set("cluster_webhook_latency_p50_ms", c.p50());
            r.set("cluster_webhook_latency_p99_ms", c.p99());
            details["cluster_latency_ms"] = c.summary();
        }
        Err(err) => {
            r.set("cluster_webhook_latency_p99_ms", None);
            r.note(
                "cluster_webhook_latency_p99_ms",
                &format!("not measured: {err}"),
            );
        }
    }
    r.detail("webhooks", details);
    Ok(())
}

/// The latency on one cluster node over its own PostgreSQL and Redis.
async fn cluster_latency(ctx: &Ctx, n: usize) -> Res<Samples> {
    let dir = ctx.work.join("webhooks-cluster");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(e)?;
    let pg_port = proc::free_port()?;
    let pg = crate::cluster::start_postgres(ctx, &dir, pg_port).await?;
    let redis_port = proc::free_port()?;
    let redis = match crate::cluster::start_redis(ctx, &dir, redis_port).await {
        Ok(r) => r,
        Err(err) => {
            pg.stop(STOP).await?;
            return Err(err);
        }
    };
    let pg_url = format!("postgres://postgres@127.0.0.1:{pg_port}/bench");
    let redis_url = format!("redis://127.0.0.1:{redis_port}/");
    let node = api::start_server(
        &ctx.self_exe,
        "webhooks-cluster-node",
        &dir.join("node"),
        &["--postgres-url", &pg_url, "--redis-url", &redis_url],
        &ctx.logs,
    )
    .await;
    let result = match node {
        Ok(node) => {
            let addr = node.addr.ok_or("no address")?;
            let r = latency(addr, "wh-cluster", n).await;
            node.stop(STOP).await?;
            r
        }
        Err(err) => Err(err),
    };
    redis.stop(STOP).await?;
    pg.stop(STOP).await?;
    result
}

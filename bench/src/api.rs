//! The few calls of our protocol the scenarios need, over [`Conn`].

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::process::Command;

use crate::http::Conn;
use crate::proc::{Res, Spawned, spawn_until};

pub const ADMIN_TOKEN: &str = "bench-admin-token";
pub const PASSWORD: &str = "bench-password-1";

pub fn e(err: impl std::fmt::Display) -> String {
    err.to_string()
}

/// Starts our server (this binary's `serve-presence` mode, see `serve.rs`) on a free
/// loopback port.
pub async fn start_server(
    bin: &Path,
    name: &str,
    data_dir: &Path,
    extra: &[&str],
    logs: &Path,
) -> Res<Spawned> {
    let mut cmd = Command::new(bin);
    cmd.arg("serve-presence");
    cmd.args(["--listen", "127.0.0.1:0", "--admin-token", ADMIN_TOKEN])
        // The load scenarios open thousands of sessions on one agent.
        .args(["--max-sessions-per-agent", "1000000"])
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra);
    let s = spawn_until(
        name,
        cmd,
        "listening on http://",
        Duration::from_secs(60),
        logs,
    )
    .await?;
    if s.addr.is_none() {
        return Err(format!("{name}: no address on its listening line"));
    }
    Ok(s)
}

#[derive(Debug, Clone)]
pub struct Account {
    pub slug: String,
    pub widget_key: String,
    pub email: String,
}

pub async fn create_account(c: &mut Conn, slug: &str) -> Res<Account> {
    let email = format!("owner@{slug}.test");
    let body = json!({
        "name": slug, "slug": slug,
        "owner": {"name": "Owner", "email": email, "password": PASSWORD}
    })
    .to_string();
    let r = c
        .call("POST", "/v1/accounts", Some(ADMIN_TOKEN), Some(&body))
        .await
        .map_err(e)?
        .expect(201, "create account")
        .map_err(e)?;
    let v = r.json().map_err(e)?;
    Ok(Account {
        slug: slug.to_owned(),
        widget_key: v["account"]["widget_key"]
            .as_str()
            .ok_or("no widget_key")?
            .to_owned(),
        email,
    })
}

#[derive(Debug, Clone)]
pub struct Login {
    pub token: String,
    pub lease_until: i64,
    pub server_time: i64,
}

pub fn login_body(acc: &Account, device_id: &str) -> String {
    json!({
        "account": acc.slug, "email": acc.email, "password": PASSWORD,
        "device": {"id": device_id, "platform": "desktop", "name": "bench", "app_version": "1"},
        "push": null
    })
    .to_string()
}

pub fn parse_login(v: &Value) -> Res<Login> {
    Ok(Login {
        token: v["token"].as_str().ok_or("no token")?.to_owned(),
        lease_until: v["heartbeat"]["lease_until"]
            .as_i64()
            .ok_or("no lease_until")?,
        server_time: v["server_time"].as_i64().ok_or("no server_time")?,
    })
}

pub async fn login(c: &mut Conn, acc: &Account, device_id: &str) -> Res<Login> {
    let r = c
        .call("POST", "/v1/login", None, Some(&login_body(acc, device_id)))
        .await
        .map_err(e)?
        .expect(200, "login")
        .map_err(e)?;
    parse_login(&r.json().map_err(e)?)
}

static OP_SEQ: AtomicU64 = AtomicU64::new(1);

/// A status body whose op_id sorts after every earlier one (ties on `intent_at` go to the
/// higher op_id, so back-to-back changes within one millisecond still apply in order).
pub fn status_body(status: &str) -> String {
    let n = OP_SEQ.fetch_add(1, Ordering::Relaxed);
    json!({
        "status": status,
        "op_id": format!("{:08x}-0000-4000-8000-{:012x}", n >> 16, n),
        "intent_at": null
    })
    .to_string()
}

pub async fn set_status(c: &mut Conn, token: &str, status: &str) -> Res<Value> {
    let r = c
        .call(
            "PUT",
            "/v1/me/status",
            Some(token),
            Some(&status_body(status)),
        )
        .await
        .map_err(e)?
        .expect(200, "set status")
        .map_err(e)?;
    r.json().map_err(e)
}

pub async fn logout(c: &mut Conn, token: &str) -> Res<()> {
    c.call("DELETE", "/v1/session", Some(token), None)
        .await
        .map_err(e)?
        .expect(204, "logout")
        .map_err(e)?;
    Ok(())
}

/// One counter or gauge from `/metrics`.
pub async fn metric(c: &mut Conn, name: &str) -> Res<f64> {
    let r = c
        .call("GET", "/metrics", None, None)
        .await
        .map_err(e)?
        .expect(200, "metrics")
        .map_err(e)?;
    let text = String::from_utf8_lossy(&r.body).into_owned();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == name).then(|| v.trim().parse::<f64>().ok()).flatten()
        })
        .ok_or_else(|| format!("metric {name} not found"))
}

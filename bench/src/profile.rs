//! `--profile`: callgrind profiles of the heartbeat, status and fan-out paths.
//!
//! The release server runs under `valgrind --tool=callgrind --instr-atstart=no`; set-up
//! (accounts, argon2 logins) runs uncollected, then `callgrind_control --instr=on` instruments only
//! the measured load. Instruction counts are repeatable whatever else the machine is doing,
//! so "Ir per operation" is the before/after figure. The top functions go to
//! `target/bench/profile/` and to the profiles block of `docs/BENCHMARKS.md`.

use std::fmt::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::process::Command;

use crate::Ctx;
use crate::api::{self, ADMIN_TOKEN, e};
use crate::http::{Conn, Sse, request_bytes};
use crate::proc::{self, Res};

pub const BEGIN: &str =
    "<!-- bench:profiles:begin (written by `cargo xtask bench --profile`; edit outside) -->";
pub const END: &str = "<!-- bench:profiles:end -->";

async fn control(pid: u32, arg: &str) -> Res<()> {
    let mut c = Command::new("callgrind_control");
    c.args([arg, &pid.to_string()]);
    proc::run(
        c,
        &format!("callgrind_control {arg}"),
        Duration::from_secs(60),
    )
    .await
    .map(|_| ())
}

struct Profiled {
    name: &'static str,
    what: &'static str,
    ops: u64,
    total_ir: u64,
    top: Vec<(u64, String)>,
}

/// Runs one path under callgrind; `load` gets the server address after set-up and returns
/// how many operations it drove.
async fn run_one(ctx: &Ctx, name: &'static str, what: &'static str) -> Res<Profiled> {
    let dir = ctx.work.join(format!("profile-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&ctx.logs).map_err(e)?;
    let out_file = ctx.logs.join(format!("callgrind.{name}.out"));
    let mut cmd = Command::new("valgrind");
    cmd.args(["--tool=callgrind", "--instr-atstart=no"])
        .arg(format!("--callgrind-out-file={}", out_file.display()))
        .arg(&ctx.self_exe);
    if name.starts_with("bare") {
        cmd.args(["serve-bare", "--listen", "127.0.0.1:0"]);
    } else {
        cmd.args([
            "serve-presence",
            "--listen",
            "127.0.0.1:0",
            "--admin-token",
            ADMIN_TOKEN,
            "--active-ttl-ms",
            "600000",
            // Hundreds of sessions on one agent, as in the load scenarios.
            "--max-sessions-per-agent",
            "1000000",
        ])
        .arg("--data-dir")
        .arg(&dir);
    }
    let server = proc::spawn_until(
        &format!("callgrind-{name}"),
        cmd,
        "listening on http://",
        Duration::from_secs(300),
        &ctx.logs,
    )
    .await?;
    let addr = server.addr.ok_or("no address")?;
    let pid = server.pid;
    let result = async {
        let prepared = prepare(addr, name).await?;
        control(pid, "--instr=on").await?;
        let ops = drive(addr, name, prepared).await?;
        control(pid, "--instr=off").await?;
        Ok::<_, String>(ops)
    }
    .await;
    server.stop(Duration::from_secs(120)).await?;
    let ops = result?;
    let mut c = Command::new("callgrind_annotate");
    c.arg(&out_file);
    let text = proc::run(c, "callgrind_annotate", Duration::from_secs(120)).await?;
    std::fs::write(ctx.logs.join(format!("callgrind.{name}.txt")), &text).map_err(e)?;
    let (total_ir, top) = parse_annotate(&text);
    Ok(Profiled {
        name,
        what,
        ops,
        total_ir,
        top,
    })
}

fn parse_ir(s: &str) -> Option<u64> {
    s.trim().replace(',', "").parse().ok()
}

/// (total Ir, [(Ir, function)]) from `callgrind_annotate` output.
fn parse_annotate(text: &str) -> (u64, Vec<(u64, String)>) {
    let mut total = 0;
    let mut top = Vec::new();
    let mut in_table = false;
    for line in text.lines() {
        let l = line.trim();
        if l.ends_with("PROGRAM TOTALS") {
            total = l.split_whitespace().next().and_then(parse_ir).unwrap_or(0);
        } else if l.starts_with("Ir") && l.contains("file:function") {
            in_table = true;
        } else if in_table {
            if l.starts_with("--") || l.is_empty() {
                if !top.is_empty() {
                    break;
                }
                continue;
            }
            let mut parts = l.splitn(2, ' ');
            let ir = parts.next().and_then(parse_ir);
            let rest = parts.next().unwrap_or("").trim();
            // "(12.34%)  file:function"
            let func = rest
                .split_once(')')
                .map(|(_, f)| f.trim())
                .unwrap_or(rest)
                .to_owned();
            if let Some(ir) = ir {
                top.push((ir, func));
            }
        }
    }
    (total, top)
}

struct Prepared {
    tokens: Vec<String>,
    widget_key: String,
}

async fn prepare(addr: SocketAddr, name: &str) -> Res<Prepared> {
    if name.starts_with("bare") {
        // Same request bytes as ours: 64-hex-character bearer tokens the bare handler ignores.
        return Ok(Prepared {
            tokens: (0..200).map(|i| format!("{i:064x}")).collect(),
            widget_key: "bare".into(),
        });
    }
    let mut c = Conn::connect(addr).await.map_err(e)?;
    let acc = api::create_account(&mut c, name).await?;
    let count = match name {
        "heartbeat" => 200,
        "logout" => 500,
        _ => 2,
    };
    let mut tokens = Vec::new();
    for i in 0..count {
        tokens.push(
            api::login(&mut c, &acc, &format!("device-{i}"))
                .await?
                .token,
        );
    }
    Ok(Prepared {
        tokens,
        widget_key: acc.widget_key,
    })
}

async fn drive(addr: SocketAddr, name: &str, p: Prepared) -> Res<u64> {
    match name {
        "heartbeat" | "bare" => {
            let reqs: Arc<Vec<Vec<u8>>> = Arc::new(
                p.tokens
                    .iter()
                    .map(|t| request_bytes("POST", "/v1/session/heartbeat", Some(t), None))
                    .collect(),
            );
            let n = 4000usize;
            let mut c = Conn::connect(addr).await.map_err(e)?;
            for i in 0..n {
                c.send(&reqs[i % reqs.len()]).await.map_err(e)?;
                c.recv()
                    .await
                    .map_err(e)?
                    .expect(200, "heartbeat")
                    .map_err(e)?;
            }
            Ok(n as u64)
        }
        "status" => {
            let mut sse = Sse::open(addr, "/v1/me/events", Some(&p.tokens[1]))
                .await
                .map_err(e)?;
            sse.next_named("snapshot").await.map_err(e)?;
            let mut c = Conn::connect(addr).await.map_err(e)?;
            let n = 500usize;
            for i in 0..n {
                let status = if i % 2 == 0 { "online" } else { "busy" };
                api::set_status(&mut c, &p.tokens[0], status).await?;
                sse.next_named("status").await.map_err(e)?;
            }
            Ok(n as u64)
        }
        "logout" => {
            let mut c = Conn::connect(addr).await.map_err(e)?;
            for t in &p.tokens {
                let req = request_bytes("DELETE", "/v1/session", Some(t), None);
                c.send(&req).await.map_err(e)?;
                c.recv()
                    .await
                    .map_err(e)?
                    .expect(204, "logout")
                    .map_err(e)?;
            }
            Ok(p.tokens.len() as u64)
        }
        _ => {
            let widgets = 1000usize;
            let toggles = 10usize;
            let path = format!("/v1/widget/{}/events", p.widget_key);
            let mut streams = Vec::with_capacity(widgets);
            for _ in 0..widgets {
                let mut w = Sse::open(addr, &path, None).await.map_err(e)?;
                w.next_named("chatbox").await.map_err(e)?;
                streams.push(w);
            }
            let mut c = Conn::connect(addr).await.map_err(e)?;
            for k in 0..toggles {
                let status = if k % 2 == 0 { "online" } else { "busy" };
                api::set_status(&mut c, &p.tokens[0], status).await?;
                for w in streams.iter_mut() {
                    w.next_named("chatbox").await.map_err(e)?;
                }
            }
            Ok((widgets * toggles) as u64)
        }
    }
}

pub async fn profile(ctx: &mut Ctx) -> Res<()> {
    for prog in ["valgrind", "callgrind_control", "callgrind_annotate"] {
        if proc::which(prog).is_none() {
            return Err(format!("{prog} is not installed (Debian package valgrind)"));
        }
    }
    let mut results = Vec::new();
    for (name, what) in [
        (
            "heartbeat",
            "4,000 authenticated heartbeats over 200 sessions, one connection",
        ),
        (
            "bare",
            "the same 4,000 heartbeat requests against the bare axum handler (the baseline)",
        ),
        (
            "status",
            "500 status changes, each awaited on the agent's other device stream",
        ),
        (
            "logout",
            "500 logouts, one connection (each ends a session and recomputes the chat box)",
        ),
        (
            "fanout",
            "10 status changes fanned out to 1,000 widget streams (per delivered event)",
        ),
        (
            "bare-fanout",
            "the same fan-out from the bare axum watch channel and SSE handler (the baseline)",
        ),
    ] {
        println!("==> callgrind: {name}");
        results.push(run_one(ctx, name, what).await?);
    }
    let md = markdown(&results);
    println!("{md}");
    let path = ctx.root.join("docs/BENCHMARKS.md");
    write_block(&path, &md)
}

fn markdown(results: &[Profiled]) -> String {
    let mut out = String::from("## CPU profiles (callgrind, instruction counts)\n\n");
    let _ = writeln!(
        out,
        "Generated by `cargo xtask bench --profile` on {} (UTC): our server (the \
         presence-server library started by the bench binary's `serve-presence` mode, release \
         build) under `valgrind --tool=callgrind`, collecting only during the load. Ir = instructions \
         executed by the server process (all threads), exclusive per function.\n",
        crate::chrono_like_now()
    );
    for p in results {
        let per_op = p.total_ir.checked_div(p.ops).unwrap_or(0);
        let _ = writeln!(
            out,
            "### {}: {}\n\nTotal {} Ir, **{} Ir per operation**.\n\n| Ir | % | function |\n|---:|---:|---|",
            p.name, p.what, p.total_ir, per_op
        );
        for (ir, f) in p.top.iter().take(15) {
            let pct = if p.total_ir > 0 {
                *ir as f64 * 100.0 / p.total_ir as f64
            } else {
                0.0
            };
            let f = f.replace('|', "\\|");
            let f = if f.chars().count() > 140 {
                format!("{}...", f.chars().take(140).collect::<String>())
            } else {
                f
            };
            let _ = writeln!(out, "| {ir} | {pct:.1} | `{f}` |");
        }
        out.push('\n');
    }
    out
}

fn write_block(path: &Path, md: &str) -> Res<()> {
    let existing = std::fs::read_to_string(path).unwrap_or_default();
    let block = format!("{BEGIN}\n\n{md}{END}");
    let text = match (existing.find(BEGIN), existing.find(END)) {
        (Some(b), Some(en)) if en > b => {
            format!("{}{}{}", &existing[..b], block, &existing[en + END.len()..])
        }
        _ => format!("{}\n\n{block}\n", existing.trim_end()),
    };
    std::fs::write(path, text).map_err(e)
}

//! `presence-bench`: the harness behind `cargo xtask bench`.
//!
//! Runs every scenario of the benchmark issue in one run, each against a fresh process on
//! loopback (never two servers at once), writes `target/bench/report.json`, and regenerates
//! the generated block of `docs/BENCHMARKS.md`.
//!
//! ```text
//! cargo xtask bench                 # everything, full counts (about 15 minutes)
//! cargo xtask bench --quick         # small counts, under 2 minutes; writes target/bench/quick/
//! cargo xtask bench --only a,b      # some steps; writes target/bench/partial/
//! cargo xtask bench --profile       # callgrind profiles of the hot paths
//! ```

mod api;
mod bare;
mod centrifugo;
mod cluster;
mod core;
mod durability;
mod http;
mod ours;
mod phone;
mod proc;
mod profile;
mod push;
mod redis;
mod report;
mod reports;
mod serve;
mod soketi;
mod stats;
mod timers;
mod webhooks;
mod widget;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::process::Command;

use crate::proc::Res;
use crate::report::Report;

pub const STEPS: &[&str] = &[
    "latency",
    "expiry",
    "timers",
    "fanout",
    "fanout-100k",
    "heartbeat",
    "rss",
    "idle",
    "core",
    "phone",
    "durability",
    "ffi",
    "soketi",
    "centrifugo",
    "redis",
    "widget",
    "dashboard",
    "push",
    "cluster",
    "centrifugo-cluster",
    "reports",
    "webhooks",
];

const USAGE: &str = "usage: presence-bench [--quick] [--only STEPS] [--skip STEPS] [--profile]
steps: latency, expiry, timers, fanout, fanout-100k, heartbeat, rss, idle, core, phone, durability, ffi, soketi,
centrifugo, redis, widget, dashboard, push, cluster, centrifugo-cluster, reports, webhooks";

pub struct Ctx {
    pub quick: bool,
    pub root: PathBuf,
    pub target: PathBuf,
    pub work: PathBuf,
    pub logs: PathBuf,
    pub self_exe: PathBuf,
    pub report: Report,
}

struct Opts {
    quick: bool,
    only: Option<Vec<String>>,
    skip: Vec<String>,
    profile: bool,
    args: Vec<String>,
}

fn parse_list(v: Option<&String>) -> Result<Vec<String>, String> {
    let v = v.ok_or("expected a comma-separated list of steps")?;
    let list: Vec<String> = v.split(',').map(|s| s.trim().to_owned()).collect();
    for s in &list {
        if !STEPS.contains(&s.as_str()) {
            return Err(format!("unknown step `{s}`\n{USAGE}"));
        }
    }
    Ok(list)
}

fn parse(args: Vec<String>) -> Result<Opts, String> {
    let mut o = Opts {
        quick: false,
        only: None,
        skip: Vec::new(),
        profile: false,
        args: args.clone(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => o.quick = true,
            "--profile" => o.profile = true,
            "--only" => o.only = Some(parse_list(it.next())?),
            "--skip" => o.skip = parse_list(it.next())?,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    Ok(o)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve-bare") {
        let listen = args
            .iter()
            .skip_while(|a| *a != "--listen")
            .nth(1)
            .cloned()
            .unwrap_or_else(|| "127.0.0.1:0".into());
        return bare::serve(&listen);
    }
    if args.first().map(String::as_str) == Some("serve-presence") {
        return serve::serve(&args[1..]);
    }
    let opts = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let nofile = proc::raise_nofile();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(run(opts, nofile))
}

fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let load = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    json!({
        "cpu_model": cpu_model,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "memory_bytes": mem,
        "kernel": kernel,
        "loadavg_start": load,
    })
}

async fn git_commit(root: &std::path::Path) -> String {
    let mut c = Command::new("git");
    c.args(["rev-parse", "--short", "HEAD"]).current_dir(root);
    proc::run(c, "git rev-parse", Duration::from_secs(10))
        .await
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// A nested cargo without the per-package variables `cargo run` set for us: build scripts
/// that watch them would otherwise see a changed environment and rebuild for everyone.
fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for (k, _) in std::env::vars_os() {
        let Some(k) = k.to_str() else { continue };
        if k.starts_with("CARGO_PKG_")
            || matches!(
                k,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_MANIFEST_LINKS"
            )
        {
            c.env_remove(k);
        }
    }
    c
}

/// `ffi_release_small_bytes`: builds presence-ffi with the release-small profile (full runs)
/// and stats the cdylib.
async fn ffi(ctx: &mut Ctx) -> Res<()> {
    const KEY: &str = "ffi_release_small_bytes";
    let manifest = ctx.root.join("bindings/presence-ffi/Cargo.toml");
    if !manifest.is_file() {
        ctx.report.set(KEY, None);
        ctx.report.note(
            KEY,
            "bindings/presence-ffi does not exist yet: not measured",
        );
        return Ok(());
    }
    let so = ctx.target.join("release-small/libpresence_ffi.so");
    if !ctx.quick {
        let mut c = cargo();
        c.args([
            "build",
            "-p",
            "presence-ffi",
            "--profile",
            "release-small",
            "--lib",
        ])
        .current_dir(&ctx.root)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
        let st = tokio::time::timeout(Duration::from_secs(1800), c.status())
            .await
            .map_err(|_| "release-small build timed out")?
            .map_err(|e| e.to_string())?;
        if !st.success() {
            return Err(format!(
                "cargo build -p presence-ffi --profile release-small: {st}"
            ));
        }
    } else if !so.is_file() {
        ctx.report.set(KEY, None);
        ctx.report.note(
            KEY,
            "quick mode builds nothing and no release-small cdylib exists yet",
        );
        return Ok(());
    }
    let len = std::fs::metadata(&so)
        .map_err(|e| format!("{}: {e}", so.display()))?
        .len();
    ctx.report.set(KEY, Some(len as f64));
    ctx.report.detail(
        "ffi",
        json!({"path": so.strip_prefix(&ctx.root).unwrap_or(&so).display().to_string(),
               "bytes": len}),
    );
    Ok(())
}

/// Peers are skipped in quick mode unless already installed.
fn peer_installed(step: &str) -> bool {
    match step {
        "soketi" => soketi::cache_dir()
            .join("node_modules/@soketi/soketi/package.json")
            .is_file(),
        "redis" => proc::which("redis-server").is_some(),
        "centrifugo" => centrifugo::binary().is_file(),
        "centrifugo-cluster" => {
            centrifugo::binary().is_file() && proc::which("redis-server").is_some()
        }
        _ => true,
    }
}

async fn step(ctx: &mut Ctx, name: &str) -> Res<()> {
    match name {
        "latency" => ours::latency(ctx).await,
        "expiry" => ours::expiry(ctx).await,
        "timers" => ours::timers(ctx).await,
        "fanout" => ours::fanout(ctx).await,
        "fanout-100k" => ours::fanout_100k(ctx).await,
        "heartbeat" => ours::heartbeat(ctx).await,
        "rss" => ours::rss(ctx).await,
        "idle" => ours::idle_connections(ctx).await,
        "core" => core::core(ctx).await,
        "phone" => phone::phone(ctx).await,
        "widget" => widget::widget(ctx).await,
        "dashboard" => widget::dashboard(ctx).await,
        "push" => push::push(ctx).await,
        "durability" => ours::durability(ctx).await,
        "ffi" => ffi(ctx).await,
        "soketi" => soketi::soketi(ctx).await,
        "centrifugo" => centrifugo::centrifugo(ctx).await,
        "centrifugo-cluster" => centrifugo::cluster(ctx).await,
        "redis" => redis::redis(ctx).await,
        "cluster" => cluster::cluster(ctx).await,
        "reports" => reports::reports(ctx).await,
        "webhooks" => webhooks::webhooks(ctx).await,
        other => Err(format!("unknown step {other}")),
    }
}

/// Ratios of figures measured in the same run by different steps: ours against the floor
/// or the bare peer of this machine, so a noisy machine moves both sides.
fn derived_ratios(r: &mut Report) {
    let ratio = |r: &Report, ours: &str, floor: &str| match (r.get(ours), r.get(floor)) {
        (Some(o), Some(f)) if f > 0.0 => Some(crate::stats::round3(o / f)),
        _ => None,
    };
    let v = ratio(r, "status_to_other_device_p50_ms", "bare_axum_rtt_p50_ms");
    r.set("status_to_other_device_vs_http_floor", v);
    let v = ratio(
        r,
        "status_to_other_device_p50_ms",
        "bare_axum_status_to_other_connection_p50_ms",
    );
    r.set("status_to_other_device_vs_bare_push_floor", v);
    let v = ratio(
        r,
        "status_to_10k_widgets_p99_ms",
        "bare_axum_10k_widgets_p99_ms",
    );
    r.set("status_to_10k_widgets_vs_bare_axum", v);
    centrifugo::ratios(r);
}

async fn run(opts: Opts, nofile: u64) -> ExitCode {
    let started = Instant::now();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let self_exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("cannot find this executable: {e}");
            return ExitCode::FAILURE;
        }
    };
    let exe_dir = self_exe
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/release"));
    let target = exe_dir
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    if cfg!(debug_assertions) && !opts.quick {
        eprintln!(
            "this is a debug build of presence-bench: its figures would mean nothing; \
             run `cargo xtask bench` (release), or `--quick` to check the harness only"
        );
        return ExitCode::FAILURE;
    }
    let full = !opts.quick && opts.only.is_none() && opts.skip.is_empty();
    let out = if opts.profile {
        target.join("bench/profile")
    } else if opts.quick {
        target.join("bench/quick")
    } else if full {
        target.join("bench")
    } else {
        target.join("bench/partial")
    };
    let mut ctx = Ctx {
        quick: opts.quick,
        root: root.clone(),
        target: target.clone(),
        work: out.join("work"),
        logs: out.join("logs"),
        self_exe,
        report: Report::default(),
    };
    let _ = std::fs::remove_dir_all(&ctx.work);
    let _ = std::fs::remove_dir_all(&ctx.logs);
    if let Err(e) = std::fs::create_dir_all(&ctx.work) {
        eprintln!("cannot create {}: {e}", ctx.work.display());
        return ExitCode::FAILURE;
    }
    let m = machine();
    println!(
        "presence-bench: {} mode on {} x {} (load {}), open files {nofile}",
        if opts.profile {
            "profile"
        } else if opts.quick {
            "quick"
        } else {
            "full"
        },
        m["cores"],
        m["cpu_model"].as_str().unwrap_or("?"),
        m["loadavg_start"].as_str().unwrap_or("?")
    );
    if opts.profile {
        return match profile::profile(&mut ctx).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("profile failed: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let mut failed = 0;
    for &name in STEPS {
        let selected = opts
            .only
            .as_ref()
            .is_none_or(|o| o.iter().any(|s| s == name))
            && !opts.skip.iter().any(|s| s == name);
        if !selected {
            continue;
        }
        if opts.quick && (name == "widget" || name == "dashboard") {
            println!("==> {name}: skipped (quick mode: it needs a release server and a browser)");
            ctx.report.note(name, "skipped in quick mode");
            continue;
        }
        if opts.quick && !peer_installed(name) {
            println!("==> {name}: skipped (not installed; quick mode installs nothing)");
            ctx.report.note(
                &format!("peer_{name}"),
                "skipped in quick mode: not installed",
            );
            continue;
        }
        println!("==> {name}");
        let t = Instant::now();
        match step(&mut ctx, name).await {
            Ok(()) => println!("    done in {:.1} s", t.elapsed().as_secs_f64()),
            Err(e) => {
                failed += 1;
                eprintln!(
                    "    {name} FAILED after {:.1} s: {e}",
                    t.elapsed().as_secs_f64()
                );
                ctx.report.fail(name, &e);
            }
        }
    }
    derived_ratios(&mut ctx.report);
    let command = {
        let mut c = String::from("cargo xtask bench");
        for a in &opts.args {
            c.push(' ');
            c.push_str(a);
        }
        c
    };
    let meta = json!({
        "date": chrono_like_now(),
        "command": command,
        "commit": git_commit(&root).await,
        "mode": if opts.quick { "quick" } else if full { "full" } else { "partial" },
        "elapsed_s": crate::stats::round3(started.elapsed().as_secs_f64()),
        "machine": m,
        "open_files_limit": nofile,
    });
    let json = ctx.report.to_json(meta.clone());
    let report_path = out.join("report.json");
    match serde_json::to_string_pretty(&json) {
        Ok(text) => {
            if let Err(e) = std::fs::write(&report_path, text + "\n") {
                eprintln!("cannot write {}: {e}", report_path.display());
                failed += 1;
            }
        }
        Err(e) => {
            eprintln!("cannot encode the report: {e}");
            failed += 1;
        }
    }
    let md = report::markdown(&ctx.report, &meta);
    let md_path = if full {
        root.join("docs/BENCHMARKS.md")
    } else {
        out.join("BENCHMARKS.md")
    };
    if let Err(e) = report::write_markdown(&md_path, &md) {
        eprintln!("cannot write {}: {e}", md_path.display());
        failed += 1;
    }
    println!("\n{md}");
    println!(
        "report: {}\nmarkdown: {}\n{} step(s) failed; {:.0} s in all",
        report_path.display(),
        md_path.display(),
        failed,
        started.elapsed().as_secs_f64()
    );
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// UTC now as `YYYY-MM-DD HH:MM:SS`, from the system clock (civil-from-days, no tz data).
pub fn chrono_like_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

//! `presence-bench serve-presence ...`: our server in a process of its own, started exactly
//! as `server/src/main.rs` starts it: the same `presence_server::process` functions for
//! logging, the runtime, the `listening on http://ADDR` line and the graceful stop.
//!
//! Running the library from this binary rather than the `presence-server` binary means the
//! bench needs no nested `cargo build`: `cargo run -p presence-bench --release` compiles the
//! server code it measures, in the same profile.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use presence_protocol::Settings;
use presence_server::Config;

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn num(args: &[String], name: &str, default: i64) -> Result<i64, String> {
    match flag(args, name) {
        Some(v) => v.parse().map_err(|_| format!("{name}: not a number: {v}")),
        None => Ok(default),
    }
}

fn config(args: &[String]) -> Result<Config, String> {
    let d = Settings::default();
    let base = Config::for_tests(Path::new(""));
    Ok(Config {
        listen: flag(args, "--listen")
            .unwrap_or("127.0.0.1:0")
            .parse::<SocketAddr>()
            .map_err(|e| format!("--listen: {e}"))?,
        data_dir: PathBuf::from(flag(args, "--data-dir").ok_or("--data-dir is required")?),
        admin_token: flag(args, "--admin-token").map(str::to_owned),
        demo: false,
        defaults: Settings {
            active_interval_ms: num(args, "--active-interval-ms", d.active_interval_ms)?,
            active_ttl_ms: num(args, "--active-ttl-ms", d.active_ttl_ms)?,
            background_ttl_ms: num(args, "--background-ttl-ms", d.background_ttl_ms)?,
            renew_margin_ms: num(args, "--renew-margin-ms", d.renew_margin_ms)?,
        },
        push: Default::default(),
        limits: presence_server::Limits {
            max_sessions_per_agent: num(args, "--max-sessions-per-agent", 20)? as usize,
            idle_timeout: std::time::Duration::from_millis(num(
                args,
                "--idle-timeout-ms",
                base.limits.idle_timeout.as_millis() as i64,
            )? as u64),
            ..base.limits
        },
        ..base
    })
}

pub fn serve(args: &[String]) -> ExitCode {
    let config = match config(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("serve-presence: {e}");
            return ExitCode::from(2);
        }
    };
    presence_server::process::init_logging();
    let rt = match presence_server::process::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("serve-presence: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let server = match presence_server::start(config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("serve-presence: {e}");
                return ExitCode::FAILURE;
            }
        };
        presence_server::process::serve_until_signal(server).await;
        ExitCode::SUCCESS
    })
}

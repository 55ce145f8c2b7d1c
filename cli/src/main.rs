//! `presence`: the desktop agent. Sets the agent's status (for a while, if asked), shows it and
//! its log, keeps the session alive while `watch` runs (reporting the desktop's idle time from
//! systemd-logind), and shows any account's public chat box.
//!
//! Every command opens the same engine (presence-core) on the same data dir, so a change made
//! while the server is down is stored and delivered by whichever later command reaches the
//! server first. Exit codes: 0 success, 1 error (one line on stderr), 2 usage error, 3 changes
//! still pending when `sync` gave up.

mod args;
mod commands;
mod idle;
mod paths;
mod render;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // A panic is a bug, but the user still gets one line and a non-zero exit, not a trace.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        eprintln!("presence: internal error: {}", one_line(&msg));
    }));
    let cli = args::Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("presence: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("presence: {}", one_line(&e.to_string()));
            ExitCode::from(1)
        }
    }
}

/// Logs go to stderr only when asked for (`PRESENCE_LOG=debug`), so that by default an error
/// is exactly one line.
fn init_logging() {
    let Ok(filter) = std::env::var("PRESENCE_LOG") else {
        return;
    };
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

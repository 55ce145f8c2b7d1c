//! `presence-bench serve-presence ...`: our server in a process of its own, started exactly
//! as `server/src/main.rs` starts it (`presence_server::start` on the default
//! multi-threaded runtime, tracing at `info` or `PRESENCE_LOG` to stderr, the
//! `listening on http://ADDR` line, graceful stop on SIGTERM).
//!
//! Running the library from this binary rather than the `presence-server` binary means the
//! bench needs no nested `cargo build`: `cargo run -p presence-bench --release` compiles the
//! server code it measures, in the same profile.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
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
        push_webhook_allow: Vec::new(),
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PRESENCE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
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
        {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "listening on {}", server.url());
            let _ = out.flush();
        }
        let stop = server.shutdown_handle();
        tokio::spawn(async move {
            if let Ok(mut term) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            } else {
                let _ = tokio::signal::ctrl_c().await;
            }
            let _ = stop.send(true);
        });
        server.wait().await;
        ExitCode::SUCCESS
    })
}

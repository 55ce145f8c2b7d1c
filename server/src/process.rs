//! What a server process does around [`crate::start`]: logging, the runtime, the
//! `listening on` line and a graceful stop on a signal. Shared by the `presence-server`
//! binary and the benchmark's `serve-presence` mode, so both run the server the same way.

use std::io::{IsTerminal, Write};

use crate::Server;

/// Logs to stderr, filtered by `PRESENCE_LOG` (default `info`); colours only on a terminal.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PRESENCE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

/// The runtime the server runs on: tokio's multi-threaded one, a worker per core.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

/// Prints `listening on http://ADDR` (the only line on stdout), then serves until SIGTERM
/// or Ctrl-C and stops gracefully: open event streams end, leases are flushed.
pub async fn serve_until_signal(server: Server) {
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {}", server.url());
        let _ = out.flush();
    }
    let stop = server.shutdown_handle();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        let _ = stop.send(true);
    });
    server.wait().await;
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Raises this process's open-file limit to the most the system allows (each connection
/// and stream holds a descriptor), and says so when that is still below `wanted`. Returns
/// the limit now in force.
pub fn raise_open_file_limit(wanted: usize) -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current < lim.maximum || (lim.maximum.is_none() && lim.current.is_some()) {
        let raised = rustix::process::Rlimit {
            current: lim.maximum,
            maximum: lim.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            lim = raised;
        }
    }
    let need = wanted as u64 + 64;
    if lim.current.is_some_and(|c| c < need) {
        // Past the hard limit, where the system allows it (a privileged process, up to
        // `fs.nr_open`).
        let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let above = rustix::process::Rlimit {
            current: Some(need.min(nr_open)),
            maximum: Some(need.min(nr_open)),
        };
        if above.current > lim.current && setrlimit(Resource::Nofile, above).is_ok() {
            lim = above;
        }
    }
    let now = lim.current.unwrap_or(u64::MAX);
    // Headroom for the database, the stores and the listener.
    if now < need {
        tracing::warn!(
            open_files = now,
            max_connections = wanted,
            "the open-file limit is below --max-connections: raise the hard limit (ulimit -Hn) \
             or lower --max-connections"
        );
    } else {
        tracing::info!(open_files = now, "open-file limit");
    }
    now
}

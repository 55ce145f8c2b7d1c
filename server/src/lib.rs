//! presence-server: decides what every chat box shows and keeps each agent's devices in
//! agreement about the agent's status.
//!
//! Layers, top to bottom (see docs/ARCHITECTURE.md):
//! - [`http`]: routers per area, extractors that map bad input to contract errors, SSE.
//! - [`ops`]: every operation's rules, planned once ([`ops::Ops`] is what handlers call).
//! - [`backend::Backend`]: the storage seam under the plans: slices read, planned changes
//!   applied under a turn, streams.
//! - [`embedded::Embedded`]: the default backend; hot state in memory, durable state in
//!   SQLite ([`store::Store`]), one expiry sweeper, fan-out channels.
//! - [`cluster::Cluster`]: the scale-out backend; any number of nodes on PostgreSQL and
//!   Redis (`--postgres-url` with `--redis-url`).
//! - [`push`]: push providers behind [`push::PushSender`].
//! - [`outbound`]: the rules of every call to a target a user chose.
//!
//! This file is the composition root: the module list, [`Server`] and [`start`], which opens
//! the stores, wires the backend, the push senders and the HTTP surface from a [`Config`]
//! (with [`Limits`] and [`Retention`], in `config.rs`), runs the whole server on a listener
//! and returns a handle; the binary and the tests both use it.

pub mod auth;
pub mod backend;
pub mod clock;
pub mod cluster;
mod config;
pub mod conformance;
pub mod demo;
pub mod embedded;
pub mod error;
pub mod hashing;
pub mod history;
pub mod http;
pub mod jwt;
pub mod metrics;
pub mod ops;
pub mod outbound;
pub mod process;
pub mod push;
pub mod rows;
pub mod rules;
pub mod store;
pub mod validate;
pub mod webhooks;

pub use crate::config::{Config, Limits, Retention};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;

use crate::auth::LoginLimiter;
use crate::embedded::Embedded;
use crate::metrics::Metrics;
use crate::push::Pusher;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid settings: {0}")]
    Settings(String),
    #[error("cannot open the database in {dir}: {source}")]
    Store {
        dir: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cluster stores: {0}")]
    Cluster(String),
    #[error("push: {0}")]
    Push(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running server. Dropping it without [`Server::shutdown`] leaves it running until the
/// runtime ends.
pub struct Server {
    addr: SocketAddr,
    backend: Arc<dyn backend::Backend>,
    ops: ops::Ops,
    embedded: Option<Embedded>,
    shutdown_tx: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The backend every handler talks to.
    pub fn backend(&self) -> &Arc<dyn backend::Backend> {
        &self.backend
    }

    /// The operations of the API over this server's backend.
    pub fn ops(&self) -> &ops::Ops {
        &self.ops
    }

    /// The embedded backend, when the server runs one (not in cluster mode).
    pub fn embedded(&self) -> Option<&Embedded> {
        self.embedded.as_ref()
    }

    /// Ends open streams, stops accepting, and flushes leases to disk.
    pub async fn shutdown(self) {
        let _ = self.shutdown_tx.send(true);
        let _ = self.task.await;
        flush(&self.embedded);
    }

    /// Waits until the server stops (after a shutdown signal: open connections get the
    /// shutdown grace, then are closed), then flushes leases to disk.
    pub async fn wait(self) {
        let _ = self.task.await;
        flush(&self.embedded);
    }

    /// A sender that stops the server when `true` is sent.
    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown_tx.clone()
    }
}

/// Writes what only the embedded backend's memory holds (leases, view versions); the
/// cluster backend commits every change before answering and holds nothing back.
fn flush(embedded: &Option<Embedded>) {
    if let Some(e) = embedded {
        e.flush();
    }
}

/// Opens the stores (the data dir, or PostgreSQL and Redis in cluster mode), restores
/// state, binds, and serves in a background task.
pub async fn start(config: Config) -> Result<Server, StartError> {
    validate::check_settings(&config.defaults).map_err(|e| StartError::Settings(e.to_string()))?;
    let metrics = Arc::new(Metrics::default());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let pusher = Arc::new(Pusher::new(
        config.push.senders().map_err(StartError::Push)?,
        metrics.push.clone(),
    ));
    let hasher = hashing::HashPool::new(config.limits.password_hash_concurrency);
    let (backend, embedded, clock, limiter): (
        Arc<dyn backend::Backend>,
        Option<Embedded>,
        clock::Clock,
        Arc<dyn auth::LoginGate>,
    ) = match &config.cluster {
        Some(c) => {
            let b = cluster::Cluster::connect(
                c,
                pusher.clone(),
                config.retention,
                metrics.clone(),
                shutdown_rx.clone(),
            )
            .await
            .map_err(StartError::Cluster)?;
            let clock = b.clock();
            let gate = b.login_gate();
            (Arc::new(b), None, clock, gate)
        }
        None => {
            let store =
                store::Store::open_dir(&config.data_dir).map_err(|source| StartError::Store {
                    dir: config.data_dir.clone(),
                    source,
                })?;
            let b = Embedded::open(
                store,
                pusher.clone(),
                config.retention,
                metrics.clone(),
                shutdown_rx.clone(),
            )
            .map_err(|source| StartError::Store {
                dir: config.data_dir.clone(),
                source,
            })?;
            let clock = b.clock();
            (
                Arc::new(b.clone()),
                Some(b),
                clock,
                Arc::new(LoginLimiter::new()),
            )
        }
    };
    let rules = outbound::TargetRules::new(&config.push.webhook_allow);
    let ops = ops::Ops::new(backend.clone(), hasher, pusher)
        .with_session_cap(config.limits.max_sessions_per_agent)
        .with_outbound_rules(rules.clone())
        .with_webhook_timeout(config.webhooks.timeout);
    webhooks::worker::Worker {
        backend: backend.clone(),
        poke: ops.webhook_poke(),
        rules,
        policy: config.webhooks,
        metrics: metrics.webhooks.clone(),
        clock: clock.clone(),
    }
    .spawn(shutdown_rx.clone());
    let http_metrics = metrics.http.clone();
    let state = http::AppState {
        ops: ops.clone(),
        limiter,
        metrics,
        admin_token: config.admin_token.as_deref().map(Arc::from),
        defaults: config.defaults,
        streams: http::sse::StreamConfig {
            shutdown: shutdown_rx.clone(),
            ping_every: config.stream_ping,
            clock,
            metrics: http_metrics,
        },
        demo: config.demo,
        trusted_proxies: config.trusted_proxies.clone().into(),
        stream_limiter: http::stream_limit::StreamLimiter::new(config.limits.max_streams_per_ip),
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Listen {
        addr: config.listen,
        source,
    })?;
    let limits = config.limits;
    let task = tokio::spawn(async move {
        if let Err(e) = http::serve(listener, state, limits, shutdown_rx).await {
            tracing::error!(error = %e, "server stopped with an error");
        }
    });
    Ok(Server {
        addr,
        backend,
        ops,
        embedded,
        shutdown_tx,
        task,
    })
}

//! presence-server: decides what every chat box shows and keeps each agent's devices in
//! agreement about the agent's status.
//!
//! Layers, top to bottom (see docs/ARCHITECTURE.md):
//! - [`http`]: routers per area, extractors that map bad input to contract errors, SSE.
//! - [`backend::Backend`]: the seam every handler talks to.
//! - [`embedded::Embedded`]: the default backend; hot state in memory, durable state in
//!   SQLite ([`store::Store`]), one expiry sweeper, fan-out channels.
//! - [`cluster::Cluster`]: the scale-out backend; any number of nodes on PostgreSQL and
//!   Redis (`--postgres-url` with `--redis-url`).
//! - [`push`]: push providers behind [`push::PushSender`].
//!
//! [`start`] runs the whole server on a listener and returns a handle; the binary and the
//! tests both use it.

pub mod auth;
pub mod backend;
pub mod clock;
pub mod cluster;
pub mod conformance;
pub mod demo;
pub mod embedded;
pub mod error;
pub mod hashing;
pub mod http;
pub mod metrics;
pub mod ops;
pub mod process;
pub mod push;
pub mod rows;
pub mod rules;
pub mod store;
pub mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use presence_protocol::Settings;
use tokio::sync::watch;

use crate::auth::LoginLimiter;
use crate::embedded::Embedded;
use crate::metrics::Metrics;
use crate::push::{PushConfig, Pusher};

/// Everything the server needs to start; the command line fills it from flags and env.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Bearer token for `POST /v1/accounts`; `None` disables account creation.
    pub admin_token: Option<String>,
    pub demo: bool,
    /// Timing settings for new accounts.
    pub defaults: Settings,
    /// The push providers and what they may call.
    pub push: PushConfig,
    /// Interval of `ping` events on every stream.
    pub stream_ping: Duration,
    pub limits: Limits,
    pub retention: Retention,
    /// PostgreSQL and Redis for cluster mode; `None` runs the embedded backend in
    /// `data_dir`.
    pub cluster: Option<cluster::ClusterConfig>,
}

/// What keeps slow, idle or numerous clients from holding the server's connections, threads
/// and memory.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time to send a request's headers.
    pub header_timeout: Duration,
    /// A connection with no bytes moving either way for this long is closed.
    pub idle_timeout: Duration,
    /// Deadline of a request other than an event stream (`503 unavailable` past it).
    pub request_timeout: Duration,
    /// On shutdown, how long open connections get before they are closed.
    pub shutdown_grace: Duration,
    /// Password hashes computed at once.
    pub password_hash_concurrency: usize,
}

impl Limits {
    /// One password check per core: more would only queue for the CPU while holding memory.
    pub fn default_hash_concurrency() -> usize {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(15),
            shutdown_grace: Duration::from_secs(5),
            password_hash_concurrency: Limits::default_hash_concurrency(),
        }
    }
}

/// How long history the contract needs is kept before it is pruned.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// An ended session's token answers `session_expired` this long.
    pub ended_sessions: Duration,
    /// A status op id stays idempotent this long.
    pub status_ops: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            ended_sessions: Duration::from_secs(7 * 86_400),
            status_ops: Duration::from_secs(30 * 86_400),
        }
    }
}

impl Config {
    /// A server for tests: a free loopback port, admin token `test-admin-token`, webhooks
    /// allowed to loopback.
    pub fn for_tests(data_dir: &Path) -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.to_path_buf(),
            admin_token: Some("test-admin-token".to_owned()),
            demo: false,
            defaults: Settings::default(),
            push: PushConfig {
                webhook_allow: vec!["127.0.0.1".to_owned(), "localhost".to_owned()],
                ..PushConfig::default()
            },
            stream_ping: http::sse::PING_EVERY,
            limits: Limits::default(),
            retention: Retention::default(),
            cluster: None,
        }
    }
}

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
        self.backend.flush().await;
    }

    /// Waits until the server stops (after a shutdown signal: open connections get the
    /// shutdown grace, then are closed), then flushes leases to disk.
    pub async fn wait(self) {
        let _ = self.task.await;
        self.backend.flush().await;
    }

    /// A sender that stops the server when `true` is sent.
    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown_tx.clone()
    }
}

/// Opens the stores (the data dir, or PostgreSQL and Redis in cluster mode), restores
/// state, binds, and serves in a background task.
pub async fn start(config: Config) -> Result<Server, StartError> {
    validate::check_settings(&config.defaults).map_err(|e| StartError::Settings(e.to_string()))?;
    let metrics = Arc::new(Metrics::default());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let pusher = Pusher::new(
        config.push.senders().map_err(StartError::Push)?,
        metrics.push.clone(),
    );
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
                pusher,
                hasher.clone(),
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
                pusher,
                hasher.clone(),
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
    let ops = ops::Ops::new(backend.clone(), hasher);
    let state = http::AppState {
        backend: backend.clone(),
        ops: ops.clone(),
        limiter,
        metrics,
        admin_token: config.admin_token.as_deref().map(Arc::from),
        defaults: config.defaults,
        streams: http::sse::StreamConfig {
            shutdown: shutdown_rx.clone(),
            ping_every: config.stream_ping,
            clock,
        },
        demo: config.demo,
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

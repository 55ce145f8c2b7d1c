//! The server's configuration: what [`crate::start`] needs, filled by the command line from
//! flags and environment, or by [`Config::for_tests`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use presence_protocol::Settings;

use crate::cluster::ClusterConfig;
use crate::http::sse::PING_EVERY;
use crate::push::PushConfig;

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
    /// `--trusted-proxy`: peers whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// PostgreSQL and Redis for cluster mode; `None` runs the embedded backend in
    /// `data_dir`.
    pub cluster: Option<ClusterConfig>,
    /// When webhook deliveries are tried again and given up.
    pub webhooks: crate::webhooks::backoff::Policy,
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
    /// Connections served at once; past it a request gets `503` (`/healthz` excepted).
    pub max_connections: usize,
    /// Event streams one client address holds open at once.
    pub max_streams_per_ip: usize,
    /// Live sessions one agent keeps; a new one beyond them replaces the oldest.
    pub max_sessions_per_agent: usize,
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
            max_connections: 50_000,
            max_streams_per_ip: 200,
            max_sessions_per_agent: crate::ops::sessions::MAX_LIVE_SESSIONS,
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
    /// The status log keeps an applied change this long.
    pub history: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            ended_sessions: Duration::from_secs(7 * 86_400),
            status_ops: Duration::from_secs(30 * 86_400),
            history: Duration::from_secs(400 * 86_400),
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
            stream_ping: PING_EVERY,
            // Tests and the benchmark open thousands of streams from one loopback address.
            limits: Limits {
                max_streams_per_ip: 1_000_000,
                ..Limits::default()
            },
            retention: Retention::default(),
            trusted_proxies: Vec::new(),
            cluster: None,
            webhooks: crate::webhooks::backoff::Policy::default(),
        }
    }
}

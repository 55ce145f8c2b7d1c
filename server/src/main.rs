//! `presence-server`: the command line in front of [`presence_server::start`].
//!
//! Flags and their `PRESENCE_*` environment variables are the contract in PROTOCOL.md. Once
//! the server accepts connections it prints exactly one line `listening on http://ADDR` to
//! stdout (tests and scripts wait for it); everything else goes to stderr.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use presence_protocol::Settings;
use presence_server::cluster::ClusterConfig;
use presence_server::push::{ApnsConfig, FcmConfig, PushConfig};
use presence_server::{Config, Limits, Retention, demo};

#[derive(Debug, Parser)]
#[command(name = "presence-server", version, about = "The Presence service")]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "PRESENCE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Directory of the SQLite database.
    #[arg(long, env = "PRESENCE_DATA_DIR", default_value = "./presence-data")]
    data_dir: PathBuf,
    /// Bearer token for POST /v1/accounts (account creation is off without it).
    #[arg(long, env = "PRESENCE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Create the demo account if missing and print its credentials. Its passwords are
    /// well known: on an address other than loopback it needs --demo-public too.
    #[arg(long, env = "PRESENCE_DEMO")]
    demo: bool,
    /// Allow --demo on an address other than loopback.
    #[arg(long, env = "PRESENCE_DEMO_PUBLIC")]
    demo_public: bool,
    /// Default heartbeat interval for new accounts.
    #[arg(long, env = "PRESENCE_ACTIVE_INTERVAL_MS", default_value_t = 20_000)]
    active_interval_ms: i64,
    /// Default active lease for new accounts.
    #[arg(long, env = "PRESENCE_ACTIVE_TTL_MS", default_value_t = 60_000)]
    active_ttl_ms: i64,
    /// Default background lease (devices with push) for new accounts.
    #[arg(long, env = "PRESENCE_BACKGROUND_TTL_MS", default_value_t = 1_800_000)]
    background_ttl_ms: i64,
    /// How long before a background lease ends the renew push goes out.
    #[arg(long, env = "PRESENCE_RENEW_MARGIN_MS", default_value_t = 300_000)]
    renew_margin_ms: i64,
    /// Hosts the webhook push provider may call, comma separated.
    #[arg(long, env = "PRESENCE_PUSH_WEBHOOK_ALLOW", value_delimiter = ',')]
    push_webhook_allow: Vec<String>,
    /// Google service-account JSON key (project_id, client_email, private_key, token_uri):
    /// enables the `fcm` push provider.
    #[arg(long, env = "PRESENCE_FCM_CREDENTIALS", value_name = "FILE")]
    fcm_credentials: Option<PathBuf>,
    /// Base URL of the FCM HTTP v1 API.
    #[arg(
        long,
        env = "PRESENCE_FCM_ENDPOINT",
        value_name = "URL",
        default_value = "https://fcm.googleapis.com"
    )]
    fcm_endpoint: String,
    /// The APNs signing key (.p8, PKCS#8 P-256): enables the `apns` push provider.
    #[arg(long, env = "PRESENCE_APNS_KEY", value_name = "FILE", requires_all = ["apns_key_id", "apns_team_id", "apns_topic"])]
    apns_key: Option<PathBuf>,
    /// The key's id (the `kid` of provider tokens).
    #[arg(
        long,
        env = "PRESENCE_APNS_KEY_ID",
        value_name = "ID",
        requires = "apns_key"
    )]
    apns_key_id: Option<String>,
    /// The Apple developer team id (the `iss` of provider tokens).
    #[arg(
        long,
        env = "PRESENCE_APNS_TEAM_ID",
        value_name = "ID",
        requires = "apns_key"
    )]
    apns_team_id: Option<String>,
    /// The app's bundle id (`apns-topic`).
    #[arg(
        long,
        env = "PRESENCE_APNS_TOPIC",
        value_name = "BUNDLE_ID",
        requires = "apns_key"
    )]
    apns_topic: Option<String>,
    /// Base URL of APNs.
    #[arg(
        long,
        env = "PRESENCE_APNS_ENDPOINT",
        value_name = "URL",
        default_value = "https://api.push.apple.com"
    )]
    apns_endpoint: String,
    /// Extra root certificates (PEM) trusted for fcm (token_uri included), apns and
    /// unifiedpush targets; the built-in roots stay trusted.
    #[arg(long, env = "PRESENCE_PUSH_CA_FILE", value_name = "PEM")]
    push_ca_file: Option<PathBuf>,
    /// Interval of `ping` events on every event stream.
    #[arg(long, env = "PRESENCE_STREAM_PING_MS", default_value_t = 15_000, value_parser = clap::value_parser!(u64).range(100..))]
    stream_ping_ms: u64,
    /// A client must send a request's headers within this time, or the connection closes.
    #[arg(long, env = "PRESENCE_HEADER_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..))]
    header_timeout_ms: u64,
    /// A connection with no bytes moving either way for this long is closed (event streams
    /// move a ping at least every --stream-ping-ms, so a reading stream stays open).
    #[arg(long, env = "PRESENCE_IDLE_TIMEOUT_MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(100..))]
    idle_timeout_ms: u64,
    /// A request (other than an event stream) not answered within this time gets
    /// `503 unavailable`.
    #[arg(long, env = "PRESENCE_REQUEST_TIMEOUT_MS", default_value_t = 15_000, value_parser = clap::value_parser!(u64).range(100..))]
    request_timeout_ms: u64,
    /// On SIGTERM, how long open requests and streams get to finish before the server closes
    /// them, flushes and exits.
    #[arg(long, env = "PRESENCE_SHUTDOWN_GRACE_MS", default_value_t = 5_000)]
    shutdown_grace_ms: u64,
    /// How long an ended session's token keeps answering `session_expired` (then `unauthorized`).
    #[arg(long, env = "PRESENCE_SESSION_RETENTION_MS", default_value_t = 7 * 86_400_000, value_parser = clap::value_parser!(u64).range(1..))]
    session_retention_ms: u64,
    /// How long a status op id stays idempotent (a retry with it returns the first answer).
    #[arg(long, env = "PRESENCE_OP_RETENTION_MS", default_value_t = 30 * 86_400_000, value_parser = clap::value_parser!(u64).range(1..))]
    op_retention_ms: u64,
    /// Connections served at once: past it a request gets `503 unavailable` with
    /// `Retry-After` (`/healthz` is still answered). The open-file limit is raised to allow it.
    #[arg(long, env = "PRESENCE_MAX_CONNECTIONS", default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: u64,
    /// Event streams one client address (an IPv4 address, an IPv6 /64) holds open at once.
    #[arg(long, env = "PRESENCE_MAX_STREAMS_PER_IP", default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    max_streams_per_ip: u64,
    /// Live sessions one agent keeps: a new one beyond them replaces the agent's oldest
    /// (reason `replaced`).
    #[arg(long, env = "PRESENCE_MAX_SESSIONS_PER_AGENT", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    max_sessions_per_agent: u64,
    /// Proxies or load balancers in front of the server (CIDR or address, comma-separated):
    /// from them, the client is the rightmost `X-Forwarded-For` entry outside these ranges.
    /// Without it, the client is always the peer and `X-Forwarded-For` is ignored.
    #[arg(long, env = "PRESENCE_TRUSTED_PROXY", value_name = "CIDR", value_delimiter = ',', value_parser = parse_net)]
    trusted_proxy: Vec<ipnet::IpNet>,
    /// Webhooks: delay before the first retry of an event not answered 2xx; later retries
    /// back off from it (6x, 24x, ... up to 2880x, with jitter).
    #[arg(long, env = "PRESENCE_WEBHOOK_RETRY_MS", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(10..=10_000))]
    webhook_retry_ms: u64,
    /// Webhooks: an event whose attempt fails this long after it happened (or after a
    /// manual retry) is given up (dead).
    #[arg(long, env = "PRESENCE_WEBHOOK_GIVE_UP_MS", default_value_t = 86_400_000, value_parser = clap::value_parser!(u64).range(1..))]
    webhook_give_up_ms: u64,
    /// Webhooks: the longest one attempt waits for an answer.
    #[arg(long, env = "PRESENCE_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    webhook_timeout_ms: u64,
    /// How long the status log keeps an applied status change (default 400 days).
    #[arg(long, env = "PRESENCE_HISTORY_RETENTION_MS", default_value_t = 400 * 86_400_000, value_parser = clap::value_parser!(u64).range(1..))]
    history_retention_ms: u64,
    /// Cluster mode: the PostgreSQL that holds what must survive (with --redis-url). Any
    /// number of nodes may share it. TLS: `?sslmode=require` (encrypted), `verify-full` (and
    /// the host name verified) with `&sslrootcert=CA.pem`.
    #[arg(
        long,
        env = "PRESENCE_POSTGRES_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    postgres_url: Option<String>,
    /// Cluster mode: the Redis that holds the hot state and carries events between nodes
    /// (with --postgres-url). `rediss://` for TLS.
    #[arg(
        long,
        env = "PRESENCE_REDIS_URL",
        hide_env_values = true,
        value_name = "URL",
        value_delimiter = ','
    )]
    redis_url: Vec<String>,
    /// The CA (PEM) a `rediss://` Redis's certificate must chain to, instead of the built-in
    /// roots.
    #[arg(long, env = "PRESENCE_REDIS_CA_FILE", value_name = "PEM")]
    redis_ca_file: Option<PathBuf>,
    /// Password checks run at once at most (each holds about 19 MiB); further logins wait
    /// briefly, then get `503 unavailable`. Default: the number of cores.
    #[arg(long, env = "PRESENCE_PASSWORD_HASH_CONCURRENCY", value_parser = clap::value_parser!(u64).range(1..=256))]
    password_hash_concurrency: Option<u64>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    presence_server::process::init_logging();
    let runtime = match presence_server::process::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("presence-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(args))
}

/// A `--trusted-proxy` range: a CIDR, or one address.
fn parse_net(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{s:?} is neither a CIDR range nor an address"))
}

/// The cluster stores, if both are given; a usage error if only one is, or if what they say
/// cannot be honoured ([`ClusterConfig::check`]).
fn cluster_config(args: &Args) -> Result<Option<ClusterConfig>, String> {
    let config = match (&args.postgres_url, args.redis_url.as_slice()) {
        (None, []) if args.redis_ca_file.is_some() => {
            return Err("--redis-ca-file needs --redis-url (cluster mode)".into());
        }
        (None, []) => return Ok(None),
        (Some(_), []) => {
            return Err("--postgres-url needs --redis-url too (cluster mode uses both)".into());
        }
        (None, [_, ..]) => {
            return Err("--redis-url needs --postgres-url too (cluster mode uses both)".into());
        }
        (Some(pg), urls) => ClusterConfig {
            postgres_url: pg.clone(),
            redis_urls: urls.to_vec(),
            redis_ca_file: args.redis_ca_file.clone(),
        },
    };
    config.check()?;
    Ok(Some(config))
}

async fn run(args: Args) -> ExitCode {
    let cluster = match cluster_config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("presence-server: {e}");
            return ExitCode::from(2);
        }
    };
    if args.demo && !args.listen.ip().is_loopback() && !args.demo_public {
        eprintln!(
            "presence-server: --demo creates accounts with well-known passwords; on {} it \
             needs --demo-public too",
            args.listen
        );
        return ExitCode::from(2);
    }
    if let Some(t) = &args.admin_token
        && t.chars().count() < presence_server::auth::MIN_ADMIN_TOKEN_CHARS
    {
        eprintln!(
            "presence-server: --admin-token must have at least {} characters (it creates \
             accounts; a short one can be guessed)",
            presence_server::auth::MIN_ADMIN_TOKEN_CHARS
        );
        return ExitCode::from(2);
    }
    let mut admin_token = args.admin_token.clone();
    if args.demo && admin_token.is_none() {
        admin_token = Some(presence_server::auth::new_token());
    }
    let config = Config {
        listen: args.listen,
        data_dir: args.data_dir,
        admin_token: admin_token.clone(),
        demo: args.demo,
        defaults: Settings {
            active_interval_ms: args.active_interval_ms,
            active_ttl_ms: args.active_ttl_ms,
            background_ttl_ms: args.background_ttl_ms,
            renew_margin_ms: args.renew_margin_ms,
        },
        push: PushConfig {
            webhook_allow: args.push_webhook_allow,
            fcm: args.fcm_credentials.map(|credentials| FcmConfig {
                credentials,
                endpoint: args.fcm_endpoint,
            }),
            apns: args.apns_key.map(|key| ApnsConfig {
                key,
                key_id: args.apns_key_id.unwrap_or_default(),
                team_id: args.apns_team_id.unwrap_or_default(),
                topic: args.apns_topic.unwrap_or_default(),
                endpoint: args.apns_endpoint,
            }),
            ca_file: args.push_ca_file,
        },
        stream_ping: Duration::from_millis(args.stream_ping_ms),
        limits: Limits {
            header_timeout: Duration::from_millis(args.header_timeout_ms),
            idle_timeout: Duration::from_millis(args.idle_timeout_ms),
            request_timeout: Duration::from_millis(args.request_timeout_ms),
            shutdown_grace: Duration::from_millis(args.shutdown_grace_ms),
            password_hash_concurrency: args
                .password_hash_concurrency
                .map(|n| n as usize)
                .unwrap_or_else(Limits::default_hash_concurrency),
            max_connections: args.max_connections as usize,
            max_streams_per_ip: args.max_streams_per_ip as usize,
            max_sessions_per_agent: args.max_sessions_per_agent as usize,
        },
        retention: Retention {
            ended_sessions: Duration::from_millis(args.session_retention_ms),
            status_ops: Duration::from_millis(args.op_retention_ms),
            history: Duration::from_millis(args.history_retention_ms),
        },
        trusted_proxies: args.trusted_proxy,
        cluster,
        webhooks: presence_server::webhooks::backoff::Policy {
            first_retry: Duration::from_millis(args.webhook_retry_ms),
            give_up_after: Duration::from_millis(args.webhook_give_up_ms),
            timeout: Duration::from_millis(args.webhook_timeout_ms),
        },
    };
    let defaults = config.defaults;
    presence_server::process::raise_open_file_limit(config.limits.max_connections);
    let server = match presence_server::start(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("presence-server: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.demo {
        match demo::ensure(server.ops(), defaults).await {
            Ok(key) => {
                let printed = if args.admin_token.is_none() {
                    admin_token.as_deref()
                } else {
                    None
                };
                eprint!("{}", demo::describe(&server.url(), &key, printed));
            }
            Err(e) => {
                eprintln!("presence-server: could not create the demo account: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    presence_server::process::serve_until_signal(server).await;
    ExitCode::SUCCESS
}

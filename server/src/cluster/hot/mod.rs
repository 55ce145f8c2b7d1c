//! The cluster backend's hot state: Redis, shared by every node.
//!
//! # Keys
//! Every key of an account carries its partition's hash tag `{pNN}` ([`partition`]), so each
//! script touches one slot. Per account:
//! - `pr:{pNN}:m:<acc>` meta hash: `cfg` (the account's settings, groups, opening hours and
//!   messages as JSON), `state` (bumped by every change that can move the view), `ver` (the
//!   view version), `view` (its JSON), `view_of` (the `state` it reflects), `res` (versions
//!   reserved in PostgreSQL), `epoch` (a new one each time the account is seeded).
//! - `pr:{pNN}:g:<acc>` agents hash: `p:<agent>` profile JSON (role, groups), `s:<agent>`
//!   status JSON, `sv:<agent>` its version (= PostgreSQL `status_seq`), `o:<agent>` its op id.
//! - `pr:{pNN}:l:<acc>` leases hash: session -> `agent|mode|deadline|push` (mode `a`/`b`,
//!   push `0`/`1`).
//! - `pr:{pNN}:c:<acc>` open device streams per session, over all nodes.
//! - `pr:{pNN}:e:<acc>` the pub/sub channel of the account's events ([`Event`]).
//!
//! Per partition, `pr:{pNN}:dl` is the deadline index: `s <acc> <session>` at its lease end,
//! `r <acc> <session>` at its renew time, `f <acc>` at the next opening-hours boundary.
//!
//! # Guarantees
//! - Each operation is one script, atomic for its account. Scripts read the time with Redis
//!   `TIME`, so node clocks never end a lease. Every time a script reports is shown to the
//!   node's clock ([`Clock::follow`]), so what the node times itself (a status change's
//!   clamp, a session's end) is never before a `server_time` it already answered.
//! - `sweep` removes what it reports: when several nodes sweep one partition, each lease end
//!   is reported to exactly one of them, and published once.
//! - A script that finds its account unseeded (Redis restarted empty) fails with `NOSEED`;
//!   the caller seeds the account from PostgreSQL ([`Hot::seed`]) and runs it again.
//! - The deadline index holds each lease's current end: a heartbeat sets it later, or
//!   earlier (a session back in the foreground gets the shorter active lease), so the
//!   sweeper finds every lease end on time and renewals need no broadcast.
//!
//! # Files
//! - `keys.rs`: partitions and key names.
//! - `codec.rs`: the encodings of leases, profiles and events; readers of script replies.
//! - `scripts.rs`: the Lua scripts (`lua/`).
//! - `leases.rs`: a session's lease: start, heartbeat, end, streams, push, auth.
//! - `accounts.rs`: seeding, statuses, profiles, config, opening-hours boundaries.
//! - `views.rs`: the snapshot the view is computed from, and the view's conditional write.
//! - `sweep.rs`: the sweep of a partition's deadline index.

use std::time::{Duration, Instant};

use redis::Value;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::backend::{BackendError, BackendResult};
use crate::clock::Clock;
use crate::metrics::StoreMetrics;

mod accounts;
mod codec;
mod keys;
mod leases;
mod scripts;
mod sweep;
#[cfg(test)]
mod tests;
mod views;

pub use codec::{Event, Lease, Profile};
pub use keys::{Keys, PARTITIONS, deadlines_key, partition};
pub use leases::Beat;
pub use scripts::heartbeat_script_source;
pub use sweep::Swept;
pub use views::Snapshot;

use scripts::Scripts;

const NOSEED: &str = "NOSEED";

/// A store URL fit for a log or an error: its password, if any, replaced by `***`.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod redaction {
    #[test]
    fn a_store_urls_password_never_shows() {
        let cases = [
            ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
            (
                "postgres://app:p@ss@db/presence",
                "postgres://app:***@db/presence",
            ),
            ("redis://cache:6379/", "redis://cache:6379/"),
            ("not a url", "not a url"),
        ];
        for (url, want) in cases {
            assert_eq!(super::redacted(url), want);
        }
    }
}

/// Maps a Redis error: unreachable is `Unavailable`, anything else a logged failure.
pub fn redis_err(e: redis::RedisError) -> BackendError {
    if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() {
        tracing::warn!(error = %e, "Redis is out of reach");
        BackendError::unavailable("the hot store is out of reach; retry in a moment", 1)
    } else {
        BackendError::internal(format_args!("redis: {e}"))
    }
}

fn is_noseed(e: &redis::RedisError) -> bool {
    e.to_string().contains(NOSEED)
}

/// One Redis, or a Redis Cluster (routed by each command's first key; every key of one
/// script shares a hash tag, so a script runs on the one primary that holds its slot).
#[derive(Clone)]
pub enum Conn {
    Single(ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// A handle on Redis: one multiplexed connection (or one per cluster node) that reconnects
/// by itself.
#[derive(Clone)]
pub struct Hot {
    conn: Conn,
    /// Where pub/sub connections go: the Redis, or each seed node of a cluster in turn (a
    /// cluster carries every `PUBLISH` to every node).
    pubsub: Vec<redis::Client>,
    scripts: std::sync::Arc<Scripts>,
    metrics: std::sync::Arc<StoreMetrics>,
    /// The node's clock, moved forward to each Redis `TIME` a script reports.
    clock: Clock,
}

/// Why a script did not run: the account must be seeded first, or Redis failed.
pub enum HotError {
    NoSeed,
    Redis(redis::RedisError),
}

impl From<redis::RedisError> for HotError {
    fn from(e: redis::RedisError) -> Self {
        if is_noseed(&e) {
            HotError::NoSeed
        } else {
            HotError::Redis(e)
        }
    }
}

pub type HotResult<T> = Result<T, HotError>;

impl Hot {
    /// Connects to one Redis (one URL) or a Redis Cluster (its seed nodes), over TLS for
    /// `rediss://` URLs ([`crate::cluster::tls::hot`]); connections come back by themselves
    /// after a failure.
    pub async fn connect(
        urls: &[String],
        ca_file: Option<&std::path::Path>,
        metrics: std::sync::Arc<StoreMetrics>,
        clock: Clock,
    ) -> Result<Hot, String> {
        use crate::cluster::tls::hot::{RedisTls, cannot_reach};
        let tls = RedisTls::new(urls, ca_file)?;
        let pubsub = urls
            .iter()
            .map(|u| tls.client(u))
            .collect::<Result<Vec<_>, _>>()?;
        let conn = match urls {
            [] => return Err("--redis-url is empty".into()),
            [url] => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(2)))
                    .set_response_timeout(Some(Duration::from_secs(2)))
                    .set_number_of_retries(2);
                Conn::Single(
                    ConnectionManager::new_with_config(pubsub[0].clone(), config)
                        .await
                        .map_err(|e| {
                            cannot_reach(&format!("Redis at {}", redacted(url)), urls, &e)
                        })?,
                )
            }
            seeds => {
                let builder =
                    redis::cluster::ClusterClient::builder(seeds.iter().map(String::as_str))
                        .connection_timeout(Duration::from_secs(2))
                        .response_timeout(Duration::from_secs(2))
                        .retries(4);
                let client = tls
                    .cluster(builder)
                    .build()
                    .map_err(|e| format!("--redis-url: not a Redis Cluster's seeds: {e}"))?;
                Conn::Cluster(
                    client
                        .get_async_connection()
                        .await
                        .map_err(|e| cannot_reach("the Redis Cluster", urls, &e))?,
                )
            }
        };
        Ok(Hot {
            conn,
            pubsub,
            scripts: std::sync::Arc::new(Scripts::new()),
            metrics,
            clock,
        })
    }

    /// A Redis `TIME` a script reported, after the node's clock has caught up with it.
    fn seen(&self, now: i64) -> i64 {
        self.clock.follow(now);
        now
    }

    /// One round trip, counted and timed into the store metrics.
    async fn timed<T>(
        &self,
        f: impl Future<Output = redis::RedisResult<T>>,
    ) -> redis::RedisResult<T> {
        let start = Instant::now();
        let r = f.await;
        let m = &self.metrics;
        m.redis_calls.inc();
        m.redis_seconds.inc_by(start.elapsed().as_secs_f64());
        if let Err(e) = &r
            && !is_noseed(e)
        {
            m.redis_errors.inc();
        }
        r
    }

    /// The shared connection, for scripts kept elsewhere (the login limits).
    pub fn connection(&self) -> Conn {
        self.conn.clone()
    }

    /// Where the pub/sub reader connects, in the order it tries them.
    pub fn pubsub_clients(&self) -> &[redis::Client] {
        &self.pubsub
    }

    async fn run(&self, inv: &mut redis::ScriptInvocation<'_>) -> HotResult<Value> {
        let mut c = self.conn.clone();
        Ok(self.timed(inv.invoke_async(&mut c)).await?)
    }

    /// A lookup entry that never changes once made (a widget key's account, a token's
    /// session), so a node can answer it while PostgreSQL is out of reach.
    pub async fn lookup(&self, key: &str) -> BackendResult<Option<String>> {
        let mut c = self.conn.clone();
        let mut cmd = redis::cmd("GET");
        cmd.arg(format!("pr:x:{key}"));
        self.timed(cmd.query_async(&mut c)).await.map_err(redis_err)
    }

    /// Stores a lookup entry (see [`Hot::lookup`]), to be forgotten after `ttl_secs`.
    pub async fn put_lookup(&self, key: &str, value: &str, ttl_secs: u64) -> BackendResult<()> {
        let mut c = self.conn.clone();
        let mut cmd = redis::cmd("SET");
        cmd.arg(format!("pr:x:{key}"))
            .arg(value)
            .arg("EX")
            .arg(ttl_secs.max(1));
        self.timed(cmd.query_async::<()>(&mut c))
            .await
            .map_err(redis_err)
    }

    /// `PUBLISH` (the pub/sub reader's probe of its own connection).
    pub async fn publish(&self, channel: &str, message: &str) -> BackendResult<()> {
        let mut c = self.conn.clone();
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(channel).arg(message);
        self.timed(cmd.query_async::<i64>(&mut c))
            .await
            .map(|_| ())
            .map_err(redis_err)
    }

    /// `PING`, for `/healthz`.
    pub async fn ping(&self) -> bool {
        let mut c = self.conn.clone();
        self.timed(redis::cmd("PING").query_async::<String>(&mut c))
            .await
            .is_ok()
    }
}

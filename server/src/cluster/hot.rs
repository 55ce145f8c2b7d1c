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

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, Value};
use serde::{Deserialize, Serialize};

use presence_protocol::{ChatboxView, EndReason, Mode, StatusView};

use crate::backend::{BackendError, BackendResult};
use crate::clock::Clock;
use crate::metrics::StoreMetrics;

/// Partitions of the account space; a node sweeps each one.
pub const PARTITIONS: u32 = 64;

/// The partition of an account (FNV-1a of its id).
pub fn partition(account_id: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in account_id.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h % PARTITIONS
}

fn tag(p: u32) -> String {
    format!("pr:{{p{p:02}}}")
}

/// The keys of one account.
#[derive(Debug, Clone)]
pub struct Keys {
    pub meta: String,
    pub agents: String,
    pub leases: String,
    pub conn: String,
    pub deadlines: String,
    pub channel: String,
}

impl Keys {
    pub fn of(account_id: &str) -> Keys {
        let t = tag(partition(account_id));
        Keys {
            meta: format!("{t}:m:{account_id}"),
            agents: format!("{t}:g:{account_id}"),
            leases: format!("{t}:l:{account_id}"),
            conn: format!("{t}:c:{account_id}"),
            deadlines: format!("{t}:dl"),
            channel: format!("{t}:e:{account_id}"),
        }
    }
}

/// The deadline index of a partition.
pub fn deadlines_key(p: u32) -> String {
    format!("{}:dl", tag(p))
}

/// An event on an account's channel, as every node's replica reads it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub enum Event {
    View {
        view: ChatboxView,
    },
    Status {
        agent: String,
        status: StatusView,
    },
    Ended {
        agent: String,
        session: String,
        reason: EndReason,
    },
}

/// A lease as Redis holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    pub agent: String,
    pub mode: Mode,
    pub until: i64,
    pub push: bool,
}

impl Lease {
    pub fn encode(&self) -> String {
        let m = if self.mode == Mode::Background {
            'b'
        } else {
            'a'
        };
        format!("{}|{m}|{}|{}", self.agent, self.until, self.push as u8)
    }

    pub fn decode(s: &str) -> Option<Lease> {
        let mut it = s.split('|');
        let agent = it.next()?.to_owned();
        let mode = match it.next()? {
            "b" => Mode::Background,
            "a" => Mode::Active,
            _ => return None,
        };
        let until = it.next()?.parse().ok()?;
        let push = it.next()? == "1";
        Some(Lease {
            agent,
            mode,
            until,
            push,
        })
    }
}

/// An agent's profile as the views need it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Profile {
    pub role: presence_protocol::Role,
    pub groups: Vec<String>,
}

/// Everything about an account that the rules need, read in one script.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub now: i64,
    pub cfg: Option<String>,
    pub state: i64,
    pub ver: i64,
    pub view: Option<String>,
    pub view_of: i64,
    pub reserved: i64,
    /// agent -> (profile, status)
    pub agents: Vec<(String, Profile, StatusView)>,
    pub leases: Vec<(String, Lease)>,
    /// session -> open device streams
    pub conn: Vec<(String, i64)>,
}

/// What a sweep of one partition found due.
#[derive(Debug, Default)]
pub struct Swept {
    pub now: i64,
    /// The partition's next deadline, if any.
    pub next: Option<i64>,
    /// (account, session, agent, lease end) whose lease ended: removed and published.
    pub ended: Vec<(String, String, String, i64)>,
    /// (account, session, lease, renew time) whose renew time came.
    pub renew: Vec<(String, String, Lease, i64)>,
    /// Accounts whose opening-hours boundary came.
    pub flips: Vec<String>,
}

/// A heartbeat's outcome.
pub enum Beat {
    Renewed {
        until: i64,
        now: i64,
        status_version: i64,
        mode_changed: bool,
        push: bool,
    },
    /// No lease: the session ended.
    Gone,
    /// The lease's end has passed; the sweeper ends it.
    Lapsed,
}

const NOSEED: &str = "NOSEED";

/// The heartbeat script's source as Redis runs it (the benchmark loads the same script
/// into `redis-benchmark` as its floor). KEYS: meta leases deadlines agents; ARGV: session,
/// mode (`a`/`b`), active ttl, background ttl, renew margin, account id.
///
/// The script applies `rules::renewed_lease_until` itself, because the renewal depends on the
/// lease as it is at that instant and only a script reads and writes it atomically; the
/// rule's shared table (`rules::renewal_cases`) pins the two together in
/// `tests/tests/lease_script.rs`.
pub fn heartbeat_script_source() -> String {
    format!("{GUARD}{HEARTBEAT}")
}

const HEARTBEAT: &str = include_str!("lua/heartbeat.lua");

const GUARD: &str = include_str!("lua/guard.lua");

fn script(body: &str) -> Script {
    Script::new(&format!("{GUARD}{body}"))
}

struct Scripts {
    seed: Script,
    start_session: Script,
    heartbeat: Script,
    end_session: Script,
    set_status: Script,
    snapshot: Script,
    put_view: Script,
    put_profile: Script,
    remove_agent: Script,
    put_cfg: Script,
    conn: Script,
    lease_push: Script,
    auth: Script,
    sweep: Script,
}

impl Scripts {
    fn new() -> Scripts {
        Scripts {
            seed: Script::new(include_str!("lua/seed.lua")),
            start_session: script(include_str!("lua/start_session.lua")),
            // KEYS meta leases deadlines agents; ARGV session mode(a|b) active_ttl
            // background_ttl renew_margin acc. The lease end is rules::renewed_lease_until,
            // pinned against it by the cluster tests.
            heartbeat: script(HEARTBEAT),
            end_session: script(include_str!("lua/end_session.lua")),
            set_status: script(include_str!("lua/set_status.lua")),
            snapshot: script(include_str!("lua/snapshot.lua")),
            put_view: script(include_str!("lua/put_view.lua")),
            put_profile: script(include_str!("lua/put_profile.lua")),
            remove_agent: script(include_str!("lua/remove_agent.lua")),
            put_cfg: script(include_str!("lua/put_cfg.lua")),
            conn: script(include_str!("lua/conn.lua")),
            lease_push: script(include_str!("lua/lease_push.lua")),
            auth: script(include_str!("lua/auth.lua")),
            sweep: Script::new(include_str!("lua/sweep.lua")),
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

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(n) => *n,
        Value::BulkString(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .map_or(0, |f| f as i64),
        Value::SimpleString(s) => s.parse::<f64>().map_or(0, |f| f as i64),
        _ => 0,
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(n) => n.to_string(),
        _ => String::new(),
    }
}

fn items(v: &Value) -> &[Value] {
    match v {
        Value::Array(a) => a,
        _ => &[],
    }
}

fn pairs(v: &Value) -> impl Iterator<Item = (String, String)> + '_ {
    items(v).chunks(2).filter_map(|c| match c {
        [k, v] => Some((text(k), text(v))),
        _ => None,
    })
}

impl Hot {
    /// Connects to one Redis (one URL) or a Redis Cluster (its seed nodes); connections come
    /// back by themselves after a failure.
    pub async fn connect(
        urls: &[String],
        metrics: std::sync::Arc<StoreMetrics>,
        clock: Clock,
    ) -> Result<Hot, String> {
        let pubsub = urls
            .iter()
            .map(|u| {
                redis::Client::open(u.as_str())
                    .map_err(|e| format!("--redis-url {u:?} is not a Redis URL: {e}"))
            })
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
                        .map_err(|e| format!("cannot reach Redis at {url}: {e}"))?,
                )
            }
            seeds => {
                let client =
                    redis::cluster::ClusterClient::builder(seeds.iter().map(String::as_str))
                        .connection_timeout(Duration::from_secs(2))
                        .response_timeout(Duration::from_secs(2))
                        .retries(4)
                        .build()
                        .map_err(|e| format!("--redis-url: not a Redis Cluster's seeds: {e}"))?;
                Conn::Cluster(
                    client
                        .get_async_connection()
                        .await
                        .map_err(|e| format!("cannot reach the Redis Cluster: {e}"))?,
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
        m.redis_calls.fetch_add(1, Relaxed);
        m.redis_us
            .fetch_add(start.elapsed().as_micros() as u64, Relaxed);
        if let Err(e) = &r
            && !is_noseed(e)
        {
            m.redis_errors.fetch_add(1, Relaxed);
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

    /// Writes an account's config, agents and live leases, unless it is seeded already.
    /// `version` is where view versions go on from: the reservation, so they never repeat.
    #[allow(clippy::too_many_arguments)]
    pub async fn seed(
        &self,
        account_id: &str,
        cfg: &str,
        version: i64,
        agents: &[(String, String, String, i64, String)],
        leases: &[(String, Lease)],
    ) -> BackendResult<()> {
        let k = Keys::of(account_id);
        let mut inv = self.scripts.seed.prepare_invoke();
        inv.key(&k.meta)
            .key(&k.agents)
            .key(&k.leases)
            .key(&k.deadlines)
            .arg(cfg)
            .arg(version)
            .arg(uuid::Uuid::new_v4().simple().to_string())
            .arg(account_id)
            .arg(agents.len());
        for (id, profile, status, version, op) in agents {
            inv.arg(id).arg(profile).arg(status).arg(*version).arg(op);
        }
        for (sid, l) in leases {
            inv.arg(sid).arg(l.encode()).arg(l.until);
        }
        let mut c = self.conn.clone();
        self.timed(inv.invoke_async::<Value>(&mut c))
            .await
            .map_err(redis_err)?;
        Ok(())
    }

    pub async fn start_session(&self, account_id: &str, sid: &str, l: &Lease) -> HotResult<i64> {
        let k = Keys::of(account_id);
        let v = self
            .run(
                self.scripts
                    .start_session
                    .key(&k.meta)
                    .key(&k.leases)
                    .key(&k.deadlines)
                    .arg(sid)
                    .arg(l.encode())
                    .arg(l.until)
                    .arg(account_id),
            )
            .await?;
        Ok(self.seen(int(&v)))
    }

    pub async fn heartbeat(
        &self,
        account_id: &str,
        sid: &str,
        mode: Mode,
        settings: &presence_protocol::Settings,
    ) -> HotResult<Beat> {
        let k = Keys::of(account_id);
        let v = self
            .run(
                self.scripts
                    .heartbeat
                    .key(&k.meta)
                    .key(&k.leases)
                    .key(&k.deadlines)
                    .key(&k.agents)
                    .arg(sid)
                    .arg(if mode == Mode::Background { "b" } else { "a" })
                    .arg(settings.active_ttl_ms)
                    .arg(settings.background_ttl_ms)
                    .arg(settings.renew_margin_ms)
                    .arg(account_id),
            )
            .await?;
        let a = items(&v);
        Ok(match a.first().map(int) {
            Some(-1) => Beat::Gone,
            Some(-2) => Beat::Lapsed,
            _ => Beat::Renewed {
                until: a.first().map_or(0, int),
                now: self.seen(a.get(1).map_or(0, int)),
                status_version: a.get(2).map_or(0, int),
                mode_changed: a.get(3).map_or(0, int) == 1,
                push: a.get(4).map_or(0, int) == 1,
            },
        })
    }

    /// Removes a lease and publishes `event`; false if there was none.
    pub async fn end_session(&self, account_id: &str, sid: &str, event: &Event) -> HotResult<bool> {
        let k = Keys::of(account_id);
        let ev = serde_json::to_string(event).unwrap_or_default();
        let v = self
            .run(
                self.scripts
                    .end_session
                    .key(&k.meta)
                    .key(&k.leases)
                    .key(&k.deadlines)
                    .key(&k.conn)
                    .arg(sid)
                    .arg(account_id)
                    .arg(ev)
                    .arg(&k.channel),
            )
            .await?;
        Ok(int(&v) == 1)
    }

    /// Applies a committed status if its version is newer than Redis's and publishes it;
    /// true if it applied.
    pub async fn set_status(
        &self,
        account_id: &str,
        agent: &str,
        status: &StatusView,
        op: &str,
    ) -> HotResult<bool> {
        let k = Keys::of(account_id);
        let sj = serde_json::to_string(status).unwrap_or_default();
        let ev = serde_json::to_string(&Event::Status {
            agent: agent.to_owned(),
            status: status.clone(),
        })
        .unwrap_or_default();
        let v = self
            .run(
                self.scripts
                    .set_status
                    .key(&k.meta)
                    .key(&k.agents)
                    .arg(agent)
                    .arg(status.version)
                    .arg(sj)
                    .arg(op)
                    .arg(ev)
                    .arg(&k.channel),
            )
            .await?;
        Ok(int(&v) == 1)
    }

    pub async fn snapshot(&self, account_id: &str) -> HotResult<Snapshot> {
        let k = Keys::of(account_id);
        let v = self
            .run(
                self.scripts
                    .snapshot
                    .key(&k.meta)
                    .key(&k.agents)
                    .key(&k.leases)
                    .key(&k.conn),
            )
            .await?;
        let a = items(&v);
        let mut s = Snapshot {
            now: self.seen(a.first().map_or(0, int)),
            ..Snapshot::default()
        };
        if let Some(meta) = a.get(1) {
            for (f, v) in pairs(meta) {
                match f.as_str() {
                    "cfg" => s.cfg = Some(v),
                    "state" => s.state = v.parse().unwrap_or(0),
                    "ver" => s.ver = v.parse().unwrap_or(0),
                    "view" => s.view = Some(v),
                    "view_of" => s.view_of = v.parse().unwrap_or(0),
                    "res" => s.reserved = v.parse().unwrap_or(0),
                    _ => {}
                }
            }
        }
        if let Some(g) = a.get(2) {
            let mut profiles = Vec::new();
            let mut statuses = std::collections::HashMap::new();
            for (f, v) in pairs(g) {
                if let Some(id) = f.strip_prefix("p:") {
                    if let Ok(p) = serde_json::from_str::<Profile>(&v) {
                        profiles.push((id.to_owned(), p));
                    }
                } else if let Some(id) = f.strip_prefix("s:")
                    && let Ok(st) = serde_json::from_str::<StatusView>(&v)
                {
                    statuses.insert(id.to_owned(), st);
                }
            }
            s.agents = profiles
                .into_iter()
                .filter_map(|(id, p)| {
                    let st = statuses.remove(&id)?;
                    Some((id, p, st))
                })
                .collect();
        }
        if let Some(l) = a.get(3) {
            s.leases = pairs(l)
                .filter_map(|(sid, v)| Some((sid, Lease::decode(&v)?)))
                .collect();
        }
        if let Some(c) = a.get(4) {
            s.conn = pairs(c)
                .map(|(sid, n)| (sid, n.parse().unwrap_or(0)))
                .collect();
        }
        Ok(s)
    }

    /// Stores and publishes a view computed from `state`, unless the account changed since
    /// (`Ok(false)`: compute again). `None` marks `state` reflected by the current view.
    pub async fn put_view(
        &self,
        account_id: &str,
        state: i64,
        view: Option<&ChatboxView>,
        reserved: i64,
    ) -> HotResult<bool> {
        let k = Keys::of(account_id);
        let (vj, ev, ver) = match view {
            Some(v) => (
                serde_json::to_string(v).unwrap_or_default(),
                serde_json::to_string(&Event::View { view: v.clone() }).unwrap_or_default(),
                v.version,
            ),
            None => (String::new(), String::new(), 0),
        };
        let v = self
            .run(
                self.scripts
                    .put_view
                    .key(&k.meta)
                    .arg(state)
                    .arg(ver)
                    .arg(vj)
                    .arg(ev)
                    .arg(&k.channel)
                    .arg(reserved),
            )
            .await?;
        Ok(int(&v) != 0)
    }

    /// Writes an agent's profile (and, for a new agent, its first status).
    pub async fn put_profile(
        &self,
        account_id: &str,
        agent: &str,
        profile: &Profile,
        first_status: Option<&StatusView>,
    ) -> HotResult<()> {
        let k = Keys::of(account_id);
        let pj = serde_json::to_string(profile).unwrap_or_default();
        let mut inv = self.scripts.put_profile.key(&k.meta);
        inv.key(&k.agents).arg(agent).arg(pj);
        if let Some(s) = first_status {
            inv.arg(serde_json::to_string(s).unwrap_or_default())
                .arg(s.version)
                .arg("");
        }
        self.run(&mut inv).await?;
        Ok(())
    }

    pub async fn remove_agent(&self, account_id: &str, agent: &str) -> HotResult<()> {
        let k = Keys::of(account_id);
        self.run(
            self.scripts
                .remove_agent
                .key(&k.meta)
                .key(&k.agents)
                .arg(agent),
        )
        .await?;
        Ok(())
    }

    pub async fn put_cfg(&self, account_id: &str, cfg: &str) -> HotResult<()> {
        let k = Keys::of(account_id);
        self.run(
            self.scripts
                .put_cfg
                .key(&k.meta)
                .key(&k.deadlines)
                .arg(cfg)
                .arg(account_id),
        )
        .await?;
        Ok(())
    }

    /// Schedules the account's next opening-hours boundary.
    pub async fn schedule_flip(&self, account_id: &str, at: i64) -> BackendResult<()> {
        let k = Keys::of(account_id);
        let mut c = self.conn.clone();
        let mut cmd = redis::cmd("ZADD");
        cmd.arg(&k.deadlines).arg(at).arg(format!("f {account_id}"));
        self.timed(cmd.query_async::<()>(&mut c))
            .await
            .map_err(redis_err)
    }

    /// Counts a device stream of `sid` opening (+1) or closing (-1).
    pub async fn conn(&self, account_id: &str, sid: &str, delta: i64) -> HotResult<i64> {
        let k = Keys::of(account_id);
        let v = self
            .run(
                self.scripts
                    .conn
                    .key(&k.meta)
                    .key(&k.conn)
                    .key(&k.leases)
                    .arg(sid)
                    .arg(delta),
            )
            .await?;
        Ok(int(&v))
    }

    /// Records whether a session's lease can be renewed by push.
    pub async fn lease_push(&self, account_id: &str, sid: &str, push: bool) -> HotResult<()> {
        let k = Keys::of(account_id);
        self.run(
            self.scripts
                .lease_push
                .key(&k.meta)
                .key(&k.leases)
                .key(&k.deadlines)
                .arg(sid)
                .arg(if push { "1" } else { "0" })
                .arg(account_id),
        )
        .await?;
        Ok(())
    }

    /// The account's stored view, if any.
    pub async fn view(&self, account_id: &str) -> BackendResult<Option<ChatboxView>> {
        let k = Keys::of(account_id);
        let mut c = self.conn.clone();
        let mut cmd = redis::cmd("HGET");
        cmd.arg(&k.meta).arg("view");
        let v: Option<String> = self
            .timed(cmd.query_async(&mut c))
            .await
            .map_err(redis_err)?;
        Ok(v.and_then(|v| serde_json::from_str(&v).ok()))
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

    /// The account's stored config JSON, if seeded.
    pub async fn cfg(&self, account_id: &str) -> BackendResult<Option<String>> {
        let k = Keys::of(account_id);
        let mut c = self.conn.clone();
        let mut cmd = redis::cmd("HGET");
        cmd.arg(&k.meta).arg("cfg");
        self.timed(cmd.query_async(&mut c)).await.map_err(redis_err)
    }

    /// The time, a session's lease and its agent's profile.
    pub async fn auth(
        &self,
        account_id: &str,
        sid: &str,
        agent: &str,
    ) -> HotResult<(i64, Option<Lease>, Option<Profile>)> {
        let k = Keys::of(account_id);
        let v = self
            .run(
                self.scripts
                    .auth
                    .key(&k.meta)
                    .key(&k.leases)
                    .key(&k.agents)
                    .arg(sid)
                    .arg(agent),
            )
            .await?;
        let a = items(&v);
        let now = self.seen(a.first().map_or(0, int));
        let lease = a.get(1).and_then(|l| Lease::decode(&text(l)));
        let profile = a
            .get(2)
            .and_then(|p| serde_json::from_str::<Profile>(&text(p)).ok());
        Ok((now, lease, profile))
    }

    /// Removes and reports what is due in partition `p`.
    pub async fn sweep(&self, p: u32) -> BackendResult<Swept> {
        let mut c = self.conn.clone();
        let mut inv = self.scripts.sweep.key(deadlines_key(p));
        inv.arg(tag(p));
        let v: Value = self
            .timed(inv.invoke_async(&mut c))
            .await
            .map_err(redis_err)?;
        let a = items(&v);
        let mut out = Swept {
            now: self.seen(a.first().map_or(0, int)),
            next: a.get(1).map(int).filter(|n| *n >= 0),
            ..Swept::default()
        };
        for item in a.get(2).map(items).unwrap_or(&[]) {
            let f: Vec<String> = items(item).iter().map(text).collect();
            match f.first().map(String::as_str) {
                Some("s") if f.len() == 5 => out.ended.push((
                    f[1].clone(),
                    f[2].clone(),
                    f[3].clone(),
                    f[4].parse::<f64>().map_or(0, |x| x as i64),
                )),
                Some("r") if f.len() == 5 => {
                    if let Some(l) = Lease::decode(&f[3]) {
                        let at = f[4].parse::<f64>().map_or(0, |x| x as i64);
                        out.renew.push((f[1].clone(), f[2].clone(), l, at));
                    }
                }
                Some("f") if f.len() == 2 => out.flips.push(f[1].clone()),
                _ => {}
            }
        }
        Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_survive_their_encoding() {
        let l = Lease {
            agent: "agt_1".into(),
            mode: Mode::Background,
            until: 1_764_650_000_123,
            push: true,
        };
        assert_eq!(Lease::decode(&l.encode()), Some(l));
    }

    #[test]
    fn partitions_spread_and_stay_put() {
        let ps: std::collections::HashSet<u32> =
            (0..1000).map(|i| partition(&format!("acc_{i}"))).collect();
        assert_eq!(ps.len(), PARTITIONS as usize);
        assert_eq!(partition("acc_x"), partition("acc_x"));
        assert!(
            Keys::of("acc_x")
                .meta
                .contains(&format!("{{p{:02}}}", partition("acc_x")))
        );
    }
}

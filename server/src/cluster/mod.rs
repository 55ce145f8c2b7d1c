//! The cluster backend: any number of interchangeable nodes on PostgreSQL and Redis.
//!
//! # Shape
//! Nothing is owned by a node. PostgreSQL ([`pg`]) holds what must survive; Redis ([`hot`])
//! holds leases, statuses as the views need them, view versions and the deadline index, and
//! carries each account's events between nodes. A node keeps only caches it can lose and
//! the fan-out to its own streams ([`fanout`]).
//!
//! # The write path
//! The domain rules are [`crate::rules`] and [`presence_protocol::resolve`], as in the
//! embedded backend. A status change is decided and committed in PostgreSQL (the agent's row
//! locked, the op id stored), then applied to Redis by a script that takes it only if its
//! version is newer, which also publishes it. Any change that can move the chat box view then
//! [`Cluster::refresh_view`]: read the account in one script, resolve the view, store and
//! publish it only if the account did not change meanwhile (else compute again). So every
//! node publishes views in one order and a version is never served twice.
//!
//! # Faults
//! - A node dies: nothing is lost (every acknowledged change is in PostgreSQL); a status it
//!   committed but had not applied to Redis is applied by the reconciler of any node
//!   ([`sweep`]) within seconds.
//! - Redis restarts empty: the first script that touches an account finds it unseeded and the
//!   account is seeded from PostgreSQL: statuses, live sessions with at least an active lease
//!   ([`rules::restored_lease_until`]), view versions from the reservation (they never go
//!   backwards, [`rules::versions_to_reserve`]).
//! - PostgreSQL or Redis out of reach: `503 unavailable`; both clients reconnect by themselves.
//!
//! # Files
//! - `pg/`: schema, migrations, queries.
//! - `hot/`: Redis keys, encodings and scripts.
//! - `fanout.rs`: one pub/sub connection per node, a replica per account with local streams.
//! - `sweep.rs`: the sweeper (lease ends, renew pushes, opening-hours flips) and the
//!   reconciler.
//! - `ops.rs`: the [`Backend`](crate::backend::Backend) operations.
//! - `tls/`: TLS to PostgreSQL and Redis.

/// Runs a Redis script of an account (`$call`, a future made again for the retry),
/// seeding the account from PostgreSQL first if Redis lacks it: `BackendResult<T>`.
macro_rules! seeded {
    ($inner:expr, $acc:expr, $call:expr) => {{
        match $call.await {
            Ok(v) => Ok(v),
            Err($crate::cluster::hot::HotError::Redis(e)) => {
                Err($crate::cluster::hot::redis_err(e))
            }
            Err($crate::cluster::hot::HotError::NoSeed) => match $inner.seed($acc).await {
                Err(e) => Err(e),
                Ok(()) => match $call.await {
                    Ok(v) => Ok(v),
                    Err(e) => Err($crate::cluster::hot_err(e)),
                },
            },
        }
    }};
}

mod cached;
mod edits;
mod fanout;
pub mod hot;
pub mod limits;
mod ops;
pub mod pg;
mod sessions;
mod sweep;
pub mod tls;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use presence_protocol::{
    AccountSettings, AgentAvailability, ChatboxView, Group, OpeningHours, PushBody, PushPayload,
    StatusView, WeeklySchedule, resolve,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use crate::Retention;
use crate::auth::TokenHash;
use crate::backend::{BackendError, BackendResult};
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::push::{PushJob, Pusher};
use crate::rules;

use hot::{Hot, HotError, Lease, Profile};
use pg::Pg;

/// Where the cluster's stores are, and how they are reached (TLS: [`tls`]).
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// With `sslmode=` and `sslrootcert=` ([`tls::pg`]).
    pub postgres_url: String,
    /// One URL: a single Redis; several: the seed nodes of a Redis Cluster. `rediss://` for
    /// TLS.
    pub redis_urls: Vec<String>,
    /// `--redis-ca-file`: the CA a `rediss://` Redis's certificate must chain to.
    pub redis_ca_file: Option<std::path::PathBuf>,
}

impl ClusterConfig {
    /// What can be checked before connecting (a usage error): the PostgreSQL URL and its
    /// `sslmode`, and that a Redis CA file goes with `rediss://` URLs.
    pub fn check(&self) -> Result<(), String> {
        tls::pg::parse(&self.postgres_url)?;
        tls::hot::check(&self.redis_urls, self.redis_ca_file.as_deref())
    }
}

/// An account's settings as every node reads them from Redis.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountCfg {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub widget_key: String,
    pub settings: AccountSettings,
    pub opening_hours: OpeningHours,
    pub groups: Vec<Group>,
    #[serde(default)]
    pub custom_statuses: Vec<presence_protocol::CustomStatus>,
}

impl AccountCfg {
    fn from_row(a: &pg::AccountRow) -> AccountCfg {
        AccountCfg {
            id: a.id.clone(),
            slug: a.slug.clone(),
            name: a.name.clone(),
            widget_key: a.widget_key.clone(),
            settings: a.settings.clone(),
            opening_hours: a.opening_hours.clone(),
            groups: a.groups.clone(),
            custom_statuses: a.custom_statuses.clone(),
        }
    }

    fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// How long a node trusts its cached copy of an account's settings (a change made on
/// another node reaches this node's heartbeats within this time).
const CFG_CACHE: Duration = Duration::from_secs(1);

/// A token's session, which never changes once made.
#[derive(Clone)]
struct TokenEntry {
    session_id: Arc<str>,
    agent_id: Arc<str>,
    account_id: Arc<str>,
}

/// Cached tokens per node before the cache starts over.
const TOKEN_CACHE_MAX: usize = 200_000;

/// Tokens and widget keys PostgreSQL did not know, remembered so that a flood of made-up
/// ones costs one query each per [`UNKNOWN_TTL`], not one per request. Safe to remember:
/// both are random and made before anyone can hold them, so an unknown one never becomes
/// known. Bounded: it starts over past [`TOKEN_CACHE_MAX`] entries.
#[derive(Default)]
struct Unknown {
    seen: Mutex<HashMap<String, Instant>>,
}

const UNKNOWN_TTL: Duration = Duration::from_secs(60);

impl Unknown {
    fn has(&self, key: &str) -> bool {
        self.seen
            .lock()
            .get(key)
            .is_some_and(|at| at.elapsed() < UNKNOWN_TTL)
    }

    fn note(&self, key: String) {
        let mut seen = self.seen.lock();
        if seen.len() >= TOKEN_CACHE_MAX {
            seen.clear();
        }
        seen.insert(key, Instant::now());
    }
}

pub(crate) struct Inner {
    pg: Pg,
    hot: Hot,
    clock: Clock,
    pusher: Arc<Pusher>,
    retention: Retention,
    metrics: Arc<Metrics>,
    fanout: fanout::Fanout,
    tokens: Mutex<HashMap<TokenHash, TokenEntry>>,
    cfgs: Mutex<HashMap<String, (Instant, Arc<AccountCfg>)>>,
    unknown: Unknown,
    /// Bumped by every config this node stores: a read that began before it is not cached.
    cfg_gen: AtomicU64,
    widget_keys: Mutex<HashMap<String, String>>,
    /// Tells the sweeper of a new deadline in a partition.
    deadline_tx: mpsc::UnboundedSender<(u32, i64)>,
    device_streams: AtomicU64,
    widget_streams: AtomicU64,
    /// The store-wide counts `/metrics` shows: (live sessions, ended tokens, accounts).
    store_counts: cached::Cached<(u64, u64, u64)>,
    /// What `/healthz` answers.
    health: cached::Cached<crate::backend::BackendResult<()>>,
}

/// How often `/metrics` may count rows in PostgreSQL.
const COUNTS_EVERY: std::time::Duration = std::time::Duration::from_secs(2);
/// How often `/healthz` may ping the stores.
const HEALTH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// A presence-server node on PostgreSQL and Redis. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

impl Cluster {
    /// Connects to both stores (migrating PostgreSQL) and starts this node's sweeper,
    /// reconciler and pub/sub reader, which stop when `stop` turns true.
    pub async fn connect(
        config: &ClusterConfig,
        pusher: Arc<Pusher>,
        retention: Retention,
        metrics: Arc<Metrics>,
        stop: watch::Receiver<bool>,
    ) -> Result<Cluster, String> {
        metrics.store.active.store(true, Relaxed);
        let pg = Pg::connect(&config.postgres_url, metrics.store.clone()).await?;
        let clock = Clock::new();
        let first_rows = pg
            .settle_unlogged(clock.now_ms())
            .await
            .map_err(|e| format!("could not start the availability log: {e}"))?;
        if first_rows > 0 {
            tracing::info!(agents = first_rows, "started the availability log");
        }
        let hot = Hot::connect(
            &config.redis_urls,
            config.redis_ca_file.as_deref(),
            metrics.store.clone(),
            clock.clone(),
        )
        .await?;
        let (deadline_tx, deadline_rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            fanout: fanout::Fanout::new(hot.pubsub_clients().to_vec()),
            pg,
            hot,
            clock,
            pusher,
            retention,
            metrics,
            tokens: Mutex::new(HashMap::new()),
            cfgs: Mutex::new(HashMap::new()),
            unknown: Unknown::default(),
            cfg_gen: AtomicU64::new(0),
            widget_keys: Mutex::new(HashMap::new()),
            deadline_tx,
            device_streams: AtomicU64::new(0),
            widget_streams: AtomicU64::new(0),
            store_counts: cached::Cached::new(COUNTS_EVERY),
            health: cached::Cached::new(HEALTH_EVERY),
        });
        let weak = Arc::downgrade(&inner);
        inner.metrics.set_gauges(move || {
            let weak = weak.clone();
            Box::pin(async move { gauges(weak).await })
        });
        if let Some(dead) = inner.pusher.take_dead_tokens() {
            tokio::spawn(remove_dead_tokens(Arc::downgrade(&inner), dead));
        }
        fanout::spawn_reader(Arc::downgrade(&inner), stop.clone());
        sweep::spawn(inner.clone(), deadline_rx, stop);
        Ok(Cluster { inner })
    }

    pub fn clock(&self) -> Clock {
        self.inner.clock.clone()
    }

    /// The failed-login limits, shared by every node.
    pub fn login_gate(&self) -> Arc<dyn crate::auth::LoginGate> {
        Arc::new(limits::SharedLimiter::new(self.inner.hot.clone()))
    }
}

/// This node's gauges: its own streams, and the store-wide counts PostgreSQL had at most
/// [`COUNTS_EVERY`] ago (a scrape storm costs PostgreSQL one count at a time).
async fn gauges(inner: std::sync::Weak<Inner>) -> crate::metrics::Gauges {
    let Some(inner) = inner.upgrade() else {
        return crate::metrics::Gauges::default();
    };
    let (live, ended, accounts) = inner
        .store_counts
        .get(|| async {
            let (sessions, accounts) =
                tokio::join!(inner.pg.session_counts(), inner.pg.count_accounts());
            let (live, ended) = sessions.unwrap_or((0, 0));
            let n = |v: i64| v.max(0) as u64;
            (n(live), n(ended), n(accounts.unwrap_or(0)))
        })
        .await;
    crate::metrics::Gauges {
        live_sessions: live,
        ended_tokens: ended,
        device_subscribers: inner.device_streams.load(Relaxed),
        widget_subscribers: inner.widget_streams.load(Relaxed),
        accounts,
    }
}

impl Inner {
    /// Seeds an account into Redis from PostgreSQL (a no-op if another node just did).
    async fn seed(&self, account_id: &str) -> BackendResult<()> {
        let acc = self.pg.account(account_id).await?;
        let agents = self.pg.agents(account_id).await?;
        let sessions = self.pg.live_sessions(account_id).await?;
        let now = self.clock.now_ms();
        let agents: Vec<(String, String, String, i64, String)> = agents
            .iter()
            .map(|a| {
                let profile = Profile {
                    role: a.role,
                    groups: a.groups.clone(),
                };
                (
                    a.id.clone(),
                    serde_json::to_string(&profile).unwrap_or_default(),
                    serde_json::to_string(&a.status).unwrap_or_default(),
                    a.status.version,
                    a.status_op_id.clone(),
                )
            })
            .collect();
        let leases: Vec<(String, Lease)> = sessions
            .iter()
            .map(|s| {
                (
                    s.id.clone(),
                    Lease {
                        agent: s.agent_id.clone(),
                        mode: s.mode,
                        until: rules::restored_lease_until(
                            &acc.settings.timings,
                            s.lease_until,
                            now,
                        ),
                        push: s.push.is_some(),
                    },
                )
            })
            .collect();
        self.hot
            .seed(
                account_id,
                &AccountCfg::from_row(&acc).json(),
                acc.view_version,
                &agents,
                &leases,
            )
            .await?;
        self.metrics.store.seeds.inc();
        for (_, l) in &leases {
            let _ = self.deadline_tx.send((hot::partition(account_id), l.until));
        }
        Ok(())
    }

    /// The account's settings, cached for [`CFG_CACHE`].
    async fn cfg(&self, account_id: &str) -> BackendResult<Arc<AccountCfg>> {
        if let Some((at, c)) = self.cfgs.lock().get(account_id)
            && at.elapsed() < CFG_CACHE
        {
            return Ok(c.clone());
        }
        self.fresh_cfg(account_id).await
    }

    /// The account's config as Redis holds it now, cached for [`CFG_CACHE`] unless this
    /// node stored a newer one while it was read.
    async fn fresh_cfg(&self, account_id: &str) -> BackendResult<Arc<AccountCfg>> {
        let generation = self.cfg_gen.load(Relaxed);
        let json = match self.hot.cfg(account_id).await? {
            Some(j) => j,
            None => {
                self.seed(account_id).await?;
                self.hot
                    .cfg(account_id)
                    .await?
                    .ok_or_else(|| BackendError::internal("account seeding lost"))?
            }
        };
        let cfg: Arc<AccountCfg> =
            Arc::new(serde_json::from_str(&json).map_err(BackendError::internal)?);
        let mut cfgs = self.cfgs.lock();
        if self.cfg_gen.load(Relaxed) == generation {
            cfgs.insert(account_id.to_owned(), (Instant::now(), cfg.clone()));
        }
        Ok(cfg)
    }

    fn forget_cfg(&self, account_id: &str) {
        let mut cfgs = self.cfgs.lock();
        self.cfg_gen.fetch_add(1, Relaxed);
        cfgs.remove(account_id);
    }

    /// Stores a new config for the account and recomputes its view.
    async fn put_cfg(&self, cfg: &AccountCfg) -> BackendResult<()> {
        let json = cfg.json();
        seeded!(self, &cfg.id, self.hot.put_cfg(&cfg.id, &json))?;
        self.forget_cfg(&cfg.id);
        self.refresh_view(&cfg.id).await
    }

    /// Brings the account's stored view up to date with its state, publishing it if its
    /// content changed. Safe to call from any node at any time, as often as wanted.
    async fn refresh_view(&self, account_id: &str) -> BackendResult<()> {
        for _ in 0..32 {
            let snap = seeded!(self, account_id, self.hot.snapshot(account_id))?;
            let cfg: AccountCfg = serde_json::from_str(snap.cfg.as_deref().unwrap_or(""))
                .map_err(BackendError::internal)?;
            let schedule = WeeklySchedule::from_opening_hours(&cfg.opening_hours)
                .unwrap_or_else(|_| WeeklySchedule::always_open());
            let mut live: HashMap<&str, usize> = HashMap::new();
            for (_, l) in &snap.leases {
                if !rules::lease_ended(l.until, snap.now) {
                    *live.entry(l.agent.as_str()).or_default() += 1;
                }
            }
            let avail: Vec<AgentAvailability<'_>> = snap
                .agents
                .iter()
                .map(|(id, p, st)| AgentAvailability {
                    status: st.status,
                    groups: &p.groups,
                    live_sessions: live.get(id.as_str()).copied().unwrap_or(0),
                    until: st.until,
                    then: st.then,
                })
                .collect();
            let mut view = resolve(&cfg.groups, &schedule, &avail, snap.now)
                .with_messages(&cfg.settings.messages);
            if let Some(t) = view.next_change_at {
                self.hot.schedule_flip(account_id, t).await?;
                let _ = self.deadline_tx.send((hot::partition(account_id), t));
            }
            let current: Option<ChatboxView> = snap
                .view
                .as_deref()
                .and_then(|v| serde_json::from_str(v).ok());
            if let Some(cur) = &current
                && cur.same_content(&view)
            {
                if snap.view_of == snap.state
                    || self
                        .hot
                        .put_view(account_id, snap.state, None, snap.reserved)
                        .await
                        .map_err(hot_err)?
                {
                    return Ok(());
                }
                continue;
            }
            // Above what Redis holds and above what this node has served: after a failover
            // lost Redis's last writes, a version is still never given to a second view.
            let served = self.local_view(account_id).map_or(0, |v| v.view.version);
            view.version = snap.ver.max(served) + 1;
            let mut reserved = snap.reserved;
            if let Some(upto) = rules::versions_to_reserve(view.version, reserved) {
                // Durable before it is served: after Redis loses it, versions start above.
                self.pg.reserve_view_versions(account_id, upto).await?;
                reserved = upto;
            }
            if self
                .hot
                .put_view(account_id, snap.state, Some(&view), reserved)
                .await
                .map_err(hot_err)?
            {
                self.metrics.view_changes.inc();
                // Only the node whose view landed records it, once per version.
                if let Err(e) = self.pg.record_view(account_id, &view, snap.now).await {
                    tracing::warn!(error = %e, "could not record a chat box view event");
                }
                return Ok(());
            }
        }
        Err(BackendError::unavailable(
            "the account changes too fast to settle its view; retry",
            1,
        ))
    }

    /// Pushes a status change to the agent's other sessions that have no open stream.
    async fn push_status(
        &self,
        account_id: &str,
        agent_id: &str,
        status: &StatusView,
        origin: Option<&str>,
    ) -> BackendResult<()> {
        let snap = seeded!(self, account_id, self.hot.snapshot(account_id))?;
        let conn: HashMap<&str, i64> = snap.conn.iter().map(|(s, n)| (s.as_str(), *n)).collect();
        let targets: Vec<(&str, i64)> = snap
            .leases
            .iter()
            .filter(|(sid, l)| {
                l.agent == agent_id
                    && l.push
                    && rules::wants_status_push(
                        sid,
                        origin,
                        conn.get(sid.as_str()).copied().unwrap_or(0) > 0,
                    )
            })
            .map(|(sid, l)| (sid.as_str(), l.until))
            .collect();
        if targets.is_empty() {
            return Ok(());
        }
        let now = self.clock.now_ms();
        for (sid, until) in targets {
            if let Some(reg) = self.pg.session(sid).await?.and_then(|s| s.push) {
                self.pusher.dispatch(PushJob::new(
                    account_id,
                    reg,
                    PushPayload::new(PushBody::Status {
                        session_id: sid.to_owned(),
                        status: status.clone(),
                    }),
                    until,
                    now,
                ));
            }
        }
        Ok(())
    }

    /// Tells an ended session's device by push, if the rules want it told.
    fn push_ended(
        &self,
        account_id: &str,
        session_id: &str,
        reg: Option<presence_protocol::PushRegistration>,
        reason: presence_protocol::EndReason,
        by_other_device: bool,
    ) {
        if rules::wants_end_push(reason, by_other_device)
            && let Some(reg) = reg
        {
            let now = self.clock.now_ms();
            self.pusher.dispatch(PushJob::new(
                account_id,
                reg,
                PushPayload::new(PushBody::SessionEnded {
                    session_id: session_id.to_owned(),
                    reason,
                }),
                now + rules::END_PUSH_TTL_MS,
                now,
            ));
        }
    }
}

/// Clears each registration a provider declared dead, unless the session registered another
/// since: its next heartbeat gets the active lease.
async fn remove_dead_tokens(
    inner: std::sync::Weak<Inner>,
    mut dead: mpsc::UnboundedReceiver<crate::push::DeadToken>,
) {
    while let Some(d) = dead.recv().await {
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let Ok(Some(s)) = inner.pg.session(&d.session_id).await else {
            continue;
        };
        if s.push.as_ref() != Some(&d.reg) || s.ended_at.is_some() {
            continue;
        }
        match inner.pg.drop_push(&s.id, &d.reg).await {
            Ok(true) => {}
            // Registered again since: the new registration stays.
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "could not remove a dead push registration");
                continue;
            }
        }
        let _ = seeded!(
            inner,
            &s.account_id,
            inner.hot.lease_push(&s.account_id, &s.id, false)
        );
    }
}

fn hot_err(e: HotError) -> BackendError {
    match e {
        HotError::Redis(e) => hot::redis_err(e),
        HotError::NoSeed => BackendError::internal("account not seeded"),
    }
}

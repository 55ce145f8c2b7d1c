//! The cluster backend's source of truth: PostgreSQL.
//!
//! What lives here is everything that must survive any node or Redis: accounts (settings,
//! groups, opening hours, the reserved view versions), agents (password hash, profile, the
//! current status intent with its per-agent sequence number `status_seq` = the status
//! version), sessions (token hash, device, push registration, the lease last written) and the
//! status op ids that make retries idempotent.
//!
//! Guarantees:
//! - A status change is acknowledged only after its transaction commits; the agent's row is
//!   locked (`FOR UPDATE`) while the op is decided, so two nodes deciding for one agent are
//!   serialised by PostgreSQL and each op id is answered once and for all.
//! - [`MIGRATIONS`] run at start, in order, each in its own transaction, under a
//!   transaction-scoped advisory lock: several nodes starting at once migrate exactly once.
//! - A database that is out of reach answers [`BackendError::Unavailable`] (`503`), never a
//!   panic; the pool reconnects by itself when it is back.
//!
//! # Files
//! - `rows.rs`: column lists and the mapping of rows.
//! - `accounts.rs`: accounts and agents, and account edits.
//! - `sessions.rs`: sessions, their leases, and pruning what has ended.
//! - `status.rs`: status ops and the reconciler's read.
//! - `events.rs`: the account's events and the presence snapshot.
//! - `history.rs`: the availability log: written in each change's transaction, read for
//!   reports, pruned.
//! - `sql/`: the schema migrations.

use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::backend::{BackendError, BackendResult};
use crate::metrics::StoreMetrics;

mod accounts;
mod events;
mod history;
mod rows;
mod sessions;
mod status;
mod webhooks;

pub use crate::rows::{AccountRow, AgentRow};
pub use rows::{SessionRow, mode_str, reason_str};
pub use sessions::live;
pub use status::StatusDecision;

/// Schema migrations; entry `i` moves the schema from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // v1: the first schema.
    include_str!("sql/001_schema.sql"),
    // v2: the end of a timed status, indexed.
    include_str!("sql/002_timed_status.sql"),
    // v3: custom statuses.
    include_str!("sql/003_custom_statuses.sql"),
    // v4: the status log.
    include_str!("sql/004_status_log.sql"),
    // v5: live sessions by agent.
    include_str!("sql/005_sessions_by_agent.sql"),
    // v6: sign-in settings, API keys, and agents' customer user ids.
    include_str!("sql/006_identity.sql"),
    // v7: the availability log.
    include_str!("sql/007_availability_log.sql"),
    // v8: the account's events.
    include_str!("sql/008_events.sql"),
    // v9: webhook endpoints and their deliveries.
    include_str!("sql/009_webhooks.sql"),
];

/// Key of the advisory lock migrations run under ("PRSV").
const MIGRATION_LOCK: i64 = 0x5052_5356;

/// How long a request waits for a database connection before it answers `503`.
const POOL_WAIT: Duration = Duration::from_secs(3);

/// A pool of connections to the database.
#[derive(Clone)]
pub struct Pg {
    pool: Pool,
    metrics: Arc<StoreMetrics>,
    /// Raised after each commit of this node that may have recorded events.
    commits: tokio::sync::watch::Sender<u64>,
}

/// Times one operation into the store metrics when dropped.
struct Op<'a> {
    metrics: &'a StoreMetrics,
    start: Instant,
}

impl Drop for Op<'_> {
    fn drop(&mut self) {
        self.metrics.postgres_ops.inc();
        self.metrics
            .postgres_seconds
            .inc_by(self.start.elapsed().as_secs_f64());
    }
}

fn unavailable(e: impl std::fmt::Display) -> BackendError {
    tracing::warn!(error = %e, "PostgreSQL is out of reach");
    BackendError::unavailable("the database is out of reach; retry in a moment", 1)
}

/// An error and its causes, `a: b: c` (the pool's and the driver's errors keep the reason, a
/// TLS failure or the server's refusal, in their source).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    text
}

/// Maps a driver error: a lost or refused connection is `Unavailable`, anything else a
/// logged storage failure.
fn db_err(e: tokio_postgres::Error) -> BackendError {
    if e.is_closed() || e.code().is_none() {
        unavailable(e)
    } else {
        BackendError::internal(format_args!("postgres: {e}"))
    }
}

impl Pg {
    /// Connects (over TLS as `sslmode=` asks, [`crate::cluster::tls::pg`]), checks that a
    /// connection can be made, and migrates; the pool opens further connections as they are
    /// needed.
    pub async fn connect(url: &str, metrics: Arc<StoreMetrics>) -> Result<Pg, String> {
        let target = crate::cluster::tls::pg::parse(url)?;
        let mgr = Manager::from_config(
            target.config.clone(),
            target.connector()?,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(16)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(POOL_WAIT))
            .build()
            .map_err(|e| format!("cannot make the PostgreSQL pool: {e}"))?;
        let pg = Pg {
            pool,
            metrics,
            commits: tokio::sync::watch::Sender::new(0),
        };
        // A refused connection (TLS, authentication) is said as such, not as a failed migration.
        let first = pg.pool.get().await.map_err(|e| {
            format!(
                "cannot connect to PostgreSQL at {}: {}",
                crate::cluster::hot::redacted(url),
                with_causes(&e)
            )
        })?;
        drop(first);
        pg.migrate()
            .await
            .map_err(|e| format!("cannot migrate the PostgreSQL schema: {e}"))?;
        Ok(pg)
    }

    async fn migrate(&self) -> Result<(), String> {
        let mut c = self.pool.get().await.map_err(|e| e.to_string())?;
        c.batch_execute("CREATE TABLE IF NOT EXISTS presence_schema (version INTEGER NOT NULL);")
            .await
            .map_err(|e| e.to_string())?;
        loop {
            let tx = c.transaction().await.map_err(|e| e.to_string())?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .await
                .map_err(|e| e.to_string())?;
            let version: i32 = match tx
                .query_opt("SELECT version FROM presence_schema", &[])
                .await
                .map_err(|e| e.to_string())?
            {
                Some(r) => r.get(0),
                None => {
                    tx.execute("INSERT INTO presence_schema (version) VALUES (0)", &[])
                        .await
                        .map_err(|e| e.to_string())?;
                    0
                }
            };
            let v = version as usize;
            if v > MIGRATIONS.len() {
                return Err(format!(
                    "the database has schema version {v}, newer than this server knows ({}); \
                     run a newer presence-server",
                    MIGRATIONS.len()
                ));
            }
            if v == MIGRATIONS.len() {
                tx.commit().await.map_err(|e| e.to_string())?;
                return Ok(());
            }
            tx.batch_execute(MIGRATIONS[v])
                .await
                .map_err(|e| e.to_string())?;
            tx.execute(
                "UPDATE presence_schema SET version = $1",
                &[&((v + 1) as i32)],
            )
            .await
            .map_err(|e| e.to_string())?;
            tx.commit().await.map_err(|e| e.to_string())?;
        }
    }

    /// Commits a transaction that may have recorded events, and tells this node's event
    /// readers (streams, the webhook worker) at once.
    async fn commit_events(&self, tx: deadpool_postgres::Transaction<'_>) -> BackendResult<()> {
        tx.commit().await.map_err(|e| self.db(e))?;
        self.commits.send_modify(|n| *n = n.wrapping_add(1));
        Ok(())
    }

    /// Changes after each of this node's commits that may have recorded events.
    pub fn commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.commits.subscribe()
    }

    fn db(&self, e: tokio_postgres::Error) -> BackendError {
        self.metrics.postgres_errors.inc();
        db_err(e)
    }

    /// A pooled connection, and a timer of the operation it is for.
    async fn client(&self) -> BackendResult<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| {
            self.metrics.postgres_errors.inc();
            unavailable(e)
        })
    }

    fn op(&self) -> Op<'_> {
        Op {
            metrics: &self.metrics,
            start: Instant::now(),
        }
    }

    /// The row `sql` finds, if any, read by `row`: one timed operation.
    async fn read_one<T>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        row: impl Fn(&Row) -> BackendResult<T>,
    ) -> BackendResult<Option<T>> {
        let _op = self.op();
        let c = self.client().await?;
        c.query_opt(sql, params)
            .await
            .map_err(|e| self.db(e))?
            .map(|r| row(&r))
            .transpose()
    }

    /// Every row `sql` finds, read by `row`: one timed operation.
    async fn read_all<T>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        row: impl Fn(&Row) -> BackendResult<T>,
    ) -> BackendResult<Vec<T>> {
        let _op = self.op();
        let c = self.client().await?;
        c.query(sql, params)
            .await
            .map_err(|e| self.db(e))?
            .iter()
            .map(row)
            .collect()
    }

    /// A read-only repeatable-read transaction on `c`: one consistent snapshot of the
    /// database, taking no lock anything else waits for.
    async fn snapshot<'a>(
        &self,
        c: &'a mut deadpool_postgres::Object,
    ) -> BackendResult<deadpool_postgres::Transaction<'a>> {
        c.build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(|e| self.db(e))
    }

    /// `SELECT 1`, for `/healthz`.
    pub async fn ping(&self) -> BackendResult<()> {
        let _op = self.op();
        let c = self.client().await?;
        c.query_one("SELECT 1", &[]).await.map_err(|e| self.db(e))?;
        Ok(())
    }
}

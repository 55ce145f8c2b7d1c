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

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use presence_protocol::{Device, EndReason, Mode, PushRegistration, Role, StatusView};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use crate::backend::{BackendError, BackendResult};
use crate::metrics::StoreMetrics;
use crate::ops::status::{StatusChange, StatusPlan, StatusSlice};
use crate::ops::{AccountEdit, AccountPlan, AccountSlice};

/// Schema migrations; entry `i` moves the schema from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // v1: the first schema.
    include_str!("sql/001_schema.sql"),
];

/// Key of the advisory lock migrations run under ("PRSV").
const MIGRATION_LOCK: i64 = 0x5052_5356;

/// How long a request waits for a database connection before it answers `503`.
const POOL_WAIT: Duration = Duration::from_secs(3);

pub use crate::rows::{AccountRow, AgentRow};

/// A session as stored.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id: String,
    pub account_id: String,
    pub agent_id: String,
    pub device: Device,
    pub push: Option<PushRegistration>,
    pub mode: Mode,
    pub lease_until: i64,
    pub ended_at: Option<i64>,
}

/// What a status op decided, once committed.
pub enum StatusDecision {
    /// The op id was seen before: its first answer, as JSON.
    Replay(String),
    /// Decided now: the answer and its JSON (stored with the op id).
    Decided {
        applied: bool,
        status: StatusView,
        json: String,
    },
}

/// A pool of connections to the database.
#[derive(Clone)]
pub struct Pg {
    pool: Pool,
    metrics: Arc<StoreMetrics>,
}

/// Times one operation into the store metrics when dropped.
struct Op<'a> {
    metrics: &'a StoreMetrics,
    start: Instant,
}

impl Drop for Op<'_> {
    fn drop(&mut self) {
        self.metrics.postgres_ops.fetch_add(1, Relaxed);
        self.metrics
            .postgres_us
            .fetch_add(self.start.elapsed().as_micros() as u64, Relaxed);
    }
}

fn unavailable(e: impl std::fmt::Display) -> BackendError {
    tracing::warn!(error = %e, "PostgreSQL is out of reach");
    BackendError::unavailable("the database is out of reach; retry in a moment", 1)
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

fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

fn from_json<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> BackendResult<T> {
    serde_json::from_value(v).map_err(BackendError::internal)
}

fn role_str(r: Role) -> &'static str {
    r.as_str()
}

/// An enum column read back; a name the protocol does not know is an error, never a default.
fn parse<T: std::str::FromStr>(column: &str, value: &str) -> BackendResult<T> {
    crate::rows::parse_enum(column, value).map_err(BackendError::internal)
}

pub fn mode_str(m: Mode) -> &'static str {
    m.as_str()
}

pub fn reason_str(r: EndReason) -> String {
    r.as_str().to_owned()
}

const AGENT_COLS: &str =
    "id, account_id, name, email, password_hash, role, groups_json, status, status_op";

fn agent_row(r: &tokio_postgres::Row) -> BackendResult<AgentRow> {
    Ok(AgentRow {
        id: r.get(0),
        account_id: r.get(1),
        name: r.get(2),
        email: r.get(3),
        password_hash: r.get(4),
        role: parse("role", r.get(5))?,
        groups: from_json(r.get(6))?,
        status: from_json(r.get(7))?,
        status_op_id: r.get(8),
    })
}

const ACCOUNT_COLS: &str =
    "id, slug, name, widget_key, settings, opening_hours, groups_json, view_reserved";

fn account_row(r: &tokio_postgres::Row) -> BackendResult<AccountRow> {
    Ok(AccountRow {
        id: r.get(0),
        slug: r.get(1),
        name: r.get(2),
        widget_key: r.get(3),
        settings: from_json(r.get(4))?,
        opening_hours: from_json(r.get(5))?,
        groups: from_json(r.get(6))?,
        view_version: r.get(7),
    })
}

const SESSION_COLS: &str = "id, account_id, agent_id, device, push, mode, lease_until, ended_at";

fn session_row(r: &tokio_postgres::Row) -> BackendResult<SessionRow> {
    let push: Option<serde_json::Value> = r.get(4);
    Ok(SessionRow {
        id: r.get(0),
        account_id: r.get(1),
        agent_id: r.get(2),
        device: from_json(r.get(3))?,
        push: push.map(from_json).transpose()?,
        mode: parse("mode", r.get(5))?,
        lease_until: r.get(6),
        ended_at: r.get(7),
    })
}

impl Pg {
    /// Connects (lazily: the pool opens connections as they are needed) and migrates.
    pub async fn connect(url: &str, metrics: Arc<StoreMetrics>) -> Result<Pg, String> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| format!("--postgres-url is not a PostgreSQL URL: {e}"))?;
        let mgr = Manager::from_config(
            config,
            NoTls,
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
        let pg = Pg { pool, metrics };
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

    fn db(&self, e: tokio_postgres::Error) -> BackendError {
        self.metrics.postgres_errors.fetch_add(1, Relaxed);
        db_err(e)
    }

    /// A pooled connection, and a timer of the operation it is for.
    async fn client(&self) -> BackendResult<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| {
            self.metrics.postgres_errors.fetch_add(1, Relaxed);
            unavailable(e)
        })
    }

    fn op(&self) -> Op<'_> {
        Op {
            metrics: &self.metrics,
            start: Instant::now(),
        }
    }

    /// `SELECT 1`, for `/healthz`.
    pub async fn ping(&self) -> BackendResult<()> {
        let _op = self.op();
        let c = self.client().await?;
        c.query_one("SELECT 1", &[]).await.map_err(|e| self.db(e))?;
        Ok(())
    }

    /// Inserts an account and its owner; a taken slug is a `Conflict`.
    pub async fn insert_account(
        &self,
        a: &AccountRow,
        owner: &AgentRow,
        now: i64,
    ) -> BackendResult<()> {
        let _op = self.op();
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(|e| self.db(e))?;
        let r = tx
            .execute(
                "INSERT INTO accounts (id, slug, name, widget_key, settings, opening_hours, \
                 groups_json, view_reserved, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)",
                &[
                    &a.id,
                    &a.slug,
                    &a.name,
                    &a.widget_key,
                    &json(&a.settings),
                    &json(&a.opening_hours),
                    &json(&a.groups),
                    &a.view_version,
                    &now,
                ],
            )
            .await;
        if let Err(e) = r {
            if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
                return Err(BackendError::conflict(format!(
                    "account slug {:?} is taken",
                    a.slug
                )));
            }
            return Err(self.db(e));
        }
        insert_agent_in(&*tx, owner, now).await?;
        tx.commit().await.map_err(|e| self.db(e))
    }

    pub async fn account_by_slug(&self, slug: &str) -> BackendResult<Option<AccountRow>> {
        let _op = self.op();
        let c = self.client().await?;
        let q = format!("SELECT {ACCOUNT_COLS} FROM accounts WHERE slug = $1");
        c.query_opt(&q, &[&slug])
            .await
            .map_err(|e| self.db(e))?
            .map(|r| account_row(&r))
            .transpose()
    }

    pub async fn account_by_widget_key(&self, key: &str) -> BackendResult<Option<AccountRow>> {
        let _op = self.op();
        let c = self.client().await?;
        let q = format!("SELECT {ACCOUNT_COLS} FROM accounts WHERE widget_key = $1");
        c.query_opt(&q, &[&key])
            .await
            .map_err(|e| self.db(e))?
            .map(|r| account_row(&r))
            .transpose()
    }

    pub async fn account(&self, id: &str) -> BackendResult<AccountRow> {
        let _op = self.op();
        let c = self.client().await?;
        let q = format!("SELECT {ACCOUNT_COLS} FROM accounts WHERE id = $1");
        c.query_opt(&q, &[&id])
            .await
            .map_err(|e| self.db(e))?
            .map(|r| account_row(&r))
            .transpose()?
            .ok_or_else(|| BackendError::not_found("account"))
    }

    pub async fn count_accounts(&self) -> BackendResult<i64> {
        let _op = self.op();
        let c = self.client().await?;
        Ok(c.query_one("SELECT count(*) FROM accounts", &[])
            .await
            .map_err(|e| self.db(e))?
            .get(0))
    }

    pub async fn agents(&self, account_id: &str) -> BackendResult<Vec<AgentRow>> {
        let _op = self.op();
        let c = self.client().await?;
        let q = format!("SELECT {AGENT_COLS} FROM agents WHERE account_id = $1 ORDER BY email");
        c.query(&q, &[&account_id])
            .await
            .map_err(|e| self.db(e))?
            .iter()
            .map(agent_row)
            .collect()
    }

    pub async fn agent(&self, id: &str) -> BackendResult<Option<AgentRow>> {
        let _op = self.op();
        let c = self.client().await?;
        let q = format!("SELECT {AGENT_COLS} FROM agents WHERE id = $1");
        c.query_opt(&q, &[&id])
            .await
            .map_err(|e| self.db(e))?
            .map(|r| agent_row(&r))
            .transpose()
    }

    /// The agent with this email in the account with this slug.
    pub async fn agent_by_login(&self, slug: &str, email: &str) -> BackendResult<Option<AgentRow>> {
        let _op = self.op();
        let c = self.client().await?;
        let q = format!(
            "SELECT {} FROM agents a JOIN accounts c ON c.id = a.account_id \
             WHERE c.slug = $1 AND a.email_key = $2",
            AGENT_COLS
                .split(", ")
                .map(|col| format!("a.{col}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        c.query_opt(&q, &[&slug, &email.trim().to_lowercase()])
            .await
            .map_err(|e| self.db(e))?
            .map(|r| agent_row(&r))
            .transpose()
    }

    /// Runs an account edit in one transaction: the account row is locked (`FOR UPDATE`)
    /// while its slice is read and `plan` decides, so edits of one account serialise across
    /// every node. Returns the slice the plan read, the edit, and the sessions it ended.
    pub async fn edit_account(
        &self,
        account_id: &str,
        plan: AccountPlan,
        now: i64,
    ) -> BackendResult<(AccountSlice, AccountEdit, Vec<SessionRow>)> {
        let _op = self.op();
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(|e| self.db(e))?;
        let q = format!("SELECT {ACCOUNT_COLS} FROM accounts WHERE id = $1 FOR UPDATE");
        let account = tx
            .query_opt(&q, &[&account_id])
            .await
            .map_err(|e| self.db(e))?
            .map(|r| account_row(&r))
            .transpose()?
            .ok_or_else(|| BackendError::not_found("account"))?;
        let q = format!("SELECT {AGENT_COLS} FROM agents WHERE account_id = $1 ORDER BY email");
        let agents = tx
            .query(&q, &[&account_id])
            .await
            .map_err(|e| self.db(e))?
            .iter()
            .map(agent_row)
            .collect::<BackendResult<Vec<_>>>()?;
        let slice = AccountSlice { account, agents };
        let edit = plan(&slice)?;
        let mut ended = Vec::new();
        match &edit {
            AccountEdit::AddAgent(row) => insert_agent_in(&*tx, row, now).await?,
            AccountEdit::UpdateAgent(row) => {
                tx.execute(
                    "UPDATE agents SET name = $2, role = $3, groups_json = $4, updated_at = $5 \
                     WHERE id = $1",
                    &[
                        &row.id,
                        &row.name,
                        &role_str(row.role),
                        &json(&row.groups),
                        &now,
                    ],
                )
                .await
                .map_err(|e| self.db(e))?;
            }
            AccountEdit::RemoveAgent { agent_id } => {
                let q = format!(
                    "UPDATE sessions SET ended_at = $2, end_reason = 'removed' \
                     WHERE agent_id = $1 AND ended_at IS NULL RETURNING {SESSION_COLS}"
                );
                ended = tx
                    .query(&q, &[agent_id, &now])
                    .await
                    .map_err(|e| self.db(e))?
                    .iter()
                    .map(session_row)
                    .collect::<BackendResult<Vec<_>>>()?;
                tx.execute("DELETE FROM status_ops WHERE agent_id = $1", &[agent_id])
                    .await
                    .map_err(|e| self.db(e))?;
                tx.execute("DELETE FROM agents WHERE id = $1", &[agent_id])
                    .await
                    .map_err(|e| self.db(e))?;
            }
            AccountEdit::Groups { groups, agents } => {
                tx.execute(
                    "UPDATE accounts SET groups_json = $2 WHERE id = $1",
                    &[&account_id, &json(groups)],
                )
                .await
                .map_err(|e| self.db(e))?;
                for (agent, g) in agents {
                    tx.execute(
                        "UPDATE agents SET groups_json = $2 WHERE id = $1",
                        &[agent, &json(g)],
                    )
                    .await
                    .map_err(|e| self.db(e))?;
                }
            }
            AccountEdit::OpeningHours { hours, .. } => {
                tx.execute(
                    "UPDATE accounts SET opening_hours = $2 WHERE id = $1",
                    &[&account_id, &json(hours)],
                )
                .await
                .map_err(|e| self.db(e))?;
            }
            AccountEdit::Settings(settings) => {
                tx.execute(
                    "UPDATE accounts SET settings = $2 WHERE id = $1",
                    &[&account_id, &json(settings)],
                )
                .await
                .map_err(|e| self.db(e))?;
            }
        }
        tx.commit().await.map_err(|e| self.db(e))?;
        Ok((slice, edit, ended))
    }

    /// Makes view versions up to `upto` durably reserved for the account (never lowers it).
    pub async fn reserve_view_versions(&self, id: &str, upto: i64) -> BackendResult<()> {
        let _op = self.op();
        let c = self.client().await?;
        c.execute(
            "UPDATE accounts SET view_reserved = GREATEST(view_reserved, $2) WHERE id = $1",
            &[&id, &upto],
        )
        .await
        .map_err(|e| self.db(e))?;
        Ok(())
    }

    /// Opens a session, ending `replaces` (the same device's earlier session) with reason
    /// `replaced` in the same transaction.
    pub async fn insert_session(
        &self,
        s: &SessionRow,
        token_hash: &[u8],
        replaces: Option<&str>,
        now: i64,
    ) -> BackendResult<()> {
        let _op = self.op();
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(|e| self.db(e))?;
        if let Some(old) = replaces {
            tx.execute(
                "UPDATE sessions SET ended_at = $2, end_reason = 'replaced' \
                 WHERE id = $1 AND ended_at IS NULL",
                &[&old, &now],
            )
            .await
            .map_err(|e| self.db(e))?;
        }
        tx.execute(
            "INSERT INTO sessions (id, account_id, agent_id, token_hash, device, push, mode, \
             lease_until, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)",
            &[
                &s.id,
                &s.account_id,
                &s.agent_id,
                &token_hash,
                &json(&s.device),
                &s.push.as_ref().map(json),
                &mode_str(s.mode),
                &s.lease_until,
                &now,
            ],
        )
        .await
        .map_err(|e| self.db(e))?;
        tx.commit().await.map_err(|e| self.db(e))
    }

    /// The live session of this device in this account, if any.
    pub async fn device_session(
        &self,
        account_id: &str,
        device_id: &str,
    ) -> BackendResult<Option<String>> {
        let _op = self.op();
        let c = self.client().await?;
        Ok(c.query_opt(
            "SELECT id FROM sessions WHERE account_id = $1 AND ended_at IS NULL \
             AND device->>'id' = $2 ORDER BY created_at DESC LIMIT 1",
            &[&account_id, &device_id],
        )
        .await
        .map_err(|e| self.db(e))?
        .map(|r| r.get(0)))
    }

    /// The session a token hash opened, live or ended, with the agent's role.
    pub async fn session_by_token(
        &self,
        token_hash: &[u8],
    ) -> BackendResult<Option<(SessionRow, Role)>> {
        let _op = self.op();
        let c = self.client().await?;
        let q = format!(
            "SELECT {}, a.role FROM sessions s LEFT JOIN agents a ON a.id = s.agent_id \
             WHERE s.token_hash = $1",
            SESSION_COLS
                .split(", ")
                .map(|col| format!("s.{col}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let Some(r) = c
            .query_opt(&q, &[&token_hash])
            .await
            .map_err(|e| self.db(e))?
        else {
            return Ok(None);
        };
        let role: Option<String> = r.get(8);
        let mut s = session_row(&r)?;
        if role.is_none() && s.ended_at.is_none() {
            // The agent is gone: its sessions are as good as ended.
            s.ended_at = Some(0);
        }
        let role = match role {
            Some(r) => parse("role", &r)?,
            None => Role::Agent,
        };
        Ok(Some((s, role)))
    }

    pub async fn session(&self, id: &str) -> BackendResult<Option<SessionRow>> {
        let _op = self.op();
        let c = self.client().await?;
        let q = format!("SELECT {SESSION_COLS} FROM sessions WHERE id = $1");
        c.query_opt(&q, &[&id])
            .await
            .map_err(|e| self.db(e))?
            .map(|r| session_row(&r))
            .transpose()
    }

    /// Every live session of an account (to seed Redis).
    pub async fn live_sessions(&self, account_id: &str) -> BackendResult<Vec<SessionRow>> {
        let _op = self.op();
        let c = self.client().await?;
        let q = format!(
            "SELECT {SESSION_COLS} FROM sessions WHERE account_id = $1 AND ended_at IS NULL"
        );
        c.query(&q, &[&account_id])
            .await
            .map_err(|e| self.db(e))?
            .iter()
            .map(session_row)
            .collect()
    }

    /// Ends a session if it is live; true when this call ended it.
    pub async fn end_session(&self, id: &str, reason: EndReason, now: i64) -> BackendResult<bool> {
        let _op = self.op();
        let c = self.client().await?;
        let n = c
            .execute(
                "UPDATE sessions SET ended_at = $2, end_reason = $3 \
                 WHERE id = $1 AND ended_at IS NULL",
                &[&id, &now, &reason_str(reason)],
            )
            .await
            .map_err(|e| self.db(e))?;
        Ok(n == 1)
    }

    pub async fn set_push(&self, id: &str, push: Option<&PushRegistration>) -> BackendResult<()> {
        let _op = self.op();
        let c = self.client().await?;
        c.execute(
            "UPDATE sessions SET push = $2 WHERE id = $1",
            &[&id, &push.map(json)],
        )
        .await
        .map_err(|e| self.db(e))?;
        Ok(())
    }

    /// Records a session's lease and mode (written when the mode changes, so a lease that
    /// Redis loses comes back at its terms).
    pub async fn set_lease(&self, id: &str, mode: Mode, lease_until: i64) -> BackendResult<()> {
        let _op = self.op();
        let c = self.client().await?;
        c.execute(
            "UPDATE sessions SET mode = $2, lease_until = $3 WHERE id = $1",
            &[&id, &mode_str(mode), &lease_until],
        )
        .await
        .map_err(|e| self.db(e))?;
        Ok(())
    }

    /// Decides and commits a status op with the agent's row locked: `decide` gets the current
    /// status, its op id and the device of `session_id`, and returns the new status if the
    /// op applies. An op id seen within `since` is answered as it was the first time. Four
    /// round trips (begin, one read, one write, commit), on prepared statements.
    pub async fn status_op(
        &self,
        change: &StatusChange,
        since: i64,
        now: i64,
        decide: StatusPlan,
    ) -> BackendResult<StatusDecision> {
        let (agent_id, op_id) = (change.agent_id.as_str(), change.op_id.as_str());
        let (account_id, session_id) = (&*change.account_id, change.origin.as_deref());
        let _op = self.op();
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(|e| self.db(e))?;
        let read = tx
            .prepare_cached(
                "SELECT a.status, a.status_op, \
                 (SELECT response::text FROM status_ops \
                  WHERE agent_id = $1 AND op_id = $2 AND at >= $3), \
                 (SELECT device->>'id' FROM sessions WHERE id = $4) \
                 FROM agents a WHERE a.id = $1 AND a.account_id = $5 FOR UPDATE",
            )
            .await
            .map_err(|e| self.db(e))?;
        let row = tx
            .query_opt(
                &read,
                &[&agent_id, &op_id, &since, &session_id, &account_id],
            )
            .await
            .map_err(|e| self.db(e))?
            .ok_or_else(|| BackendError::not_found("agent"))?;
        if let Some(prev) = row.get::<_, Option<String>>(2) {
            return Ok(StatusDecision::Replay(prev));
        }
        let slice = StatusSlice {
            now,
            current: from_json(row.get(0))?,
            current_op: row.get(1),
            device: row.get(3),
        };
        let resp = decide(&slice);
        let body = json(&resp);
        let (applied, status) = (resp.applied, resp.status);
        let write = tx
            .prepare_cached(
                "WITH u AS (UPDATE agents SET status = $5, status_op = $2, status_seq = $6, \
                 updated_at = $4 WHERE id = $1 AND $7) \
                 INSERT INTO status_ops (agent_id, op_id, response, at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (agent_id, op_id) DO UPDATE SET response = $3, at = $4",
            )
            .await
            .map_err(|e| self.db(e))?;
        tx.execute(
            &write,
            &[
                &agent_id,
                &op_id,
                &body,
                &now,
                &json(&status),
                &status.version,
                &applied,
            ],
        )
        .await
        .map_err(|e| self.db(e))?;
        tx.commit().await.map_err(|e| self.db(e))?;
        self.metrics.observe_commit(_op.start.elapsed());
        Ok(StatusDecision::Decided {
            applied,
            status,
            json: body.to_string(),
        })
    }

    /// Agents whose status changed since `since` (the reconciler re-applies them).
    pub async fn recent_statuses(
        &self,
        since: i64,
    ) -> BackendResult<Vec<(String, String, StatusView, String)>> {
        let _op = self.op();
        let c = self.client().await?;
        c.query(
            "SELECT account_id, id, status, status_op FROM agents WHERE updated_at >= $1",
            &[&since],
        )
        .await
        .map_err(|e| self.db(e))?
        .iter()
        .map(|r| Ok((r.get(0), r.get(1), from_json(r.get(2))?, r.get(3))))
        .collect()
    }

    /// (live sessions, ended sessions still remembered), for `/metrics`.
    pub async fn session_counts(&self) -> BackendResult<(i64, i64)> {
        let _op = self.op();
        let c = self.client().await?;
        let r = c
            .query_one(
                "SELECT count(*) FILTER (WHERE ended_at IS NULL), \
                 count(*) FILTER (WHERE ended_at IS NOT NULL) FROM sessions",
                &[],
            )
            .await
            .map_err(|e| self.db(e))?;
        Ok((r.get(0), r.get(1)))
    }

    /// Forgets ended sessions and status ops older than their retention: (sessions, ops).
    pub async fn prune(&self, sessions_before: i64, ops_before: i64) -> BackendResult<(u64, u64)> {
        let _op = self.op();
        let c = self.client().await?;
        let a = c
            .execute(
                "DELETE FROM sessions WHERE ended_at IS NOT NULL AND ended_at < $1",
                &[&sessions_before],
            )
            .await
            .map_err(|e| self.db(e))?;
        let b = c
            .execute("DELETE FROM status_ops WHERE at < $1", &[&ops_before])
            .await
            .map_err(|e| self.db(e))?;
        Ok((a, b))
    }
}

async fn insert_agent_in(
    c: &impl tokio_postgres::GenericClient,
    a: &AgentRow,
    now: i64,
) -> BackendResult<()> {
    let r = c
        .execute(
            "INSERT INTO agents (id, account_id, name, email, email_key, password_hash, role, \
             groups_json, status, status_op, status_seq, updated_at) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)",
            &[
                &a.id,
                &a.account_id,
                &a.name,
                &a.email,
                &a.email.trim().to_lowercase(),
                &a.password_hash,
                &role_str(a.role),
                &json(&a.groups),
                &json(&a.status),
                &a.status_op_id,
                &a.status.version,
                &now,
            ],
        )
        .await;
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            Err(BackendError::conflict("an agent with this email exists"))
        }
        Err(e) => Err(db_err(e)),
    }
}

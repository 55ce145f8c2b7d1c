//! What the embedded backend reads back from its store: everything a restart rebuilds
//! memory from, and the stored answer of an earlier status op.
//!
//! Guarantees: a row reads back as it was written; an enum or JSON column that does not
//! parse fails the load instead of reading as a default.

use presence_protocol::{
    AgentStatus, Device, Mode, Platform, PushProvider, Role, StatusLogEntry, StatusView,
};
use rusqlite::{OptionalExtension, params};

use super::{AccountRow, AgentRow, SessionRow, Store, StoreResult, schema};

/// Everything a restart needs to rebuild memory.
pub struct Loaded {
    pub accounts: Vec<AccountRow>,
    pub agents: Vec<AgentRow>,
    /// Sessions that had not ended.
    pub sessions: Vec<SessionRow>,
    /// Token hashes of sessions that ended within the retention, with when they ended, oldest
    /// first, so their tokens answer `session_expired`.
    pub ended_tokens: Vec<(String, i64)>,
}

fn from_json<T: serde::de::DeserializeOwned>(col: usize, s: &str) -> StoreResult<T> {
    serde_json::from_str(s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn bad_enum(col: usize, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        col,
        rusqlite::types::Type::Text,
        format!("unknown {what}").into(),
    )
}

fn platform_parse(s: &str) -> Option<Platform> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
}

impl Store {
    /// Everything a restart needs; ended sessions only if they ended at `ended_since` or
    /// later (older ones are past their retention).
    pub fn load(&self, ended_since: i64) -> StoreResult<Loaded> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare(
            "SELECT id, slug, name, widget_key, settings, opening_hours, groups_json, view_version,
                    custom_statuses, identity
             FROM accounts",
        )?;
        let accounts = stmt
            .query_map([], |r| {
                Ok(AccountRow {
                    id: r.get(0)?,
                    slug: r.get(1)?,
                    name: r.get(2)?,
                    widget_key: r.get(3)?,
                    settings: from_json(4, &r.get::<_, String>(4)?)?,
                    opening_hours: from_json(5, &r.get::<_, String>(5)?)?,
                    groups: from_json(6, &r.get::<_, String>(6)?)?,
                    view_version: r.get(7)?,
                    custom_statuses: from_json(8, &r.get::<_, String>(8)?)?,
                    identity: from_json(9, &r.get::<_, String>(9)?)?,
                })
            })?
            .collect::<StoreResult<Vec<_>>>()?;
        let agents = conn
            .prepare(&format!("SELECT {AGENT_COLS} FROM agents"))?
            .query_map([], agent_row)?
            .collect::<StoreResult<Vec<_>>>()?;
        let mut stmt = conn.prepare(
            "SELECT id, account_id, agent_id, token_hash, device_id, platform, device_name,
                    app_version, mode, lease_until, push_provider, push_token,
                    push_p256dh, push_auth
             FROM sessions WHERE ended_reason IS NULL",
        )?;
        let sessions = stmt
            .query_map([], |r| {
                let platform: String = r.get(5)?;
                let mode: String = r.get(8)?;
                let provider: Option<String> = r.get(10)?;
                let token: Option<String> = r.get(11)?;
                let push = match (provider, token) {
                    (Some(p), Some(t)) => Some(schema::push_from_columns(
                        PushProvider::parse(&p).ok_or_else(|| bad_enum(10, "push provider"))?,
                        t,
                        r.get(12)?,
                        r.get(13)?,
                    )),
                    _ => None,
                };
                Ok(SessionRow {
                    id: r.get(0)?,
                    account_id: r.get(1)?,
                    agent_id: r.get(2)?,
                    token_hash: r.get(3)?,
                    device: Device {
                        id: r.get(4)?,
                        platform: platform_parse(&platform)
                            .ok_or_else(|| bad_enum(5, "platform"))?,
                        name: r.get(6)?,
                        app_version: r.get(7)?,
                    },
                    mode: if mode == "background" {
                        Mode::Background
                    } else {
                        Mode::Active
                    },
                    lease_until: r.get(9)?,
                    push,
                })
            })?
            .collect::<StoreResult<Vec<_>>>()?;
        let mut stmt = conn.prepare(
            "SELECT token_hash, ended_at FROM sessions
             WHERE ended_reason IS NOT NULL AND ended_at >= ?1 ORDER BY ended_at",
        )?;
        let ended_tokens = stmt
            .query_map([ended_since], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<StoreResult<Vec<(String, i64)>>>()?;
        Ok(Loaded {
            accounts,
            agents,
            sessions,
            ended_tokens,
        })
    }

    /// Whether the agent has a session (live or ended, not yet pruned) on `device_id`.
    pub fn known_device(&self, agent_id: &str, device_id: &str) -> StoreResult<bool> {
        self.conn
            .lock()
            .prepare_cached(
                "SELECT EXISTS(SELECT 1 FROM sessions WHERE agent_id = ?1 AND device_id = ?2)",
            )?
            .query_row(params![agent_id, device_id], |r| r.get(0))
    }

    /// An agent's status log, newest first: changes applied in `[from, to)` with a version
    /// below `before`, at most `limit`.
    pub fn status_log(
        &self,
        agent_id: &str,
        from: i64,
        to: i64,
        before: i64,
        limit: u32,
    ) -> StoreResult<Vec<StatusLogEntry>> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT status, applied_at FROM status_log
             WHERE agent_id = ?1 AND version < ?4 AND applied_at >= ?2 AND applied_at < ?3
             ORDER BY version DESC LIMIT ?5",
        )?;
        let rows = stmt.query_map(params![agent_id, from, to, before, limit], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        rows.map(|r| {
            let (status, applied_at) = r?;
            Ok(StatusLogEntry {
                status: from_json(0, &status)?,
                applied_at,
            })
        })
        .collect()
    }

    /// The stored answer to an earlier status op with this id recorded at `since` or later,
    /// if any.
    pub fn status_op(
        &self,
        agent_id: &str,
        op_id: &str,
        since: i64,
    ) -> StoreResult<Option<String>> {
        self.conn
            .lock()
            .prepare_cached(
                "SELECT response FROM status_ops
                 WHERE agent_id = ?1 AND op_id = ?2 AND created_at >= ?3",
            )?
            .query_row(params![agent_id, op_id, since], |r| r.get(0))
            .optional()
    }
}

/// The columns [`agent_row`] reads, in its order.
pub(super) const AGENT_COLS: &str = "id, account_id, name, email, password_hash, role, \
    groups_json, status, status_version, intent_at, changed_by_device, status_op_id, \
    status_until, status_then, custom_status, status_note, status_cause, changed_by_agent, sub";

/// An agent from a row of [`AGENT_COLS`].
pub(super) fn agent_row(r: &rusqlite::Row<'_>) -> StoreResult<AgentRow> {
    let role: String = r.get(5)?;
    let status: String = r.get(7)?;
    Ok(AgentRow {
        id: r.get(0)?,
        account_id: r.get(1)?,
        name: r.get(2)?,
        email: r.get(3)?,
        password_hash: r.get(4)?,
        role: Role::parse(&role).ok_or_else(|| bad_enum(5, "role"))?,
        groups: from_json(6, &r.get::<_, String>(6)?)?,
        status: StatusView {
            status: AgentStatus::parse(&status).ok_or_else(|| bad_enum(7, "status"))?,
            version: r.get(8)?,
            intent_at: r.get(9)?,
            changed_by_device: r.get(10)?,
            until: r.get(12)?,
            then: match r.get::<_, Option<String>>(13)? {
                Some(t) => Some(AgentStatus::parse(&t).ok_or_else(|| bad_enum(13, "then"))?),
                None => None,
            },
            custom_status: r.get(14)?,
            note: r.get(15)?,
            cause: r
                .get::<_, String>(16)?
                .parse()
                .map_err(|_| bad_enum(16, "cause"))?,
            changed_by_agent: r.get(17)?,
        },
        status_op_id: r.get(11)?,
        sub: r.get(18)?,
    })
}

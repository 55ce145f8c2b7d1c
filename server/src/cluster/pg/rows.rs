//! How the cluster's rows are read from and written to PostgreSQL: the column lists, the
//! mapping of a row to its type, and the JSON and enum columns.
//!
//! Guarantees: a row read back is exactly the row written (JSON columns through serde, enum
//! columns by the protocol's names); a JSON or enum column that does not parse is an
//! internal error, never a default.

use presence_protocol::{Device, EndReason, Mode, PushRegistration, Role};

use super::{AccountRow, AgentRow};
use crate::backend::{BackendError, BackendResult};

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

pub(super) fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

pub(super) fn from_json<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> BackendResult<T> {
    serde_json::from_value(v).map_err(BackendError::internal)
}

pub(super) fn role_str(r: Role) -> &'static str {
    r.as_str()
}

/// An enum column read back; a name the protocol does not know is an error, never a default.
pub(super) fn parse<T: std::str::FromStr>(column: &str, value: &str) -> BackendResult<T> {
    crate::rows::parse_enum(column, value).map_err(BackendError::internal)
}

pub fn mode_str(m: Mode) -> &'static str {
    m.as_str()
}

pub fn reason_str(r: EndReason) -> String {
    r.as_str().to_owned()
}

/// A column list with each column qualified by a table alias (`a.id, a.name, ...`).
pub(super) fn prefixed(cols: &str, alias: &str) -> String {
    cols.split(", ")
        .map(|col| format!("{alias}.{col}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) const AGENT_COLS: &str =
    "id, account_id, name, email, password_hash, role, groups_json, status, status_op, sub";

pub(super) fn agent_row(r: &tokio_postgres::Row) -> BackendResult<AgentRow> {
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
        sub: r.get(9),
    })
}

pub(super) const ACCOUNT_COLS: &str = "id, slug, name, widget_key, settings, opening_hours, groups_json, view_reserved, \
     custom_statuses, identity";

pub(super) fn account_row(r: &tokio_postgres::Row) -> BackendResult<AccountRow> {
    Ok(AccountRow {
        id: r.get(0),
        slug: r.get(1),
        name: r.get(2),
        widget_key: r.get(3),
        settings: from_json(r.get(4))?,
        opening_hours: from_json(r.get(5))?,
        groups: from_json(r.get(6))?,
        view_version: r.get(7),
        custom_statuses: from_json(r.get(8))?,
        identity: from_json(r.get(9))?,
    })
}

pub(super) const SESSION_COLS: &str =
    "id, account_id, agent_id, device, push, mode, lease_until, ended_at";

pub(super) fn session_row(r: &tokio_postgres::Row) -> BackendResult<SessionRow> {
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

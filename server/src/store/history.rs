//! The availability log in SQLite: written inside the transaction of the change that caused
//! it, read for reports on a connection of its own, pruned in batches.
//!
//! Guarantees:
//! - [`settle`] runs in the caller's transaction after its change, reads what the agent is
//!   now (status, and whether a session is live) and logs what [`crate::history::next`]
//!   decides, against the agent's last row (one indexed read).
//! - Reports read on the reading connection (WAL: readers never wait for the writer, and the
//!   writer never waits for a report), so a long report never delays a status change.
//! - Pruning keeps each agent's last row before the cutoff: the state it was in when the
//!   retained history begins.

use presence_protocol::{AgentStatus, Cause, EndReason};
use rusqlite::{Connection, OptionalExtension, params};

use super::{Store, StoreResult};
use crate::history::query::{Builder, HistoryQuery, HistoryRows, Mark, code, decode};
use crate::history::{Last, Logged, Now, next};

fn decoded<T: strum::IntoEnumIterator>(col: usize, c: i64) -> StoreResult<T> {
    decode(c).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            col,
            rusqlite::types::Type::Integer,
            format!("unknown code {c}").into(),
        )
    })
}

fn parse<T: std::str::FromStr>(col: usize, s: &str) -> StoreResult<T> {
    s.parse().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            col,
            rusqlite::types::Type::Text,
            format!("unknown value {s:?}").into(),
        )
    })
}

/// Logs the agent's availability at `at` if it changed; `ended` is how its sessions ended
/// when the caller ended some. An agent that no longer exists logs nothing.
pub(super) fn settle(
    tx: &Connection,
    agent_id: &str,
    at: i64,
    ended: Option<EndReason>,
) -> StoreResult<()> {
    let found = tx
        .prepare_cached(
            "SELECT a.account_id, a.status, a.status_cause, l.availability, l.status, l.at,
                    EXISTS (SELECT 1 FROM sessions
                            WHERE agent_id = ?1 AND ended_reason IS NULL)
             FROM agents a LEFT JOIN (
                 SELECT availability, status, at FROM availability_log
                 WHERE agent_id = ?1 ORDER BY at DESC, rowid DESC LIMIT 1) l
             WHERE a.id = ?1",
        )?
        .query_row([agent_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, Option<i64>>(4)?,
                r.get::<_, Option<i64>>(5)?,
                r.get::<_, bool>(6)?,
            ))
        })
        .optional()?;
    let Some((account_id, status, cause, la, ls, lat, live)) = found else {
        return Ok(());
    };
    let last = match (la, ls, lat) {
        (Some(a), Some(s), Some(at)) => Some(Last {
            availability: decoded(3, a)?,
            status: decoded(4, s)?,
            at,
        }),
        _ => None,
    };
    let now = Now {
        status: parse::<AgentStatus>(1, &status)?,
        cause: parse::<Cause>(2, &cause)?,
        live,
    };
    let Some(row) = next(agent_id, last, now, at, ended) else {
        return Ok(());
    };
    insert(tx, &account_id, &row)?;
    if let Some(e) = crate::history::events::availability(&row, last.map(|l| l.availability)) {
        super::events::emit(tx, &account_id, &e)?;
    }
    Ok(())
}

/// Adds rows made elsewhere (the demo's history) as they are.
pub(super) fn import(tx: &Connection, account_id: &str, rows: &[Logged]) -> StoreResult<()> {
    rows.iter().try_for_each(|row| insert(tx, account_id, row))
}

/// Stores one row, its enums as their codes.
fn insert(tx: &Connection, account_id: &str, row: &Logged) -> StoreResult<()> {
    tx.prepare_cached(
        "INSERT INTO availability_log (account_id, agent_id, at, availability, status, cause,
                                       ended)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        account_id,
        row.agent_id,
        row.at,
        code(row.availability),
        code(row.status),
        code(row.cause),
        row.ended.map(code),
    ])?;
    Ok(())
}

/// Gives every agent that has none its first row, at `at` (a database from before the log).
fn settle_unlogged(tx: &Connection, at: i64) -> StoreResult<usize> {
    let ids: Vec<String> = tx
        .prepare(
            "SELECT id FROM agents a
             WHERE NOT EXISTS (SELECT 1 FROM availability_log WHERE agent_id = a.id)",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<StoreResult<_>>()?;
    for id in &ids {
        settle(tx, id, at, None)?;
    }
    Ok(ids.len())
}

const COLS: &str = "agent_id, at, availability, status, cause, ended";

/// A row of [`COLS`] into `b`'s next mark (the agent id read in place, not copied).
fn mark(b: &mut Builder, r: &rusqlite::Row<'_>) -> StoreResult<Mark> {
    let agent = b.agent(r.get_ref(0)?.as_str()?);
    Ok(Mark {
        agent,
        at: r.get(1)?,
        availability: decoded(2, r.get(2)?)?,
        status: decoded(3, r.get(3)?)?,
        cause: decoded(4, r.get(4)?)?,
        ended: match r.get::<_, Option<i64>>(5)? {
            Some(c) => Some(decoded(5, c)?),
            None => None,
        },
    })
}

/// Deletes, in one batch of at most `batch`, rows older than `before` that a later row of
/// the same agent, also older than `before`, supersedes. Reaches old rows through the
/// `(account_id, at)` index, so a round with nothing to delete reads only each agent's kept
/// row.
pub(super) fn prune_batch(tx: &Connection, before: i64, batch: i64) -> StoreResult<usize> {
    tx.prepare_cached(
        "DELETE FROM availability_log WHERE rowid IN (
                 SELECT l.rowid FROM accounts a
                 JOIN availability_log l ON l.account_id = a.id AND l.at < ?1
                 WHERE EXISTS (
                     SELECT 1 FROM availability_log n
                     WHERE n.agent_id = l.agent_id AND n.at < ?1
                       AND (n.at > l.at OR (n.at = l.at AND n.rowid > l.rowid)))
                 LIMIT ?2)",
    )?
    .execute(params![before, batch])
}

impl Store {
    /// Gives every agent without a row its first one, at `at` (once, after the migration
    /// that made the log; a no-op afterwards).
    pub fn settle_unlogged(&self, at: i64) -> StoreResult<usize> {
        let conn = self.write();
        super::commit::in_tx(&conn, |tx| settle_unlogged(tx, at))
    }

    /// The rows a report over `q` needs (see [`HistoryQuery`]), on the reading connection
    /// (`now` left for the caller, which owns the clock).
    pub fn history(&self, q: &HistoryQuery) -> StoreResult<HistoryRows> {
        self.read(|c| {
            let mut b = Builder::default();
            let agents: Vec<String> = match &q.agent_id {
                Some(id) => vec![id.clone()],
                None => c
                    .prepare_cached("SELECT id FROM agents WHERE account_id = ?1")?
                    .query_map([&*q.account_id], |r| r.get(0))?
                    .collect::<StoreResult<_>>()?,
            };
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {COLS} FROM availability_log
                 WHERE agent_id = ?1 AND at < ?2 ORDER BY at DESC, rowid DESC LIMIT 1"
            ))?;
            for id in &agents {
                let mut rows = stmt.query(params![id, q.from])?;
                if let Some(r) = rows.next()? {
                    let m = mark(&mut b, r)?;
                    b.before(m);
                }
            }
            let (sql, key) = match &q.agent_id {
                Some(id) => (
                    format!(
                        "SELECT {COLS} FROM availability_log
                         WHERE agent_id = ?1 AND at >= ?2 AND at < ?3 ORDER BY at, rowid"
                    ),
                    id.as_str(),
                ),
                None => (
                    format!(
                        "SELECT {COLS} FROM availability_log
                         WHERE account_id = ?1 AND at >= ?2 AND at < ?3 ORDER BY at, rowid"
                    ),
                    &*q.account_id,
                ),
            };
            let mut stmt = c.prepare_cached(&sql)?;
            let mut rows = stmt.query(params![key, q.from, q.to])?;
            while let Some(r) = rows.next()? {
                let m = mark(&mut b, r)?;
                b.row(m);
            }
            Ok(b.finish())
        })
    }
}

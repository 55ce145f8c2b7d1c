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

use presence_protocol::{AgentStatus, Availability, Cause, EndReason};
use rusqlite::{Connection, OptionalExtension, params};

use super::{Store, StoreResult};
use crate::history::query::{HistoryQuery, HistoryRows};
use crate::history::{Last, Logged, Now, next};

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
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
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
            availability: parse(3, &a)?,
            status: parse(4, &s)?,
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
    tx.prepare_cached(
        "INSERT INTO availability_log (account_id, agent_id, at, availability, status, cause,
                                       ended)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        account_id,
        agent_id,
        row.at,
        row.availability.as_str(),
        row.status.as_str(),
        row.cause.as_str(),
        row.ended.map(EndReason::as_str),
    ])?;
    if let Some(e) = crate::history::events::availability(&row, last.map(|l| l.availability)) {
        super::events::emit(tx, &account_id, &e)?;
    }
    Ok(())
}

/// Adds rows made elsewhere (the demo's history) as they are.
pub(super) fn import(tx: &Connection, account_id: &str, rows: &[Logged]) -> StoreResult<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO availability_log (account_id, agent_id, at, availability, status, cause,
                                       ended)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for row in rows {
        stmt.execute(params![
            account_id,
            row.agent_id,
            row.at,
            row.availability.as_str(),
            row.status.as_str(),
            row.cause.as_str(),
            row.ended.map(EndReason::as_str),
        ])?;
    }
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

fn logged(r: &rusqlite::Row<'_>) -> StoreResult<Logged> {
    Ok(Logged {
        agent_id: r.get(0)?,
        at: r.get(1)?,
        availability: parse::<Availability>(2, &r.get::<_, String>(2)?)?,
        status: parse::<AgentStatus>(3, &r.get::<_, String>(3)?)?,
        cause: parse::<Cause>(4, &r.get::<_, String>(4)?)?,
        ended: r
            .get::<_, Option<String>>(5)?
            .map(|s| parse::<EndReason>(5, &s))
            .transpose()?,
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
            let before_sql = format!(
                "SELECT {COLS} FROM availability_log
                 WHERE agent_id = ?1 AND at < ?2 ORDER BY at DESC, rowid DESC LIMIT 1"
            );
            let agents: Vec<String> = match &q.agent_id {
                Some(id) => vec![id.clone()],
                None => c
                    .prepare_cached("SELECT id FROM agents WHERE account_id = ?1")?
                    .query_map([&*q.account_id], |r| r.get(0))?
                    .collect::<StoreResult<_>>()?,
            };
            let mut before = Vec::with_capacity(agents.len());
            let mut stmt = c.prepare_cached(&before_sql)?;
            for id in &agents {
                if let Some(l) = stmt.query_row(params![id, q.from], logged).optional()? {
                    before.push(l);
                }
            }
            let rows = match &q.agent_id {
                Some(id) => c
                    .prepare_cached(&format!(
                        "SELECT {COLS} FROM availability_log
                         WHERE agent_id = ?1 AND at >= ?2 AND at < ?3 ORDER BY at, rowid"
                    ))?
                    .query_map(params![id, q.from, q.to], logged)?
                    .collect::<StoreResult<Vec<_>>>()?,
                None => c
                    .prepare_cached(&format!(
                        "SELECT {COLS} FROM availability_log
                         WHERE account_id = ?1 AND at >= ?2 AND at < ?3 ORDER BY at, rowid"
                    ))?
                    .query_map(params![&*q.account_id, q.from, q.to], logged)?
                    .collect::<StoreResult<Vec<_>>>()?,
            };
            Ok(HistoryRows {
                before,
                rows,
                now: 0,
            })
        })
    }
}

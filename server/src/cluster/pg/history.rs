//! The availability log in PostgreSQL.
//!
//! Guarantees:
//! - [`Pg::settle`] runs in the caller's transaction after its change, with the agent's row
//!   locked (`FOR UPDATE`: a status op and a session edit of one agent are serialised, on any
//!   node), and logs what [`crate::history::next`] decides from the agent's status and
//!   whether a session is live, as that transaction sees them.
//! - Reads for reports are plain `SELECT`s: no table lock, nothing a status change waits for.
//! - Pruning deletes in batches and keeps each agent's last row before the cutoff.

use deadpool_postgres::Transaction;
use futures_util::StreamExt;
use presence_protocol::{EndReason, StatusView};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::Pg;
use super::rows::from_json;
use crate::backend::{BackendError, BackendResult};
use crate::history::query::{Builder, HistoryQuery, HistoryRows, Mark, code, decode};
use crate::history::{Last, Logged, Now, next};

fn decoded<T: strum::IntoEnumIterator>(c: i16) -> BackendResult<T> {
    decode(c.into())
        .ok_or_else(|| BackendError::internal(format!("unknown code {c} in availability_log")))
}

const COLS: &str = "agent_id, at, availability, status, cause, ended";

/// A row of [`COLS`] into `b`'s next mark (the agent id read in place, not copied).
fn mark(b: &mut Builder, r: &Row) -> BackendResult<Mark> {
    Ok(Mark {
        agent: b.agent(r.get::<_, &str>(0)),
        at: r.get(1),
        availability: decoded(r.get(2))?,
        status: decoded(r.get(3))?,
        cause: decoded(r.get(4))?,
        ended: r.get::<_, Option<i16>>(5).map(decoded).transpose()?,
    })
}

impl Pg {
    /// Logs the agent's availability at `at` if it changed, inside `tx`; `ended` is how its
    /// sessions ended when the caller ended some. An agent that no longer exists logs
    /// nothing.
    pub(super) async fn settle(
        &self,
        tx: &Transaction<'_>,
        agent_id: &str,
        at: i64,
        ended: Option<EndReason>,
    ) -> BackendResult<()> {
        // The agent's row is locked; its last row is read beside it (no write to `agents`:
        // a second update of a row this transaction already changed would re-check its
        // account's foreign key and wait for an account edit that waits for this agent).
        let read = tx
            .prepare_cached(
                "SELECT a.account_id, a.status, l.availability, l.status, l.at, \
                 EXISTS (SELECT 1 FROM sessions WHERE agent_id = $1 AND ended_at IS NULL) \
                 FROM agents a LEFT JOIN LATERAL (SELECT availability, status, at \
                 FROM availability_log WHERE agent_id = $1 ORDER BY at DESC, id DESC LIMIT 1) l \
                 ON true WHERE a.id = $1 FOR UPDATE OF a",
            )
            .await
            .map_err(|e| self.db(e))?;
        let Some(r) = tx
            .query_opt(&read, &[&agent_id])
            .await
            .map_err(|e| self.db(e))?
        else {
            return Ok(());
        };
        let status: StatusView = from_json(r.get(1))?;
        let last = match (
            r.get::<_, Option<i16>>(2),
            r.get::<_, Option<i16>>(3),
            r.get::<_, Option<i64>>(4),
        ) {
            (Some(a), Some(s), Some(at)) => Some(Last {
                availability: decoded(a)?,
                status: decoded(s)?,
                at,
            }),
            _ => None,
        };
        let Some(row) = next(agent_id, last, Now::of(&status, r.get(5)), at, ended) else {
            return Ok(());
        };
        let account_id: &str = r.get(0);
        let write = tx
            .prepare_cached(
                "INSERT INTO availability_log \
                 (account_id, agent_id, at, availability, status, cause, ended) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .await
            .map_err(|e| self.db(e))?;
        tx.execute(
            &write,
            &[
                &account_id,
                &agent_id,
                &row.at,
                &code(row.availability),
                &code(row.status),
                &code(row.cause),
                &row.ended.map(code),
            ],
        )
        .await
        .map_err(|e| self.db(e))?;
        let before = last.map(|l| l.availability);
        if let Some(e) = crate::history::events::availability(&row, before) {
            self.emit(tx, account_id, &e).await?;
        }
        Ok(())
    }

    /// Gives every agent without a row its first one, at `at` (after the migration that
    /// made the log; a no-op afterwards, and safe on several nodes at once).
    pub async fn settle_unlogged(&self, at: i64) -> BackendResult<usize> {
        let ids: Vec<String> = self
            .read_all(
                "SELECT id FROM agents a WHERE NOT EXISTS \
                 (SELECT 1 FROM availability_log WHERE agent_id = a.id)",
                &[],
                |r| Ok(r.get(0)),
            )
            .await?;
        for id in &ids {
            let mut c = self.client().await?;
            let tx = c.transaction().await.map_err(|e| self.db(e))?;
            self.settle(&tx, id, at, None).await?;
            self.commit_events(tx).await?;
        }
        Ok(ids.len())
    }

    /// Adds rows made elsewhere (the demo's history, a benchmark's) as they are, in one
    /// transaction, in batches of 10 000 rows per statement, then refreshes the table's
    /// statistics.
    pub async fn import_history(&self, account_id: &str, rows: &[Logged]) -> BackendResult<()> {
        let _op = self.op();
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(|e| self.db(e))?;
        for chunk in rows.chunks(10_000) {
            let agents: Vec<&str> = chunk.iter().map(|r| r.agent_id.as_str()).collect();
            let at: Vec<i64> = chunk.iter().map(|r| r.at).collect();
            let avail: Vec<i16> = chunk.iter().map(|r| code(r.availability)).collect();
            let status: Vec<i16> = chunk.iter().map(|r| code(r.status)).collect();
            let cause: Vec<i16> = chunk.iter().map(|r| code(r.cause)).collect();
            let ended: Vec<Option<i16>> = chunk.iter().map(|r| r.ended.map(code)).collect();
            tx.execute(
                "INSERT INTO availability_log \
                 (account_id, agent_id, at, availability, status, cause, ended) \
                 SELECT $1, * FROM unnest($2::text[], $3::bigint[], $4::int2[], $5::int2[], \
                 $6::int2[], $7::int2[])",
                &[&account_id, &agents, &at, &avail, &status, &cause, &ended],
            )
            .await
            .map_err(|e| self.db(e))?;
        }
        tx.commit().await.map_err(|e| self.db(e))?;
        // Fresh statistics: without them the planner takes the freshly filled table for a
        // small one and sorts what its index would give in order.
        c.execute("ANALYZE availability_log", &[])
            .await
            .map_err(|e| self.db(e))?;
        Ok(())
    }

    /// The rows a report over `q` needs (see [`HistoryQuery`]), in one read-only
    /// repeatable-read transaction (a consistent snapshot; takes no lock).
    pub async fn history(&self, q: &HistoryQuery) -> BackendResult<HistoryRows> {
        let _op = self.op();
        let mut c = self.client().await?;
        let tx = self.snapshot(&mut c).await?;
        let account_id = &*q.account_id;
        let mut b = Builder::default();
        let before_q = format!(
            "SELECT l.* FROM agents a CROSS JOIN LATERAL ( \
             SELECT {COLS} FROM availability_log \
             WHERE agent_id = a.id AND at < $2 ORDER BY at DESC, id DESC LIMIT 1) l \
             WHERE a.account_id = $1 AND ($3::text IS NULL OR a.id = $3)"
        );
        for r in tx
            .query(&before_q, &[&account_id, &q.from, &q.agent_id])
            .await
            .map_err(|e| self.db(e))?
        {
            let m = mark(&mut b, &r)?;
            b.before(m);
        }
        // One agent's rows by the agent's index, everyone's by the account's: both give
        // `(at, id)` order without a sort.
        let (rows_q, key) = match &q.agent_id {
            Some(id) => (
                format!(
                    "SELECT {COLS} FROM availability_log \
                     WHERE agent_id = $1 AND at >= $2 AND at < $3 ORDER BY at, id"
                ),
                id.as_str(),
            ),
            None => (
                format!(
                    "SELECT {COLS} FROM availability_log \
                     WHERE account_id = $1 AND at >= $2 AND at < $3 ORDER BY at, id"
                ),
                account_id,
            ),
        };
        let stream = tx
            .query_raw(&rows_q, [&key as &(dyn ToSql + Sync), &q.from, &q.to])
            .await
            .map_err(|e| self.db(e))?;
        futures_util::pin_mut!(stream);
        while let Some(r) = stream.next().await {
            let r = r.map_err(|e| self.db(e))?;
            let m = mark(&mut b, &r)?;
            b.row(m);
        }
        tx.commit().await.map_err(|e| self.db(e))?;
        Ok(b.finish())
    }

    /// Deletes up to `batch` rows older than `before` that a later row of the same agent,
    /// also older than `before`, supersedes; how many it deleted.
    pub async fn prune_availability(&self, before: i64, batch: i64) -> BackendResult<u64> {
        let _op = self.op();
        let c = self.client().await?;
        c.execute(
            "DELETE FROM availability_log WHERE id IN ( \
             SELECT l.id FROM accounts a \
             JOIN availability_log l ON l.account_id = a.id AND l.at < $1 WHERE EXISTS ( \
             SELECT 1 FROM availability_log n WHERE n.agent_id = l.agent_id AND n.at < $1 \
             AND (n.at, n.id) > (l.at, l.id)) LIMIT $2)",
            &[&before, &batch],
        )
        .await
        .map_err(|e| self.db(e))
    }
}

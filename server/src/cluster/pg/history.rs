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
use presence_protocol::{AgentStatus, Availability, EndReason, StatusView};
use tokio_postgres::Row;

use super::Pg;
use super::rows::from_json;
use crate::backend::{BackendError, BackendResult};
use crate::history::query::{HistoryQuery, HistoryRows};
use crate::history::{Last, Logged, Now, next};

fn parse<T: std::str::FromStr>(s: &str) -> BackendResult<T> {
    s.parse()
        .map_err(|_| BackendError::internal(format!("unknown value {s:?} in availability_log")))
}

const COLS: &str = "agent_id, at, availability, status, cause, ended";

fn logged(r: &Row) -> BackendResult<Logged> {
    Ok(Logged {
        agent_id: r.get(0),
        at: r.get(1),
        availability: parse::<Availability>(r.get(2))?,
        status: parse::<AgentStatus>(r.get(3))?,
        cause: parse(r.get(4))?,
        ended: r
            .get::<_, Option<&str>>(5)
            .map(parse::<EndReason>)
            .transpose()?,
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
            r.get::<_, Option<&str>>(2),
            r.get::<_, Option<&str>>(3),
            r.get::<_, Option<i64>>(4),
        ) {
            (Some(a), Some(s), Some(at)) => Some(Last {
                availability: parse(a)?,
                status: parse(s)?,
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
                &row.availability.as_str(),
                &row.status.as_str(),
                &row.cause.as_str(),
                &row.ended.map(EndReason::as_str),
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
            tx.commit().await.map_err(|e| self.db(e))?;
        }
        Ok(ids.len())
    }

    /// Adds rows made elsewhere (the demo's history, a benchmark's) as they are, in one
    /// transaction, in batches of 10 000 rows per statement.
    pub async fn import_history(&self, account_id: &str, rows: &[Logged]) -> BackendResult<()> {
        let _op = self.op();
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(|e| self.db(e))?;
        for chunk in rows.chunks(10_000) {
            let agents: Vec<&str> = chunk.iter().map(|r| r.agent_id.as_str()).collect();
            let at: Vec<i64> = chunk.iter().map(|r| r.at).collect();
            let avail: Vec<&str> = chunk.iter().map(|r| r.availability.as_str()).collect();
            let status: Vec<&str> = chunk.iter().map(|r| r.status.as_str()).collect();
            let cause: Vec<&str> = chunk.iter().map(|r| r.cause.as_str()).collect();
            let ended: Vec<Option<&str>> = chunk
                .iter()
                .map(|r| r.ended.map(EndReason::as_str))
                .collect();
            tx.execute(
                "INSERT INTO availability_log \
                 (account_id, agent_id, at, availability, status, cause, ended) \
                 SELECT $1, * FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[], \
                 $6::text[], $7::text[])",
                &[&account_id, &agents, &at, &avail, &status, &cause, &ended],
            )
            .await
            .map_err(|e| self.db(e))?;
        }
        tx.commit().await.map_err(|e| self.db(e))
    }

    /// The rows a report over `q` needs (see [`HistoryQuery`]), in one read-only
    /// repeatable-read transaction (a consistent snapshot; takes no lock).
    pub async fn history(&self, q: &HistoryQuery) -> BackendResult<HistoryRows> {
        let _op = self.op();
        let mut c = self.client().await?;
        let tx = c
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(|e| self.db(e))?;
        let account_id = &*q.account_id;
        let before_q = format!(
            "SELECT l.* FROM agents a CROSS JOIN LATERAL ( \
             SELECT {COLS} FROM availability_log \
             WHERE agent_id = a.id AND at < $2 ORDER BY at DESC, id DESC LIMIT 1) l \
             WHERE a.account_id = $1 AND ($3::text IS NULL OR a.id = $3)"
        );
        let before = tx
            .query(&before_q, &[&account_id, &q.from, &q.agent_id])
            .await
            .map_err(|e| self.db(e))?
            .iter()
            .map(logged)
            .collect::<BackendResult<Vec<_>>>()?;
        let rows_q = match q.agent_id {
            Some(_) => format!(
                "SELECT {COLS} FROM availability_log \
                 WHERE agent_id = $4 AND account_id = $1 AND at >= $2 AND at < $3 \
                 ORDER BY at, id"
            ),
            None => format!(
                "SELECT {COLS} FROM availability_log \
                 WHERE account_id = $1 AND at >= $2 AND at < $3 AND $4::text IS NULL \
                 ORDER BY at, id"
            ),
        };
        let rows = tx
            .query(&rows_q, &[&account_id, &q.from, &q.to, &q.agent_id])
            .await
            .map_err(|e| self.db(e))?
            .iter()
            .map(logged)
            .collect::<BackendResult<Vec<_>>>()?;
        tx.commit().await.map_err(|e| self.db(e))?;
        Ok(HistoryRows {
            before,
            rows,
            now: 0,
        })
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

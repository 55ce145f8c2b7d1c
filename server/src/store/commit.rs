//! Transactions of the embedded store: one write, a group commit of several, lease
//! flushes, and pruning.
//!
//! Guarantees: a write commits whole or not at all, and a failed one leaves no transaction
//! open for the next; in a group commit a write that can be refused on its own runs in a
//! savepoint, so its refusal leaves the others in, and any other failure fails them all.

use presence_protocol::Mode;
use rusqlite::{Connection, params};

use super::{Store, StoreResult, Write, store_error};

impl Store {
    /// Commits one write on its own (start-up, tools, benchmarks); the backend's requests go
    /// through its group commit instead ([`Store::commit_writes`]).
    pub fn commit(&self, w: &Write) -> StoreResult<()> {
        let conn = self.write();
        in_tx(&conn, |tx| w.apply(tx))
    }

    /// Commits several writes in one transaction and answers each, in order. A write that
    /// can be refused on its own (a taken slug or email) runs in a savepoint, so its refusal
    /// leaves the others in; any other failure fails them all, and then none is on disk.
    pub fn commit_writes(&self, writes: &[&Write]) -> Vec<StoreResult<()>> {
        let conn = self.write();
        let mut refusals: Vec<Option<rusqlite::Error>> = Vec::with_capacity(writes.len());
        let done = in_tx(&conn, |tx| {
            for w in writes {
                if w.may_be_refused() {
                    refusals.push(in_savepoint(tx, |tx| w.apply(tx))?.err());
                } else {
                    w.apply(tx)?;
                    refusals.push(None);
                }
            }
            Ok(())
        });
        match done {
            Ok(()) => refusals
                .into_iter()
                .map(|r| r.map_or(Ok(()), Err))
                .collect(),
            Err(e) => {
                let why = format!("group commit failed: {e}");
                writes
                    .iter()
                    .map(|_| Err(store_error(rusqlite::ffi::SQLITE_IOERR, why.clone())))
                    .collect()
            }
        }
    }

    /// Writes a batch of in-memory leases.
    pub fn flush_leases(&self, leases: &[(String, Mode, i64)]) -> StoreResult<()> {
        if leases.is_empty() {
            return Ok(());
        }
        let conn = self.write();
        in_tx(&conn, |tx| {
            let mut stmt = tx.prepare_cached(
                "UPDATE sessions SET mode = ?2, lease_until = ?3
                 WHERE id = ?1 AND ended_reason IS NULL",
            )?;
            for (id, mode, lease) in leases {
                stmt.execute(params![id, mode.as_str(), lease])?;
            }
            Ok(())
        })
    }

    /// Deletes ended sessions that ended before `sessions_before`, status ops recorded
    /// before `ops_before` and status and availability log entries from before `log_before`
    /// (each agent keeps its last availability row before it), and events from before
    /// `events_before`, in batches so
    /// no single transaction holds the writer long. Blocking: call off the runtime. Returns
    /// (sessions, ops, log entries) deleted.
    pub fn prune(
        &self,
        sessions_before: i64,
        ops_before: i64,
        log_before: i64,
        events_before: i64,
    ) -> StoreResult<(usize, usize, usize)> {
        const BATCH: i64 = 1000;
        let mut total = (0, 0, 0);
        loop {
            let (s, o, l) = {
                let conn = self.write();
                in_tx(&conn, |tx| {
                    let s = tx
                        .prepare_cached(
                            "DELETE FROM sessions WHERE rowid IN (SELECT rowid FROM sessions
                             WHERE ended_reason IS NOT NULL AND ended_at < ?1 LIMIT ?2)",
                        )?
                        .execute(params![sessions_before, BATCH])?;
                    let o = tx
                        .prepare_cached(
                            "DELETE FROM status_ops WHERE (agent_id, op_id) IN
                             (SELECT agent_id, op_id FROM status_ops WHERE created_at < ?1 LIMIT ?2)",
                        )?
                        .execute(params![ops_before, BATCH])?;
                    let l = tx
                        .prepare_cached(
                            "DELETE FROM status_log WHERE (agent_id, version) IN
                             (SELECT agent_id, version FROM status_log WHERE applied_at < ?1
                              LIMIT ?2)",
                        )?
                        .execute(params![log_before, BATCH])?
                        + super::history::prune_batch(tx, log_before, BATCH)?
                        + super::events::prune_batch(tx, events_before, BATCH)?;
                    Ok((s, o, l))
                })?
            };
            total.0 += s;
            total.1 += o;
            total.2 += l;
            if [s, o, l].iter().all(|n| (*n as i64) < BATCH) {
                return Ok(total);
            }
        }
    }
}

/// Runs `f` in one transaction with cached `BEGIN`/`COMMIT` statements (rusqlite's
/// `transaction()` parses them on every call, about a third of a small write's cost).
pub(super) fn in_tx<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> StoreResult<T>,
) -> StoreResult<T> {
    conn.prepare_cached("BEGIN")?.execute([])?;
    let result = f(conn).and_then(|v| {
        conn.prepare_cached("COMMIT")?.execute([])?;
        Ok(v)
    });
    if result.is_err() && !conn.is_autocommit() {
        // Nothing of a failed write stays pending for the next one.
        let _ = conn
            .prepare_cached("ROLLBACK")
            .and_then(|mut s| s.execute([]));
    }
    result
}

/// Runs `f` in a savepoint of the open transaction: if it fails, what it did is undone and
/// the transaction goes on. The outer `Err` is a failure to make or leave the savepoint.
fn in_savepoint(
    tx: &Connection,
    f: impl FnOnce(&Connection) -> StoreResult<()>,
) -> StoreResult<Result<(), rusqlite::Error>> {
    tx.prepare_cached("SAVEPOINT one_write")?.execute([])?;
    let result = f(tx);
    if result.is_err() {
        tx.prepare_cached("ROLLBACK TO one_write")?.execute([])?;
    }
    tx.prepare_cached("RELEASE one_write")?.execute([])?;
    Ok(result)
}

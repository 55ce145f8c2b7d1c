//! Status ops in PostgreSQL: the decision of a status change under the agent's row lock,
//! and the statuses the reconciler applies again.
//!
//! Guarantees: a status op is decided with the agent's row locked (`FOR UPDATE`) and stored
//! with its answer in the same transaction, so two nodes deciding for one agent are
//! serialised and an op id is answered once and for all.

use presence_protocol::{CustomStatus, StatusLogEntry, StatusView};

use super::Pg;
use super::rows::{from_json, json};
use crate::backend::{BackendError, BackendResult, LogQuery};
use crate::ops::idle::Activity;
use crate::ops::status::{StatusChange, StatusPlan, StatusSlice};

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

impl Pg {
    /// Decides and commits a status op with the agent's row locked: `decide` gets the current
    /// status, its op id and the device of `session_id`, and returns the new status if the
    /// op applies. An op id seen within `since` is answered as it was the first time. Four
    /// round trips (begin, one read, one write, commit), on prepared statements.
    pub async fn status_op(
        &self,
        change: &StatusChange,
        since: i64,
        now: i64,
        activity: Option<Activity>,
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
        // Read after the agent's row is locked (a change that removes custom statuses locks
        // every agent of the account first), and only when the change names one.
        let custom = match &change.custom_status {
            None => None,
            Some(id) => {
                let list = tx
                    .query_one(
                        "SELECT custom_statuses FROM accounts WHERE id = $1",
                        &[&account_id],
                    )
                    .await
                    .map_err(|e| self.db(e))?;
                let list: Vec<CustomStatus> = from_json(list.get(0))?;
                list.into_iter().find(|c| c.id == *id)
            }
        };
        let slice = StatusSlice {
            now,
            current: from_json(row.get(0))?,
            current_op: row.get(1),
            device: row.get(3),
            custom,
            activity,
        };
        let resp = decide(&slice)?;
        let body = json(&resp);
        let (applied, status) = (resp.applied, resp.status);
        if !change.recorded(applied) {
            // Nothing changed and nothing will replay it: no write.
            tx.rollback().await.map_err(|e| self.db(e))?;
            return Ok(StatusDecision::Decided {
                applied,
                status,
                json: body.to_string(),
            });
        }
        let write = tx
            .prepare_cached(
                "WITH u AS (UPDATE agents SET status = $5, status_op = $2, status_seq = $6, \
                 updated_at = $4 WHERE id = $1 AND $7), \
                 l AS (INSERT INTO status_log (agent_id, version, applied_at, status) \
                 SELECT $1, $6, $4, $5 WHERE $7 ON CONFLICT DO NOTHING) \
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
        if applied {
            self.emit_status(&tx, account_id, agent_id, &status, now)
                .await?;
            self.settle(&tx, agent_id, now, None).await?;
        }
        self.commit_events(tx).await?;
        self.metrics.observe_commit(_op.start.elapsed());
        Ok(StatusDecision::Decided {
            applied,
            status,
            json: body.to_string(),
        })
    }

    /// (account, agent, until) of timed statuses that should have ended by `before` (the
    /// reconciler ends them: a node was lost between the sweep and the change).
    pub async fn overdue_timers(&self, before: i64) -> BackendResult<Vec<(String, String, i64)>> {
        self.read_all(
            "SELECT account_id, id, status_until FROM agents \
             WHERE status_until IS NOT NULL AND status_until < $1 LIMIT 1000",
            &[&before],
            |r| Ok((r.get(0), r.get(1), r.get(2))),
        )
        .await
    }

    /// An agent's status log, newest first (see [`LogQuery`]).
    pub async fn status_log(&self, q: &LogQuery) -> BackendResult<Vec<StatusLogEntry>> {
        self.read_all(
            "SELECT l.status, l.applied_at FROM status_log l \
             JOIN agents a ON a.id = l.agent_id AND a.account_id = $6 \
             WHERE l.agent_id = $1 AND l.version < $4 AND l.applied_at >= $2 \
             AND l.applied_at < $3 ORDER BY l.version DESC LIMIT $5",
            &[
                &q.agent_id,
                &q.from,
                &q.to,
                &q.before_version,
                &i64::from(q.limit),
                &&*q.account_id,
            ],
            |r| {
                Ok(StatusLogEntry {
                    status: from_json(r.get(0))?,
                    applied_at: r.get(1),
                })
            },
        )
        .await
    }

    /// Agents whose status changed since `since` (the reconciler re-applies them).
    pub async fn recent_statuses(
        &self,
        since: i64,
    ) -> BackendResult<Vec<(String, String, StatusView, String)>> {
        self.read_all(
            "SELECT account_id, id, status, status_op FROM agents WHERE updated_at >= $1",
            &[&since],
            |r| Ok((r.get(0), r.get(1), from_json(r.get(2))?, r.get(3))),
        )
        .await
    }
}

//! Sessions in PostgreSQL: opening, reading, ending, the lease last written, and the
//! retention of what has ended.
//!
//! Guarantees: a session edit is planned and stored in one transaction with the agent's row
//! locked (`FOR UPDATE`, as status ops lock it), so two nodes editing one agent's sessions
//! serialise; the sessions a new one replaces (as planned) end in that transaction; a
//! session is ended once (only a live one is updated, so the first reason stays); a session
//! whose agent is gone reads as ended.

use presence_protocol::{EndReason, Mode, PushRegistration, Role, Settings};

use super::rows::{
    AGENT_COLS, SESSION_COLS, agent_row, json, mode_str, parse, prefixed, reason_str, session_row,
};
use super::{Pg, SessionRow};
use crate::backend::{BackendError, BackendResult};
use crate::ops::sessions::{AgentSlice, LiveSession, SessionEdit, SessionPlan, Sessions};

/// A stored live session as a plan sees it (the lease as last written).
pub fn live(s: SessionRow) -> LiveSession {
    LiveSession {
        id: s.id,
        device: s.device,
        push: s.push,
        mode: s.mode,
        lease_until: s.lease_until,
        connected: false,
        idle_ms: None,
    }
}

impl Pg {
    /// Runs a session edit in one transaction with the agent's row locked: loads the agent
    /// and its live sessions, lets `plan` decide, stores the edit. Returns the slice the plan
    /// read, the edit, and the sessions it ended (with their rows as they were).
    pub async fn edit_sessions(
        &self,
        account_id: &str,
        agent_id: &str,
        timings: Settings,
        now: i64,
        which: &Sessions,
        plan: SessionPlan,
    ) -> BackendResult<(AgentSlice, SessionEdit, Vec<SessionRow>)> {
        let _op = self.op();
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(|e| self.db(e))?;
        let q =
            format!("SELECT {AGENT_COLS} FROM agents WHERE id = $1 AND account_id = $2 FOR UPDATE");
        let agent = tx
            .query_opt(&q, &[&agent_id, &account_id])
            .await
            .map_err(|e| self.db(e))?
            .map(|r| agent_row(&r))
            .transpose()?
            .ok_or_else(|| BackendError::not_found("agent"))?;
        let rows = match which {
            Sessions::None => Vec::new(),
            Sessions::All => {
                let q = format!(
                    "SELECT {SESSION_COLS} FROM sessions \
                     WHERE agent_id = $1 AND ended_at IS NULL ORDER BY id"
                );
                tx.query(&q, &[&agent_id])
                    .await
                    .map_err(|e| self.db(e))?
                    .iter()
                    .map(session_row)
                    .collect::<BackendResult<Vec<_>>>()?
            }
            Sessions::Opening { device_id, cap } => {
                let q = format!(
                    "SELECT {SESSION_COLS} FROM sessions \
                     WHERE agent_id = $1 AND ended_at IS NULL \
                     AND (device->>'id' = $2 OR (SELECT count(*) FROM sessions \
                          WHERE agent_id = $1 AND ended_at IS NULL) >= $3) \
                     ORDER BY id"
                );
                tx.query(&q, &[&agent_id, device_id, &(*cap as i64)])
                    .await
                    .map_err(|e| self.db(e))?
                    .iter()
                    .map(session_row)
                    .collect::<BackendResult<Vec<_>>>()?
            }
            Sessions::One(id) => {
                let q = format!(
                    "SELECT {SESSION_COLS} FROM sessions \
                     WHERE id = $1 AND agent_id = $2 AND ended_at IS NULL"
                );
                tx.query(&q, &[id, &agent_id])
                    .await
                    .map_err(|e| self.db(e))?
                    .iter()
                    .map(session_row)
                    .collect::<BackendResult<Vec<_>>>()?
            }
        };
        let slice = AgentSlice {
            now,
            agent,
            timings,
            sessions: rows.iter().cloned().map(live).collect(),
            view: None,
            custom_statuses: Vec::new(),
        };
        let edit = plan(&slice)?;
        let ended = match &edit {
            SessionEdit::Open(n) => {
                let q = format!(
                    "UPDATE sessions SET ended_at = $3, end_reason = 'replaced' \
                     WHERE agent_id = $1 AND id = ANY($2) AND ended_at IS NULL \
                     RETURNING {SESSION_COLS}"
                );
                let replaced = tx
                    .query(&q, &[&agent_id, &n.replaces, &now])
                    .await
                    .map_err(|e| self.db(e))?
                    .iter()
                    .map(session_row)
                    .collect::<BackendResult<Vec<_>>>()?;
                tx.execute(
                    "INSERT INTO sessions (id, account_id, agent_id, token_hash, device, push, \
                     mode, lease_until, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)",
                    &[
                        &n.id,
                        &account_id,
                        &agent_id,
                        &n.token_hash.as_slice(),
                        &json(&n.device),
                        &n.push.as_ref().map(json),
                        &mode_str(n.mode),
                        &n.lease_until,
                        &now,
                    ],
                )
                .await
                .map_err(|e| self.db(e))?;
                self.emit_sessions(&tx, &replaced, Some(EndReason::Replaced), now)
                    .await?;
                let started =
                    crate::history::events::session(agent_id, &n.id, &n.device, None, now);
                self.emit(&tx, account_id, &started).await?;
                self.settle(&tx, agent_id, now, Some(EndReason::Replaced))
                    .await?;
                replaced
            }
            SessionEdit::End {
                session_id, reason, ..
            } => {
                tx.execute(
                    "UPDATE sessions SET ended_at = $2, end_reason = $3 \
                     WHERE id = $1 AND ended_at IS NULL",
                    &[session_id, &now, &reason_str(*reason)],
                )
                .await
                .map_err(|e| self.db(e))?;
                let ended: Vec<SessionRow> =
                    rows.into_iter().filter(|s| s.id == *session_id).collect();
                self.emit_sessions(&tx, &ended, Some(*reason), now).await?;
                self.settle(&tx, agent_id, now, Some(*reason)).await?;
                ended
            }
            SessionEdit::Push { session_id, push } => {
                tx.execute(
                    "UPDATE sessions SET push = $2 WHERE id = $1",
                    &[session_id, &push.as_ref().map(json)],
                )
                .await
                .map_err(|e| self.db(e))?;
                Vec::new()
            }
        };
        self.commit_events(tx).await?;
        Ok((slice, edit, ended))
    }

    /// Whether the agent has a session (live or ended, not yet pruned) on `device_id`.
    pub async fn known_device(&self, agent_id: &str, device_id: &str) -> BackendResult<bool> {
        self.read_one(
            "SELECT 1 FROM sessions WHERE agent_id = $1 AND device->>'id' = $2 LIMIT 1",
            &[&agent_id, &device_id],
            |_| Ok(()),
        )
        .await
        .map(|r| r.is_some())
    }

    /// The live sessions of an agent, by id.
    pub async fn agent_sessions(&self, agent_id: &str) -> BackendResult<Vec<SessionRow>> {
        let q = format!(
            "SELECT {SESSION_COLS} FROM sessions WHERE agent_id = $1 AND ended_at IS NULL \
             ORDER BY id"
        );
        self.read_all(&q, &[&agent_id], session_row).await
    }

    /// The session a token hash opened, live or ended, with the agent's role.
    pub async fn session_by_token(
        &self,
        token_hash: &[u8],
    ) -> BackendResult<Option<(SessionRow, Role)>> {
        let q = format!(
            "SELECT {}, a.role FROM sessions s LEFT JOIN agents a ON a.id = s.agent_id \
             WHERE s.token_hash = $1",
            prefixed(SESSION_COLS, "s")
        );
        self.read_one(&q, &[&token_hash], |r| {
            let role: Option<String> = r.get(8);
            let mut s = session_row(r)?;
            if role.is_none() && s.ended_at.is_none() {
                // The agent is gone: its sessions are as good as ended.
                s.ended_at = Some(0);
            }
            let role = match role {
                Some(r) => parse("role", &r)?,
                None => Role::Agent,
            };
            Ok((s, role))
        })
        .await
    }

    pub async fn session(&self, id: &str) -> BackendResult<Option<SessionRow>> {
        let q = format!("SELECT {SESSION_COLS} FROM sessions WHERE id = $1");
        self.read_one(&q, &[&id], session_row).await
    }

    /// Every live session of an account (to seed Redis).
    pub async fn live_sessions(&self, account_id: &str) -> BackendResult<Vec<SessionRow>> {
        let q = format!(
            "SELECT {SESSION_COLS} FROM sessions WHERE account_id = $1 AND ended_at IS NULL"
        );
        self.read_all(&q, &[&account_id], session_row).await
    }

    /// Ends a session if it is live, and logs its agent's availability with it; true when
    /// this call ended it.
    pub async fn end_session(&self, id: &str, reason: EndReason, now: i64) -> BackendResult<bool> {
        let _op = self.op();
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(|e| self.db(e))?;
        let q = format!(
            "UPDATE sessions SET ended_at = $2, end_reason = $3 \
             WHERE id = $1 AND ended_at IS NULL RETURNING {SESSION_COLS}"
        );
        let ended = tx
            .query_opt(&q, &[&id, &now, &reason_str(reason)])
            .await
            .map_err(|e| self.db(e))?;
        let Some(row) = ended else {
            return Ok(false);
        };
        let s = session_row(&row)?;
        self.emit_sessions(&tx, std::slice::from_ref(&s), Some(reason), now)
            .await?;
        self.settle(&tx, &s.agent_id, now, Some(reason)).await?;
        self.commit_events(tx).await?;
        Ok(true)
    }

    /// Removes a session's push registration if it is still `reg` (a provider declared it
    /// dead); true when it was removed.
    pub async fn drop_push(&self, id: &str, reg: &PushRegistration) -> BackendResult<bool> {
        let _op = self.op();
        let c = self.client().await?;
        let n = c
            .execute(
                "UPDATE sessions SET push = NULL WHERE id = $1 AND push = $2",
                &[&id, &json(reg)],
            )
            .await
            .map_err(|e| self.db(e))?;
        Ok(n == 1)
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

    /// Forgets ended sessions, status ops and status and availability log entries older
    /// than their retention (each agent keeps its last availability row before it):
    /// (sessions, ops, log entries). The log goes in batches by its time index,
    /// so no statement holds locks long.
    pub async fn prune(
        &self,
        sessions_before: i64,
        ops_before: i64,
        log_before: i64,
    ) -> BackendResult<(u64, u64, u64)> {
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
        let mut log = 0;
        loop {
            let n = c
                .execute(
                    "DELETE FROM status_log WHERE ctid IN (SELECT ctid FROM status_log \
                     WHERE applied_at < $1 LIMIT 1000)",
                    &[&log_before],
                )
                .await
                .map_err(|e| self.db(e))?;
            log += n;
            if n < 1000 {
                break;
            }
        }
        drop(c);
        loop {
            let n = self.prune_availability(log_before, 1000).await?;
            log += n;
            if n < 1000 {
                break;
            }
        }
        Ok((a, b, log))
    }
}

//! Sessions in PostgreSQL: opening, reading, ending, the lease last written, and the
//! retention of what has ended.
//!
//! Guarantees: a session that replaces the same device's earlier one ends it in the same
//! transaction; a session is ended once (only a live one is updated, so the first reason
//! stays); a session whose agent is gone reads as ended.

use presence_protocol::{EndReason, Mode, PushRegistration, Role};

use super::rows::{SESSION_COLS, json, mode_str, parse, prefixed, reason_str, session_row};
use super::{Pg, SessionRow};
use crate::backend::BackendResult;

impl Pg {
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

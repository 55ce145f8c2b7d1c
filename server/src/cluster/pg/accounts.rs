//! Accounts and their agents in PostgreSQL: creation, reads, and edits under the account's
//! row lock.
//!
//! Guarantees: an account is inserted with its owner in one transaction; a taken slug or
//! email is a `Conflict`; an edit reads the account and its agents with the account row
//! locked (`FOR UPDATE`) and commits what its plan decided in the same transaction, so edits
//! of one account serialise across every node.

use presence_protocol::EndReason;
use tokio_postgres::error::SqlState;

use super::rows::{
    ACCOUNT_COLS, AGENT_COLS, SESSION_COLS, account_row, agent_row, json, prefixed, role_str,
    session_row,
};
use super::{AccountRow, AgentRow, Pg, SessionRow, db_err};
use crate::backend::{BackendError, BackendResult};
use crate::ops::{AccountEdit, AccountPlan, AccountSlice};

impl Pg {
    /// Inserts an account and its owner; a taken slug is a `Conflict`.
    pub async fn insert_account(
        &self,
        a: &AccountRow,
        owner: &AgentRow,
        now: i64,
    ) -> BackendResult<()> {
        let _op = self.op();
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(|e| self.db(e))?;
        let r = tx
            .execute(
                "INSERT INTO accounts (id, slug, name, widget_key, settings, opening_hours, \
                 groups_json, view_reserved, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)",
                &[
                    &a.id,
                    &a.slug,
                    &a.name,
                    &a.widget_key,
                    &json(&a.settings),
                    &json(&a.opening_hours),
                    &json(&a.groups),
                    &a.view_version,
                    &now,
                ],
            )
            .await;
        if let Err(e) = r {
            if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
                return Err(BackendError::conflict(format!(
                    "account slug {:?} is taken",
                    a.slug
                )));
            }
            return Err(self.db(e));
        }
        insert_agent_in(&*tx, owner, now).await?;
        self.settle(&tx, &owner.id, now, None).await?;
        tx.commit().await.map_err(|e| self.db(e))
    }

    pub async fn account_by_slug(&self, slug: &str) -> BackendResult<Option<AccountRow>> {
        let q = format!("SELECT {ACCOUNT_COLS} FROM accounts WHERE slug = $1");
        self.read_one(&q, &[&slug], account_row).await
    }

    pub async fn account_by_widget_key(&self, key: &str) -> BackendResult<Option<AccountRow>> {
        let q = format!("SELECT {ACCOUNT_COLS} FROM accounts WHERE widget_key = $1");
        self.read_one(&q, &[&key], account_row).await
    }

    pub async fn account(&self, id: &str) -> BackendResult<AccountRow> {
        let q = format!("SELECT {ACCOUNT_COLS} FROM accounts WHERE id = $1");
        self.read_one(&q, &[&id], account_row)
            .await?
            .ok_or_else(|| BackendError::not_found("account"))
    }

    pub async fn count_accounts(&self) -> BackendResult<i64> {
        let _op = self.op();
        let c = self.client().await?;
        Ok(c.query_one("SELECT count(*) FROM accounts", &[])
            .await
            .map_err(|e| self.db(e))?
            .get(0))
    }

    pub async fn agents(&self, account_id: &str) -> BackendResult<Vec<AgentRow>> {
        let q = format!("SELECT {AGENT_COLS} FROM agents WHERE account_id = $1 ORDER BY email");
        self.read_all(&q, &[&account_id], agent_row).await
    }

    pub async fn agent(&self, id: &str) -> BackendResult<Option<AgentRow>> {
        let q = format!("SELECT {AGENT_COLS} FROM agents WHERE id = $1");
        self.read_one(&q, &[&id], agent_row).await
    }

    /// The agent with this email in the account with this slug.
    pub async fn agent_by_login(&self, slug: &str, email: &str) -> BackendResult<Option<AgentRow>> {
        let q = format!(
            "SELECT {} FROM agents a JOIN accounts c ON c.id = a.account_id \
             WHERE c.slug = $1 AND a.email_key = $2",
            prefixed(AGENT_COLS, "a")
        );
        self.read_one(&q, &[&slug, &crate::rows::email_key(email)], agent_row)
            .await
    }

    /// Runs an account edit in one transaction: the account row is locked (`FOR UPDATE`)
    /// while its slice is read and `plan` decides, so edits of one account serialise across
    /// every node. Returns the slice the plan read, the edit, and the sessions it ended.
    pub async fn edit_account(
        &self,
        account_id: &str,
        every_agent: bool,
        plan: AccountPlan,
        now: i64,
    ) -> BackendResult<(AccountSlice, AccountEdit, Vec<SessionRow>)> {
        let _op = self.op();
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(|e| self.db(e))?;
        let q = format!("SELECT {ACCOUNT_COLS} FROM accounts WHERE id = $1 FOR UPDATE");
        let account = tx
            .query_opt(&q, &[&account_id])
            .await
            .map_err(|e| self.db(e))?
            .map(|r| account_row(&r))
            .transpose()?
            .ok_or_else(|| BackendError::not_found("account"))?;
        // With `every_agent`, the agents' rows are locked too (in id order), so no status
        // change of the account is decided until this edit commits.
        let q = match every_agent {
            true => format!(
                "SELECT {AGENT_COLS} FROM (SELECT * FROM agents WHERE account_id = $1 \
                 ORDER BY id FOR UPDATE) a ORDER BY email"
            ),
            false => {
                format!("SELECT {AGENT_COLS} FROM agents WHERE account_id = $1 ORDER BY email")
            }
        };
        let agents = tx
            .query(&q, &[&account_id])
            .await
            .map_err(|e| self.db(e))?
            .iter()
            .map(agent_row)
            .collect::<BackendResult<Vec<_>>>()?;
        let slice = AccountSlice { account, agents };
        let edit = plan(Some(&slice))?;
        let mut ended = Vec::new();
        match &edit {
            AccountEdit::Create { .. } => {
                return Err(BackendError::internal("an account edit made a new account"));
            }
            AccountEdit::AddAgent(row) => {
                insert_agent_in(&*tx, row, now).await?;
                self.settle(&tx, &row.id, now, None).await?;
            }
            AccountEdit::UpdateAgent(row) => {
                tx.execute(
                    "UPDATE agents SET name = $2, role = $3, groups_json = $4, updated_at = $5, \
                     sub = $6 WHERE id = $1",
                    &[
                        &row.id,
                        &row.name,
                        &role_str(row.role),
                        &json(&row.groups),
                        &now,
                        &row.sub,
                    ],
                )
                .await
                .map_err(|e| self.db(e))?;
            }
            AccountEdit::RemoveAgent { agent_id } => {
                let q = format!(
                    "UPDATE sessions SET ended_at = $2, end_reason = 'removed' \
                     WHERE agent_id = $1 AND ended_at IS NULL RETURNING {SESSION_COLS}"
                );
                ended = tx
                    .query(&q, &[agent_id, &now])
                    .await
                    .map_err(|e| self.db(e))?
                    .iter()
                    .map(session_row)
                    .collect::<BackendResult<Vec<_>>>()?;
                self.emit_sessions(&tx, &ended, Some(EndReason::Removed), now)
                    .await?;
                self.settle(&tx, agent_id, now, Some(EndReason::Removed))
                    .await?;
                tx.execute("DELETE FROM status_ops WHERE agent_id = $1", &[agent_id])
                    .await
                    .map_err(|e| self.db(e))?;
                tx.execute("DELETE FROM agents WHERE id = $1", &[agent_id])
                    .await
                    .map_err(|e| self.db(e))?;
            }
            AccountEdit::Password {
                agent_id,
                password_hash,
                keep,
            } => {
                // The agent's row first: a login that checked the old password holds it
                // while it opens its session, so that session is ended below (or sees the
                // new hash and is refused).
                tx.execute(
                    "UPDATE agents SET password_hash = $2, updated_at = $3 WHERE id = $1",
                    &[agent_id, password_hash, &now],
                )
                .await
                .map_err(|e| self.db(e))?;
                let q = format!(
                    "UPDATE sessions SET ended_at = $2, end_reason = 'credentials_changed' \
                     WHERE agent_id = $1 AND ended_at IS NULL AND id IS DISTINCT FROM $3 \
                     RETURNING {SESSION_COLS}"
                );
                ended = tx
                    .query(&q, &[agent_id, &now, keep])
                    .await
                    .map_err(|e| self.db(e))?
                    .iter()
                    .map(session_row)
                    .collect::<BackendResult<Vec<_>>>()?;
                self.emit_sessions(&tx, &ended, Some(EndReason::CredentialsChanged), now)
                    .await?;
                self.settle(&tx, agent_id, now, Some(EndReason::CredentialsChanged))
                    .await?;
            }
            AccountEdit::Groups { groups, agents } => {
                tx.execute(
                    "UPDATE accounts SET groups_json = $2 WHERE id = $1",
                    &[&account_id, &json(groups)],
                )
                .await
                .map_err(|e| self.db(e))?;
                for (agent, g) in agents {
                    tx.execute(
                        "UPDATE agents SET groups_json = $2 WHERE id = $1",
                        &[agent, &json(g)],
                    )
                    .await
                    .map_err(|e| self.db(e))?;
                }
            }
            AccountEdit::OpeningHours { hours, .. } => {
                tx.execute(
                    "UPDATE accounts SET opening_hours = $2 WHERE id = $1",
                    &[&account_id, &json(hours)],
                )
                .await
                .map_err(|e| self.db(e))?;
            }
            AccountEdit::Settings(settings) => {
                tx.execute(
                    "UPDATE accounts SET settings = $2 WHERE id = $1",
                    &[&account_id, &json(settings)],
                )
                .await
                .map_err(|e| self.db(e))?;
            }
            AccountEdit::Identity(identity) => {
                tx.execute(
                    "UPDATE accounts SET identity = $2 WHERE id = $1",
                    &[&account_id, &json(identity)],
                )
                .await
                .map_err(|e| self.db(e))?;
            }
            AccountEdit::CustomStatuses { statuses, resets } => {
                tx.execute(
                    "UPDATE accounts SET custom_statuses = $2 WHERE id = $1",
                    &[&account_id, &json(statuses)],
                )
                .await
                .map_err(|e| self.db(e))?;
                for (agent, status) in resets {
                    tx.execute(
                        "WITH l AS (INSERT INTO status_log (agent_id, version, applied_at, \
                         status) VALUES ($1, $4, $3, $2) ON CONFLICT DO NOTHING) \
                         UPDATE agents SET status = $2, updated_at = $3 WHERE id = $1",
                        &[agent, &json(status), &now, &status.version],
                    )
                    .await
                    .map_err(|e| self.db(e))?;
                    self.emit_status(&tx, account_id, agent, status, now)
                        .await?;
                    self.settle(&tx, agent, now, None).await?;
                }
            }
        }
        self.commit_events(tx).await?;
        Ok((slice, edit, ended))
    }

    /// Makes view versions up to `upto` durably reserved for the account (never lowers it).
    pub async fn reserve_view_versions(&self, id: &str, upto: i64) -> BackendResult<()> {
        let _op = self.op();
        let c = self.client().await?;
        c.execute(
            "UPDATE accounts SET view_reserved = GREATEST(view_reserved, $2) WHERE id = $1",
            &[&id, &upto],
        )
        .await
        .map_err(|e| self.db(e))?;
        Ok(())
    }
}

async fn insert_agent_in(
    c: &impl tokio_postgres::GenericClient,
    a: &AgentRow,
    now: i64,
) -> BackendResult<()> {
    let r = c
        .execute(
            "INSERT INTO agents (id, account_id, name, email, email_key, password_hash, role, \
             groups_json, status, status_op, status_seq, updated_at, sub) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)",
            &[
                &a.id,
                &a.account_id,
                &a.name,
                &a.email,
                &a.email_key(),
                &a.password_hash,
                &role_str(a.role),
                &json(&a.groups),
                &json(&a.status),
                &a.status_op_id,
                &a.status.version,
                &now,
                &a.sub,
            ],
        )
        .await;
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            Err(BackendError::conflict("an agent with this email exists"))
        }
        Err(e) => Err(db_err(e)),
    }
}

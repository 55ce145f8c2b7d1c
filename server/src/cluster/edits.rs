//! Account edits on the cluster backend: PostgreSQL runs the plan in one transaction that
//! locks the account row (`Pg::edit_account`), so edits of one account serialise on every
//! node; Redis then learns of what committed (agent profiles, the account's configuration,
//! ended sessions) and the account's view is refreshed. Nothing here decides; `crate::ops`
//! does.

use presence_protocol::EndReason;

use super::hot::Profile;
use super::{AccountCfg, Inner};
use crate::backend::{BackendError, BackendResult};
use crate::ops::{AccountEdit, AccountPlan, AccountSlice};

impl Inner {
    /// The account and its agents, as PostgreSQL has them.
    pub(super) async fn account_slice(&self, account_id: &str) -> BackendResult<AccountSlice> {
        let (account, agents) =
            tokio::try_join!(self.pg.account(account_id), self.pg.agents(account_id))?;
        Ok(AccountSlice { account, agents })
    }

    /// A new account: the plan sees the account that has the slug, if one does; the insert
    /// refuses a slug taken meanwhile (PostgreSQL's unique index), on any node.
    pub(super) async fn create_account(
        &self,
        slug: &str,
        plan: AccountPlan,
    ) -> BackendResult<AccountEdit> {
        let taken = match self.pg.account_by_slug(slug).await? {
            Some(a) => Some(self.account_slice(&a.id).await?),
            None => None,
        };
        let edit = plan(taken.as_ref())?;
        let AccountEdit::Create { account, owner } = &edit else {
            return Err(BackendError::internal(
                "a new account's plan made no account",
            ));
        };
        let now = self.clock.now_ms();
        self.pg.insert_account(account, owner, now).await?;
        self.refresh_view(&account.id).await?;
        Ok(edit)
    }

    /// Commits a planned edit, then applies it to Redis and refreshes the view.
    pub(super) async fn edit_account(
        &self,
        account_id: &str,
        every_agent: bool,
        plan: AccountPlan,
    ) -> BackendResult<AccountEdit> {
        let now = self.clock.now_ms();
        let (slice, edit, ended) = self
            .pg
            .edit_account(account_id, every_agent, plan, now)
            .await?;
        let profile = |role, groups: &[String]| Profile {
            role,
            groups: groups.to_vec(),
        };
        match &edit {
            AccountEdit::Create { .. } => {
                return Err(BackendError::internal("an account edit made a new account"));
            }
            AccountEdit::AddAgent(row) => {
                let prof = profile(row.role, &row.groups);
                seeded!(
                    self,
                    account_id,
                    self.hot
                        .put_profile(account_id, &row.id, &prof, Some(&row.status))
                )?;
                self.refresh_view(account_id).await?;
            }
            AccountEdit::UpdateAgent(row) => {
                let prof = profile(row.role, &row.groups);
                seeded!(
                    self,
                    account_id,
                    self.hot.put_profile(account_id, &row.id, &prof, None)
                )?;
                self.refresh_view(account_id).await?;
            }
            AccountEdit::RemoveAgent { agent_id } => {
                for s in &ended {
                    self.end_session_hot(account_id, s, EndReason::Removed, false)
                        .await?;
                }
                seeded!(
                    self,
                    account_id,
                    self.hot.remove_agent(account_id, agent_id)
                )?;
                self.refresh_view(account_id).await?;
            }
            AccountEdit::Password { .. } => {
                for s in &ended {
                    self.end_session_hot(account_id, s, EndReason::CredentialsChanged, false)
                        .await?;
                }
                self.refresh_view(account_id).await?;
            }
            AccountEdit::Groups { agents, .. } => {
                for (id, groups) in agents {
                    if let Ok(a) = slice.agent(id) {
                        let prof = profile(a.role, groups);
                        seeded!(
                            self,
                            account_id,
                            self.hot.put_profile(account_id, id, &prof, None)
                        )?;
                    }
                }
                self.put_account_cfg(account_id).await?;
            }
            // Read from PostgreSQL wherever it is used: nothing in Redis to change.
            AccountEdit::Identity(_) => {}
            AccountEdit::OpeningHours { .. } | AccountEdit::Settings(_) => {
                self.put_account_cfg(account_id).await?;
            }
            AccountEdit::CustomStatuses { resets, .. } => {
                self.put_account_cfg(account_id).await?;
                for (agent, status) in resets {
                    let op = slice.agent(agent).map(|a| a.status_op_id.clone())?;
                    seeded!(
                        self,
                        account_id,
                        self.hot.set_status(account_id, agent, status, &op, None)
                    )?;
                    self.push_status(account_id, agent, status, None).await?;
                }
            }
        }
        Ok(edit)
    }

    /// Tells Redis the account's configuration as committed (which refreshes the view).
    async fn put_account_cfg(&self, account_id: &str) -> BackendResult<()> {
        let cfg = AccountCfg::from_row(&self.pg.account(account_id).await?);
        self.put_cfg(&cfg).await
    }
}

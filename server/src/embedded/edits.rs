//! Account edits on the embedded backend: the slice an [`AccountPlan`] reads, built from
//! memory under the account's turn, and the one apply path of every planned
//! [`AccountEdit`]: commit through the group commit, then change memory, recompute the
//! account's view and send the effects. Nothing here decides; `crate::ops` does.

use super::*;

use std::sync::Arc;

use presence_protocol::EndReason;

use crate::backend::{BackendError, BackendResult};
use crate::ops::{AccountEdit, AccountPlan, AccountSlice, AccountTarget};
use crate::rows::AccountRow;
use crate::store::Write;

impl State {
    /// The account `id` and its agents, as stored.
    pub(super) fn account_slice(&self, id: &str) -> BackendResult<AccountSlice> {
        let acc = self.account(id)?;
        let account = AccountRow {
            id: acc.info.id.clone(),
            slug: acc.info.slug.clone(),
            name: acc.info.name.clone(),
            widget_key: acc.info.widget_key.clone(),
            settings: presence_protocol::AccountSettings {
                timings: acc.settings,
                messages: acc.messages.clone(),
                idle: acc.idle,
            },
            opening_hours: acc.opening_hours.clone(),
            groups: acc.groups.clone(),
            view_version: acc.versions_reserved,
            custom_statuses: acc.custom_statuses.clone(),
            identity: acc.identity.clone(),
        };
        let agents = acc
            .agents
            .iter()
            .filter_map(|a| self.agents.get(a))
            .map(AgentState::to_row)
            .collect();
        Ok(AccountSlice { account, agents })
    }
}

impl Inner {
    /// Plans under the account's turn (a new account's: its slug's), commits, then applies
    /// to memory and publishes.
    pub(super) async fn edit_account(
        &self,
        target: AccountTarget<'_>,
        plan: AccountPlan,
    ) -> BackendResult<AccountEdit> {
        let (account_id, every_agent) = match target {
            AccountTarget::New(slug) => return self.create_account(slug, plan).await,
            AccountTarget::Existing(id) => (id, false),
            AccountTarget::WithAgents(id) => (id, true),
        };
        let _turn = self.account_turns.take(account_id).await;
        // Every agent's turn, before the slice is read: no status change of the account is
        // planned from then until this edit is applied.
        let _agents = match every_agent {
            true => self.turns.take_every().await,
            false => Vec::new(),
        };
        let (account_id, edit) = {
            let st = self.state.lock();
            let slice = st.account_slice(account_id)?;
            let id: Arc<str> = arc(&st.account(account_id)?.info.id);
            (id, plan(Some(&slice))?)
        };
        if matches!(edit, AccountEdit::Create { .. }) {
            return Err(BackendError::internal("an account edit made a new account"));
        }
        // An agent that leaves, or whose password changes, has its sessions ended: its turn
        // too, after the account's.
        let _agent_turn = match &edit {
            AccountEdit::RemoveAgent { agent_id } | AccountEdit::Password { agent_id, .. }
                if !every_agent =>
            {
                Some(self.turns.take(agent_id).await)
            }
            _ => None,
        };
        let now = self.clock.now_ms();
        self.writer
            .commit(write_of(&account_id, &edit, now))
            .await?;
        self.apply_edit(&account_id, &edit);
        Ok(edit)
    }

    /// A new account under its slug's turn: the plan sees the account that has the slug, if
    /// one does.
    async fn create_account(&self, slug: &str, plan: AccountPlan) -> BackendResult<AccountEdit> {
        let _turn = self.account_turns.take(slug).await;
        let edit = {
            let st = self.state.lock();
            let taken = match st.slugs.get(slug) {
                Some(id) => Some(st.account_slice(id)?),
                None => None,
            };
            plan(taken.as_ref())?
        };
        let AccountEdit::Create { account, owner } = &edit else {
            return Err(BackendError::internal(
                "a new account's plan made no account",
            ));
        };
        self.store_account((**account).clone(), (**owner).clone())
            .await?;
        Ok(edit)
    }

    /// The memory half of a committed edit.
    fn apply_edit(&self, account_id: &Arc<str>, edit: &AccountEdit) {
        let mut fx = Effects::default();
        {
            let mut guard = self.state.lock();
            let st = &mut *guard;
            let now = self.clock.now_ms();
            match edit.clone() {
                AccountEdit::Create { .. } => {}
                AccountEdit::AddAgent(row) => {
                    let id = arc(&row.id);
                    let email_key = row.email_key();
                    let state = super::writes::agent_state(row, id.clone(), account_id.clone());
                    st.agents.insert(id.clone(), state);
                    st.emails
                        .insert((account_id.clone(), email_key), id.clone());
                    if let Some(acc) = st.accounts.get_mut(account_id) {
                        acc.agents.push(id);
                    }
                }
                AccountEdit::UpdateAgent(row) => {
                    if let Some(a) = st.agents.get_mut(row.id.as_str()) {
                        a.name = row.name;
                        a.role = row.role;
                        a.groups = row.groups;
                        a.sub = row.sub;
                    }
                }
                AccountEdit::RemoveAgent { agent_id } => {
                    if let Some(agent) = st.agents.get(agent_id.as_str()) {
                        let sessions: Vec<Arc<str>> = agent.sessions.iter().cloned().collect();
                        let email_key = crate::rows::email_key(&agent.email);
                        for s in sessions {
                            st.end_session_mem(&s, EndReason::Removed, now, &mut fx);
                        }
                        st.agents.remove(agent_id.as_str());
                        st.emails.remove(&(account_id.clone(), email_key));
                        if let Some(acc) = st.accounts.get_mut(account_id) {
                            acc.agents.retain(|a| **a != *agent_id);
                        }
                    }
                }
                AccountEdit::Password {
                    agent_id,
                    password_hash,
                    keep,
                } => {
                    if let Some(agent) = st.agents.get_mut(agent_id.as_str()) {
                        agent.password_hash = password_hash;
                        let ended: Vec<Arc<str>> = agent
                            .sessions
                            .iter()
                            .filter(|s| keep.as_deref() != Some(&***s))
                            .cloned()
                            .collect();
                        for s in ended {
                            st.end_session_mem(&s, EndReason::CredentialsChanged, now, &mut fx);
                        }
                    }
                }
                AccountEdit::Groups { groups, agents } => {
                    for (id, g) in agents {
                        if let Some(a) = st.agents.get_mut(id.as_str()) {
                            a.groups = g;
                        }
                    }
                    if let Some(acc) = st.accounts.get_mut(account_id) {
                        acc.groups = groups;
                    }
                }
                AccountEdit::OpeningHours { hours, schedule } => {
                    if let Some(acc) = st.accounts.get_mut(account_id) {
                        acc.opening_hours = hours;
                        acc.schedule = *schedule;
                        acc.flip_at = None;
                    }
                }
                AccountEdit::Settings(next) => {
                    if let Some(acc) = st.accounts.get_mut(account_id) {
                        acc.settings = next.timings;
                        acc.messages = next.messages;
                        acc.idle = next.idle;
                    }
                }
                AccountEdit::Identity(identity) => {
                    if let Some(acc) = st.accounts.get_mut(account_id) {
                        acc.identity = identity;
                    }
                }
                AccountEdit::CustomStatuses { statuses, resets } => {
                    if let Some(acc) = st.accounts.get_mut(account_id) {
                        acc.custom_statuses = statuses;
                    }
                    for (agent_id, status) in resets {
                        let Some(op) = st
                            .agents
                            .get(agent_id.as_str())
                            .map(|a| a.status_op_id.clone())
                        else {
                            continue;
                        };
                        st.apply_status(&agent_id, status, &op, None, now, &mut fx);
                    }
                }
            }
            self.recompute(st, account_id, now, &mut fx);
        }
        self.finish(fx);
    }
}

/// What the store commits for an edit.
fn write_of(account_id: &str, edit: &AccountEdit, now: i64) -> Write {
    let account_id = account_id.to_owned();
    match edit.clone() {
        AccountEdit::Create { account, owner } => Write::Account {
            account,
            owner,
            now,
        },
        AccountEdit::AddAgent(row) => Write::Agent { row, now },
        AccountEdit::UpdateAgent(row) => Write::AgentProfile(row),
        AccountEdit::RemoveAgent { agent_id } => Write::DeleteAgent { agent_id, now },
        AccountEdit::Password {
            agent_id,
            password_hash,
            keep,
        } => Write::Password {
            agent_id,
            password_hash,
            keep,
            now,
        },
        AccountEdit::Groups { groups, agents } => Write::Groups {
            account_id,
            groups,
            agents,
        },
        AccountEdit::OpeningHours { hours, .. } => Write::OpeningHours { account_id, hours },
        AccountEdit::Settings(settings) => Write::Settings {
            account_id,
            settings,
        },
        AccountEdit::Identity(identity) => Write::Identity {
            account_id,
            identity,
        },
        AccountEdit::CustomStatuses { statuses, resets } => Write::CustomStatuses {
            account_id,
            statuses,
            resets,
            now,
        },
    }
}

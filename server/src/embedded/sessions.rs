//! Sessions on the embedded backend: the agent slice a session plan reads, built from
//! memory, and the one apply path of every planned [`SessionEdit`] (under the agent's turn:
//! plan, commit through the group commit, then change memory and send the effects). Nothing
//! here decides; `crate::ops::sessions` does.

use super::*;

use presence_protocol::EndReason;

use crate::backend::{BackendError, BackendResult};
use std::sync::Arc;

use crate::ops::sessions::{AgentSlice, LiveSession, SessionEdit, SessionPlan, Sessions};
use crate::rows::AgentRow;
use crate::store::{SessionRow, Write};

impl AgentState {
    /// The agent as stored.
    pub(super) fn to_row(&self) -> AgentRow {
        AgentRow {
            id: self.id.to_string(),
            account_id: self.account_id.to_string(),
            name: self.name.clone(),
            email: self.email.clone(),
            password_hash: self.password_hash.clone(),
            role: self.role,
            groups: self.groups.clone(),
            status: self.status.clone(),
            status_op_id: self.status_op_id.clone(),
            sub: self.sub.clone(),
        }
    }
}

impl State {
    /// The agent `agent_id` of `account_id` with the live sessions asked for (sorted by id)
    /// and, for a read, its account's view.
    pub(super) fn agent_slice(
        &self,
        account_id: &str,
        agent_id: &str,
        now: i64,
        which: &Sessions,
        with_view: bool,
    ) -> BackendResult<AgentSlice> {
        let agent = self.agent_in_account(account_id, agent_id)?;
        let acc = self.account(account_id)?;
        let ids: Vec<&Arc<str>> = match which {
            Sessions::All => agent.sessions.iter().collect(),
            Sessions::Opening { device_id, cap } if agent.sessions.len() < *cap => self
                .devices
                .get(&(agent.id.clone(), device_id.clone()))
                .into_iter()
                .collect(),
            Sessions::Opening { .. } => agent.sessions.iter().collect(),
            Sessions::One(id) => agent.sessions.get(id.as_str()).into_iter().collect(),
            Sessions::None => Vec::new(),
        };
        let mut sessions: Vec<LiveSession> = ids
            .into_iter()
            .filter_map(|id| self.sessions.get(id))
            .map(|s| LiveSession {
                id: s.id.to_string(),
                device: s.device.clone(),
                push: s.push.clone(),
                mode: s.mode,
                lease_until: s.lease_until,
                connected: s.connected > 0,
                idle_ms: s.activity.map(|r| r.idle_ms),
            })
            .collect();
        sessions.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(AgentSlice {
            now,
            agent: agent.to_row(),
            timings: acc.settings,
            sessions,
            view: with_view.then(|| acc.view.clone()),
            custom_statuses: match with_view {
                true => acc.custom_statuses.clone(),
                false => Vec::new(),
            },
        })
    }

    /// The agent with this login (account slug, email in any case).
    pub(super) fn agent_by_login(&self, slug: &str, email: &str) -> BackendResult<&AgentState> {
        let email_key = crate::rows::email_key(email);
        self.slugs
            .get(slug)
            .and_then(|acc| self.emails.get(&(acc.clone(), email_key)))
            .and_then(|id| self.agents.get(id))
            .ok_or_else(|| BackendError::not_found("agent"))
    }
}

impl Inner {
    /// [`Backend::edit_sessions`](crate::backend::Backend::edit_sessions).
    pub(super) async fn edit_sessions(
        &self,
        account_id: &str,
        agent_id: &str,
        which: Sessions,
        plan: SessionPlan,
    ) -> BackendResult<(AgentSlice, SessionEdit)> {
        let _turn = self.turns.take(agent_id).await;
        let (slice, edit) = {
            let st = self.state.lock();
            let now = self.clock.now_ms();
            let slice = st.agent_slice(account_id, agent_id, now, &which, false)?;
            let edit = plan(&slice)?;
            (slice, edit)
        };
        let now = self.clock.now_ms();
        let write = match &edit {
            SessionEdit::Open(n) => Write::Session {
                row: SessionRow {
                    id: n.id.clone(),
                    account_id: account_id.to_owned(),
                    agent_id: agent_id.to_owned(),
                    token_hash: hex::encode(n.token_hash),
                    device: n.device.clone(),
                    mode: n.mode,
                    lease_until: n.lease_until,
                    push: n.push.clone(),
                },
                replaces: n.replaces.clone(),
                now,
            },
            SessionEdit::End {
                session_id, reason, ..
            } => Write::EndSessions {
                ended: vec![(session_id.clone(), *reason)],
                now,
            },
            SessionEdit::Push { session_id, push } => Write::Push {
                session_id: session_id.clone(),
                push: push.clone(),
            },
        };
        self.writer.commit(write).await?;
        let mut fx = Effects::default();
        {
            let mut guard = self.state.lock();
            let st = &mut *guard;
            let now = self.clock.now_ms();
            match &edit {
                SessionEdit::Open(n) => {
                    for old in &n.replaces {
                        st.end_session_mem(old, EndReason::Replaced, now, &mut fx);
                    }
                    open_mem(st, agent_id, n)?;
                    st.schedule_session_timers(&arc(&n.id), &mut fx);
                    self.recompute(st, account_id, now, &mut fx);
                    self.metrics.logins.inc();
                }
                SessionEdit::End {
                    session_id,
                    reason,
                    by_other_device,
                } => {
                    st.end_session_by(session_id, *reason, *by_other_device, now, &mut fx);
                    self.recompute(st, account_id, now, &mut fx);
                    if *reason == EndReason::Logout {
                        self.metrics.logouts.inc();
                    }
                }
                SessionEdit::Push { session_id, push } => {
                    if let Some(s) = st.sessions.get_mut(session_id.as_str()) {
                        s.push = push.clone();
                        let id = s.id.clone();
                        st.schedule_session_timers(&id, &mut fx);
                    }
                }
            }
        }
        self.finish(fx);
        Ok((slice, edit))
    }
}

/// The memory half of a committed new session.
fn open_mem(
    st: &mut State,
    agent_id: &str,
    n: &crate::ops::sessions::NewSession,
) -> BackendResult<()> {
    let agent = st
        .agents
        .get_mut(agent_id)
        .ok_or_else(|| BackendError::internal("an agent vanished during its turn"))?;
    let (id, account_id, agent_id) = (arc(&n.id), agent.account_id.clone(), agent.id.clone());
    agent.sessions.insert(id.clone());
    st.sessions.insert(
        id.clone(),
        SessionState {
            id: id.clone(),
            account_id: account_id.clone(),
            agent_id: agent_id.clone(),
            token_hash: n.token_hash,
            device: n.device.clone(),
            mode: n.mode,
            lease_until: n.lease_until,
            push: n.push.clone(),
            connected: 0,
            scheduled_expiry: 0,
            renew_at: None,
            activity: None,
        },
    );
    st.tokens.insert(n.token_hash, TokenEntry::Live(id.clone()));
    st.devices.insert((agent_id, n.device.id.clone()), id);
    Ok(())
}

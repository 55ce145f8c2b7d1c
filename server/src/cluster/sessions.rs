//! Sessions on the cluster backend: the agent slice a read or a session plan sees, and the
//! one apply path of every planned [`SessionEdit`]: the plan runs and its edit is stored in
//! one PostgreSQL transaction holding the agent's row lock (`pg/sessions.rs`), then Redis
//! gets the lease (or loses it, telling the ended session's stream), pushes go out, and the
//! view is refreshed. Nothing here decides; `crate::ops::sessions` does.

use std::collections::HashMap;

use presence_protocol::EndReason;

use super::Inner;
use super::hot::{self, Lease};
use super::pg::live;
use crate::backend::{BackendError, BackendResult};
use crate::ops::sessions::{AgentKey, AgentSlice, SessionEdit, SessionPlan, Sessions};
use crate::rules;

impl Inner {
    /// [`Backend::agent_slice`](crate::backend::Backend::agent_slice): the agent from
    /// PostgreSQL; for an id, its live sessions with their leases and streams from Redis and
    /// the account's view. A login's read stops at the agent and its timings.
    pub(super) async fn agent_slice(&self, key: AgentKey<'_>) -> BackendResult<AgentSlice> {
        let (account_id, agent_id) = match key {
            AgentKey::Login {
                account_slug,
                email,
            } => {
                let agent = self
                    .pg
                    .agent_by_login(account_slug, email)
                    .await?
                    .ok_or_else(|| BackendError::not_found("agent"))?;
                let cfg = self.cfg(&agent.account_id).await?;
                return Ok(AgentSlice {
                    now: self.clock.now_ms(),
                    agent,
                    timings: cfg.settings.timings,
                    sessions: Vec::new(),
                    view: None,
                    custom_statuses: Vec::new(),
                });
            }
            AgentKey::Id {
                account_id,
                agent_id,
            } => (account_id, agent_id),
        };
        let agent = match self.pg.agent(agent_id).await? {
            Some(a) if a.account_id == account_id => a,
            _ => return Err(BackendError::not_found("agent")),
        };
        let cfg = self.cfg(account_id).await?;
        let snap = seeded!(self, account_id, self.hot.snapshot(account_id))?;
        let status = snap
            .agents
            .iter()
            .find(|(id, _, _)| *id == agent.id)
            .map(|(_, _, s)| s.clone());
        let leases: HashMap<&str, &Lease> = snap
            .leases
            .iter()
            .filter(|(_, l)| l.agent == agent.id && !rules::lease_ended(l.until, snap.now))
            .map(|(s, l)| (s.as_str(), l))
            .collect();
        let conn: HashMap<&str, i64> = snap.conn.iter().map(|(s, n)| (s.as_str(), *n)).collect();
        let idle = self.hot.idle_reports(account_id).await?;
        let sessions = self
            .pg
            .agent_sessions(agent_id)
            .await?
            .into_iter()
            .filter_map(|s| {
                let l = leases.get(s.id.as_str())?;
                let connected = conn.get(s.id.as_str()).copied().unwrap_or(0) > 0;
                let (mode, until) = (l.mode, l.until);
                let mut s = live(s);
                (s.mode, s.lease_until, s.connected) = (mode, until, connected);
                s.idle_ms = idle.get(&s.id).copied();
                Some(s)
            })
            .collect();
        let view = self.current_view(account_id).await?;
        let mut agent = agent;
        if let Some(status) = status {
            // Redis holds the status every device was last told.
            agent.status = status;
        }
        Ok(AgentSlice {
            now: snap.now,
            agent,
            timings: cfg.settings.timings,
            sessions,
            view: Some(view),
            custom_statuses: cfg.custom_statuses.clone(),
        })
    }

    /// [`Backend::edit_sessions`](crate::backend::Backend::edit_sessions).
    pub(super) async fn edit_sessions(
        &self,
        account_id: &str,
        agent_id: &str,
        which: Sessions,
        plan: SessionPlan,
    ) -> BackendResult<(AgentSlice, SessionEdit)> {
        let timings = self.cfg(account_id).await?.settings.timings;
        let now = self.clock.now_ms();
        let (slice, edit, ended) = self
            .pg
            .edit_sessions(account_id, agent_id, timings, now, &which, plan)
            .await?;
        match &edit {
            SessionEdit::Open(n) => {
                for old in &ended {
                    self.end_session_hot(account_id, old, EndReason::Replaced, false)
                        .await?;
                }
                let lease = Lease {
                    agent: agent_id.to_owned(),
                    mode: n.mode,
                    until: n.lease_until,
                    push: n.push.is_some(),
                };
                seeded!(
                    self,
                    account_id,
                    self.hot.start_session(account_id, &n.id, &lease)
                )?;
                let _ = self
                    .deadline_tx
                    .send((hot::partition(account_id), lease.until));
                self.refresh_view(account_id).await?;
                self.metrics.logins.inc();
            }
            SessionEdit::End {
                reason,
                by_other_device,
                ..
            } => {
                for old in &ended {
                    self.end_session_hot(account_id, old, *reason, *by_other_device)
                        .await?;
                }
                if *reason == EndReason::Logout {
                    self.metrics.logouts.inc();
                }
            }
            SessionEdit::Push { session_id, push } => {
                seeded!(
                    self,
                    account_id,
                    self.hot.lease_push(account_id, session_id, push.is_some())
                )?;
            }
        }
        Ok((slice, edit))
    }
}

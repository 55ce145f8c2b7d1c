//! The writes of the embedded backend, as `Inner` methods so a spawned task can own them
//! (see `ops.rs`). Each one:
//! - takes its turn: the agent's for what changes one agent (status, sessions, push); the
//!   account's (by slug for a new account) for admin edits, then the agent's when it ends
//!   sessions, always in that order;
//! - plans under the state lock (validation against memory, the rows to write);
//! - commits off the lock through the group commit (`writer.rs`), so no request waits on the
//!   disk while holding the lock;
//! - applies the change to memory and publishes it under the lock, only once it is durable.
//!
//! Holding the turn from plan to apply keeps the plan valid: nothing else that writes the
//! same agent or account runs in between. Lease expiry is the one write without a turn (the
//! sweeper, `timers.rs`): an ended lease can no longer be renewed or used, so nothing a turn
//! would order can race it except other ends, and the first end recorded stays.

use super::*;

use rustc_hash::FxHashSet as HashSet;
use std::sync::Arc;

use presence_protocol::{Messages, SetStatusResponse, WeeklySchedule, resolve};
use tokio::sync::{broadcast, watch};

use crate::backend::{BackendError, BackendResult, ViewFrame, storage};
use crate::ops::idle;
use crate::ops::status::{StatusChange, StatusPlan, StatusSlice};
use crate::push::DeadToken;
use crate::store::{AccountRow, AgentRow, StatusRecord, Write};

impl Inner {
    /// Stores a new account and its owner, planned under the slug's turn (`edits.rs`).
    pub(super) async fn store_account(
        &self,
        account: AccountRow,
        owner: AgentRow,
    ) -> BackendResult<()> {
        let now = self.clock.now_ms();
        self.writer
            .commit(Write::Account {
                account: Box::new(account.clone()),
                owner: Box::new(owner.clone()),
                now,
            })
            .await?;
        let mut fx = Effects::default();
        {
            let mut st = self.state.lock();
            let now = self.clock.now_ms();
            let id = arc(&account.id);
            let agent_id = arc(&owner.id);
            let mut view = resolve(&[], &WeeklySchedule::always_open(), &[], now);
            view.version = 1;
            let frame = Arc::new(ViewFrame::new(view));
            let info = account.info();
            st.slugs.insert(account.slug.clone(), id.clone());
            st.widget_keys
                .insert(account.widget_key.clone(), id.clone());
            st.accounts.insert(
                id.clone(),
                AccountState {
                    info: info.clone(),
                    settings: account.settings.timings,
                    messages: Messages::default(),
                    idle: account.settings.idle,
                    opening_hours: account.opening_hours.clone(),
                    schedule: WeeklySchedule::always_open(),
                    groups: Vec::new(),
                    agents: vec![agent_id.clone()],
                    view_tx: watch::Sender::new(frame.clone()),
                    view: frame,
                    versions_reserved: account.view_version,
                    reserving: false,
                    flip_at: None,
                    custom_statuses: account.custom_statuses.clone(),
                    identity: account.identity.clone(),
                },
            );
            st.emails
                .insert((id.clone(), owner.email_key()), agent_id.clone());
            let agent = agent_state(owner, agent_id.clone(), id.clone());
            st.agents.insert(agent_id, agent);
            self.recompute(&mut st, &id, now, &mut fx);
        }
        self.finish(fx);
        Ok(())
    }

    /// Removes a registration its provider declared dead, unless the session registered
    /// another since: the session's next heartbeat gets the active lease.
    pub(super) async fn drop_dead_push(&self, dead: DeadToken) {
        let still_registered = |st: &State| match st.sessions.get(dead.session_id.as_str()) {
            Some(s) if s.push.as_ref() == Some(&dead.reg) => Some(s.agent_id.clone()),
            _ => None,
        };
        let Some(agent_id) = still_registered(&self.state.lock()) else {
            return;
        };
        let _turn = self.turns.take(&agent_id).await;
        if still_registered(&self.state.lock()).is_none() {
            return;
        }
        let write = Write::Push {
            session_id: dead.session_id.clone(),
            push: None,
        };
        if let Err(e) = self.writer.commit(write).await {
            tracing::error!(error = %e, "could not remove a dead push registration");
            return;
        }
        let mut fx = Effects::default();
        {
            let mut st = self.state.lock();
            let Some(s) = st.sessions.get_mut(dead.session_id.as_str()) else {
                return;
            };
            s.push = None;
            let id = s.id.clone();
            st.schedule_session_timers(&id, &mut fx);
        }
        self.finish(fx);
    }

    /// [`Backend::change_status`](crate::backend::Backend::change_status).
    pub(super) async fn change_status(
        &self,
        change: StatusChange,
        plan: StatusPlan,
    ) -> BackendResult<SetStatusResponse> {
        let StatusChange {
            account_id,
            agent_id,
            origin,
            op_id,
            custom_status,
            ..
        } = change;
        let recorded = |applied| StatusChange::recorded_by(origin.is_some(), applied);
        let _turn = self.turns.take(&agent_id).await;
        let now = self.clock.now_ms();
        let since = now - retention_ms(self.retention.status_ops);
        if let Some(prev) = self
            .store
            .status_op(&agent_id, &op_id, since)
            .map_err(storage)?
        {
            return serde_json::from_str(&prev).map_err(BackendError::internal);
        }
        let (resp, json, activity) = {
            let st = self.state.lock();
            let agent = st.agent_in_account(&account_id, &agent_id)?;
            // Always, when automatic away is on: in memory it costs little, and every
            // change arms the agent's idle check from it.
            let activity = st.activity(&account_id, &agent_id, now);
            let slice = StatusSlice {
                now,
                current: agent.status.clone(),
                current_op: agent.status_op_id.clone(),
                device: origin
                    .as_ref()
                    .and_then(|o| st.sessions.get(o))
                    .map(|s| s.device.id.clone()),
                custom: custom_status.and_then(|id| {
                    let acc = st.accounts.get(&account_id)?;
                    acc.custom_statuses.iter().find(|c| c.id == id).cloned()
                }),
                activity: activity.clone(),
            };
            let resp = plan(&slice)?;
            let json = serde_json::to_string(&resp).map_err(BackendError::internal)?;
            (resp, json, activity)
        };
        let committed = if recorded(resp.applied) {
            let at = self
                .writer
                .commit_at(Write::Status(StatusRecord {
                    agent_id: agent_id.clone(),
                    op_id: op_id.clone(),
                    applied: resp.applied.then(|| resp.status.clone()),
                    response_json: json,
                    now,
                }))
                .await?;
            Some(at)
        } else {
            None
        };
        let mut fx = Effects::default();
        if let Some(a) = &activity {
            let at = idle::next_check(a, &resp.status);
            self.state.lock().arm_idle_check(&agent_id, at, &mut fx);
        }
        if resp.applied {
            let mut st = self.state.lock();
            let now = self.clock.now_ms();
            st.apply_status(
                &agent_id,
                resp.status.clone(),
                &op_id,
                origin.as_ref(),
                now,
                &mut fx,
            );
            self.recompute(&mut st, &account_id, now, &mut fx);
            self.metrics.status_changes.inc();
            if let Some(at) = committed {
                self.metrics.fanned_out(at.elapsed());
            }
        }
        self.finish(fx);
        Ok(resp)
    }
}

/// The memory of a stored agent row, with no live session yet.
pub(super) fn agent_state(row: AgentRow, id: Arc<str>, account_id: Arc<str>) -> AgentState {
    AgentState {
        id,
        account_id,
        name: row.name,
        email: row.email,
        password_hash: row.password_hash,
        role: row.role,
        groups: row.groups,
        status: row.status,
        status_op_id: row.status_op_id,
        sub: row.sub,
        sessions: HashSet::default(),
        tx: broadcast::channel(AGENT_EVENT_BUFFER).0,
        idle_check_at: None,
    }
}

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
use std::sync::atomic::Ordering::Relaxed;

use presence_protocol::{
    AccountInfo, AccountSettings, Agent, AgentStatus, CreateAccountResponse, Device, EndReason,
    Group, LoginResponse, Messages, Mode, OpeningHours, PatchAgentRequest, PushRegistration, Role,
    SetStatusRequest, SetStatusResponse, SettingsPatch, StatusView, WeeklySchedule, resolve,
};
use tokio::sync::{broadcast, watch};

use super::ops::slug_taken;
use crate::auth;
use crate::backend::{BackendError, BackendResult, ViewFrame, storage};
use crate::push::DeadToken;
use crate::rules;
use crate::store::{AccountRow, AgentRow, SessionRow, StatusRecord, Write};
use crate::validate;

/// A session to open for an agent whose password checked out.
pub(super) struct Opening {
    pub(super) agent_id: Arc<str>,
    pub(super) device: Device,
    pub(super) push: Option<PushRegistration>,
}

impl Inner {
    /// [`Backend::create_account`](crate::backend::Backend::create_account), once the owner's
    /// password is hashed.
    pub(super) async fn create_account(
        &self,
        account: AccountRow,
        owner: AgentRow,
    ) -> BackendResult<CreateAccountResponse> {
        let _turn = self.account_turns.take(&account.slug).await;
        if self.state.lock().slugs.contains_key(&account.slug) {
            return Err(slug_taken(&account.slug));
        }
        let now = self.clock.now_ms();
        self.writer
            .commit(Write::Account {
                account: Box::new(account.clone()),
                owner: Box::new(owner.clone()),
                now,
            })
            .await?;
        let mut fx = Effects::default();
        let resp = {
            let mut st = self.state.lock();
            let now = self.clock.now_ms();
            let id = arc(&account.id);
            let agent_id = arc(&owner.id);
            let mut view = resolve(&[], &WeeklySchedule::always_open(), &[], now);
            view.version = 1;
            let frame = Arc::new(ViewFrame::new(view));
            let info = AccountInfo {
                id: account.id.clone(),
                slug: account.slug.clone(),
                name: account.name.clone(),
                widget_key: account.widget_key.clone(),
            };
            st.slugs.insert(account.slug.clone(), id.clone());
            st.widget_keys
                .insert(account.widget_key.clone(), id.clone());
            st.accounts.insert(
                id.clone(),
                AccountState {
                    info: info.clone(),
                    settings: account.settings.timings,
                    messages: Messages::default(),
                    opening_hours: account.opening_hours.clone(),
                    schedule: WeeklySchedule::always_open(),
                    groups: Vec::new(),
                    agents: vec![agent_id.clone()],
                    view_tx: watch::Sender::new(frame.clone()),
                    view: frame,
                    versions_reserved: account.view_version,
                    reserving: false,
                    flip_at: None,
                },
            );
            st.emails
                .insert((id.clone(), owner.email.to_lowercase()), agent_id.clone());
            let agent = agent_state(owner, agent_id.clone(), id.clone());
            let owner_view = agent.to_agent();
            st.agents.insert(agent_id, agent);
            self.recompute(&mut st, &id, now, &mut fx);
            CreateAccountResponse {
                account: info,
                owner: owner_view,
            }
        };
        self.finish(fx);
        Ok(resp)
    }

    /// The end of [`Backend::login`](crate::backend::Backend::login): a new session, which
    /// replaces the same device's old one.
    pub(super) async fn open_session(&self, o: Opening) -> BackendResult<LoginResponse> {
        let bad = || BackendError::InvalidCredentials;
        let _turn = self.turns.take(&o.agent_id).await;
        let token = auth::new_token();
        let token_hash = auth::token_hash(&token);
        let session_id = arc(&auth::new_id("ses"));
        let now = self.clock.now_ms();
        let (row, replaces, account_id) = {
            let st = self.state.lock();
            let agent = st.agents.get(&o.agent_id).ok_or_else(bad)?;
            let account_id = agent.account_id.clone();
            let settings = st.account(&account_id)?.settings;
            let replaces: Option<Arc<str>> = st
                .devices
                .get(&(account_id.clone(), o.device.id.clone()))
                .cloned();
            let row = SessionRow {
                id: session_id.to_string(),
                account_id: account_id.to_string(),
                agent_id: o.agent_id.to_string(),
                token_hash: hex::encode(token_hash),
                device: o.device.clone(),
                mode: Mode::Active,
                lease_until: now + settings.active_ttl_ms,
                push: o.push.clone(),
            };
            (row, replaces, account_id)
        };
        let lease_until = row.lease_until;
        self.writer
            .commit(Write::Session {
                row,
                replaces: replaces.as_deref().map(str::to_owned),
                now,
            })
            .await?;
        let mut fx = Effects::default();
        let resp = {
            let mut st = self.state.lock();
            let now = self.clock.now_ms();
            if let Some(old) = &replaces {
                st.end_session_mem(old, EndReason::Replaced, now, &mut fx);
            }
            let agent = st
                .agents
                .get_mut(&o.agent_id)
                .ok_or_else(|| BackendError::internal("an agent vanished during its turn"))?;
            agent.sessions.insert(session_id.clone());
            let (agent_view, status) = (agent.to_agent(), agent.status.clone());
            let device_key = (account_id.clone(), o.device.id.clone());
            st.sessions.insert(
                session_id.clone(),
                SessionState {
                    id: session_id.clone(),
                    account_id: account_id.clone(),
                    agent_id: o.agent_id.clone(),
                    token_hash,
                    device: o.device,
                    mode: Mode::Active,
                    lease_until,
                    push: o.push,
                    connected: 0,
                    scheduled_expiry: 0,
                    renew_at: None,
                },
            );
            st.tokens
                .insert(token_hash, TokenEntry::Live(session_id.clone()));
            st.devices.insert(device_key, session_id.clone());
            st.schedule_session_timers(&session_id, &mut fx);
            self.recompute(&mut st, &account_id, now, &mut fx);
            let heartbeat = {
                let s = st.sessions.get(&session_id).ok_or_else(bad)?;
                self.heartbeat_for(&st, s, now)
            };
            LoginResponse {
                token,
                session_id: session_id.to_string(),
                agent: agent_view,
                status,
                heartbeat,
                server_time: now,
            }
        };
        self.metrics.logins.fetch_add(1, Relaxed);
        self.finish(fx);
        Ok(resp)
    }

    /// Ends one live session of the caller's agent with reason `logout`. `missing` answers
    /// when there is no such session of this agent.
    pub(super) async fn end_session(
        &self,
        p: &Principal,
        session_id: &str,
        missing: BackendError,
    ) -> BackendResult<()> {
        let _turn = self.turns.take(&p.agent_id).await;
        let id = match self.state.lock().sessions.get(session_id) {
            Some(s) if s.agent_id == p.agent_id => s.id.clone(),
            _ => return Err(missing),
        };
        let now = self.clock.now_ms();
        self.writer
            .commit(Write::EndSessions {
                ended: vec![(id.to_string(), EndReason::Logout)],
                now,
            })
            .await?;
        let mut fx = Effects::default();
        {
            let mut st = self.state.lock();
            let now = self.clock.now_ms();
            let by_other = id != p.session_id;
            st.end_session_by(&id, EndReason::Logout, by_other, now, &mut fx);
            self.recompute(&mut st, &p.account_id, now, &mut fx);
        }
        self.metrics.logouts.fetch_add(1, Relaxed);
        self.finish(fx);
        Ok(())
    }

    /// [`Backend::set_push`](crate::backend::Backend::set_push), once the registration is
    /// valid.
    pub(super) async fn set_push(
        &self,
        p: &Principal,
        push: Option<PushRegistration>,
    ) -> BackendResult<()> {
        let _turn = self.turns.take(&p.agent_id).await;
        if !self.state.lock().sessions.contains_key(&p.session_id) {
            return Err(BackendError::session_expired());
        }
        self.writer
            .commit(Write::Push {
                session_id: p.session_id.to_string(),
                push: push.clone(),
            })
            .await?;
        let mut fx = Effects::default();
        {
            let mut st = self.state.lock();
            if let Some(s) = st.sessions.get_mut(&p.session_id) {
                s.push = push;
            }
            st.schedule_session_timers(&p.session_id, &mut fx);
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

    /// [`Backend::create_agent`](crate::backend::Backend::create_agent), once the password
    /// is hashed.
    pub(super) async fn create_agent(
        &self,
        p: &Principal,
        row: AgentRow,
        email_key: String,
    ) -> BackendResult<Agent> {
        let _turn = self.account_turns.take(&p.account_id).await;
        // Checked again under the turn: the account may have changed while the password was
        // hashed.
        self.state
            .lock()
            .check_new_agent(&p.account_id, &email_key, &row.groups)?;
        self.writer.commit(Write::Agent(row.clone())).await?;
        let agent = self.apply_to_account(&p.account_id, |st| {
            let id = arc(&row.id);
            let state = agent_state(row, id.clone(), p.account_id.clone());
            let agent = state.to_agent();
            st.agents.insert(id.clone(), state);
            st.emails
                .insert((p.account_id.clone(), email_key), id.clone());
            if let Some(acc) = st.accounts.get_mut(&p.account_id) {
                acc.agents.push(id);
            }
            agent
        });
        Ok(agent)
    }

    /// [`Backend::patch_agent`](crate::backend::Backend::patch_agent), once its name is
    /// valid.
    pub(super) async fn patch_agent(
        &self,
        p: &Principal,
        id: &str,
        req: PatchAgentRequest,
    ) -> BackendResult<Agent> {
        let _turn = self.account_turns.take(&p.account_id).await;
        let row = {
            let st = self.state.lock();
            let current = st.agent_in_account(&p.account_id, id)?;
            let mut row = AgentRow {
                id: id.to_owned(),
                account_id: p.account_id.to_string(),
                name: current.name.clone(),
                email: current.email.clone(),
                password_hash: String::new(),
                role: current.role,
                groups: current.groups.clone(),
                status: current.status.clone(),
                status_op_id: String::new(),
            };
            if let Some(groups) = &req.groups {
                row.groups = validate::agent_groups(groups, &st.account(&p.account_id)?.groups)?;
            }
            if let Some(role) = req.role {
                if current.role == Role::Owner
                    && role != Role::Owner
                    && st.owners(&p.account_id) <= 1
                {
                    return Err(BackendError::conflict(
                        "an account needs at least one owner",
                    ));
                }
                row.role = role;
            }
            if let Some(name) = req.name {
                row.name = name.trim().to_owned();
            }
            row
        };
        self.writer.commit(Write::AgentProfile(row.clone())).await?;
        let mut fx = Effects::default();
        let agent = {
            let mut st = self.state.lock();
            let a = st
                .agents
                .get_mut(id)
                .ok_or_else(|| BackendError::not_found("agent"))?;
            a.name = row.name;
            a.role = row.role;
            a.groups = row.groups;
            let agent = a.to_agent();
            let now = self.clock.now_ms();
            self.recompute(&mut st, &p.account_id, now, &mut fx);
            agent
        };
        self.finish(fx);
        Ok(agent)
    }

    /// [`Backend::delete_agent`](crate::backend::Backend::delete_agent): the agent goes,
    /// and its sessions end with reason `removed`.
    pub(super) async fn delete_agent(&self, p: &Principal, id: &str) -> BackendResult<()> {
        let _account_turn = self.account_turns.take(&p.account_id).await;
        let _turn = self.turns.take(id).await;
        {
            let st = self.state.lock();
            let agent = st.agent_in_account(&p.account_id, id)?;
            if agent.role == Role::Owner && st.owners(&p.account_id) <= 1 {
                return Err(BackendError::conflict(
                    "an account needs at least one owner",
                ));
            }
        }
        let now = self.clock.now_ms();
        self.writer
            .commit(Write::DeleteAgent {
                agent_id: id.to_owned(),
                now,
            })
            .await?;
        let mut fx = Effects::default();
        {
            let mut st = self.state.lock();
            let now = self.clock.now_ms();
            let Some(agent) = st.agents.get(id) else {
                return Ok(());
            };
            let sessions: Vec<Arc<str>> = agent.sessions.iter().cloned().collect();
            let email_key = agent.email.to_lowercase();
            for s in sessions {
                st.end_session_mem(&s, EndReason::Removed, now, &mut fx);
            }
            st.agents.remove(id);
            st.verified.remove(id);
            st.emails.remove(&(p.account_id.clone(), email_key));
            if let Some(acc) = st.accounts.get_mut(&p.account_id) {
                acc.agents.retain(|a| &**a != id);
            }
            self.recompute(&mut st, &p.account_id, now, &mut fx);
        }
        self.finish(fx);
        Ok(())
    }

    /// [`Backend::put_groups`](crate::backend::Backend::put_groups), once the groups are
    /// valid: agents lose the groups that are gone.
    pub(super) async fn put_groups(
        &self,
        p: &Principal,
        groups: Vec<Group>,
    ) -> BackendResult<Vec<Group>> {
        let _turn = self.account_turns.take(&p.account_id).await;
        let changed: Vec<(String, Vec<String>)> = {
            let st = self.state.lock();
            let acc = st.account(&p.account_id)?;
            let keys: HashSet<&str> = groups.iter().map(|g| g.key.as_str()).collect();
            acc.agents
                .iter()
                .filter_map(|id| st.agents.get(id))
                .filter(|a| a.groups.iter().any(|g| !keys.contains(g.as_str())))
                .map(|a| {
                    (
                        a.id.to_string(),
                        a.groups
                            .iter()
                            .filter(|g| keys.contains(g.as_str()))
                            .cloned()
                            .collect(),
                    )
                })
                .collect()
        };
        self.writer
            .commit(Write::Groups {
                account_id: p.account_id.to_string(),
                groups: groups.clone(),
                agents: changed.clone(),
            })
            .await?;
        self.apply_to_account(&p.account_id, |st| {
            for (id, g) in changed {
                if let Some(a) = st.agents.get_mut(id.as_str()) {
                    a.groups = g;
                }
            }
            if let Some(acc) = st.accounts.get_mut(&p.account_id) {
                acc.groups = groups.clone();
            }
        });
        Ok(groups)
    }

    /// [`Backend::put_opening_hours`](crate::backend::Backend::put_opening_hours), once the
    /// hours are valid (`schedule` is their resolved form).
    pub(super) async fn put_opening_hours(
        &self,
        p: &Principal,
        hours: OpeningHours,
        schedule: WeeklySchedule,
    ) -> BackendResult<OpeningHours> {
        let _turn = self.account_turns.take(&p.account_id).await;
        self.state.lock().account(&p.account_id)?;
        self.writer
            .commit(Write::OpeningHours {
                account_id: p.account_id.to_string(),
                hours: hours.clone(),
            })
            .await?;
        self.apply_to_account(&p.account_id, |st| {
            if let Some(acc) = st.accounts.get_mut(&p.account_id) {
                acc.opening_hours = hours.clone();
                acc.schedule = schedule;
                acc.flip_at = None;
            }
        });
        Ok(hours)
    }

    /// [`Backend::put_settings`](crate::backend::Backend::put_settings): the patch over the
    /// current settings, validated whole.
    pub(super) async fn put_settings(
        &self,
        p: &Principal,
        patch: SettingsPatch,
    ) -> BackendResult<AccountSettings> {
        let _turn = self.account_turns.take(&p.account_id).await;
        let next = {
            let st = self.state.lock();
            let acc = st.account(&p.account_id)?;
            let current = AccountSettings {
                timings: acc.settings,
                messages: acc.messages.clone(),
            };
            validate::account_settings(current, patch)?
        };
        self.writer
            .commit(Write::Settings {
                account_id: p.account_id.to_string(),
                settings: next.clone(),
            })
            .await?;
        self.apply_to_account(&p.account_id, |st| {
            if let Some(acc) = st.accounts.get_mut(&p.account_id) {
                acc.settings = next.timings;
                acc.messages = next.messages.clone();
            }
        });
        Ok(next)
    }

    /// [`Backend::set_status`](crate::backend::Backend::set_status).
    pub(super) async fn set_status(
        &self,
        p: &Principal,
        req: SetStatusRequest,
    ) -> BackendResult<SetStatusResponse> {
        let _turn = self.turns.take(&p.agent_id).await;
        let now = self.clock.now_ms();
        let since = now - retention_ms(self.retention.status_ops);
        if let Some(prev) = self
            .store
            .status_op(&p.agent_id, &req.op_id, since)
            .map_err(storage)?
        {
            return serde_json::from_str(&prev).map_err(BackendError::internal);
        }
        let (resp, json) = {
            let st = self.state.lock();
            let device_id = st.sessions.get(&p.session_id).map(|s| s.device.id.clone());
            let agent = st
                .agents
                .get(&p.agent_id)
                .ok_or_else(BackendError::session_expired)?;
            let intent_at = rules::clamp_intent(req.intent_at, now);
            let cur = &agent.status;
            let applied =
                rules::supersedes(intent_at, &req.op_id, cur.intent_at, &agent.status_op_id);
            let status = if applied {
                StatusView {
                    status: req.status,
                    version: cur.version + 1,
                    intent_at,
                    changed_by_device: device_id,
                }
            } else {
                cur.clone()
            };
            let resp = SetStatusResponse { applied, status };
            let json = serde_json::to_string(&resp).map_err(BackendError::internal)?;
            (resp, json)
        };
        self.writer
            .commit(Write::Status(StatusRecord {
                agent_id: p.agent_id.to_string(),
                op_id: req.op_id.clone(),
                applied: resp.applied.then(|| resp.status.clone()),
                response_json: json,
                now,
            }))
            .await?;
        let mut fx = Effects::default();
        if resp.applied {
            let mut st = self.state.lock();
            let now = self.clock.now_ms();
            st.apply_status(
                &p.agent_id,
                resp.status.clone(),
                &req.op_id,
                Some(&p.session_id),
                now,
                &mut fx,
            );
            self.recompute(&mut st, &p.account_id, now, &mut fx);
            self.metrics.status_changes.fetch_add(1, Relaxed);
        }
        self.finish(fx);
        Ok(resp)
    }

    /// [`Backend::admin_set_status`](crate::backend::Backend::admin_set_status).
    pub(super) async fn admin_set_status(
        &self,
        p: &Principal,
        agent_id: &str,
        status: AgentStatus,
    ) -> BackendResult<StatusView> {
        let _turn = self.turns.take(agent_id).await;
        let now = self.clock.now_ms();
        // A server-made op id: the change is recorded like a device's, and a device's later
        // retry of an older op still loses to it by `intent_at`.
        let op_id = uuid::Uuid::now_v7().to_string();
        let view = {
            let st = self.state.lock();
            let agent = st.agent_in_account(&p.account_id, agent_id)?;
            let cur = &agent.status;
            StatusView {
                status,
                version: cur.version + 1,
                intent_at: rules::admin_intent(now, cur.intent_at),
                changed_by_device: None,
            }
        };
        let json = serde_json::to_string(&SetStatusResponse {
            applied: true,
            status: view.clone(),
        })
        .map_err(BackendError::internal)?;
        self.writer
            .commit(Write::Status(StatusRecord {
                agent_id: agent_id.to_owned(),
                op_id: op_id.clone(),
                applied: Some(view.clone()),
                response_json: json,
                now,
            }))
            .await?;
        let mut fx = Effects::default();
        {
            let mut st = self.state.lock();
            let now = self.clock.now_ms();
            st.apply_status(agent_id, view.clone(), &op_id, None, now, &mut fx);
            self.recompute(&mut st, &p.account_id, now, &mut fx);
        }
        self.metrics.status_changes.fetch_add(1, Relaxed);
        self.finish(fx);
        Ok(view)
    }
}

impl Inner {
    /// The apply step of an admin edit: `change` on memory, then the account's view
    /// recomputed and its effects sent.
    fn apply_to_account<T>(&self, account_id: &str, change: impl FnOnce(&mut State) -> T) -> T {
        let mut fx = Effects::default();
        let out = {
            let mut st = self.state.lock();
            let out = change(&mut st);
            let now = self.clock.now_ms();
            self.recompute(&mut st, account_id, now, &mut fx);
            out
        };
        self.finish(fx);
        out
    }
}

/// The memory of a stored agent row, with no live session yet.
fn agent_state(row: AgentRow, id: Arc<str>, account_id: Arc<str>) -> AgentState {
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
        sessions: HashSet::default(),
        tx: broadcast::channel(AGENT_EVENT_BUFFER).0,
    }
}

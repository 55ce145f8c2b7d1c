//! The operations of [`Backend`] on the embedded backend: each validates, commits to the
//! store, then changes memory and publishes under the one lock, in that order.

use super::*;

use rustc_hash::FxHashSet as HashSet;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use presence_protocol::{
    AccountInfo, AccountSettings, AdminAccountResponse, Agent, AgentStatus, CreateAccountRequest,
    CreateAccountResponse, EndReason, Group, Heartbeat, LoginRequest, LoginResponse, MeResponse,
    Messages, Mode, NewAgentRequest, OpeningHours, PatchAgentRequest, PushRegistration, Role,
    SetStatusRequest, SetStatusResponse, Settings, SettingsPatch, SnapshotEvent, StatusView,
    WeeklySchedule, resolve,
};
use tokio::sync::{broadcast, watch};

use crate::auth::{self, TokenHash};
use crate::backend::{Backend, DeviceStream, Principal, StreamGuard, ViewFrame, WidgetStream};
use crate::backend::{BackendError, BackendResult, storage};
use crate::metrics::Gauges;
use crate::rules;
use crate::store::{AccountRow, AgentRow, SessionRow, StatusRecord};
use crate::validate;

struct DeviceGuard {
    inner: Weak<Inner>,
    session_id: Arc<str>,
}

impl StreamGuard for DeviceGuard {}

impl Drop for DeviceGuard {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            inner.device_streams.fetch_sub(1, Relaxed);
            let mut st = inner.state.lock();
            if let Some(s) = st.sessions.get_mut(&self.session_id) {
                s.connected = s.connected.saturating_sub(1);
            }
        }
    }
}

struct WidgetGuard {
    inner: Weak<Inner>,
}

impl StreamGuard for WidgetGuard {}

impl Drop for WidgetGuard {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            inner.widget_streams.fetch_sub(1, Relaxed);
        }
    }
}

#[async_trait]
impl Backend for Embedded {
    async fn create_account(
        &self,
        req: CreateAccountRequest,
        defaults: Settings,
    ) -> BackendResult<CreateAccountResponse> {
        validate::new_account(&req)?;
        if self.inner.state.lock().slugs.contains_key(&req.slug) {
            return Err(BackendError::conflict(format!(
                "account slug {:?} is taken",
                req.slug
            )));
        }
        let hash = self.hash_password(req.owner.password.clone()).await?;
        let now = self.inner.clock.now_ms();
        let account = AccountRow {
            id: auth::new_id("acc"),
            slug: req.slug.clone(),
            name: req.name.trim().to_owned(),
            widget_key: auth::new_id("wk"),
            settings: AccountSettings {
                timings: defaults,
                messages: Messages::default(),
            },
            opening_hours: OpeningHours::default(),
            groups: Vec::new(),
            view_version: VIEW_VERSION_BLOCK,
        };
        let owner = AgentRow {
            id: auth::new_id("agt"),
            account_id: account.id.clone(),
            name: req.owner.name.trim().to_owned(),
            email: req.owner.email.trim().to_owned(),
            password_hash: hash,
            role: Role::Owner,
            groups: Vec::new(),
            status: initial_status(),
            status_op_id: String::new(),
        };
        let mut fx = Effects::default();
        let resp = {
            let mut st = self.inner.state.lock();
            if st.slugs.contains_key(&req.slug) {
                return Err(BackendError::conflict(format!(
                    "account slug {:?} is taken",
                    req.slug
                )));
            }
            self.inner
                .store
                .insert_account(&account, &owner, now)
                .map_err(storage)?;
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
                    versions_reserved: VIEW_VERSION_BLOCK,
                    flip_at: None,
                },
            );
            st.emails
                .insert((id.clone(), owner.email.to_lowercase()), agent_id.clone());
            let agent = AgentState {
                id: agent_id.clone(),
                account_id: id.clone(),
                name: owner.name,
                email: owner.email,
                password_hash: owner.password_hash,
                role: Role::Owner,
                groups: Vec::new(),
                status: owner.status,
                status_op_id: String::new(),
                sessions: HashSet::default(),
                tx: broadcast::channel(AGENT_EVENT_BUFFER).0,
            };
            let owner_view = agent.to_agent();
            st.agents.insert(agent_id, agent);
            self.inner.recompute(&mut st, &id, now, &mut fx);
            CreateAccountResponse {
                account: info,
                owner: owner_view,
            }
        };
        self.inner.finish(fx);
        Ok(resp)
    }

    async fn login(&self, req: LoginRequest) -> BackendResult<LoginResponse> {
        validate::device(&req.device)?;
        if let Some(push) = &req.push {
            self.inner
                .pusher
                .validate(push)
                .map_err(|r| BackendError::invalid_field(&format!("push.{}", r.field), r.detail))?;
        }
        let email_key = req.email.trim().to_lowercase();
        let found = {
            let st = self.inner.state.lock();
            st.slugs
                .get(&req.account)
                .and_then(|acc| st.emails.get(&(acc.clone(), email_key.clone())))
                .and_then(|id| st.agents.get(id))
                .map(|a| {
                    (
                        a.id.clone(),
                        a.password_hash.clone(),
                        st.verified.get(&a.id).copied(),
                    )
                })
        };
        let bad = || BackendError::InvalidCredentials;
        let Some((agent_id, hash, cached)) = found else {
            let dummy = self.inner.dummy_hash.clone();
            let pw = req.password.clone();
            self.inner
                .hasher
                .run(move || auth::verify_password(&pw, &dummy))
                .await
                .map_err(|_| hashing_busy())?;
            return Err(bad());
        };
        let verifier = self.inner.verifier(&agent_id, &hash, &req.password);
        let ok = if cached.is_some_and(|c| auth::secure_eq(&c, &verifier)) {
            true
        } else {
            let pw = req.password.clone();
            let h = hash.clone();
            let ok = self
                .inner
                .hasher
                .run(move || auth::verify_password(&pw, &h))
                .await
                .map_err(|_| hashing_busy())?;
            if ok {
                self.inner
                    .state
                    .lock()
                    .verified
                    .insert(agent_id.clone(), verifier);
            }
            ok
        };
        if !ok {
            return Err(bad());
        }
        let token = auth::new_token();
        let token_hash = auth::token_hash(&token);
        let session_id = arc(&auth::new_id("ses"));
        let mut fx = Effects::default();
        let resp = {
            let mut st = self.inner.state.lock();
            let now = self.inner.clock.now_ms();
            let (account_id, agent, status, role) = {
                let agent = st.agents.get(&agent_id).ok_or_else(bad)?;
                (
                    agent.account_id.clone(),
                    agent.to_agent(),
                    agent.status.clone(),
                    agent.role,
                )
            };
            let _ = role;
            let settings = st.account(&account_id)?.settings;
            // Same device, same account: the old session is replaced.
            let device_key = (account_id.clone(), req.device.id.clone());
            let replaces: Option<Arc<str>> = st.devices.get(&device_key).cloned();
            let row = SessionRow {
                id: session_id.to_string(),
                account_id: account_id.to_string(),
                agent_id: agent_id.to_string(),
                token_hash: hex::encode(token_hash),
                device: req.device.clone(),
                mode: Mode::Active,
                lease_until: now + settings.active_ttl_ms,
                push: req.push.clone(),
            };
            self.inner
                .store
                .insert_session(&row, replaces.as_deref(), now)
                .map_err(storage)?;
            if let Some(old) = &replaces {
                st.end_session_mem(old, EndReason::Replaced, now, &mut fx);
            }
            st.sessions.insert(
                session_id.clone(),
                SessionState {
                    id: session_id.clone(),
                    account_id: account_id.clone(),
                    agent_id: agent_id.clone(),
                    token_hash,
                    device: req.device,
                    mode: Mode::Active,
                    lease_until: row.lease_until,
                    push: req.push,
                    connected: 0,
                    scheduled_expiry: 0,
                    renew_at: None,
                },
            );
            st.tokens
                .insert(token_hash, TokenEntry::Live(session_id.clone()));
            st.devices.insert(device_key, session_id.clone());
            if let Some(a) = st.agents.get_mut(&agent_id) {
                a.sessions.insert(session_id.clone());
            }
            st.schedule_session_timers(&session_id, &mut fx);
            self.inner.recompute(&mut st, &account_id, now, &mut fx);
            let heartbeat = {
                let s = st.sessions.get(&session_id).ok_or_else(bad)?;
                self.inner.heartbeat_for(&st, s, now)
            };
            LoginResponse {
                token,
                session_id: session_id.to_string(),
                agent,
                status,
                heartbeat,
                server_time: now,
            }
        };
        self.inner.metrics.logins.fetch_add(1, Relaxed);
        self.inner.finish(fx);
        Ok(resp)
    }

    async fn authenticate(&self, token: &TokenHash) -> BackendResult<Principal> {
        let st = self.inner.state.lock();
        let s = st.live_session(token, self.inner.clock.now_ms())?;
        let role = st
            .agents
            .get(&s.agent_id)
            .map(|a| a.role)
            .ok_or_else(BackendError::session_expired)?;
        Ok(Principal {
            session_id: s.id.clone(),
            agent_id: s.agent_id.clone(),
            account_id: s.account_id.clone(),
            role,
        })
    }

    async fn heartbeat(&self, token: &TokenHash, mode: Mode) -> BackendResult<Heartbeat> {
        let mut fx = Effects::default();
        let hb = {
            let mut guard = self.inner.state.lock();
            let st = &mut *guard;
            let now = self.inner.clock.now_ms();
            let id = st.live_session(token, now)?.id.clone();
            let s = st
                .sessions
                .get_mut(&id)
                .ok_or_else(BackendError::session_expired)?;
            let settings = st
                .accounts
                .get(&s.account_id)
                .map(|a| a.settings)
                .ok_or_else(BackendError::session_expired)?;
            let status_version = st
                .agents
                .get(&s.agent_id)
                .map(|a| a.status.version)
                .ok_or_else(BackendError::session_expired)?;
            let has_push = s.push.is_some();
            let (interval_ms, ttl_ms) = rules::lease_terms(&settings, mode, has_push);
            s.lease_until = rules::renewed_lease_until(
                &settings,
                s.mode == Mode::Background,
                mode,
                has_push,
                s.lease_until,
                now,
            );
            s.mode = mode;
            s.schedule_timers(settings.renew_margin_ms, &mut st.timers, &mut fx);
            let lease_until = s.lease_until;
            st.dirty_leases.insert(id);
            Heartbeat {
                interval_ms,
                ttl_ms,
                lease_until,
                server_time: now,
                status_version,
            }
        };
        self.inner.metrics.heartbeats.fetch_add(1, Relaxed);
        self.inner.finish(fx);
        Ok(hb)
    }

    async fn logout(&self, p: &Principal) -> BackendResult<()> {
        self.end_session_now(p, &p.session_id, BackendError::session_expired())
    }

    async fn end_own_session(&self, p: &Principal, session_id: &str) -> BackendResult<()> {
        self.end_session_now(p, session_id, BackendError::not_found("session"))
    }

    async fn set_push(&self, p: &Principal, push: Option<PushRegistration>) -> BackendResult<()> {
        if let Some(reg) = &push {
            self.inner
                .pusher
                .validate(reg)
                .map_err(|r| BackendError::invalid_field(r.field, r.detail))?;
        }
        let mut fx = Effects::default();
        {
            let mut st = self.inner.state.lock();
            if !st.sessions.contains_key(&p.session_id) {
                return Err(BackendError::session_expired());
            }
            self.inner
                .store
                .set_push(&p.session_id, push.as_ref())
                .map_err(storage)?;
            if let Some(s) = st.sessions.get_mut(&p.session_id) {
                s.push = push;
            }
            st.schedule_session_timers(&p.session_id, &mut fx);
        }
        self.inner.finish(fx);
        Ok(())
    }

    async fn me(&self, p: &Principal) -> BackendResult<MeResponse> {
        self.inner.state.lock().me_view(p)
    }

    async fn set_status(
        &self,
        p: &Principal,
        req: SetStatusRequest,
    ) -> BackendResult<SetStatusResponse> {
        validate::op_id(&req.op_id)?;
        // Plan, commit, apply: one op of this agent at a time, the state lock held only to
        // plan and to apply, never while SQLite writes (see `writer.rs`). In a task of its
        // own, so a client that goes away cannot leave a committed change unapplied.
        let inner = self.inner.clone();
        let p = p.clone();
        tokio::spawn(async move { inner.set_status(&p, req).await })
            .await
            .map_err(BackendError::internal)?
    }

    async fn open_device_stream(&self, p: &Principal) -> BackendResult<DeviceStream> {
        let mut st = self.inner.state.lock();
        let me = st.me_view(p)?;
        let acc = st.account(&p.account_id)?;
        let views = acc.view_tx.subscribe();
        let agent = st.agent_in_account(&p.account_id, &p.agent_id)?;
        let events = agent.tx.subscribe();
        let snapshot = SnapshotEvent {
            status: me.status,
            chatbox: me.chatbox,
        };
        let s = st
            .sessions
            .get_mut(&p.session_id)
            .ok_or_else(BackendError::session_expired)?;
        s.connected += 1;
        self.inner.device_streams.fetch_add(1, Relaxed);
        Ok(DeviceStream {
            session_id: p.session_id.clone(),
            snapshot,
            events,
            views,
            guard: Box::new(DeviceGuard {
                inner: Arc::downgrade(&self.inner),
                session_id: p.session_id.clone(),
            }),
        })
    }

    async fn admin_account(&self, p: &Principal) -> BackendResult<AdminAccountResponse> {
        let st = self.inner.state.lock();
        let acc = st.account(&p.account_id)?;
        let mut agents: Vec<Agent> = acc
            .agents
            .iter()
            .filter_map(|id| st.agents.get(id))
            .map(AgentState::to_agent)
            .collect();
        agents.sort_by(|a, b| a.email.cmp(&b.email));
        Ok(AdminAccountResponse {
            account: acc.info.clone(),
            groups: acc.groups.clone(),
            opening_hours: acc.opening_hours.clone(),
            settings: AccountSettings {
                timings: acc.settings,
                messages: acc.messages.clone(),
            },
            agents,
        })
    }

    async fn create_agent(&self, p: &Principal, req: NewAgentRequest) -> BackendResult<Agent> {
        validate::name("name", &req.name)?;
        validate::email("email", &req.email)?;
        validate::password("password", &req.password)?;
        let email_key = req.email.trim().to_lowercase();
        let groups = {
            let st = self.inner.state.lock();
            let acc = st.account(&p.account_id)?;
            if st
                .emails
                .contains_key(&(p.account_id.clone(), email_key.clone()))
            {
                return Err(BackendError::conflict("an agent with this email exists"));
            }
            validate::agent_groups(&req.groups, &acc.groups)?
        };
        let hash = self.hash_password(req.password.clone()).await?;
        let row = AgentRow {
            id: auth::new_id("agt"),
            account_id: p.account_id.to_string(),
            name: req.name.trim().to_owned(),
            email: req.email.trim().to_owned(),
            password_hash: hash,
            role: req.role,
            groups,
            status: initial_status(),
            status_op_id: String::new(),
        };
        let mut fx = Effects::default();
        let agent = {
            let mut st = self.inner.state.lock();
            if st
                .emails
                .contains_key(&(p.account_id.clone(), email_key.clone()))
            {
                return Err(BackendError::conflict("an agent with this email exists"));
            }
            st.account(&p.account_id)?;
            self.inner.store.insert_agent(&row).map_err(storage)?;
            let id = arc(&row.id);
            let state = AgentState {
                id: id.clone(),
                account_id: p.account_id.clone(),
                name: row.name,
                email: row.email,
                password_hash: row.password_hash,
                role: row.role,
                groups: row.groups,
                status: row.status,
                status_op_id: String::new(),
                sessions: HashSet::default(),
                tx: broadcast::channel(AGENT_EVENT_BUFFER).0,
            };
            let agent = state.to_agent();
            st.agents.insert(id.clone(), state);
            st.emails
                .insert((p.account_id.clone(), email_key), id.clone());
            if let Some(acc) = st.accounts.get_mut(&p.account_id) {
                acc.agents.push(id);
            }
            let now = self.inner.clock.now_ms();
            self.inner.recompute(&mut st, &p.account_id, now, &mut fx);
            agent
        };
        self.inner.finish(fx);
        Ok(agent)
    }

    async fn patch_agent(
        &self,
        p: &Principal,
        id: &str,
        req: PatchAgentRequest,
    ) -> BackendResult<Agent> {
        if let Some(name) = &req.name {
            validate::name("name", name)?;
        }
        let mut fx = Effects::default();
        let agent = {
            let mut st = self.inner.state.lock();
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
            self.inner
                .store
                .update_agent_profile(&row)
                .map_err(storage)?;
            let a = st
                .agents
                .get_mut(id)
                .ok_or_else(|| BackendError::not_found("agent"))?;
            a.name = row.name;
            a.role = row.role;
            a.groups = row.groups;
            let agent = a.to_agent();
            let now = self.inner.clock.now_ms();
            self.inner.recompute(&mut st, &p.account_id, now, &mut fx);
            agent
        };
        self.inner.finish(fx);
        Ok(agent)
    }

    async fn delete_agent(&self, p: &Principal, id: &str) -> BackendResult<()> {
        let mut fx = Effects::default();
        {
            let mut st = self.inner.state.lock();
            let agent = st.agent_in_account(&p.account_id, id)?;
            if agent.role == Role::Owner && st.owners(&p.account_id) <= 1 {
                return Err(BackendError::conflict(
                    "an account needs at least one owner",
                ));
            }
            let sessions: Vec<Arc<str>> = agent.sessions.iter().cloned().collect();
            let email_key = agent.email.to_lowercase();
            let now = self.inner.clock.now_ms();
            self.inner.store.delete_agent(id, now).map_err(storage)?;
            for s in sessions {
                st.end_session_mem(&s, EndReason::Removed, now, &mut fx);
            }
            st.agents.remove(id);
            st.verified.remove(id);
            st.emails.remove(&(p.account_id.clone(), email_key));
            if let Some(acc) = st.accounts.get_mut(&p.account_id) {
                acc.agents.retain(|a| &**a != id);
            }
            self.inner.recompute(&mut st, &p.account_id, now, &mut fx);
        }
        self.inner.finish(fx);
        Ok(())
    }

    async fn admin_set_status(
        &self,
        p: &Principal,
        agent_id: &str,
        status: AgentStatus,
    ) -> BackendResult<StatusView> {
        let inner = self.inner.clone();
        let (p, agent_id) = (p.clone(), agent_id.to_owned());
        tokio::spawn(async move { inner.admin_set_status(&p, &agent_id, status).await })
            .await
            .map_err(BackendError::internal)?
    }

    async fn put_groups(&self, p: &Principal, groups: Vec<Group>) -> BackendResult<Vec<Group>> {
        let groups = validate::groups(groups)?;
        let mut fx = Effects::default();
        {
            let mut st = self.inner.state.lock();
            let acc = st.account(&p.account_id)?;
            let keys: HashSet<&str> = groups.iter().map(|g| g.key.as_str()).collect();
            let changed: Vec<(String, Vec<String>)> = acc
                .agents
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
                .collect();
            self.inner
                .store
                .replace_groups(&p.account_id, &groups, &changed)
                .map_err(storage)?;
            for (id, g) in changed {
                if let Some(a) = st.agents.get_mut(id.as_str()) {
                    a.groups = g;
                }
            }
            if let Some(acc) = st.accounts.get_mut(&p.account_id) {
                acc.groups = groups.clone();
            }
            let now = self.inner.clock.now_ms();
            self.inner.recompute(&mut st, &p.account_id, now, &mut fx);
        }
        self.inner.finish(fx);
        Ok(groups)
    }

    async fn put_opening_hours(
        &self,
        p: &Principal,
        oh: OpeningHours,
    ) -> BackendResult<OpeningHours> {
        let schedule = WeeklySchedule::from_opening_hours(&oh)
            .map_err(|e| BackendError::invalid_field(&e.field, &e.detail))?;
        let mut fx = Effects::default();
        {
            let mut st = self.inner.state.lock();
            st.account(&p.account_id)?;
            self.inner
                .store
                .update_opening_hours(&p.account_id, &oh)
                .map_err(storage)?;
            if let Some(acc) = st.accounts.get_mut(&p.account_id) {
                acc.opening_hours = oh.clone();
                acc.schedule = schedule;
                acc.flip_at = None;
            }
            let now = self.inner.clock.now_ms();
            self.inner.recompute(&mut st, &p.account_id, now, &mut fx);
        }
        self.inner.finish(fx);
        Ok(oh)
    }

    async fn put_settings(
        &self,
        p: &Principal,
        patch: SettingsPatch,
    ) -> BackendResult<AccountSettings> {
        let mut fx = Effects::default();
        let next = {
            let mut st = self.inner.state.lock();
            let acc = st.account(&p.account_id)?;
            let current = AccountSettings {
                timings: acc.settings,
                messages: acc.messages.clone(),
            };
            let next = validate::account_settings(current, patch)?;
            self.inner
                .store
                .update_settings(&p.account_id, &next)
                .map_err(storage)?;
            if let Some(acc) = st.accounts.get_mut(&p.account_id) {
                acc.settings = next.timings;
                acc.messages = next.messages.clone();
            }
            let now = self.inner.clock.now_ms();
            self.inner.recompute(&mut st, &p.account_id, now, &mut fx);
            next
        };
        self.inner.finish(fx);
        Ok(next)
    }

    async fn widget_view(&self, widget_key: &str) -> BackendResult<Arc<ViewFrame>> {
        let st = self.inner.state.lock();
        st.widget_keys
            .get(widget_key)
            .and_then(|id| st.accounts.get(id))
            .map(|a| a.view.clone())
            .ok_or_else(|| BackendError::not_found("widget"))
    }

    async fn open_widget_stream(&self, widget_key: &str) -> BackendResult<WidgetStream> {
        let st = self.inner.state.lock();
        let acc = st
            .widget_keys
            .get(widget_key)
            .and_then(|id| st.accounts.get(id))
            .ok_or_else(|| BackendError::not_found("widget"))?;
        let views = acc.view_tx.subscribe();
        self.inner.widget_streams.fetch_add(1, Relaxed);
        Ok(WidgetStream {
            views,
            guard: Box::new(WidgetGuard {
                inner: Arc::downgrade(&self.inner),
            }),
        })
    }

    async fn account_by_slug(&self, slug: &str) -> BackendResult<Option<AccountInfo>> {
        Ok(Embedded::account_by_slug(self, slug))
    }

    async fn health(&self) -> BackendResult<()> {
        // The store is a file this process holds open: it answers while the process runs.
        Ok(())
    }

    async fn gauges(&self) -> Gauges {
        let st = self.inner.state.lock();
        Gauges {
            live_sessions: st.sessions.len() as u64,
            ended_tokens: st.ended.len() as u64,
            device_subscribers: self.inner.device_streams.load(Relaxed),
            widget_subscribers: self.inner.widget_streams.load(Relaxed),
            accounts: st.accounts.len() as u64,
        }
    }

    async fn flush(&self) {
        self.flush_now();
    }
}

impl Embedded {
    /// Ends one live session of the caller's agent with reason `logout`: committed, then
    /// memory and views. `missing` answers when there is no such session of this agent.
    fn end_session_now(
        &self,
        p: &Principal,
        session_id: &str,
        missing: BackendError,
    ) -> BackendResult<()> {
        let mut fx = Effects::default();
        {
            let mut st = self.inner.state.lock();
            let now = self.inner.clock.now_ms();
            let id = match st.sessions.get(session_id) {
                Some(s) if s.agent_id == p.agent_id => s.id.clone(),
                _ => return Err(missing),
            };
            self.inner
                .store
                .end_sessions(&[(id.to_string(), EndReason::Logout)], now)
                .map_err(storage)?;
            let by_other = id != p.session_id;
            st.end_session_by(&id, EndReason::Logout, by_other, now, &mut fx);
            self.inner.recompute(&mut st, &p.account_id, now, &mut fx);
        }
        self.inner.metrics.logouts.fetch_add(1, Relaxed);
        self.inner.finish(fx);
        Ok(())
    }
}

/// The status writes, as `Inner` methods so a spawned task can own them.
impl Inner {
    /// [`Backend::set_status`], run to completion in its own task.
    async fn set_status(
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
            .commit(StatusRecord {
                agent_id: p.agent_id.to_string(),
                op_id: req.op_id.clone(),
                applied: resp.applied.then(|| resp.status.clone()),
                response_json: json,
                now,
            })
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

    /// [`Backend::admin_set_status`], run to completion in its own task.
    async fn admin_set_status(
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
            .commit(StatusRecord {
                agent_id: agent_id.to_owned(),
                op_id: op_id.clone(),
                applied: Some(view.clone()),
                response_json: json,
                now,
            })
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

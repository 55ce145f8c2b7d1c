//! The operations of [`Backend`] on the embedded backend. A read takes the state lock and
//! answers from memory. A write is planned under the lock, committed off it (the group
//! commit of `writer.rs`), then applied to memory and published under the lock again, all
//! while holding its turn (the agent's; the account's for admin edits, taken first), and in
//! a task of its own, so a client that goes away cannot leave a committed change unapplied.

use super::*;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use presence_protocol::{
    Heartbeat, LoginRequest, LoginResponse, MeResponse, Mode, PushRegistration, SetStatusResponse,
    SnapshotEvent,
};

use crate::auth::TokenHash;
use crate::backend::{Backend, DeviceStream, Principal, StreamGuard, ViewFrame, WidgetStream};
use crate::backend::{BackendError, BackendResult};
use crate::metrics::Gauges;
use crate::ops::status::{StatusChange, StatusPlan};
use crate::ops::{AccountEdit, AccountKey, AccountPlan, AccountSlice};
use crate::rules;
use crate::store::{AccountRow, AgentRow};
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
    async fn create_account(&self, account: AccountRow, owner: AgentRow) -> BackendResult<()> {
        self.to_completion(move |inner| async move { inner.create_account(account, owner).await })
            .await
    }

    async fn login(&self, req: LoginRequest) -> BackendResult<LoginResponse> {
        validate::device(&req.device)?;
        if let Some(push) = &req.push {
            self.inner
                .pusher
                .validate(push)
                .map_err(|r| BackendError::invalid_field(&format!("push.{}", r.field), r.detail))?;
        }
        let email_key = crate::rows::email_key(&req.email);
        let found = {
            let st = self.inner.state.lock();
            st.slugs
                .get(&req.account)
                .and_then(|acc| st.emails.get(&(acc.clone(), email_key)))
                .and_then(|id| st.agents.get(id))
                .map(|a| (a.id.clone(), a.password_hash.clone()))
        };
        self.inner
            .credentials
            .check(
                found.as_ref().map(|(id, h)| (&**id, h.as_str())),
                &req.password,
            )
            .await?;
        let Some((agent_id, _)) = found else {
            return Err(BackendError::InvalidCredentials);
        };
        let opening = super::writes::Opening {
            agent_id,
            device: req.device,
            push: req.push,
        };
        self.to_completion(move |inner| async move { inner.open_session(opening).await })
            .await
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

    async fn end_session(&self, p: &Principal, session_id: &str) -> BackendResult<()> {
        let (p, id) = (p.clone(), session_id.to_owned());
        self.to_completion(move |inner| async move { inner.end_session(&p, &id).await })
            .await
    }

    async fn set_push(&self, p: &Principal, push: Option<PushRegistration>) -> BackendResult<()> {
        if let Some(reg) = &push {
            self.inner
                .pusher
                .validate(reg)
                .map_err(|r| BackendError::invalid_field(r.field, r.detail))?;
        }
        let p = p.clone();
        self.to_completion(move |inner| async move { inner.set_push(&p, push).await })
            .await
    }

    async fn me(&self, p: &Principal) -> BackendResult<MeResponse> {
        self.inner.state.lock().me_view(p)
    }

    async fn change_status(
        &self,
        change: StatusChange,
        plan: StatusPlan,
    ) -> BackendResult<SetStatusResponse> {
        // Plan, commit, apply: one op of this agent at a time, the state lock held only to
        // plan and to apply, never while SQLite writes (see `writer.rs`). In a task of its
        // own, so a client that goes away cannot leave a committed change unapplied.
        self.to_completion(move |inner| async move { inner.change_status(change, plan).await })
            .await
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

    async fn account_slice(&self, key: AccountKey<'_>) -> BackendResult<AccountSlice> {
        let st = self.inner.state.lock();
        let id = match key {
            AccountKey::Id(id) => id,
            AccountKey::Slug(slug) => st
                .slugs
                .get(slug)
                .map(|id| &**id)
                .ok_or_else(|| BackendError::not_found("account"))?,
        };
        st.account_slice(id)
    }

    async fn edit_account(
        &self,
        account_id: &str,
        plan: AccountPlan,
    ) -> BackendResult<AccountEdit> {
        let account_id = account_id.to_owned();
        self.to_completion(move |inner| async move { inner.edit_account(&account_id, plan).await })
            .await
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
    /// Runs a write to completion in a task of its own: a client that goes away (or its
    /// request deadline) cannot leave a committed change unapplied.
    async fn to_completion<T, Fut>(&self, f: impl FnOnce(Arc<Inner>) -> Fut) -> BackendResult<T>
    where
        Fut: std::future::Future<Output = BackendResult<T>> + Send + 'static,
        T: Send + 'static,
    {
        tokio::spawn(f(self.inner.clone()))
            .await
            .map_err(BackendError::internal)?
    }
}

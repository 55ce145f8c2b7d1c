//! The operations of [`Backend`] on the embedded backend. A read takes the state lock and
//! answers from memory. A write is planned under the lock, committed off it (the group
//! commit of `writer.rs`), then applied to memory and published under the lock again, all
//! while holding its turn (the agent's; the account's for admin edits, taken first), and in
//! a task of its own, so a client that goes away cannot leave a committed change unapplied.

use super::WebhookLeases;
use super::*;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use presence_protocol::{Mode, PresenceSnapshot, SetStatusResponse, SnapshotEvent, StatusLogEntry};

use crate::auth::TokenHash;
use crate::backend::{
    Backend, DeviceStream, EventSignal, Principal, Renewal, Reported, SessionCheck, StreamGuard,
    WidgetStream, WidgetViews,
};
use crate::backend::{BackendError, BackendResult, LogQuery, storage};
use crate::history::Logged;
use crate::history::events::Stored;
use crate::history::query::{HistoryQuery, HistoryRows};
use crate::metrics::Gauges;
use crate::ops::idle::Report;
use crate::ops::sessions::{self, AgentKey, AgentSlice, SessionEdit, SessionPlan, Sessions};
use crate::ops::status::{StatusChange, StatusPlan};
use crate::ops::{AccountEdit, AccountKey, AccountPlan, AccountSlice, AccountTarget};
use crate::rules;
use crate::store::Work;
use crate::webhooks::{Claims, DeliveryRow, Job, Settle, WebhookEdit, WebhookRow};
use presence_protocol::DeliveryState;

/// Which [`AccountTarget`] a key is for.
#[derive(Clone, Copy)]
enum TargetKind {
    Existing,
    WithAgents,
    New,
}

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
        target: AccountTarget<'_>,
        plan: AccountPlan,
    ) -> BackendResult<AccountEdit> {
        // Owned, for the task that runs it.
        let (key, kind) = match target {
            AccountTarget::Existing(id) => (id.to_owned(), TargetKind::Existing),
            AccountTarget::WithAgents(id) => (id.to_owned(), TargetKind::WithAgents),
            AccountTarget::New(slug) => (slug.to_owned(), TargetKind::New),
        };
        self.to_completion(move |inner| async move {
            let target = match kind {
                TargetKind::Existing => AccountTarget::Existing(&key),
                TargetKind::WithAgents => AccountTarget::WithAgents(&key),
                TargetKind::New => AccountTarget::New(&key),
            };
            inner.edit_account(target, plan).await
        })
        .await
    }

    async fn agent_slice(&self, key: AgentKey<'_>) -> BackendResult<AgentSlice> {
        let st = self.inner.state.lock();
        let now = self.inner.clock.now_ms();
        match key {
            AgentKey::Id {
                account_id,
                agent_id,
            } => st.agent_slice(account_id, agent_id, now, &Sessions::All, true),
            AgentKey::Login {
                account_slug,
                email,
            } => {
                let a = st.agent_by_login(account_slug, email)?;
                st.agent_slice(&a.account_id, &a.id, now, &Sessions::None, false)
            }
        }
    }

    async fn edit_sessions(
        &self,
        account_id: &str,
        agent_id: &str,
        sessions: Sessions,
        plan: SessionPlan,
    ) -> BackendResult<(AgentSlice, SessionEdit)> {
        let (account_id, agent_id) = (account_id.to_owned(), agent_id.to_owned());
        self.to_completion(move |inner| async move {
            inner
                .edit_sessions(&account_id, &agent_id, sessions, plan)
                .await
        })
        .await
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

    async fn session(
        &self,
        token: &TokenHash,
        renew: Option<Renewal>,
    ) -> BackendResult<SessionCheck> {
        let Some(Renewal { mode, idle_ms }) = renew else {
            let st = self.inner.state.lock();
            let s = st.live_session(token, self.inner.clock.now_ms())?;
            let role = st
                .agents
                .get(&s.agent_id)
                .map(|a| a.role)
                .ok_or_else(BackendError::session_expired)?;
            return Ok(SessionCheck::Authenticated(Principal {
                session_id: s.id.clone(),
                agent_id: s.agent_id.clone(),
                account_id: s.account_id.clone(),
                role,
            }));
        };
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
            let (settings, idle_on) = st
                .accounts
                .get(&s.account_id)
                .map(|a| (a.settings, a.idle.idle_after_ms.is_some()))
                .ok_or_else(BackendError::session_expired)?;
            let status_version = st
                .agents
                .get(&s.agent_id)
                .map(|a| a.status.version)
                .ok_or_else(BackendError::session_expired)?;
            let has_push = s.push.is_some();
            s.lease_until = rules::renewed_lease_until(
                &settings,
                s.mode == Mode::Background,
                mode,
                has_push,
                s.lease_until,
                now,
            );
            s.mode = mode;
            s.activity = idle_ms.map(|idle_ms| Report { at: now, idle_ms });
            let reported = match s.activity {
                Some(report) if idle_on => Some(Reported {
                    account_id: s.account_id.clone(),
                    agent_id: s.agent_id.clone(),
                    report,
                }),
                _ => None,
            };
            s.schedule_timers(settings.renew_margin_ms, &mut st.timers, &mut fx);
            let lease_until = s.lease_until;
            st.dirty_leases.insert(id);
            let hb =
                sessions::heartbeat(&settings, mode, has_push, lease_until, now, status_version);
            (hb, reported)
        };
        self.inner.metrics.heartbeats.inc();
        self.inner.finish(fx);
        Ok(SessionCheck::Renewed(hb.0, hb.1))
    }

    async fn open_device_stream(&self, p: &Principal) -> BackendResult<DeviceStream> {
        let mut st = self.inner.state.lock();
        let agent = st.agent_in_account(&p.account_id, &p.agent_id)?;
        let (status, events) = (agent.status.clone(), agent.tx.subscribe());
        let acc = st.account(&p.account_id)?;
        let (chatbox, views) = (acc.view.view.clone(), acc.view_tx.subscribe());
        let s = st
            .sessions
            .get_mut(&p.session_id)
            .ok_or_else(BackendError::session_expired)?;
        s.connected += 1;
        self.inner.device_streams.fetch_add(1, Relaxed);
        Ok(DeviceStream {
            session_id: p.session_id.clone(),
            snapshot: SnapshotEvent { status, chatbox },
            events,
            views,
            guard: Box::new(DeviceGuard {
                inner: Arc::downgrade(&self.inner),
                session_id: p.session_id.clone(),
            }),
        })
    }

    async fn widget(&self, widget_key: &str, follow: bool) -> BackendResult<WidgetViews> {
        let st = self.inner.state.lock();
        let acc = st
            .widget_keys
            .get(widget_key)
            .and_then(|id| st.accounts.get(id))
            .ok_or_else(|| BackendError::not_found("widget"))?;
        let stream = follow.then(|| {
            self.inner.widget_streams.fetch_add(1, Relaxed);
            WidgetStream {
                views: acc.view_tx.subscribe(),
                guard: Box::new(WidgetGuard {
                    inner: Arc::downgrade(&self.inner),
                }),
            }
        });
        Ok(WidgetViews {
            current: acc.view.clone(),
            stream,
        })
    }

    async fn status_log(&self, q: LogQuery) -> BackendResult<Vec<StatusLogEntry>> {
        self.inner
            .state
            .lock()
            .agent_in_account(&q.account_id, &q.agent_id)?;
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || {
            store.status_log(&q.agent_id, q.from, q.to, q.before_version, q.limit)
        })
        .await
        .map_err(BackendError::internal)?
        .map_err(storage)
    }

    async fn history(&self, q: HistoryQuery) -> BackendResult<HistoryRows> {
        if let Some(agent_id) = &q.agent_id {
            self.inner
                .state
                .lock()
                .agent_in_account(&q.account_id, agent_id)?;
        }
        let store = self.inner.store.clone();
        let mut rows = tokio::task::spawn_blocking(move || store.history(&q))
            .await
            .map_err(BackendError::internal)?
            .map_err(storage)?;
        rows.now = self.inner.clock.now_ms();
        Ok(rows)
    }

    async fn import_history(&self, account_id: &str, rows: Vec<Logged>) -> BackendResult<()> {
        self.inner.state.lock().account(account_id)?;
        let write = crate::store::Write::ImportHistory {
            account_id: account_id.to_owned(),
            rows: Arc::new(rows),
        };
        self.inner.writer.commit(write).await
    }

    async fn presence(&self, account_id: &str) -> BackendResult<PresenceSnapshot> {
        let chatbox = self
            .inner
            .state
            .lock()
            .account(account_id)?
            .view
            .view
            .clone();
        let store = self.inner.store.clone();
        let id = account_id.to_owned();
        let (seq, agents) = tokio::task::spawn_blocking(move || store.presence(&id))
            .await
            .map_err(BackendError::internal)?
            .map_err(storage)?;
        Ok(PresenceSnapshot {
            seq,
            agents,
            chatbox,
        })
    }

    async fn events(&self, account_id: &str, after: i64, limit: u32) -> BackendResult<Vec<Stored>> {
        let store = self.inner.store.clone();
        let id = account_id.to_owned();
        tokio::task::spawn_blocking(move || store.events_after(&id, after, limit))
            .await
            .map_err(BackendError::internal)?
            .map_err(storage)
    }

    fn event_signal(&self) -> EventSignal {
        EventSignal::Commits(self.inner.writer.commits())
    }

    async fn known_device(&self, agent_id: &str, device_id: &str) -> BackendResult<bool> {
        let store = self.inner.store.clone();
        let (agent_id, device_id) = (agent_id.to_owned(), device_id.to_owned());
        tokio::task::spawn_blocking(move || store.known_device(&agent_id, &device_id))
            .await
            .map_err(BackendError::internal)?
            .map_err(storage)
    }

    async fn health(&self) -> BackendResult<()> {
        // The store is a file this process holds open: it answers while the process runs.
        Ok(())
    }

    async fn webhooks(&self, account_id: &str) -> BackendResult<Vec<WebhookRow>> {
        let id = account_id.to_owned();
        self.blocking(move |store| store.webhooks(&id)).await
    }

    async fn edit_webhook(&self, edit: WebhookEdit) -> BackendResult<()> {
        self.blocking(move |store| store.edit_webhook(&edit))
            .await?
            .answer()
    }

    async fn claim_webhooks(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> BackendResult<Claims> {
        let held = {
            let mut l = self.inner.webhook_leases.lock();
            l.retain(|_, (_, until)| *until >= now);
            l.keys().cloned().collect::<std::collections::HashSet<_>>()
        };
        let work: Work = self
            .blocking(move |store| store.webhook_work(now, limit, &held))
            .await?;
        if !work.skipped.is_empty() || !work.expired.is_empty() {
            // Cursors past events an endpoint does not take, and manual retries of events
            // past their retention: kept, so the next look starts past them.
            let write = crate::store::Write::WebhookCursors {
                skipped: work.skipped,
                expired: work.expired,
                now,
            };
            self.inner.writer.commit(write).await?;
        }
        let mut l = self.inner.webhook_leases.lock();
        let mut claims = work.claims;
        // A lease taken meanwhile by another worker of this process wins.
        claims.jobs.retain(|j| !l.contains_key(&j.webhook.id));
        for j in &claims.jobs {
            l.insert(j.webhook.id.clone(), (owner.to_owned(), lease_until));
        }
        Ok(claims)
    }

    async fn settle_webhook(&self, owner: &str, job: &Job, settle: &Settle) -> BackendResult<()> {
        let ours = |l: &WebhookLeases| l.get(&job.webhook.id).is_some_and(|(o, _)| o == owner);
        if !ours(&self.inner.webhook_leases.lock()) {
            return Ok(());
        }
        if *settle != Settle::Released {
            let write = crate::store::Write::WebhookSettle {
                job: Box::new(job.clone()),
                settle: settle.clone(),
            };
            // The lease is let go only once the outcome is committed, so the next claim
            // reads the cursor past this event.
            self.inner.writer.commit(write).await?;
        }
        let mut l = self.inner.webhook_leases.lock();
        if ours(&l) {
            l.remove(&job.webhook.id);
        }
        Ok(())
    }

    async fn webhook_deliveries(
        &self,
        webhook: &WebhookRow,
        state: Option<DeliveryState>,
        limit: usize,
    ) -> BackendResult<(Vec<DeliveryRow>, Vec<Stored>)> {
        let hook = webhook.clone();
        self.blocking(move |store| store.webhook_deliveries(&hook, state, limit))
            .await
    }

    async fn retry_webhook(
        &self,
        webhook: &WebhookRow,
        seq: i64,
        now: i64,
    ) -> BackendResult<Option<DeliveryState>> {
        let id = webhook.id.clone();
        self.blocking(move |store| store.retry_webhook(&id, seq, now))
            .await
    }
}

/// The gauges of an embedded backend, read under its state lock (never held across I/O).
pub(super) fn gauges(inner: &Weak<Inner>) -> Gauges {
    let Some(inner) = inner.upgrade() else {
        return Gauges::default();
    };
    let st = inner.state.lock();
    Gauges {
        live_sessions: st.sessions.len() as u64,
        ended_tokens: st.ended.len() as u64,
        device_subscribers: inner.device_streams.load(Relaxed),
        widget_subscribers: inner.widget_streams.load(Relaxed),
        accounts: st.accounts.len() as u64,
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

    /// Runs a store call off the runtime; the call ends even if the caller goes away.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&crate::store::Store) -> crate::store::StoreResult<T> + Send + 'static,
    ) -> BackendResult<T> {
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(BackendError::internal)?
            .map_err(storage)
    }
}

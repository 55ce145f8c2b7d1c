//! The operations of [`Backend`] on the cluster backend: validate, commit to PostgreSQL,
//! apply to Redis (which publishes), refresh the view. Writes that must not be half done
//! when a client goes away (status changes) run in a task of their own.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use async_trait::async_trait;
use presence_protocol::{
    EndReason, PresenceSnapshot, SetStatusResponse, SnapshotEvent, StatusLogEntry, StatusView,
};

use super::hot::{Beat, Event};
use super::pg::{SessionRow, StatusDecision};
use super::{Cluster, Inner, TOKEN_CACHE_MAX, TokenEntry, fanout};
use crate::auth::TokenHash;
use crate::backend::{
    Backend, BackendError, BackendResult, DeviceStream, EventSignal, LogQuery, Principal, Renewal,
    Reported, SessionCheck, StreamGuard, ViewFrame, WidgetStream, WidgetViews,
};
use crate::history::Logged;
use crate::history::events::Stored;
use crate::history::query::{HistoryQuery, HistoryRows};

/// How often an event stream on a cluster node reads the account's new events.
const EVENT_POLL: std::time::Duration = std::time::Duration::from_millis(200);
use crate::ops::idle::{self, Activity, Report};
use crate::ops::sessions::{self, AgentKey, AgentSlice, SessionEdit, SessionPlan, Sessions};
use crate::ops::status::{StatusChange, StatusPlan};
use crate::ops::{AccountEdit, AccountKey, AccountPlan, AccountSlice, AccountTarget};
use crate::rules;
use crate::webhooks::{Claims, DeliveryRow, Job, Settle, WebhookEdit, WebhookRow};
use presence_protocol::DeliveryState;

/// How long Redis remembers a widget key's account (it never changes; the entry only
/// saves a PostgreSQL read).
const WIDGET_LOOKUP_SECS: u64 = 7 * 86_400;

struct DeviceGuard {
    inner: std::sync::Weak<Inner>,
    account_id: String,
    session_id: String,
    _membership: fanout::Membership,
}

impl StreamGuard for DeviceGuard {}

impl Drop for DeviceGuard {
    fn drop(&mut self) {
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        inner.device_streams.fetch_sub(1, Relaxed);
        let (acc, sid) = (
            std::mem::take(&mut self.account_id),
            std::mem::take(&mut self.session_id),
        );
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = inner.hot.conn(&acc, &sid, -1).await;
            });
        }
    }
}

struct WidgetGuard {
    inner: std::sync::Weak<Inner>,
    _membership: fanout::Membership,
}

impl StreamGuard for WidgetGuard {}

impl Drop for WidgetGuard {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            inner.widget_streams.fetch_sub(1, Relaxed);
        }
    }
}

impl Inner {
    /// The session behind a token, from this node's cache or PostgreSQL: never changes.
    async fn token(&self, token: &TokenHash) -> BackendResult<TokenEntry> {
        if let Some(t) = self.tokens.lock().get(token) {
            return Ok(t.clone());
        }
        let key = format!("t:{}", hex::encode(token));
        if self.unknown.has(&key) {
            return Err(BackendError::unauthorized());
        }
        let stored = self.hot.lookup(&key).await.ok().flatten();
        let t = match stored.as_deref().and_then(|v| {
            let mut it = v.split(' ');
            Some((it.next()?, it.next()?, it.next()?))
        }) {
            Some((sid, agent, acc)) => TokenEntry {
                session_id: Arc::from(sid),
                agent_id: Arc::from(agent),
                account_id: Arc::from(acc),
            },
            None => {
                let Some((s, _)) = self.pg.session_by_token(token).await? else {
                    self.unknown.note(key);
                    return Err(BackendError::unauthorized());
                };
                if s.ended_at.is_some() {
                    return Err(BackendError::session_expired());
                }
                let value = format!("{} {} {}", s.id, s.agent_id, s.account_id);
                let _ = self
                    .hot
                    .put_lookup(&key, &value, self.retention.ended_sessions.as_secs())
                    .await;
                TokenEntry {
                    session_id: Arc::from(s.id.as_str()),
                    agent_id: Arc::from(s.agent_id.as_str()),
                    account_id: Arc::from(s.account_id.as_str()),
                }
            }
        };
        let mut tokens = self.tokens.lock();
        if tokens.len() >= TOKEN_CACHE_MAX {
            tokens.clear();
        }
        tokens.insert(*token, t.clone());
        Ok(t)
    }

    /// A session PostgreSQL still calls live has no lease in Redis: it ended unrecorded (its
    /// node died between the two). Recorded now.
    async fn lost_lease(&self, token: &TokenHash, t: &TokenEntry) -> BackendError {
        self.tokens.lock().remove(token);
        let now = self.clock.now_ms();
        if let Err(e) = self
            .pg
            .end_session(&t.session_id, EndReason::Expired, now)
            .await
        {
            return e;
        }
        BackendError::session_expired()
    }

    /// Ends a session in Redis (which tells its stream), pushes the news to its device and
    /// refreshes the view, once PostgreSQL recorded the end.
    pub(super) async fn end_session_hot(
        &self,
        account_id: &str,
        session: &SessionRow,
        reason: EndReason,
        by_other_device: bool,
    ) -> BackendResult<()> {
        let ev = Event::Ended {
            agent: session.agent_id.clone(),
            session: session.id.clone(),
            reason,
        };
        seeded!(
            self,
            account_id,
            self.hot.end_session(account_id, &session.id, &ev)
        )?;
        self.push_ended(
            account_id,
            &session.id,
            session.push.clone(),
            reason,
            by_other_device,
        );
        self.refresh_view(account_id).await
    }

    /// Applies a status committed at `committed_us` ([`crate::metrics::wall_us`]) to Redis,
    /// the views and the other devices.
    async fn after_status(
        &self,
        account_id: &str,
        agent_id: &str,
        status: &StatusView,
        op_id: &str,
        origin: Option<&str>,
        committed_us: i64,
    ) -> BackendResult<()> {
        seeded!(
            self,
            account_id,
            self.hot
                .set_status(account_id, agent_id, status, op_id, Some(committed_us))
        )?;
        self.metrics.status_changes.inc();
        self.refresh_view(account_id).await?;
        self.push_status(account_id, agent_id, status, origin).await
    }

    pub(super) async fn change_status(
        &self,
        change: StatusChange,
        plan: StatusPlan,
    ) -> BackendResult<SetStatusResponse> {
        let activity = match change.activity {
            true => self.activity(&change.account_id, &change.agent_id).await?,
            false => None,
        };
        let now = self.clock.now_ms();
        let since = now - self.retention.status_ops.as_millis() as i64;
        let decision = self
            .pg
            .status_op(&change, since, now, activity.clone(), plan)
            .await?;
        let committed_us = crate::metrics::wall_us();
        if let (Some(a), StatusDecision::Decided { status, .. }) = (&activity, &decision) {
            let at = idle::next_check(a, status);
            self.hot
                .schedule_idle_check(&change.account_id, &change.agent_id, at)
                .await?;
        }
        match decision {
            StatusDecision::Replay(json) => {
                serde_json::from_str(&json).map_err(BackendError::internal)
            }
            StatusDecision::Decided {
                applied, status, ..
            } => {
                if applied {
                    self.after_status(
                        &change.account_id,
                        &change.agent_id,
                        &status,
                        &change.op_id,
                        change.origin.as_deref(),
                        committed_us,
                    )
                    .await?;
                }
                Ok(SetStatusResponse { applied, status })
            }
        }
    }

    /// The agent's activity, if its account has automatic away on (its settings as Redis
    /// holds them now, not as cached: an idle decision follows a settings change at once).
    async fn activity(&self, account_id: &str, agent_id: &str) -> BackendResult<Option<Activity>> {
        let settings = self.fresh_cfg(account_id).await?.settings.idle;
        if settings.idle_after_ms.is_none() {
            return Ok(None);
        }
        let reports = seeded!(self, account_id, self.hot.activity(account_id, agent_id))?;
        Ok(Some(Activity { settings, reports }))
    }

    async fn account_of_widget(&self, key: &str) -> BackendResult<String> {
        if let Some(acc) = self.widget_keys.lock().get(key) {
            return Ok(acc.clone());
        }
        // No key the server makes is longer: nothing longer is looked up or remembered.
        if key.len() > 64 {
            return Err(BackendError::not_found("widget"));
        }
        let lookup = format!("w:{key}");
        if self.unknown.has(&lookup) {
            return Err(BackendError::not_found("widget"));
        }
        let acc = match self.hot.lookup(&lookup).await.ok().flatten() {
            Some(acc) => acc,
            None => {
                let Some(row) = self.pg.account_by_widget_key(key).await? else {
                    self.unknown.note(lookup);
                    return Err(BackendError::not_found("widget"));
                };
                let acc = row.id;
                let _ = self.hot.put_lookup(&lookup, &acc, WIDGET_LOOKUP_SECS).await;
                acc
            }
        };
        let mut keys = self.widget_keys.lock();
        if keys.len() >= TOKEN_CACHE_MAX {
            keys.clear();
        }
        keys.insert(key.to_owned(), acc.clone());
        Ok(acc)
    }

    pub(super) async fn current_view(&self, account_id: &str) -> BackendResult<Arc<ViewFrame>> {
        if let Some(v) = self.local_view(account_id) {
            return Ok(v);
        }
        if let Some(v) = self.hot.view(account_id).await? {
            return Ok(Arc::new(ViewFrame::new(v)));
        }
        self.refresh_view(account_id).await?;
        self.hot
            .view(account_id)
            .await?
            .map(|v| Arc::new(ViewFrame::new(v)))
            .ok_or_else(|| BackendError::internal("no view after a refresh"))
    }
}

#[async_trait]
impl Backend for Cluster {
    async fn account_slice(&self, key: AccountKey<'_>) -> BackendResult<AccountSlice> {
        let id = match key {
            AccountKey::Id(id) => id.to_owned(),
            AccountKey::Slug(slug) => {
                self.inner
                    .pg
                    .account_by_slug(slug)
                    .await?
                    .ok_or_else(|| BackendError::not_found("account"))?
                    .id
            }
        };
        self.inner.account_slice(&id).await
    }

    async fn edit_account(
        &self,
        target: AccountTarget<'_>,
        plan: AccountPlan,
    ) -> BackendResult<AccountEdit> {
        // In a task of its own: a client that goes away cannot leave a committed edit
        // unapplied to Redis.
        let inner = self.inner.clone();
        let target = match target {
            AccountTarget::Existing(id) => (id.to_owned(), Some(false)),
            AccountTarget::WithAgents(id) => (id.to_owned(), Some(true)),
            AccountTarget::New(slug) => (slug.to_owned(), None),
        };
        tokio::spawn(async move {
            match target {
                (slug, None) => inner.create_account(&slug, plan).await,
                (id, Some(every_agent)) => inner.edit_account(&id, every_agent, plan).await,
            }
        })
        .await
        .map_err(BackendError::internal)?
    }

    async fn agent_slice(&self, key: AgentKey<'_>) -> BackendResult<AgentSlice> {
        self.inner.agent_slice(key).await
    }

    async fn edit_sessions(
        &self,
        account_id: &str,
        agent_id: &str,
        sessions: Sessions,
        plan: SessionPlan,
    ) -> BackendResult<(AgentSlice, SessionEdit)> {
        // In a task of its own: a client that goes away cannot leave a committed edit
        // unapplied to Redis.
        let inner = self.inner.clone();
        let (account_id, agent_id) = (account_id.to_owned(), agent_id.to_owned());
        tokio::spawn(async move {
            inner
                .edit_sessions(&account_id, &agent_id, sessions, plan)
                .await
        })
        .await
        .map_err(BackendError::internal)?
    }

    async fn change_status(
        &self,
        change: StatusChange,
        plan: StatusPlan,
    ) -> BackendResult<SetStatusResponse> {
        // In a task of its own: a client that goes away cannot leave a committed change
        // unpublished.
        let inner = self.inner.clone();
        tokio::spawn(async move { inner.change_status(change, plan).await })
            .await
            .map_err(BackendError::internal)?
    }

    async fn session(
        &self,
        token: &TokenHash,
        renew: Option<Renewal>,
    ) -> BackendResult<SessionCheck> {
        let inner = &self.inner;
        let t = inner.token(token).await?;
        let Some(Renewal { mode, idle_ms }) = renew else {
            let (now, lease, profile) = seeded!(
                inner,
                &t.account_id,
                inner.hot.auth(&t.account_id, &t.session_id, &t.agent_id)
            )?;
            return match (lease, profile) {
                (Some(l), Some(p)) if !rules::lease_ended(l.until, now) => {
                    Ok(SessionCheck::Authenticated(Principal {
                        session_id: t.session_id,
                        agent_id: t.agent_id,
                        account_id: t.account_id,
                        role: p.role,
                    }))
                }
                (Some(_), Some(_)) => Err(BackendError::session_expired()),
                _ => Err(inner.lost_lease(token, &t).await),
            };
        };
        let cfg = inner.cfg(&t.account_id).await?;
        let (settings, idle_on) = (
            cfg.settings.timings,
            cfg.settings.idle.idle_after_ms.is_some(),
        );
        let beat = seeded!(
            inner,
            &t.account_id,
            inner
                .hot
                .heartbeat(&t.account_id, &t.session_id, mode, idle_ms, &settings)
        )?;
        match beat {
            Beat::Renewed {
                until,
                now,
                status_version,
                mode_changed,
                push,
            } => {
                if mode_changed {
                    // So a lease Redis loses comes back at its terms.
                    let inner = inner.clone();
                    let sid = t.session_id.clone();
                    tokio::spawn(async move {
                        let _ = inner.pg.set_lease(&sid, mode, until).await;
                    });
                }
                inner.metrics.heartbeats.inc();
                let reported = match idle_ms {
                    Some(idle_ms) if idle_on => Some(Reported {
                        account_id: t.account_id.clone(),
                        agent_id: t.agent_id.clone(),
                        report: Report { at: now, idle_ms },
                    }),
                    _ => None,
                };
                let hb = sessions::heartbeat(&settings, mode, push, until, now, status_version);
                Ok(SessionCheck::Renewed(hb, reported))
            }
            Beat::Lapsed => Err(BackendError::session_expired()),
            Beat::Gone => Err(inner.lost_lease(token, &t).await),
        }
    }

    async fn open_device_stream(&self, p: &Principal) -> BackendResult<DeviceStream> {
        let inner = &self.inner;
        let start = inner.join(&p.account_id, Some(&p.agent_id)).await?;
        let (status, events) = start
            .agent
            .ok_or_else(|| BackendError::internal("no agent channel"))?;
        seeded!(
            inner,
            &p.account_id,
            inner.hot.conn(&p.account_id, &p.session_id, 1)
        )?;
        inner.device_streams.fetch_add(1, Relaxed);
        let guard = DeviceGuard {
            inner: Arc::downgrade(inner),
            account_id: p.account_id.to_string(),
            session_id: p.session_id.to_string(),
            _membership: start.membership,
        };
        // The replica's status and view, taken with the receivers: every event is newer.
        Ok(DeviceStream {
            session_id: p.session_id.clone(),
            snapshot: SnapshotEvent {
                status,
                chatbox: start.view.view.clone(),
            },
            events,
            views: start.views,
            guard: Box::new(guard),
        })
    }

    async fn widget(&self, widget_key: &str, follow: bool) -> BackendResult<WidgetViews> {
        let acc = self.inner.account_of_widget(widget_key).await?;
        if !follow {
            return Ok(WidgetViews {
                current: self.inner.current_view(&acc).await?,
                stream: None,
            });
        }
        let start = self.inner.join(&acc, None).await?;
        self.inner.widget_streams.fetch_add(1, Relaxed);
        Ok(WidgetViews {
            current: start.view,
            stream: Some(WidgetStream {
                views: start.views,
                guard: Box::new(WidgetGuard {
                    inner: Arc::downgrade(&self.inner),
                    _membership: start.membership,
                }),
            }),
        })
    }

    async fn status_log(&self, q: LogQuery) -> BackendResult<Vec<StatusLogEntry>> {
        let rows = self.inner.pg.status_log(&q).await?;
        if rows.is_empty() {
            // No entries, or no such agent here: tell them apart.
            match self.inner.pg.agent(&q.agent_id).await? {
                Some(a) if *a.account_id == *q.account_id => {}
                _ => return Err(BackendError::not_found("agent")),
            }
        }
        Ok(rows)
    }

    async fn history(&self, q: HistoryQuery) -> BackendResult<HistoryRows> {
        if let Some(agent_id) = &q.agent_id {
            match self.inner.pg.agent(agent_id).await? {
                Some(a) if *a.account_id == *q.account_id => {}
                _ => return Err(BackendError::not_found("agent")),
            }
        }
        let mut rows = self.inner.pg.history(&q).await?;
        rows.now = self.inner.clock.now_ms();
        Ok(rows)
    }

    async fn import_history(&self, account_id: &str, rows: Vec<Logged>) -> BackendResult<()> {
        self.inner.pg.import_history(account_id, &rows).await
    }

    async fn presence(&self, account_id: &str) -> BackendResult<PresenceSnapshot> {
        let (seq, agents) = self.inner.pg.presence(account_id).await?;
        let chatbox = self.inner.current_view(account_id).await?.view.clone();
        Ok(PresenceSnapshot {
            seq,
            agents,
            chatbox,
        })
    }

    async fn events(&self, account_id: &str, after: i64, limit: u32) -> BackendResult<Vec<Stored>> {
        self.inner.pg.events_after(account_id, after, limit).await
    }

    /// Events are committed by every node: this node's wake a reader at once, and a reader
    /// reads PostgreSQL again at this pace for the others'.
    fn event_signal(&self) -> EventSignal {
        EventSignal::CommitsOrPoll(self.inner.pg.commits(), EVENT_POLL)
    }

    async fn known_device(&self, agent_id: &str, device_id: &str) -> BackendResult<bool> {
        self.inner.pg.known_device(agent_id, device_id).await
    }

    async fn webhooks(&self, account_id: &str) -> BackendResult<Vec<WebhookRow>> {
        self.inner.pg.webhooks(account_id).await
    }

    async fn edit_webhook(&self, edit: WebhookEdit) -> BackendResult<()> {
        self.inner.pg.edit_webhook(&edit).await?.answer()
    }

    async fn claim_webhooks(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> BackendResult<Claims> {
        self.inner
            .pg
            .claim_webhooks(owner, now, lease_until, limit)
            .await
    }

    async fn settle_webhook(&self, owner: &str, job: &Job, settle: &Settle) -> BackendResult<()> {
        self.inner.pg.settle_webhook(owner, job, settle).await
    }

    async fn webhook_deliveries(
        &self,
        webhook: &WebhookRow,
        state: Option<DeliveryState>,
        limit: usize,
    ) -> BackendResult<(Vec<DeliveryRow>, Vec<Stored>)> {
        self.inner
            .pg
            .webhook_deliveries(webhook, state, limit)
            .await
    }

    async fn retry_webhook(
        &self,
        webhook: &WebhookRow,
        seq: i64,
        now: i64,
    ) -> BackendResult<Option<DeliveryState>> {
        self.inner.pg.retry_webhook(&webhook.id, seq, now).await
    }

    /// Both stores in reach, as pinged at most a second ago (one ping at a time, however
    /// many ask).
    async fn health(&self) -> BackendResult<()> {
        let inner = &self.inner;
        inner
            .health
            .get(|| async {
                let wait = std::time::Duration::from_secs(2);
                let (pg, redis) = tokio::join!(
                    tokio::time::timeout(wait, inner.pg.ping()),
                    tokio::time::timeout(wait, inner.hot.ping()),
                );
                match (pg, redis) {
                    (Ok(Ok(())), Ok(true)) => Ok(()),
                    (Ok(Ok(())), _) => Err(BackendError::unavailable("Redis is out of reach", 1)),
                    _ => Err(BackendError::unavailable("PostgreSQL is out of reach", 1)),
                }
            })
            .await
    }
}

//! The operations of [`Backend`] on the cluster backend: validate, commit to PostgreSQL,
//! apply to Redis (which publishes), refresh the view. Writes that must not be half done
//! when a client goes away (status changes) run in a task of their own.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use async_trait::async_trait;
use presence_protocol::{
    Agent, EndReason, Heartbeat, LoginRequest, LoginResponse, MeResponse, Mode, PushInfo,
    PushRegistration, SessionInfo, SetStatusResponse, SnapshotEvent, StatusView,
};

use super::hot::{Beat, Event, Lease};
use super::pg::{AccountRow, AgentRow, SessionRow, StatusDecision};
use super::{Cluster, Inner, TOKEN_CACHE_MAX, TokenEntry, fanout};
use crate::auth::{self, TokenHash};
use crate::backend::{
    Backend, BackendError, BackendResult, DeviceStream, Principal, StreamGuard, ViewFrame,
    WidgetStream,
};
use crate::metrics::Gauges;
use crate::ops::status::{StatusChange, StatusPlan};
use crate::ops::{AccountEdit, AccountKey, AccountPlan, AccountSlice};
use crate::rules::{self};
use crate::validate;

/// How long Redis remembers a widget key's account (it never changes; the entry only
/// saves a PostgreSQL read).
const WIDGET_LOOKUP_SECS: u64 = 7 * 86_400;

fn to_agent(a: &AgentRow) -> Agent {
    Agent {
        id: a.id.clone(),
        name: a.name.clone(),
        email: a.email.clone(),
        groups: a.groups.clone(),
        role: a.role,
    }
}

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
                let (s, _) = self
                    .pg
                    .session_by_token(token)
                    .await?
                    .ok_or_else(BackendError::unauthorized)?;
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

    /// Ends a session everywhere: PostgreSQL, Redis (which tells its stream), push, view.
    async fn end_session(
        &self,
        account_id: &str,
        session: &SessionRow,
        reason: EndReason,
        by_other_device: bool,
    ) -> BackendResult<()> {
        let now = self.clock.now_ms();
        self.pg.end_session(&session.id, reason, now).await?;
        self.end_session_hot(account_id, session, reason, by_other_device)
            .await
    }

    /// The part of [`Inner::end_session`] after PostgreSQL recorded it.
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
        self.push_ended(&session.id, session.push.clone(), reason, by_other_device);
        self.refresh_view(account_id).await
    }

    /// Ends one live session of the caller's agent with reason `logout`.
    async fn end_own(&self, p: &Principal, session_id: &str) -> BackendResult<()> {
        let s = match self.pg.session(session_id).await? {
            Some(s) if s.agent_id == *p.agent_id && s.ended_at.is_none() => s,
            _ => return Err(BackendError::not_found("session")),
        };
        let by_other = *p.session_id != *session_id;
        self.end_session(&p.account_id, &s, EndReason::Logout, by_other)
            .await?;
        self.metrics.logouts.fetch_add(1, Relaxed);
        Ok(())
    }

    /// Applies a committed status to Redis, the views and the other devices.
    async fn after_status(
        &self,
        account_id: &str,
        agent_id: &str,
        status: &StatusView,
        op_id: &str,
        origin: Option<&str>,
    ) -> BackendResult<()> {
        seeded!(
            self,
            account_id,
            self.hot.set_status(account_id, agent_id, status, op_id)
        )?;
        self.metrics.status_changes.fetch_add(1, Relaxed);
        self.refresh_view(account_id).await?;
        self.push_status(account_id, agent_id, status, origin).await
    }

    async fn change_status(
        &self,
        change: StatusChange,
        plan: StatusPlan,
    ) -> BackendResult<SetStatusResponse> {
        let now = self.clock.now_ms();
        let since = now - self.retention.status_ops.as_millis() as i64;
        let decision = self.pg.status_op(&change, since, now, plan).await?;
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
                    )
                    .await?;
                }
                Ok(SetStatusResponse { applied, status })
            }
        }
    }

    async fn agent_in(&self, account_id: &str, id: &str) -> BackendResult<AgentRow> {
        match self.pg.agent(id).await? {
            Some(a) if a.account_id == account_id => Ok(a),
            _ => Err(BackendError::not_found("agent")),
        }
    }

    async fn account_of_widget(&self, key: &str) -> BackendResult<String> {
        if let Some(acc) = self.widget_keys.lock().get(key) {
            return Ok(acc.clone());
        }
        let lookup = format!("w:{key}");
        let acc = match self.hot.lookup(&lookup).await.ok().flatten() {
            Some(acc) => acc,
            None => {
                let acc = self
                    .pg
                    .account_by_widget_key(key)
                    .await?
                    .ok_or_else(|| BackendError::not_found("widget"))?
                    .id;
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

    async fn current_view(&self, account_id: &str) -> BackendResult<Arc<ViewFrame>> {
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

    async fn me(&self, p: &Principal) -> BackendResult<MeResponse> {
        let agent = self.agent_in(&p.account_id, &p.agent_id).await?;
        let snap = seeded!(self, &p.account_id, self.hot.snapshot(&p.account_id))?;
        let status = snap
            .agents
            .iter()
            .find(|(id, _, _)| *id == agent.id)
            .map(|(_, _, s)| s.clone())
            .unwrap_or_else(|| agent.status.clone());
        let leases: std::collections::HashMap<&str, &Lease> = snap
            .leases
            .iter()
            .filter(|(_, l)| l.agent == agent.id && !rules::lease_ended(l.until, snap.now))
            .map(|(s, l)| (s.as_str(), l))
            .collect();
        let conn: std::collections::HashMap<&str, i64> =
            snap.conn.iter().map(|(s, n)| (s.as_str(), *n)).collect();
        let mut sessions: Vec<SessionInfo> = self
            .pg
            .live_sessions(&p.account_id)
            .await?
            .into_iter()
            .filter_map(|s| {
                let l = leases.get(s.id.as_str())?;
                Some(SessionInfo {
                    connected: conn.get(s.id.as_str()).copied().unwrap_or(0) > 0,
                    device: s.device,
                    mode: l.mode,
                    lease_until: l.until,
                    push: s.push.map(|r| PushInfo {
                        provider: r.provider,
                    }),
                    session_id: s.id,
                })
            })
            .collect();
        sessions.sort_by(|a, b| a.session_id.cmp(&b.session_id));
        let chatbox = self.current_view(&p.account_id).await?.view.clone();
        Ok(MeResponse {
            agent: to_agent(&agent),
            status,
            chatbox,
            sessions,
        })
    }
}

#[async_trait]
impl Backend for Cluster {
    async fn create_account(&self, account: AccountRow, owner: AgentRow) -> BackendResult<()> {
        if self
            .inner
            .pg
            .account_by_slug(&account.slug)
            .await?
            .is_some()
        {
            return Err(crate::ops::account::slug_taken(&account.slug));
        }
        let now = self.inner.clock.now_ms();
        self.inner.pg.insert_account(&account, &owner, now).await?;
        self.inner.refresh_view(&account.id).await
    }

    async fn login(&self, req: LoginRequest) -> BackendResult<LoginResponse> {
        let inner = &self.inner;
        validate::device(&req.device)?;
        if let Some(push) = &req.push {
            inner
                .pusher
                .validate(push)
                .map_err(|r| BackendError::invalid_field(&format!("push.{}", r.field), r.detail))?;
        }
        let found = inner.pg.agent_by_login(&req.account, &req.email).await?;
        inner
            .credentials
            .check(
                found
                    .as_ref()
                    .map(|a| (a.id.as_str(), a.password_hash.as_str())),
                &req.password,
            )
            .await?;
        let Some(agent) = found else {
            return Err(BackendError::InvalidCredentials);
        };
        let account_id = agent.account_id.clone();
        let cfg = inner.cfg(&account_id).await?;
        let settings = cfg.settings.timings;
        let token = auth::new_token();
        let token_hash = auth::token_hash(&token);
        let session_id = auth::new_id("ses");
        let now = inner.clock.now_ms();
        let replaces = inner.pg.device_session(&account_id, &req.device.id).await?;
        let row = SessionRow {
            id: session_id.clone(),
            account_id: account_id.clone(),
            agent_id: agent.id.clone(),
            device: req.device.clone(),
            push: req.push.clone(),
            mode: Mode::Active,
            lease_until: now + settings.active_ttl_ms,
            ended_at: None,
        };
        let old = match &replaces {
            Some(id) => inner.pg.session(id).await?,
            None => None,
        };
        inner
            .pg
            .insert_session(&row, &token_hash, replaces.as_deref(), now)
            .await?;
        if let Some(old) = &old {
            inner
                .end_session_hot(&account_id, old, EndReason::Replaced, false)
                .await?;
        }
        let lease = Lease {
            agent: agent.id.clone(),
            mode: Mode::Active,
            until: row.lease_until,
            push: row.push.is_some(),
        };
        seeded!(
            inner,
            &account_id,
            inner.hot.start_session(&account_id, &session_id, &lease)
        )?;
        let _ = inner
            .deadline_tx
            .send((super::hot::partition(&account_id), lease.until));
        inner.refresh_view(&account_id).await?;
        let status = inner
            .pg
            .agent(&agent.id)
            .await?
            .map(|a| a.status)
            .unwrap_or(agent.status.clone());
        let (interval_ms, ttl_ms) = rules::lease_terms(&settings, Mode::Active, lease.push);
        inner.metrics.logins.fetch_add(1, Relaxed);
        Ok(LoginResponse {
            token,
            session_id,
            agent: to_agent(&agent),
            heartbeat: Heartbeat {
                interval_ms,
                ttl_ms,
                lease_until: lease.until,
                server_time: now,
                status_version: status.version,
            },
            status,
            server_time: now,
        })
    }

    async fn authenticate(&self, token: &TokenHash) -> BackendResult<Principal> {
        let inner = &self.inner;
        let t = inner.token(token).await?;
        let (now, lease, profile) = seeded!(
            inner,
            &t.account_id,
            inner.hot.auth(&t.account_id, &t.session_id, &t.agent_id)
        )?;
        match (lease, profile) {
            (Some(l), Some(p)) if !rules::lease_ended(l.until, now) => Ok(Principal {
                session_id: t.session_id,
                agent_id: t.agent_id,
                account_id: t.account_id,
                role: p.role,
            }),
            (Some(_), Some(_)) => Err(BackendError::session_expired()),
            _ => Err(inner.lost_lease(token, &t).await),
        }
    }

    async fn heartbeat(&self, token: &TokenHash, mode: Mode) -> BackendResult<Heartbeat> {
        let inner = &self.inner;
        let t = inner.token(token).await?;
        let cfg = inner.cfg(&t.account_id).await?;
        let settings = cfg.settings.timings;
        let beat = seeded!(
            inner,
            &t.account_id,
            inner
                .hot
                .heartbeat(&t.account_id, &t.session_id, mode, &settings)
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
                inner.metrics.heartbeats.fetch_add(1, Relaxed);
                let (interval_ms, ttl_ms) = rules::lease_terms(&settings, mode, push);
                Ok(Heartbeat {
                    interval_ms,
                    ttl_ms,
                    lease_until: until,
                    server_time: now,
                    status_version,
                })
            }
            Beat::Lapsed => Err(BackendError::session_expired()),
            Beat::Gone => Err(inner.lost_lease(token, &t).await),
        }
    }

    async fn end_session(&self, p: &Principal, session_id: &str) -> BackendResult<()> {
        self.inner.end_own(p, session_id).await
    }

    async fn set_push(&self, p: &Principal, push: Option<PushRegistration>) -> BackendResult<()> {
        let inner = &self.inner;
        if let Some(reg) = &push {
            inner
                .pusher
                .validate(reg)
                .map_err(|r| BackendError::invalid_field(r.field, r.detail))?;
        }
        inner.pg.set_push(&p.session_id, push.as_ref()).await?;
        let has = push.is_some();
        seeded!(
            inner,
            &p.account_id,
            inner.hot.lease_push(&p.account_id, &p.session_id, has)
        )
    }

    async fn me(&self, p: &Principal) -> BackendResult<MeResponse> {
        self.inner.me(p).await
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

    async fn open_device_stream(&self, p: &Principal) -> BackendResult<DeviceStream> {
        let inner = &self.inner;
        let (views, events, membership) = inner.join(&p.account_id, Some(&p.agent_id)).await?;
        let events = events.ok_or_else(|| BackendError::internal("no agent channel"))?;
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
            _membership: membership,
        };
        let me = inner.me(p).await?;
        let chatbox = views.borrow().view.clone();
        Ok(DeviceStream {
            session_id: p.session_id.clone(),
            snapshot: SnapshotEvent {
                status: me.status,
                chatbox,
            },
            events,
            views,
            guard: Box::new(guard),
        })
    }

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
        account_id: &str,
        plan: AccountPlan,
    ) -> BackendResult<AccountEdit> {
        // In a task of its own: a client that goes away cannot leave a committed edit
        // unapplied to Redis.
        let inner = self.inner.clone();
        let account_id = account_id.to_owned();
        tokio::spawn(async move { inner.edit_account(&account_id, plan).await })
            .await
            .map_err(BackendError::internal)?
    }

    async fn widget_view(&self, widget_key: &str) -> BackendResult<Arc<ViewFrame>> {
        let acc = self.inner.account_of_widget(widget_key).await?;
        self.inner.current_view(&acc).await
    }

    async fn open_widget_stream(&self, widget_key: &str) -> BackendResult<WidgetStream> {
        let acc = self.inner.account_of_widget(widget_key).await?;
        let (views, _, membership) = self.inner.join(&acc, None).await?;
        self.inner.widget_streams.fetch_add(1, Relaxed);
        Ok(WidgetStream {
            views,
            guard: Box::new(WidgetGuard {
                inner: Arc::downgrade(&self.inner),
                _membership: membership,
            }),
        })
    }

    async fn health(&self) -> BackendResult<()> {
        let wait = std::time::Duration::from_secs(2);
        let (pg, redis) = tokio::join!(
            tokio::time::timeout(wait, self.inner.pg.ping()),
            tokio::time::timeout(wait, self.inner.hot.ping()),
        );
        match (pg, redis) {
            (Ok(Ok(())), Ok(true)) => Ok(()),
            (Ok(Ok(())), _) => Err(BackendError::unavailable("Redis is out of reach", 1)),
            _ => Err(BackendError::unavailable("PostgreSQL is out of reach", 1)),
        }
    }

    async fn gauges(&self) -> Gauges {
        let (live, ended) = self.inner.pg.session_counts().await.unwrap_or((0, 0));
        Gauges {
            live_sessions: live as u64,
            ended_tokens: ended as u64,
            device_subscribers: self.inner.device_streams.load(Relaxed),
            widget_subscribers: self.inner.widget_streams.load(Relaxed),
            accounts: self.inner.pg.count_accounts().await.unwrap_or(0) as u64,
        }
    }

    async fn flush(&self) {
        // Every acknowledged change is committed before it is answered; nothing waits here.
    }
}

//! Start-up: memory rebuilt from the store, every restored session given a grace lease, view
//! versions started above every version reserved before, and the background tasks started.

use super::*;

use rustc_hash::FxHashSet as HashSet;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use parking_lot::Mutex;
use presence_protocol::{WeeklySchedule, resolve};
use tokio::sync::{Notify, broadcast, watch};

use crate::Retention;
use crate::auth::TokenHash;
use crate::backend::ViewFrame;
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::push::Pusher;
use crate::store::Store;

impl Embedded {
    /// Opens the store, rebuilds memory, and starts the sweeper and the lease flusher (both
    /// stop when the last handle is dropped or `shutdown` fires).
    pub fn open(
        store: Store,
        pusher: Arc<Pusher>,
        retention: Retention,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Embedded, rusqlite::Error> {
        let clock = Clock::new();
        let now = clock.now_ms();
        let first_rows = store.settle_unlogged(now)?;
        if first_rows > 0 {
            tracing::info!(agents = first_rows, "started the availability log");
        }
        let loaded = store.load(now - retention_ms(retention.ended_sessions))?;
        let mut st = State::default();
        let mut fx = Effects::default();
        for a in loaded.accounts {
            let schedule = WeeklySchedule::from_opening_hours(&a.opening_hours)
                .unwrap_or_else(|_| WeeklySchedule::always_open());
            let id = arc(&a.id);
            let mut view = resolve(&a.groups, &schedule, &[], now);
            // Past every version reserved before the restart, served or not.
            view.version = a.view_version + 1;
            let frame = Arc::new(ViewFrame::new(view));
            st.slugs.insert(a.slug.clone(), id.clone());
            st.widget_keys.insert(a.widget_key.clone(), id.clone());
            st.accounts.insert(
                id.clone(),
                AccountState {
                    info: a.info(),
                    settings: a.settings.timings,
                    messages: a.settings.messages,
                    idle: a.settings.idle,
                    opening_hours: a.opening_hours,
                    schedule,
                    groups: a.groups,
                    agents: Vec::new(),
                    view_tx: watch::Sender::new(frame.clone()),
                    view: frame,
                    versions_reserved: a.view_version,
                    reserving: false,
                    flip_at: None,
                    custom_statuses: a.custom_statuses,
                    identity: a.identity,
                },
            );
        }
        for a in loaded.agents {
            let id = arc(&a.id);
            let account_id = arc(&a.account_id);
            let Some(acc) = st.accounts.get_mut(&account_id) else {
                continue;
            };
            if let Some(until) = a.status.until {
                // A timed status ends even across a restart (at once if its end has passed).
                st.timers.insert((until, TimerKind::StatusEnd, id.clone()));
            }
            acc.agents.push(id.clone());
            st.emails
                .insert((account_id.clone(), a.email_key()), id.clone());
            st.agents.insert(
                id.clone(),
                AgentState {
                    id,
                    account_id,
                    name: a.name,
                    email: a.email,
                    password_hash: a.password_hash,
                    role: a.role,
                    groups: a.groups,
                    status: a.status,
                    status_op_id: a.status_op_id,
                    sub: a.sub,
                    sessions: HashSet::default(),
                    tx: broadcast::channel(AGENT_EVENT_BUFFER).0,
                    idle_check_at: None,
                },
            );
        }
        for (t, ended_at) in loaded.ended_tokens {
            if let Ok(bytes) = hex::decode(&t)
                && let Ok(h) = <TokenHash>::try_from(bytes.as_slice())
            {
                st.tokens.insert(h, TokenEntry::Ended);
                st.ended.push_back((ended_at, h));
            }
        }
        for s in loaded.sessions {
            let Some(agent) = st.agents.get_mut(s.agent_id.as_str()) else {
                continue;
            };
            let Some(hash) = hex::decode(&s.token_hash)
                .ok()
                .and_then(|b| <TokenHash>::try_from(b.as_slice()).ok())
            else {
                continue;
            };
            let settings = st
                .accounts
                .get(s.account_id.as_str())
                .map(|a| a.settings)
                .unwrap_or_default();
            let lease_until = rules::restored_lease_until(&settings, s.lease_until, now);
            let id = arc(&s.id);
            agent.sessions.insert(id.clone());
            st.tokens.insert(hash, TokenEntry::Live(id.clone()));
            st.devices
                .insert((arc(&s.agent_id), s.device.id.clone()), id.clone());
            st.dirty_leases.insert(id.clone());
            st.sessions.insert(
                id.clone(),
                SessionState {
                    id: id.clone(),
                    account_id: arc(&s.account_id),
                    agent_id: arc(&s.agent_id),
                    token_hash: hash,
                    device: s.device,
                    mode: s.mode,
                    lease_until,
                    push: s.push,
                    connected: 0,
                    scheduled_expiry: 0,
                    renew_at: None,
                    activity: None,
                },
            );
            st.schedule_session_timers(&id, &mut fx);
        }
        let ids: Vec<Arc<str>> = st.accounts.keys().cloned().collect();
        for id in ids {
            // Compare against an impossible view so the first resolution always lands.
            if let Some(acc) = st.accounts.get_mut(&id) {
                let mut placeholder = acc.view.view.clone();
                placeholder.version -= 1;
                placeholder.next_change_at = Some(i64::MIN);
                acc.view = Arc::new(ViewFrame::new(placeholder));
            }
            st.recompute(&id, now, &metrics, &store, &mut fx);
        }
        let store = Arc::new(store);
        let writer = Arc::new(super::writer::Writer::new(store.clone()));
        let (reservations, reservations_rx) = tokio::sync::mpsc::unbounded_channel();
        let (view_events, view_events_rx) = tokio::sync::mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            state: Mutex::new(st),
            store,
            writer,
            turns: super::writer::Turns::new(),
            account_turns: super::writer::Turns::new(),
            reservations,
            view_events,
            clock,
            pusher,
            retention,
            metrics,
            sweeper_wake: Notify::new(),
            device_streams: AtomicU64::new(0),
            widget_streams: AtomicU64::new(0),
            webhook_leases: Mutex::default(),
        });
        let weak = Arc::downgrade(&inner);
        inner
            .metrics
            .set_gauges(move || Box::pin(std::future::ready(super::ops::gauges(&weak))));
        if let Some(dead) = inner.pusher.take_dead_tokens() {
            tokio::spawn(remove_dead_tokens(Arc::downgrade(&inner), dead));
        }
        tokio::spawn(reserver(Arc::downgrade(&inner), reservations_rx));
        tokio::spawn(view_recorder(Arc::downgrade(&inner), view_events_rx));
        tokio::spawn(sweeper(inner.clone(), shutdown.clone()));
        tokio::spawn(flusher(inner.clone(), shutdown));
        Ok(Embedded { inner })
    }
}

/// Clears each registration a provider declared dead, for as long as the backend lives.
async fn remove_dead_tokens(
    inner: std::sync::Weak<Inner>,
    mut dead: tokio::sync::mpsc::UnboundedReceiver<crate::push::DeadToken>,
) {
    while let Some(d) = dead.recv().await {
        let Some(inner) = inner.upgrade() else {
            return;
        };
        inner.drop_dead_push(d).await;
    }
}

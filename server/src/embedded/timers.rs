//! The sweeper: one task over the ordered timer set (lease ends, renew pushes, opening-hours
//! flips), woken early when a nearer timer is armed.

use super::*;

use rustc_hash::FxHashSet as HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use presence_protocol::{EndReason, PushBody, PushPayload};
use tokio::sync::watch;

use crate::push::PushJob;

/// Fires due timers: lease ends, renew pushes, opening-hours flips. `Notify::notify_one`
/// keeps a permit when nobody waits, so a timer armed between a sweep and the wait still
/// wakes the loop.
pub(super) async fn sweeper(inner: Arc<Inner>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let next = sweep_once(&inner).map(|t| inner.clock.instant_at(t));
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep => {}
            _ = inner.sweeper_wake.notified() => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Processes every due timer; returns the next deadline.
pub(super) fn sweep_once(inner: &Inner) -> Option<i64> {
    let mut fx = Effects::default();
    let now = inner.clock.now_ms();
    let mut st = inner.state.lock();
    let mut ended: Vec<(String, EndReason)> = Vec::new();
    let mut touched: HashSet<Arc<str>> = HashSet::default();
    let mut rearm: Vec<Arc<str>> = Vec::new();
    while let Some(first) = st.timers.first() {
        if first.0 > now {
            break;
        }
        let Some((at, kind, id)) = st.timers.pop_first() else {
            break;
        };
        match kind {
            TimerKind::Expire => {
                let Some(s) = st.sessions.get_mut(&id) else {
                    continue;
                };
                if s.scheduled_expiry != at {
                    continue;
                }
                if !rules::lease_ended(s.lease_until, now) {
                    s.scheduled_expiry = 0;
                    rearm.push(id);
                    continue;
                }
                let account = s.account_id.clone();
                st.end_session_mem(&id, EndReason::Expired, now, &mut fx);
                ended.push((id.to_string(), EndReason::Expired));
                touched.insert(account);
            }
            TimerKind::Renew => {
                let Some(s) = st.sessions.get(&id) else {
                    continue;
                };
                if !rules::renew_still_wanted(s.mode, s.push.is_some(), s.renew_at, at) {
                    continue;
                }
                if let Some(push) = s.push.clone() {
                    fx.pushes.push(PushJob::new(
                        push,
                        PushPayload::new(PushBody::Renew {
                            session_id: id.to_string(),
                            lease_until: s.lease_until,
                        }),
                        s.lease_until,
                        now,
                    ));
                }
            }
            TimerKind::Flip => {
                if let Some(acc) = st.accounts.get_mut(&id)
                    && acc.flip_at == Some(at)
                {
                    acc.flip_at = None;
                    touched.insert(id);
                }
            }
        }
    }
    for id in rearm {
        st.schedule_session_timers(&id, &mut fx);
    }
    if !ended.is_empty() {
        if let Err(e) = inner.store.end_sessions(&ended, now) {
            tracing::error!(error = %e, "could not record expired sessions");
        }
        inner
            .metrics
            .expiries
            .fetch_add(ended.len() as u64, Relaxed);
    }
    for acc in touched {
        st.recompute(&acc, now, &inner.metrics, &inner.store, &mut fx);
    }
    let next = st.timers.first().map(|t| t.0);
    drop(st);
    fx.wake_sweeper = false;
    inner.finish(fx);
    next
}

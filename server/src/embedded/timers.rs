//! The sweeper: one task over the ordered timer set (lease ends, renew pushes, opening-hours
//! flips, the ends of timed statuses), woken early when a nearer timer is armed.
//!
//! A timed status's end is a status change like any other (`ops::status::timer_end` under
//! the agent's turn, committed, then published), run in a task of its own so a sweep never
//! waits on an agent's turn; a timer whose status was replaced meanwhile changes nothing.
//!
//! A lease end is committed off the state lock, like every write: the sweeper finds the
//! ended leases under the lock, commits their ends, then ends them in memory. In between,
//! such a session already answers `session_expired` (its lease is over), so nothing can
//! renew it.

use super::*;

use rustc_hash::FxHashSet as HashSet;
use std::sync::Arc;

use presence_protocol::{EndReason, PushBody, PushPayload};
use tokio::sync::watch;

use crate::ops::{idle, status};
use crate::push::PushJob;
use crate::store::Write;

/// Fires due timers: lease ends, renew pushes, opening-hours flips. `Notify::notify_one`
/// keeps a permit when nobody waits, so a timer armed between a sweep and the wait still
/// wakes the loop.
pub(super) async fn sweeper(inner: Arc<Inner>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let next = sweep_once(&inner).await.map(|t| inner.clock.instant_at(t));
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
pub(super) async fn sweep_once(inner: &Arc<Inner>) -> Option<i64> {
    let now = inner.clock.now_ms();
    let mut due = take_due(inner, now);
    for (account_id, agent_id, until) in std::mem::take(&mut due.status_ends) {
        tokio::spawn(end_timed_status(inner.clone(), account_id, agent_id, until));
    }
    for (account_id, agent_id) in std::mem::take(&mut due.idle_checks) {
        tokio::spawn(check_idle(inner.clone(), account_id, agent_id));
    }
    if !due.ended.is_empty() {
        let write = Write::EndSessions {
            ended: due
                .ended
                .iter()
                .map(|id| (id.to_string(), EndReason::Expired))
                .collect(),
            now,
        };
        if let Err(e) = inner.writer.commit(write).await {
            // The lease is over either way; a restart would grant it a grace lease.
            tracing::error!(error = %e, "could not record expired sessions");
        }
        inner.metrics.expiries.inc_by(due.ended.len() as u64);
    }
    let next = {
        let mut st = inner.state.lock();
        for id in &due.ended {
            // Ended meanwhile (a logout, a removal): that end stays.
            let Some(s) = st.sessions.get(id) else {
                continue;
            };
            due.touched.insert(s.account_id.clone());
            st.end_session_mem(id, EndReason::Expired, now, &mut due.fx);
        }
        for acc in &due.touched {
            st.recompute(acc, now, &inner.metrics, &inner.store, &mut due.fx);
        }
        st.timers.first().map(|t| t.0)
    };
    due.fx.wake_sweeper = false;
    inner.finish(due.fx);
    next
}

/// What one sweep found due, under the lock: lease ends still to commit, accounts whose
/// view to recompute, pushes to send.
struct Due {
    ended: Vec<Arc<str>>,
    touched: HashSet<Arc<str>>,
    /// (account, agent, until) of timed statuses whose end came.
    status_ends: Vec<(Arc<str>, Arc<str>, i64)>,
    /// (account, agent) whose reports said they go idle now.
    idle_checks: Vec<(Arc<str>, Arc<str>)>,
    fx: Effects,
}

/// Applies the end of an agent's timed status that was to end at `until` (nothing if it was
/// replaced meanwhile).
async fn end_timed_status(inner: Arc<Inner>, account_id: Arc<str>, agent_id: Arc<str>, until: i64) {
    let (change, plan) = status::timer_change(account_id, agent_id.to_string(), until);
    if let Err(e) = inner.change_status(change, plan).await {
        // The status stays timed and in the store: a restart arms its timer again.
        tracing::error!(error = %e, agent = %agent_id, "could not end a timed status");
    }
}

/// Sets an agent idle if its reports still say so (nothing if a report or a change came
/// meanwhile: the change re-arms the check).
async fn check_idle(inner: Arc<Inner>, account_id: Arc<str>, agent_id: Arc<str>) {
    let (change, plan) = idle::check(account_id, agent_id.to_string());
    if let Err(e) = inner.change_status(change, plan).await {
        // The next heartbeat's report decides again.
        tracing::error!(error = %e, agent = %agent_id, "could not set an idle agent away");
    }
}

/// Pops every due timer: renew pushes and opening-hours flips are handled here, ended
/// leases are returned to be committed.
fn take_due(inner: &Inner, now: i64) -> Due {
    let mut fx = Effects::default();
    let mut st = inner.state.lock();
    let mut ended: Vec<Arc<str>> = Vec::new();
    let mut touched: HashSet<Arc<str>> = HashSet::default();
    let mut rearm: Vec<Arc<str>> = Vec::new();
    let mut status_ends = Vec::new();
    let mut idle_checks = Vec::new();
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
                s.scheduled_expiry = 0;
                if !rules::lease_ended(s.lease_until, now) {
                    rearm.push(id);
                    continue;
                }
                inner.metrics.expired_after(now - s.lease_until);
                ended.push(id);
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
                        &s.account_id,
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
            TimerKind::StatusEnd => {
                if let Some(a) = st.agents.get(&id)
                    && a.status.until == Some(at)
                {
                    status_ends.push((a.account_id.clone(), id, at));
                }
            }
            TimerKind::IdleCheck => {
                if let Some(a) = st.agents.get_mut(&id)
                    && a.idle_check_at == Some(at)
                {
                    a.idle_check_at = None;
                    idle_checks.push((a.account_id.clone(), id));
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
    Due {
        ended,
        touched,
        status_ends,
        idle_checks,
        fx,
    }
}

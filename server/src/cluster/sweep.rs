//! A node's timers: the sweeper and the reconciler.
//!
//! - **Sweeper.** Each partition's deadline index is swept when its earliest deadline comes
//!   (learnt from sweep replies and from this node's own logins), and at least once every
//!   [`SAFETY_POLL`] (a deadline another node made). The sweep script removes what it
//!   reports, so however many nodes sweep, each lease end is handled by exactly one: that
//!   node ends the session in PostgreSQL, pushes to the device, and refreshes the view. Redis
//!   `TIME` decides what is due.
//! - **Reconciler.** Every [`RECONCILE_EVERY`] the statuses committed in PostgreSQL in the
//!   last [`RECONCILE_WINDOW`] are applied to Redis again (a no-op unless a node died between
//!   its commit and its Redis write); timed statuses still timed [`TIMER_GRACE`] after their
//!   end are ended (the node that swept the end died before changing it); ended sessions and
//!   op ids past their retention are pruned.
//! - **Timed statuses.** Their end sits in the partition's deadline index beside the leases
//!   (`set_status.lua`), so each is reported to one node, which applies it as a status change
//!   decided in PostgreSQL: a repeat (by the reconciler) changes nothing.

use std::sync::Arc;
use std::time::Duration;

use presence_protocol::{EndReason, PushBody, PushPayload};
use tokio::sync::{mpsc, watch};

use super::Inner;
use super::hot::{PARTITIONS, Swept};
use crate::ops::{idle, status};
use crate::push::PushJob;
use crate::rules;

/// The longest a partition goes unswept.
pub const SAFETY_POLL: Duration = Duration::from_millis(200);
/// How often committed statuses are re-applied to Redis.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(2);
/// How far back the reconciler looks.
pub const RECONCILE_WINDOW: Duration = Duration::from_secs(30);
/// How long after a timed status's end the reconciler ends it if no sweep did.
pub const TIMER_GRACE: Duration = Duration::from_secs(2);
/// How often history past its retention is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(1);

pub(super) fn spawn(
    inner: Arc<Inner>,
    mut deadlines: mpsc::UnboundedReceiver<(u32, i64)>,
    mut stop: watch::Receiver<bool>,
) {
    let weak = Arc::downgrade(&inner);
    let mut stop2 = stop.clone();
    drop(inner);
    let w = weak.clone();
    tokio::spawn(async move {
        let mut next = vec![0i64; PARTITIONS as usize];
        loop {
            let Some(inner) = w.upgrade() else { return };
            let now = inner.clock.now_ms();
            for p in 0..PARTITIONS {
                if next[p as usize] > now {
                    continue;
                }
                let poll = now + SAFETY_POLL.as_millis() as i64;
                next[p as usize] = match inner.hot.sweep(p).await {
                    Ok(sw) => {
                        inner.metrics.store.sweeps.inc();
                        // Redis time -> this node's time, for the timer only.
                        let due = sw.next.map_or(poll, |n| now + (n - sw.now).max(0));
                        handle(&inner, sw);
                        due.min(poll)
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, partition = p, "sweep failed");
                        poll
                    }
                };
            }
            let wake = next.iter().copied().min().unwrap_or(now + 1000);
            let at = inner.clock.instant_at(wake);
            drop(inner);
            tokio::select! {
                _ = tokio::time::sleep_until(at) => {}
                got = deadlines.recv() => match got {
                    Some((p, t)) => {
                        let slot = &mut next[p as usize];
                        *slot = (*slot).min(t);
                        while let Ok((p, t)) = deadlines.try_recv() {
                            let slot = &mut next[p as usize];
                            *slot = (*slot).min(t);
                        }
                    }
                    None => return,
                },
                _ = stop.changed() => return,
            }
        }
    });
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(RECONCILE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_prune = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop2.changed() => return,
            }
            let Some(inner) = weak.upgrade() else { return };
            reconcile(&inner).await;
            if last_prune.elapsed() >= PRUNE_EVERY {
                last_prune = tokio::time::Instant::now();
                prune(&inner).await;
            }
        }
    });
}

/// Acts on what a sweep reported, each item in a task of its own.
fn handle(inner: &Arc<Inner>, sw: Swept) {
    for (acc, sid, _agent, ended_at) in sw.ended {
        let inner = inner.clone();
        let lag = (sw.now - ended_at).max(0);
        inner.metrics.store.sweep_lag_ms.set(lag);
        inner.metrics.expired_after(lag);
        tokio::spawn(async move {
            inner.metrics.expiries.inc();
            let now = inner.clock.now_ms();
            match inner.pg.session(&sid).await {
                Ok(Some(row)) => {
                    // Recorded as ended when the lease ran out, not when the sweep saw it.
                    let at = ended_at.min(now);
                    if let Err(e) = inner.pg.end_session(&sid, EndReason::Expired, at).await {
                        tracing::warn!(error = %e, "could not record a lease end");
                    }
                    inner.push_ended(&acc, &sid, row.push, EndReason::Expired, false);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "could not read an ended session"),
            }
            if let Err(e) = inner.refresh_view(&acc).await {
                tracing::warn!(error = %e, "could not refresh a view after a lease end");
            }
        });
    }
    for (acc, sid, lease, at) in sw.renew {
        let inner = inner.clone();
        tokio::spawn(async move {
            let Ok(cfg) = inner.cfg(&acc).await else {
                return;
            };
            let margin = cfg.settings.timings.renew_margin_ms;
            let planned = rules::renew_at(lease.mode, lease.push, lease.until, margin);
            if !rules::renew_still_wanted(lease.mode, lease.push, planned, at) {
                return;
            }
            if let Ok(Some(reg)) = inner.pg.session(&sid).await.map(|s| s.and_then(|s| s.push)) {
                let now = inner.clock.now_ms();
                inner.pusher.dispatch(PushJob::new(
                    &acc,
                    reg,
                    PushPayload::new(PushBody::Renew {
                        session_id: sid.clone(),
                        lease_until: lease.until,
                    }),
                    lease.until,
                    now,
                ));
            }
        });
    }
    for (acc, agent, until) in sw.status_ends {
        tokio::spawn(end_timed_status(inner.clone(), acc, agent, until));
    }
    for (acc, agent) in sw.idle_checks {
        tokio::spawn(check_idle(inner.clone(), acc, agent));
    }
    for acc in sw.flips {
        let inner = inner.clone();
        tokio::spawn(async move {
            if let Err(e) = inner.refresh_view(&acc).await {
                tracing::warn!(error = %e, "could not refresh a view at an opening-hours boundary");
            }
        });
    }
}

/// Applies the end of an agent's timed status that was to end at `until` (nothing if it was
/// replaced meanwhile): a status change like any other, decided in PostgreSQL under the
/// agent's row lock, so a repeat is harmless.
async fn end_timed_status(inner: Arc<Inner>, account_id: String, agent_id: String, until: i64) {
    let (change, plan) = status::timer_change(Arc::from(account_id.as_str()), agent_id, until);
    if let Err(e) = inner.change_status(change, plan).await {
        // Still timed in PostgreSQL: the reconciler tries again.
        tracing::warn!(error = %e, "could not end a timed status");
    }
}

/// Sets an agent idle if its reports still say so: decided in PostgreSQL under the agent's
/// row lock like any change (a report or change that came meanwhile re-armed the check).
async fn check_idle(inner: Arc<Inner>, account_id: String, agent_id: String) {
    let (change, plan) = idle::check(Arc::from(account_id.as_str()), agent_id);
    if let Err(e) = inner.change_status(change, plan).await {
        // The next heartbeat's report arms the check again.
        tracing::warn!(error = %e, "could not set an idle agent away");
    }
}

/// Applies recently committed statuses that Redis lacks, and ends timed statuses whose end
/// no node applied ([`TIMER_GRACE`] after it).
async fn reconcile(inner: &Arc<Inner>) {
    let overdue = inner.clock.now_ms() - TIMER_GRACE.as_millis() as i64;
    match inner.pg.overdue_timers(overdue).await {
        Ok(rows) => {
            for (acc, agent, until) in rows {
                end_timed_status(inner.clone(), acc, agent, until).await;
            }
        }
        Err(e) => tracing::debug!(error = %e, "reconciler could not read timers"),
    }
    let since = inner.clock.now_ms() - RECONCILE_WINDOW.as_millis() as i64;
    let rows = match inner.pg.recent_statuses(since).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, "reconciler could not read PostgreSQL");
            return;
        }
    };
    for (acc, agent, status, op) in rows {
        let applied = seeded!(
            inner,
            &acc,
            inner.hot.set_status(&acc, &agent, &status, &op, None)
        );
        if let Ok(true) = applied {
            inner.metrics.store.reconciler_repairs.inc();
            let _ = inner.refresh_view(&acc).await;
        }
    }
}

async fn prune(inner: &Arc<Inner>) {
    let now = inner.clock.now_ms();
    let r = inner.retention;
    match inner
        .pg
        .prune(
            now - r.ended_sessions.as_millis() as i64,
            now - r.status_ops.as_millis() as i64,
            now - r.history.as_millis() as i64,
        )
        .await
    {
        Ok((sessions, ops, log)) => {
            inner.metrics.pruned_status_log.inc_by(log);
            inner.metrics.pruned_sessions.inc_by(sessions);
            inner.metrics.pruned_status_ops.inc_by(ops);
        }
        Err(e) => tracing::debug!(error = %e, "could not prune"),
    }
    let events_before =
        (now - r.history.as_millis() as i64).max(now - crate::history::events::EVENT_RETENTION_MS);
    if let Err(e) = inner.pg.prune_events(events_before).await {
        tracing::debug!(error = %e, "could not prune events");
    }
}

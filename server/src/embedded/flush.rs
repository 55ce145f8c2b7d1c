//! The background writes: leases written in batches, history past its retention pruned,
//! the database log checkpointed (all on the blocking pool, never inside a request), and
//! view versions reserved ahead through the group commit.

use super::*;

use std::sync::Arc;
use std::time::Duration;

use presence_protocol::Mode;
use tokio::sync::watch;

pub(super) fn flush_once(inner: &Inner) {
    let leases = {
        let mut st = inner.state.lock();
        let dirty = std::mem::take(&mut st.dirty_leases);
        let leases: Vec<(String, Mode, i64)> = dirty
            .iter()
            .filter_map(|id| st.sessions.get(id))
            .map(|s| (s.id.to_string(), s.mode, s.lease_until))
            .collect();
        leases
    };
    if let Err(e) = inner.store.flush_leases(&leases) {
        tracing::error!(error = %e, "lease flush failed; will retry");
        let mut st = inner.state.lock();
        for (id, _, _) in leases {
            st.dirty_leases.insert(arc(&id));
        }
    }
}

/// Forgets what is past its retention: ended sessions' tokens (memory and disk), status
/// op ids and status log entries (disk).
pub(super) fn prune_once(inner: &Inner) {
    let now = inner.clock.now_ms();
    let sessions_before = now - retention_ms(inner.retention.ended_sessions);
    let ops_before = now - retention_ms(inner.retention.status_ops);
    let log_before = now - retention_ms(inner.retention.history);
    let forgotten = inner.state.lock().prune_ended(sessions_before);
    let events_before = log_before.max(now - crate::history::events::EVENT_RETENTION_MS);
    match inner
        .store
        .prune(sessions_before, ops_before, log_before, events_before)
    {
        Ok((sessions, ops, log)) => {
            inner.metrics.pruned_status_log.inc_by(log as u64);
            inner
                .metrics
                .pruned_sessions
                .inc_by(sessions.max(forgotten) as u64);
            inner.metrics.pruned_status_ops.inc_by(ops as u64);
        }
        Err(e) => tracing::warn!(error = %e, "pruning old history failed; will retry"),
    }
}

pub(super) fn retention_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}

/// Every [`FLUSH_EVERY`]: writes the in-memory leases, prunes history past its retention,
/// then checkpoints the database log.
/// Both block on the disk, so they run on the blocking pool, never on a runtime worker.
pub(super) async fn flusher(inner: Arc<Inner>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let last = tokio::select! {
            _ = tick.tick() => false,
            _ = shutdown.changed() => true,
        };
        let work = inner.clone();
        let done = tokio::task::spawn_blocking(move || {
            flush_once(&work);
            prune_once(&work);
            work.store.checkpoint()
        })
        .await;
        match done {
            Ok(Ok(c)) if c.restarted => {
                tracing::info!(
                    frames = c.log_frames,
                    "database log restarted after a long busy spell"
                );
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "checkpoint failed; will retry"),
            Err(e) => tracing::error!(error = %e, "flush task failed"),
        }
        if last {
            return;
        }
    }
}

/// Commits each view-version reservation ahead (from [`State::recompute`]) through the group
/// commit, then lets memory serve up to it, for as long as the backend lives.
pub(super) async fn reserver(
    inner: std::sync::Weak<Inner>,
    mut asked: tokio::sync::mpsc::UnboundedReceiver<(Arc<str>, i64)>,
) {
    while let Some((account_id, upto)) = asked.recv().await {
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let write = crate::store::Write::ViewVersions {
            account_id: account_id.to_string(),
            upto,
        };
        let done = inner.writer.commit(write).await;
        if let Err(e) = &done {
            tracing::error!(error = %e, "could not reserve view versions ahead; will retry");
        }
        let mut st = inner.state.lock();
        if let Some(acc) = st.accounts.get_mut(&account_id) {
            acc.reserving = false;
            if done.is_ok() {
                acc.versions_reserved = acc.versions_reserved.max(upto);
            }
        }
    }
}

/// Records each published view (from [`State::recompute`]) as a `chatbox.view` event, in the
/// order the views were published, for as long as the backend lives. A view published just
/// before a crash may miss its event; the next view's event carries the state.
pub(super) async fn view_recorder(
    inner: std::sync::Weak<Inner>,
    mut views: tokio::sync::mpsc::UnboundedReceiver<(
        Arc<str>,
        presence_protocol::ChatboxView,
        i64,
    )>,
) {
    while let Some((account_id, view, at)) = views.recv().await {
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let write = crate::store::Write::ViewEvent {
            account_id: account_id.to_string(),
            view: Box::new(view),
            at,
        };
        if let Err(e) = inner.writer.commit(write).await {
            tracing::warn!(error = %e, "could not record a chat box view event");
        }
    }
}

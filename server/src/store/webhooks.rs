//! Webhook endpoints and their deliveries in SQLite (the rules are `crate::webhooks`'s).
//!
//! Guarantees:
//! - An endpoint is made with its cursor at the account's last event `seq`, in the same
//!   transaction that checks the account has fewer than [`MAX_WEBHOOKS`].
//! - One process owns the file, so the leases that keep two attempts of one endpoint from
//!   running at once are the backend's, in memory; finding work is a read on the reading
//!   connection ([`Store::webhook_work`]) and an outcome joins the writer's group commit
//!   ([`settle`]), so deliveries never hold the writer apart from status changes.

use std::collections::HashSet;

use presence_protocol::{DeliveryState, DisabledReason, EventType};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::commit::in_tx;
use super::{Store, StoreResult};
use crate::history::events::Stored;
use crate::webhooks::{
    Claims, DeliveryRow, Edited, Effect, Events, Job, MAX_WEBHOOKS, Settle, WebhookEdit,
    WebhookRow, state_code, state_of,
};

const COLS: &str = "w.id, w.account_id, w.url, w.events, w.description, w.enabled, \
                    w.disabled_reason, w.secret, w.previous_secret, w.previous_until, w.created_at";
/// Events read at a time while looking for the next one an endpoint takes.
const SCAN: i64 = 64;

/// What [`Store::webhook_work`] found.
#[derive(Debug, Default)]
pub struct Work {
    pub claims: Claims,
    /// Endpoints whose cursor may move past events they do not take: (endpoint, cursor).
    pub skipped: Vec<(String, i64)>,
    /// Manual retries of events past their retention: (endpoint, `seq`).
    pub expired: Vec<(String, i64)>,
}

fn reason_column(r: Option<DisabledReason>) -> Option<&'static str> {
    r.map(|r| match r {
        DisabledReason::Admin => "admin",
        DisabledReason::Gone => "gone",
    })
}

fn reason_of(s: Option<String>) -> Option<DisabledReason> {
    match s.as_deref() {
        Some("admin") => Some(DisabledReason::Admin),
        Some("gone") => Some(DisabledReason::Gone),
        _ => None,
    }
}

fn webhook_row(r: &Row<'_>) -> rusqlite::Result<WebhookRow> {
    Ok(WebhookRow {
        id: r.get(0)?,
        account_id: r.get(1)?,
        url: r.get(2)?,
        events: Events::from_column(&r.get::<_, String>(3)?),
        description: r.get(4)?,
        enabled: r.get(5)?,
        disabled_reason: reason_of(r.get(6)?),
        secret: r.get(7)?,
        previous_secret: r.get(8)?,
        previous_until: r.get(9)?,
        created_at: r.get(10)?,
    })
}

fn event_at(c: &Connection, account_id: &str, seq: i64) -> StoreResult<Option<Stored>> {
    c.prepare_cached("SELECT type, at, data FROM events WHERE account_id = ?1 AND seq = ?2")?
        .query_row(params![account_id, seq], |r| {
            Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()
        .map(|o| {
            o.and_then(|(kind, at, data)| {
                Some(Stored {
                    seq,
                    kind: EventType::parse(&kind)?,
                    at,
                    data,
                })
            })
        })
}

fn events_after(
    c: &Connection,
    account_id: &str,
    after: i64,
    limit: i64,
) -> StoreResult<Vec<Stored>> {
    c.prepare_cached(
        "SELECT seq, type, at, data FROM events WHERE account_id = ?1 AND seq > ?2
         ORDER BY seq LIMIT ?3",
    )?
    .query_map(params![account_id, after, limit], |r| {
        Ok((r.get(0)?, r.get::<_, String>(1)?, r.get(2)?, r.get(3)?))
    })?
    .map(|r| {
        r.map(|(seq, kind, at, data)| {
            EventType::parse(&kind).map(|kind| Stored {
                seq,
                kind,
                at,
                data,
            })
        })
    })
    .filter_map(|r| r.transpose())
    .collect()
}

/// Where a delivery of `seq` stands: attempts made and since when it counts.
fn delivery_of(c: &Connection, webhook_id: &str, seq: i64) -> StoreResult<Option<(u32, i64)>> {
    c.prepare_cached(
        "SELECT attempts, since FROM webhook_deliveries WHERE webhook_id = ?1 AND seq = ?2",
    )?
    .query_row(params![webhook_id, seq], |r| Ok((r.get(0)?, r.get(1)?)))
    .optional()
}

fn upsert_delivery(tx: &Connection, job: &Job, e: &Effect) -> StoreResult<()> {
    tx.prepare_cached(
        "INSERT INTO webhook_deliveries
             (webhook_id, seq, type, at, state, attempts, since, last_at, last_status,
              last_error, next_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (webhook_id, seq) DO UPDATE SET state = excluded.state,
             attempts = excluded.attempts, since = excluded.since, last_at = excluded.last_at,
             last_status = excluded.last_status, last_error = excluded.last_error,
             next_at = excluded.next_at",
    )?
    .execute(params![
        job.webhook.id,
        job.event.seq,
        job.event.kind.as_str(),
        job.event.at,
        state_code(e.state),
        job.attempts + 1,
        job.since,
        e.at,
        e.status,
        e.error,
        e.next_at
    ])?;
    Ok(())
}

impl Store {
    /// The account's endpoints, oldest first.
    pub fn webhooks(&self, account_id: &str) -> StoreResult<Vec<WebhookRow>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {COLS} FROM webhooks w WHERE w.account_id = ?1
                 ORDER BY w.created_at, w.id"
            ))?
            .query_map([account_id], webhook_row)?
            .collect()
        })
    }

    /// Keeps an edit planned by `crate::webhooks::rules`.
    pub fn edit_webhook(&self, edit: &WebhookEdit) -> StoreResult<Edited> {
        let conn = self.write();
        in_tx(&conn, |tx| match edit {
            WebhookEdit::Create(w) => {
                let n: i64 = tx
                    .prepare_cached("SELECT count(*) FROM webhooks WHERE account_id = ?1")?
                    .query_row([&w.account_id], |r| r.get(0))?;
                if n as usize >= MAX_WEBHOOKS {
                    return Ok(Edited::TooMany);
                }
                tx.prepare_cached(
                    "INSERT INTO webhooks (id, account_id, url, events, description, enabled,
                         disabled_reason, secret, previous_secret, previous_until, created_at,
                         cursor)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11,
                         coalesce((SELECT seq FROM event_seqs WHERE account_id = ?2), 0))",
                )?
                .execute(params![
                    w.id,
                    w.account_id,
                    w.url,
                    w.events.to_column(),
                    w.description,
                    w.enabled,
                    reason_column(w.disabled_reason),
                    w.secret,
                    w.previous_secret,
                    w.previous_until,
                    w.created_at
                ])?;
                Ok(Edited::Done)
            }
            WebhookEdit::Update(w) => {
                let n = tx
                    .prepare_cached(
                        "UPDATE webhooks SET url = ?3, events = ?4, description = ?5,
                             enabled = ?6, disabled_reason = ?7, secret = ?8,
                             previous_secret = ?9, previous_until = ?10,
                             due_at = CASE WHEN ?6 AND NOT enabled THEN NULL ELSE due_at END
                         WHERE id = ?1 AND account_id = ?2",
                    )?
                    .execute(params![
                        w.id,
                        w.account_id,
                        w.url,
                        w.events.to_column(),
                        w.description,
                        w.enabled,
                        reason_column(w.disabled_reason),
                        w.secret,
                        w.previous_secret,
                        w.previous_until
                    ])?;
                Ok(if n == 0 {
                    Edited::NotFound
                } else {
                    Edited::Done
                })
            }
            WebhookEdit::Delete { account_id, id } => {
                let n = tx
                    .prepare_cached("DELETE FROM webhooks WHERE id = ?1 AND account_id = ?2")?
                    .execute(params![id, account_id])?;
                tx.prepare_cached("DELETE FROM webhook_deliveries WHERE webhook_id = ?1")?
                    .execute([id])?;
                Ok(if n == 0 {
                    Edited::NotFound
                } else {
                    Edited::Done
                })
            }
        })
    }

    /// Endpoints with an event due at `now` (at most `limit`, none of `held`), each with
    /// the event it is to send next, read on the reading connection: this process holds its
    /// endpoints' leases in memory. The answer also says which endpoints may move their
    /// cursor past events they do not take, and which manual retries are of events past
    /// their retention ([`cursors`] keeps both).
    pub fn webhook_work(
        &self,
        now: i64,
        limit: usize,
        held: &HashSet<String>,
    ) -> StoreResult<Work> {
        self.read(|c| {
            let candidates: Vec<(WebhookRow, String, i64)> = c
                .prepare_cached(&format!(
                    "SELECT {COLS}, a.slug, w.cursor FROM webhooks w
                     JOIN accounts a ON a.id = w.account_id
                     LEFT JOIN event_seqs s ON s.account_id = w.account_id
                     WHERE w.enabled AND (w.due_at IS NULL OR w.due_at <= ?1)
                       AND (w.cursor < coalesce(s.seq, 0) OR EXISTS (
                           SELECT 1 FROM webhook_deliveries d WHERE d.webhook_id = w.id
                             AND d.state = 0 AND d.seq <= w.cursor))
                     ORDER BY coalesce(w.due_at, 0) LIMIT ?2"
                ))?
                .query_map(params![now, (limit + held.len()) as i64], |r| {
                    Ok((webhook_row(r)?, r.get(11)?, r.get(12)?))
                })?
                .collect::<StoreResult<_>>()?;
            let mut work = Work::default();
            for (webhook, slug, stored) in candidates {
                if held.contains(&webhook.id) || work.claims.jobs.len() >= limit {
                    continue;
                }
                match next_job(c, &webhook, stored, &mut work.expired)? {
                    (Some(mut job), _) => {
                        job.slug = slug;
                        work.claims.jobs.push(job);
                    }
                    (None, cursor) => work.skipped.push((webhook.id.clone(), cursor)),
                }
            }
            work.claims.next_due = c
                .prepare_cached("SELECT min(due_at) FROM webhooks WHERE enabled AND due_at > ?1")?
                .query_row([now], |r| r.get(0))?;
            (work.claims.endpoints, work.claims.backlog) = c
                .prepare_cached(
                    "SELECT count(*), coalesce(sum(coalesce(s.seq, 0) - w.cursor), 0)
                     FROM webhooks w LEFT JOIN event_seqs s ON s.account_id = w.account_id
                     WHERE w.enabled",
                )?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(work)
        })
    }

    /// The endpoint's delivery rows (newest first, at most `limit`, of `state` if given),
    /// and the events after its cursor not yet tried (when pending ones are asked for).
    pub fn webhook_deliveries(
        &self,
        webhook: &WebhookRow,
        state: Option<DeliveryState>,
        limit: usize,
    ) -> StoreResult<(Vec<DeliveryRow>, Vec<Stored>)> {
        self.read(|c| {
            let rows = c
                .prepare_cached(
                    "SELECT seq, type, at, state, attempts, last_status, last_error, last_at,
                         next_at
                     FROM webhook_deliveries WHERE webhook_id = ?1 AND (?2 IS NULL OR state = ?2)
                     ORDER BY seq DESC LIMIT ?3",
                )?
                .query_map(
                    params![webhook.id, state.map(state_code), limit as i64],
                    |r| {
                        Ok(DeliveryRow {
                            seq: r.get(0)?,
                            kind: EventType::parse(&r.get::<_, String>(1)?)
                                .unwrap_or(EventType::AgentStatus),
                            at: r.get(2)?,
                            state: state_of(r.get(3)?).unwrap_or(DeliveryState::Pending),
                            attempts: r.get(4)?,
                            last_status: r.get(5)?,
                            last_error: r.get(6)?,
                            last_at: r.get(7)?,
                            next_at: r.get(8)?,
                        })
                    },
                )?
                .collect::<StoreResult<Vec<_>>>()?;
            let upcoming = if matches!(state, None | Some(DeliveryState::Pending)) {
                let cursor: Option<i64> = c
                    .prepare_cached("SELECT cursor FROM webhooks WHERE id = ?1")?
                    .query_row([&webhook.id], |r| r.get(0))
                    .optional()?;
                match cursor {
                    Some(cursor) => events_after(c, &webhook.account_id, cursor, limit as i64 * 4)?,
                    None => Vec::new(),
                }
            } else {
                Vec::new()
            };
            Ok((rows, upcoming))
        })
    }

    /// Sends a dead event again (it becomes the endpoint's next), or a pending one at once;
    /// the state it was in, if the endpoint has it.
    pub fn retry_webhook(
        &self,
        webhook_id: &str,
        seq: i64,
        now: i64,
    ) -> StoreResult<Option<DeliveryState>> {
        let conn = self.write();
        in_tx(&conn, |tx| {
            let state: Option<i64> = tx
                .prepare_cached(
                    "SELECT state FROM webhook_deliveries WHERE webhook_id = ?1 AND seq = ?2",
                )?
                .query_row(params![webhook_id, seq], |r| r.get(0))
                .optional()?;
            let Some(state) = state.and_then(state_of) else {
                return Ok(None);
            };
            if state != DeliveryState::Ok {
                tx.prepare_cached(
                    "UPDATE webhook_deliveries SET state = 0, since = ?3, next_at = NULL
                     WHERE webhook_id = ?1 AND seq = ?2",
                )?
                .execute(params![webhook_id, seq, now])?;
                tx.prepare_cached("UPDATE webhooks SET due_at = NULL WHERE id = ?1")?
                    .execute([webhook_id])?;
            }
            Ok(Some(state))
        })
    }
}

/// The endpoint's next job (a dead event retried by hand first, else the first event after
/// its cursor `stored` that it takes), and the cursor it may move to (past the events it
/// does not take).
fn next_job(
    c: &Connection,
    webhook: &WebhookRow,
    stored: i64,
    expired: &mut Vec<(String, i64)>,
) -> StoreResult<(Option<Job>, i64)> {
    let job = |event, attempts, since, manual| Job {
        webhook: webhook.clone(),
        slug: String::new(),
        event,
        attempts,
        since,
        manual,
    };
    let manual: Vec<(i64, u32, i64)> = c
        .prepare_cached(
            "SELECT seq, attempts, since FROM webhook_deliveries
             WHERE webhook_id = ?1 AND state = 0 AND seq <= ?2 ORDER BY seq LIMIT 8",
        )?
        .query_map(params![webhook.id, stored], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<StoreResult<_>>()?;
    for (seq, attempts, since) in manual {
        match event_at(c, &webhook.account_id, seq)? {
            Some(event) => return Ok((Some(job(event, attempts, since, true)), stored)),
            None => expired.push((webhook.id.clone(), seq)),
        }
    }
    let mut cursor = stored;
    loop {
        let batch = events_after(c, &webhook.account_id, cursor, SCAN)?;
        let read = batch.len() as i64;
        for event in batch {
            if webhook.events.takes(event.kind) {
                let (attempts, since) =
                    delivery_of(c, &webhook.id, event.seq)?.unwrap_or((0, event.at));
                return Ok((Some(job(event, attempts, since, false)), cursor));
            }
            cursor = event.seq;
        }
        if read < SCAN {
            return Ok((None, cursor));
        }
    }
}

/// Keeps what came of a job's attempt, inside the writer's transaction: the delivery row,
/// and the endpoint's cursor (past the event once it is delivered or dead, unless it was a
/// manual retry), next attempt and, after a `410`, its disabling.
pub(super) fn settle(tx: &Connection, job: &Job, settle: &Settle) -> StoreResult<()> {
    let Some(e) = settle.effect(job) else {
        return Ok(());
    };
    // An endpoint removed while its attempt ran keeps no delivery.
    let exists = tx
        .prepare_cached("SELECT 1 FROM webhooks WHERE id = ?1")?
        .exists([&job.webhook.id])?;
    if !exists {
        return Ok(());
    }
    upsert_delivery(tx, job, &e)?;
    tx.prepare_cached(
        "UPDATE webhooks SET due_at = ?2,
             cursor = CASE WHEN ?3 THEN max(cursor, ?4) ELSE cursor END,
             enabled = CASE WHEN ?5 THEN 0 ELSE enabled END,
             disabled_reason = CASE WHEN ?5 THEN 'gone' ELSE disabled_reason END
         WHERE id = ?1",
    )?
    .execute(params![
        job.webhook.id,
        e.next_at,
        e.advance,
        job.event.seq,
        e.gone
    ])?;
    Ok(())
}

/// Moves endpoints' cursors past events they do not take (never back), and marks manual
/// retries of events past their retention dead, inside the writer's transaction.
pub(super) fn cursors(
    tx: &Connection,
    skipped: &[(String, i64)],
    expired: &[(String, i64)],
    now: i64,
) -> StoreResult<()> {
    for (id, cursor) in skipped {
        tx.prepare_cached("UPDATE webhooks SET cursor = max(cursor, ?2) WHERE id = ?1")?
            .execute(params![id, cursor])?;
    }
    for (id, seq) in expired {
        tx.prepare_cached(
            "UPDATE webhook_deliveries SET state = 2, last_at = ?3,
                 last_error = 'the event is past its retention'
             WHERE webhook_id = ?1 AND seq = ?2",
        )?
        .execute(params![id, seq, now])?;
    }
    Ok(())
}

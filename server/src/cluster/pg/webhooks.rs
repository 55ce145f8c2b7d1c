//! Webhook endpoints and their deliveries in PostgreSQL (the rules are `crate::webhooks`'s).
//!
//! Guarantees:
//! - An endpoint is made with its cursor at the account's last event `seq`, under a lock of
//!   the account's counter row, so two nodes making endpoints at once still stop at
//!   [`MAX_WEBHOOKS`].
//! - A claim takes endpoint rows with `FOR UPDATE SKIP LOCKED` and gives each a lease in the
//!   same transaction: nodes claiming at once never take the same endpoint, and a lease
//!   that lapses (its node died) is taken again.
//! - A settle by a node whose lease is gone changes nothing.

use deadpool_postgres::Transaction;
use presence_protocol::{DeliveryState, DisabledReason, EventType};
use tokio_postgres::Row;

use super::Pg;
use crate::backend::BackendResult;
use crate::history::events::Stored;
use crate::webhooks::{
    Claims, DeliveryRow, Edited, Events, Job, MAX_WEBHOOKS, Settle, WebhookEdit, WebhookRow,
    state_code, state_of,
};

const COLS: &str = "w.id, w.account_id, w.url, w.events, w.description, w.enabled, \
                    w.disabled_reason, w.secret, w.previous_secret, w.previous_until, w.created_at";
/// Events read at a time while looking for the next one an endpoint takes.
const SCAN: i64 = 64;

fn reason_column(r: Option<DisabledReason>) -> Option<&'static str> {
    r.map(|r| match r {
        DisabledReason::Admin => "admin",
        DisabledReason::Gone => "gone",
    })
}

fn webhook_row(r: &Row) -> WebhookRow {
    WebhookRow {
        id: r.get(0),
        account_id: r.get(1),
        url: r.get(2),
        events: Events::from_column(r.get(3)),
        description: r.get(4),
        enabled: r.get(5),
        disabled_reason: match r.get::<_, Option<&str>>(6) {
            Some("admin") => Some(DisabledReason::Admin),
            Some("gone") => Some(DisabledReason::Gone),
            _ => None,
        },
        secret: r.get(7),
        previous_secret: r.get(8),
        previous_until: r.get(9),
        created_at: r.get(10),
    }
}

fn stored(seq: i64, kind: &str, at: i64, data: String) -> Option<Stored> {
    Some(Stored {
        seq,
        kind: EventType::parse(kind)?,
        at,
        data,
    })
}

impl Pg {
    async fn events_in(
        &self,
        tx: &Transaction<'_>,
        account_id: &str,
        after: i64,
        limit: i64,
    ) -> BackendResult<Vec<Stored>> {
        Ok(tx
            .query(
                "SELECT seq, type, at, data FROM events WHERE account_id = $1 AND seq > $2 \
                 ORDER BY seq LIMIT $3",
                &[&account_id, &after, &limit],
            )
            .await
            .map_err(|e| self.db(e))?
            .iter()
            .filter_map(|r| stored(r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect())
    }

    /// The account's endpoints, oldest first.
    pub async fn webhooks(&self, account_id: &str) -> BackendResult<Vec<WebhookRow>> {
        self.read_all(
            &format!(
                "SELECT {COLS} FROM webhooks w WHERE w.account_id = $1 \
                 ORDER BY w.created_at, w.id"
            ),
            &[&account_id],
            |r| Ok(webhook_row(r)),
        )
        .await
    }

    /// Keeps an edit planned by `crate::webhooks::rules`.
    pub async fn edit_webhook(&self, edit: &WebhookEdit) -> BackendResult<Edited> {
        let _op = self.op();
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(|e| self.db(e))?;
        let done = match edit {
            WebhookEdit::Create(w) => {
                // The counter row is the account's lock for this (a new account has none
                // yet: it is made here).
                tx.execute(
                    "INSERT INTO event_seqs (account_id, seq) VALUES ($1, 0) \
                     ON CONFLICT (account_id) DO UPDATE SET seq = event_seqs.seq",
                    &[&w.account_id],
                )
                .await
                .map_err(|e| self.db(e))?;
                let n: i64 = tx
                    .query_one(
                        "SELECT count(*) FROM webhooks WHERE account_id = $1",
                        &[&w.account_id],
                    )
                    .await
                    .map_err(|e| self.db(e))?
                    .get(0);
                if n as usize >= MAX_WEBHOOKS {
                    Edited::TooMany
                } else {
                    tx.execute(
                        "INSERT INTO webhooks (id, account_id, url, events, description, \
                         enabled, disabled_reason, secret, previous_secret, previous_until, \
                         created_at, cursor) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
                         (SELECT seq FROM event_seqs WHERE account_id = $2))",
                        &[
                            &w.id,
                            &w.account_id,
                            &w.url,
                            &w.events.to_column(),
                            &w.description,
                            &w.enabled,
                            &reason_column(w.disabled_reason),
                            &w.secret,
                            &w.previous_secret,
                            &w.previous_until,
                            &w.created_at,
                        ],
                    )
                    .await
                    .map_err(|e| self.db(e))?;
                    Edited::Done
                }
            }
            WebhookEdit::Update(w) => {
                let n = tx
                    .execute(
                        "UPDATE webhooks SET url = $3, events = $4, description = $5, \
                         enabled = $6, disabled_reason = $7, secret = $8, previous_secret = $9, \
                         previous_until = $10, \
                         due_at = CASE WHEN $6 AND NOT enabled THEN NULL ELSE due_at END \
                         WHERE id = $1 AND account_id = $2",
                        &[
                            &w.id,
                            &w.account_id,
                            &w.url,
                            &w.events.to_column(),
                            &w.description,
                            &w.enabled,
                            &reason_column(w.disabled_reason),
                            &w.secret,
                            &w.previous_secret,
                            &w.previous_until,
                        ],
                    )
                    .await
                    .map_err(|e| self.db(e))?;
                if n == 0 {
                    Edited::NotFound
                } else {
                    Edited::Done
                }
            }
            WebhookEdit::Delete { account_id, id } => {
                let n = tx
                    .execute(
                        "DELETE FROM webhooks WHERE id = $1 AND account_id = $2",
                        &[id, account_id],
                    )
                    .await
                    .map_err(|e| self.db(e))?;
                tx.execute(
                    "DELETE FROM webhook_deliveries WHERE webhook_id = $1",
                    &[id],
                )
                .await
                .map_err(|e| self.db(e))?;
                if n == 0 {
                    Edited::NotFound
                } else {
                    Edited::Done
                }
            }
        };
        tx.commit().await.map_err(|e| self.db(e))?;
        Ok(done)
    }

    /// Takes, for `owner` until `lease_until`, up to `limit` endpoints with an event due at
    /// `now`, each with the event it is to send next.
    pub async fn claim_webhooks(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> BackendResult<Claims> {
        let _op = self.op();
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(|e| self.db(e))?;
        let candidates = tx
            .query(
                &format!(
                    "SELECT {COLS}, a.slug, w.cursor FROM webhooks w \
                     JOIN accounts a ON a.id = w.account_id \
                     LEFT JOIN event_seqs s ON s.account_id = w.account_id \
                     WHERE w.enabled AND (w.lease_until IS NULL OR w.lease_until < $1) \
                       AND (w.due_at IS NULL OR w.due_at <= $1) \
                       AND (w.cursor < coalesce(s.seq, 0) OR EXISTS ( \
                           SELECT 1 FROM webhook_deliveries d WHERE d.webhook_id = w.id \
                             AND d.state = 0 AND d.seq <= w.cursor)) \
                     ORDER BY coalesce(w.due_at, 0) LIMIT $2 \
                     FOR UPDATE OF w SKIP LOCKED"
                ),
                &[&now, &(limit as i64)],
            )
            .await
            .map_err(|e| self.db(e))?;
        let mut claims = Claims::default();
        for r in &candidates {
            let webhook = webhook_row(r);
            let slug: String = r.get(11);
            let cursor: i64 = r.get(12);
            let (job, cursor) = self.next_job(&tx, &webhook, cursor, now).await?;
            let holder = job.as_ref().map(|_| owner);
            let until = job.as_ref().map(|_| lease_until);
            tx.execute(
                "UPDATE webhooks SET cursor = $2, lease_owner = $3, lease_until = $4 \
                 WHERE id = $1",
                &[&webhook.id, &cursor, &holder, &until],
            )
            .await
            .map_err(|e| self.db(e))?;
            if let Some(mut job) = job {
                job.slug = slug;
                claims.jobs.push(job);
            }
        }
        claims.next_due = tx
            .query_one(
                "SELECT min(due_at) FROM webhooks WHERE enabled AND due_at > $1",
                &[&now],
            )
            .await
            .map_err(|e| self.db(e))?
            .get(0);
        let counts = tx
            .query_one(
                "SELECT count(*), coalesce(sum(coalesce(s.seq, 0) - w.cursor), 0)::BIGINT \
                 FROM webhooks w LEFT JOIN event_seqs s ON s.account_id = w.account_id \
                 WHERE w.enabled",
                &[],
            )
            .await
            .map_err(|e| self.db(e))?;
        (claims.endpoints, claims.backlog) = (counts.get(0), counts.get(1));
        tx.commit().await.map_err(|e| self.db(e))?;
        Ok(claims)
    }

    /// The endpoint's next job (a dead event retried by hand first, else the first event
    /// after the cursor it takes), and the cursor it stays at.
    async fn next_job(
        &self,
        tx: &Transaction<'_>,
        webhook: &WebhookRow,
        cursor: i64,
        now: i64,
    ) -> BackendResult<(Option<Job>, i64)> {
        let job = |event, attempts: i32, since, manual| Job {
            webhook: webhook.clone(),
            slug: String::new(),
            event,
            attempts: attempts.max(0) as u32,
            since,
            manual,
        };
        while let Some(r) = tx
            .query_opt(
                "SELECT seq, attempts, since FROM webhook_deliveries \
                 WHERE webhook_id = $1 AND state = 0 AND seq <= $2 ORDER BY seq LIMIT 1",
                &[&webhook.id, &cursor],
            )
            .await
            .map_err(|e| self.db(e))?
        {
            let seq: i64 = r.get(0);
            let found = tx
                .query_opt(
                    "SELECT type, at, data FROM events WHERE account_id = $1 AND seq = $2",
                    &[&webhook.account_id, &seq],
                )
                .await
                .map_err(|e| self.db(e))?
                .and_then(|e| stored(seq, e.get(0), e.get(1), e.get(2)));
            match found {
                Some(event) => return Ok((Some(job(event, r.get(1), r.get(2), true)), cursor)),
                None => {
                    tx.execute(
                        "UPDATE webhook_deliveries SET state = 2, last_at = $3, \
                         last_error = 'the event is past its retention' \
                         WHERE webhook_id = $1 AND seq = $2",
                        &[&webhook.id, &seq, &now],
                    )
                    .await
                    .map_err(|e| self.db(e))?;
                }
            }
        }
        let mut cursor = cursor;
        loop {
            let batch = self
                .events_in(tx, &webhook.account_id, cursor, SCAN)
                .await?;
            let read = batch.len() as i64;
            for event in batch {
                if webhook.events.takes(event.kind) {
                    let (attempts, since) = tx
                        .query_opt(
                            "SELECT attempts, since FROM webhook_deliveries \
                             WHERE webhook_id = $1 AND seq = $2",
                            &[&webhook.id, &event.seq],
                        )
                        .await
                        .map_err(|e| self.db(e))?
                        .map_or((0, event.at), |r| (r.get(0), r.get(1)));
                    return Ok((Some(job(event, attempts, since, false)), cursor));
                }
                cursor = event.seq;
            }
            if read < SCAN {
                return Ok((None, cursor));
            }
        }
    }

    /// Keeps what came of a job's attempt, if `owner` still holds the endpoint.
    pub async fn settle_webhook(
        &self,
        owner: &str,
        job: &Job,
        settle: &Settle,
    ) -> BackendResult<()> {
        let _op = self.op();
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(|e| self.db(e))?;
        let holder: Option<String> = tx
            .query_opt(
                "SELECT lease_owner FROM webhooks WHERE id = $1 FOR UPDATE",
                &[&job.webhook.id],
            )
            .await
            .map_err(|e| self.db(e))?
            .and_then(|r| r.get(0));
        if holder.as_deref() != Some(owner) {
            return Ok(());
        }
        let e = settle.effect(job);
        if let Some(e) = &e {
            tx.execute(
                "INSERT INTO webhook_deliveries (webhook_id, seq, type, at, state, attempts, \
                 since, last_at, last_status, last_error, next_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (webhook_id, seq) DO UPDATE SET state = excluded.state, \
                 attempts = excluded.attempts, since = excluded.since, \
                 last_at = excluded.last_at, last_status = excluded.last_status, \
                 last_error = excluded.last_error, next_at = excluded.next_at",
                &[
                    &job.webhook.id,
                    &job.event.seq,
                    &job.event.kind.as_str(),
                    &job.event.at,
                    &(state_code(e.state) as i16),
                    &((job.attempts + 1) as i32),
                    &job.since,
                    &e.at,
                    &e.status.map(i32::from),
                    &e.error,
                    &e.next_at,
                ],
            )
            .await
            .map_err(|e| self.db(e))?;
        }
        let (due_at, advance, gone) = e
            .as_ref()
            .map_or((None, false, false), |e| (e.next_at, e.advance, e.gone));
        tx.execute(
            "UPDATE webhooks SET lease_owner = NULL, lease_until = NULL, due_at = $2, \
             cursor = CASE WHEN $3 THEN greatest(cursor, $4) ELSE cursor END, \
             enabled = CASE WHEN $5 THEN false ELSE enabled END, \
             disabled_reason = CASE WHEN $5 THEN 'gone' ELSE disabled_reason END \
             WHERE id = $1",
            &[&job.webhook.id, &due_at, &advance, &job.event.seq, &gone],
        )
        .await
        .map_err(|e| self.db(e))?;
        tx.commit().await.map_err(|e| self.db(e))
    }

    /// The endpoint's delivery rows (newest first, at most `limit`, of `state` if given),
    /// and the events after its cursor not yet tried (when pending ones are asked for).
    pub async fn webhook_deliveries(
        &self,
        webhook: &WebhookRow,
        state: Option<DeliveryState>,
        limit: usize,
    ) -> BackendResult<(Vec<DeliveryRow>, Vec<Stored>)> {
        let _op = self.op();
        let mut c = self.client().await?;
        let tx = self.snapshot(&mut c).await?;
        let code = state.map(|s| state_code(s) as i16);
        let rows = tx
            .query(
                "SELECT seq, type, at, state, attempts, last_status, last_error, last_at, \
                 next_at FROM webhook_deliveries \
                 WHERE webhook_id = $1 AND ($2::SMALLINT IS NULL OR state = $2) \
                 ORDER BY seq DESC LIMIT $3",
                &[&webhook.id, &code, &(limit as i64)],
            )
            .await
            .map_err(|e| self.db(e))?
            .iter()
            .map(|r| DeliveryRow {
                seq: r.get(0),
                kind: EventType::parse(r.get(1)).unwrap_or(EventType::AgentStatus),
                at: r.get(2),
                state: state_of(r.get::<_, i16>(3).into()).unwrap_or(DeliveryState::Pending),
                attempts: r.get::<_, i32>(4).max(0) as u32,
                last_status: r
                    .get::<_, Option<i32>>(5)
                    .and_then(|s| u16::try_from(s).ok()),
                last_error: r.get(6),
                last_at: r.get(7),
                next_at: r.get(8),
            })
            .collect();
        let mut upcoming = Vec::new();
        if matches!(state, None | Some(DeliveryState::Pending))
            && let Some(r) = tx
                .query_opt("SELECT cursor FROM webhooks WHERE id = $1", &[&webhook.id])
                .await
                .map_err(|e| self.db(e))?
        {
            upcoming = self
                .events_in(&tx, &webhook.account_id, r.get(0), limit as i64 * 4)
                .await?;
        }
        tx.commit().await.map_err(|e| self.db(e))?;
        Ok((rows, upcoming))
    }

    /// Sends a dead event again (it becomes the endpoint's next), or a pending one at once;
    /// the state it was in, if the endpoint has it.
    pub async fn retry_webhook(
        &self,
        webhook_id: &str,
        seq: i64,
        now: i64,
    ) -> BackendResult<Option<DeliveryState>> {
        let _op = self.op();
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(|e| self.db(e))?;
        let state = tx
            .query_opt(
                "SELECT state FROM webhook_deliveries WHERE webhook_id = $1 AND seq = $2 \
                 FOR UPDATE",
                &[&webhook_id, &seq],
            )
            .await
            .map_err(|e| self.db(e))?
            .and_then(|r| state_of(r.get::<_, i16>(0).into()));
        if let Some(s) = state
            && s != DeliveryState::Ok
        {
            tx.execute(
                "UPDATE webhook_deliveries SET state = 0, since = $3, next_at = NULL \
                 WHERE webhook_id = $1 AND seq = $2",
                &[&webhook_id, &seq, &now],
            )
            .await
            .map_err(|e| self.db(e))?;
            tx.execute(
                "UPDATE webhooks SET due_at = NULL WHERE id = $1",
                &[&webhook_id],
            )
            .await
            .map_err(|e| self.db(e))?;
        }
        tx.commit().await.map_err(|e| self.db(e))?;
        Ok(state)
    }
}

//! The account's events in PostgreSQL: recorded in the transaction of the change that caused
//! them, read back by `seq` for the event stream, with the presence snapshot they follow.
//!
//! Guarantees:
//! - [`Pg::emit`] raises the account's counter (`event_seqs`) and inserts the event in the
//!   caller's transaction: `seq` grows by one per committed event, in commit order (the
//!   counter's row is held until the commit), on any number of nodes. Every transaction
//!   locks agent rows before the counter, so the two never wait for each other in a cycle.
//! - [`Pg::presence`] reads the agents, their live sessions, their last availability rows
//!   and the counter in one repeatable-read snapshot.

use deadpool_postgres::Transaction;
use presence_protocol::{Availability, Device, EndReason, EventType, PresenceAgent, StatusView};

use super::Pg;
use super::rows::{AGENT_COLS, SessionRow, agent_row, from_json};
use crate::backend::{BackendError, BackendResult};
use crate::history::events::{self, NewEvent, Stored};
use crate::history::query::decode;

impl Pg {
    /// Records `e` under the account's next `seq`, inside `tx`.
    pub(super) async fn emit(
        &self,
        tx: &Transaction<'_>,
        account_id: &str,
        e: &NewEvent,
    ) -> BackendResult<()> {
        let stmt = tx
            .prepare_cached(
                "WITH s AS (INSERT INTO event_seqs (account_id, seq) VALUES ($1, 1) \
                 ON CONFLICT (account_id) DO UPDATE SET seq = event_seqs.seq + 1 RETURNING seq) \
                 INSERT INTO events (account_id, seq, type, at, data) \
                 SELECT $1, s.seq, $2, $3, $4 FROM s",
            )
            .await
            .map_err(|e| self.db(e))?;
        tx.execute(&stmt, &[&account_id, &e.kind.as_str(), &e.at, &e.data])
            .await
            .map_err(|e| self.db(e))?;
        Ok(())
    }

    /// Records an agent's applied status change (`agent.status`).
    pub(super) async fn emit_status(
        &self,
        tx: &Transaction<'_>,
        account_id: &str,
        agent_id: &str,
        status: &StatusView,
        at: i64,
    ) -> BackendResult<()> {
        self.emit(tx, account_id, &events::status(agent_id, status, at))
            .await
    }

    /// Records that these sessions ended (`session.ended`), or with `None` that one started.
    pub(super) async fn emit_sessions(
        &self,
        tx: &Transaction<'_>,
        sessions: &[SessionRow],
        ended: Option<EndReason>,
        at: i64,
    ) -> BackendResult<()> {
        for s in sessions {
            let e = events::session(&s.agent_id, &s.id, &s.device, ended, at);
            self.emit(tx, &s.account_id, &e).await?;
        }
        Ok(())
    }

    /// Records a published chat box view (`chatbox.view`) in a transaction of its own.
    pub async fn record_view(
        &self,
        account_id: &str,
        view: &presence_protocol::ChatboxView,
        at: i64,
    ) -> BackendResult<()> {
        let _op = self.op();
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(|e| self.db(e))?;
        self.emit(&tx, account_id, &events::view(view, at)).await?;
        self.commit_events(tx).await
    }

    /// Every agent of the account with its live devices and availability, and the account's
    /// last event `seq`, from one snapshot.
    pub async fn presence(&self, account_id: &str) -> BackendResult<(i64, Vec<PresenceAgent>)> {
        let _op = self.op();
        let mut c = self.client().await?;
        let tx = self.snapshot(&mut c).await?;
        let seq: i64 = tx
            .query_opt(
                "SELECT seq FROM event_seqs WHERE account_id = $1",
                &[&account_id],
            )
            .await
            .map_err(|e| self.db(e))?
            .map_or(0, |r| r.get(0));
        let q = format!(
            "SELECT {AGENT_COLS}, l.availability, l.at, \
             (SELECT coalesce(json_agg(s.device ORDER BY s.created_at), '[]'::json) \
              FROM sessions s WHERE s.agent_id = agents.id AND s.ended_at IS NULL) \
             FROM agents LEFT JOIN LATERAL (SELECT availability, at FROM availability_log \
             WHERE agent_id = agents.id ORDER BY at DESC, id DESC LIMIT 1) l ON true \
             WHERE agents.account_id = $1 ORDER BY agents.name, agents.id"
        );
        let rows = tx.query(&q, &[&account_id]).await.map_err(|e| self.db(e))?;
        let n = AGENT_COLS.split(',').count();
        let mut agents = Vec::with_capacity(rows.len());
        for r in &rows {
            let a = agent_row(r)?;
            let devices: Vec<Device> = from_json(r.get(n + 2))?;
            let (availability, since) = match r.get::<_, Option<i16>>(n) {
                Some(av) => (
                    decode::<Availability>(av.into())
                        .ok_or_else(|| BackendError::internal("unknown availability code"))?,
                    r.get::<_, Option<i64>>(n + 1),
                ),
                None => (Availability::of(a.status.status, !devices.is_empty()), None),
            };
            agents.push(PresenceAgent {
                id: a.id,
                name: a.name,
                groups: a.groups,
                status: a.status,
                availability,
                since,
                devices,
            });
        }
        tx.commit().await.map_err(|e| self.db(e))?;
        Ok((seq, agents))
    }

    /// The account's events after `after`, in `seq` order, at most `limit`.
    pub async fn events_after(
        &self,
        account_id: &str,
        after: i64,
        limit: u32,
    ) -> BackendResult<Vec<Stored>> {
        self.read_all(
            "SELECT seq, type, at, data FROM events \
             WHERE account_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            &[&account_id, &after, &i64::from(limit)],
            |r| {
                Ok(Stored {
                    seq: r.get(0),
                    kind: EventType::parse(r.get(1))
                        .ok_or_else(|| BackendError::internal("unknown event type"))?,
                    at: r.get(2),
                    data: r.get(3),
                })
            },
        )
        .await
    }

    /// Deletes events older than `before`, and webhook deliveries done with (delivered or
    /// dead) of events from before it, in batches; how many.
    pub async fn prune_events(&self, before: i64) -> BackendResult<u64> {
        let _op = self.op();
        let c = self.client().await?;
        let mut total = 0;
        loop {
            let n = c
                .execute(
                    "DELETE FROM events WHERE (account_id, seq) IN \
                     (SELECT account_id, seq FROM events WHERE at < $1 LIMIT 1000)",
                    &[&before],
                )
                .await
                .map_err(|e| self.db(e))?
                + c.execute(
                    "DELETE FROM webhook_deliveries WHERE (webhook_id, seq) IN \
                     (SELECT webhook_id, seq FROM webhook_deliveries \
                      WHERE at < $1 AND state <> 0 LIMIT 1000)",
                    &[&before],
                )
                .await
                .map_err(|e| self.db(e))?;
            total += n;
            if n < 1000 {
                return Ok(total);
            }
        }
    }
}

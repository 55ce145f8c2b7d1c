//! The account's events in SQLite: recorded inside the transaction of the change that caused
//! them, read back by `seq` for the event stream, with the presence snapshot they follow.
//!
//! Guarantees:
//! - [`emit`] gives each event the account's next `seq` (`event_seqs`, raised in the
//!   same transaction), so `seq` grows by one per event in commit order and an event exists
//!   exactly when its change was committed.
//! - [`Store::presence`] reads every agent, its live devices, its last availability row and
//!   the account's `seq` in one read transaction: the snapshot is the state after event
//!   `seq` and before the next.

use presence_protocol::{
    Availability, Device, EndReason, EventType, Platform, PresenceAgent, StatusView,
};
use rusqlite::{Connection, OptionalExtension, params};

use super::reads::{AGENT_COLS, agent_row};
use super::{Store, StoreResult};
use crate::history::events::{self, NewEvent, Stored};
use crate::history::query::decode;

fn bad(col: usize, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        col,
        rusqlite::types::Type::Text,
        format!("unknown {what}").into(),
    )
}

/// Records `e` under the account's next `seq`; answers the `seq`.
pub(super) fn emit(tx: &Connection, account_id: &str, e: &NewEvent) -> StoreResult<i64> {
    let seq: i64 = tx
        .prepare_cached(
            "INSERT INTO event_seqs (account_id, seq) VALUES (?1, 1)
             ON CONFLICT (account_id) DO UPDATE SET seq = seq + 1 RETURNING seq",
        )?
        .query_row([account_id], |r| r.get(0))?;
    tx.prepare_cached(
        "INSERT INTO events (account_id, seq, type, at, data) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![account_id, seq, e.kind.as_str(), e.at, e.data])?;
    Ok(seq)
}

/// Records an agent's applied status change (`agent.status`).
pub(super) fn status(tx: &Connection, agent_id: &str, s: &StatusView, at: i64) -> StoreResult<()> {
    let account: Option<String> = tx
        .prepare_cached("SELECT account_id FROM agents WHERE id = ?1")?
        .query_row([agent_id], |r| r.get(0))
        .optional()?;
    match account {
        Some(account) => emit(tx, &account, &events::status(agent_id, s, at)).map(drop),
        None => Ok(()),
    }
}

/// Records that a session started (`ended: None`) or ended.
pub(super) fn session(
    tx: &Connection,
    session_id: &str,
    ended: Option<EndReason>,
    at: i64,
) -> StoreResult<()> {
    let found = tx
        .prepare_cached(
            "SELECT account_id, agent_id, device_id, platform, device_name, app_version
             FROM sessions WHERE id = ?1",
        )?
        .query_row([session_id], |r| {
            let platform: String = r.get(3)?;
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                Device {
                    id: r.get(2)?,
                    platform: platform
                        .parse::<Platform>()
                        .map_err(|_| bad(3, "platform"))?,
                    name: r.get(4)?,
                    app_version: r.get(5)?,
                },
            ))
        })
        .optional()?;
    let Some((account, agent, device)) = found else {
        return Ok(());
    };
    emit(
        tx,
        &account,
        &events::session(&agent, session_id, &device, ended, at),
    )
    .map(drop)
}

/// The agent's live sessions but `except`.
pub(super) fn live_sessions(
    tx: &Connection,
    agent_id: &str,
    except: Option<&str>,
) -> StoreResult<Vec<String>> {
    tx.prepare_cached(
        "SELECT id FROM sessions
         WHERE agent_id = ?1 AND ended_reason IS NULL AND id IS NOT ?2",
    )?
    .query_map(params![agent_id, except], |r| r.get(0))?
    .collect()
}

/// Deletes a batch of events from before `before`, and of webhook deliveries done with
/// (delivered or dead) of events from before it.
pub(super) fn prune_batch(tx: &Connection, before: i64, batch: i64) -> StoreResult<usize> {
    Ok(tx
        .prepare_cached(
            "DELETE FROM events WHERE (account_id, seq) IN
         (SELECT account_id, seq FROM events WHERE at < ?1 LIMIT ?2)",
        )?
        .execute(params![before, batch])?
        + tx.prepare_cached(
            "DELETE FROM webhook_deliveries WHERE (webhook_id, seq) IN
             (SELECT webhook_id, seq FROM webhook_deliveries WHERE at < ?1 AND state != 0
              LIMIT ?2)",
        )?
        .execute(params![before, batch])?)
}

impl Store {
    /// Every agent of the account with its live devices and availability, and the account's
    /// last event `seq`, as of one moment (see the module's guarantees).
    pub fn presence(&self, account_id: &str) -> StoreResult<(i64, Vec<PresenceAgent>)> {
        self.read(|c| {
            let seq: i64 = c
                .prepare_cached("SELECT seq FROM event_seqs WHERE account_id = ?1")?
                .query_row([account_id], |r| r.get(0))
                .optional()?
                .unwrap_or(0);
            let rows = c
                .prepare_cached(&format!(
                    "SELECT {AGENT_COLS} FROM agents WHERE account_id = ?1 ORDER BY name, id"
                ))?
                .query_map([account_id], agent_row)?
                .collect::<StoreResult<Vec<_>>>()?;
            let mut devices = c.prepare_cached(
                "SELECT device_id, platform, device_name, app_version FROM sessions
                 WHERE agent_id = ?1 AND ended_reason IS NULL ORDER BY created_at",
            )?;
            let mut last = c.prepare_cached(
                "SELECT availability, at FROM availability_log WHERE agent_id = ?1
                 ORDER BY at DESC, rowid DESC LIMIT 1",
            )?;
            let mut agents = Vec::with_capacity(rows.len());
            for a in rows {
                let devs = devices
                    .query_map([&a.id], |r| {
                        let platform: String = r.get(1)?;
                        Ok(Device {
                            id: r.get(0)?,
                            platform: platform
                                .parse::<Platform>()
                                .map_err(|_| bad(1, "platform"))?,
                            name: r.get(2)?,
                            app_version: r.get(3)?,
                        })
                    })?
                    .collect::<StoreResult<Vec<_>>>()?;
                let logged = last
                    .query_row([&a.id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
                    .optional()?;
                let (availability, since) = match logged {
                    Some((av, at)) => (
                        decode::<Availability>(av).ok_or_else(|| bad(0, "availability"))?,
                        Some(at),
                    ),
                    None => (Availability::of(a.status.status, !devs.is_empty()), None),
                };
                agents.push(PresenceAgent {
                    id: a.id,
                    name: a.name,
                    groups: a.groups,
                    status: a.status,
                    availability,
                    since,
                    devices: devs,
                });
            }
            Ok((seq, agents))
        })
    }

    /// The account's events after `after`, in `seq` order, at most `limit`.
    pub fn events_after(
        &self,
        account_id: &str,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<Stored>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT seq, type, at, data FROM events
                 WHERE account_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )?
            .query_map(params![account_id, after, limit], |r| {
                let kind: String = r.get(1)?;
                Ok(Stored {
                    seq: r.get(0)?,
                    kind: EventType::parse(&kind).ok_or_else(|| bad(1, "event type"))?,
                    at: r.get(2)?,
                    data: r.get(3)?,
                })
            })?
            .collect()
        })
    }
}

//! The outbox: changes a device has promised to deliver.
//!
//! Modelled on matrix-rust-sdk's send queue. What the rest of the engine (and the user) can
//! rely on:
//!
//! # Guarantees
//!
//! - **Durable before acknowledged.** An op is committed to SQLite (WAL, `synchronous=FULL`)
//!   inside the same transaction that coalesces it, before
//!   [`set_status`](crate::PresenceClient::set_status) returns. A crash or `kill -9` at any
//!   later moment loses nothing: the op is reloaded on the next
//!   [`open`](crate::PresenceClient::open) and sent.
//! - **Exactly once on the server.** Every op has a UUID v7 `op_id`, generated once and stored
//!   with it. A resend after a lost answer (or after a crash between send and answer) carries
//!   the same `op_id`, and the server answers a repeated `op_id` with its first answer and no
//!   new version. So "at least once" on the wire is "exactly once" in effect.
//! - **Latest intent wins, not latest delivery.** A status op carries `intent_at`: the moment
//!   the user chose, on the server's clock (see [`clock`](crate::clock)). An op delivered
//!   late, after another device made a newer choice, is answered `applied: false`; the device
//!   then *adopts* the server's status and drops the op. That is not an error and the op is
//!   not wedged: the user's newer choice elsewhere is what they want.
//! - **Coalescing.** Only the latest status intent matters, so a new status op replaces every
//!   queued, not-yet-sent status op of the same agent (and any wedged one). A thousand toggles
//!   made offline cost one request. An op already on the wire is never replaced (its answer is
//!   unknown); the new one queues behind it and, being later, wins.
//! - **Order.** Ops go out one at a time in the order stored. A logout made offline queues an
//!   `end_session` op *behind* the status ops of that session, so the last status chosen
//!   before logging out still reaches the server before the session ends.
//!
//! # Op kinds
//!
//! - `set_status`: `PUT /v1/me/status`. Sent with the session token of its agent; logging in
//!   again as the same agent re-stamps queued ops with the new token.
//! - `end_session`: `DELETE /v1/session` with the token of a session already cleared locally
//!   (logout while the server was unreachable). A 401 means it has ended anyway: done.
//! - `register_push`: `PUT /v1/session/push`, so the push token reaches the server even if
//!   it was registered offline. Coalesces like status ops.
//!
//! # Error classes
//!
//! Every failure falls in one class ([`ErrorClass`](crate::error::ErrorClass)):
//!
//! - **Transient**: connect/read failures, timeouts, 5xx, 429, a 2xx with a garbled body, or
//!   any status without the protocol's `{"error": ...}` body (a proxy's error page, a wrong
//!   URL: not the presence server judging the op).
//!   The op stays at the head of the queue and is retried after a delay drawn by
//!   [`Backoff`]: capped exponential backoff with *full jitter* (uniform in
//!   `[0, min(cap, base·2^attempt)]`), so a fleet of devices coming back after an outage does
//!   not reconnect in lockstep. A `Retry-After` from the server is a floor on that delay.
//! - **Unauthorized** (401): the session is over. If the op belongs to the current session,
//!   the session is marked expired and surfaced; the op stays and is delivered after logging
//!   in again as the same agent. If it belongs to an older session, it can never be delivered
//!   and is dropped (for `end_session`, that is success).
//! - **Permanent** (any other 4xx): the server refuses the op as it stands. It is **wedged**:
//!   kept, listed in the snapshot's `outbox.wedged` with the server's code and detail, and
//!   skipped by the queue. The user chooses
//!   [`retry_wedged`](crate::PresenceClient::retry_wedged) or
//!   [`discard_wedged`](crate::PresenceClient::discard_wedged). A newer status choice
//!   discards a wedged status op by coalescing.
//!
//! # How it wakes
//!
//! The queue has no thread of its own. The engine actor runs one step, `drive`, after every
//! event it handles: a command (`set_status` enqueues and returns), the answer of a request
//! task, a timer, a network hint. `drive` sends the first sendable op if nothing is in flight,
//! the network is available and the op's retry time has come; the request runs in its own task
//! and its answer comes back to the actor as another event. The actor sleeps until the
//! earliest of its timers (next retry, next heartbeat, next reconnect) or the next event, on
//! tokio's clock.
//!
//! What makes it try *now* rather than at the retry time: `set_network_available(true)` (the
//! retry counter resets too: the outage that caused it is over), logging in, logging out (a
//! CLI exits right after, so `logout` works the queue and returns once `end_session` was
//! tried or the queue stalls), `retry_wedged`, `background_refresh`, and any other request
//! getting through (a heartbeat answered, the event stream reopened: the server is back),
//! unless the server itself asked for the wait with `Retry-After`.
//!
//! While the OS reports no network, nothing is attempted at all: no retries are burnt on a
//! radio that is off, and the first try happens the moment the network returns.
//!
//! # State and logic
//!
//! `Outbox` below holds the queue's state (the ops in store order, the one on the wire, the
//! backoff, the callers waiting on an op); the handlers after it (`set_status`, `on_op`,
//! `drive_outbox`, ...) are the engine actor's, written here beside this statement of what
//! they keep. Every write they make to the `outbox` table is a durable one (see the store).

use std::collections::HashMap;
use std::time::Duration;

use presence_protocol::{
    AgentStatus, Millis, Mode, PushRegistration, SetStatusRequest, SetStatusResponse,
};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::engine::{Engine, Reply, TaskDone};
use crate::error::{Error, ErrorClass};
use crate::snapshot::{LastError, Lifecycle, OpKind};
use crate::status::StatusRequest;

/// Capped exponential backoff with full jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

/// A `Retry-After` longer than this is treated as this, so a misconfigured proxy cannot park
/// a device for days.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

impl Backoff {
    /// The upper bound of the delay before retry number `attempt + 1` (attempt counts the
    /// failures so far, starting at 0): `min(cap, base · 2^attempt)`.
    pub fn window(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// A delay drawn uniformly from `[0, window(attempt)]`, raised to `retry_after` (capped at
    /// [`MAX_RETRY_AFTER`]) when the server asked for one.
    pub fn delay(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        rng: &mut impl Rng,
    ) -> Duration {
        let window = self.window(attempt).as_millis() as u64;
        let jittered = Duration::from_millis(rng.random_range(0..=window));
        match retry_after {
            Some(ra) => jittered.max(ra.min(MAX_RETRY_AFTER)),
            None => jittered,
        }
    }
}

/// What an op does, with its arguments. Stored as JSON in the `body` column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum OpBody {
    SetStatus {
        status: AgentStatus,
        /// On the server's clock; `None` only if the device never heard from the server.
        intent_at: Option<Millis>,
        /// The rest of the user's [`StatusRequest`]; absent in ops stored by older builds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration_ms: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        then: Option<AgentStatus>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        custom_status: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    EndSession,
    RegisterPush {
        push: PushRegistration,
    },
}

impl OpBody {
    /// A status op for `req`, chosen at `intent_at`.
    pub(crate) fn set_status(req: StatusRequest, intent_at: Option<Millis>) -> OpBody {
        OpBody::SetStatus {
            status: req.status,
            intent_at,
            duration_ms: req.duration_ms,
            then: req.then,
            custom_status: req.custom_status,
            note: req.note,
        }
    }

    /// The change a status op carries, and when it was chosen.
    pub(crate) fn status_request(&self) -> Option<(StatusRequest, Option<Millis>)> {
        match self {
            OpBody::SetStatus {
                status,
                intent_at,
                duration_ms,
                then,
                custom_status,
                note,
            } => Some((
                StatusRequest {
                    status: *status,
                    duration_ms: *duration_ms,
                    then: *then,
                    custom_status: custom_status.clone(),
                    note: note.clone(),
                },
                *intent_at,
            )),
            _ => None,
        }
    }

    pub(crate) fn kind(&self) -> OpKind {
        match self {
            OpBody::SetStatus { .. } => OpKind::SetStatus,
            OpBody::EndSession => OpKind::EndSession,
            OpBody::RegisterPush { .. } => OpKind::RegisterPush,
        }
    }
}

/// One stored op.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Op {
    /// Store order (assigned on insert).
    pub seq: i64,
    /// UUID v7, sent to the server for deduplication.
    pub op_id: String,
    pub body: OpBody,
    /// The agent a status op speaks for, so a later login as someone else never sends it.
    pub agent_id: Option<String>,
    /// The session token to send it with.
    pub token: String,
    /// Device wall time at creation, for display and debugging.
    pub created_at: Millis,
    /// `(code, detail)` once the server refused it permanently.
    pub wedged: Option<(String, String)>,
}

impl Op {
    pub(crate) fn new(body: OpBody, agent_id: Option<String>, token: String, now: Millis) -> Op {
        Op {
            seq: 0,
            op_id: uuid::Uuid::now_v7().to_string(),
            body,
            agent_id,
            token,
            created_at: now,
            wedged: None,
        }
    }

    pub(crate) fn kind(&self) -> OpKind {
        self.body.kind()
    }

    pub(crate) fn is_wedged(&self) -> bool {
        self.wedged.is_some()
    }
}

/// The outbox sub-machine's state: the ops in store order and the one on the wire.
pub(crate) struct Outbox {
    /// Every stored op, in send order (a copy of the `outbox` table).
    pub(crate) ops: Vec<Op>,
    /// The op on the wire (never coalesced away: its answer is unknown).
    pub(crate) in_flight: Option<String>,
    /// Consecutive transient failures of the head op (the backoff's attempt count).
    pub(crate) attempts: u32,
    pub(crate) retry_at: Option<Instant>,
    /// The retry time came from the server's `Retry-After`: only the server may shorten it.
    pub(crate) retry_by_server: bool,
    /// Callers waiting for an op to be tried (`logout` waits for its `end_session`).
    pub(crate) waiters: HashMap<String, Vec<Reply<()>>>,
}

impl Outbox {
    pub(crate) fn new(ops: Vec<Op>) -> Outbox {
        Outbox {
            ops,
            in_flight: None,
            attempts: 0,
            retry_at: None,
            retry_by_server: false,
            waiters: HashMap::new(),
        }
    }

    /// Forgets the backoff (the op got an answer, or a new session starts).
    pub(crate) fn reset_backoff(&mut self) {
        self.attempts = 0;
        self.retry_at = None;
        self.retry_by_server = false;
    }
}

impl Engine {
    /// Ends the outbox's backoff wait, unless the server asked for it with `Retry-After`.
    pub(crate) fn retry_ops_now(&mut self) {
        if !self.outbox.retry_by_server {
            self.outbox.retry_at = None;
        }
    }

    /// Answers everyone waiting on an op: the queue cannot make progress right now.
    pub(crate) fn release_op_waiters(&mut self) {
        let waiters: Vec<_> = self.outbox.waiters.drain().flat_map(|(_, w)| w).collect();
        for w in waiters {
            self.respond(w, Ok(()));
        }
    }

    pub(crate) fn set_status(&mut self, req: StatusRequest) -> Result<(), Error> {
        let req = req.validated()?;
        let Some(session) = &self.session.current else {
            return Err(Error::NotLoggedIn);
        };
        let mut op = Op::new(
            OpBody::set_status(req, self.clock.offset().map(|_| self.clock.server_now())),
            Some(session.agent.id.clone()),
            session.token.clone(),
            self.clock.device_now(),
        );
        let removed = self
            .store
            .enqueue_coalescing(&mut op, self.outbox.in_flight.as_deref())?;
        self.outbox.ops.retain(|o| !removed.contains(&o.op_id));
        self.outbox.ops.push(op);
        Ok(())
    }

    pub(crate) fn register_push(&mut self, push: PushRegistration) -> Result<(), Error> {
        let mut op = self.session.current.as_ref().map(|s| {
            Op::new(
                OpBody::RegisterPush { push: push.clone() },
                None,
                s.token.clone(),
                self.clock.device_now(),
            )
        });
        let removed = self
            .store
            .set_push(&push, op.as_mut(), self.outbox.in_flight.as_deref())?;
        self.has_push = true;
        self.outbox.ops.retain(|o| !removed.contains(&o.op_id));
        if let Some(op) = op {
            self.outbox.ops.push(op);
        }
        Ok(())
    }

    pub(crate) fn retry_wedged(&mut self, op_id: &str) -> Result<(), Error> {
        let Some(op) = self
            .outbox
            .ops
            .iter_mut()
            .find(|o| o.op_id == op_id && o.is_wedged())
        else {
            return Err(Error::InvalidInput(format!(
                "no wedged change with op_id {op_id}"
            )));
        };
        self.store.unwedge_op(op_id)?;
        op.wedged = None;
        self.outbox.attempts = 0;
        self.retry_ops_now();
        Ok(())
    }

    pub(crate) fn discard_wedged(&mut self, op_id: &str) -> Result<(), Error> {
        if !self
            .outbox
            .ops
            .iter()
            .any(|o| o.op_id == op_id && o.is_wedged())
        {
            return Err(Error::InvalidInput(format!(
                "no wedged change with op_id {op_id}"
            )));
        }
        self.store.remove_op(op_id)?;
        self.outbox.ops.retain(|o| o.op_id != op_id);
        Ok(())
    }

    pub(crate) fn on_op(
        &mut self,
        op_id: String,
        token: String,
        result: Result<Option<SetStatusResponse>, Error>,
    ) {
        self.outbox.in_flight = None;
        let waiters = self.outbox.waiters.remove(&op_id).unwrap_or_default();
        let Some(idx) = self.outbox.ops.iter().position(|o| o.op_id == op_id) else {
            // Removed meanwhile (another process delivered it): nothing to do.
            for w in waiters {
                self.respond(w, Ok(()));
            }
            return;
        };
        match result {
            Ok(resp) => {
                self.reachable = Some(true);
                self.outbox.reset_backoff();
                let registered_push =
                    matches!(self.outbox.ops[idx].body, OpBody::RegisterPush { .. })
                        && self
                            .session
                            .token()
                            .is_some_and(|t| t == self.outbox.ops[idx].token);
                self.remove_op(idx);
                if registered_push && self.lifecycle == Lifecycle::Background {
                    // The server only grants a background lease to a session it can wake by
                    // push. A registration that lands after the app went to the background
                    // (a token that arrives late) would otherwise leave the session on the
                    // active lease with no heartbeat until it lapses: ask for the background
                    // lease now.
                    self.heartbeat.forced = Some(Mode::Background);
                }
                if let Some(resp) = resp {
                    if !resp.applied {
                        tracing::info!(
                            op_id,
                            server_status = %resp.status.status,
                            "status change superseded by a newer intent; adopting the server's"
                        );
                    }
                    self.apply_status(resp.status);
                }
                self.clear_error();
            }
            Err(e) => match e.class() {
                ErrorClass::Transient { retry_after } => {
                    self.retry_op_later(&op_id, &e, retry_after)
                }
                ErrorClass::Local => self.retry_op_later(&op_id, &e, None),
                ErrorClass::Unauthorized => {
                    self.reachable = Some(true);
                    // Compare with the op's token *now*: a login while this was on the wire
                    // may have re-stamped it with the new session's token.
                    let op_token = self.outbox.ops[idx].token.clone();
                    let current = self
                        .session
                        .current
                        .as_ref()
                        .is_some_and(|s| s.token == op_token);
                    if current && op_token == token {
                        // Kept: delivered after logging in again as the same agent.
                        self.expire_session(e.to_string());
                    } else if current {
                        tracing::debug!(op_id, "op re-stamped by a new login; resending");
                    } else {
                        tracing::info!(op_id, "dropping an op of a session that has ended");
                        self.remove_op(idx);
                    }
                }
                ErrorClass::Permanent => {
                    self.reachable = Some(true);
                    self.outbox.reset_backoff();
                    let (code, detail) = e.code_and_detail();
                    if self.outbox.ops[idx].kind() == OpKind::EndSession {
                        // The user already logged out locally; nothing they could do with it.
                        tracing::warn!(op_id, %code, %detail, "server refused end_session; dropping");
                        self.remove_op(idx);
                    } else {
                        tracing::warn!(op_id, %code, %detail, "outbox op wedged");
                        if detail.contains("custom_status") {
                            // The account's list changed under the user: show the new one.
                            self.session.me_wanted = true;
                        }
                        if let Err(se) = self.store.wedge_op(&op_id, &code, &detail) {
                            tracing::error!("storing a wedged op: {se}");
                        }
                        self.outbox.ops[idx].wedged = Some((code.clone(), detail.clone()));
                    }
                    self.last_error = Some(LastError { code, detail });
                    self.last_error_sticky = false;
                }
            },
        }
        for w in waiters {
            self.respond(w, Ok(()));
        }
    }

    /// Keeps the op at the head of the queue and schedules the next attempt.
    pub(crate) fn retry_op_later(&mut self, op_id: &str, e: &Error, retry_after: Option<Duration>) {
        self.note_reachability(e);
        let delay = self
            .backoff
            .delay(self.outbox.attempts, retry_after, &mut self.rng);
        self.outbox.attempts = self.outbox.attempts.saturating_add(1);
        self.outbox.retry_at = Some(Instant::now() + delay);
        self.outbox.retry_by_server = retry_after.is_some();
        tracing::debug!(op_id, error = %e, ?delay, "outbox op failed, will retry");
        self.set_error(e);
        self.release_op_waiters();
    }

    pub(crate) fn drive_outbox(&mut self, now: Instant) {
        if self.outbox.in_flight.is_some() || !self.network {
            return;
        }
        if self.outbox.retry_at.is_some_and(|at| now < at) {
            return;
        }
        let Some(api) = self.api.clone() else { return };
        let Some(op) = self.next_sendable().cloned() else {
            return;
        };
        self.outbox.in_flight = Some(op.op_id.clone());
        self.tasks.spawn(async move {
            let result = match &op.body {
                OpBody::SetStatus {
                    status,
                    intent_at,
                    duration_ms,
                    then,
                    custom_status,
                    note,
                } => {
                    let body = SetStatusRequest {
                        duration_ms: *duration_ms,
                        then: *then,
                        custom_status: custom_status.clone(),
                        note: note.clone(),
                        ..SetStatusRequest::new(*status, op.op_id.clone(), *intent_at)
                    };
                    api.set_status(&op.token, &body).await.map(Some)
                }
                OpBody::EndSession => api.end_session(&op.token).await.map(|()| None),
                OpBody::RegisterPush { push } => api.put_push(&op.token, push).await.map(|()| None),
            };
            TaskDone::Op {
                op_id: op.op_id,
                token: op.token,
                result,
            }
        });
    }

    /// The first op, in store order, that may go out now. Ops of the current session wait
    /// while it is expired (they will be re-stamped at the next login); ops of older
    /// sessions go out with their own token.
    pub(crate) fn next_sendable(&self) -> Option<&Op> {
        let current = self.session.current.as_ref();
        self.outbox.ops.iter().find(|o| {
            !o.is_wedged()
                && match current {
                    Some(s) if s.token == o.token => !s.expired,
                    _ => true,
                }
        })
    }

    pub(crate) fn remove_op(&mut self, idx: usize) {
        let op = self.outbox.ops.remove(idx);
        if let Err(e) = self.store.remove_op(&op.op_id) {
            // Delivered but still on disk: it will be resent after a restart, which the
            // server's op_id dedup makes harmless.
            tracing::error!(op_id = op.op_id, "removing a delivered op: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_windows_double_up_to_the_cap() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
        };
        let w: Vec<u128> = (0..8).map(|a| b.window(a).as_millis()).collect();
        assert_eq!(w, vec![100, 200, 400, 800, 1600, 2000, 2000, 2000]);
        assert_eq!(b.window(u32::MAX), Duration::from_secs(2));
    }

    #[test]
    fn backoff_delays_stay_within_their_window_and_spread_out() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for attempt in 0..40 {
            let mut seen = std::collections::HashSet::new();
            for _ in 0..50 {
                let d = b.delay(attempt, None, &mut rng);
                assert!(d <= b.window(attempt), "attempt {attempt}: {d:?}");
                seen.insert(d);
            }
            // Full jitter: delays are spread, not one fixed value.
            assert!(seen.len() > 10, "attempt {attempt}: {seen:?}");
        }
    }

    #[test]
    fn retry_after_is_a_floor_but_bounded() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for _ in 0..100 {
            let d = b.delay(0, Some(Duration::from_secs(30)), &mut rng);
            assert_eq!(d, Duration::from_secs(30));
        }
        let d = b.delay(0, Some(Duration::from_secs(86_400 * 3)), &mut rng);
        assert_eq!(d, MAX_RETRY_AFTER);
    }

    #[test]
    fn op_ids_are_time_ordered_uuid_v7() {
        let a = Op::new(OpBody::EndSession, None, "t".into(), 0);
        let b = Op::new(OpBody::EndSession, None, "t".into(), 0);
        let u = uuid::Uuid::parse_str(&a.op_id).unwrap();
        assert_eq!(u.get_version_num(), 7);
        assert!(a.op_id < b.op_id);
    }

    #[test]
    fn op_bodies_round_trip_through_json() {
        let body = OpBody::set_status(StatusRequest::new(AgentStatus::Busy), Some(5));
        let s = serde_json::to_string(&body).unwrap();
        assert_eq!(s, r#"{"kind":"set_status","status":"busy","intent_at":5}"#);
        assert_eq!(serde_json::from_str::<OpBody>(&s).unwrap(), body);

        let timed = OpBody::set_status(
            StatusRequest {
                duration_ms: Some(1_800_000),
                then: Some(AgentStatus::Online),
                custom_status: Some("lunch".into()),
                note: Some("back soon".into()),
                ..StatusRequest::new(AgentStatus::Busy)
            },
            Some(5),
        );
        let s = serde_json::to_string(&timed).unwrap();
        assert_eq!(serde_json::from_str::<OpBody>(&s).unwrap(), timed);
    }

    /// An op stored by a build before timed statuses reads as a plain change.
    #[test]
    fn a_status_op_stored_without_timing_fields_reads_as_untimed() {
        let old = r#"{"kind":"set_status","status":"offline","intent_at":7}"#;
        let (req, at) = serde_json::from_str::<OpBody>(old)
            .unwrap()
            .status_request()
            .unwrap();
        assert_eq!(req, StatusRequest::new(AgentStatus::Offline));
        assert_eq!(at, Some(7));
    }
}

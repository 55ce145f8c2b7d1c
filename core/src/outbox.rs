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

use std::time::Duration;

use presence_protocol::{AgentStatus, Millis, PushRegistration};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::snapshot::OpKind;

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
    },
    EndSession,
    RegisterPush {
        push: PushRegistration,
    },
}

impl OpBody {
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
        let body = OpBody::SetStatus {
            status: AgentStatus::Busy,
            intent_at: Some(5),
        };
        let s = serde_json::to_string(&body).unwrap();
        assert_eq!(s, r#"{"kind":"set_status","status":"busy","intent_at":5}"#);
        assert_eq!(serde_json::from_str::<OpBody>(&s).unwrap(), body);
    }
}

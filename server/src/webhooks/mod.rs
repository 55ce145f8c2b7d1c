//! Webhooks to the customer's backend (PROTOCOL.md, third part, "Events to the customer's
//! backend: webhooks").
//!
//! Guarantees:
//! - Events are the account's events table, written in the transaction of the change that
//!   caused them ([`crate::history::events`]); an endpoint holds only a cursor into it (the
//!   last `seq` it is done with), so attaching endpoints adds nothing to a status change's
//!   own transaction.
//! - For one endpoint, events go out in `seq` order: the next is sent only once the one
//!   before was answered 2xx or given up ([`backoff`]). One node at a time holds an
//!   endpoint (a lease in the store, taken with `SKIP LOCKED` in PostgreSQL), so two
//!   attempts of one endpoint never run at once; a lease that lapses (a node killed
//!   mid-delivery) lets another node send the same event again with the same
//!   `webhook-id`: delivery is at least once.
//! - Every rule an endpoint follows is here, once: what may be made and changed ([`rules`]),
//!   when to try again ([`backoff`]), what one attempt sends and how its answer counts
//!   ([`deliver`]), and the loop that runs them ([`worker`]); the stores only keep rows.

pub mod backoff;
pub mod deliver;
pub mod metrics;
pub mod rules;
pub mod worker;

use presence_protocol::{Delivery, DeliveryState, DisabledReason, EventType, Webhook};

use crate::history::events::Stored;

/// The most endpoints an account has.
pub const MAX_WEBHOOKS: usize = 10;

/// Which event types an endpoint takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Events {
    All,
    Only(Vec<EventType>),
}

impl Events {
    pub fn takes(&self, kind: EventType) -> bool {
        match self {
            Events::All => true,
            Events::Only(kinds) => kinds.contains(&kind),
        }
    }

    /// As stored: `*`, or the names joined by commas.
    pub fn to_column(&self) -> String {
        self.names().join(",")
    }

    pub fn from_column(s: &str) -> Events {
        if s == presence_protocol::webhooks::ALL_EVENTS {
            return Events::All;
        }
        Events::Only(s.split(',').filter_map(EventType::parse).collect())
    }

    /// As the wire lists them.
    pub fn names(&self) -> Vec<String> {
        match self {
            Events::All => vec![presence_protocol::webhooks::ALL_EVENTS.to_owned()],
            Events::Only(kinds) => kinds.iter().map(|k| k.as_str().to_owned()).collect(),
        }
    }
}

/// An endpoint as stored (its delivery cursor and lease stay in the store).
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookRow {
    pub id: String,
    pub account_id: String,
    pub url: String,
    pub events: Events,
    pub description: Option<String>,
    pub enabled: bool,
    pub disabled_reason: Option<DisabledReason>,
    /// `whsec_...`: signs every attempt.
    pub secret: String,
    /// The secret before the last rotation, signing beside `secret` until `previous_until`.
    pub previous_secret: Option<String>,
    pub previous_until: Option<i64>,
    pub created_at: i64,
}

impl WebhookRow {
    /// An enabled endpoint of `acc_1` taking every event, signed with `secret` (tests).
    #[cfg(test)]
    pub(crate) fn sample(secret: &str) -> WebhookRow {
        WebhookRow {
            id: "wh_1".into(),
            account_id: "acc_1".into(),
            url: "https://example.com/".into(),
            events: Events::All,
            description: None,
            enabled: true,
            disabled_reason: None,
            secret: secret.into(),
            previous_secret: None,
            previous_until: None,
            created_at: 0,
        }
    }

    /// The endpoint as listed: never a secret.
    pub fn to_wire(&self) -> Webhook {
        Webhook {
            id: self.id.clone(),
            url: self.url.clone(),
            events: self.events.names(),
            description: self.description.clone(),
            enabled: self.enabled,
            disabled_reason: self.disabled_reason,
            created_at: self.created_at,
            previous_secret_until: self.previous_until,
        }
    }

    /// The secrets that sign an attempt at `now`: the current one, and the one before a
    /// rotation while it is still within its day.
    pub fn signing_secrets(&self, now: i64) -> Vec<&str> {
        let mut s = vec![self.secret.as_str()];
        if let (Some(old), Some(until)) = (&self.previous_secret, self.previous_until)
            && now < until
        {
            s.push(old);
        }
        s
    }
}

/// A change to the account's endpoints, planned by [`rules`] and kept by a store.
#[derive(Debug, Clone)]
pub enum WebhookEdit {
    /// A new endpoint; it takes the events after the account's last `seq` when it is made.
    /// Refused (`409`) when the account already has [`MAX_WEBHOOKS`].
    Create(WebhookRow),
    /// The endpoint's fields as given (its cursor stays).
    Update(WebhookRow),
    /// The endpoint and its deliveries go.
    Delete { account_id: String, id: String },
}

/// The event id every attempt of one event carries as `webhook-id`: unique per account and
/// `seq`, so a receiver deduplicates by it.
pub fn event_id(account_id: &str, seq: i64) -> String {
    format!("evt_{}_{seq}", account_id.trim_start_matches("acc_"))
}

/// The `seq` an event id names, if it is one of `account_id`'s.
pub fn seq_of(account_id: &str, event_id: &str) -> Option<i64> {
    let (account, seq) = event_id.strip_prefix("evt_")?.rsplit_once('_')?;
    (account == account_id.trim_start_matches("acc_"))
        .then(|| seq.parse().ok())
        .flatten()
}

/// One event to send to one endpoint, as a worker holds it under the endpoint's lease.
#[derive(Debug, Clone)]
pub struct Job {
    pub webhook: WebhookRow,
    /// The account's slug (the body's `account`).
    pub slug: String,
    pub event: Stored,
    /// Attempts made before this one.
    pub attempts: u32,
    /// Since when the event counts as tried (its time, or a manual retry's): it is given up
    /// after a failed attempt [`backoff::Policy::give_up_after`] past this.
    pub since: i64,
    /// A dead event retried by hand (the cursor is already past it).
    pub manual: bool,
}

/// What came of one attempt, as the store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub enum Settle {
    /// Answered 2xx.
    Delivered { status: u16, at: i64 },
    /// Not answered 2xx: tried again at `next_at`, or dead when `next_at` is `None`.
    Failed {
        status: Option<u16>,
        error: String,
        at: i64,
        next_at: Option<i64>,
        /// `410 Gone`: the endpoint is disabled at once and the event stays pending.
        gone: bool,
    },
    /// Not attempted (no outbound slot free): the lease is given back.
    Released,
}

/// What a store keeps for a [`Settle`]: the delivery row's state and fields, and what
/// becomes of the endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Effect {
    pub state: DeliveryState,
    pub at: i64,
    pub status: Option<u16>,
    pub error: Option<String>,
    /// The delivery's next attempt (pending only).
    pub next_at: Option<i64>,
    /// The endpoint's cursor moves past the event (delivered or dead, not a manual retry).
    pub advance: bool,
    /// The endpoint is disabled (`410`).
    pub gone: bool,
}

impl Settle {
    /// What the store keeps for this outcome of `job`; `None` for a lease given back.
    pub fn effect(&self, job: &Job) -> Option<Effect> {
        Some(match self {
            Settle::Released => return None,
            Settle::Delivered { status, at } => Effect {
                state: DeliveryState::Ok,
                at: *at,
                status: Some(*status),
                error: None,
                next_at: None,
                advance: !job.manual,
                gone: false,
            },
            Settle::Failed {
                status,
                error,
                at,
                next_at,
                gone,
            } => Effect {
                state: if next_at.is_some() {
                    DeliveryState::Pending
                } else {
                    DeliveryState::Dead
                },
                at: *at,
                status: *status,
                error: Some(error.clone()),
                // A gone endpoint's event waits for the endpoint to be enabled again.
                next_at: next_at.filter(|_| !gone),
                advance: next_at.is_none() && !job.manual,
                gone: *gone,
            },
        })
    }
}

/// What a store says to an endpoint edit.
#[derive(Debug, PartialEq, Eq)]
pub enum Edited {
    Done,
    TooMany,
    NotFound,
}

impl Edited {
    /// The answer to the edit: past [`MAX_WEBHOOKS`] `409`, an unknown endpoint `404`.
    pub fn answer(self) -> crate::backend::BackendResult<()> {
        use crate::backend::BackendError;
        match self {
            Edited::Done => Ok(()),
            Edited::TooMany => Err(BackendError::conflict(format!(
                "an account has at most {MAX_WEBHOOKS} webhook endpoints"
            ))),
            Edited::NotFound => Err(BackendError::not_found("webhook")),
        }
    }
}

/// What a worker's claim found: the jobs it now holds, and when the next endpoint that
/// waits on a retry is due (to sleep until then).
#[derive(Debug, Default)]
pub struct Claims {
    pub jobs: Vec<Job>,
    pub next_due: Option<i64>,
    /// Events of the accounts' enabled endpoints not yet done with (each endpoint's
    /// distance to its account's last `seq`).
    pub backlog: i64,
    /// Enabled endpoints in the store: with none, a worker need not look at every commit.
    pub endpoints: i64,
}

/// A delivery row as a store reads it, before the listing merges in events not yet tried.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRow {
    pub seq: i64,
    pub kind: EventType,
    pub at: i64,
    pub state: DeliveryState,
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub last_at: Option<i64>,
    pub next_at: Option<i64>,
}

/// Delivery states as stored.
pub fn state_code(s: DeliveryState) -> i64 {
    match s {
        DeliveryState::Pending => 0,
        DeliveryState::Ok => 1,
        DeliveryState::Dead => 2,
    }
}

pub fn state_of(code: i64) -> Option<DeliveryState> {
    match code {
        0 => Some(DeliveryState::Pending),
        1 => Some(DeliveryState::Ok),
        2 => Some(DeliveryState::Dead),
        _ => None,
    }
}

/// The deliveries list: rows as stored, and (when pending ones are asked for) the events
/// after the cursor that the endpoint takes and has not tried yet; newest first, at most
/// `limit`.
pub fn listing(
    account_id: &str,
    webhook: &WebhookRow,
    mut rows: Vec<DeliveryRow>,
    upcoming: &[Stored],
    state: Option<DeliveryState>,
    limit: usize,
) -> Vec<Delivery> {
    if matches!(state, None | Some(DeliveryState::Pending)) {
        for e in upcoming {
            if webhook.events.takes(e.kind) && !rows.iter().any(|r| r.seq == e.seq) {
                rows.push(DeliveryRow {
                    seq: e.seq,
                    kind: e.kind,
                    at: e.at,
                    state: DeliveryState::Pending,
                    attempts: 0,
                    last_status: None,
                    last_error: None,
                    last_at: None,
                    next_at: None,
                });
            }
        }
    }
    rows.retain(|r| state.is_none_or(|s| s == r.state));
    rows.sort_by_key(|r| std::cmp::Reverse(r.seq));
    rows.truncate(limit);
    rows.into_iter()
        .map(|r| Delivery {
            event_id: event_id(account_id, r.seq),
            seq: r.seq,
            kind: r.kind,
            at: r.at,
            state: r.state,
            attempts: r.attempts,
            last_status: r.last_status,
            last_error: r.last_error,
            last_attempt_at: r.last_at,
            next_attempt_at: r.next_at,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_id_names_its_account_and_seq_and_nothing_else() {
        let id = event_id("acc_0123", 42);
        assert_eq!(id, "evt_0123_42");
        assert_eq!(seq_of("acc_0123", &id), Some(42));
        assert_eq!(seq_of("acc_9999", &id), None);
        assert_eq!(seq_of("acc_0123", "evt_0123_x"), None);
        assert_eq!(seq_of("acc_0123", "0123_42"), None);
    }

    fn job(manual: bool) -> Job {
        Job {
            webhook: WebhookRow::sample("s"),
            slug: "acme".into(),
            event: Stored {
                seq: 9,
                kind: EventType::AgentStatus,
                at: 1,
                data: "{}".into(),
            },
            attempts: 2,
            since: 1,
            manual,
        }
    }

    #[test]
    fn an_outcome_moves_the_cursor_only_past_a_delivered_or_dead_event_in_line() {
        let failed = |next_at, gone| Settle::Failed {
            status: Some(500),
            error: "answered 500".into(),
            at: 5,
            next_at,
            gone,
        };
        let ok = Settle::Delivered { status: 204, at: 5 }
            .effect(&job(false))
            .unwrap();
        assert_eq!(
            (ok.state, ok.advance, ok.next_at),
            (DeliveryState::Ok, true, None)
        );
        let retry = failed(Some(50), false).effect(&job(false)).unwrap();
        assert_eq!(
            (retry.state, retry.advance, retry.next_at),
            (DeliveryState::Pending, false, Some(50))
        );
        let dead = failed(None, false).effect(&job(false)).unwrap();
        assert_eq!((dead.state, dead.advance), (DeliveryState::Dead, true));
        // A manual retry of an event the cursor passed long ago never moves it.
        assert!(!failed(None, false).effect(&job(true)).unwrap().advance);
        assert!(
            !Settle::Delivered { status: 200, at: 5 }
                .effect(&job(true))
                .unwrap()
                .advance
        );
        // 410: disabled, and the event waits, with no attempt due, for it to be enabled.
        let gone = failed(Some(5), true).effect(&job(false)).unwrap();
        assert_eq!(
            (gone.state, gone.gone, gone.next_at, gone.advance),
            (DeliveryState::Pending, true, None, false)
        );
        assert_eq!(Settle::Released.effect(&job(false)), None);
    }

    #[test]
    fn event_filters_round_trip_through_their_column() {
        for e in [
            Events::All,
            Events::Only(vec![EventType::AgentAvailability, EventType::SessionEnded]),
        ] {
            assert_eq!(Events::from_column(&e.to_column()), e);
        }
        assert!(Events::All.takes(EventType::ChatboxView));
        assert!(!Events::Only(vec![EventType::AgentStatus]).takes(EventType::ChatboxView));
    }

    #[test]
    fn the_previous_secret_signs_only_within_its_day() {
        let row = WebhookRow {
            previous_secret: Some("old".into()),
            previous_until: Some(100),
            ..WebhookRow::sample("new")
        };
        assert_eq!(row.signing_secrets(99), vec!["new", "old"]);
        assert_eq!(row.signing_secrets(100), vec!["new"]);
    }

    #[test]
    fn the_pending_list_shows_events_not_tried_yet_newest_first() {
        let row = |seq, state| DeliveryRow {
            seq,
            kind: EventType::AgentStatus,
            at: seq,
            state,
            attempts: 1,
            last_status: Some(500),
            last_error: None,
            last_at: Some(seq),
            next_at: None,
        };
        let stored = |seq, kind| Stored {
            seq,
            kind,
            at: seq,
            data: "{}".into(),
        };
        let hook = WebhookRow {
            events: Events::Only(vec![EventType::AgentStatus]),
            ..WebhookRow::sample("s")
        };
        let rows = vec![row(3, DeliveryState::Pending), row(2, DeliveryState::Ok)];
        let upcoming = [
            stored(3, EventType::AgentStatus),
            stored(4, EventType::ChatboxView),
            stored(5, EventType::AgentStatus),
        ];
        let pending = listing(
            "acc_1",
            &hook,
            rows.clone(),
            &upcoming,
            Some(DeliveryState::Pending),
            10,
        );
        assert_eq!(
            pending
                .iter()
                .map(|d| (d.seq, d.attempts))
                .collect::<Vec<_>>(),
            vec![(5, 0), (3, 1)]
        );
        let all = listing("acc_1", &hook, rows, &upcoming, None, 2);
        assert_eq!(all.iter().map(|d| d.seq).collect::<Vec<_>>(), vec![5, 3]);
    }
}

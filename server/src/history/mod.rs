//! History: the availability log and the reports computed from it.
//!
//! Guarantees:
//! - [`next`] is the one rule for what the availability log records: a row whenever an
//!   agent's availability ([`Availability::of`] its status and whether a session is live) or
//!   its status differs from the last row logged, never two rows for one state in a row.
//!   Both backends call it inside the transaction that changed the status or the sessions,
//!   so the log never misses an acknowledged change and never holds one that was not made.
//! - A row's time never goes below the agent's previous row ([`Logged::at`] is clamped), so
//!   an agent's rows are ordered by time and their intervals never overlap.
//! - Reports ([`reports`]) are pure functions of the rows, the account's opening hours and
//!   its agents: exact to the millisecond, the open interval counted up to `now`.

pub mod events;
pub mod query;
pub mod reports;
pub mod seed;

use presence_protocol::{AgentStatus, Availability, Cause, EndReason, StatusView};

/// The last row logged for an agent (what [`next`] compares with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Last {
    pub availability: Availability,
    pub status: AgentStatus,
    pub at: i64,
}

/// One row of the availability log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    pub agent_id: String,
    pub at: i64,
    pub availability: Availability,
    pub status: AgentStatus,
    pub cause: Cause,
    /// For `signed_out`: how the last session ended.
    pub ended: Option<EndReason>,
}

/// What an agent is now, as the transaction that changed it sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub status: AgentStatus,
    /// Why the status is what it is.
    pub cause: Cause,
    /// Whether at least one of its sessions is live.
    pub live: bool,
}

impl Now {
    pub fn of(status: &StatusView, live: bool) -> Now {
        Now {
            status: status.status,
            cause: status.cause,
            live,
        }
    }
}

/// The row to log for an agent that is `now` what it is, at `at`, given the `last` row
/// logged (none: the agent's first); `ended` says how its sessions ended when that is what
/// changed. `None`: nothing to log.
pub fn next(
    agent_id: &str,
    last: Option<Last>,
    now: Now,
    at: i64,
    ended: Option<EndReason>,
) -> Option<Logged> {
    let availability = Availability::of(now.status, now.live);
    if let Some(last) = last
        && last.availability == availability
        && last.status == now.status
    {
        return None;
    }
    Some(Logged {
        agent_id: agent_id.to_owned(),
        at: last.map_or(at, |l| at.max(l.at)),
        availability,
        status: now.status,
        cause: now.cause,
        ended: (availability == Availability::SignedOut)
            .then_some(ended)
            .flatten(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(s: AgentStatus) -> StatusView {
        StatusView::manual(s, 1, 0, None)
    }

    fn last(a: Availability, s: AgentStatus, at: i64) -> Option<Last> {
        Some(Last {
            availability: a,
            status: s,
            at,
        })
    }

    #[test]
    fn an_agent_s_first_row_is_always_logged() {
        let row = next(
            "a",
            None,
            Now::of(&view(AgentStatus::Offline), false),
            7,
            None,
        )
        .unwrap();
        assert_eq!(row.availability, Availability::SignedOut);
        assert_eq!(row.at, 7);
    }

    #[test]
    fn nothing_is_logged_when_neither_availability_nor_status_changed() {
        let l = last(Availability::Online, AgentStatus::Online, 5);
        assert_eq!(
            next("a", l, Now::of(&view(AgentStatus::Online), true), 9, None),
            None
        );
    }

    #[test]
    fn a_status_change_while_signed_out_is_logged_with_the_same_availability() {
        let l = last(Availability::SignedOut, AgentStatus::Online, 5);
        let row = next("a", l, Now::of(&view(AgentStatus::Busy), false), 9, None).unwrap();
        assert_eq!(row.availability, Availability::SignedOut);
        assert_eq!(row.status, AgentStatus::Busy);
    }

    #[test]
    fn the_last_session_ending_logs_signed_out_with_how_it_ended() {
        let l = last(Availability::Busy, AgentStatus::Busy, 5);
        let row = next(
            "a",
            l,
            Now::of(&view(AgentStatus::Busy), false),
            9,
            Some(EndReason::Expired),
        )
        .unwrap();
        assert_eq!(row.availability, Availability::SignedOut);
        assert_eq!(row.ended, Some(EndReason::Expired));
    }

    #[test]
    fn a_row_never_goes_before_the_agent_s_previous_one() {
        let l = last(Availability::Online, AgentStatus::Online, 50);
        let row = next("a", l, Now::of(&view(AgentStatus::Online), false), 40, None).unwrap();
        assert_eq!(row.at, 50);
    }

    #[test]
    fn ended_is_kept_only_for_signed_out_rows() {
        let row = next(
            "a",
            None,
            Now::of(&view(AgentStatus::Online), true),
            1,
            Some(EndReason::Logout),
        )
        .unwrap();
        assert_eq!(row.ended, None);
    }
}

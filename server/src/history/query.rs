//! What a report reads from the availability log, across the storage seam, in a compact
//! form: a report over 90 days of 500 agents reads close to two million rows.

use std::sync::Arc;

use presence_protocol::{AgentStatus, Availability, Cause, EndReason};
use rustc_hash::FxHashMap as HashMap;
use strum::IntoEnumIterator;

use super::Logged;

/// The rows of an account's availability log a report needs: for `[from, to)`.
#[derive(Debug, Clone)]
pub struct HistoryQuery {
    pub account_id: Arc<str>,
    /// One agent only (a timeline), or every agent of the account.
    pub agent_id: Option<String>,
    pub from: i64,
    pub to: i64,
}

/// One availability log row as a report reads it: its agent by index into
/// [`HistoryRows::agents`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub agent: u32,
    pub at: i64,
    pub availability: Availability,
    pub status: AgentStatus,
    pub cause: Cause,
    pub ended: Option<EndReason>,
}

/// The answer to a [`HistoryQuery`].
#[derive(Debug, Clone, Default)]
pub struct HistoryRows {
    /// The agents the rows name; a [`Mark`]'s `agent` indexes this.
    pub agents: Vec<String>,
    /// Each agent's last row before `from` (its state at `from`), in no order.
    pub before: Vec<Mark>,
    /// The rows in `[from, to)`, ordered by time and, within one millisecond, by the order
    /// they were written.
    pub rows: Vec<Mark>,
    /// The backend's time when it read them: the open interval runs up to it.
    pub now: i64,
}

/// Builds [`HistoryRows`] row by row, numbering agents as they come.
#[derive(Default)]
pub struct Builder {
    index: HashMap<String, u32>,
    out: HistoryRows,
}

impl Builder {
    /// The index of `agent_id` (allocates only for an agent not seen before).
    pub fn agent(&mut self, agent_id: &str) -> u32 {
        if let Some(&i) = self.index.get(agent_id) {
            return i;
        }
        let i = self.out.agents.len() as u32;
        self.out.agents.push(agent_id.to_owned());
        self.index.insert(agent_id.to_owned(), i);
        i
    }

    pub fn before(&mut self, m: Mark) {
        self.out.before.push(m);
    }

    pub fn row(&mut self, m: Mark) {
        self.out.rows.push(m);
    }

    pub fn finish(self) -> HistoryRows {
        self.out
    }

    /// Rows from full log rows (tests, and what is imported).
    pub fn from_logged(before: &[Logged], rows: &[Logged]) -> HistoryRows {
        let mut b = Builder::default();
        for l in before {
            let m = b.mark(l);
            b.before(m);
        }
        for l in rows {
            let m = b.mark(l);
            b.row(m);
        }
        b.finish()
    }

    fn mark(&mut self, l: &Logged) -> Mark {
        Mark {
            agent: self.agent(&l.agent_id),
            at: l.at,
            availability: l.availability,
            status: l.status,
            cause: l.cause,
            ended: l.ended,
        }
    }
}

/// The small integer a stored row keeps for an enum value: its position in the enum, so the
/// log stays compact and quick to read. Variants are therefore never reordered (new ones go
/// last; a test pins the codes).
pub fn code<T: IntoEnumIterator + PartialEq>(v: T) -> i16 {
    T::iter().position(|x| x == v).unwrap_or(0) as i16
}

/// The value of a stored code, if it is one.
pub fn decode<T: IntoEnumIterator>(c: i64) -> Option<T> {
    usize::try_from(c).ok().and_then(|i| T::iter().nth(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_read_back_as_the_values_they_were_made_from() {
        for a in Availability::iter() {
            assert_eq!(decode::<Availability>(code(a).into()), Some(a));
        }
        for c in Cause::iter() {
            assert_eq!(decode::<Cause>(code(c).into()), Some(c));
        }
        assert_eq!(decode::<AgentStatus>(3), None);
        // Stored codes: a variant never moves (new ones go last).
        assert_eq!(code(Availability::SignedOut), 3);
        assert_eq!(code(AgentStatus::Offline), 2);
        assert_eq!(code(Cause::Return), 4);
        assert_eq!(code(EndReason::CredentialsChanged), 4);
        assert_eq!(decode::<AgentStatus>(-1), None);
    }

    #[test]
    fn the_builder_numbers_each_agent_once() {
        let mut b = Builder::default();
        assert_eq!(b.agent("x"), 0);
        assert_eq!(b.agent("y"), 1);
        assert_eq!(b.agent("x"), 0);
        assert_eq!(b.finish().agents, ["x", "y"]);
    }
}

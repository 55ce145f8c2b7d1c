//! What a report reads from the availability log, across the storage seam.

use std::sync::Arc;

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

/// The answer to a [`HistoryQuery`].
#[derive(Debug, Clone, Default)]
pub struct HistoryRows {
    /// Each agent's last row before `from` (its state at `from`), in no order.
    pub before: Vec<Logged>,
    /// The rows in `[from, to)`, ordered by time and, within one millisecond, by the order
    /// they were written.
    pub rows: Vec<Logged>,
    /// The backend's time when it read them: the open interval runs up to it.
    pub now: i64,
}

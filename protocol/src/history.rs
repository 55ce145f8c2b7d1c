//! History: an agent's availability over time, and the reports computed from it
//! (PROTOCOL.md, third part, "Status log and history").
//!
//! What it guarantees:
//! - [`Availability::of`] is the one rule for whether an agent counts for the chat box: the
//!   same rule [`crate::resolve`] applies (online or busy, with a live session), with the
//!   reason it does not (`offline` status, or `signed_out`: no live session).
//! - The report shapes are the wire contract's, field for field.

use serde::{Deserialize, Serialize};

use crate::{AgentStatus, Cause, EndReason, Millis};

/// Whether an agent counts for the chat box, and why not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::EnumString, strum::EnumIter)]
#[strum(serialize_all = "snake_case")]
pub enum Availability {
    /// Counts, as online.
    Online,
    /// Counts, as busy.
    Busy,
    /// Signed in, with the status offline.
    Offline,
    /// No live session (logout, expiry, removal), whatever the status.
    SignedOut,
}

impl Availability {
    /// An agent with `status` and (if `live`) at least one live session.
    pub fn of(status: AgentStatus, live: bool) -> Availability {
        match (live, status) {
            (false, _) => Availability::SignedOut,
            (true, AgentStatus::Online) => Availability::Online,
            (true, AgentStatus::Busy) => Availability::Busy,
            (true, AgentStatus::Offline) => Availability::Offline,
        }
    }

    /// Whether an agent in this state counts for the chat box.
    pub fn counts(self) -> bool {
        matches!(self, Availability::Online | Availability::Busy)
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The variant with this wire name.
    pub fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }
}

/// Time in each availability state, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimeInStates {
    pub online_ms: i64,
    pub busy_ms: i64,
    pub offline_ms: i64,
    pub signed_out_ms: i64,
}

impl TimeInStates {
    /// Adds `ms` to the state `a`.
    pub fn add(&mut self, a: Availability, ms: i64) {
        match a {
            Availability::Online => self.online_ms += ms,
            Availability::Busy => self.busy_ms += ms,
            Availability::Offline => self.offline_ms += ms,
            Availability::SignedOut => self.signed_out_ms += ms,
        }
    }

    pub fn total_ms(&self) -> i64 {
        self.online_ms + self.busy_ms + self.offline_ms + self.signed_out_ms
    }
}

/// One calendar day of an agent's availability report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DayTime {
    /// `YYYY-MM-DD` in the report's time zone.
    pub date: String,
    #[serde(flatten)]
    pub time: TimeInStates,
}

/// One agent of an availability report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentTime {
    pub id: String,
    pub name: String,
    #[serde(flatten)]
    pub time: TimeInStates,
    pub days: Vec<DayTime>,
}

/// `GET /v1/admin/reports/availability`: time in each availability state within
/// `[from, to)`, per agent and per calendar day in `tz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AvailabilityReport {
    pub from: Millis,
    pub to: Millis,
    pub tz: String,
    pub agents: Vec<AgentTime>,
}

impl AvailabilityReport {
    /// The CSV form (`Accept: text/csv`): a header, then one row per agent and day, CRLF
    /// line ends (RFC 4180).
    pub fn to_csv(&self) -> String {
        let mut out =
            String::from("agent_id,agent_name,date,online_ms,busy_ms,offline_ms,signed_out_ms\r\n");
        for a in &self.agents {
            for d in &a.days {
                let t = &d.time;
                out.push_str(&format!(
                    "{},{},{},{},{},{},{}\r\n",
                    csv_field(&a.id),
                    csv_field(&a.name),
                    d.date,
                    t.online_ms,
                    t.busy_ms,
                    t.offline_ms,
                    t.signed_out_ms
                ));
            }
        }
        out
    }
}

/// A CSV field (RFC 4180): quoted when it holds a separator, a quote or a line break; a
/// leading `=`, `+`, `-` or `@` is prefixed with `'` so a spreadsheet never runs it as a
/// formula.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// One chat box (the account's, or a group's) of a coverage report: time within opening
/// hours in each state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChatboxCoverage {
    /// The group's key; null for the account's chat box.
    pub group: Option<String>,
    pub open_ms: i64,
    pub online_ms: i64,
    pub busy_ms: i64,
    pub offline_ms: i64,
    /// Offline time within opening hours by the view's reason (`no_agents_online`).
    pub offline_by_reason: std::collections::BTreeMap<String, i64>,
    /// `(online_ms + busy_ms) / open_ms`; null when `open_ms` is 0.
    pub coverage: Option<f64>,
    /// The same, per calendar day in the report's time zone (days with opening hours only).
    #[serde(default)]
    pub days: Vec<CoverageDay>,
}

/// One calendar day of a chat box's coverage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CoverageDay {
    pub date: String,
    pub open_ms: i64,
    pub online_ms: i64,
    pub busy_ms: i64,
    pub offline_ms: i64,
    pub coverage: Option<f64>,
}

/// `GET /v1/admin/reports/coverage`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CoverageReport {
    pub from: Millis,
    pub to: Millis,
    pub tz: String,
    pub chatboxes: Vec<ChatboxCoverage>,
}

/// One interval of an agent's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimelineInterval {
    pub start: Millis,
    /// Null while the interval is still open (it runs up to now).
    pub end: Option<Millis>,
    pub availability: Availability,
    pub status: AgentStatus,
    pub cause: Cause,
    /// For `signed_out`: how the last session ended (null: never signed in).
    #[serde(default)]
    pub ended: Option<EndReason>,
}

/// `GET /v1/admin/reports/timeline` and `GET /v1/me/timeline`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimelineReport {
    pub agent: String,
    pub from: Millis,
    pub to: Millis,
    pub intervals: Vec<TimelineInterval>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_live_online_or_busy_agent_counts() {
        assert_eq!(
            Availability::of(AgentStatus::Online, true),
            Availability::Online
        );
        assert_eq!(
            Availability::of(AgentStatus::Busy, true),
            Availability::Busy
        );
        assert_eq!(
            Availability::of(AgentStatus::Offline, true),
            Availability::Offline
        );
        assert_eq!(
            Availability::of(AgentStatus::Online, false),
            Availability::SignedOut
        );
        assert!(Availability::Busy.counts() && !Availability::Offline.counts());
    }

    #[test]
    fn time_in_states_serialises_flat_with_the_day() {
        let mut time = TimeInStates::default();
        time.add(Availability::Busy, 5);
        let day = DayTime {
            date: "2026-12-07".into(),
            time,
        };
        let v = serde_json::to_value(&day).unwrap();
        assert_eq!(v["busy_ms"], 5);
        assert_eq!(v["date"], "2026-12-07");
        assert_eq!(v["signed_out_ms"], 0);
    }
}

//! Reports over the availability log: the range and its bounds, who may read what, and the
//! read across the seam; the arithmetic is [`crate::history::reports`].
//!
//! Guarantees:
//! - A range is `[from, to)`: `to` defaults to now (the moment the log is read; the last
//!   interval is then still open), `from` to seven days before `to`; `from`
//!   must be before `to`, the span at most 400 days, both within years 1970 to 9999; the
//!   time zone an IANA name (default: the account's opening-hours zone). Each violation is a
//!   `422` naming its field, as is an unknown `group` or `agent`.
//! - Admin reports need an owner, admin or API key of the account; an agent reads only its
//!   own timeline.

use std::time::{SystemTime, UNIX_EPOCH};

use chrono_tz::Tz;
use presence_protocol::{AvailabilityReport, CoverageReport, TimelineReport, WeeklySchedule};

use super::{AccountKey, AccountSlice, Ops, check_admin};
use crate::backend::{BackendError, BackendResult, Principal};
use crate::history::query::{HistoryQuery, HistoryRows};
use crate::history::reports::{self, Member, Range};
use presence_protocol::resolve::counts_for_group;

/// The longest range a report covers.
pub const MAX_SPAN_MS: i64 = 400 * DAY_MS;
/// The range when `from` is not given: this long before `to`.
pub const DEFAULT_SPAN_MS: i64 = 7 * DAY_MS;
const DAY_MS: i64 = 86_400_000;
/// 9999-12-31T23:59:59.999Z.
const LAST_MS: i64 = 253_402_300_799_999;

/// What a report asks for (query parameters; each optional, see the module's defaults).
#[derive(Debug, Default, Clone)]
pub struct ReportParams {
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub tz: Option<String>,
    pub group: Option<String>,
    pub agent: Option<String>,
}

/// `GET /v1/admin/reports/availability` parameters (documentation of the route).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct AvailabilityParams {
    /// Start of the range, ms since the epoch (default: `to` minus 7 days).
    from: Option<i64>,
    /// End of the range, exclusive (default: now); at most 400 days after `from`.
    to: Option<i64>,
    /// IANA time zone the days are counted in (default: the account's opening-hours zone).
    tz: Option<String>,
    /// Only the agents who count for this group (its members and agents in no group).
    group: Option<String>,
}

/// `GET /v1/admin/reports/coverage` and `GET /v1/me/timeline` parameters.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct RangeParams {
    /// Start of the range, ms since the epoch (default: `to` minus 7 days).
    from: Option<i64>,
    /// End of the range, exclusive (default: now); at most 400 days after `from`.
    to: Option<i64>,
    /// IANA time zone days are counted in (default: the account's opening-hours zone).
    tz: Option<String>,
}

/// `GET /v1/admin/reports/timeline` parameters.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct TimelineParams {
    /// The agent's id.
    agent: String,
    /// Start of the range, ms since the epoch (default: `to` minus 7 days).
    from: Option<i64>,
    /// End of the range, exclusive (default: now); at most 400 days after `from`.
    to: Option<i64>,
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The range and time zone asked for, checked; `now` is filled in once the rows are read.
fn range(q: &ReportParams, account_tz: &str) -> BackendResult<(Range, String)> {
    let in_years = |field: &str, v: i64| {
        if (0..=LAST_MS).contains(&v) {
            Ok(v)
        } else {
            Err(BackendError::invalid_field(
                field,
                "must be a time between 1970 and 9999 (ms since the epoch)",
            ))
        }
    };
    let to = in_years("to", q.to.unwrap_or_else(wall_ms))?;
    let from = in_years("from", q.from.unwrap_or((to - DEFAULT_SPAN_MS).max(0)))?;
    if from >= to {
        return Err(BackendError::invalid_field("from", "must be before to"));
    }
    if to - from > MAX_SPAN_MS {
        return Err(BackendError::invalid_field(
            "to",
            "a report covers at most 400 days",
        ));
    }
    let name = q.tz.clone().unwrap_or_else(|| account_tz.to_owned());
    let tz: Tz = name.parse().map_err(|_| {
        BackendError::invalid_field(
            "tz",
            format!("{name:?} is not an IANA time zone (e.g. Europe/Berlin)"),
        )
    })?;
    Ok((
        Range {
            from,
            to,
            now: 0,
            tz,
            live: q.to.is_none(),
        },
        name,
    ))
}

fn members(slice: &AccountSlice) -> Vec<Member<'_>> {
    slice
        .agents
        .iter()
        .map(|a| Member {
            id: &a.id,
            name: &a.name,
            groups: &a.groups,
        })
        .collect()
}

impl Ops {
    /// The account as stored, for an owner, admin or API key of it.
    pub(super) async fn admin_slice(&self, p: &Principal) -> BackendResult<AccountSlice> {
        let slice = self
            .backend
            .account_slice(AccountKey::Id(&p.account_id))
            .await?;
        check_admin(&slice, &p.agent_id)?;
        Ok(slice)
    }

    async fn rows(
        &self,
        p: &Principal,
        agent_id: Option<&str>,
        r: &mut Range,
    ) -> BackendResult<HistoryRows> {
        let rows = self
            .backend
            .history(HistoryQuery {
                account_id: p.account_id.clone(),
                agent_id: agent_id.map(str::to_owned),
                from: r.from,
                to: if r.live { LAST_MS } else { r.to },
            })
            .await?;
        r.now = rows.now;
        if r.live {
            // Up to the moment the rows were read.
            r.to = r.to.max(r.now);
        }
        Ok(rows)
    }

    /// Time in each availability state per agent and day (`group`: only the agents who count
    /// for it).
    pub async fn availability_report(
        &self,
        p: &Principal,
        q: ReportParams,
    ) -> BackendResult<AvailabilityReport> {
        let slice = self.admin_slice(p).await?;
        let (mut r, tz) = range(&q, &slice.account.opening_hours.timezone)?;
        if let Some(g) = &q.group
            && !slice.account.groups.iter().any(|x| x.key == *g)
        {
            return Err(BackendError::invalid_field(
                "group",
                format!("the account has no group {g:?}"),
            ));
        }
        let rows = self.rows(p, None, &mut r).await?;
        let who: Vec<Member<'_>> = members(&slice)
            .into_iter()
            .filter(|m| {
                q.group
                    .as_ref()
                    .is_none_or(|g| counts_for_group(m.groups, g))
            })
            .collect();
        Ok(reports::availability(&who, &rows, &r, &tz))
    }

    /// Each chat box's time within opening hours in each state.
    pub async fn coverage_report(
        &self,
        p: &Principal,
        q: ReportParams,
    ) -> BackendResult<CoverageReport> {
        let slice = self.admin_slice(p).await?;
        let (mut r, tz) = range(&q, &slice.account.opening_hours.timezone)?;
        let schedule = WeeklySchedule::from_opening_hours(&slice.account.opening_hours)
            .unwrap_or_else(|_| WeeklySchedule::always_open());
        let rows = self.rows(p, None, &mut r).await?;
        Ok(reports::coverage(
            &members(&slice),
            &slice.account.groups,
            &schedule,
            &rows,
            &r,
            &tz,
        ))
    }

    /// An agent's intervals: any agent's for an admin (`agent` required), the caller's own
    /// otherwise (`agent` absent).
    pub async fn timeline(
        &self,
        p: &Principal,
        q: ReportParams,
        own: bool,
    ) -> BackendResult<TimelineReport> {
        let agent_id = match (own, &q.agent) {
            (true, _) => p.agent_id.to_string(),
            (false, Some(a)) => a.clone(),
            (false, None) => {
                return Err(BackendError::invalid_field("agent", "is required"));
            }
        };
        let slice = match own {
            true => {
                self.backend
                    .account_slice(AccountKey::Id(&p.account_id))
                    .await?
            }
            false => self.admin_slice(p).await?,
        };
        if !slice.agents.iter().any(|a| a.id == agent_id) {
            return Err(BackendError::invalid_field(
                "agent",
                format!("the account has no agent {agent_id:?}"),
            ));
        }
        let (mut r, _) = range(&q, &slice.account.opening_hours.timezone)?;
        let rows = self.rows(p, Some(&agent_id), &mut r).await?;
        Ok(reports::timeline(&agent_id, &rows, &r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(from: Option<i64>, to: Option<i64>, tz: Option<&str>) -> ReportParams {
        ReportParams {
            from,
            to,
            tz: tz.map(str::to_owned),
            ..ReportParams::default()
        }
    }

    fn field(r: BackendResult<(Range, String)>) -> String {
        match r {
            Err(BackendError::InvalidField { field, .. }) => field,
            other => panic!("expected an invalid field, got {other:?}"),
        }
    }

    #[test]
    fn from_after_to_names_from() {
        assert_eq!(
            field(range(&params(Some(10), Some(5), None), "UTC")),
            "from"
        );
        assert_eq!(field(range(&params(Some(5), Some(5), None), "UTC")), "from");
    }

    #[test]
    fn a_span_over_400_days_names_to() {
        let q = params(Some(0), Some(MAX_SPAN_MS + 1), None);
        assert_eq!(field(range(&q, "UTC")), "to");
        assert!(range(&params(Some(0), Some(MAX_SPAN_MS), None), "UTC").is_ok());
    }

    #[test]
    fn an_unknown_time_zone_names_tz() {
        let q = params(Some(0), Some(10), Some("Mars/Olympus"));
        assert_eq!(field(range(&q, "UTC")), "tz");
    }

    #[test]
    fn times_outside_the_years_1970_to_9999_are_refused() {
        assert_eq!(
            field(range(&params(Some(-1), Some(10), None), "UTC")),
            "from"
        );
        assert_eq!(
            field(range(&params(None, Some(i64::MAX), None), "UTC")),
            "to"
        );
    }

    #[test]
    fn the_default_range_is_the_last_seven_days_in_the_account_s_zone() {
        let (r, tz) = range(
            &params(None, Some(DEFAULT_SPAN_MS * 3), None),
            "Europe/Berlin",
        )
        .unwrap();
        assert_eq!((r.from, r.to), (DEFAULT_SPAN_MS * 2, DEFAULT_SPAN_MS * 3));
        assert_eq!(tz, "Europe/Berlin");
    }
}

//! Chat box resolution: the pure function from agents, groups and opening hours to what every
//! chat box of an account shows (DESIGN rules 1-8).
//!
//! What it guarantees:
//! - Only *available* agents count: status online or busy AND at least one live session.
//! - A view is `online`/`agents_online` if a counted agent is online, else `busy`/`agents_busy`
//!   if one is busy, else `offline`/`no_agents_online`.
//! - The account view counts every agent; a group's view counts the agents in that group plus
//!   every agent in no group. Group views follow the order of the given groups; no groups gives
//!   an empty list.
//! - Outside opening hours every view is `offline`/`outside_opening_hours`, whoever is online.
//! - `next_change_at` is when the schedule alone flips (`None` when it never does); `version`
//!   is 0, as versions are assigned by whoever publishes the view.
//! - `back_at` (inside opening hours): the earliest `until` at which an agent who counts for
//!   the view and holds a live session turns `online` (a busy view) or `online` or `busy`
//!   (an offline view); `None` otherwise, and always outside opening hours.
//!
//! No I/O, no clock: `now_ms` is passed in, so the same inputs always give the same view.

use crate::{AgentStatus, ChatboxStatus, ChatboxView, Group, GroupView, Reason, WeeklySchedule};

/// One agent as the resolution sees it.
#[derive(Debug, Clone, Copy)]
pub struct AgentAvailability<'a> {
    pub status: AgentStatus,
    /// Keys of the agent's groups; empty means "in no group", which counts for every group.
    pub groups: &'a [String],
    /// Device sessions whose lease has not ended.
    pub live_sessions: usize,
    /// When a timed status ends, and what it becomes then.
    pub until: Option<i64>,
    pub then: Option<AgentStatus>,
}

impl AgentAvailability<'_> {
    /// Online or busy, with at least one live session (DESIGN rule 3).
    pub fn is_available(&self) -> bool {
        crate::Availability::of(self.status, self.live_sessions > 0).counts()
    }

    /// Whether this agent counts for the group `key` (DESIGN rule 6).
    pub fn counts_for_group(&self, key: &str) -> bool {
        counts_for_group(self.groups, key)
    }
}

/// Whether an agent in `groups` counts for the group `key` (DESIGN rule 6): a member, or an
/// agent in no group. For callers that have an agent's groups only (reports).
pub fn counts_for_group(groups: &[String], key: &str) -> bool {
    groups.is_empty() || groups.iter().any(|g| g == key)
}

/// Pure DESIGN rules 1-8. Returns version 0 (the server assigns versions).
pub fn resolve(
    groups: &[Group],
    schedule: &WeeklySchedule,
    agents: &[AgentAvailability<'_>],
    now_ms: i64,
) -> ChatboxView {
    let next_change_at = schedule.next_change_after(now_ms);

    if !schedule.is_open(now_ms) {
        let (status, reason) = (ChatboxStatus::Offline, Reason::OutsideOpeningHours);
        return ChatboxView {
            status,
            reason,
            version: 0,
            next_change_at,
            groups: groups
                .iter()
                .map(|g| group_view(g, status, reason, None))
                .collect(),
            message: None,
            back_at: None,
        };
    }

    let (status, reason) = outcome(agents.iter());
    ChatboxView {
        status,
        reason,
        version: 0,
        next_change_at,
        groups: groups
            .iter()
            .map(|g| {
                let counted = || agents.iter().filter(|a| a.counts_for_group(&g.key));
                let (status, reason) = outcome(counted());
                group_view(g, status, reason, back_at(counted(), status))
            })
            .collect(),
        message: None,
        back_at: back_at(agents.iter(), status),
    }
}

/// When a view showing `view` is told it changes back (see the module's guarantees).
fn back_at<'x, 'a: 'x>(
    agents: impl Iterator<Item = &'x AgentAvailability<'a>>,
    view: ChatboxStatus,
) -> Option<i64> {
    agents
        .filter(|a| a.live_sessions > 0)
        .filter_map(|a| {
            let (until, then) = (a.until?, a.then?);
            let turns = match view {
                ChatboxStatus::Busy => then == AgentStatus::Online,
                ChatboxStatus::Offline => matches!(then, AgentStatus::Online | AgentStatus::Busy),
                ChatboxStatus::Online => false,
            };
            turns.then_some(until)
        })
        .min()
}

/// What a chat box counting `agents` shows (rules 2, 3 and 5).
fn outcome<'x, 'a: 'x>(
    agents: impl Iterator<Item = &'x AgentAvailability<'a>>,
) -> (ChatboxStatus, Reason) {
    let mut busy = false;
    for a in agents.filter(|a| a.is_available()) {
        match a.status {
            // One online agent decides it; no need to look further.
            AgentStatus::Online => return outcome_of(true, busy),
            AgentStatus::Busy => busy = true,
            AgentStatus::Offline => {}
        }
    }
    outcome_of(false, busy)
}

/// What a view inside opening hours shows when some counted agent is online (`online`), or
/// some is busy (`busy`): the rule [`resolve`] applies, for callers that keep counts (the
/// coverage report's replay).
pub fn outcome_of(online: bool, busy: bool) -> (ChatboxStatus, Reason) {
    if online {
        (ChatboxStatus::Online, Reason::AgentsOnline)
    } else if busy {
        (ChatboxStatus::Busy, Reason::AgentsBusy)
    } else {
        (ChatboxStatus::Offline, Reason::NoAgentsOnline)
    }
}

fn group_view(g: &Group, status: ChatboxStatus, reason: Reason, back_at: Option<i64>) -> GroupView {
    GroupView {
        key: g.key.clone(),
        name: g.name.clone(),
        status,
        reason,
        message: None,
        back_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{OpeningHours, WeekDays};

    fn groups(keys: &[&str]) -> Vec<Group> {
        keys.iter()
            .map(|k| Group {
                key: (*k).to_owned(),
                name: k.to_uppercase(),
            })
            .collect()
    }

    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| (*s).to_owned()).collect()
    }

    fn agent(
        status: AgentStatus,
        groups: &[String],
        live_sessions: usize,
    ) -> AgentAvailability<'_> {
        AgentAvailability {
            status,
            groups,
            live_sessions,
            until: None,
            then: None,
        }
    }

    fn group_statuses(v: &ChatboxView) -> Vec<(&str, ChatboxStatus, Reason)> {
        v.groups
            .iter()
            .map(|g| (g.key.as_str(), g.status, g.reason))
            .collect()
    }

    /// Monday-Friday 09:00-17:00 UTC.
    fn office_hours() -> WeeklySchedule {
        let r = vec![("09:00".to_owned(), "17:00".to_owned())];
        WeeklySchedule::from_opening_hours(&OpeningHours {
            enabled: true,
            timezone: "UTC".to_owned(),
            days: WeekDays {
                mon: r.clone(),
                tue: r.clone(),
                wed: r.clone(),
                thu: r.clone(),
                fri: r,
                ..WeekDays::default()
            },
            exceptions: vec![],
        })
        .unwrap()
    }

    // 2026-06-10 (Wednesday) 10:00 and 20:00 UTC; 2026-06-11 09:00 UTC.
    const WED_10: i64 = 1_781_085_600_000;
    const WED_20: i64 = WED_10 + 10 * 3_600_000;
    const THU_09: i64 = WED_10 + 23 * 3_600_000;

    #[test]
    fn ungrouped_agent_counts_for_every_group() {
        let none = keys(&[]);
        let agents = [agent(AgentStatus::Online, &none, 1)];
        let v = resolve(
            &groups(&["sales", "support"]),
            &WeeklySchedule::always_open(),
            &agents,
            0,
        );
        assert_eq!(
            (v.status, v.reason),
            (ChatboxStatus::Online, Reason::AgentsOnline)
        );
        assert_eq!(
            group_statuses(&v),
            vec![
                ("sales", ChatboxStatus::Online, Reason::AgentsOnline),
                ("support", ChatboxStatus::Online, Reason::AgentsOnline),
            ]
        );
        assert_eq!(v.version, 0);
        assert_eq!(v.next_change_at, None);
        assert_eq!(v.groups[0].name, "SALES");
    }

    #[test]
    fn grouped_agent_counts_only_for_its_group() {
        let sales = keys(&["sales"]);
        let agents = [agent(AgentStatus::Online, &sales, 1)];
        let v = resolve(
            &groups(&["sales", "support"]),
            &WeeklySchedule::always_open(),
            &agents,
            0,
        );
        assert_eq!(
            v.status,
            ChatboxStatus::Online,
            "the account counts every agent"
        );
        assert_eq!(
            group_statuses(&v),
            vec![
                ("sales", ChatboxStatus::Online, Reason::AgentsOnline),
                ("support", ChatboxStatus::Offline, Reason::NoAgentsOnline),
            ]
        );
    }

    #[test]
    fn busy_without_online_gives_agents_busy() {
        let (none, sales) = (keys(&[]), keys(&["sales"]));
        let agents = [
            agent(AgentStatus::Busy, &none, 1),
            agent(AgentStatus::Online, &sales, 1),
            agent(AgentStatus::Offline, &none, 1),
        ];
        let v = resolve(
            &groups(&["sales", "support"]),
            &WeeklySchedule::always_open(),
            &agents,
            0,
        );
        assert_eq!(
            (v.status, v.reason),
            (ChatboxStatus::Online, Reason::AgentsOnline)
        );
        assert_eq!(
            group_statuses(&v),
            vec![
                ("sales", ChatboxStatus::Online, Reason::AgentsOnline),
                ("support", ChatboxStatus::Busy, Reason::AgentsBusy),
            ]
        );
        let only_busy = resolve(&[], &WeeklySchedule::always_open(), &agents[..1], 0);
        assert_eq!(
            (only_busy.status, only_busy.reason),
            (ChatboxStatus::Busy, Reason::AgentsBusy)
        );
    }

    #[test]
    fn outside_opening_hours_is_offline_whoever_is_online() {
        let none = keys(&[]);
        let agents = [
            agent(AgentStatus::Online, &none, 3),
            agent(AgentStatus::Busy, &none, 1),
        ];
        let v = resolve(&groups(&["sales"]), &office_hours(), &agents, WED_20);
        assert_eq!(
            (v.status, v.reason),
            (ChatboxStatus::Offline, Reason::OutsideOpeningHours)
        );
        assert_eq!(
            group_statuses(&v),
            vec![("sales", ChatboxStatus::Offline, Reason::OutsideOpeningHours)]
        );
        // Inside hours the same agents make it online.
        let open = resolve(&groups(&["sales"]), &office_hours(), &agents, WED_10);
        assert_eq!(open.status, ChatboxStatus::Online);
    }

    #[test]
    fn agent_without_live_session_does_not_count() {
        let none = keys(&[]);
        let agents = [
            agent(AgentStatus::Online, &none, 0),
            agent(AgentStatus::Busy, &none, 0),
        ];
        let v = resolve(
            &groups(&["sales"]),
            &WeeklySchedule::always_open(),
            &agents,
            0,
        );
        assert_eq!(
            (v.status, v.reason),
            (ChatboxStatus::Offline, Reason::NoAgentsOnline)
        );
        assert_eq!(
            group_statuses(&v),
            vec![("sales", ChatboxStatus::Offline, Reason::NoAgentsOnline)]
        );
    }

    #[test]
    fn offline_agent_does_not_count() {
        let none = keys(&[]);
        let agents = [agent(AgentStatus::Offline, &none, 2)];
        let v = resolve(&[], &WeeklySchedule::always_open(), &agents, 0);
        assert_eq!(
            (v.status, v.reason),
            (ChatboxStatus::Offline, Reason::NoAgentsOnline)
        );
    }

    #[test]
    fn no_groups_gives_empty_group_list() {
        let sales = keys(&["sales"]);
        let agents = [agent(AgentStatus::Online, &sales, 1)];
        let v = resolve(&[], &WeeklySchedule::always_open(), &agents, 0);
        assert!(v.groups.is_empty());
        assert_eq!(v.status, ChatboxStatus::Online);
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["groups"], serde_json::json!([]));
        assert_eq!(json["next_change_at"], serde_json::Value::Null);
    }

    #[test]
    fn next_change_at_points_at_opening() {
        let none = keys(&[]);
        let agents = [agent(AgentStatus::Online, &none, 1)];
        let closed = resolve(&[], &office_hours(), &agents, WED_20);
        assert_eq!(closed.next_change_at, Some(THU_09));
        let open = resolve(&[], &office_hours(), &agents, WED_10);
        assert_eq!(open.next_change_at, Some(WED_10 + 7 * 3_600_000));
    }

    #[test]
    fn back_at_is_the_earliest_end_that_turns_a_counted_agent_with_a_session_back() {
        use AgentStatus::{Busy, Offline, Online};
        let none: Vec<String> = Vec::new();
        let (sales, support) = (keys(&["sales"]), keys(&["support"]));
        let timed = |status, groups, live, until, then| AgentAvailability {
            until: Some(until),
            then: Some(then),
            ..agent(status, groups, live)
        };
        let open = WeeklySchedule::always_open();
        let busy = [
            timed(Busy, &none, 1, 5_000, Online),
            timed(Busy, &none, 1, 3_000, Online),
            timed(Busy, &none, 0, 1_000, Online),
            timed(Busy, &none, 1, 2_000, Busy),
        ];
        let v = resolve(&[], &open, &busy, 0);
        assert_eq!((v.status, v.back_at), (ChatboxStatus::Busy, Some(3_000)));
        let offline = [
            timed(Offline, &none, 1, 6_000, Online),
            timed(Offline, &none, 1, 4_000, Busy),
            timed(Offline, &none, 1, 1_000, Offline),
        ];
        let v = resolve(&[], &open, &offline, 0);
        assert_eq!((v.status, v.back_at), (ChatboxStatus::Offline, Some(4_000)));
        let online = [
            agent(Online, &none, 1),
            timed(Busy, &none, 1, 2_000, Online),
        ];
        assert_eq!(resolve(&[], &open, &online, 0).back_at, None);
        let grouped = [
            timed(Busy, &sales, 1, 2_000, Online),
            timed(Busy, &support, 1, 3_000, Online),
        ];
        let v = resolve(&groups(&["sales", "support"]), &open, &grouped, 0);
        let per_group: Vec<_> = v.groups.iter().map(|g| g.back_at).collect();
        assert_eq!(per_group, vec![Some(2_000), Some(3_000)]);
        assert_eq!(v.back_at, Some(2_000));
        let closed = resolve(&groups(&["sales"]), &office_hours(), &grouped, WED_20);
        assert_eq!((closed.back_at, closed.groups[0].back_at), (None, None));
    }
}

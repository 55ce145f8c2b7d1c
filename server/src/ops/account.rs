//! Account settings, groups and opening hours: each edit replaces one part of the account.
//!
//! Rules: group keys are unique and well formed, and an agent loses the groups that are gone
//! in the same change; opening hours must resolve to a schedule; a settings patch is applied
//! over the current settings and the result checked whole.

use presence_protocol::{
    AccountSettings, CreateAccountRequest, Group, IdleSettings, Messages, OpeningHours, Role,
    Settings, SettingsPatch, StatusView, WeeklySchedule,
};
use rustc_hash::FxHashSet as HashSet;

use super::{AccountEdit, AccountSlice};
use crate::backend::{BackendError, BackendResult};
use crate::rows::{AccountRow, AgentRow};
use crate::validate;

/// Replaces the groups (already checked by [`validate::groups`]); agents keep only the
/// groups that remain.
pub fn groups(slice: &AccountSlice, groups: Vec<Group>) -> BackendResult<AccountEdit> {
    let keys: HashSet<&str> = groups.iter().map(|g| g.key.as_str()).collect();
    let agents = slice
        .agents
        .iter()
        .filter(|a| a.groups.iter().any(|g| !keys.contains(g.as_str())))
        .map(|a| {
            let kept = a
                .groups
                .iter()
                .filter(|g| keys.contains(g.as_str()))
                .cloned()
                .collect();
            (a.id.clone(), kept)
        })
        .collect();
    Ok(AccountEdit::Groups { groups, agents })
}

/// Opening hours and the schedule they resolve to; hours that do not resolve are an
/// `InvalidField` naming the field.
pub fn schedule(hours: &OpeningHours) -> BackendResult<WeeklySchedule> {
    WeeklySchedule::from_opening_hours(hours)
        .map_err(|e| BackendError::invalid_field(&e.field, &e.detail))
}

/// Replaces the opening hours.
pub fn opening_hours(_: &AccountSlice, hours: OpeningHours) -> BackendResult<AccountEdit> {
    let schedule = Box::new(schedule(&hours)?);
    Ok(AccountEdit::OpeningHours { hours, schedule })
}

/// Applies a settings patch over the current settings.
pub fn settings(slice: &AccountSlice, patch: SettingsPatch) -> BackendResult<AccountEdit> {
    let next = validate::account_settings(slice.account.settings.clone(), patch)?;
    Ok(AccountEdit::Settings(next))
}

/// A slug another account has.
pub fn slug_taken(slug: &str) -> BackendError {
    BackendError::conflict(format!("account slug {slug:?} is taken"))
}

/// Creates the planned account and owner, unless an account already has the slug.
pub fn create(
    slice: Option<&AccountSlice>,
    account: AccountRow,
    owner: AgentRow,
) -> BackendResult<AccountEdit> {
    match slice {
        Some(taken) => Err(slug_taken(&taken.account.slug)),
        None => Ok(AccountEdit::Create {
            account: Box::new(account),
            owner: Box::new(owner),
        }),
    }
}

/// The status of an agent that has never set one.
pub fn initial_status() -> StatusView {
    StatusView::manual(presence_protocol::AgentStatus::Offline, 0, 0, None)
}

/// The rows of a new account and its owner (`password_hash` already made), with fresh ids
/// and the first block of view versions reserved.
pub fn new_account(
    req: &CreateAccountRequest,
    defaults: Settings,
    password_hash: String,
) -> (AccountRow, AgentRow) {
    let account = AccountRow {
        id: crate::auth::new_id("acc"),
        slug: req.slug.clone(),
        name: req.name.trim().to_owned(),
        widget_key: crate::auth::new_id("wk"),
        settings: AccountSettings {
            timings: defaults,
            messages: Messages::default(),
            idle: IdleSettings::default(),
        },
        opening_hours: OpeningHours::default(),
        groups: Vec::new(),
        view_version: crate::rules::VIEW_VERSION_BLOCK,
        custom_statuses: Vec::new(),
        identity: Default::default(),
    };
    let owner = AgentRow {
        id: crate::auth::new_id("agt"),
        account_id: account.id.clone(),
        name: req.owner.name.trim().to_owned(),
        email: req.owner.email.trim().to_owned(),
        password_hash,
        role: Role::Owner,
        groups: Vec::new(),
        status: initial_status(),
        status_op_id: String::new(),
        sub: None,
    };
    (account, owner)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn agent(id: &str, role: Role, groups: &[&str]) -> AgentRow {
        AgentRow {
            id: id.into(),
            account_id: "acc_1".into(),
            name: id.to_uppercase(),
            email: format!("{id}@example.test"),
            password_hash: String::new(),
            role,
            groups: groups.iter().map(|g| g.to_string()).collect(),
            status: initial_status(),
            status_op_id: String::new(),
            sub: None,
        }
    }

    pub(crate) fn slice(groups: &[&str], agents: Vec<AgentRow>) -> AccountSlice {
        AccountSlice {
            account: AccountRow {
                id: "acc_1".into(),
                slug: "acme".into(),
                name: "Acme".into(),
                widget_key: "wk_1".into(),
                settings: AccountSettings {
                    timings: Settings::default(),
                    messages: Messages::default(),
                    idle: IdleSettings::default(),
                },
                opening_hours: OpeningHours::default(),
                groups: groups
                    .iter()
                    .map(|k| Group {
                        key: k.to_string(),
                        name: k.to_uppercase(),
                    })
                    .collect(),
                view_version: 0,
                custom_statuses: Vec::new(),
                identity: Default::default(),
            },
            agents,
        }
    }

    #[test]
    fn agents_lose_exactly_the_groups_that_are_gone() {
        let s = slice(
            &["sales", "support"],
            vec![
                agent("a", Role::Owner, &["sales", "support"]),
                agent("b", Role::Agent, &["sales"]),
                agent("c", Role::Agent, &[]),
            ],
        );
        let kept = vec![Group {
            key: "sales".into(),
            name: "Sales".into(),
        }];
        let AccountEdit::Groups { groups: g, agents } = groups(&s, kept.clone()).unwrap() else {
            panic!()
        };
        assert_eq!(g, kept);
        assert_eq!(agents, vec![("a".to_string(), vec!["sales".to_string()])]);
        let AccountEdit::Groups { agents, .. } = groups(&s, vec![]).unwrap() else {
            panic!()
        };
        assert_eq!(
            agents,
            vec![("a".to_string(), vec![]), ("b".to_string(), vec![])]
        );
    }

    #[test]
    fn a_settings_patch_is_checked_whole_over_the_current_settings() {
        let s = slice(&[], vec![]);
        let patch = |v: serde_json::Value| -> SettingsPatch { serde_json::from_value(v).unwrap() };
        let AccountEdit::Settings(next) =
            settings(&s, patch(serde_json::json!({"active_ttl_ms": 90_000}))).unwrap()
        else {
            panic!()
        };
        assert_eq!(next.timings.active_ttl_ms, 90_000);
        assert_eq!(
            next.timings.active_interval_ms,
            Settings::default().active_interval_ms
        );
        // A ttl under twice the interval is refused, whichever field the patch names.
        assert!(matches!(
            settings(&s, patch(serde_json::json!({"active_ttl_ms": 1}))),
            Err(BackendError::InvalidField { .. })
        ));
    }

    #[test]
    fn opening_hours_that_do_not_resolve_are_refused_with_their_field() {
        let s = slice(&[], vec![]);
        assert!(opening_hours(&s, OpeningHours::default()).is_ok());
        let bad: OpeningHours = serde_json::from_value(
            serde_json::json!({"enabled": true, "timezone": "Mars/Olympus"}),
        )
        .unwrap();
        match opening_hours(&s, bad) {
            Err(BackendError::InvalidField { field, .. }) => assert_eq!(field, "timezone"),
            other => panic!("{other:?}"),
        }
    }
}

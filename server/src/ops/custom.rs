//! An account's custom statuses: the set an owner or admin replaces, and what happens to the
//! agents who have one that goes.
//!
//! Rules: at most [`MAX_CUSTOM_STATUSES`]; ids match `^[a-z0-9][a-z0-9_-]{0,63}$` and are
//! unique; labels are 1 to 40 characters; an emoji at most 16; a default duration within the
//! bounds of a timed status. An agent whose custom status is removed keeps its base status
//! (which is its status) with `custom_status: null`, as a new version; nothing else of the
//! status changes. The edit runs with every agent's turn ([`super::AccountTarget::WithAgents`])
//! so no status change naming a removed custom status can slip in between.

use presence_protocol::{CustomStatus, StatusView};
use rustc_hash::FxHashSet as HashSet;

use super::status::{MAX_DURATION_MS, MIN_DURATION_MS};
use super::{AccountEdit, AccountSlice};
use crate::backend::{BackendError, BackendResult};

/// The most custom statuses an account has.
pub const MAX_CUSTOM_STATUSES: usize = 50;

/// Checks a set of custom statuses, each problem a `422` naming the field (`[i].id`, ...).
pub fn check(list: &[CustomStatus]) -> BackendResult<()> {
    if list.len() > MAX_CUSTOM_STATUSES {
        return Err(BackendError::invalid_field(
            "custom_statuses",
            format!("at most {MAX_CUSTOM_STATUSES}"),
        ));
    }
    let mut seen = HashSet::default();
    for (i, c) in list.iter().enumerate() {
        let field = |f: &str| format!("[{i}].{f}");
        if !crate::validate::key_ok(&c.id) {
            return Err(BackendError::invalid_field(
                &field("id"),
                "lowercase letters, digits, '_' or '-', starting with a letter or digit, at most 64",
            ));
        }
        if !seen.insert(c.id.as_str()) {
            return Err(BackendError::invalid_field(
                &field("id"),
                format!("duplicate id {:?}", c.id),
            ));
        }
        let label = c.label.trim().chars().count();
        if !(1..=40).contains(&label) {
            return Err(BackendError::invalid_field(
                &field("label"),
                "1 to 40 characters",
            ));
        }
        if c.emoji.as_ref().is_some_and(|e| e.chars().count() > 16) {
            return Err(BackendError::invalid_field(
                &field("emoji"),
                "at most 16 characters",
            ));
        }
        if c.default_duration_ms
            .is_some_and(|d| !(MIN_DURATION_MS..=MAX_DURATION_MS).contains(&d))
        {
            return Err(BackendError::invalid_field(
                &field("default_duration_ms"),
                format!("must be between {MIN_DURATION_MS} and {MAX_DURATION_MS} (7 days)"),
            ));
        }
    }
    Ok(())
}

/// Replaces the set (already checked); agents whose custom status is gone keep their status
/// without it, as a new version.
pub fn replace(slice: &AccountSlice, list: Vec<CustomStatus>) -> BackendResult<AccountEdit> {
    let kept: HashSet<&str> = list.iter().map(|c| c.id.as_str()).collect();
    let resets = slice
        .agents
        .iter()
        .filter(|a| {
            a.status
                .custom_status
                .as_deref()
                .is_some_and(|id| !kept.contains(id))
        })
        .map(|a| {
            let status = StatusView {
                version: a.status.version + 1,
                custom_status: None,
                ..a.status.clone()
            };
            (a.id.clone(), status)
        })
        .collect();
    let statuses = list
        .into_iter()
        .map(|c| CustomStatus {
            label: c.label.trim().to_owned(),
            emoji: c.emoji.filter(|e| !e.trim().is_empty()),
            ..c
        })
        .collect();
    Ok(AccountEdit::CustomStatuses { statuses, resets })
}

#[cfg(test)]
mod tests {
    use super::*;
    use presence_protocol::AgentStatus;

    fn cs(id: &str, label: &str) -> CustomStatus {
        CustomStatus {
            id: id.into(),
            label: label.into(),
            emoji: None,
            base: AgentStatus::Busy,
            default_duration_ms: None,
        }
    }

    #[test]
    fn a_set_is_checked_field_by_field() {
        let long_id = "a".repeat(65);
        let cases: Vec<(Vec<CustomStatus>, Option<&str>)> = vec![
            (
                vec![cs("lunch", "Lunch"), cs("in-a-call_2", "In a call")],
                None,
            ),
            (vec![cs("Lunch", "Lunch")], Some("[0].id")),
            (vec![cs("-lunch", "Lunch")], Some("[0].id")),
            (vec![cs(&long_id, "Lunch")], Some("[0].id")),
            (vec![cs("a", "A"), cs("a", "B")], Some("[1].id")),
            (vec![cs("a", "  ")], Some("[0].label")),
            (vec![cs("a", &"x".repeat(41))], Some("[0].label")),
            (
                vec![CustomStatus {
                    default_duration_ms: Some(999),
                    ..cs("a", "A")
                }],
                Some("[0].default_duration_ms"),
            ),
            (
                (0..51).map(|i| cs(&format!("s{i}"), "S")).collect(),
                Some("custom_statuses"),
            ),
        ];
        for (list, field) in cases {
            match (check(&list), field) {
                (Ok(()), None) => {}
                (Err(BackendError::InvalidField { field: f, .. }), Some(want)) => {
                    assert_eq!(f, want)
                }
                (got, want) => panic!("{want:?}: {got:?}"),
            }
        }
    }
}

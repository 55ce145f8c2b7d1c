//! Agents and roles: adding, changing and removing an agent of an account.
//!
//! Rules: an email is unique within its account (trimmed, case-insensitive); an agent's
//! groups exist in the account (duplicates dropped); an account keeps at least one owner,
//! whatever is demoted or removed; only an owner grants or revokes `owner`, or changes or
//! removes an owner (the caller's role as stored in the slice, read under the account's
//! turn, not as its session remembers it).

use presence_protocol::{PatchAgentRequest, Role};

use super::{AccountEdit, AccountSlice};
use crate::backend::{BackendError, BackendResult};
use crate::rows::{AgentRow, email_key};
use crate::validate;

/// The most agents an account has (more is a conflict).
pub const MAX_AGENTS: usize = 1_000;

fn last_owner() -> BackendError {
    BackendError::conflict("an account needs at least one owner")
}

/// Refuses a change that touches an owner unless `caller` is an owner of the account.
fn owner_only(slice: &AccountSlice, caller: &str, touches_owner: bool) -> BackendResult<()> {
    let is_owner = slice
        .agents
        .iter()
        .any(|a| a.id == caller && a.role == Role::Owner);
    if touches_owner && !is_owner {
        return Err(BackendError::forbidden(
            "only an owner grants or revokes owner, or changes or removes an owner",
        ));
    }
    Ok(())
}

/// Adds `row` (its password already hashed) if its email is free and its groups exist; an
/// owner only if `caller` is one.
pub fn create(slice: &AccountSlice, caller: &str, mut row: AgentRow) -> BackendResult<AccountEdit> {
    owner_only(slice, caller, row.role == Role::Owner)?;
    if slice.agents.len() >= MAX_AGENTS {
        return Err(BackendError::conflict(format!(
            "an account has at most {MAX_AGENTS} agents"
        )));
    }
    let key = email_key(&row.email);
    if slice.agents.iter().any(|a| a.email_key() == key) {
        return Err(BackendError::conflict("an agent with this email exists"));
    }
    row.groups = validate::agent_groups(&row.groups, &slice.account.groups)?;
    row.account_id = slice.account.id.clone();
    Ok(AccountEdit::AddAgent(row))
}

/// Changes an agent's name, groups or role; demoting the last owner is a conflict; an owner,
/// or the owner role, only by an owner.
pub fn patch(
    slice: &AccountSlice,
    caller: &str,
    id: &str,
    req: PatchAgentRequest,
) -> BackendResult<AccountEdit> {
    let mut row = slice.agent(id)?.clone();
    owner_only(
        slice,
        caller,
        row.role == Role::Owner || req.role == Some(Role::Owner),
    )?;
    if let Some(name) = &req.name {
        validate::name("name", name)?;
        row.name = name.trim().to_owned();
    }
    if let Some(groups) = &req.groups {
        row.groups = validate::agent_groups(groups, &slice.account.groups)?;
    }
    if let Some(role) = req.role {
        if row.role == Role::Owner && role != Role::Owner && slice.owners() <= 1 {
            return Err(last_owner());
        }
        row.role = role;
    }
    Ok(AccountEdit::UpdateAgent(row))
}

/// Removes an agent (its sessions end with reason `removed`); not the last owner; an owner
/// only by an owner.
pub fn remove(slice: &AccountSlice, caller: &str, id: &str) -> BackendResult<AccountEdit> {
    let row = slice.agent(id)?;
    owner_only(slice, caller, row.role == Role::Owner)?;
    if row.role == Role::Owner && slice.owners() <= 1 {
        return Err(last_owner());
    }
    Ok(AccountEdit::RemoveAgent {
        agent_id: row.id.clone(),
    })
}

/// Who sets an agent's password, and so which of its sessions end.
#[derive(Debug, Clone)]
pub enum PasswordBy {
    /// The agent itself, from session `keep`, having proved it knows the password whose hash
    /// is `checked_hash`: its other sessions end.
    Itself { keep: String, checked_hash: String },
    /// An owner or admin `caller` (an owner's password only by an owner): every session ends.
    Admin { caller: String },
}

/// Sets agent `id`'s password to `password_hash` (already made); its sessions end with
/// reason `credentials_changed`, but the one it changed its own password from. A password
/// changed since the agent's check refuses the change, as a wrong current password would.
pub fn set_password(
    slice: &AccountSlice,
    id: &str,
    password_hash: String,
    by: PasswordBy,
) -> BackendResult<AccountEdit> {
    let row = slice.agent(id)?;
    let keep = match by {
        PasswordBy::Itself { keep, checked_hash } => {
            if !crate::auth::secure_eq(row.password_hash.as_bytes(), checked_hash.as_bytes()) {
                return Err(BackendError::InvalidCredentials);
            }
            Some(keep)
        }
        PasswordBy::Admin { caller } => {
            owner_only(slice, &caller, row.role == Role::Owner)?;
            None
        }
    };
    Ok(AccountEdit::Password {
        agent_id: row.id.clone(),
        password_hash,
        keep,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::account::tests::{agent, slice};

    fn patch_role(role: Role) -> PatchAgentRequest {
        PatchAgentRequest {
            role: Some(role),
            ..Default::default()
        }
    }

    #[test]
    fn the_last_owner_can_be_neither_demoted_nor_removed() {
        let one = slice(
            &[],
            vec![agent("a", Role::Owner, &[]), agent("b", Role::Agent, &[])],
        );
        let two = slice(
            &[],
            vec![agent("a", Role::Owner, &[]), agent("b", Role::Owner, &[])],
        );
        // (slice, target, demote to, allowed)
        let cases = [
            (&one, "a", Role::Admin, false),
            (&one, "a", Role::Agent, false),
            (&one, "a", Role::Owner, true),
            (&one, "b", Role::Admin, true),
            (&two, "a", Role::Agent, true),
        ];
        for (s, id, role, allowed) in cases {
            let got = patch(s, "a", id, patch_role(role));
            assert_eq!(got.is_ok(), allowed, "demote {id} to {role:?}: {got:?}");
            if !allowed {
                assert!(matches!(got, Err(BackendError::Conflict(_))));
            }
        }
        assert!(matches!(
            remove(&one, "a", "a"),
            Err(BackendError::Conflict(_))
        ));
        assert!(remove(&one, "a", "b").is_ok());
        assert!(remove(&two, "b", "a").is_ok());
    }

    #[test]
    fn an_agent_of_another_account_is_not_found() {
        let s = slice(&[], vec![agent("a", Role::Owner, &[])]);
        assert_eq!(
            patch(&s, "a", "zz", PatchAgentRequest::default()).unwrap_err(),
            BackendError::not_found("agent")
        );
        assert_eq!(
            remove(&s, "a", "zz").unwrap_err(),
            BackendError::not_found("agent")
        );
    }

    #[test]
    fn a_new_agent_needs_a_free_email_and_known_groups() {
        let s = slice(&["sales"], vec![agent("a", Role::Owner, &[])]);
        let mut dup = agent("n", Role::Agent, &[]);
        dup.email = " A@Example.TEST ".into();
        assert!(matches!(
            create(&s, "a", dup),
            Err(BackendError::Conflict(_))
        ));
        let unknown = agent("n", Role::Agent, &["support"]);
        assert!(matches!(
            create(&s, "a", unknown),
            Err(BackendError::InvalidField { .. })
        ));
        let ok = agent("n", Role::Agent, &["sales", "sales"]);
        match create(&s, "a", ok).unwrap() {
            AccountEdit::AddAgent(row) => {
                assert_eq!(row.groups, vec!["sales".to_string()]);
                assert_eq!(row.account_id, s.account.id);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_patch_changes_only_what_it_names_and_checks_groups() {
        let s = slice(&["sales"], vec![agent("a", Role::Owner, &["sales"])]);
        let named = PatchAgentRequest {
            name: Some("  New Name ".into()),
            ..Default::default()
        };
        let AccountEdit::UpdateAgent(row) = patch(&s, "a", "a", named).unwrap() else {
            panic!()
        };
        assert_eq!((row.name.as_str(), row.role), ("New Name", Role::Owner));
        assert_eq!(row.groups, vec!["sales".to_string()]);
        let blank = PatchAgentRequest {
            name: Some("  ".into()),
            ..Default::default()
        };
        assert!(matches!(
            patch(&s, "a", "a", blank),
            Err(BackendError::InvalidField { .. })
        ));
        let unknown = PatchAgentRequest {
            groups: Some(vec!["nope".into()]),
            ..Default::default()
        };
        assert!(matches!(
            patch(&s, "a", "a", unknown),
            Err(BackendError::InvalidField { .. })
        ));
    }

    #[test]
    fn only_an_owner_touches_owners_or_the_owner_role() {
        let s = slice(
            &[],
            vec![
                agent("own", Role::Owner, &[]),
                agent("adm", Role::Admin, &[]),
                agent("ag", Role::Agent, &[]),
            ],
        );
        let forbidden =
            |r: BackendResult<AccountEdit>| matches!(r, Err(BackendError::Forbidden(_)));
        // An admin: not itself to owner, not the owner down, not the owner out, no new owner.
        assert!(forbidden(patch(&s, "adm", "adm", patch_role(Role::Owner))));
        assert!(forbidden(patch(&s, "adm", "ag", patch_role(Role::Owner))));
        assert!(forbidden(patch(&s, "adm", "own", patch_role(Role::Agent))));
        let rename = PatchAgentRequest {
            name: Some("Renamed".into()),
            ..Default::default()
        };
        assert!(forbidden(patch(&s, "adm", "own", rename)));
        assert!(forbidden(remove(&s, "adm", "own")));
        assert!(forbidden(create(&s, "adm", agent("new", Role::Owner, &[]))));
        // Everything else an admin may; an owner may all of it.
        assert!(patch(&s, "adm", "ag", patch_role(Role::Admin)).is_ok());
        assert!(create(&s, "adm", agent("new", Role::Admin, &[])).is_ok());
        assert!(patch(&s, "own", "adm", patch_role(Role::Owner)).is_ok());
        assert!(create(&s, "own", agent("new", Role::Owner, &[])).is_ok());
        // A caller no longer in the account is no owner.
        assert!(forbidden(patch(&s, "gone", "ag", patch_role(Role::Owner))));
    }

    #[test]
    fn a_password_is_set_by_its_agent_knowing_it_or_by_an_admin_and_an_owners_only_by_an_owner() {
        let mut s = slice(
            &[],
            vec![
                agent("own", Role::Owner, &[]),
                agent("adm", Role::Admin, &[]),
                agent("ag", Role::Agent, &[]),
            ],
        );
        s.agents[2].password_hash = "$old".into();
        let set = |id: &str, by| set_password(&s, id, "$new".into(), by);
        let itself = |checked: &str| PasswordBy::Itself {
            keep: "ses_here".into(),
            checked_hash: checked.into(),
        };
        let admin = |caller: &str| PasswordBy::Admin {
            caller: caller.into(),
        };
        match set("ag", itself("$old")) {
            Ok(AccountEdit::Password {
                agent_id,
                password_hash,
                keep,
            }) => {
                assert_eq!((agent_id.as_str(), password_hash.as_str()), ("ag", "$new"));
                assert_eq!(keep.as_deref(), Some("ses_here"), "its own session stays");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            set("ag", itself("$changed-meanwhile")),
            Err(BackendError::InvalidCredentials)
        ));
        assert!(matches!(
            set("ag", admin("adm")),
            Ok(AccountEdit::Password { keep: None, .. })
        ));
        assert!(matches!(
            set("own", admin("adm")),
            Err(BackendError::Forbidden(_))
        ));
        assert!(set("own", admin("own")).is_ok());
        assert_eq!(
            set("zz", admin("own")).unwrap_err(),
            BackendError::not_found("agent")
        );
    }

    #[test]
    fn an_account_holds_at_most_a_thousand_agents() {
        let mut agents = vec![agent("own", Role::Owner, &[])];
        agents.extend((1..MAX_AGENTS).map(|i| agent(&format!("a{i}"), Role::Agent, &[])));
        let full = slice(&[], agents);
        let new = |n: &str| agent(n, Role::Agent, &[]);
        assert!(matches!(
            create(&full, "own", new("one-more")),
            Err(BackendError::Conflict(_))
        ));
        let mut room = full.clone();
        room.agents.pop();
        assert!(create(&room, "own", new("last")).is_ok());
    }

    #[test]
    fn an_edit_needs_the_caller_to_be_an_owner_or_admin_as_stored() {
        let s = slice(
            &[],
            vec![
                agent("own", Role::Owner, &[]),
                agent("adm", Role::Admin, &[]),
                agent("ag", Role::Agent, &[]),
            ],
        );
        for (caller, ok) in [("own", true), ("adm", true), ("ag", false), ("gone", false)] {
            let plan = crate::ops::by_admin(caller.into(), |slice| remove(slice, "own", "ag"));
            let got = plan(Some(&s));
            assert_eq!(got.is_ok(), ok, "{caller}: {got:?}");
            if !ok {
                assert!(matches!(got, Err(BackendError::Forbidden(_))));
            }
        }
    }
}

//! Delegated sign-in: an account's JWT settings, and which agent a verified token signs in.
//!
//! Rules:
//! - Only an owner (as stored, under the account's turn) changes the settings. `jwt` needs
//!   non-empty `issuer` and `audience` and exactly one key source (`hs256_secret`, `jwks`
//!   or `jwks_url`); a JWKS must hold a usable key; a `jwks_url` must pass the outbound
//!   target rules. Each refusal is a `422` naming its field.
//! - The settings are shown without the HS256 secret (only whether one is set).
//! - A verified token's agent is the one linked to its `sub`, else the one with its `email`
//!   (then linked to `sub`; an agent already linked to another `sub` is never taken over),
//!   else, with `provision` and an `email` claim, a new agent. Its name, groups (keys the
//!   account lacks dropped) and role (`agent` or `admin`) follow the claims present; an
//!   owner stays owner, and no claim makes one.

use presence_protocol::{JwtSettings, JwtView, Role, SignInRequest, SignInView};

use super::{AccountEdit, AccountSlice, account};
use crate::backend::{BackendError, BackendResult};
use crate::jwt::{Claims, Keys};
use crate::rows::{AgentRow, Identity, SignIn, email_key};
use crate::validate;

/// The longest issuer, audience or secret accepted.
const MAX_SETTING: usize = 1024;

/// Checks sign-in settings that need no state; `url_ok` applies the outbound target rules.
pub fn check(
    req: SignInRequest,
    url_ok: impl Fn(&str) -> Result<(), String>,
) -> BackendResult<SignIn> {
    if let Some(jwt) = &req.jwt {
        for (field, v) in [("jwt.issuer", &jwt.issuer), ("jwt.audience", &jwt.audience)] {
            if v.trim().is_empty() || v.len() > MAX_SETTING {
                return Err(BackendError::invalid_field(
                    field,
                    format!("must be a non-empty string of at most {MAX_SETTING} bytes"),
                ));
            }
        }
        let sources = [
            jwt.hs256_secret.is_some(),
            jwt.jwks.is_some(),
            jwt.jwks_url.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() != 1 {
            let field = match jwt {
                JwtSettings {
                    hs256_secret: Some(_),
                    ..
                } => "jwt.hs256_secret",
                JwtSettings { jwks: Some(_), .. } => "jwt.jwks",
                _ => "jwt.jwks_url",
            };
            return Err(BackendError::invalid_field(
                field,
                "give exactly one of hs256_secret, jwks and jwks_url",
            ));
        }
        if let Some(secret) = &jwt.hs256_secret
            && (secret.len() < 32 || secret.len() > MAX_SETTING)
        {
            return Err(BackendError::invalid_field(
                "jwt.hs256_secret",
                "must be 32 to 1024 bytes (HS256 needs a key as long as its hash)",
            ));
        }
        if let Some(jwks) = &jwt.jwks {
            Keys::parse(jwks).map_err(|e| BackendError::invalid_field("jwt.jwks", e))?;
        }
        if let Some(url) = &jwt.jwks_url {
            url_ok(url).map_err(|e| BackendError::invalid_field("jwt.jwks_url", e))?;
        }
    }
    Ok(SignIn {
        jwt: req.jwt,
        password_login: req.password_login,
        provision: req.provision,
    })
}

/// Replaces the settings, if `caller` is an owner of the account as stored.
pub fn put(slice: &AccountSlice, caller: &str, sign_in: SignIn) -> BackendResult<AccountEdit> {
    let is_owner = slice
        .agents
        .iter()
        .any(|a| a.id == caller && a.role == Role::Owner);
    if !is_owner {
        return Err(BackendError::forbidden(
            "only an owner changes how the account signs in",
        ));
    }
    Ok(AccountEdit::Identity(Identity {
        sign_in,
        ..slice.account.identity.clone()
    }))
}

/// The settings as an admin sees them.
pub fn view(s: &SignIn) -> SignInView {
    SignInView {
        jwt: s.jwt.as_ref().map(|j| JwtView {
            issuer: j.issuer.clone(),
            audience: j.audience.clone(),
            hs256_secret_set: j.hs256_secret.is_some(),
            jwks: j.jwks.clone(),
            jwks_url: j.jwks_url.clone(),
        }),
        password_login: s.password_login,
        provision: s.provision,
    }
}

/// A token refused after its signature checked out; the reason is logged.
pub fn refused(account: &str, why: &str) -> BackendError {
    tracing::info!(account, reason = why, "token sign-in refused");
    BackendError::InvalidCredentials
}

/// The agent a token signs in, as it stands now.
#[derive(Debug)]
pub enum Signs {
    /// Found, and the claims change nothing.
    As(AgentRow),
    /// Linked, changed or created by this edit (`AddAgent` or `UpdateAgent`).
    Edit(AccountEdit),
}

/// Why claims that checked out sign no agent in, or what else stopped the plan.
#[derive(Debug)]
pub enum NoAgent {
    /// A refusal, told to the client as `invalid_credentials` (the reason is logged).
    Refused(&'static str),
    Failed(BackendError),
}

impl From<BackendError> for NoAgent {
    fn from(e: BackendError) -> NoAgent {
        NoAgent::Failed(e)
    }
}

/// Which agent `claims` sign in, and what changes for it (`new_id` for a provisioned one).
pub fn agent_for(slice: &AccountSlice, claims: &Claims, new_id: &str) -> BackendResult<Signs> {
    match plan_agent(slice, claims, new_id) {
        Ok(s) => Ok(s),
        Err(NoAgent::Refused(why)) => Err(refused(&slice.account.slug, why)),
        Err(NoAgent::Failed(e)) => Err(e),
    }
}

/// [`agent_for`], saying why a refusal is one.
pub fn plan_agent(slice: &AccountSlice, claims: &Claims, new_id: &str) -> Result<Signs, NoAgent> {
    let by_sub = slice
        .agents
        .iter()
        .find(|a| a.sub.as_deref() == Some(&claims.sub));
    let found = match (by_sub, &claims.email) {
        (Some(a), _) => Some(a),
        (None, Some(email)) => {
            let key = email_key(email);
            match slice.agents.iter().find(|a| a.email_key() == key) {
                Some(a) if a.sub.is_some() => {
                    return Err(NoAgent::Refused(
                        "the email's agent is linked to another user (sub)",
                    ));
                }
                other => other,
            }
        }
        (None, None) => None,
    };
    let mut row = match found {
        Some(a) => a.clone(),
        None => new_agent(slice, claims, new_id)?,
    };
    let before = found.cloned();
    row.sub = Some(claims.sub.clone());
    if let Some(name) = &claims.name
        && validate::name("name", name).is_ok()
    {
        row.name = name.trim().to_owned();
    }
    if let Some(groups) = &claims.groups {
        row.groups = known_groups(slice, groups);
    }
    row.role = match (row.role, claims.role.as_deref()) {
        (Role::Owner, _) => Role::Owner,
        (_, Some("admin")) => Role::Admin,
        (_, Some("agent")) => Role::Agent,
        (r, _) => r,
    };
    Ok(match before {
        None => Signs::Edit(AccountEdit::AddAgent(row)),
        Some(b) if same_profile(&b, &row) => Signs::As(b),
        Some(_) => Signs::Edit(AccountEdit::UpdateAgent(row)),
    })
}

fn same_profile(a: &AgentRow, b: &AgentRow) -> bool {
    a.sub == b.sub && a.name == b.name && a.groups == b.groups && a.role == b.role
}

/// The claimed group keys the account has, each once, at most the per-agent limit.
fn known_groups(slice: &AccountSlice, claimed: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for g in claimed {
        if slice.account.groups.iter().any(|k| &k.key == g) && !out.contains(g) {
            out.push(g.clone());
        }
    }
    out.truncate(validate::MAX_GROUPS_PER_AGENT);
    out
}

/// A provisioned agent: only with `provision`, an `email` claim, and room in the account.
fn new_agent(slice: &AccountSlice, claims: &Claims, new_id: &str) -> Result<AgentRow, NoAgent> {
    if !slice.account.identity.sign_in.provision {
        return Err(NoAgent::Refused(
            "no agent has this sub or email, and provisioning is off",
        ));
    }
    let Some(email) = claims
        .email
        .as_ref()
        .filter(|e| validate::email("email", e).is_ok())
    else {
        return Err(NoAgent::Refused("provisioning needs a valid email claim"));
    };
    if slice.agents.len() >= super::agents::MAX_AGENTS {
        return Err(NoAgent::Failed(BackendError::conflict(format!(
            "an account has at most {} agents",
            super::agents::MAX_AGENTS
        ))));
    }
    let name = email.split('@').next().unwrap_or(email).to_owned();
    Ok(AgentRow {
        id: new_id.to_owned(),
        account_id: slice.account.id.clone(),
        name,
        email: email.trim().to_owned(),
        // No password: such an agent signs in with tokens (an admin may set one).
        password_hash: String::new(),
        role: Role::Agent,
        groups: Vec::new(),
        status: account::initial_status(),
        status_op_id: String::new(),
        sub: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::account::tests::{agent, slice};

    fn claims(sub: &str, email: Option<&str>) -> Claims {
        Claims {
            sub: sub.into(),
            email: email.map(Into::into),
            ..Claims::default()
        }
    }

    #[test]
    fn an_agent_is_found_by_sub_then_by_email_and_never_taken_from_another_sub() {
        let mut linked = agent("b", Role::Agent, &[]);
        linked.sub = Some("u-b".into());
        let s = slice(&[], vec![agent("a", Role::Agent, &[]), linked]);
        // By email: linked to the sub.
        let Signs::Edit(AccountEdit::UpdateAgent(row)) =
            agent_for(&s, &claims("u-a", Some("A@example.test")), "new").unwrap()
        else {
            panic!()
        };
        assert_eq!((row.id.as_str(), row.sub.as_deref()), ("a", Some("u-a")));
        // By sub, whatever the email says.
        let Signs::As(row) = agent_for(&s, &claims("u-b", Some("x@y.test")), "new").unwrap() else {
            panic!()
        };
        assert_eq!(row.id, "b");
        // Another sub with b's email: refused.
        assert_eq!(
            agent_for(&s, &claims("u-z", Some("b@example.test")), "new").unwrap_err(),
            BackendError::InvalidCredentials
        );
    }

    #[test]
    fn claims_set_name_groups_and_role_but_never_owner() {
        let s = slice(
            &["sales"],
            vec![agent("o", Role::Owner, &[]), agent("a", Role::Admin, &[])],
        );
        let mut c = claims("u-o", Some("o@example.test"));
        c.role = Some("agent".into());
        c.groups = Some(vec!["sales".into(), "nope".into(), "sales".into()]);
        c.name = Some(" Olga ".into());
        let Signs::Edit(AccountEdit::UpdateAgent(row)) = agent_for(&s, &c, "n").unwrap() else {
            panic!()
        };
        assert_eq!(row.role, Role::Owner);
        assert_eq!(row.groups, vec!["sales".to_string()]);
        assert_eq!(row.name, "Olga");
        let mut c = claims("u-a", Some("a@example.test"));
        c.role = Some("owner".into());
        let Signs::Edit(AccountEdit::UpdateAgent(row)) = agent_for(&s, &c, "n").unwrap() else {
            panic!()
        };
        assert_eq!(row.role, Role::Admin);
    }

    #[test]
    fn exactly_one_key_source_is_required_and_the_refusal_names_it() {
        let req = |jwt: serde_json::Value| -> SignInRequest {
            serde_json::from_value(serde_json::json!({"jwt": jwt})).unwrap()
        };
        let field = |r: BackendResult<SignIn>| match r {
            Err(BackendError::InvalidField { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let ok = |_: &str| Ok(());
        let two = req(serde_json::json!({"issuer": "i", "audience": "a",
            "hs256_secret": "s".repeat(32), "jwks_url": "https://x.test/jwks"}));
        assert_eq!(field(check(two, ok)), "jwt.hs256_secret");
        let none = req(serde_json::json!({"issuer": "i", "audience": "a"}));
        assert_eq!(field(check(none, ok)), "jwt.jwks_url");
        let bad = req(serde_json::json!({"issuer": "i", "audience": "a", "jwks": {"keys": 1}}));
        assert_eq!(field(check(bad, ok)), "jwt.jwks");
        let blank = req(serde_json::json!({"issuer": " ", "audience": "a",
            "hs256_secret": "s".repeat(32)}));
        assert_eq!(field(check(blank, ok)), "jwt.issuer");
    }
}

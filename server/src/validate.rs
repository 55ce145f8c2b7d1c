//! Input checks shared by every backend. Each failure is a `422 invalid_field` whose detail
//! starts with the field's name, so a client can point at the right input.

use std::collections::HashSet;

use presence_protocol::{
    AccountSettings, AgentStatus, Device, Group, IdleSettings, MAX_MESSAGE_CHARS, Messages,
    Settings, SettingsPatch,
};

use crate::backend::{BackendError, BackendResult};

const MAX_TEXT: usize = 200;

/// Every field of an account creation request, in the order errors are reported.
pub fn new_account(req: &presence_protocol::CreateAccountRequest) -> BackendResult<()> {
    slug("slug", &req.slug)?;
    name("name", &req.name)?;
    name("owner.name", &req.owner.name)?;
    email("owner.email", &req.owner.email)?;
    password("owner.password", &req.owner.password)
}

/// The longest account, email and password a login may send, in bytes: no account, agent
/// or password the server makes is longer.
pub const MAX_LOGIN_ACCOUNT: usize = 64;
pub const MAX_LOGIN_EMAIL: usize = 320;
pub const MAX_PASSWORD: usize = 1024;

/// A login's strings within their bounds (`422` naming the field); what they hold is the
/// credentials check's business.
pub fn login_strings(req: &presence_protocol::LoginRequest) -> BackendResult<()> {
    for (field, value, max) in [
        ("account", &req.account, MAX_LOGIN_ACCOUNT),
        ("email", &req.email, MAX_LOGIN_EMAIL),
        ("password", &req.password, MAX_PASSWORD),
    ] {
        if value.len() > max {
            return Err(BackendError::invalid_field(
                field,
                format!("at most {max} bytes"),
            ));
        }
    }
    Ok(())
}

pub fn slug(field: &str, s: &str) -> BackendResult<()> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && !s.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(BackendError::invalid_field(
            field,
            "use 1-64 lowercase letters, digits, '-' or '_'",
        ))
    }
}

pub fn name(field: &str, s: &str) -> BackendResult<()> {
    let t = s.trim();
    if t.is_empty() {
        return Err(BackendError::invalid_field(field, "must not be empty"));
    }
    if t.chars().count() > MAX_TEXT {
        return Err(BackendError::invalid_field(
            field,
            format!("longer than {MAX_TEXT} characters"),
        ));
    }
    Ok(())
}

pub fn email(field: &str, s: &str) -> BackendResult<()> {
    let t = s.trim();
    let ok = t.len() <= 320
        && t.split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !t.chars().any(char::is_whitespace);
    if ok {
        Ok(())
    } else {
        Err(BackendError::invalid_field(field, "not an email address"))
    }
}

/// The fewest characters a new password may have.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// A new password: at least [`MIN_PASSWORD_CHARS`] characters, at most [`MAX_PASSWORD`]
/// bytes. (A login checks only the upper bound: passwords set before the rule still sign in.)
pub fn password(field: &str, s: &str) -> BackendResult<()> {
    if s.chars().count() < MIN_PASSWORD_CHARS {
        return Err(BackendError::invalid_field(
            field,
            format!("a password must have at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if s.len() > MAX_PASSWORD {
        return Err(BackendError::invalid_field(
            field,
            format!("longer than {MAX_PASSWORD} bytes"),
        ));
    }
    Ok(())
}

pub fn device(d: &Device) -> BackendResult<()> {
    if d.id.trim().is_empty() || d.id.len() > MAX_TEXT {
        return Err(BackendError::invalid_field(
            "device.id",
            "must be 1-200 characters",
        ));
    }
    if d.name.len() > MAX_TEXT {
        return Err(BackendError::invalid_field(
            "device.name",
            "longer than 200 bytes",
        ));
    }
    if d.app_version.len() > MAX_TEXT {
        return Err(BackendError::invalid_field(
            "device.app_version",
            "longer than 200 bytes",
        ));
    }
    Ok(())
}

/// Op ids are UUIDs (the client sends v7, which sort by time).
pub fn op_id(s: &str) -> BackendResult<()> {
    uuid::Uuid::parse_str(s)
        .map(|_| ())
        .map_err(|_| BackendError::invalid_field("op_id", "must be a UUID"))
}

/// The most groups an account has (more is a conflict), and an agent belongs to.
pub const MAX_GROUPS: usize = 200;
pub const MAX_GROUPS_PER_AGENT: usize = 50;

/// A key chosen by a user that ends up in URLs, markup and embed snippets (group keys,
/// custom status ids): `^[a-z0-9][a-z0-9_-]{0,63}$`.
pub fn key_ok(key: &str) -> bool {
    let mut chars = key.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    first_ok
        && key.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// An agent's group keys: each must exist in the account; duplicates are dropped; at most
/// [`MAX_GROUPS_PER_AGENT`].
pub fn agent_groups(keys: &[String], known: &[Group]) -> BackendResult<Vec<String>> {
    let mut out: Vec<String> = Vec::with_capacity(keys.len());
    for k in keys {
        if !known.iter().any(|g| &g.key == k) {
            return Err(BackendError::invalid_field(
                "groups",
                format!("unknown group key {k:?}"),
            ));
        }
        if !out.contains(k) {
            out.push(k.clone());
        }
    }
    if out.len() > MAX_GROUPS_PER_AGENT {
        return Err(BackendError::invalid_field(
            "groups",
            format!("at most {MAX_GROUPS_PER_AGENT} groups per agent"),
        ));
    }
    Ok(out)
}

/// A whole group set for `PUT /v1/admin/groups`.
pub fn groups(groups: Vec<Group>) -> BackendResult<Vec<Group>> {
    let mut seen = HashSet::new();
    for (i, g) in groups.iter().enumerate() {
        if !key_ok(&g.key) {
            return Err(BackendError::invalid_field(
                &format!("[{i}].key"),
                "use 1-64 of a-z, 0-9, _ and -, starting with a letter or digit",
            ));
        }
        name(&format!("[{i}].name"), &g.name)?;
        if !seen.insert(g.key.as_str()) {
            return Err(BackendError::invalid_field(
                &format!("[{i}].key"),
                format!("duplicate key {:?}", g.key),
            ));
        }
    }
    if groups.len() > MAX_GROUPS {
        return Err(BackendError::conflict(format!(
            "an account has at most {MAX_GROUPS} groups"
        )));
    }
    Ok(groups)
}

/// Applies a settings patch and checks the bounds: every value positive, each ttl at least
/// twice the active interval, active ttl at least 1000 ms, renew margin below the background
/// ttl.
/// Applies a settings patch: timings within their bounds, messages of at most
/// [`MAX_MESSAGE_CHARS`] characters (blank or `null` clears one).
pub fn account_settings(
    current: AccountSettings,
    p: SettingsPatch,
) -> BackendResult<AccountSettings> {
    let message = |field: &str, patch: Option<Option<String>>, cur: Option<String>| match patch {
        None => Ok(cur),
        Some(None) => Ok(None),
        Some(Some(m)) => {
            let m = m.trim();
            if m.chars().count() > MAX_MESSAGE_CHARS {
                return Err(BackendError::invalid_field(
                    field,
                    format!("must be at most {MAX_MESSAGE_CHARS} characters"),
                ));
            }
            Ok((!m.is_empty()).then(|| m.to_owned()))
        }
    };
    let messages = Messages {
        busy_message: message(
            "busy_message",
            p.busy_message.clone(),
            current.messages.busy_message,
        )?,
        offline_message: message(
            "offline_message",
            p.offline_message.clone(),
            current.messages.offline_message,
        )?,
    };
    let idle = idle_settings(current.idle, &p)?;
    Ok(AccountSettings {
        timings: settings(current.timings, p)?,
        messages,
        idle,
    })
}

/// Automatic away: `idle_after_ms` null (off) or 1 000 to 86 400 000; `idle_status` busy or
/// offline.
fn idle_settings(current: IdleSettings, p: &SettingsPatch) -> BackendResult<IdleSettings> {
    let s = IdleSettings {
        idle_after_ms: p.idle_after_ms.unwrap_or(current.idle_after_ms),
        idle_status: p.idle_status.unwrap_or(current.idle_status),
        return_on_activity: p.return_on_activity.unwrap_or(current.return_on_activity),
    };
    if s.idle_after_ms
        .is_some_and(|ms| !(1_000..=86_400_000).contains(&ms))
    {
        return Err(BackendError::invalid_field(
            "idle_after_ms",
            "must be null (off) or between 1000 and 86400000",
        ));
    }
    if s.idle_status == AgentStatus::Online {
        return Err(BackendError::invalid_field(
            "idle_status",
            "must be busy or offline",
        ));
    }
    Ok(s)
}

pub fn settings(current: Settings, p: SettingsPatch) -> BackendResult<Settings> {
    let s = Settings {
        active_interval_ms: p.active_interval_ms.unwrap_or(current.active_interval_ms),
        active_ttl_ms: p.active_ttl_ms.unwrap_or(current.active_ttl_ms),
        background_ttl_ms: p.background_ttl_ms.unwrap_or(current.background_ttl_ms),
        renew_margin_ms: p.renew_margin_ms.unwrap_or(current.renew_margin_ms),
    };
    check_settings(&s)?;
    Ok(s)
}

pub fn check_settings(s: &Settings) -> BackendResult<()> {
    const DAY: i64 = 86_400_000;
    if s.active_interval_ms <= 0 || s.active_interval_ms > DAY {
        return Err(BackendError::invalid_field(
            "active_interval_ms",
            "must be between 1 and 86400000",
        ));
    }
    if s.active_ttl_ms < 1000 || s.active_ttl_ms > 7 * DAY {
        return Err(BackendError::invalid_field(
            "active_ttl_ms",
            "must be between 1000 and 604800000",
        ));
    }
    if s.active_ttl_ms < 2 * s.active_interval_ms {
        return Err(BackendError::invalid_field(
            "active_ttl_ms",
            "must be at least twice active_interval_ms",
        ));
    }
    if s.background_ttl_ms < 1000 || s.background_ttl_ms > 7 * DAY {
        return Err(BackendError::invalid_field(
            "background_ttl_ms",
            "must be between 1000 and 604800000",
        ));
    }
    if s.background_ttl_ms < 2 * s.active_interval_ms {
        return Err(BackendError::invalid_field(
            "background_ttl_ms",
            "must be at least twice active_interval_ms",
        ));
    }
    if s.renew_margin_ms < 0 || s.renew_margin_ms >= s.background_ttl_ms {
        return Err(BackendError::invalid_field(
            "renew_margin_ms",
            "must be at least 0 and below background_ttl_ms",
        ));
    }
    Ok(())
}

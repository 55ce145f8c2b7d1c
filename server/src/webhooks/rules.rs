//! What may be made and changed: the planning of `POST`, `PATCH`, `rotate-secret` and
//! `DELETE` on `/v1/admin/webhooks`, for every backend.
//!
//! Guarantees:
//! - A URL follows the outbound target rules (`https` on port 443 at a public address,
//!   unless its host is on `--push-webhook-allow`), at most 2 048 characters; `events` is
//!   `["*"]` or a non-empty list of known event types without repeats; a description is at
//!   most 200 characters. Each refusal is a `422` naming its field.
//! - A secret is `whsec_` and 32 random bytes; after a rotation the old one keeps signing
//!   beside the new one for [`ROTATION_OVERLAP_MS`].
//! - Enabling an endpoint clears why it was disabled; disabling it by hand says `admin`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use presence_protocol::webhooks::ALL_EVENTS;
use presence_protocol::{DisabledReason, EventType, NewWebhook, WebhookPatch};
use rand::RngCore;

use super::{Events, WebhookRow};
use crate::backend::{BackendError, BackendResult};
use crate::outbound::TargetRules;

/// How long an old secret signs beside the new one.
pub const ROTATION_OVERLAP_MS: i64 = 24 * 3_600_000;
const MAX_URL: usize = 2048;
const MAX_DESCRIPTION: usize = 200;

/// A new signing secret.
pub fn new_secret() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    format!(
        "{}{}",
        crate::outbound::signature::SECRET_PREFIX,
        B64.encode(b)
    )
}

fn new_id() -> String {
    let mut b = [0u8; 12];
    rand::rng().fill_bytes(&mut b);
    format!("wh_{}", hex::encode(b))
}

fn url(rules: &TargetRules, url: &str) -> BackendResult<String> {
    let url = url.trim();
    if url.len() > MAX_URL {
        return Err(BackendError::invalid_field(
            "url",
            format!("at most {MAX_URL} characters"),
        ));
    }
    rules
        .public(url)
        .map(|u| u.to_string())
        .map_err(|why| BackendError::invalid_field("url", why))
}

fn events(names: &[String]) -> BackendResult<Events> {
    if names.len() == 1 && names[0] == ALL_EVENTS {
        return Ok(Events::All);
    }
    if names.is_empty() {
        return Err(BackendError::invalid_field(
            "events",
            "name at least one event type, or [\"*\"] for all",
        ));
    }
    let mut kinds = Vec::with_capacity(names.len());
    for n in names {
        let kind = EventType::parse(n).ok_or_else(|| {
            BackendError::invalid_field(
                "events",
                format!("unknown event type {n:?} (\"*\" stands alone)"),
            )
        })?;
        if kinds.contains(&kind) {
            return Err(BackendError::invalid_field(
                "events",
                format!("{n:?} is listed twice"),
            ));
        }
        kinds.push(kind);
    }
    Ok(Events::Only(kinds))
}

fn description(d: Option<&str>) -> BackendResult<Option<String>> {
    match d.map(str::trim) {
        Some(d) if d.chars().count() > MAX_DESCRIPTION => Err(BackendError::invalid_field(
            "description",
            format!("at most {MAX_DESCRIPTION} characters"),
        )),
        Some("") | None => Ok(None),
        Some(d) => Ok(Some(d.to_owned())),
    }
}

/// A new endpoint of `account_id`, enabled, with a new secret.
pub fn create(
    rules: &TargetRules,
    account_id: &str,
    req: &NewWebhook,
    now: i64,
) -> BackendResult<WebhookRow> {
    Ok(WebhookRow {
        id: new_id(),
        account_id: account_id.to_owned(),
        url: url(rules, &req.url)?,
        events: events(&req.events)?,
        description: description(req.description.as_deref())?,
        enabled: true,
        disabled_reason: None,
        secret: new_secret(),
        previous_secret: None,
        previous_until: None,
        created_at: now,
    })
}

/// The endpoint with a patch applied.
pub fn patch(rules: &TargetRules, row: &WebhookRow, p: &WebhookPatch) -> BackendResult<WebhookRow> {
    let mut next = row.clone();
    if let Some(u) = &p.url {
        next.url = url(rules, u)?;
    }
    if let Some(e) = &p.events {
        next.events = events(e)?;
    }
    if p.description.is_some() {
        next.description = description(p.description.as_deref())?;
    }
    match p.enabled {
        Some(true) => {
            next.enabled = true;
            next.disabled_reason = None;
        }
        Some(false) if row.enabled => {
            next.enabled = false;
            next.disabled_reason = Some(DisabledReason::Admin);
        }
        _ => {}
    }
    Ok(next)
}

/// The endpoint with a new secret; the current one signs beside it for a day.
pub fn rotate(row: &WebhookRow, now: i64) -> WebhookRow {
    WebhookRow {
        secret: new_secret(),
        previous_secret: Some(row.secret.clone()),
        previous_until: Some(now + ROTATION_OVERLAP_MS),
        ..row.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::BackendError;

    fn field(e: BackendError) -> String {
        match e {
            BackendError::InvalidField { field, .. } => field,
            other => panic!("{other:?}"),
        }
    }

    fn req(url: &str, events: &[&str]) -> NewWebhook {
        NewWebhook {
            url: url.into(),
            events: events.iter().map(|s| s.to_string()).collect(),
            description: Some("  routing  ".into()),
        }
    }

    #[test]
    fn a_new_endpoint_is_enabled_with_a_fresh_valid_secret() {
        let rules = TargetRules::default();
        let a = create(&rules, "acc_1", &req("https://example.com/hook", &["*"]), 5).unwrap();
        let b = create(&rules, "acc_1", &req("https://example.com/hook", &["*"]), 5).unwrap();
        assert!(a.enabled && a.events == Events::All);
        assert_eq!(a.description.as_deref(), Some("routing"));
        assert_ne!(a.secret, b.secret);
        assert_ne!(a.id, b.id);
        assert!(crate::outbound::signature::Secret::parse(&a.secret).is_ok());
    }

    #[test]
    fn bad_fields_are_refused_by_name() {
        let rules = TargetRules::default();
        let bad = |u: &str, e: &[&str]| field(create(&rules, "a", &req(u, e), 0).unwrap_err());
        assert_eq!(bad("http://example.com/", &["*"]), "url");
        assert_eq!(bad("https://127.0.0.1/", &["*"]), "url");
        assert_eq!(bad("https://example.com:8443/", &["*"]), "url");
        assert_eq!(bad("https://example.com/", &[]), "events");
        assert_eq!(bad("https://example.com/", &["agent.typing"]), "events");
        assert_eq!(
            bad("https://example.com/", &["*", "agent.status"]),
            "events"
        );
        assert_eq!(
            bad("https://example.com/", &["agent.status", "agent.status"]),
            "events"
        );
        let mut long = req("https://example.com/", &["*"]);
        long.description = Some("x".repeat(201));
        assert_eq!(
            field(create(&rules, "a", &long, 0).unwrap_err()),
            "description"
        );
    }

    #[test]
    fn an_allowed_host_may_be_plain_http_on_loopback() {
        let rules = TargetRules::new(&["127.0.0.1".to_owned()]);
        assert!(create(&rules, "a", &req("http://127.0.0.1:9/x", &["*"]), 0).is_ok());
    }

    #[test]
    fn disabling_by_hand_says_admin_and_enabling_clears_it() {
        let rules = TargetRules::default();
        let row = create(&rules, "a", &req("https://example.com/", &["*"]), 0).unwrap();
        let off = patch(
            &rules,
            &row,
            &WebhookPatch {
                enabled: Some(false),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(off.disabled_reason, Some(DisabledReason::Admin));
        let gone = WebhookRow {
            disabled_reason: Some(DisabledReason::Gone),
            ..off.clone()
        };
        let still = patch(
            &rules,
            &gone,
            &WebhookPatch {
                enabled: Some(false),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(still.disabled_reason, Some(DisabledReason::Gone));
        let on = patch(
            &rules,
            &gone,
            &WebhookPatch {
                enabled: Some(true),
                events: Some(vec!["agent.availability".into()]),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(on.enabled && on.disabled_reason.is_none());
        assert_eq!(on.events, Events::Only(vec![EventType::AgentAvailability]));
    }

    #[test]
    fn a_rotation_keeps_the_old_secret_signing_for_a_day() {
        let rules = TargetRules::default();
        let row = create(&rules, "a", &req("https://example.com/", &["*"]), 0).unwrap();
        let r = rotate(&row, 1000);
        assert_ne!(r.secret, row.secret);
        assert_eq!(r.previous_secret.as_deref(), Some(row.secret.as_str()));
        assert_eq!(r.previous_until, Some(1000 + ROTATION_OVERLAP_MS));
    }
}

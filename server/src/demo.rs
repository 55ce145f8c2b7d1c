//! `--demo`: a ready-made account to try Presence with.
//!
//! Creates, if missing, account `demo` with groups `sales` and `support` and three agents (one
//! in no group, so it counts for every group), then prints their credentials, the demo page
//! (`/demo/`, the widget live on a host page) and the widget URLs. Running it again prints the
//! same credentials.

use presence_protocol::{CreateAccountRequest, Group, NewAgentRequest, NewOwner, Role, Settings};

use crate::backend::Principal;
use crate::error::ApiError;
use crate::ops::Ops;

pub const SLUG: &str = "demo";

/// (name, email, password, groups, role)
pub const AGENTS: &[(&str, &str, &str, &[&str], Role)] = &[
    (
        "Alice Owner",
        "alice@demo.test",
        "alice-demo-pass",
        &["sales"],
        Role::Owner,
    ),
    (
        "Bob Support",
        "bob@demo.test",
        "bob-demo-pass",
        &["support"],
        Role::Agent,
    ),
    (
        "Carol Anywhere",
        "carol@demo.test",
        "carol-demo-pass",
        &[],
        Role::Agent,
    ),
];

/// Returns the demo account's widget key.
pub async fn ensure(ops: &Ops, defaults: Settings) -> Result<String, ApiError> {
    if let Some(info) = ops.account_by_slug(SLUG).await? {
        return Ok(info.widget_key);
    }
    let (name, email, password, _, _) = AGENTS[0];
    // History ends where the demo agents begin: their first rows (created, signed out) come
    // after it.
    let seeded_until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let created = ops
        .create_account(
            CreateAccountRequest {
                name: "Demo Company".to_owned(),
                slug: SLUG.to_owned(),
                owner: NewOwner {
                    name: name.to_owned(),
                    email: email.to_owned(),
                    password: password.to_owned(),
                },
            },
            defaults,
        )
        .await?;
    // The owner acting as an operator, with no session of its own.
    let owner = Principal {
        session_id: "".into(),
        agent_id: created.owner.id.as_str().into(),
        account_id: created.account.id.as_str().into(),
        role: Role::Owner,
    };
    ops.put_groups(
        &owner,
        vec![
            Group {
                key: "sales".to_owned(),
                name: "Sales".to_owned(),
            },
            Group {
                key: "support".to_owned(),
                name: "Support".to_owned(),
            },
        ],
    )
    .await?;
    ops.patch_agent(
        &owner,
        &created.owner.id,
        presence_protocol::PatchAgentRequest {
            groups: Some(vec!["sales".to_owned()]),
            ..Default::default()
        },
    )
    .await?;
    for (name, email, password, groups, role) in &AGENTS[1..] {
        ops.create_agent(
            &owner,
            NewAgentRequest {
                name: (*name).to_owned(),
                email: (*email).to_owned(),
                password: (*password).to_owned(),
                groups: groups.iter().map(|g| (*g).to_owned()).collect(),
                role: *role,
            },
        )
        .await?;
    }
    seed_history(ops, &owner, seeded_until).await?;
    Ok(created.account.widget_key)
}

/// Four weeks of believable working days for every demo agent (weekdays, 12 changes a
/// day), so the reports page shows something real at once.
async fn seed_history(ops: &Ops, owner: &Principal, until: i64) -> Result<(), ApiError> {
    let account = ops.admin_account(owner).await?;
    let ids: Vec<&str> = account.agents.iter().map(|a| a.id.as_str()).collect();
    let plan = crate::history::seed::Plan {
        from: until - HISTORY_DAYS * 86_400_000,
        to: until,
        tz: account
            .opening_hours
            .timezone
            .parse()
            .unwrap_or(chrono_tz::UTC),
        changes_per_day: 12,
        weekdays_only: true,
        seed: 2026,
    };
    let rows = crate::history::seed::synthetic(&ids, &plan);
    ops.backend()
        .import_history(&owner.account_id, rows)
        .await
        .map_err(ApiError::from)
}

/// How far back the demo's history goes.
const HISTORY_DAYS: i64 = 28;

/// The text `--demo` prints.
pub fn describe(base_url: &str, widget_key: &str, admin_token: Option<&str>) -> String {
    let mut s = String::from("demo account \"demo\" is ready:\n");
    for (name, email, password, groups, role) in AGENTS {
        let groups = if groups.is_empty() {
            "no group (counts for every group)".to_owned()
        } else {
            format!("group {}", groups.join(","))
        };
        s.push_str(&format!(
            "  {name:<15} email {email:<17} password {password:<16} {} {groups}\n",
            role.as_str()
        ));
    }
    s.push_str(&format!(
        "  demo page       {base_url}/demo/?key={widget_key}   (open it in a browser)\n"
    ));
    s.push_str(&format!("  widget key      {widget_key}\n"));
    s.push_str(&format!(
        "  widget status   {base_url}/v1/widget/{widget_key}/status\n"
    ));
    s.push_str(&format!(
        "  widget events   {base_url}/v1/widget/{widget_key}/events\n"
    ));
    if let Some(t) = admin_token {
        s.push_str(&format!("  admin token     {t}\n"));
    }
    s
}

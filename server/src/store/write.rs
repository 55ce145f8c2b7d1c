//! The durable changes of the embedded backend, one variant each, and the SQL that makes
//! each of them. Owned, so a request can queue one for a group commit and wait.
//!
//! Guarantees: [`Write::apply`] runs inside a transaction the caller opened and commits
//! nothing itself; a write that ends sessions touches only sessions not ended yet, so the
//! first end recorded for a session is the one that stays.

use presence_protocol::{
    AccountSettings, AgentStatus, CustomStatus, EndReason, Group, OpeningHours, PushRegistration,
    StatusView,
};
use rusqlite::{Connection, params};

use super::{AccountRow, AgentRow, SessionRow, StoreResult, events, history, json, schema};

/// One status op to record: the answer it got (for idempotent retries) and, if it applied,
/// the agent's new status.
#[derive(Debug, Clone)]
pub struct StatusRecord {
    pub agent_id: String,
    pub op_id: String,
    pub applied: Option<StatusView>,
    pub response_json: String,
    pub now: i64,
}

/// One durable change.
#[derive(Debug, Clone)]
pub enum Write {
    /// A status op and its answer (and, when applied, the agent's new status).
    Status(StatusRecord),
    /// A new account with its owner.
    Account {
        account: Box<AccountRow>,
        owner: Box<AgentRow>,
        now: i64,
    },
    /// A new agent (its first availability row at `now`).
    Agent { row: AgentRow, now: i64 },
    /// Name, role and groups of an agent.
    AgentProfile(AgentRow),
    /// Deletes an agent, its op ids, and ends its sessions (`removed`).
    DeleteAgent { agent_id: String, now: i64 },
    /// An agent's new password; its sessions but `keep` end (`credentials_changed`).
    Password {
        agent_id: String,
        password_hash: String,
        keep: Option<String>,
        now: i64,
    },
    /// An account's groups, and the agents whose group lists changed with them.
    Groups {
        account_id: String,
        groups: Vec<Group>,
        agents: Vec<(String, Vec<String>)>,
    },
    OpeningHours {
        account_id: String,
        hours: OpeningHours,
    },
    Settings {
        account_id: String,
        settings: AccountSettings,
    },
    /// The sign-in settings and API keys replaced.
    Identity {
        account_id: String,
        identity: crate::rows::Identity,
    },
    /// The custom statuses replaced, and the statuses of the agents who lost theirs.
    CustomStatuses {
        account_id: String,
        statuses: Vec<CustomStatus>,
        resets: Vec<(String, StatusView)>,
        now: i64,
    },
    /// A new session; ends `replaces` (the same device's old session, the agent's oldest
    /// beyond its cap) with it.
    Session {
        row: SessionRow,
        replaces: Vec<String>,
        now: i64,
    },
    /// Ends sessions (logout, expiry).
    EndSessions {
        ended: Vec<(String, EndReason)>,
        now: i64,
    },
    Push {
        session_id: String,
        push: Option<PushRegistration>,
    },
    /// Availability log rows made elsewhere (the demo's history), added as they are.
    ImportHistory {
        account_id: String,
        rows: std::sync::Arc<Vec<crate::history::Logged>>,
    },
    /// The account's chat box view changed (the `chatbox.view` event), published at `at`.
    ViewEvent {
        account_id: String,
        view: Box<presence_protocol::ChatboxView>,
        at: i64,
    },
    /// What came of a webhook attempt ([`super::webhooks::settle`]).
    WebhookSettle {
        job: Box<crate::webhooks::Job>,
        settle: crate::webhooks::Settle,
    },
    /// Webhook cursors past events their endpoints do not take, and manual retries of
    /// events past their retention ([`super::webhooks::cursors`]).
    WebhookCursors {
        skipped: Vec<(String, i64)>,
        expired: Vec<(String, i64)>,
        now: i64,
    },
    /// Chat box view versions up to `upto` are reserved: after a crash the next run starts
    /// above them, so a version once served never means another view.
    ViewVersions { account_id: String, upto: i64 },
}

impl Write {
    /// Whether a unique constraint can refuse this write on its own (a taken slug, widget
    /// key or email); such a write gets a savepoint in a group.
    pub(super) fn may_be_refused(&self) -> bool {
        matches!(
            self,
            Write::Account { .. } | Write::Agent { .. } | Write::AgentProfile(_)
        )
    }

    /// Makes the change inside the caller's transaction.
    pub(super) fn apply(&self, tx: &Connection) -> StoreResult<()> {
        match self {
            Write::Status(op) => {
                record_status_op_in(
                    tx,
                    &op.agent_id,
                    &op.op_id,
                    op.applied.as_ref(),
                    &op.response_json,
                    op.now,
                )?;
                if let Some(applied) = &op.applied {
                    events::status(tx, &op.agent_id, applied, op.now)?;
                    history::settle(tx, &op.agent_id, op.now, None)?;
                }
                Ok(())
            }
            Write::Account {
                account: a,
                owner,
                now,
            } => {
                tx.prepare_cached(
                    "INSERT INTO accounts (id, slug, name, widget_key, settings, opening_hours,
                                           groups_json, created_at, view_version)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?
                .execute(params![
                    a.id,
                    a.slug,
                    a.name,
                    a.widget_key,
                    json(&a.settings),
                    json(&a.opening_hours),
                    json(&a.groups),
                    now,
                    a.view_version
                ])?;
                insert_agent(tx, owner)?;
                history::settle(tx, &owner.id, *now, None)
            }
            Write::Agent { row, now } => {
                insert_agent(tx, row)?;
                history::settle(tx, &row.id, *now, None)
            }
            Write::AgentProfile(a) => {
                tx.prepare_cached(
                    "UPDATE agents SET name = ?2, role = ?3, groups_json = ?4, sub = ?5
                     WHERE id = ?1",
                )?
                .execute(params![
                    a.id,
                    a.name,
                    a.role.as_str(),
                    json(&a.groups),
                    a.sub
                ])?;
                Ok(())
            }
            Write::DeleteAgent { agent_id, now } => {
                let live = events::live_sessions(tx, agent_id, None)?;
                tx.prepare_cached(
                    "UPDATE sessions SET ended_reason = 'removed', ended_at = ?2
                     WHERE agent_id = ?1 AND ended_reason IS NULL",
                )?
                .execute(params![agent_id, now])?;
                for id in &live {
                    events::session(tx, id, Some(EndReason::Removed), *now)?;
                }
                history::settle(tx, agent_id, *now, Some(EndReason::Removed))?;
                tx.prepare_cached("DELETE FROM status_ops WHERE agent_id = ?1")?
                    .execute([agent_id])?;
                tx.prepare_cached("DELETE FROM agents WHERE id = ?1")?
                    .execute([agent_id])?;
                Ok(())
            }
            Write::Password {
                agent_id,
                password_hash,
                keep,
                now,
            } => {
                tx.prepare_cached("UPDATE agents SET password_hash = ?2 WHERE id = ?1")?
                    .execute(params![agent_id, password_hash])?;
                let live = events::live_sessions(tx, agent_id, keep.as_deref())?;
                tx.prepare_cached(
                    "UPDATE sessions SET ended_reason = 'credentials_changed', ended_at = ?2
                     WHERE agent_id = ?1 AND ended_reason IS NULL AND id IS NOT ?3",
                )?
                .execute(params![agent_id, now, keep])?;
                for id in &live {
                    events::session(tx, id, Some(EndReason::CredentialsChanged), *now)?;
                }
                history::settle(tx, agent_id, *now, Some(EndReason::CredentialsChanged))
            }
            Write::Groups {
                account_id,
                groups,
                agents,
            } => {
                tx.prepare_cached("UPDATE accounts SET groups_json = ?2 WHERE id = ?1")?
                    .execute(params![account_id, json(groups)])?;
                let mut stmt =
                    tx.prepare_cached("UPDATE agents SET groups_json = ?2 WHERE id = ?1")?;
                for (id, g) in agents {
                    stmt.execute(params![id, json(g)])?;
                }
                Ok(())
            }
            Write::OpeningHours { account_id, hours } => {
                tx.prepare_cached("UPDATE accounts SET opening_hours = ?2 WHERE id = ?1")?
                    .execute(params![account_id, json(hours)])?;
                Ok(())
            }
            Write::Settings {
                account_id,
                settings,
            } => {
                tx.prepare_cached("UPDATE accounts SET settings = ?2 WHERE id = ?1")?
                    .execute(params![account_id, json(settings)])?;
                Ok(())
            }
            Write::Identity {
                account_id,
                identity,
            } => {
                tx.prepare_cached("UPDATE accounts SET identity = ?2 WHERE id = ?1")?
                    .execute(params![account_id, json(identity)])?;
                Ok(())
            }
            Write::CustomStatuses {
                account_id,
                statuses,
                resets,
                now,
            } => {
                tx.prepare_cached("UPDATE accounts SET custom_statuses = ?2 WHERE id = ?1")?
                    .execute(params![account_id, json(statuses)])?;
                for (agent_id, s) in resets {
                    write_status_in(tx, agent_id, s, None, *now)?;
                    events::status(tx, agent_id, s, *now)?;
                    history::settle(tx, agent_id, *now, None)?;
                }
                Ok(())
            }
            Write::Session { row, replaces, now } => {
                insert_session(tx, row, replaces, *now)?;
                history::settle(tx, &row.agent_id, *now, None)
            }
            Write::EndSessions { ended, now } => {
                let mut stmt = tx.prepare_cached(
                    "UPDATE sessions SET ended_reason = ?2, ended_at = ?3
                     WHERE id = ?1 AND ended_reason IS NULL",
                )?;
                let mut agent_of =
                    tx.prepare_cached("SELECT agent_id FROM sessions WHERE id = ?1")?;
                for (id, reason) in ended {
                    if stmt.execute(params![id, reason.as_str(), now])? == 1 {
                        events::session(tx, id, Some(*reason), *now)?;
                        let agent_id: String = agent_of.query_row([id], |r| r.get(0))?;
                        history::settle(tx, &agent_id, *now, Some(*reason))?;
                    }
                }
                Ok(())
            }
            Write::Push { session_id, push } => {
                let push = push.as_ref();
                tx.prepare_cached(
                    "UPDATE sessions SET push_provider = ?2, push_token = ?3, push_p256dh = ?4,
                        push_auth = ?5 WHERE id = ?1",
                )?
                .execute(params![
                    session_id,
                    push.map(|p| p.provider.as_str()),
                    push.map(|p| p.token.as_str()),
                    push.and_then(|p| p.p256dh.as_deref()),
                    push.and_then(schema::push_auth_column),
                ])?;
                Ok(())
            }
            Write::ImportHistory { account_id, rows } => history::import(tx, account_id, rows),
            Write::WebhookSettle { job, settle } => super::webhooks::settle(tx, job, settle),
            Write::WebhookCursors {
                skipped,
                expired,
                now,
            } => super::webhooks::cursors(tx, skipped, expired, *now),
            Write::ViewEvent {
                account_id,
                view,
                at,
            } => events::emit(tx, account_id, &crate::history::events::view(view, *at)).map(drop),
            Write::ViewVersions { account_id, upto } => {
                tx.prepare_cached(
                    "UPDATE accounts SET view_version = MAX(view_version, ?2) WHERE id = ?1",
                )?
                .execute(params![account_id, upto])?;
                Ok(())
            }
        }
    }
}

fn insert_session(
    tx: &Connection,
    s: &SessionRow,
    replaces: &[String],
    now: i64,
) -> StoreResult<()> {
    for old in replaces {
        let ended = tx
            .prepare_cached(
                "UPDATE sessions SET ended_reason = 'replaced', ended_at = ?2
                 WHERE id = ?1 AND ended_reason IS NULL",
            )?
            .execute(params![old, now])?;
        if ended == 1 {
            events::session(tx, old, Some(EndReason::Replaced), now)?;
        }
    }
    let push = s.push.as_ref();
    tx.prepare_cached(
        "INSERT INTO sessions (id, account_id, agent_id, token_hash, device_id, platform,
            device_name, app_version, mode, lease_until, push_provider, push_token, created_at,
            push_p256dh, push_auth)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?
    .execute(params![
        s.id,
        s.account_id,
        s.agent_id,
        s.token_hash,
        s.device.id,
        s.device.platform.as_str(),
        s.device.name,
        s.device.app_version,
        s.mode.as_str(),
        s.lease_until,
        push.map(|p| p.provider.as_str()),
        push.map(|p| p.token.as_str()),
        now,
        push.and_then(|p| p.p256dh.as_deref()),
        push.and_then(schema::push_auth_column),
    ])?;
    events::session(tx, &s.id, None, now)
}

/// An agent's status row; its op id too when given (a reset keeps the op that set it).
/// Stores an agent's new status and keeps it in the status log, applied at `now`.
fn write_status_in(
    tx: &Connection,
    agent_id: &str,
    s: &StatusView,
    op_id: Option<&str>,
    now: i64,
) -> StoreResult<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO status_log (agent_id, version, applied_at, status)
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![agent_id, s.version, now, json(s)])?;
    tx.prepare_cached(
        "UPDATE agents SET status = ?2, status_version = ?3, intent_at = ?4,
                changed_by_device = ?5, status_op_id = coalesce(?6, status_op_id),
                status_until = ?7, status_then = ?8, custom_status = ?9, status_note = ?10,
                status_cause = ?11, changed_by_agent = ?12
         WHERE id = ?1",
    )?
    .execute(params![
        agent_id,
        s.status.as_str(),
        s.version,
        s.intent_at,
        s.changed_by_device,
        op_id,
        s.until,
        s.then.map(AgentStatus::as_str),
        s.custom_status,
        s.note,
        s.cause.as_str(),
        s.changed_by_agent,
    ])?;
    Ok(())
}

fn record_status_op_in(
    tx: &Connection,
    agent_id: &str,
    op_id: &str,
    applied: Option<&StatusView>,
    response_json: &str,
    now: i64,
) -> StoreResult<()> {
    {
        if let Some(s) = applied {
            write_status_in(tx, agent_id, s, Some(op_id), now)?;
        }
        tx.prepare_cached(
            "INSERT OR IGNORE INTO status_ops (agent_id, op_id, response, created_at)
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![agent_id, op_id, response_json, now])?;
        Ok(())
    }
}

fn insert_agent(conn: &Connection, a: &AgentRow) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO agents (id, account_id, name, email, email_key, password_hash, role,
            groups_json, status, status_version, intent_at, changed_by_device, status_op_id,
            status_until, status_then, custom_status, status_note, status_cause,
            changed_by_agent, sub)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
            ?18, ?19, ?20)",
    )?
    .execute(params![
        a.id,
        a.account_id,
        a.name,
        a.email,
        a.email_key(),
        a.password_hash,
        a.role.as_str(),
        json(&a.groups),
        a.status.status.as_str(),
        a.status.version,
        a.status.intent_at,
        a.status.changed_by_device,
        a.status_op_id,
        a.status.until,
        a.status.then.map(AgentStatus::as_str),
        a.status.custom_status,
        a.status.note,
        a.status.cause.as_str(),
        a.status.changed_by_agent,
        a.sub,
    ])?;
    Ok(())
}

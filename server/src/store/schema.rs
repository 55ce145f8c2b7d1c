//! The schema of the embedded store and its migrations.
//!
//! Guarantees: the schema version is `PRAGMA user_version`; [`migrate`] runs the missing
//! [`MIGRATIONS`] in order, each in its own transaction with the version it reaches, so an
//! interrupted upgrade resumes where it stopped and an old file is upgraded in place.

use presence_protocol::{PushProvider, PushRegistration};
use rusqlite::Connection;

use super::StoreResult;

/// `PRAGMA application_id` of a server database ("PRSV").
pub const APPLICATION_ID: i64 = 0x5052_5356;

/// Schema migrations; entry `i` moves the schema from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // v1: the first schema.
    r#"
    CREATE TABLE accounts (
        id TEXT PRIMARY KEY,
        slug TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        widget_key TEXT NOT NULL UNIQUE,
        settings TEXT NOT NULL,
        opening_hours TEXT NOT NULL,
        groups_json TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE agents (
        id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES accounts(id),
        name TEXT NOT NULL,
        email TEXT NOT NULL,
        email_key TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL,
        groups_json TEXT NOT NULL,
        status TEXT NOT NULL,
        status_version INTEGER NOT NULL,
        intent_at INTEGER NOT NULL,
        changed_by_device TEXT,
        status_op_id TEXT NOT NULL,
        UNIQUE (account_id, email_key)
    );
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL,
        agent_id TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        device_id TEXT NOT NULL,
        platform TEXT NOT NULL,
        device_name TEXT NOT NULL,
        app_version TEXT NOT NULL,
        mode TEXT NOT NULL,
        lease_until INTEGER NOT NULL,
        push_provider TEXT,
        push_token TEXT,
        created_at INTEGER NOT NULL,
        ended_reason TEXT,
        ended_at INTEGER
    );
    CREATE INDEX sessions_live ON sessions (ended_reason) WHERE ended_reason IS NULL;
    CREATE TABLE status_ops (
        agent_id TEXT NOT NULL,
        op_id TEXT NOT NULL,
        response TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (agent_id, op_id)
    ) WITHOUT ROWID;
    "#,
    // v2: chat box view versions survive restarts, so widget ETags never go backwards.
    r#"
    ALTER TABLE accounts ADD COLUMN view_version INTEGER NOT NULL DEFAULT 0;
    "#,
    // v3: `view_version` becomes the highest version reserved (see `reserve_view_versions`);
    // indexes for pruning ended sessions and old status ops.
    r#"
    CREATE INDEX sessions_ended_at ON sessions (ended_at) WHERE ended_reason IS NOT NULL;
    CREATE INDEX status_ops_created_at ON status_ops (created_at);
    "#,
    // v4: the UnifiedPush (RFC 8291) keys of a session's push registration.
    r#"
    ALTER TABLE sessions ADD COLUMN push_p256dh TEXT;
    ALTER TABLE sessions ADD COLUMN push_auth TEXT;
    "#,
    // v5: timed statuses (their end and what follows), custom statuses, notes, and why a
    // status is what it is.
    r#"
    ALTER TABLE agents ADD COLUMN status_until INTEGER;
    ALTER TABLE agents ADD COLUMN status_then TEXT;
    ALTER TABLE agents ADD COLUMN custom_status TEXT;
    ALTER TABLE agents ADD COLUMN status_note TEXT;
    ALTER TABLE agents ADD COLUMN status_cause TEXT NOT NULL DEFAULT 'manual';
    ALTER TABLE agents ADD COLUMN changed_by_agent TEXT;
    "#,
    // v6: an account's custom statuses (a JSON array).
    r#"
    ALTER TABLE accounts ADD COLUMN custom_statuses TEXT NOT NULL DEFAULT '[]';
    "#,
    // v7: the status log: every applied status change (its `StatusView` as JSON), written
    // with the change; read newest first per agent, pruned by age.
    r#"
    CREATE TABLE status_log (
        agent_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        applied_at INTEGER NOT NULL,
        status TEXT NOT NULL,
        PRIMARY KEY (agent_id, version)
    ) WITHOUT ROWID;
    CREATE INDEX status_log_applied_at ON status_log (applied_at);
    "#,
    // v8: an agent's sessions by device (the lockout exception for known devices).
    r#"
    CREATE INDEX sessions_agent_device ON sessions (agent_id, device_id);
    "#,
    // v9: the customer's identity: an account's sign-in settings and API keys (one JSON
    // object), and the customer's user id an agent is linked to (unique in its account).
    r#"
    ALTER TABLE accounts ADD COLUMN identity TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE agents ADD COLUMN sub TEXT;
    CREATE UNIQUE INDEX agents_sub ON agents (account_id, sub) WHERE sub IS NOT NULL;
    "#,
    // v10: the availability log: every change of whether an agent counts for the chat box
    // (or of its status), written with the change; read by account or by agent over a time
    // range, pruned by age (each agent keeps its last row). The enums are stored as their
    // codes (`history::query::code`). Agents of an older file get
    // their first row when the store opens (`history::settle_unlogged`).
    r#"
    CREATE TABLE availability_log (
        account_id TEXT NOT NULL,
        agent_id TEXT NOT NULL,
        at INTEGER NOT NULL,
        availability INTEGER NOT NULL,
        status INTEGER NOT NULL,
        cause INTEGER NOT NULL,
        ended INTEGER
    );
    CREATE INDEX availability_log_account_at ON availability_log (account_id, at);
    CREATE INDEX availability_log_agent_at ON availability_log (agent_id, at);
    "#,
    // v11: the account's events (status, availability, sessions, chat box views), each
    // written with the change that caused it under the account's next `seq`. The counter
    // has a small table of its own: raising it rewrites one short row, not the account's
    // row with its settings.
    r#"
    CREATE TABLE events (
        account_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        type TEXT NOT NULL,
        at INTEGER NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (account_id, seq)
    ) WITHOUT ROWID;
    CREATE INDEX events_at ON events (at);
    CREATE TABLE event_seqs (
        account_id TEXT PRIMARY KEY,
        seq INTEGER NOT NULL
    ) WITHOUT ROWID;
    "#,
    // v12: webhook endpoints (with the cursor into the account's events they are done
    // with, and when their next attempt is due) and their deliveries.
    r#"
    CREATE TABLE webhooks (
        id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL,
        url TEXT NOT NULL,
        events TEXT NOT NULL,
        description TEXT,
        enabled INTEGER NOT NULL,
        disabled_reason TEXT,
        secret TEXT NOT NULL,
        previous_secret TEXT,
        previous_until INTEGER,
        created_at INTEGER NOT NULL,
        cursor INTEGER NOT NULL,
        due_at INTEGER
    );
    CREATE INDEX webhooks_account ON webhooks (account_id);
    CREATE TABLE webhook_deliveries (
        webhook_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        type TEXT NOT NULL,
        at INTEGER NOT NULL,
        state INTEGER NOT NULL,
        attempts INTEGER NOT NULL,
        since INTEGER NOT NULL,
        last_at INTEGER,
        last_status INTEGER,
        last_error TEXT,
        next_at INTEGER,
        PRIMARY KEY (webhook_id, seq)
    ) WITHOUT ROWID;
    CREATE INDEX webhook_deliveries_at ON webhook_deliveries (at);
    "#,
];

/// What `sessions.push_auth` holds: a registration's one secret, UnifiedPush's `auth` or a
/// webhook's signing `secret` (registration refuses `secret` for any other provider).
pub fn push_auth_column(reg: &PushRegistration) -> Option<&str> {
    match reg.provider {
        PushProvider::Webhook => reg.secret.as_deref(),
        _ => reg.auth.as_deref(),
    }
}

/// A registration from its `sessions` columns (the inverse of [`push_auth_column`]).
pub fn push_from_columns(
    provider: PushProvider,
    token: String,
    p256dh: Option<String>,
    auth_column: Option<String>,
) -> PushRegistration {
    let (auth, secret) = match provider {
        PushProvider::Webhook => (None, auth_column),
        _ => (auth_column, None),
    };
    PushRegistration {
        provider,
        token,
        p256dh,
        auth,
        secret,
    }
}

/// Brings the schema up to `MIGRATIONS.len()`, one transaction per step.
pub fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current.max(0) as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "migrated schema");
    }
    Ok(())
}

//! Durable storage of the embedded backend: one SQLite file in `--data-dir`.
//!
//! What lives here: accounts (settings, groups, opening hours), agents (with their password
//! hash and current status), sessions (token hash, device, push registration, last flushed
//! lease) and the status op ids that make `PUT /v1/me/status` idempotent.
//!
//! Guarantees:
//! - Every acknowledged change (status, login, logout, admin edits) is committed before the
//!   response is sent. The database runs in WAL mode with `synchronous = NORMAL`: a commit is in
//!   the operating system's hands when it returns, so killing the process (even with SIGKILL)
//!   loses nothing; only a power cut could lose the last moment of commits (docs/adr/0002).
//! - Leases are the exception: heartbeats only touch memory, and [`Store::flush_leases`] writes
//!   them in batches. A restart therefore grants every restored session a grace lease.
//! - Commits never checkpoint: the request path's connection has `wal_autocheckpoint = 0`, and
//!   [`Store::checkpoint`] (run by the flusher, off the request path) copies the log into the
//!   database on a connection of its own, so no request waits for that copy and its syncs.
//! - One server per data dir: [`Store::open_dir`] holds an exclusive lock on [`LOCK_FILE`]
//!   for the store's lifetime (the OS drops it when the process dies, even by SIGKILL).
//! - The schema is versioned with `PRAGMA user_version`; [`MIGRATIONS`] run in order, each in
//!   its own transaction, so an old file is upgraded in place.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub use crate::rows::{AccountRow, AgentRow, SessionRow};
use parking_lot::Mutex;
use presence_protocol::{
    AgentStatus, Device, Mode, Platform, PushProvider, PushRegistration, Role, StatusView,
};
use rusqlite::{Connection, OptionalExtension, params};

mod write;
pub use write::Write;

/// The database file inside `--data-dir`. Named for the server so a client engine's data dir
/// (which holds its own `presence.db`) can never be mistaken for it.
pub const DB_FILE: &str = "presence-server.db";

/// Locked by the server that owns the data dir.
pub const LOCK_FILE: &str = "presence-server.lock";

/// After a passive checkpoint, a log still longer than this many frames (about 16 MiB) gets a
/// `RESTART` checkpoint, which briefly holds writers back so the log can start over. Only
/// sustained writes with no quiet moment between checkpoints get there.
const RESTART_CHECKPOINT_FRAMES: i64 = 4096;

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
];

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

/// Everything a restart needs to rebuild memory.
pub struct Loaded {
    pub accounts: Vec<AccountRow>,
    pub agents: Vec<AgentRow>,
    /// Sessions that had not ended.
    pub sessions: Vec<SessionRow>,
    /// Token hashes of sessions that ended within the retention, with when they ended, oldest
    /// first, so their tokens answer `session_expired`.
    pub ended_tokens: Vec<(String, i64)>,
}

pub struct Store {
    conn: Mutex<Connection>,
    /// The checkpointing connection, opened on first use; `None` for in-memory databases.
    checkpointer: Mutex<Option<Connection>>,
    path: Option<PathBuf>,
    /// Commits since the last checkpoint.
    writes: AtomicU64,
    /// The SQLite VFS connections open on, if not the default.
    vfs: Option<String>,
    /// Held for the store's life (see [`LOCK_FILE`]).
    _dir_lock: Option<File>,
}

/// What a checkpoint did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checkpoint {
    /// Frames in the log when it ran.
    pub log_frames: i64,
    /// Of those, how many are now in the database file.
    pub checkpointed_frames: i64,
    /// Whether it had to hold writers back (`RESTART`) to let the log start over.
    pub restarted: bool,
}

pub type StoreResult<T> = Result<T, rusqlite::Error>;

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_owned())
}

fn from_json<T: serde::de::DeserializeOwned>(col: usize, s: &str) -> StoreResult<T> {
    serde_json::from_str(s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn bad_enum(col: usize, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        col,
        rusqlite::types::Type::Text,
        format!("unknown {what}").into(),
    )
}

fn platform_parse(s: &str) -> Option<Platform> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
}

impl Store {
    /// Opens (creating if needed) [`DB_FILE`] in `dir` and migrates it.
    pub fn open_dir(dir: &Path) -> StoreResult<Store> {
        Store::open_dir_on(dir, None)
    }

    /// [`Store::open_dir`] on a named SQLite VFS (tests: one that counts or holds I/O).
    pub fn open_dir_on(dir: &Path, vfs: Option<&str>) -> StoreResult<Store> {
        std::fs::create_dir_all(dir).map_err(|e| {
            rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                Some(format!("cannot create data dir {}: {e}", dir.display())),
            )
        })?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| {
                store_error(
                    rusqlite::ffi::SQLITE_CANTOPEN,
                    format!("cannot open {}: {e}", lock_path.display()),
                )
            })?;
        if let Err(e) = lock.try_lock() {
            return Err(store_error(
                rusqlite::ffi::SQLITE_BUSY,
                match e {
                    std::fs::TryLockError::WouldBlock => format!(
                        "data dir {} is in use by another presence-server",
                        dir.display()
                    ),
                    std::fs::TryLockError::Error(e) => {
                        format!("cannot lock {}: {e}", lock_path.display())
                    }
                },
            ));
        }
        let mut store = Self::open_on(&dir.join(DB_FILE), vfs)?;
        store._dir_lock = Some(lock);
        Ok(store)
    }

    pub fn open(path: &Path) -> StoreResult<Store> {
        Store::open_on(path, None)
    }

    fn open_on(path: &Path, vfs: Option<&str>) -> StoreResult<Store> {
        let mut conn = connect(path, vfs)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Checkpoints run on their own connection (see `checkpoint`), never inside a commit.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        // After a checkpoint the log file is cut back to this, so it does not stay at its
        // largest size for good.
        conn.pragma_update(None, "journal_size_limit", 16 * 1024 * 1024)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let app_id: i64 = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if app_id != APPLICATION_ID && (app_id != 0 || version != 0) {
            // Some other program's database (v1 files predate the id and are adopted below).
            let has_accounts: bool = conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'accounts')",
                [],
                |r| r.get(0),
            )?;
            if !has_accounts {
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_NOTADB),
                    Some(format!(
                        "{} is not a presence-server database",
                        path.display()
                    )),
                ));
            }
        }
        if version > MIGRATIONS.len() as i64 {
            return Err(store_error(
                rusqlite::ffi::SQLITE_CANTOPEN,
                format!(
                    "{} has schema version {version}, newer than this presence-server \
                     understands ({}); run a newer presence-server on it",
                    path.display(),
                    MIGRATIONS.len()
                ),
            ));
        }
        check_integrity(&conn, path)?;
        migrate(&mut conn)?;
        conn.pragma_update(None, "application_id", APPLICATION_ID)?;
        let in_memory = path.as_os_str().is_empty() || path == Path::new(":memory:");
        Ok(Store {
            conn: Mutex::new(conn),
            checkpointer: Mutex::new(None),
            path: (!in_memory).then(|| path.to_owned()),
            writes: AtomicU64::new(0),
            vfs: vfs.map(str::to_owned),
            _dir_lock: None,
        })
    }

    /// Copies committed log frames into the database file, on the checkpointing connection.
    /// Writers are not held back (`PASSIVE`) unless the log has grown past
    /// [`RESTART_CHECKPOINT_FRAMES`]. Does nothing when nothing was written since the last one.
    /// Blocking (it syncs the file): call it off the async runtime.
    pub fn checkpoint(&self) -> StoreResult<Checkpoint> {
        let Some(path) = &self.path else {
            return Ok(Checkpoint::default());
        };
        let mut guard = self.checkpointer.lock();
        let pending = self.writes.swap(0, Ordering::Relaxed);
        if pending == 0 {
            return Ok(Checkpoint::default());
        }
        let result = (|| {
            if guard.is_none() {
                let c = connect(path, self.vfs.as_deref())?;
                c.busy_timeout(std::time::Duration::from_secs(5))?;
                c.pragma_update(None, "synchronous", "NORMAL")?;
                *guard = Some(c);
            }
            let c = guard.as_ref().expect("opened above");
            let run = |mode: &str| {
                c.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
                    Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
                })
            };
            let (log_frames, checkpointed_frames) = run("PASSIVE")?;
            if log_frames > RESTART_CHECKPOINT_FRAMES && checkpointed_frames < log_frames {
                let (log_frames, checkpointed_frames) = run("RESTART")?;
                return Ok(Checkpoint {
                    log_frames,
                    checkpointed_frames,
                    restarted: true,
                });
            }
            Ok(Checkpoint {
                log_frames,
                checkpointed_frames,
                restarted: false,
            })
        })();
        if result.is_err() {
            // Try again next time.
            self.writes.fetch_add(pending, Ordering::Relaxed);
        }
        result
    }

    /// The connection, for a write the next checkpoint should pick up.
    fn write(&self) -> parking_lot::MutexGuard<'_, Connection> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.conn.lock()
    }

    pub fn schema_version(&self) -> StoreResult<i64> {
        self.conn
            .lock()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
    }

    /// Everything a restart needs; ended sessions only if they ended at `ended_since` or
    /// later (older ones are past their retention).
    pub fn load(&self, ended_since: i64) -> StoreResult<Loaded> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare(
            "SELECT id, slug, name, widget_key, settings, opening_hours, groups_json, view_version
             FROM accounts",
        )?;
        let accounts = stmt
            .query_map([], |r| {
                Ok(AccountRow {
                    id: r.get(0)?,
                    slug: r.get(1)?,
                    name: r.get(2)?,
                    widget_key: r.get(3)?,
                    settings: from_json(4, &r.get::<_, String>(4)?)?,
                    opening_hours: from_json(5, &r.get::<_, String>(5)?)?,
                    groups: from_json(6, &r.get::<_, String>(6)?)?,
                    view_version: r.get(7)?,
                })
            })?
            .collect::<StoreResult<Vec<_>>>()?;
        let mut stmt = conn.prepare(
            "SELECT id, account_id, name, email, password_hash, role, groups_json, status,
                    status_version, intent_at, changed_by_device, status_op_id
             FROM agents",
        )?;
        let agents = stmt
            .query_map([], |r| {
                let role: String = r.get(5)?;
                let status: String = r.get(7)?;
                Ok(AgentRow {
                    id: r.get(0)?,
                    account_id: r.get(1)?,
                    name: r.get(2)?,
                    email: r.get(3)?,
                    password_hash: r.get(4)?,
                    role: Role::parse(&role).ok_or_else(|| bad_enum(5, "role"))?,
                    groups: from_json(6, &r.get::<_, String>(6)?)?,
                    status: StatusView {
                        status: AgentStatus::parse(&status).ok_or_else(|| bad_enum(7, "status"))?,
                        version: r.get(8)?,
                        intent_at: r.get(9)?,
                        changed_by_device: r.get(10)?,
                    },
                    status_op_id: r.get(11)?,
                })
            })?
            .collect::<StoreResult<Vec<_>>>()?;
        let mut stmt = conn.prepare(
            "SELECT id, account_id, agent_id, token_hash, device_id, platform, device_name,
                    app_version, mode, lease_until, push_provider, push_token,
                    push_p256dh, push_auth
             FROM sessions WHERE ended_reason IS NULL",
        )?;
        let sessions = stmt
            .query_map([], |r| {
                let platform: String = r.get(5)?;
                let mode: String = r.get(8)?;
                let provider: Option<String> = r.get(10)?;
                let token: Option<String> = r.get(11)?;
                let push = match (provider, token) {
                    (Some(p), Some(t)) => Some(PushRegistration {
                        provider: PushProvider::parse(&p)
                            .ok_or_else(|| bad_enum(10, "push provider"))?,
                        token: t,
                        p256dh: r.get(12)?,
                        auth: r.get(13)?,
                    }),
                    _ => None,
                };
                Ok(SessionRow {
                    id: r.get(0)?,
                    account_id: r.get(1)?,
                    agent_id: r.get(2)?,
                    token_hash: r.get(3)?,
                    device: Device {
                        id: r.get(4)?,
                        platform: platform_parse(&platform)
                            .ok_or_else(|| bad_enum(5, "platform"))?,
                        name: r.get(6)?,
                        app_version: r.get(7)?,
                    },
                    mode: if mode == "background" {
                        Mode::Background
                    } else {
                        Mode::Active
                    },
                    lease_until: r.get(9)?,
                    push,
                })
            })?
            .collect::<StoreResult<Vec<_>>>()?;
        let mut stmt = conn.prepare(
            "SELECT token_hash, ended_at FROM sessions
             WHERE ended_reason IS NOT NULL AND ended_at >= ?1 ORDER BY ended_at",
        )?;
        let ended_tokens = stmt
            .query_map([ended_since], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<StoreResult<Vec<(String, i64)>>>()?;
        Ok(Loaded {
            accounts,
            agents,
            sessions,
            ended_tokens,
        })
    }

    /// Commits one write on its own (start-up, tools, benchmarks); the backend's requests go
    /// through its group commit instead ([`Store::commit_writes`]).
    pub fn commit(&self, w: &Write) -> StoreResult<()> {
        let conn = self.write();
        in_tx(&conn, |tx| w.apply(tx))
    }

    /// Commits several writes in one transaction and answers each, in order. A write that
    /// can be refused on its own (a taken slug or email) runs in a savepoint, so its refusal
    /// leaves the others in; any other failure fails them all, and then none is on disk.
    pub fn commit_writes(&self, writes: &[&Write]) -> Vec<StoreResult<()>> {
        let conn = self.write();
        let mut refusals: Vec<Option<rusqlite::Error>> = Vec::with_capacity(writes.len());
        let done = in_tx(&conn, |tx| {
            for w in writes {
                if w.may_be_refused() {
                    refusals.push(in_savepoint(tx, |tx| w.apply(tx))?.err());
                } else {
                    w.apply(tx)?;
                    refusals.push(None);
                }
            }
            Ok(())
        });
        match done {
            Ok(()) => refusals
                .into_iter()
                .map(|r| r.map_or(Ok(()), Err))
                .collect(),
            Err(e) => {
                let why = format!("group commit failed: {e}");
                writes
                    .iter()
                    .map(|_| Err(store_error(rusqlite::ffi::SQLITE_IOERR, why.clone())))
                    .collect()
            }
        }
    }

    /// Writes a batch of in-memory leases.
    pub fn flush_leases(&self, leases: &[(String, Mode, i64)]) -> StoreResult<()> {
        if leases.is_empty() {
            return Ok(());
        }
        let conn = self.write();
        in_tx(&conn, |tx| {
            let mut stmt = tx.prepare_cached(
                "UPDATE sessions SET mode = ?2, lease_until = ?3
                 WHERE id = ?1 AND ended_reason IS NULL",
            )?;
            for (id, mode, lease) in leases {
                stmt.execute(params![id, mode.as_str(), lease])?;
            }
            Ok(())
        })
    }

    /// The stored answer to an earlier status op with this id recorded at `since` or later,
    /// if any.
    pub fn status_op(
        &self,
        agent_id: &str,
        op_id: &str,
        since: i64,
    ) -> StoreResult<Option<String>> {
        self.conn
            .lock()
            .prepare_cached(
                "SELECT response FROM status_ops
                 WHERE agent_id = ?1 AND op_id = ?2 AND created_at >= ?3",
            )?
            .query_row(params![agent_id, op_id, since], |r| r.get(0))
            .optional()
    }

    /// Deletes ended sessions that ended before `sessions_before` and status ops recorded
    /// before `ops_before`, in batches so no single transaction holds the writer long.
    /// Blocking: call off the runtime. Returns (sessions, ops) deleted.
    pub fn prune(&self, sessions_before: i64, ops_before: i64) -> StoreResult<(usize, usize)> {
        const BATCH: i64 = 1000;
        let mut total = (0, 0);
        loop {
            let (s, o) = {
                let conn = self.write();
                in_tx(&conn, |tx| {
                    let s = tx
                        .prepare_cached(
                            "DELETE FROM sessions WHERE rowid IN (SELECT rowid FROM sessions
                             WHERE ended_reason IS NOT NULL AND ended_at < ?1 LIMIT ?2)",
                        )?
                        .execute(params![sessions_before, BATCH])?;
                    let o = tx
                        .prepare_cached(
                            "DELETE FROM status_ops WHERE (agent_id, op_id) IN
                             (SELECT agent_id, op_id FROM status_ops WHERE created_at < ?1 LIMIT ?2)",
                        )?
                        .execute(params![ops_before, BATCH])?;
                    Ok((s, o))
                })?
            };
            total.0 += s;
            total.1 += o;
            if (s as i64) < BATCH && (o as i64) < BATCH {
                return Ok(total);
            }
        }
    }
}

fn connect(path: &Path, vfs: Option<&str>) -> StoreResult<Connection> {
    match vfs {
        Some(vfs) => Connection::open_with_flags_and_vfs(path, rusqlite::OpenFlags::default(), vfs),
        None => Connection::open(path),
    }
}

/// Runs `f` in one transaction with cached `BEGIN`/`COMMIT` statements (rusqlite's
/// `transaction()` parses them on every call, about a third of a small write's cost).
fn in_tx<T>(conn: &Connection, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
    conn.prepare_cached("BEGIN")?.execute([])?;
    let result = f(conn).and_then(|v| {
        conn.prepare_cached("COMMIT")?.execute([])?;
        Ok(v)
    });
    if result.is_err() && !conn.is_autocommit() {
        // Nothing of a failed write stays pending for the next one.
        let _ = conn
            .prepare_cached("ROLLBACK")
            .and_then(|mut s| s.execute([]));
    }
    result
}

/// Runs `f` in a savepoint of the open transaction: if it fails, what it did is undone and
/// the transaction goes on. The outer `Err` is a failure to make or leave the savepoint.
fn in_savepoint(
    tx: &Connection,
    f: impl FnOnce(&Connection) -> StoreResult<()>,
) -> StoreResult<Result<(), rusqlite::Error>> {
    tx.prepare_cached("SAVEPOINT one_write")?.execute([])?;
    let result = f(tx);
    if result.is_err() {
        tx.prepare_cached("ROLLBACK TO one_write")?.execute([])?;
    }
    tx.prepare_cached("RELEASE one_write")?.execute([])?;
    Ok(result)
}

fn store_error(code: i32, msg: String) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some(msg))
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
            tx.prepare_cached(
                "UPDATE agents SET status = ?2, status_version = ?3, intent_at = ?4,
                        changed_by_device = ?5, status_op_id = ?6
                 WHERE id = ?1",
            )?
            .execute(params![
                agent_id,
                s.status.as_str(),
                s.version,
                s.intent_at,
                s.changed_by_device,
                op_id
            ])?;
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
            groups_json, status, status_version, intent_at, changed_by_device, status_op_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
        a.id,
        a.account_id,
        a.name,
        a.email,
        a.email.to_lowercase(),
        a.password_hash,
        a.role.as_str(),
        json(&a.groups),
        a.status.status.as_str(),
        a.status.version,
        a.status.intent_at,
        a.status.changed_by_device,
        a.status_op_id
    ])?;
    Ok(())
}

/// Refuses a damaged file: SQLite's own check of every page, index and constraint. A file that
/// fails it would start and then fail some writes for good, so the operator hears now.
fn check_integrity(conn: &Connection, path: &Path) -> StoreResult<()> {
    let problems: Vec<String> = conn
        .prepare("PRAGMA integrity_check(5)")
        .and_then(|mut stmt| {
            stmt.query_map([], |r| r.get::<_, String>(0))?
                .collect::<StoreResult<Vec<String>>>()
        })
        .unwrap_or_else(|e| vec![e.to_string()]);
    if problems.len() == 1 && problems[0] == "ok" {
        return Ok(());
    }
    Err(store_error(
        rusqlite::ffi::SQLITE_CORRUPT,
        format!(
            "{} is damaged ({}); restore it from a backup, or move it away to start empty",
            path.display(),
            problems.join("; ")
        ),
    ))
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

#[cfg(test)]
mod tests {
    use super::*;
    use presence_protocol::{AccountSettings, OpeningHours};

    #[test]
    fn commits_leave_checkpoints_to_the_checkpointer() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_dir(dir.path()).unwrap();
        assert_eq!(
            store.checkpoint().unwrap(),
            Checkpoint::default(),
            "nothing written"
        );
        store
            .write()
            .execute_batch("CREATE TABLE t (b BLOB)")
            .unwrap();
        // Well past the 1,000 pages at which a committing connection would checkpoint itself.
        for _ in 0..1200 {
            store
                .write()
                .execute("INSERT INTO t (b) VALUES (zeroblob(4000))", [])
                .unwrap();
        }
        let c = store.checkpoint().unwrap();
        assert!(c.log_frames > 1200, "the log kept every commit: {c:?}");
        assert_eq!(c.checkpointed_frames, c.log_frames, "all copied: {c:?}");
        assert_eq!(
            store.checkpoint().unwrap(),
            Checkpoint::default(),
            "no writes since"
        );
        // The log starts over after a full checkpoint instead of growing.
        store
            .write()
            .execute("INSERT INTO t (b) VALUES (zeroblob(10))", [])
            .unwrap();
        let c = store.checkpoint().unwrap();
        assert!(c.log_frames < 10, "a fresh log: {c:?}");
    }

    #[test]
    fn a_second_store_on_the_same_data_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = Store::open_dir(dir.path()).unwrap();
        let err = Store::open_dir(dir.path()).err().expect("refused");
        assert!(
            err.to_string()
                .contains("in use by another presence-server"),
            "{err}"
        );
        drop(first);
        Store::open_dir(dir.path()).expect("free again once the first is gone");
    }

    #[test]
    fn a_failed_write_rolls_back_and_the_next_one_commits() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (v INTEGER NOT NULL)")
            .unwrap();
        let insert = |v: Option<i64>| {
            in_tx(&conn, |tx| {
                tx.prepare_cached("INSERT INTO t (v) VALUES (1)")?
                    .execute([])?;
                tx.prepare_cached("INSERT INTO t (v) VALUES (?1)")?
                    .execute([v])?;
                Ok(())
            })
        };
        assert!(insert(None).is_err(), "NOT NULL refuses the second row");
        assert!(conn.is_autocommit(), "no transaction left open");
        insert(Some(2)).unwrap();
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 2, "only the committed transaction's rows");
    }

    fn agent_row(id: &str, email: &str) -> AgentRow {
        AgentRow {
            id: id.into(),
            account_id: "a1".into(),
            name: "A".into(),
            email: email.into(),
            password_hash: String::new(),
            role: Role::Agent,
            groups: Vec::new(),
            status: StatusView {
                status: AgentStatus::Offline,
                version: 0,
                intent_at: 0,
                changed_by_device: None,
            },
            status_op_id: String::new(),
        }
    }

    #[test]
    fn a_write_refused_in_a_group_fails_alone_and_the_rest_commit() {
        let store = Store::open(Path::new(":memory:")).unwrap();
        let account = AccountRow {
            id: "a1".into(),
            slug: "acme".into(),
            name: "Acme".into(),
            widget_key: "wk1".into(),
            settings: AccountSettings::default(),
            opening_hours: OpeningHours::default(),
            groups: Vec::new(),
            view_version: 1000,
        };
        store
            .commit(&Write::Account {
                account: Box::new(account),
                owner: Box::new(agent_row("g0", "owner@acme.test")),
                now: 0,
            })
            .unwrap();
        let taken = Write::Agent(agent_row("g1", "OWNER@acme.test"));
        let fresh = Write::Agent(agent_row("g2", "new@acme.test"));
        let reserve = Write::ViewVersions {
            account_id: "a1".into(),
            upto: 2000,
        };
        let answers = store.commit_writes(&[&taken, &fresh, &reserve]);
        assert!(answers[0].is_err(), "the email is taken (case aside)");
        assert!(answers[1].is_ok() && answers[2].is_ok(), "{answers:?}");
        let loaded = store.load(0).unwrap();
        let mut ids: Vec<&str> = loaded.agents.iter().map(|a| a.id.as_str()).collect();
        ids.sort();
        assert_eq!(ids, ["g0", "g2"], "the refused write left nothing behind");
        assert_eq!(loaded.accounts[0].view_version, 2000);
    }

    #[test]
    fn refuses_another_programs_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch("CREATE TABLE outbox (id INTEGER); PRAGMA user_version = 3;")
                .unwrap();
        }
        let err = Store::open(&path).err().expect("refused");
        assert!(
            err.to_string().contains("not a presence-server database"),
            "{err}"
        );
    }

    #[test]
    fn migrates_a_version_one_database_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("presence.db");
        {
            // A file written by the first release: schema v1 and one account.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute(
                "INSERT INTO accounts (id, slug, name, widget_key, settings, opening_hours,
                                       groups_json, created_at)
                 VALUES ('a1', 'acme', 'Acme', 'wk1', ?1, ?2, '[]', 0)",
                params![
                    json(&presence_protocol::Settings::default()),
                    json(&OpeningHours::default())
                ],
            )
            .unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let loaded = store.load(0).unwrap();
        assert_eq!(loaded.accounts.len(), 1);
        assert_eq!(loaded.accounts[0].slug, "acme");
        assert_eq!(loaded.accounts[0].view_version, 0);
        // Opening again is a no-op.
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
    }
}

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
//!
//! # Files
//! - `schema.rs`: the migrations.
//! - `checkpoint.rs`: checkpoints of the log.
//! - `reads.rs`: the restart load and the status op read.
//! - `commit.rs`: transactions: one write, group commits, lease flushes, pruning.
//! - `write.rs`: each durable change and its SQL.
//! - `history.rs`: the availability log: written with each change, read for reports.
//! - `events.rs`: the account's events and the presence snapshot they follow.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use rusqlite::Connection;

mod checkpoint;
mod commit;
mod events;
mod history;
mod reads;
mod schema;
#[cfg(test)]
mod tests;
mod webhooks;
mod write;

pub use crate::rows::{AccountRow, AgentRow, SessionRow};
pub use checkpoint::Checkpoint;
pub use reads::Loaded;
pub use schema::{APPLICATION_ID, MIGRATIONS, migrate};
pub use webhooks::Work;
pub use write::{StatusRecord, Write};

/// The database file inside `--data-dir`. Named for the server so a client engine's data dir
/// (which holds its own `presence.db`) can never be mistaken for it.
pub const DB_FILE: &str = "presence-server.db";

/// Locked by the server that owns the data dir.
pub const LOCK_FILE: &str = "presence-server.lock";

pub struct Store {
    conn: Mutex<Connection>,
    /// The checkpointing connection, opened on first use; `None` for in-memory databases.
    checkpointer: Mutex<Option<Connection>>,
    /// The connection reports read on, opened on first use; `None` for in-memory databases
    /// (which read on `conn`).
    reader: Mutex<Option<Connection>>,
    path: Option<PathBuf>,
    /// Commits since the last checkpoint.
    writes: AtomicU64,
    /// The SQLite VFS connections open on, if not the default.
    vfs: Option<String>,
    /// Held for the store's life (see [`LOCK_FILE`]).
    _dir_lock: Option<File>,
}

pub type StoreResult<T> = Result<T, rusqlite::Error>;

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_owned())
}

impl Store {
    /// Opens (creating if needed) [`DB_FILE`] in `dir` and migrates it.
    pub fn open_dir(dir: &Path) -> StoreResult<Store> {
        Store::open_dir_on(dir, None)
    }

    /// [`Store::open_dir`] on a named SQLite VFS (tests: one that counts or holds I/O).
    pub fn open_dir_on(dir: &Path, vfs: Option<&str>) -> StoreResult<Store> {
        private_dir(dir).map_err(|e| {
            rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                Some(format!("cannot create data dir {}: {e}", dir.display())),
            )
        })?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = private_file_options()
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
        // Owner-only, before the log files exist: SQLite gives them the database's mode.
        make_private(path).map_err(|e| {
            store_error(
                rusqlite::ffi::SQLITE_CANTOPEN,
                format!("cannot make {} private: {e}", path.display()),
            )
        })?;
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
            reader: Mutex::new(None),
            path: (!in_memory).then(|| path.to_owned()),
            writes: AtomicU64::new(0),
            vfs: vfs.map(str::to_owned),
            _dir_lock: None,
        })
    }

    /// The connection, for a write the next checkpoint should pick up.
    fn write(&self) -> parking_lot::MutexGuard<'_, Connection> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.conn.lock()
    }

    /// Runs `f` in one read transaction on the reading connection (WAL: it neither waits for
    /// nor delays the writer), or on the only connection of an in-memory database.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let Some(path) = &self.path else {
            return commit::in_tx(&self.conn.lock(), f);
        };
        let mut reader = self.reader.lock();
        if reader.is_none() {
            let c = connect(path, self.vfs.as_deref())?;
            c.pragma_update(None, "query_only", true)?;
            c.busy_timeout(std::time::Duration::from_secs(5))?;
            *reader = Some(c);
        }
        commit::in_tx(reader.as_ref().expect("opened above"), f)
    }

    pub fn schema_version(&self) -> StoreResult<i64> {
        self.conn
            .lock()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
    }
}

fn connect(path: &Path, vfs: Option<&str>) -> StoreResult<Connection> {
    match vfs {
        Some(vfs) => Connection::open_with_flags_and_vfs(path, rusqlite::OpenFlags::default(), vfs),
        None => Connection::open(path),
    }
}

fn store_error(code: i32, msg: String) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some(msg))
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

/// Creates the data directory owner-only (`0700`) if it is missing; an existing one is the
/// operator's and keeps its mode.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// Options that create a file owner-only (`0600`).
fn private_file_options() -> std::fs::OpenOptions {
    #[allow(unused_mut)]
    let mut o = File::options();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o
}

/// Makes a database file owner-only (`0600`), whoever made it.
fn make_private(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if path.exists() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

//! The device's SQLite database, `presence.db` in the data dir.
//!
//! Holds what must survive a restart: the device id (generated once), the server URL used at
//! login, the session, the last known status, chat box and custom statuses, the clock
//! estimate, the push registration, and the outbox. Small values live as JSON in `meta`; the outbox has its own
//! table because it is queried and edited row by row.
//!
//! # Durability: what pays an fsync
//!
//! A phone pays for every fsync in battery and flash wear, so only the outbox's promise
//! ("stored before acknowledged") is bought with one:
//!
//! - **Durable writes** (every transaction that touches the `outbox` table: enqueueing,
//!   delivering, wedging, login re-stamping ops, logout queueing `end_session`) run with
//!   `synchronous=FULL`: the write-ahead log is fsynced before `commit` returns, so a power
//!   cut after that loses nothing.
//! - **Cache writes** (the status, chat box, custom statuses and agent as last heard from the server, the clock
//!   estimate, the push registration, the session's expiry) run with `synchronous=NORMAL`: in
//!   WAL mode a commit then appends to the log and returns without any fsync. The write
//!   survives the app being killed (it is in the OS's page cache, and other processes see it
//!   at once); a power cut may lose the latest few, which costs nothing: the engine re-reads
//!   `/v1/me` after every start and every (re)connect.
//! - **Checkpoints** (copying the log into the database file) cost fsyncs, and so does the
//!   first commit into a log that starts over after one (SQLite syncs the new log header
//!   even with NORMAL). So SQLite's automatic checkpoint, which would run inside whichever
//!   commit crossed 1000 pages (often an incoming event's), is off, and so is its checkpoint
//!   when the connection closes (the next start would otherwise begin with a fresh log whose
//!   first commit, often an incoming event, pays the header sync). The store checkpoints
//!   itself right *before* a durable commit once [`CHECKPOINT_AFTER`] commits went into the
//!   log since the last one: the durable commit then starts the new log and pays its header
//!   sync, so every cache write after it appends for free. Only a device that receives
//!   [`CHECKPOINT_FORCED_AFTER`] events without a single durable write in between has a
//!   cache write checkpoint (so the log stays bounded, some MB).
//!
//! The per-transaction switch is `PRAGMA synchronous` on the one connection (it costs no
//! I/O); a second connection for the cache would count as "another process" for
//! `PRAGMA data_version` and wake the CLI's reload for every incoming event.
//! `presence-test-support`'s counting VFS pins all of this by counting real `xSync` calls.
//!
//! Schema changes go in [`MIGRATIONS`]; `PRAGMA user_version` counts the applied ones. A
//! database written by a newer build is refused rather than guessed at.

use std::path::Path;
use std::time::Duration;

use presence_protocol::{Agent, ChatboxView, CustomStatus, PushRegistration, StatusView};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::clock::ClockEstimate;
use crate::error::Error;
use crate::outbox::{Op, OpBody};

/// Schema migrations, applied in order; entry `i` moves `user_version` from `i` to `i + 1`.
/// Never edit an entry once released: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    "CREATE TABLE meta (
         key   TEXT PRIMARY KEY NOT NULL,
         value TEXT NOT NULL
     );
     CREATE TABLE outbox (
         seq           INTEGER PRIMARY KEY AUTOINCREMENT,
         op_id         TEXT NOT NULL UNIQUE,
         kind          TEXT NOT NULL,
         body          TEXT NOT NULL,
         agent_id      TEXT,
         token         TEXT NOT NULL,
         created_at    INTEGER NOT NULL,
         wedged_code   TEXT,
         wedged_detail TEXT
     );",
];

pub(crate) const DB_FILE: &str = "presence.db";

/// Commits in the log after which the next durable commit also checkpoints.
pub(crate) const CHECKPOINT_AFTER: u32 = 256;

/// Commits in the log after which even a cache write checkpoints (about 4 KB each).
pub(crate) const CHECKPOINT_FORCED_AFTER: u32 = 4096;

/// How a write is committed; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// `synchronous=FULL`: on disk when `commit` returns.
    Durable,
    /// `synchronous=NORMAL`: no fsync; survives a killed process, not a power cut.
    Cache,
}

/// What the store has committed since it was opened, by durability.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreCounters {
    /// Transactions committed with `synchronous=FULL` (each one fsync of the log).
    pub durable_commits: u64,
    /// Transactions committed with `synchronous=NORMAL` (no fsync).
    pub cache_commits: u64,
    /// Checkpoints run (two fsyncs each).
    pub checkpoints: u64,
}

/// A logged-in (or expired) session as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredSession {
    pub token: String,
    pub session_id: String,
    pub account: String,
    pub agent: Agent,
    pub expired: bool,
}

pub(crate) struct Store {
    conn: Connection,
    data_version: i64,
    /// Commits since the last checkpoint (so roughly the log's length in transactions).
    uncheckpointed: u32,
    counters: StoreCounters,
}

mod key {
    pub const DEVICE_ID: &str = "device_id";
    pub const SERVER_URL: &str = "server_url";
    pub const SESSION: &str = "session";
    pub const STATUS: &str = "status";
    pub const CHATBOX: &str = "chatbox";
    pub const CUSTOM_STATUSES: &str = "custom_statuses";
    pub const CLOCK: &str = "clock";
    pub const PUSH: &str = "push";
}

impl Store {
    /// Opens (creating the directory and file if needed) and migrates.
    pub(crate) fn open(dir: &Path) -> Result<Store, Error> {
        Store::open_with_vfs(dir, None)
    }

    /// Opens through the named SQLite VFS (`None`: the platform's default). Tests pass a
    /// VFS that counts syncs.
    pub(crate) fn open_with_vfs(dir: &Path, vfs: Option<&str>) -> Result<Store, Error> {
        create_private_dir(dir)?;
        let path = dir.join(DB_FILE);
        let conn = match vfs {
            None => Connection::open(path)?,
            Some(v) => {
                Connection::open_with_flags_and_vfs(path, rusqlite::OpenFlags::default(), v)?
            }
        };
        Store::with_connection(conn)
    }

    pub(crate) fn with_connection(conn: Connection) -> Result<Store, Error> {
        // Another process (a second CLI command) may hold the write lock for a moment.
        conn.busy_timeout(Duration::from_secs(5))?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") && !mode.eq_ignore_ascii_case("memory") {
            return Err(Error::StorageOther(format!(
                "could not switch the database to WAL (got {mode})"
            )));
        }
        // NORMAL between durable transactions, which switch to FULL for their commit; no
        // automatic checkpoint inside an arbitrary commit (see the module docs).
        conn.execute_batch(
            "PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0; PRAGMA foreign_keys=ON;",
        )?;
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )?;
        let mut store = Store {
            conn,
            data_version: 0,
            uncheckpointed: 0,
            counters: StoreCounters::default(),
        };
        store.migrate()?;
        store.data_version = store.read_data_version()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<(), Error> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(Error::StorageOther(format!(
                "database schema version {version} is newer than this build understands ({known})"
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            self.write(Durability::Durable, |tx| {
                tx.execute_batch(sql)?;
                tx.pragma_update(None, "user_version", (i + 1) as i64)?;
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Runs `f` in one transaction committed with `durability`. Every write goes through
    /// here, so the choice is made (and visible) at each call site.
    fn write<T>(
        &mut self,
        durability: Durability,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let due = match durability {
            Durability::Durable => CHECKPOINT_AFTER,
            Durability::Cache => CHECKPOINT_FORCED_AFTER,
        };
        if self.uncheckpointed >= due {
            self.checkpoint()?;
        }
        if durability == Durability::Durable {
            self.conn.execute_batch("PRAGMA synchronous=FULL")?;
        }
        let result = (|| -> Result<T, Error> {
            let tx = self.conn.transaction()?;
            let v = f(&tx)?;
            tx.commit()?;
            Ok(v)
        })();
        if durability == Durability::Durable {
            // Back to NORMAL whatever happened, or the next cache write would fsync.
            self.conn.execute_batch("PRAGMA synchronous=NORMAL")?;
        }
        let v = result?;
        self.uncheckpointed = self.uncheckpointed.saturating_add(1);
        match durability {
            Durability::Durable => self.counters.durable_commits += 1,
            Durability::Cache => self.counters.cache_commits += 1,
        }
        Ok(v)
    }

    /// Copies the log into the database file if anything was committed since the last time
    /// (fsyncs). Passive: never waits for another process's readers.
    fn checkpoint(&mut self) -> Result<(), Error> {
        if self.uncheckpointed == 0 {
            return Ok(());
        }
        self.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        self.uncheckpointed = 0;
        self.counters.checkpoints += 1;
        Ok(())
    }

    pub(crate) fn counters(&self) -> StoreCounters {
        self.counters
    }

    #[cfg(test)]
    pub(crate) fn schema_version(&self) -> Result<i64, Error> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    // -- meta ------------------------------------------------------------------------------

    fn get<T: for<'de> Deserialize<'de>>(&self, key: &str) -> Result<Option<T>, Error> {
        let raw: Option<String> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?;
        match raw {
            None => Ok(None),
            Some(s) => serde_json::from_str(&s)
                .map(Some)
                .map_err(|e| Error::StorageOther(format!("stored {key} is unreadable: {e}"))),
        }
    }

    /// A cache write of one `meta` value (see the module docs: no fsync).
    fn put<T: Serialize>(&mut self, key: &str, value: Option<&T>) -> Result<(), Error> {
        let json = value.map(to_json).transpose()?;
        self.write(Durability::Cache, |tx| put_meta(tx, key, json))
    }

    /// The device id: generated on first use, then the same forever (per data dir).
    pub(crate) fn device_id(&mut self) -> Result<String, Error> {
        if let Some(id) = self.get::<String>(key::DEVICE_ID)? {
            return Ok(id);
        }
        let id = uuid::Uuid::new_v4().to_string();
        // INSERT OR IGNORE: a concurrent first open in another process may have won. Once
        // per data dir, and the server's first sight of it is a login anyway: a cache write.
        let json = to_json(&id)?;
        self.write(Durability::Cache, |tx| {
            tx.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)",
                params![key::DEVICE_ID, json],
            )?;
            Ok(())
        })?;
        Ok(self.get::<String>(key::DEVICE_ID)?.unwrap_or(id))
    }

    pub(crate) fn server_url(&self) -> Result<Option<String>, Error> {
        self.get(key::SERVER_URL)
    }

    pub(crate) fn session(&self) -> Result<Option<StoredSession>, Error> {
        self.get(key::SESSION)
    }

    pub(crate) fn set_session(&mut self, s: Option<&StoredSession>) -> Result<(), Error> {
        self.put(key::SESSION, s)
    }

    pub(crate) fn status(&self) -> Result<Option<StatusView>, Error> {
        self.get(key::STATUS)
    }

    pub(crate) fn set_status(&mut self, s: Option<&StatusView>) -> Result<(), Error> {
        self.put(key::STATUS, s)
    }

    pub(crate) fn chatbox(&self) -> Result<Option<ChatboxView>, Error> {
        self.get(key::CHATBOX)
    }

    pub(crate) fn set_chatbox(&mut self, c: Option<&ChatboxView>) -> Result<(), Error> {
        self.put(key::CHATBOX, c)
    }

    /// The account's custom statuses as `/v1/me` last listed them (empty when unknown).
    pub(crate) fn custom_statuses(&self) -> Result<Vec<CustomStatus>, Error> {
        Ok(self.get(key::CUSTOM_STATUSES)?.unwrap_or_default())
    }

    pub(crate) fn set_custom_statuses(&mut self, c: &[CustomStatus]) -> Result<(), Error> {
        self.put(key::CUSTOM_STATUSES, Some(&c))
    }

    pub(crate) fn clock(&self) -> Result<Option<ClockEstimate>, Error> {
        self.get(key::CLOCK)
    }

    pub(crate) fn set_clock(&mut self, c: &ClockEstimate) -> Result<(), Error> {
        self.put(key::CLOCK, Some(c))
    }

    pub(crate) fn push(&self) -> Result<Option<PushRegistration>, Error> {
        self.get(key::PUSH)
    }

    /// Logs out locally: session, status and chat box go in one transaction, together with
    /// queueing `end_session` (if given), so a crash cannot leave half a logout.
    pub(crate) fn logout(&mut self, end_session: Option<&mut Op>) -> Result<(), Error> {
        self.write(Durability::Durable, |tx| {
            for k in [
                key::SESSION,
                key::STATUS,
                key::CHATBOX,
                key::CUSTOM_STATUSES,
            ] {
                tx.execute("DELETE FROM meta WHERE key = ?1", [k])?;
            }
            if let Some(op) = end_session {
                op.seq = insert_op(tx, op)?;
            }
            Ok(())
        })
    }

    /// Stores a new session and re-stamps the agent's queued ops with its token, atomically.
    pub(crate) fn login(
        &mut self,
        session: &StoredSession,
        status: &StatusView,
        server_url: Option<&str>,
    ) -> Result<(), Error> {
        let session_json = to_json(session)?;
        let status_json = to_json(status)?;
        let url_json = server_url.map(|u| to_json(&u)).transpose()?;
        // Durable: it re-stamps queued ops, and a session token lost to a power cut would
        // leave a session on the server this device can no longer end.
        self.write(Durability::Durable, |tx| {
            put_meta(tx, key::SESSION, Some(session_json))?;
            put_meta(tx, key::STATUS, Some(status_json))?;
            if let Some(url) = url_json {
                put_meta(tx, key::SERVER_URL, Some(url))?;
            }
            put_meta(tx, key::CHATBOX, None)?;
            put_meta(tx, key::CUSTOM_STATUSES, None)?;
            tx.execute(
                "UPDATE outbox SET token = ?1 WHERE agent_id = ?2 AND kind IN ('set_status')",
                params![session.token, session.agent.id],
            )?;
            tx.execute(
                "UPDATE outbox SET token = ?1 WHERE kind = 'register_push' AND wedged_code IS NULL",
                params![session.token],
            )?;
            Ok(())
        })
    }

    // -- outbox ----------------------------------------------------------------------------

    /// All ops, in send order.
    pub(crate) fn outbox(&self) -> Result<Vec<Op>, Error> {
        let mut stmt = self.conn.prepare(
            "SELECT seq, op_id, body, agent_id, token, created_at, wedged_code, wedged_detail
             FROM outbox ORDER BY seq",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, Option<String>>(6)?,
                r.get::<_, Option<String>>(7)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, op_id, body, agent_id, token, created_at, code, detail) = row?;
            let body: OpBody = match serde_json::from_str(&body) {
                Ok(b) => b,
                Err(e) => {
                    // A row this build cannot read would block nothing (ops are independent),
                    // so skip it loudly rather than refuse to start.
                    tracing::warn!(op_id, error = %e, "skipping unreadable outbox row");
                    continue;
                }
            };
            out.push(Op {
                seq,
                op_id,
                body,
                agent_id,
                token,
                created_at,
                wedged: code.map(|c| (c, detail.unwrap_or_default())),
            });
        }
        Ok(out)
    }

    /// Stores `op`, first deleting the ops it coalesces (same kind, and for status the same
    /// agent; queued or wedged, never `keep`, the one on the wire). Returns the deleted ids.
    pub(crate) fn enqueue_coalescing(
        &mut self,
        op: &mut Op,
        keep: Option<&str>,
    ) -> Result<Vec<String>, Error> {
        self.enqueue_coalescing_with(op, keep, |_| Ok(()))
    }

    /// [`Store::enqueue_coalescing`], with `also` run in the same durable transaction.
    fn enqueue_coalescing_with(
        &mut self,
        op: &mut Op,
        keep: Option<&str>,
        also: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<(), Error>,
    ) -> Result<Vec<String>, Error> {
        let kind = op.kind().as_str();
        let keep = keep.unwrap_or("");
        self.write(Durability::Durable, |tx| {
            let removed: Vec<String> = {
                let mut stmt = tx.prepare(
                    "DELETE FROM outbox
                     WHERE kind = ?1 AND op_id != ?2 AND (?1 != 'set_status' OR agent_id IS ?3)
                     RETURNING op_id",
                )?;
                stmt.query_map(params![kind, keep, op.agent_id], |r| r.get(0))?
                    .collect::<Result<_, _>>()?
            };
            op.seq = insert_op(tx, op)?;
            also(tx)?;
            Ok(removed)
        })
    }

    /// Stores `op` behind everything else.
    #[cfg(test)]
    pub(crate) fn enqueue(&mut self, op: &mut Op) -> Result<(), Error> {
        self.write(Durability::Durable, |tx| {
            op.seq = insert_op(tx, op)?;
            Ok(())
        })
    }

    pub(crate) fn remove_op(&mut self, op_id: &str) -> Result<(), Error> {
        self.write(Durability::Durable, |tx| {
            tx.execute("DELETE FROM outbox WHERE op_id = ?1", [op_id])?;
            Ok(())
        })
    }

    pub(crate) fn wedge_op(&mut self, op_id: &str, code: &str, detail: &str) -> Result<(), Error> {
        self.write(Durability::Durable, |tx| {
            tx.execute(
                "UPDATE outbox SET wedged_code = ?2, wedged_detail = ?3 WHERE op_id = ?1",
                params![op_id, code, detail],
            )?;
            Ok(())
        })
    }

    pub(crate) fn unwedge_op(&mut self, op_id: &str) -> Result<bool, Error> {
        self.write(Durability::Durable, |tx| {
            let n = tx.execute(
                "UPDATE outbox SET wedged_code = NULL, wedged_detail = NULL
                 WHERE op_id = ?1 AND wedged_code IS NOT NULL",
                [op_id],
            )?;
            Ok(n == 1)
        })
    }

    /// Stores the push registration and queues it for the server (if `op` is given).
    pub(crate) fn set_push(
        &mut self,
        push: &PushRegistration,
        op: Option<&mut Op>,
        keep: Option<&str>,
    ) -> Result<Vec<String>, Error> {
        match op {
            Some(op) => {
                // One durable transaction: the registration and the op that delivers it.
                let json = to_json(push)?;
                let removed = self
                    .enqueue_coalescing_with(op, keep, |tx| put_meta(tx, key::PUSH, Some(json)))?;
                Ok(removed)
            }
            None => {
                self.put(key::PUSH, Some(push))?;
                Ok(Vec::new())
            }
        }
    }

    /// True when another connection (another process) committed since the last call.
    pub(crate) fn changed_elsewhere(&mut self) -> Result<bool, Error> {
        let v = self.read_data_version()?;
        let changed = v != self.data_version;
        self.data_version = v;
        Ok(changed)
    }

    fn read_data_version(&self) -> Result<i64, Error> {
        Ok(self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }
}

fn put_meta(tx: &rusqlite::Transaction<'_>, key: &str, json: Option<String>) -> Result<(), Error> {
    match json {
        Some(v) => tx.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, v],
        )?,
        None => tx.execute("DELETE FROM meta WHERE key = ?1", [key])?,
    };
    Ok(())
}

fn insert_op(tx: &rusqlite::Transaction<'_>, op: &Op) -> Result<i64, Error> {
    let body = serde_json::to_string(&op.body).map_err(|e| Error::Internal(e.to_string()))?;
    tx.execute(
        "INSERT INTO outbox (op_id, kind, body, agent_id, token, created_at, wedged_code, wedged_detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            op.op_id,
            op.kind().as_str(),
            body,
            op.agent_id,
            op.token,
            op.created_at,
            op.wedged.as_ref().map(|w| &w.0),
            op.wedged.as_ref().map(|w| &w.1),
        ],
    )?;
    Ok(tx.last_insert_rowid())
}

/// Creates the data dir readable by its owner only: it holds a session token.
fn create_private_dir(dir: &Path) -> Result<(), Error> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
        .map_err(|e| Error::StorageOther(format!("cannot create data dir {}: {e}", dir.display())))
}

fn to_json<T: Serialize + ?Sized>(v: &T) -> Result<String, Error> {
    serde_json::to_string(v).map_err(|e| Error::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use presence_protocol::{AgentStatus, Role};

    fn agent(id: &str) -> Agent {
        Agent {
            id: id.into(),
            name: "Ann".into(),
            email: "ann@example.com".into(),
            groups: vec![],
            role: Role::Agent,
        }
    }

    fn status_op(agent_id: &str, s: AgentStatus) -> Op {
        Op::new(
            OpBody::set_status(crate::StatusRequest::new(s), Some(1)),
            Some(agent_id.into()),
            "tok".into(),
            0,
        )
    }

    #[test]
    fn device_id_is_generated_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let id = Store::open(dir.path()).unwrap().device_id().unwrap();
        let again = Store::open(dir.path()).unwrap().device_id().unwrap();
        assert_eq!(id, again);
        let other = tempfile::tempdir().unwrap();
        assert_ne!(id, Store::open(other.path()).unwrap().device_id().unwrap());
    }

    #[test]
    fn the_database_uses_wal_full_sync_for_the_outbox_only_and_no_auto_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let pragma = |s: &Store, p: &str| -> i64 {
            s.conn
                .query_row(&format!("PRAGMA {p}"), [], |r| r.get(0))
                .unwrap()
        };
        let mode: String = s
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(
            pragma(&s, "synchronous"),
            1,
            "NORMAL between durable writes"
        );
        assert_eq!(pragma(&s, "wal_autocheckpoint"), 0);
        // A durable write switches to FULL for its commit only.
        let seen = s
            .write(Durability::Durable, |tx| {
                Ok(tx.query_row("PRAGMA synchronous", [], |r| r.get::<_, i64>(0))?)
            })
            .unwrap();
        assert_eq!(seen, 2, "synchronous=FULL inside a durable write");
        assert_eq!(pragma(&s, "synchronous"), 1);
        // Also after a durable write that failed.
        let failed = s.write(Durability::Durable, |tx| {
            tx.execute("INSERT INTO nowhere VALUES (1)", [])?;
            Ok(())
        });
        assert!(failed.is_err());
        assert_eq!(pragma(&s, "synchronous"), 1);
    }

    #[test]
    fn only_outbox_writes_fsync_and_checkpoints_wait_for_a_durable_commit() {
        let dir = tempfile::tempdir().unwrap();
        let vfs = presence_test_support::fsync::SyncCounter::register();
        let mut s = Store::open_with_vfs(dir.path(), Some(vfs.vfs_name())).unwrap();
        let view = |v: i64| StatusView::manual(AgentStatus::Busy, v, v, None);
        let before = vfs.counts();
        for v in 0..(CHECKPOINT_AFTER as i64 + 10) {
            s.set_status(Some(&view(v))).unwrap();
        }
        assert_eq!((vfs.counts() - before).total(), 0);
        assert_eq!(s.counters().checkpoints, 0);
        let before = vfs.counts();
        let mut op = status_op("a", AgentStatus::Online);
        s.enqueue_coalescing(&mut op, None).unwrap();
        let paid = vfs.counts() - before;
        assert!(paid.wal >= 1, "{paid:?}");
        assert!(
            paid.db >= 1,
            "the durable commit checkpointed first: {paid:?}"
        );
        assert_eq!(s.counters().checkpoints, 1);
        // The log restarts after the checkpoint: still free for cache writes.
        let before = vfs.counts();
        s.set_status(Some(&view(1000))).unwrap();
        s.set_status(Some(&view(1001))).unwrap();
        assert_eq!((vfs.counts() - before).total(), 0);
        assert_eq!(s.status().unwrap(), Some(view(1001)));
    }

    #[test]
    fn a_status_op_replaces_queued_and_wedged_ones_of_the_same_agent_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let mut in_flight = status_op("a", AgentStatus::Online);
        s.enqueue(&mut in_flight).unwrap();
        let mut queued = status_op("a", AgentStatus::Busy);
        s.enqueue(&mut queued).unwrap();
        let mut wedged = status_op("a", AgentStatus::Busy);
        s.enqueue(&mut wedged).unwrap();
        s.wedge_op(&wedged.op_id, "invalid_field", "status")
            .unwrap();
        let mut other_agent = status_op("b", AgentStatus::Busy);
        s.enqueue(&mut other_agent).unwrap();
        let mut end = Op::new(OpBody::EndSession, None, "old".into(), 0);
        s.enqueue(&mut end).unwrap();

        let mut newest = status_op("a", AgentStatus::Offline);
        let removed = s
            .enqueue_coalescing(&mut newest, Some(&in_flight.op_id))
            .unwrap();
        assert_eq!(removed.len(), 2);
        assert!(removed.contains(&queued.op_id) && removed.contains(&wedged.op_id));
        let ids: Vec<String> = s.outbox().unwrap().into_iter().map(|o| o.op_id).collect();
        assert_eq!(
            ids,
            vec![in_flight.op_id, other_agent.op_id, end.op_id, newest.op_id]
        );
    }

    #[test]
    fn ops_survive_reopening_with_their_ids_and_wedge_state() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = {
            let mut s = Store::open(dir.path()).unwrap();
            let mut a = status_op("a", AgentStatus::Busy);
            s.enqueue(&mut a).unwrap();
            let mut b = Op::new(OpBody::EndSession, None, "t2".into(), 0);
            s.enqueue(&mut b).unwrap();
            s.wedge_op(&b.op_id, "forbidden", "no").unwrap();
            (a, b)
        };
        let mut s = Store::open(dir.path()).unwrap();
        let ops = s.outbox().unwrap();
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[0].op_id, a.op_id);
        assert_eq!(ops[0].body, a.body);
        assert_eq!(ops[1].wedged, Some(("forbidden".into(), "no".into())));
        assert!(s.unwedge_op(&b.op_id).unwrap());
        assert!(!s.unwedge_op(&b.op_id).unwrap());
        let _ = b;
    }

    #[test]
    fn login_restamps_the_agents_queued_ops_with_the_new_token() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let mut mine = status_op("a", AgentStatus::Busy);
        s.enqueue(&mut mine).unwrap();
        let mut theirs = status_op("b", AgentStatus::Busy);
        s.enqueue(&mut theirs).unwrap();
        let session = StoredSession {
            token: "new".into(),
            session_id: "s".into(),
            account: "acme".into(),
            agent: agent("a"),
            expired: false,
        };
        let status = StatusView::manual(AgentStatus::Online, 1, 1, None);
        s.login(&session, &status, Some("http://x")).unwrap();
        let ops = s.outbox().unwrap();
        assert_eq!(ops[0].token, "new");
        assert_eq!(ops[1].token, "tok");
        assert_eq!(s.session().unwrap(), Some(session));
        assert_eq!(s.status().unwrap(), Some(status));
        assert_eq!(s.server_url().unwrap().as_deref(), Some("http://x"));
    }

    #[test]
    fn logout_clears_the_session_and_queues_end_session_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let session = StoredSession {
            token: "t".into(),
            session_id: "s".into(),
            account: "acme".into(),
            agent: agent("a"),
            expired: false,
        };
        s.set_session(Some(&session)).unwrap();
        let mut end = Op::new(OpBody::EndSession, None, "t".into(), 0);
        s.logout(Some(&mut end)).unwrap();
        assert_eq!(s.session().unwrap(), None);
        assert_eq!(s.outbox().unwrap()[0].op_id, end.op_id);
    }

    #[test]
    fn a_database_from_a_newer_build_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
            s.conn.pragma_update(None, "user_version", 99).unwrap();
        }
        match Store::open(dir.path()) {
            Err(Error::StorageOther(d)) => assert!(d.contains("newer"), "{d}"),
            Err(e) => panic!("wrong error {e}"),
            Ok(_) => panic!("opened a newer schema"),
        }
    }

    #[test]
    fn an_empty_database_from_before_migrations_is_migrated_in_place() {
        // A file that exists but has no schema (as left by a crash during the first open).
        let dir = tempfile::tempdir().unwrap();
        rusqlite::Connection::open(dir.path().join(DB_FILE))
            .unwrap()
            .execute_batch("CREATE TABLE unrelated (x INTEGER);")
            .unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
        assert!(s.device_id().is_ok());
    }

    #[test]
    fn a_commit_by_another_connection_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Store::open(dir.path()).unwrap();
        let mut b = Store::open(dir.path()).unwrap();
        assert!(!a.changed_elsewhere().unwrap());
        let mut op = status_op("x", AgentStatus::Busy);
        b.enqueue(&mut op).unwrap();
        assert!(a.changed_elsewhere().unwrap());
        assert!(!a.changed_elsewhere().unwrap());
        // Our own writes do not count.
        let mut op2 = status_op("x", AgentStatus::Online);
        a.enqueue(&mut op2).unwrap();
        assert!(!a.changed_elsewhere().unwrap());
    }
}

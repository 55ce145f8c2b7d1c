//! The device's SQLite database, `presence.db` in the data dir.
//!
//! Holds what must survive a restart: the device id (generated once), the server URL used at
//! login, the session, the last known status and chat box, the clock estimate, the push
//! registration, and the outbox. Small values live as JSON in `meta`; the outbox has its own
//! table because it is queried and edited row by row.
//!
//! Durability: WAL with `synchronous=FULL`, so a commit is on disk when `commit` returns
//! (the outbox's promise). Writes are rare (a user's clicks, not heartbeats), so FULL costs
//! nothing that matters.
//!
//! Schema changes go in [`MIGRATIONS`]; `PRAGMA user_version` counts the applied ones. A
//! database written by a newer build is refused rather than guessed at.

use std::path::Path;
use std::time::Duration;

use presence_protocol::{Agent, ChatboxView, PushRegistration, StatusView};
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
}

mod key {
    pub const DEVICE_ID: &str = "device_id";
    pub const SERVER_URL: &str = "server_url";
    pub const SESSION: &str = "session";
    pub const STATUS: &str = "status";
    pub const CHATBOX: &str = "chatbox";
    pub const CLOCK: &str = "clock";
    pub const PUSH: &str = "push";
}

impl Store {
    /// Opens (creating the directory and file if needed) and migrates.
    pub(crate) fn open(dir: &Path) -> Result<Store, Error> {
        create_private_dir(dir)?;
        let conn = Connection::open(dir.join(DB_FILE))?;
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
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")?;
        let mut store = Store {
            conn,
            data_version: 0,
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
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(())
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

    fn put<T: Serialize>(&self, key: &str, value: Option<&T>) -> Result<(), Error> {
        match value {
            Some(v) => {
                let s = to_json(v)?;
                self.conn.execute(
                    "INSERT INTO meta (key, value) VALUES (?1, ?2)
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    params![key, s],
                )?;
            }
            None => {
                self.conn
                    .execute("DELETE FROM meta WHERE key = ?1", [key])?;
            }
        }
        Ok(())
    }

    /// The device id: generated on first use, then the same forever (per data dir).
    pub(crate) fn device_id(&mut self) -> Result<String, Error> {
        if let Some(id) = self.get::<String>(key::DEVICE_ID)? {
            return Ok(id);
        }
        let id = uuid::Uuid::new_v4().to_string();
        // INSERT OR IGNORE: a concurrent first open in another process may have won.
        self.conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)",
            params![
                key::DEVICE_ID,
                serde_json::to_string(&id).unwrap_or_default()
            ],
        )?;
        Ok(self.get::<String>(key::DEVICE_ID)?.unwrap_or(id))
    }

    pub(crate) fn server_url(&self) -> Result<Option<String>, Error> {
        self.get(key::SERVER_URL)
    }

    pub(crate) fn session(&self) -> Result<Option<StoredSession>, Error> {
        self.get(key::SESSION)
    }

    pub(crate) fn set_session(&self, s: Option<&StoredSession>) -> Result<(), Error> {
        self.put(key::SESSION, s)
    }

    pub(crate) fn status(&self) -> Result<Option<StatusView>, Error> {
        self.get(key::STATUS)
    }

    pub(crate) fn set_status(&self, s: Option<&StatusView>) -> Result<(), Error> {
        self.put(key::STATUS, s)
    }

    pub(crate) fn chatbox(&self) -> Result<Option<ChatboxView>, Error> {
        self.get(key::CHATBOX)
    }

    pub(crate) fn set_chatbox(&self, c: Option<&ChatboxView>) -> Result<(), Error> {
        self.put(key::CHATBOX, c)
    }

    pub(crate) fn clock(&self) -> Result<Option<ClockEstimate>, Error> {
        self.get(key::CLOCK)
    }

    pub(crate) fn set_clock(&self, c: &ClockEstimate) -> Result<(), Error> {
        self.put(key::CLOCK, Some(c))
    }

    pub(crate) fn push(&self) -> Result<Option<PushRegistration>, Error> {
        self.get(key::PUSH)
    }

    /// Logs out locally: session, status and chat box go in one transaction, together with
    /// queueing `end_session` (if given), so a crash cannot leave half a logout.
    pub(crate) fn logout(&mut self, end_session: Option<&mut Op>) -> Result<(), Error> {
        let tx = self.conn.transaction()?;
        for k in [key::SESSION, key::STATUS, key::CHATBOX] {
            tx.execute("DELETE FROM meta WHERE key = ?1", [k])?;
        }
        if let Some(op) = end_session {
            op.seq = insert_op(&tx, op)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Stores a new session and re-stamps the agent's queued ops with its token, atomically.
    pub(crate) fn login(
        &mut self,
        session: &StoredSession,
        status: &StatusView,
        server_url: Option<&str>,
    ) -> Result<(), Error> {
        let tx = self.conn.transaction()?;
        let put = |k: &str, v: String| {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![k, v],
            )
        };
        put(key::SESSION, to_json(session)?)?;
        put(key::STATUS, to_json(status)?)?;
        if let Some(url) = server_url {
            put(key::SERVER_URL, to_json(&url)?)?;
        }
        tx.execute("DELETE FROM meta WHERE key = ?1", [key::CHATBOX])?;
        tx.execute(
            "UPDATE outbox SET token = ?1 WHERE agent_id = ?2 AND kind IN ('set_status')",
            params![session.token, session.agent.id],
        )?;
        tx.execute(
            "UPDATE outbox SET token = ?1 WHERE kind = 'register_push' AND wedged_code IS NULL",
            params![session.token],
        )?;
        tx.commit()?;
        Ok(())
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
        let tx = self.conn.transaction()?;
        let kind = op.kind().as_str();
        let keep = keep.unwrap_or("");
        let removed: Vec<String> = {
            let mut stmt = tx.prepare(
                "DELETE FROM outbox
                 WHERE kind = ?1 AND op_id != ?2 AND (?1 != 'set_status' OR agent_id IS ?3)
                 RETURNING op_id",
            )?;
            stmt.query_map(params![kind, keep, op.agent_id], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        op.seq = insert_op(&tx, op)?;
        tx.commit()?;
        Ok(removed)
    }

    /// Stores `op` behind everything else.
    #[cfg(test)]
    pub(crate) fn enqueue(&mut self, op: &mut Op) -> Result<(), Error> {
        let tx = self.conn.transaction()?;
        op.seq = insert_op(&tx, op)?;
        tx.commit()?;
        Ok(())
    }

    pub(crate) fn remove_op(&self, op_id: &str) -> Result<(), Error> {
        self.conn
            .execute("DELETE FROM outbox WHERE op_id = ?1", [op_id])?;
        Ok(())
    }

    pub(crate) fn wedge_op(&self, op_id: &str, code: &str, detail: &str) -> Result<(), Error> {
        self.conn.execute(
            "UPDATE outbox SET wedged_code = ?2, wedged_detail = ?3 WHERE op_id = ?1",
            params![op_id, code, detail],
        )?;
        Ok(())
    }

    pub(crate) fn unwedge_op(&self, op_id: &str) -> Result<bool, Error> {
        let n = self.conn.execute(
            "UPDATE outbox SET wedged_code = NULL, wedged_detail = NULL
             WHERE op_id = ?1 AND wedged_code IS NOT NULL",
            [op_id],
        )?;
        Ok(n == 1)
    }

    /// Stores the push registration and queues it for the server (if `op` is given).
    pub(crate) fn set_push(
        &mut self,
        push: &PushRegistration,
        op: Option<&mut Op>,
        keep: Option<&str>,
    ) -> Result<Vec<String>, Error> {
        self.put(key::PUSH, Some(push))?;
        match op {
            Some(op) => self.enqueue_coalescing(op, keep),
            None => Ok(Vec::new()),
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
            OpBody::SetStatus {
                status: s,
                intent_at: Some(1),
            },
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
    fn the_database_uses_wal_and_full_sync() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let mode: String = s
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        let sync: i64 = s
            .conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(sync, 2, "synchronous=FULL");
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
        let s = Store::open(dir.path()).unwrap();
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
        let status = StatusView {
            status: AgentStatus::Online,
            version: 1,
            intent_at: 1,
            changed_by_device: None,
        };
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

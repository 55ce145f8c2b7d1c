//! The embedded store: opening, migrations, checkpoints, reads and commits.

use presence_protocol::{AccountSettings, AgentStatus, OpeningHours, Role, StatusView};
use rusqlite::params;

use super::commit::in_tx;
use super::*;

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
        status: StatusView::manual(AgentStatus::Offline, 0, 0, None),
        status_op_id: String::new(),
        sub: None,
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
        custom_statuses: Vec::new(),
        identity: Default::default(),
    };
    store
        .commit(&Write::Account {
            account: Box::new(account),
            owner: Box::new(agent_row("g0", "owner@acme.test")),
            now: 0,
        })
        .unwrap();
    let taken = Write::Agent {
        row: agent_row("g1", "OWNER@acme.test"),
        now: 1,
    };
    let fresh = Write::Agent {
        row: agent_row("g2", "new@acme.test"),
        now: 1,
    };
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

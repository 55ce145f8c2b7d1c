//! The store harness starts real servers, restarts them, and leaves nothing running.

use std::net::TcpStream;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use presence_test_support::stores::{Postgres, Redis, RedisCluster, shared_postgres};

/// `psql -h 127.0.0.1 -p PORT -U postgres -d DB -tAc SQL`, as a client outside the harness.
fn psql(port: u16, db: &str, sql: &str) -> Option<String> {
    let out = Command::new("psql")
        .args(["-X", "-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-U", "postgres", "-d", db, "-tAc", sql])
        .output()
        .expect("run psql");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn accepts(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Polls until nothing accepts connections on `port`.
fn wait_closed(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while accepts(port) {
        assert!(Instant::now() < deadline, "port {port} still accepts");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn postgres_starts_and_a_created_database_answers() {
    let pg = Postgres::start();
    let url = pg.create_database("alpha");
    assert_eq!(
        url,
        format!("postgres://postgres@127.0.0.1:{}/alpha", pg.port())
    );
    assert_eq!(pg.url("alpha"), url);
    assert_eq!(psql(pg.port(), "alpha", "select 1").as_deref(), Some("1"));
    assert_eq!(pg.psql("alpha", "show max_connections"), "300");
    assert_eq!(pg.psql("alpha", "show fsync"), "off");
    assert!(
        psql(pg.port(), "missing", "select 1").is_none(),
        "only created databases exist"
    );
}

#[test]
fn postgres_answers_again_after_a_crash_and_after_a_stop() {
    let mut pg = Postgres::start();
    let port = pg.port();
    pg.create_database("beta");
    pg.psql("beta", "create table t (n int); insert into t values (7)");

    pg.kill();
    assert!(
        psql(port, "beta", "select 1").is_none(),
        "killed means down"
    );
    pg.start_again();
    assert_eq!(pg.port(), port);
    assert_eq!(psql(port, "beta", "select 1").as_deref(), Some("1"));
    assert_eq!(
        pg.psql("beta", "select n from t"),
        "7",
        "committed rows survive a crash"
    );

    pg.stop();
    assert!(
        psql(port, "beta", "select 1").is_none(),
        "stopped means down"
    );
    pg.start_again();
    assert_eq!(psql(port, "beta", "select n from t").as_deref(), Some("7"));
}

#[test]
fn postgres_drop_leaves_nothing_running() {
    let pg = Postgres::start();
    let port = pg.port();
    assert!(accepts(port));
    drop(pg);
    wait_closed(port);
}

#[test]
fn shared_postgres_hands_out_distinct_fresh_databases() {
    let a = shared_postgres().fresh_database();
    let b = shared_postgres().fresh_database();
    assert_ne!(a, b);
    let port = shared_postgres().port();
    for url in [&a, &b] {
        let prefix = format!("postgres://postgres@127.0.0.1:{port}/");
        let db = url
            .strip_prefix(&prefix)
            .expect("url of the shared instance");
        assert_eq!(psql(port, db, "select 1").as_deref(), Some("1"));
    }
}

#[test]
fn redis_answers_and_starts_again_empty_after_a_crash() {
    let mut redis = Redis::start();
    let port = redis.port();
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{port}/"));
    assert_eq!(redis.command(&["PING"]), "PONG");
    assert_eq!(redis.command(&["SET", "k", "v"]), "OK");
    assert_eq!(redis.command(&["GET", "k"]), "v");

    redis.kill();
    assert!(!accepts(port), "killed means down");
    redis.start_again();
    assert_eq!(redis.port(), port);
    assert_eq!(redis.command(&["PING"]), "PONG");
    assert_eq!(redis.command(&["DBSIZE"]), "0", "starts again empty");
    assert_eq!(redis.command(&["EXISTS", "k"]), "0");

    drop(redis);
    wait_closed(port);
}

#[test]
fn redis_cluster_forms_and_a_replica_takes_over_a_killed_primary() {
    let mut cluster = RedisCluster::start();
    let ports = cluster.ports();
    assert_eq!(ports.len(), 6);
    assert_eq!(cluster.seed_urls().len(), 6);
    for &p in &ports {
        let info = cluster.command(p, &["CLUSTER", "INFO"]);
        assert!(info.contains("cluster_state:ok"), "{p}: {info}");
        assert!(info.contains("cluster_size:3"), "{p}: {info}");
    }

    let slot = 0;
    let old = cluster.kill_primary_of_slot(slot);
    assert!(!accepts(old), "killed primary is down");
    cluster.wait_healthy();
    let new = cluster.primary_of_slot(slot);
    assert_ne!(new, old, "a replica took slot {slot} over");
    assert_eq!(cluster.seed_urls().len(), 5);
    assert!(
        !cluster
            .seed_urls()
            .contains(&format!("redis://127.0.0.1:{old}/"))
    );
    for p in cluster.ports() {
        let info = cluster.command(p, &["CLUSTER", "INFO"]);
        assert!(info.contains("cluster_state:ok"), "{p}: {info}");
    }
    let role = cluster.command(new, &["ROLE"]);
    assert!(role.starts_with("master"), "{new}: {role}");

    drop(cluster);
    for p in ports {
        wait_closed(p);
    }
}

//! TLS to the cluster stores, against a real PostgreSQL that accepts only `hostssl`
//! connections and a real Redis (standalone, and a Redis Cluster) that listens on TLS ports
//! only, each serving a certificate for `127.0.0.1` from a test CA made here. Nodes are
//! processes of this crate's binary, so what a refusal prints and its exit status are what an
//! operator gets. One PostgreSQL and one Redis serve the whole file.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock, mpsc};

use presence_server::cluster::pg::Pg;
use presence_server::metrics::Metrics;
use presence_test_support::push::tls::TestCa;
use presence_test_support::stores::{Postgres, Redis, RedisCluster};
use presence_test_support::{ADMIN_TOKEN, Api, DEADLINE, client};

/// A password put in store URLs: no message may show it.
const SECRET: &str = "s3cret-store-pw";

struct Stores {
    pg: Postgres,
    redis: Redis,
}

/// The TLS-only PostgreSQL and Redis of this file, started on first use.
fn stores() -> &'static Stores {
    static STORES: OnceLock<Stores> = OnceLock::new();
    STORES.get_or_init(|| {
        // Each store keeps a copy of the CA and its leaf; this one may go.
        let ca = TestCa::new();
        Stores {
            pg: Postgres::start_tls(&ca),
            redis: Redis::start_tls(&ca),
        }
    })
}

impl Stores {
    /// A fresh database's URL with `query` (`sslmode=...`).
    fn pg_url(&self, query: &str) -> String {
        format!("{}?{query}", self.pg.fresh_database())
    }

    /// `sslmode=verify-full` against the store's own CA.
    fn pg_verified(&self) -> String {
        self.pg_url(&format!(
            "sslmode=verify-full&sslrootcert={}",
            self.pg.ca_file().expect("TLS").display()
        ))
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// A node of this crate's binary with `args` after the usual ones.
fn node(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_presence-server"));
    cmd.args(["--listen", "127.0.0.1:0", "--admin-token", ADMIN_TOKEN])
        .arg("--data-dir")
        .arg(std::env::temp_dir().join("presence-store-tls-unused"))
        .args(args)
        .env("PRESENCE_LOG", "warn")
        .stdin(Stdio::null());
    cmd
}

/// A node that starts: once it prints its `listening on` line.
fn running(mut cmd: Command) -> common::Proc {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn a node");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the listening line");
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("the node did not start: first line {line:?}"))
        .to_owned();
    common::Proc { child, url }
}

/// A node that must refuse to start: its exit status and what it printed to stderr, once it
/// has exited (within [`DEADLINE`]).
fn refusal(mut cmd: Command) -> (i32, String) {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn a node");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let Ok(out) = rx.recv_timeout(DEADLINE) else {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        panic!("the node neither started nor exited within {DEADLINE:?}");
    };
    let out = out.expect("the node's output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("listening on"),
        "the node started: {stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains(SECRET), "a password shows: {stderr}");
    (out.status.code().expect("an exit status"), stderr)
}

fn api(p: &common::Proc) -> Api {
    Api {
        url: p.url.clone(),
        client: client(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_tls_stores_serve_a_login_and_a_status_change_reaches_the_other_nodes_stream()
{
    let s = stores();
    let pg = s.pg_verified();
    let redis = s.redis.url();
    assert!(redis.starts_with("rediss://"), "{redis}");
    let redis_ca = s.redis.ca_file().expect("TLS");
    // The CA file by flag on one node, by environment on the other.
    let a = running(node(&[
        "--postgres-url",
        &pg,
        "--redis-url",
        &redis,
        "--redis-ca-file",
        path(&redis_ca),
    ]));
    let mut b = node(&["--postgres-url", &pg, "--redis-url", &redis]);
    b.env("PRESENCE_REDIS_CA_FILE", &redis_ca);
    let b = running(b);
    let (a, b) = (api(&a), api(&b));

    let acc = a.create_account("tls-stores").await;
    let phone = a.login(&acc.slug, &acc.email, &acc.password, "phone").await;
    let laptop = b
        .login(&acc.slug, &acc.email, &acc.password, "laptop")
        .await;
    let mut events = b.sse("/v1/me/events", Some(&laptop.token)).await;
    events.wait_for("snapshot", |_| true).await;
    let mut widget = b
        .sse(&format!("/v1/widget/{}/events", acc.widget_key), None)
        .await;
    widget
        .wait_for("chatbox", |v| v["status"] == "offline")
        .await;

    let r = a.set_status(&phone, "online").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ev = events.wait_for("status", |v| v["status"] == "online").await;
    assert_eq!(ev["changed_by_device"], "phone");
    widget
        .wait_for("chatbox", |v| v["status"] == "online")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_a_tls_redis_cluster_with_the_ca_file_serves_a_status_change_on_its_stream() {
    let s = stores();
    let ca = TestCa::new();
    let cluster = RedisCluster::start_tls(&ca);
    drop(ca);
    let seeds = cluster.seed_urls().join(",");
    assert!(seeds.starts_with("rediss://"), "{seeds}");
    let n = running(node(&[
        "--postgres-url",
        &s.pg_verified(),
        "--redis-url",
        &seeds,
        "--redis-ca-file",
        path(&cluster.ca_file().expect("TLS")),
    ]));
    let n = api(&n);
    let acc = n.create_account("tls-cluster").await;
    let phone = n.login(&acc.slug, &acc.email, &acc.password, "phone").await;
    let mut events = n.sse("/v1/me/events", Some(&phone.token)).await;
    events.wait_for("snapshot", |_| true).await;
    let r = n.set_status(&phone, "online").await;
    assert_eq!(r.status, 200, "{}", r.body);
    events.wait_for("status", |v| v["status"] == "online").await;
}

#[test]
fn postgres_verify_full_with_the_wrong_ca_refuses_to_start_and_says_why() {
    let s = stores();
    let wrong = TestCa::new();
    let url = s
        .pg_url(&format!(
            "sslmode=verify-full&sslrootcert={}",
            wrong.pem_path.display()
        ))
        .replace("postgres@", &format!("postgres:{SECRET}@"));
    let (code, stderr) = refusal(node(&[
        "--postgres-url",
        &url,
        "--redis-url",
        &s.redis.url(),
        "--redis-ca-file",
        path(&s.redis.ca_file().expect("TLS")),
    ]));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("cannot connect to PostgreSQL at postgres://postgres:***@127.0.0.1:")
            && stderr.contains("invalid peer certificate"),
        "{stderr}"
    );
}

#[test]
fn a_plain_connection_to_a_postgresql_that_requires_tls_is_refused_at_start() {
    let s = stores();
    let (code, stderr) = refusal(node(&[
        "--postgres-url",
        &s.pg_url("sslmode=disable"),
        "--redis-url",
        &s.redis.url(),
        "--redis-ca-file",
        path(&s.redis.ca_file().expect("TLS")),
    ]));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("cannot connect to PostgreSQL")
            && stderr.contains("no pg_hba.conf entry")
            && stderr.contains("no encryption"),
        "{stderr}"
    );
}

/// `Pg::connect` (the pool and migrations) over each `sslmode`, in this process.
async fn pg_connect(url: &str) -> Result<(), String> {
    Pg::connect(url, Arc::clone(&Metrics::default().store))
        .await
        .map(|_| ())
}

#[tokio::test]
async fn require_encrypts_without_verifying_and_verify_full_checks_the_host_name_but_verify_ca_does_not()
 {
    let s = stores();
    let ca = s.pg.ca_file().expect("TLS");
    let port = s.pg.port();
    // The certificate names 127.0.0.1 and localhost; `hostaddr` reaches the server under
    // another name.
    let db = s.pg.fresh_database();
    let db = db.rsplit('/').next().expect("db name");
    let elsewhere = |query: &str| {
        format!(
            "postgres://postgres@db.invalid:{port}/{db}?hostaddr=127.0.0.1&{query}&sslrootcert={}",
            ca.display()
        )
    };
    let e = pg_connect(&elsewhere("sslmode=verify-full"))
        .await
        .expect_err("the host name is not the certificate's");
    assert!(
        e.contains("certificate not valid for name \"db.invalid\""),
        "{e}"
    );
    pg_connect(&elsewhere("sslmode=verify-ca"))
        .await
        .expect("verify-ca checks the chain only");

    pg_connect(&s.pg_url("sslmode=require"))
        .await
        .expect("require needs no CA");
    let wrong = TestCa::new();
    let e = pg_connect(&s.pg_url(&format!(
        "sslmode=verify-ca&sslrootcert={}",
        wrong.pem_path.display()
    )))
    .await
    .expect_err("verify-ca checks the chain");
    assert!(e.contains("invalid peer certificate"), "{e}");
}

#[test]
fn rediss_with_the_wrong_ca_file_refuses_to_start_and_says_why() {
    let s = stores();
    let wrong = TestCa::new();
    let url = s
        .redis
        .url()
        .replace("rediss://", &format!("rediss://:{SECRET}@"));
    let (code, stderr) = refusal(node(&[
        "--postgres-url",
        &s.pg_verified(),
        "--redis-url",
        &url,
        "--redis-ca-file",
        path(&wrong.pem_path),
    ]));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("cannot reach Redis at rediss://:***@127.0.0.1:")
            && stderr.contains("invalid peer certificate"),
        "{stderr}"
    );
}

#[test]
fn rediss_without_a_ca_file_verifies_with_the_built_in_roots_and_refuses_a_private_ca() {
    let s = stores();
    let (code, stderr) = refusal(node(&[
        "--postgres-url",
        &s.pg_verified(),
        "--redis-url",
        &s.redis.url(),
    ]));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("cannot reach Redis at rediss://127.0.0.1:")
            && stderr.contains("UnknownIssuer"),
        "{stderr}"
    );
}

#[test]
fn a_plain_redis_url_to_a_tls_only_redis_fails_clearly() {
    let s = stores();
    let plain = s.redis.url().replace("rediss://", "redis://");
    let (code, stderr) = refusal(node(&[
        "--postgres-url",
        &s.pg_verified(),
        "--redis-url",
        &plain,
    ]));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("cannot reach Redis at {plain}")) && stderr.contains("rediss://"),
        "{stderr}"
    );
}

#[test]
fn store_tls_settings_that_cannot_be_honoured_are_usage_errors() {
    // No store is reached: these are refused before connecting.
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "--postgres-url",
                "postgres://u:s3cret-store-pw@127.0.0.1:1/db?sslmode=verify-everything",
                "--redis-url",
                "redis://127.0.0.1:1/",
            ],
            "sslmode=\"verify-everything\" is not one of",
        ),
        (
            &[
                "--postgres-url",
                "postgres://127.0.0.1:1/db?sslrootcert=/ca.pem",
                "--redis-url",
                "redis://127.0.0.1:1/",
            ],
            "sslrootcert= verifies nothing",
        ),
        (
            &[
                "--postgres-url",
                "postgres://127.0.0.1:1/db",
                "--redis-url",
                "redis://:s3cret-store-pw@127.0.0.1:1/",
                "--redis-ca-file",
                "/ca.pem",
            ],
            "--redis-ca-file is for TLS, but redis://:***@127.0.0.1:1/ is not a rediss:// URL",
        ),
        (
            &["--redis-ca-file", "/ca.pem"],
            "--redis-ca-file needs --redis-url",
        ),
    ];
    for (args, says) in cases {
        let (code, stderr) = refusal(node(args));
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

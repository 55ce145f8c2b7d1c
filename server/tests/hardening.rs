//! The binary facing the open internet (PROTOCOL.md, third part, "Facing the open internet"):
//! its files are owner-only, private answers are never cached or sniffed, `--help` never
//! shows a secret taken from the environment, and the demo's well-known passwords stay on
//! loopback unless the operator says otherwise.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use common::{ADMIN, call, client, command, spawn};
use reqwest::Method;
use reqwest::header::{CACHE_CONTROL, X_CONTENT_TYPE_OPTIONS};
use serde_json::json;

/// Creates account `acme` through the operator route; its answer.
async fn create_account(url: &str) -> serde_json::Value {
    let body = json!({"slug": "acme", "name": "Acme",
                      "owner": {"name": "O", "email": "o@acme.test", "password": "pw-owner-1"}});
    call(
        &client(),
        Method::POST,
        format!("{url}/v1/accounts"),
        ADMIN,
        body,
    )
    .await
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn the_data_directory_and_database_files_are_owner_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("new").join("data");
    let server = spawn(&dir, "127.0.0.1:0");
    // A write, so the log file exists too.
    create_account(&server.url).await;
    assert_eq!(mode(&dir), 0o700, "the data directory");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
        files += 1;
    }
    assert!(files >= 2, "the database and its log at least");
}

#[tokio::test]
async fn private_answers_are_never_cached_or_sniffed_and_widget_errors_are_never_cached() {
    let tmp = tempfile::tempdir().unwrap();
    let server = spawn(tmp.path(), "127.0.0.1:0");
    let c = client();
    for path in ["/v1/me", "/v1/admin/account", "/v1/nowhere"] {
        let r = c.get(format!("{}{path}", server.url)).send().await.unwrap();
        assert_eq!(r.headers()[CACHE_CONTROL], "no-store", "{path}");
        assert_eq!(r.headers()[X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
    }
    let r = c
        .post(format!("{}/v1/login", server.url))
        .json(
            &json!({"account": "acme", "email": "x@y.z", "password": "p",
                      "device": {"id": "d", "platform": "web"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()[CACHE_CONTROL], "no-store", "a login answer");
    // A widget's status says how it may be cached (tests/tests/widget.rs); its errors are
    // kept by no cache, and are not marked private either.
    let r = c
        .get(format!("{}/v1/widget/wk_unknown/status", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()[CACHE_CONTROL], "no-store", "a widget's 404");
    assert!(r.headers().get(X_CONTENT_TYPE_OPTIONS).is_none());
}

#[test]
fn help_never_shows_a_secret_from_the_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let out = command(tmp.path(), "127.0.0.1:0", &["--help"])
        .env("PRESENCE_ADMIN_TOKEN", "admin-secret-4711")
        .env("PRESENCE_POSTGRES_URL", "postgres://u:pg-secret-4711@db/p")
        .env("PRESENCE_REDIS_URL", "redis://:redis-secret-4711@cache")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--admin-token"), "{text}");
    assert!(!text.contains("secret-4711"), "{text}");
}

#[test]
fn the_demo_stays_on_loopback_unless_told_it_may_be_public() {
    let tmp = tempfile::tempdir().unwrap();
    let out = command(tmp.path(), "0.0.0.0:0", &["--demo"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--demo-public"), "{err}");
    assert!(
        !tmp.path().join("presence-server.db").exists(),
        "refused before anything is made"
    );
    let mut child = command(tmp.path(), "0.0.0.0:0", &["--demo", "--demo-public"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.starts_with("listening on http://"), "{line:?}");
}

#[test]
fn a_short_admin_token_is_refused_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_presence-server"))
        .args(["--listen", "127.0.0.1:0", "--admin-token", "short-token"])
        .arg("--data-dir")
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--admin-token must have at least 16 characters"),
        "{err}"
    );
    assert!(
        !err.contains("short-token"),
        "the token is not echoed: {err}"
    );
}

#[tokio::test]
async fn past_the_connection_cap_requests_get_503_and_health_is_still_answered() {
    let tmp = tempfile::tempdir().unwrap();
    let server = common::spawn_with(tmp.path(), "127.0.0.1:0", &["--max-connections", "2"]);
    let addr = server.listen();
    // Two connections that hold their place and send nothing.
    let _held: Vec<_> = (0..2)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    let c = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    // The held connections are accepted in order; wait until the server counts them.
    let mut over = None;
    for _ in 0..100 {
        let r = c.get(format!("{}/v1/me", server.url)).send().await.unwrap();
        if r.status() == 503 {
            over = Some(r);
            break;
        }
        tokio::task::yield_now().await;
    }
    let r = over.expect("a 503 past the cap");
    assert!(r.headers().contains_key("retry-after"));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
    let health = c
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "health is answered past the cap");
}

#[tokio::test]
async fn one_address_holds_at_most_its_streams_and_gets_each_back() {
    let tmp = tempfile::tempdir().unwrap();
    // Pings every 100 ms: a stream whose reader left is noticed at the next one.
    let server = common::spawn_with(
        tmp.path(),
        "127.0.0.1:0",
        &["--max-streams-per-ip", "2", "--stream-ping-ms", "100"],
    );
    let c = client();
    let acc = create_account(&server.url).await;
    let key = acc["account"]["widget_key"].as_str().unwrap().to_owned();
    let url = format!("{}/v1/widget/{key}/events", server.url);
    let first = c.get(&url).send().await.unwrap();
    let second = c.get(&url).send().await.unwrap();
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let third = c.get(&url).send().await.unwrap();
    assert_eq!(third.status(), 503);
    assert!(third.headers().contains_key("retry-after"));
    drop(first);
    // Given back when the stream's connection closes: the server notices at its next ping,
    // so ask again (within a generous deadline) until it has.
    let mut again = None;
    for _ in 0..200 {
        let r = c.get(&url).send().await.unwrap();
        if r.status() == 200 {
            again = Some(r);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(again.is_some(), "a closed stream's place is given back");
    drop(second);
}

/// A server whose streams ping every 100 ms, one stream per address, idle connections kept
/// an hour (so only the reader rule can close a stream); account `acme`'s widget stream URL
/// and its owner's token.
async fn one_stream_server(tmp: &std::path::Path) -> (common::Proc, String, String) {
    let server = common::spawn_with(
        tmp,
        "127.0.0.1:0",
        &[
            "--max-streams-per-ip",
            "1",
            "--stream-ping-ms",
            "100",
            "--idle-timeout-ms",
            "3600000",
        ],
    );
    let acc = create_account(&server.url).await;
    let key = acc["account"]["widget_key"].as_str().unwrap().to_owned();
    let login = call(
        &client(),
        Method::POST,
        format!("{}/v1/login", server.url),
        "",
        json!({"account": "acme", "email": "o@acme.test", "password": "pw-owner-1",
               "device": {"id": "d", "platform": "cli", "name": "n", "app_version": "1"}}),
    )
    .await;
    let token = login["token"].as_str().expect("a token").to_owned();
    let url = format!("{}/v1/widget/{key}/events", server.url);
    (server, url, token)
}

/// Flips the owner between online and offline: each flip is a new chat box view, a frame on
/// every widget stream.
async fn flip(c: &reqwest::Client, server: &str, token: &str, i: usize) {
    let status = if i.is_multiple_of(2) {
        "offline"
    } else {
        "online"
    };
    let r = c
        .put(format!("{server}/v1/me/status"))
        .bearer_auth(token)
        .json(&json!({"status": status, "op_id": format!("0190b6a0-0000-7000-8000-{i:012}")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_stream_whose_reader_stops_taking_what_is_sent_is_closed_within_two_pings() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, url, token) = one_stream_server(tmp.path()).await;
    let c = client();
    // A reader with a tiny receive window that asks for the stream and never reads.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket
        .connect(server.listen().parse().unwrap())
        .await
        .unwrap();
    let path = url.trim_start_matches(&server.url);
    let req = format!("GET {path} HTTP/1.1\r\nhost: x\r\naccept: text/event-stream\r\n\r\n");
    tokio::io::AsyncWriteExt::write_all(&mut stalled, req.as_bytes())
        .await
        .unwrap();
    // Its stream holds the address's one place.
    let mut i = 0;
    loop {
        assert!(i < 1000, "the stalled stream never took its place");
        if c.get(&url).send().await.unwrap().status() == 503 {
            break;
        }
        i += 1;
    }
    // Changes flow until the server gives the place back: its reader fell behind.
    let started = std::time::Instant::now();
    loop {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the stalled stream is still open after {i} changes"
        );
        flip(&c, &server.url, &token, i).await;
        i += 1;
        if c.get(&url).send().await.unwrap().status() == 200 {
            break;
        }
    }
    drop(stalled);
}

#[tokio::test]
async fn a_stream_whose_reader_keeps_up_stays_open_across_many_pings() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, url, token) = one_stream_server(tmp.path()).await;
    let c = client();
    let reader = c.get(&url).send().await.unwrap();
    assert_eq!(reader.status(), 200);
    let read = tokio::spawn(async move {
        let mut body = reader;
        let mut bytes = 0usize;
        while let Ok(Some(chunk)) = body.chunk().await {
            bytes += chunk.len();
        }
        bytes
    });
    // Ten pings' worth of changes, read as they come.
    let started = std::time::Instant::now();
    let mut i = 0;
    while started.elapsed() < std::time::Duration::from_millis(1000) || i < 200 {
        flip(&c, &server.url, &token, i).await;
        i += 1;
    }
    assert_eq!(
        c.get(&url).send().await.unwrap().status(),
        503,
        "the reading stream still holds the address's place"
    );
    assert!(!read.is_finished(), "the reading stream is still open");
}

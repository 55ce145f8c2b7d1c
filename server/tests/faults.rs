//! Faults an operator meets, on the real binary: a damaged or newer database at start, kill -9
//! right after view changes, SIGTERM while clients misbehave, and a flood of logins.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{ADMIN, Proc, call, client, command, spawn, spawn_with};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

/// A data dir with an account, an agent and some statuses; the server is stopped cleanly.
async fn populated_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = spawn(dir.path(), "127.0.0.1:0");
    let c = client();
    let (_, token) = account_and_login(&c, &p, "acme").await;
    for (i, s) in ["online", "busy", "online"].iter().enumerate() {
        call(
            &c,
            reqwest::Method::PUT,
            format!("{}/v1/me/status", p.url),
            &token,
            json!({"status": s, "op_id": format!("0190b6a0-0000-7000-8000-00000000000{i}")}),
        )
        .await;
    }
    sigterm_and_wait(p);
    dir
}

/// Creates account `slug` and logs its owner in; (widget key, token).
async fn account_and_login(c: &reqwest::Client, p: &Proc, slug: &str) -> (String, String) {
    let created = call(
        c,
        reqwest::Method::POST,
        format!("{}/v1/accounts", p.url),
        ADMIN,
        json!({"name": "Acme", "slug": slug,
               "owner": {"name": "O", "email": "o@acme.test", "password": "pw-secret-1"}}),
    )
    .await;
    let login: Value = c
        .post(format!("{}/v1/login", p.url))
        .json(
            &json!({"account": slug, "email": "o@acme.test", "password": "pw-secret-1",
                      "device": {"id": "d1", "platform": "cli", "name": "n", "app_version": "1"}}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        created["account"]["widget_key"]
            .as_str()
            .unwrap()
            .to_owned(),
        login["token"].as_str().unwrap().to_owned(),
    )
}

/// SIGTERM; returns how long the process took to exit and whether it exited 0.
fn sigterm_and_wait(mut p: Proc) -> (Duration, bool) {
    let pid = p.child.id().to_string();
    let started = Instant::now();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = started + Duration::from_secs(30);
    loop {
        if let Some(status) = p.child.try_wait().unwrap() {
            return (started.elapsed(), status.success());
        }
        assert!(
            Instant::now() < deadline,
            "the server did not exit within 30 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts the binary on `dir` expecting it to refuse; its stderr.
fn refused_start(dir: &std::path::Path) -> String {
    let out = command(dir, "127.0.0.1:0", &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success(), "the server must refuse to start");
    assert!(out.stdout.is_empty(), "it never listened");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn a_damaged_database_is_refused_at_start() {
    let dir = populated_dir().await;
    let db = dir.path().join("presence-server.db");
    let (root, page_size) = {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        let root: i64 = conn
            .query_row(
                "SELECT rootpage FROM sqlite_master WHERE name = 'agents'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let page_size: i64 = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap();
        (root, page_size)
    };
    // One page of the agents table overwritten with garbage, as a bad disk block would.
    let mut bytes = std::fs::read(&db).unwrap();
    let at = ((root - 1) * page_size) as usize;
    for (i, b) in bytes[at..at + page_size as usize].iter_mut().enumerate() {
        *b = (i * 7 + 13) as u8;
    }
    std::fs::write(&db, bytes).unwrap();
    let err = refused_start(dir.path());
    assert!(err.contains("damaged"), "a clear reason: {err}");
    assert!(err.contains("presence-server.db"), "names the file: {err}");
}

#[tokio::test]
async fn a_database_from_a_newer_server_is_refused_at_start() {
    let dir = populated_dir().await;
    let conn = rusqlite::Connection::open(dir.path().join("presence-server.db")).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = refused_start(dir.path());
    assert!(err.contains("schema version 99"), "{err}");
    assert!(err.contains("newer"), "{err}");
}

#[tokio::test]
async fn view_versions_never_go_backwards_across_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let p = spawn(dir.path(), "127.0.0.1:0");
    let c = client();
    let (wk, token) = account_and_login(&c, &p, "acme").await;
    // Many view changes in well under the one-second lease flush, then kill -9 at once.
    for i in 0..30 {
        let s = if i % 2 == 0 { "online" } else { "busy" };
        call(
            &c,
            reqwest::Method::PUT,
            format!("{}/v1/me/status", p.url),
            &token,
            json!({"status": s, "op_id": uuid::Uuid::now_v7().to_string()}),
        )
        .await;
    }
    let before: Value = c
        .get(format!("{}/v1/widget/{wk}/status", p.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let served = before["version"].as_i64().unwrap();
    assert!(served >= 30);
    let listen = p.listen();
    p.kill9();
    let p = spawn(dir.path(), &listen);
    let c = client();
    let after: Value = c
        .get(format!("{}/v1/widget/{wk}/status", p.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        after["version"].as_i64().unwrap() > served,
        "served {served} before kill -9, then {} after",
        after["version"]
    );
}

#[tokio::test]
async fn sigterm_finishes_despite_a_half_sent_request_and_a_stalled_stream() {
    let dir = tempfile::tempdir().unwrap();
    let p = spawn_with(
        dir.path(),
        "127.0.0.1:0",
        &["--shutdown-grace-ms", "1000", "--stream-ping-ms", "100"],
    );
    let c = client();
    let (wk, token) = account_and_login(&c, &p, "acme").await;
    let addr = p.listen();
    // Headers that never end.
    let mut half = tokio::net::TcpStream::connect(&addr).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    // A widget stream nobody reads.
    let mut stalled = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stalled
        .write_all(format!("GET /v1/widget/{wk}/events HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    // And a device stream, read by nobody either.
    let mut device = tokio::net::TcpStream::connect(&addr).await.unwrap();
    device
        .write_all(
            format!(
                "GET /v1/me/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    // Acknowledged just before the signal: must be on disk after the stop.
    call(
        &c,
        reqwest::Method::PUT,
        format!("{}/v1/me/status", p.url),
        &token,
        json!({"status": "busy", "op_id": uuid::Uuid::now_v7().to_string()}),
    )
    .await;
    let (took, ok) = sigterm_and_wait(p);
    assert!(ok, "exit status 0 after a graceful stop");
    assert!(
        took < Duration::from_secs(10),
        "took {took:?} with a 1 s grace"
    );
    drop((half, stalled, device));
    let p = spawn(dir.path(), "127.0.0.1:0");
    let me = call(
        &c,
        reqwest::Method::GET,
        format!("{}/v1/me", p.url),
        &token,
        Value::Null,
    )
    .await;
    assert_eq!(me["status"]["status"], "busy");
}

#[tokio::test]
async fn streams_being_read_end_at_a_graceful_stop_without_waiting_for_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let p = spawn_with(dir.path(), "127.0.0.1:0", &["--shutdown-grace-ms", "60000"]);
    let c = client();
    let (wk, _token) = account_and_login(&c, &p, "acme").await;
    let addr = p.listen();
    let mut readers = Vec::new();
    for _ in 0..3 {
        let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        tcp.write_all(format!("GET /v1/widget/{wk}/events HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        // A reader that keeps up: says when the first event is in, then reads to the end.
        let (first, first_in) = tokio::sync::oneshot::channel();
        readers.push((
            first_in,
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                let mut first = Some(first);
                loop {
                    match tokio::io::AsyncReadExt::read(&mut tcp, &mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                    if String::from_utf8_lossy(&got).contains("event: chatbox")
                        && let Some(f) = first.take()
                    {
                        let _ = f.send(());
                    }
                }
                String::from_utf8_lossy(&got).into_owned()
            }),
        ));
    }
    let mut tasks = Vec::new();
    for (first_in, task) in readers {
        tokio::time::timeout(Duration::from_secs(10), first_in)
            .await
            .expect("each stream sends its first event at once")
            .unwrap();
        tasks.push(task);
    }
    let (took, ok) = sigterm_and_wait(p);
    assert!(ok, "exit status 0 after a graceful stop");
    assert!(
        took < Duration::from_secs(20),
        "the streams held the stop for {took:?}: they should end at once, not at the 60 s grace"
    );
    for t in tasks {
        let body = tokio::time::timeout(Duration::from_secs(10), t)
            .await
            .unwrap()
            .unwrap();
        assert!(body.contains("event: chatbox"), "{body}");
        // The chunked body was ended properly, not cut.
        assert!(body.ends_with("0\r\n\r\n"), "{body:?}");
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn memory_returns_to_its_baseline_after_a_burst_of_concurrent_logins() {
    let dir = tempfile::tempdir().unwrap();
    let p = spawn_with(
        dir.path(),
        "127.0.0.1:0",
        &["--password-hash-concurrency", "2"],
    );
    let c = client();
    account_and_login(&c, &p, "acme").await;
    let attempt = |i: usize| {
        let c = c.clone();
        let url = p.url.clone();
        async move {
            c.post(format!("{url}/v1/login"))
                .json(
                    &json!({"account": "acme", "email": format!("nobody{i}@acme.test"),
                              "password": "x",
                              "device": {"id": "d", "platform": "cli", "name": "n",
                                         "app_version": "1"}}),
                )
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // Warm both hashing threads, then measure.
    futures_util::future::join_all((0..4).map(attempt)).await;
    let baseline = rss_kib(p.child.id());
    let statuses = futures_util::future::join_all((10..50).map(attempt)).await;
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 503),
        "{statuses:?}"
    );
    let after = rss_kib(p.child.id());
    let grown_mib = after.saturating_sub(baseline) / 1024;
    eprintln!(
        "rss: {} MiB before the burst, {} MiB after",
        baseline / 1024,
        after / 1024
    );
    assert!(
        grown_mib < 48,
        "40 simultaneous logins grew the server by {grown_mib} MiB (from {} MiB)",
        baseline / 1024
    );
}

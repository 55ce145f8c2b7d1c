//! The binary facing the open internet (PROTOCOL.md, third part, "Facing the open internet"):
//! its files are owner-only, private answers are never cached or sniffed, `--help` never
//! shows a secret taken from the environment, and the demo's well-known passwords stay on
//! loopback unless the operator says otherwise.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use common::{ADMIN, client, command, spawn};
use reqwest::header::{CACHE_CONTROL, X_CONTENT_TYPE_OPTIONS};
use serde_json::json;

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn the_data_directory_and_database_files_are_owner_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("new").join("data");
    let server = spawn(&dir, "127.0.0.1:0");
    // A write, so the log file exists too.
    let r = client()
        .post(format!("{}/v1/accounts", server.url))
        .bearer_auth(ADMIN)
        .json(&json!({"slug": "acme", "name": "Acme",
                      "owner": {"name": "O", "email": "o@acme.test", "password": "pw-owner-1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
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
async fn private_answers_are_never_cached_or_sniffed_and_the_widgets_may_be() {
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
    let r = c
        .get(format!("{}/v1/widget/wk_unknown", server.url))
        .send()
        .await
        .unwrap();
    assert_ne!(
        r.headers().get(CACHE_CONTROL).map(|v| v.as_bytes()),
        Some(&b"no-store"[..]),
        "widget answers keep their own caching"
    );
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

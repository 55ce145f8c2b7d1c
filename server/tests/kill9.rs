//! The real binary, killed with SIGKILL and restarted on the same data dir: every
//! acknowledged status change and every live session survives, and restored sessions get a
//! grace lease so the chat box does not flap offline.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{call, spawn};
use serde_json::{Value, json};

/// A first server on `dir`, with account `acme` and its owner signed in.
struct Started {
    c: reqwest::Client,
    first: common::Proc,
    url: String,
    /// The address to start the second server on.
    listen: String,
    widget_key: String,
    token: String,
}

async fn start_with_owner(dir: &std::path::Path) -> Started {
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let first = spawn(dir, "127.0.0.1:0");
    let url = first.url.clone();
    let listen = url.trim_start_matches("http://").to_owned();
    let created = call(
        &c,
        reqwest::Method::POST,
        format!("{url}/v1/accounts"),
        common::ADMIN,
        json!({"name": "Acme", "slug": "acme",
               "owner": {"name": "O", "email": "o@acme.test", "password": "pw-secret-1"}}),
    )
    .await;
    let widget_key = created["account"]["widget_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let login: Value = c
        .post(format!("{url}/v1/login"))
        .json(
            &json!({"account": "acme", "email": "o@acme.test", "password": "pw-secret-1",
                      "device": {"id": "d1", "platform": "cli", "name": "n", "app_version": "1"}}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().unwrap().to_owned();
    Started {
        c,
        first,
        url,
        listen,
        widget_key,
        token,
    }
}

#[tokio::test]
async fn sigkill_loses_no_acknowledged_status_or_session() {
    let dir = tempfile::tempdir().unwrap();
    let Started {
        c,
        first,
        url,
        listen,
        widget_key,
        token,
    } = start_with_owner(dir.path()).await;
    // A burst of acknowledged changes, the last one "busy".
    let mut last = Value::Null;
    for (i, s) in ["online", "offline", "online", "busy"].iter().enumerate() {
        last = call(
            &c,
            reqwest::Method::PUT,
            format!("{url}/v1/me/status"),
            &token,
            json!({"status": s, "op_id": format!("0190b6a0-0000-7000-8000-00000000000{i}")}),
        )
        .await;
        assert_eq!(last["applied"], true);
    }
    let mut first = first;
    first.child.kill().expect("SIGKILL"); // std's kill() is SIGKILL on unix
    first.child.wait().unwrap();

    let second = spawn(dir.path(), &listen);
    // Pooled connections died with the first process.
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let me = call(
        &c,
        reqwest::Method::GET,
        format!("{}/v1/me", second.url),
        &token,
        Value::Null,
    )
    .await;
    assert_eq!(me["status"], last["status"], "acknowledged status survives");
    assert_eq!(me["status"]["version"], 4);
    assert_eq!(
        me["sessions"].as_array().unwrap().len(),
        1,
        "session survives"
    );
    // Grace lease: the agent still counts, so the chat box did not flap offline.
    let w: Value = c
        .get(format!("{}/v1/widget/{widget_key}/status", second.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(w["status"], "busy");
    assert_eq!(w["reason"], "agents_busy");
    // The op id is still known: replaying the last op returns the first answer.
    let replay = call(
        &c,
        reqwest::Method::PUT,
        format!("{}/v1/me/status", second.url),
        &token,
        json!({"status": "busy", "op_id": "0190b6a0-0000-7000-8000-000000000003"}),
    )
    .await;
    assert_eq!(replay, last);
    let hb = call(
        &c,
        reqwest::Method::POST,
        format!("{}/v1/session/heartbeat", second.url),
        &token,
        json!({}),
    )
    .await;
    assert!(hb["lease_until"].as_i64().unwrap() > hb["server_time"].as_i64().unwrap());
}

#[tokio::test]
async fn sigkill_loses_no_timed_status_and_its_end_comes_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let Started {
        c,
        first,
        url,
        listen,
        token,
        ..
    } = start_with_owner(dir.path()).await;
    let set = call(
        &c,
        reqwest::Method::PUT,
        format!("{url}/v1/me/status"),
        &token,
        json!({"status": "busy", "op_id": "0190b6a0-0000-7000-8000-000000000001",
               "duration_ms": 1_500, "then": "online"}),
    )
    .await;
    assert_eq!(set["applied"], true);
    let until = set["status"]["until"].as_i64().unwrap();
    let mut first = first;
    first.child.kill().expect("SIGKILL");
    first.child.wait().unwrap();

    let second = spawn(dir.path(), &listen);
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let ended = loop {
        let me = call(
            &c,
            reqwest::Method::GET,
            format!("{}/v1/me", second.url),
            &token,
            Value::Null,
        )
        .await;
        if me["status"]["cause"] == "timer" {
            break me["status"].clone();
        }
        assert_eq!(
            me["status"]["until"], until,
            "the timed status survived: {me}"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "no end by {until}: {me}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ended["status"], "online");
    assert_eq!(ended["intent_at"], until);
    assert_eq!(
        ended["version"],
        set["status"]["version"].as_i64().unwrap() + 1
    );
}

#[test]
fn bad_flag_is_one_clear_error_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_presence-server"))
        .args(["--listen", "not-an-address"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--listen"), "{err}");
}

#[test]
fn flags_are_also_read_from_env() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_presence-server"))
        .env("PRESENCE_ACTIVE_TTL_MS", "10")
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "a ttl of 10 ms is refused");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("active_ttl_ms"), "{err}");
}

#[test]
fn a_second_server_on_the_same_data_dir_exits_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let first = spawn(dir.path(), "127.0.0.1:0");
    let out = Command::new(env!("CARGO_BIN_EXE_presence-server"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "the second server refuses to start");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another presence-server"), "{err}");
    assert!(out.stdout.is_empty(), "it never listened");
    drop(first);
    // Killed, the first server's lock is gone with it.
    let again = spawn(dir.path(), "127.0.0.1:0");
    drop(again);
}

/// A webhook event committed but not yet answered when the server is killed: the restarted
/// server sends it again (same `webhook-id`) and then the events after it, in order.
#[tokio::test]
async fn sigkill_between_commit_and_delivery_loses_no_webhook_event() {
    use presence_test_support::receiver::{Answer, Receiver};
    use presence_test_support::{Api, client};

    let dir = tempfile::tempdir().unwrap();
    let flags = [
        "--push-webhook-allow",
        "127.0.0.1",
        "--webhook-retry-ms",
        "10",
        "--webhook-timeout-ms",
        "30000",
    ];
    let first = common::spawn_with(dir.path(), "127.0.0.1:0", &flags);
    let listen = first.listen();
    let api = Api {
        url: first.url.clone(),
        client: client(),
    };
    let created = api
        .post(
            "/v1/accounts",
            Some(common::ADMIN),
            json!({"name": "Acme", "slug": "acme",
                   "owner": {"name": "O", "email": "o@acme.test", "password": "pw-secret-1"}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let owner = api.login("acme", "o@acme.test", "pw-secret-1", "d1").await;
    let mut rx = Receiver::start().await;
    let r = api
        .post(
            "/v1/admin/webhooks",
            Some(&owner.token),
            json!({"url": rx.url, "events": ["agent.status"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    rx.script([Answer::Hang]);
    assert_eq!(api.set_status(&owner, "online").await.status, 200);
    assert_eq!(api.set_status(&owner, "busy").await.status, 200);
    let hung = rx.next().await;
    assert_eq!(hung.body["data"]["status"]["status"], "online");

    first.kill9();
    let _second = common::spawn_with(dir.path(), &listen, &flags);
    let again = rx.next().await;
    assert_eq!(again.id(), hung.id());
    assert_eq!(again.hook.body, hung.hook.body);
    let next = rx.next().await;
    assert_eq!(next.body["data"]["status"]["status"], "busy");
    assert!(next.seq() > again.seq());
}

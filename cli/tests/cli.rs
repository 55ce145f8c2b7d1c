//! The `presence` binary driven from outside, as a user or a script would, against the real
//! server in-process on 127.0.0.1:0 (through the fault proxy where a test needs to break the
//! network at a precise moment).

use presence_test_support as common;

use common::proxy::{Fault, FaultProxy};
use common::{Account, DEADLINE, TestServer};
use serde_json::Value;
use std::path::Path;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

/// `presence` with a data dir and server, and none of the caller's PRESENCE_* settings.
fn presence(dir: &Path, server: Option<&str>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_presence"));
    cmd.env_remove("PRESENCE_SERVER")
        .env_remove("PRESENCE_LOG")
        .env("PRESENCE_DATA_DIR", dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(s) = server {
        cmd.arg("--server").arg(s);
    }
    cmd
}

async fn run(dir: &Path, server: Option<&str>, args: &[&str]) -> Output {
    let out = tokio::time::timeout(DEADLINE, presence(dir, server).args(args).output())
        .await
        .unwrap_or_else(|_| panic!("presence {args:?} did not finish"))
        .expect("spawn presence");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(o: &Output, what: &str) {
    assert_eq!(
        o.code, 0,
        "{what}: stdout {:?} stderr {:?}",
        o.stdout, o.stderr
    );
}

/// Exactly one line on stderr, starting `presence: `.
fn one_error_line(o: &Output) {
    let lines: Vec<&str> = o.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr: {:?}", o.stderr);
    assert!(lines[0].starts_with("presence: "), "{:?}", lines[0]);
    assert!(!o.stderr.contains("panicked"), "{:?}", o.stderr);
}

async fn login(dir: &Path, url: &str, acct: &Account) {
    let mut child = presence(dir, Some(url))
        .args([
            "login",
            "--account",
            &acct.slug,
            "--email",
            &acct.email,
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{}\n", acct.password).as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "login: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("logged in as Owner"), "{stdout}");
}

async fn show_json(dir: &Path, server: Option<&str>) -> Value {
    let o = run(dir, server, &["show", "--json"]).await;
    ok(&o, "show --json");
    serde_json::from_str(&o.stdout).expect("show --json prints JSON")
}

async fn server_status(server: &TestServer, acct: &Account) -> (String, i64) {
    let token = server.api().login_owner(acct, "observer").await;
    let me = server.api().me(&token).await;
    (
        me["status"]["status"].as_str().unwrap().to_owned(),
        me["status"]["version"].as_i64().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_set_status_and_show_json_follow_the_contract() {
    let server = TestServer::start().await;
    let acct = server.api().create_account_without_login("cli-basic").await;
    let dir = tempfile::tempdir().unwrap();
    login(dir.path(), &server.url, &acct).await;

    // The stored URL is used from now on.
    let o = run(dir.path(), None, &["status", "busy"]).await;
    ok(&o, "status busy");
    assert_eq!(o.stdout.lines().next(), Some("busy: stored"));
    assert!(
        o.stdout.contains("busy: confirmed (version 1)"),
        "{}",
        o.stdout
    );

    let o = run(dir.path(), None, &["status"]).await;
    ok(&o, "status");
    assert_eq!(o.stdout.trim(), "busy (confirmed, version 1)");

    let v = show_json(dir.path(), None).await;
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    for k in [
        "session",
        "status",
        "chatbox",
        "custom_statuses",
        "connection",
        "lifecycle",
        "lease_until",
        "outbox",
        "last_error",
    ] {
        assert!(keys.contains(&k), "missing {k} in {keys:?}");
    }
    assert_eq!(v["session"]["state"], "active");
    assert_eq!(v["session"]["account"], "cli-basic");
    assert_eq!(v["session"]["agent"]["email"], acct.email.as_str());
    assert_eq!(
        v["status"],
        serde_json::json!({"current": "busy", "confirmed": "busy", "version": 1, "pending": false,
                           "until": null, "then": null, "custom_status": null, "note": null,
                           "cause": "manual", "changed_by_agent": null})
    );
    assert_eq!(v["custom_statuses"], serde_json::json!([]));
    assert_eq!(v["chatbox"]["status"], "busy");
    assert_eq!(v["outbox"], serde_json::json!({"pending": 0, "wedged": []}));
    assert_eq!(server_status(&server, &acct).await, ("busy".into(), 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_while_the_server_is_down_is_stored_and_sync_delivers_it_later() {
    let mut server = TestServer::start().await;
    let acct = server.api().create_account_without_login("cli-down").await;
    let dir = tempfile::tempdir().unwrap();
    login(dir.path(), &server.url, &acct).await;
    server.stop().await;

    let o = run(dir.path(), None, &["status", "online"]).await;
    ok(&o, "status online with the server down");
    assert!(o.stdout.contains("online: stored"), "{}", o.stdout);
    assert!(o.stdout.contains("online: pending"), "{}", o.stdout);

    let o = run(dir.path(), None, &["sync", "--timeout-ms", "300"]).await;
    assert_eq!(o.code, 3, "sync with the server down: {o:?}", o = o.stderr);
    assert!(
        o.stderr.contains("1 change(s) still pending"),
        "{}",
        o.stderr
    );

    let v = show_json(dir.path(), None).await;
    assert_eq!(v["status"]["current"], "online");
    assert_eq!(v["status"]["pending"], true);
    assert_eq!(v["outbox"]["pending"], 1);
    assert_eq!(v["connection"], "offline");

    server.restart().await;
    let o = run(dir.path(), None, &["sync"]).await;
    ok(&o, "sync after restart");
    let v = show_json(dir.path(), None).await;
    assert_eq!(v["status"]["confirmed"], "online");
    assert_eq!(v["status"]["pending"], false);
    assert_eq!(server_status(&server, &acct).await, ("online".into(), 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_latest_intent_wins_across_two_devices_whatever_the_delivery_order() {
    let mut server = TestServer::start().await;
    let acct = server
        .api()
        .create_account_without_login("cli-intent")
        .await;
    let laptop = tempfile::tempdir().unwrap();
    let desktop = tempfile::tempdir().unwrap();
    login(laptop.path(), &server.url, &acct).await;
    login(desktop.path(), &server.url, &acct).await;
    server.stop().await;

    ok(
        &run(laptop.path(), None, &["status", "busy"]).await,
        "laptop busy",
    );
    ok(
        &run(desktop.path(), None, &["status", "offline"]).await,
        "desktop offline",
    );
    server.restart().await;
    // The later choice is delivered first, the earlier one second: the later still wins.
    ok(&run(desktop.path(), None, &["sync"]).await, "desktop sync");
    ok(&run(laptop.path(), None, &["sync"]).await, "laptop sync");
    let o = run(laptop.path(), None, &["status"]).await;
    assert_eq!(
        o.stdout.trim(),
        "offline (confirmed, version 1)",
        "{}",
        o.stderr
    );
    assert_eq!(server_status(&server, &acct).await, ("offline".into(), 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_stored_by_a_killed_process_is_delivered_exactly_once() {
    let server = TestServer::start().await;
    let acct = server.api().create_account_without_login("cli-kill").await;
    let proxy = FaultProxy::start(server.addr).await;
    let dir = tempfile::tempdir().unwrap();
    login(dir.path(), &proxy.url(), &acct).await;

    // The request reaches the server; its answer never comes back.
    proxy.set(Fault::LoseAnswers);
    let mut child: Child = presence(dir.path(), None)
        .args(["status", "busy"])
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(DEADLINE, lines.next_line())
        .await
        .expect("stored in time")
        .unwrap();
    assert_eq!(first.as_deref(), Some("busy: stored"));
    common::eventually("the server applied the change", DEADLINE, || {
        let server = &server;
        let acct = &acct;
        async move { server_status(server, acct).await.1 == 1 }
    })
    .await;
    child.start_kill().unwrap(); // SIGKILL
    let status = child.wait().await.unwrap();
    assert!(!status.success());

    // The change survived the kill (still no answer can come back, so it stays pending).
    let v = show_json(dir.path(), None).await;
    assert_eq!(v["status"]["pending"], true, "{v}");
    assert_eq!(v["status"]["current"], "busy", "{v}");

    // Reopened by the next command: the same op goes out again and is not applied twice.
    proxy.set(Fault::Pass);
    let o = run(dir.path(), None, &["sync"]).await;
    ok(&o, "sync after the kill");
    assert_eq!(server_status(&server, &acct).await, ("busy".into(), 1));
    let v = show_json(dir.path(), None).await;
    assert_eq!(v["status"]["confirmed"], "busy");
    assert_eq!(v["status"]["version"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_one_line_on_stderr_with_a_nonzero_exit() {
    let server = TestServer::start().await;
    let acct = server
        .api()
        .create_account_without_login("cli-errors")
        .await;
    let dir = tempfile::tempdir().unwrap();

    let o = run(dir.path(), None, &["status"]).await;
    assert_eq!(o.code, 1);
    one_error_line(&o);
    assert!(o.stderr.contains("not logged in"), "{}", o.stderr);

    let o = run(
        dir.path(),
        None,
        &["login", "--account", "a", "--email", "e", "--password", "p"],
    )
    .await;
    assert_eq!(o.code, 1);
    one_error_line(&o);
    assert!(o.stderr.contains("--server"), "{}", o.stderr);

    let url = server.url;
    let o = run(
        dir.path(),
        Some(&url),
        &[
            "login",
            "--account",
            &acct.slug,
            "--email",
            &acct.email,
            "--password",
            "nope",
        ],
    )
    .await;
    assert_eq!(o.code, 1);
    one_error_line(&o);
    assert!(o.stderr.contains("invalid_credentials"), "{}", o.stderr);

    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let o = run(
        dir.path(),
        Some(&dead),
        &[
            "login",
            "--account",
            &acct.slug,
            "--email",
            &acct.email,
            "--password",
            "x",
        ],
    )
    .await;
    assert_eq!(o.code, 1);
    one_error_line(&o);
    assert!(o.stderr.contains("cannot reach the server"), "{}", o.stderr);

    let o = run(dir.path(), Some("not a url"), &["chatbox", "wk_x"]).await;
    assert_eq!(o.code, 1);
    one_error_line(&o);

    let o = run(dir.path(), Some(&url), &["chatbox", "wk_nope"]).await;
    assert_eq!(o.code, 1);
    one_error_line(&o);
    assert!(o.stderr.contains("not_found"), "{}", o.stderr);

    let o = run(dir.path(), None, &["status", "away"]).await;
    assert_eq!(o.code, 2, "usage errors exit 2");

    let o = run(Path::new("/proc/no/such/dir"), Some(&url), &["show"]).await;
    assert_eq!(o.code, 1);
    one_error_line(&o);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_takes_the_chat_box_offline_at_once() {
    let server = TestServer::start().await;
    let acct = server
        .api()
        .create_account_without_login("cli-logout")
        .await;
    let dir = tempfile::tempdir().unwrap();
    login(dir.path(), &server.url, &acct).await;
    ok(
        &run(dir.path(), None, &["status", "online"]).await,
        "online",
    );
    let o = run(dir.path(), None, &["chatbox", &acct.widget_key]).await;
    ok(&o, "chatbox");
    assert_eq!(o.stdout.trim(), "online (agents_online)");

    let o = run(dir.path(), None, &["logout"]).await;
    ok(&o, "logout");
    assert_eq!(o.stdout.trim(), "logged out");
    assert_eq!(server.api().widget(&acct).await["status"], "offline");
    let v = show_json(dir.path(), None).await;
    assert_eq!(v["session"]["state"], "logged_out");
    assert_eq!(v["status"], Value::Null);
    let o = run(dir.path(), None, &["status", "busy"]).await;
    assert_eq!(o.code, 1);
    one_error_line(&o);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_with_the_server_down_is_local_at_once_and_delivered_by_sync() {
    let mut server = TestServer::start().await;
    let acct = server
        .api()
        .create_account_without_login("cli-lateout")
        .await;
    let dir = tempfile::tempdir().unwrap();
    login(dir.path(), &server.url, &acct).await;
    server.stop().await;
    let o = run(dir.path(), None, &["logout"]).await;
    ok(&o, "logout with the server down");
    assert!(
        o.stdout.contains("server is told when it can be reached"),
        "{}",
        o.stdout
    );
    assert_eq!(show_json(dir.path(), None).await["outbox"]["pending"], 1);
    server.restart().await;
    ok(&run(dir.path(), None, &["sync"]).await, "sync");
    assert_eq!(show_json(dir.path(), None).await["outbox"]["pending"], 0);
}

/// Reads lines until one contains `needle`.
async fn read_until(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    needle: &str,
) -> String {
    let mut seen = String::new();
    let found = tokio::time::timeout(DEADLINE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains(needle) {
                return true;
            }
        }
        false
    })
    .await;
    assert!(
        matches!(found, Ok(true)),
        "never saw {needle:?} in:\n{seen}"
    );
    seen
}

fn interrupt(child: &Child) {
    let pid = child.id().expect("running").to_string();
    let st = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(st.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_shows_changes_live_and_exits_cleanly_on_ctrl_c() {
    let server = TestServer::start().await;
    let acct = server.api().create_account_without_login("cli-watch").await;
    let watcher = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    login(watcher.path(), &server.url, &acct).await;
    login(other.path(), &server.url, &acct).await;

    let mut child = presence(watcher.path(), None).arg("watch").spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    read_until(&mut lines, "connection: connected").await;
    ok(
        &run(other.path(), None, &["status", "busy"]).await,
        "busy elsewhere",
    );
    read_until(&mut lines, "status:     busy (confirmed").await;
    let frame = read_until(&mut lines, "chat box:   busy").await;
    let _ = frame;

    // While watch runs, the device counts as available: its lease is kept alive.
    let token = server.api().login_owner(&acct, "observer").await;
    let me = server.api().me(&token).await;
    assert!(me["sessions"].as_array().unwrap().len() >= 3);

    interrupt(&child);
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "watch exit: {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chatbox_watch_prints_every_change() {
    let server = TestServer::start().await;
    let acct = server
        .api()
        .create_account_without_login("cli-chatbox")
        .await;
    let agent = tempfile::tempdir().unwrap();
    let visitor = tempfile::tempdir().unwrap();
    login(agent.path(), &server.url, &acct).await;

    let url = server.url;
    let mut child = presence(visitor.path(), Some(&url))
        .args(["chatbox", &acct.widget_key, "--watch"])
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    read_until(&mut lines, "offline (no_agents_online)").await;
    ok(
        &run(agent.path(), None, &["status", "online"]).await,
        "online",
    );
    read_until(&mut lines, "online (agents_online)").await;
    ok(&run(agent.path(), None, &["status", "busy"]).await, "busy");
    read_until(&mut lines, "busy (agents_busy)").await;
    interrupt(&child);
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_keeps_the_change_until_the_next_login() {
    let server = TestServer::start().await;
    let acct = server
        .api()
        .create_account_without_login("cli-expired")
        .await;
    let dir = tempfile::tempdir().unwrap();
    login(dir.path(), &server.url, &acct).await;
    // Another login with this device's id replaces (ends) the CLI's session.
    let device_id = {
        let c = presence_core::PresenceClient::open(common::config(&server.url, dir.path()))
            .await
            .unwrap();
        let id = c.device_id().to_owned();
        c.shutdown().await;
        id
    };
    server.api().login_owner(&acct, &device_id).await;

    let o = run(dir.path(), None, &["status", "busy"]).await;
    ok(&o, "status busy with an ended session");
    assert!(o.stdout.contains("busy: pending"), "{}", o.stdout);
    assert!(o.stdout.contains("presence login"), "{}", o.stdout);
    let o = run(dir.path(), None, &["sync", "--timeout-ms", "5000"]).await;
    assert_eq!(o.code, 3);
    assert!(o.stderr.contains("session has expired"), "{}", o.stderr);

    login(dir.path(), &server.url, &acct).await;
    assert_eq!(server_status(&server, &acct).await, ("busy".into(), 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_lists_refused_changes_and_retries_or_discards_them() {
    let server = TestServer::start().await;
    let acct = server
        .api()
        .create_account_without_login("cli-outbox")
        .await;
    let dir = tempfile::tempdir().unwrap();
    login(dir.path(), &server.url, &acct).await;
    // The engine (as an app would) registers a push target the server refuses: wedged.
    {
        let c = presence_core::PresenceClient::open(common::config(&server.url, dir.path()))
            .await
            .unwrap();
        c.register_push(
            presence_core::PushProvider::Webhook,
            "http://blocked.example/hook",
            None,
        )
        .await
        .unwrap();
        common::wait_until(&c, "refused", |s| !s.outbox.wedged.is_empty()).await;
        c.shutdown().await;
    }
    let o = run(dir.path(), None, &["outbox"]).await;
    ok(&o, "outbox");
    let mut lines = o.stdout.lines();
    assert_eq!(lines.next(), Some("0 pending, 1 refused"));
    let refused = lines.next().unwrap();
    assert!(
        refused.contains("register_push: invalid_field"),
        "{refused}"
    );
    let op_id = refused.split_whitespace().nth(1).unwrap().to_owned();

    let o = run(dir.path(), None, &["outbox", "retry", &op_id]).await;
    ok(&o, "retry");
    assert!(
        o.stdout.starts_with("0 pending, 1 refused"),
        "refused again: {}",
        o.stdout
    );

    let o = run(dir.path(), None, &["outbox", "discard", "nope"]).await;
    assert_eq!(o.code, 1);
    one_error_line(&o);
    let o = run(dir.path(), None, &["outbox", "discard", &op_id]).await;
    ok(&o, "discard");
    assert_eq!(o.stdout.trim(), "0 pending, 0 refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_rides_out_a_server_restart() {
    let mut server = TestServer::start().await;
    let acct = server
        .api()
        .create_account_without_login("cli-restart")
        .await;
    let watcher = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    login(watcher.path(), &server.url, &acct).await;
    login(other.path(), &server.url, &acct).await;
    let mut child = presence(watcher.path(), None).arg("watch").spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    read_until(&mut lines, "connection: connected").await;

    server.stop().await;
    read_until(&mut lines, "connection: offline").await;
    server.restart().await;
    read_until(&mut lines, "connection: connected").await;
    ok(
        &run(other.path(), None, &["status", "busy"]).await,
        "busy elsewhere",
    );
    read_until(&mut lines, "status:     busy (confirmed").await;
    interrupt(&child);
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_and_chatbox_print_the_chat_box_message() {
    let server = TestServer::start().await;
    let acct = server
        .api()
        .create_account_without_login("cli-message")
        .await;
    let owner = server.api().login_owner(&acct, "admin-console").await;
    let r = server
        .api()
        .put(
            "/v1/admin/settings",
            Some(&owner),
            serde_json::json!({"offline_message": "Back at nine"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let dir = tempfile::tempdir().unwrap();
    login(dir.path(), &server.url, &acct).await;
    let o = run(dir.path(), None, &["chatbox", &acct.widget_key]).await;
    ok(&o, "chatbox");
    assert_eq!(
        o.stdout.trim(),
        "offline (no_agents_online): \"Back at nine\""
    );
    let o = run(dir.path(), None, &["show"]).await;
    ok(&o, "show");
    assert!(o.stdout.contains("\"Back at nine\""), "{}", o.stdout);
}

/// `presence` with `TZ=UTC`, so local times in its output are predictable.
async fn run_utc(dir: &Path, args: &[&str]) -> Output {
    let out = tokio::time::timeout(
        DEADLINE,
        presence(dir, None).env("TZ", "UTC").args(args).output(),
    )
    .await
    .unwrap_or_else(|_| panic!("presence {args:?} did not finish"))
    .expect("spawn presence");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `HH:MM` of a server time in UTC.
fn utc_hhmm(ms: i64) -> String {
    let mins = (ms / 60_000) % 1_440;
    format!("{:02}:{:02}", mins / 60, mins % 60)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_for_a_while_shows_its_end_what_follows_the_custom_status_and_the_note() {
    let server = TestServer::start().await;
    let acct = server.api().create_account("cli-timed").await;
    let r = server
        .api()
        .put(
            "/v1/admin/custom-statuses",
            Some(&acct.owner_token),
            serde_json::json!([{"id": "lunch", "label": "Lunch", "emoji": "🥪", "base": "busy",
                                "default_duration_ms": null}]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let dir = tempfile::tempdir().unwrap();
    login(dir.path(), &server.url, &acct).await;

    let o = run_utc(
        dir.path(),
        &[
            "status",
            "busy",
            "--for",
            "1h30m",
            "--then",
            "online",
            "--custom",
            "lunch",
            "--note",
            "back soon",
        ],
    )
    .await;
    ok(&o, "status busy --for");
    assert!(
        o.stdout.contains("busy: confirmed (version 1)"),
        "{}",
        o.stdout
    );
    let me = server.api().me(&acct.owner_token).await;
    let until = me["status"]["until"].as_i64().expect("a timed status");
    assert_eq!(
        until - me["status"]["intent_at"].as_i64().unwrap(),
        5_400_000
    );
    assert_eq!(me["status"]["custom_status"], "lunch");

    let o = run_utc(dir.path(), &["status"]).await;
    ok(&o, "status");
    let line = o.stdout.trim();
    let (at, day) = (utc_hhmm(until), until / 86_400_000);
    let today = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        / 86_400_000;
    // Before 22:30 UTC the end is today and shown as a bare time.
    if today == day {
        assert!(line.starts_with(&format!("busy until {at} (")), "{line}");
    }
    assert!(
        line.contains(" left), then online — 🥪 Lunch — \"back soon\" (confirmed, version 1)"),
        "{line}"
    );
    assert!(
        line.contains("(1 h 30 min left)") || line.contains("(1 h 29 min left)"),
        "{line}"
    );

    // An admin's change says so.
    let r = server
        .api()
        .put(
            &format!("/v1/admin/agents/{}/status", acct.owner_id),
            Some(&acct.owner_token),
            serde_json::json!({"status": "offline"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let o = run_utc(dir.path(), &["status"]).await;
    ok(&o, "status after the admin");
    assert_eq!(
        o.stdout.trim(),
        format!(
            "offline (confirmed, version 2, set by an admin ({}))",
            acct.owner_id
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_until_a_time_of_day_ends_at_its_next_occurrence() {
    let server = TestServer::start().await;
    let acct = server.api().create_account("cli-until").await;
    let dir = tempfile::tempdir().unwrap();
    login(dir.path(), &server.url, &acct).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // Two hours from now, to the minute: always its next occurrence.
    let target = (now + 7_200_000) / 60_000 * 60_000;
    let o = run_utc(
        dir.path(),
        &["status", "offline", "--until", &utc_hhmm(target)],
    )
    .await;
    ok(&o, "status offline --until");
    let me = server.api().me(&acct.owner_token).await;
    let until = me["status"]["until"].as_i64().expect("a timed status");
    assert!(
        (until - target).abs() <= 2_000,
        "until {until}, wanted {target}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_timing_flags_are_clear_errors() {
    let server = TestServer::start().await;
    let acct = server.api().create_account("cli-badtime").await;
    let dir = tempfile::tempdir().unwrap();
    login(dir.path(), &server.url, &acct).await;
    for (args, says) in [
        (&["status", "busy", "--for", "30"][..], "no unit"),
        (&["status", "busy", "--for", "8d"][..], "longer than 7 days"),
        (
            &["status", "busy", "--until", "25:00"][..],
            "not a time of day",
        ),
        (&["status", "--for", "30m"][..], "--for"),
        (
            &["status", "busy", "--for", "1m", "--until", "10:00"][..],
            "cannot be used with",
        ),
    ] {
        let o = run_utc(dir.path(), args).await;
        assert_eq!(o.code, 2, "{args:?}: {}", o.stderr);
        assert!(o.stderr.contains(says), "{args:?}: {}", o.stderr);
    }
    let long = "n".repeat(101);
    let o = run_utc(dir.path(), &["status", "busy", "--note", &long]).await;
    assert_eq!(o.code, 1);
    one_error_line(&o);
    assert!(o.stderr.contains("invalid input: note:"), "{}", o.stderr);

    // The account has no such custom status: the server refuses the change, naming the field.
    let o = run_utc(dir.path(), &["status", "busy", "--custom", "nap"]).await;
    assert_eq!(o.code, 1, "{}", o.stdout);
    one_error_line(&o);
    assert!(
        o.stderr.contains("invalid_field") && o.stderr.contains("custom_status"),
        "{}",
        o.stderr
    );
    let (status, version) = server_status(&server, &acct).await;
    assert_eq!((status.as_str(), version), ("offline", 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_prints_the_status_log_newest_first_page_by_page() {
    let server = TestServer::start().await;
    let acct = server.api().create_account_without_login("cli-log").await;
    let dir = tempfile::tempdir().unwrap();
    login(dir.path(), &server.url, &acct).await;
    for (status, note) in [
        ("online", "first"),
        ("busy", "second"),
        ("offline", "third"),
    ] {
        ok(
            &run_utc(dir.path(), &["status", status, "--note", note]).await,
            "status",
        );
    }
    let o = run_utc(dir.path(), &["log", "--limit", "2"]).await;
    ok(&o, "log");
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", o.stdout);
    assert!(
        lines[0].contains("offline — \"third\" (version 3"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("busy — \"second\" (version 2"),
        "{}",
        lines[1]
    );
    let cursor = lines[2]
        .strip_prefix("more: presence log --limit 2 --after ")
        .unwrap_or_else(|| panic!("no paging line: {}", lines[2]));
    let o = run_utc(dir.path(), &["log", "--limit", "2", "--after", cursor]).await;
    ok(&o, "log --after");
    assert!(
        o.stdout
            .lines()
            .next()
            .unwrap()
            .contains("online — \"first\" (version 1"),
        "{}",
        o.stdout
    );

    let o = run_utc(dir.path(), &["log", "--json", "--limit", "1"]).await;
    ok(&o, "log --json");
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["entries"][0]["note"], "third");
    assert!(v["next"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_reports_the_idle_time_logind_gives_for_the_session() {
    let server = TestServer::start().await;
    let acct = server.api().create_account("cli-idle").await;
    let dir = tempfile::tempdir().unwrap();
    login(dir.path(), &server.url, &acct).await;
    // This machine has no logind: a program that answers as `loginctl show-session` does
    // for a session idle since two minutes ago.
    let since_us = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros()
        - 120_000_000) as u64;
    let fake = dir.path().join("loginctl");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\n[ \"$1 $2\" = \"show-session c7\" ] || exit 1\nprintf 'IdleHint=yes\\nIdleSinceHint={since_us}\\n'\n"),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();

    let mut child = presence(dir.path(), None)
        .env("PRESENCE_LOGINCTL", &fake)
        .env("XDG_SESSION_ID", "c7")
        .arg("watch")
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    read_until(&mut lines, "connection: connected").await;
    common::eventually("the session's idle_ms", DEADLINE, || async {
        let me = server.api().me(&acct.owner_token).await;
        me["sessions"].as_array().unwrap().iter().any(|s| {
            s["idle_ms"]
                .as_i64()
                .is_some_and(|ms| (120_000..180_000).contains(&ms))
        })
    })
    .await;
    interrupt(&child);
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "watch exit: {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_with_a_token_file_signs_in_as_the_agent_the_token_names() {
    use common::idp::{self, now};
    let server = TestServer::start().await;
    let api = server.api();
    let acct = api.create_account("tok").await;
    let secret = "a-shared-secret-of-at-least-32-bytes!";
    let r = api
        .put(
            "/v1/admin/sign-in",
            Some(&acct.owner_token),
            serde_json::json!({"jwt": {"issuer": "https://id.tok.test", "audience": "presence",
                                       "hs256_secret": secret},
                               "password_login": true, "provision": false}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let claims = serde_json::json!({"iss": "https://id.tok.test", "aud": "presence",
        "sub": "owner-1", "email": acct.email, "exp": now() + 600, "iat": now()});
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token.jwt");
    std::fs::write(&file, format!("{}\n", idp::hs256(secret, &claims))).unwrap();
    let data = dir.path().join("data");
    let file = file.to_str().unwrap();

    let o = run(
        &data,
        Some(&server.url),
        &["login", "--account", "tok", "--token-file", file],
    )
    .await;
    ok(&o, "login --token-file");
    assert!(o.stdout.starts_with("logged in as Owner"), "{:?}", o.stdout);
    assert_eq!(
        show_json(&data, None).await["session"]["agent"]["email"],
        acct.email
    );

    // A token signed with another secret, and a token file that is not there: one error
    // line each, and a failing exit.
    let forged = dir.path().join("forged.jwt");
    std::fs::write(
        &forged,
        idp::hs256("another-secret-just-as-long-as-it-is", &claims),
    )
    .unwrap();
    let o = run(
        &data,
        Some(&server.url),
        &[
            "login",
            "--account",
            "tok",
            "--token-file",
            forged.to_str().unwrap(),
        ],
    )
    .await;
    assert_ne!(o.code, 0, "a forged token");
    one_error_line(&o);
    let o = run(
        &data,
        Some(&server.url),
        &[
            "login",
            "--account",
            "tok",
            "--token-file",
            "/nonexistent/token.jwt",
        ],
    )
    .await;
    assert_ne!(o.code, 0, "a missing token file");
    one_error_line(&o);
    assert!(
        o.stderr.contains("/nonexistent/token.jwt"),
        "{:?}",
        o.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_availability_prints_a_table_csv_or_json_for_admins_only() {
    let server = TestServer::start().await;
    let acct = server
        .api()
        .create_account_without_login("cli-report")
        .await;
    let dir = tempfile::tempdir().unwrap();
    login(dir.path(), &server.url, &acct).await;
    ok(&run_utc(dir.path(), &["status", "online"]).await, "status");

    let o = run_utc(dir.path(), &["report", "availability"]).await;
    ok(&o, "report availability");
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert!(lines[0].contains("days in"), "{}", o.stdout);
    assert!(lines[1].starts_with("agent"), "{}", o.stdout);
    assert!(lines[2].starts_with("Owner"), "{}", o.stdout);

    let o = run_utc(
        dir.path(),
        &[
            "report",
            "availability",
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-03",
            "--csv",
        ],
    )
    .await;
    ok(&o, "report --csv");
    let rows: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(
        rows,
        [
            "agent_id,agent_name,date,online_ms,busy_ms,offline_ms,signed_out_ms",
            &format!("{},Owner,2026-01-01,0,0,0,0", acct.owner_id),
            &format!("{},Owner,2026-01-02,0,0,0,0", acct.owner_id),
        ],
        "dates are midnight UTC without --tz"
    );

    let o = run_utc(dir.path(), &["report", "availability", "--json"]).await;
    ok(&o, "report --json");
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert!(v["agents"][0]["online_ms"].as_i64().unwrap() >= 0);

    let o = run_utc(
        dir.path(),
        &["report", "availability", "--from", "5", "--to", "5"],
    )
    .await;
    assert_eq!(o.code, 1, "{} {}", o.stdout, o.stderr);
    one_error_line(&o);
    assert!(o.stderr.contains("from"), "{}", o.stderr);

    let o = run_utc(dir.path(), &["report", "availability", "--from", "soon"]).await;
    assert_eq!(o.code, 2, "a usage error: {}", o.stderr);

    // An agent may not read the account's report.
    let token = server.api().login_owner(&acct, "admin-dev").await;
    let r = server
        .api()
        .post(
            "/v1/admin/agents",
            Some(&token),
            serde_json::json!({"name": "Ann", "email": "ann@cli-report.test",
                               "password": "pw-ann-secret", "groups": [], "role": "agent"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let ann = tempfile::tempdir().unwrap();
    let mut child = presence(ann.path(), Some(&server.url))
        .args([
            "login",
            "--account",
            "cli-report",
            "--email",
            "ann@cli-report.test",
        ])
        .arg("--password-stdin")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"pw-ann-secret\n").await.unwrap();
    drop(stdin);
    assert!(child.wait_with_output().await.unwrap().status.success());
    let o = run_utc(ann.path(), &["report", "availability"]).await;
    assert_eq!(o.code, 1, "{} {}", o.stdout, o.stderr);
    one_error_line(&o);
}

//! The server tried from outside, as an attacker or an unlucky client would: slow and idle
//! connections, requests past their deadline, concurrent wrong passwords, login floods, and
//! malformed input that must still get the contract's JSON errors. Each test runs its own
//! server with short limits, and waits for what it expects with a deadline.

use std::time::Duration;

use presence_test_support::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn short_limits(c: &mut presence_server::Config) {
    c.limits.header_timeout = Duration::from_millis(800);
    c.limits.idle_timeout = Duration::from_millis(1500);
    c.limits.request_timeout = Duration::from_millis(1000);
}

fn addr(srv: &TestServer) -> std::net::SocketAddr {
    srv.addr
}

/// Reads until the peer closes; `Err` if it is still open after `within`.
async fn closed_within(tcp: &mut TcpStream, within: Duration) -> Result<Vec<u8>, ()> {
    let mut got = Vec::new();
    let read_all = async {
        let mut buf = [0u8; 4096];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    match tokio::time::timeout(within, read_all).await {
        Ok(()) => Ok(got),
        Err(_) => Err(()),
    }
}

#[tokio::test]
async fn connections_that_send_nothing_are_closed() {
    let srv = TestServer::with(short_limits).await;
    let mut conns = Vec::new();
    for _ in 0..50 {
        conns.push(TcpStream::connect(addr(&srv)).await.unwrap());
    }
    for c in &mut conns {
        closed_within(c, DEADLINE)
            .await
            .expect("an idle connection is closed by the server");
    }
}

#[tokio::test]
async fn headers_sent_one_byte_at_a_time_are_cut_off() {
    let srv = TestServer::with(short_limits).await;
    let mut tcp = TcpStream::connect(addr(&srv)).await.unwrap();
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let started = tokio::time::Instant::now();
    let mut sent = 0;
    for b in request.iter() {
        if tcp.write_all(&[*b]).await.is_err() {
            break;
        }
        sent += 1;
        // The trickle itself is what is under test: one byte every 100 ms.
        let mut probe = [0u8; 512];
        let waited = tokio::time::timeout(Duration::from_millis(100), tcp.read(&mut probe)).await;
        if waited.is_ok() {
            // Closed, or answered (an error) before the headers were complete.
            break;
        }
    }
    assert!(
        sent < request.len(),
        "a client trickling its headers for {:?} was never cut off",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_stream_whose_reader_reads_stays_open_past_the_idle_timeout() {
    let srv = TestServer::with(|c| {
        short_limits(c);
        c.stream_ping = Duration::from_millis(200);
    })
    .await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    let mut w = api
        .sse(&format!("/v1/widget/{}/events", acc.widget_key), None)
        .await;
    w.next().await.expect("first view");
    let until = tokio::time::Instant::now() + Duration::from_millis(4000);
    let mut pings = 0;
    while tokio::time::Instant::now() < until {
        match w.next_within(DEADLINE).await {
            Ok(Some(ev)) if ev.name == "ping" => pings += 1,
            Ok(Some(_)) => {}
            Ok(None) => panic!("the stream closed after {pings} pings"),
            Err(()) => panic!("no event"),
        }
    }
    assert!(pings >= 5, "{pings} pings in 4 s");
}

#[tokio::test]
async fn a_request_past_its_deadline_gets_a_json_503() {
    let srv = TestServer::with(short_limits).await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    let mut tcp = TcpStream::connect(addr(&srv)).await.unwrap();
    let body = json!({"status": "online", "op_id": new_op_id()}).to_string();
    let head = format!(
        "PUT /v1/me/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        acc.owner_token,
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    // The body trickles in far slower than the request deadline allows.
    let mut answer = Vec::new();
    for b in body.bytes() {
        let _ = tcp.write_all(&[b]).await;
        let mut buf = [0u8; 4096];
        match tokio::time::timeout(Duration::from_millis(150), tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(_) => {}
        }
    }
    if let Ok(rest) = closed_within(&mut tcp, Duration::from_millis(500)).await {
        answer.extend(rest);
    }
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 503"), "answer: {text:?}");
    assert!(
        text.contains("\"unavailable\""),
        "a JSON error body: {text:?}"
    );
    // Nothing was applied.
    let me = api.get("/v1/me", Some(&acc.owner_token)).await;
    assert_eq!(me.body["status"]["status"], "offline");
}

#[tokio::test]
async fn concurrent_wrong_passwords_are_checked_no_more_than_the_limit() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    let attempts = (0..40).map(|i| {
        let api = api.clone();
        let slug = acc.slug.clone();
        async move {
            api.login_raw(
                &slug,
                "owner@acme.test",
                "wrong-password",
                &format!("d{i}"),
                Value::Null,
            )
            .await
            .status
        }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(checked + limited, 40, "{statuses:?}");
    assert!(
        checked <= 10,
        "{checked} wrong passwords were checked; the limit is 10"
    );
    // The right password is refused too while the window is full (it counts failures).
    let r = api
        .login_raw(
            &acc.slug,
            "owner@acme.test",
            "pw-owner-secret",
            "d",
            Value::Null,
        )
        .await;
    r.assert_error(429, "rate_limited");
}

#[tokio::test]
async fn a_login_flood_gets_503_with_retry_after_never_500() {
    let srv = TestServer::with(|c| c.limits.password_hash_concurrency = 1).await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    // Different emails and addresses that exist nowhere: each needs a full password check.
    let attempts = (0..60).map(|i| {
        let api = api.clone();
        let slug = acc.slug.clone();
        async move {
            api.login_raw(
                &slug,
                &format!("nobody{i}@acme.test"),
                "whatever",
                "d",
                Value::Null,
            )
            .await
        }
    });
    let answers = futures_util::future::join_all(attempts).await;
    let mut busy = 0;
    for r in &answers {
        match r.status {
            401 => assert_eq!(r.code(), "invalid_credentials"),
            503 => {
                assert_eq!(r.code(), "unavailable");
                assert!(r.header("retry-after").is_some(), "503 carries Retry-After");
                busy += 1;
            }
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    assert!(
        busy > 0,
        "60 simultaneous checks on one hashing thread: some must be refused"
    );
    // Afterwards logins work again.
    let ok = api
        .login_raw(
            &acc.slug,
            "owner@acme.test",
            "pw-owner-secret",
            "d",
            Value::Null,
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
}

#[tokio::test]
async fn a_path_parameter_that_is_not_utf8_gets_a_json_error() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let r = api.get("/v1/widget/%FF/status", None).await;
    r.assert_error(400, "bad_request");
    let acc = api.create_account("acme").await;
    let r = api
        .call(
            reqwest::Method::DELETE,
            "/v1/admin/agents/%C3%28",
            Some(&acc.owner_token),
            None,
        )
        .await;
    r.assert_error(400, "bad_request");
}

#[tokio::test]
async fn a_json_array_where_an_object_is_wanted_is_an_invalid_field() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    let r = api
        .put(
            "/v1/me/status",
            Some(&acc.owner_token),
            json!(["busy", new_op_id(), null]),
        )
        .await;
    r.assert_error(422, "invalid_field");
    let me = api.get("/v1/me", Some(&acc.owner_token)).await;
    assert_eq!(me.body["status"]["status"], "offline", "nothing was set");
    // Groups are the one list body, and an object there is refused.
    let r = api
        .put(
            "/v1/admin/groups",
            Some(&acc.owner_token),
            json!({"key": "sales", "name": "Sales"}),
        )
        .await;
    r.assert_error(422, "invalid_field");
}

#[tokio::test]
async fn two_authorization_headers_are_a_bad_request() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    let req = api
        .request(reqwest::Method::GET, "/v1/me")
        .header("authorization", format!("Bearer {}", acc.owner_token))
        .header("authorization", "Bearer someone-else");
    api.send(req).await.assert_error(400, "bad_request");
    let req = api
        .request(reqwest::Method::POST, "/v1/accounts")
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .json(&json!({}));
    api.send(req).await.assert_error(400, "bad_request");
}

#[tokio::test]
async fn opening_hours_days_given_as_an_array_is_an_invalid_field_and_changes_nothing() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    let hours = json!({"enabled": true, "timezone": "Europe/Prague",
                       "days": {"mon": [["09:00", "17:00"]]}, "exceptions": []});
    let r = api
        .put("/v1/admin/opening-hours", Some(&acc.owner_token), hours)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let before = api.get("/v1/admin/account", Some(&acc.owner_token)).await;
    assert_eq!(before.status, 200, "{}", before.body);
    // Every day field has a default, so serde would read `[]` as a week with no hours.
    let r = api
        .put(
            "/v1/admin/opening-hours",
            Some(&acc.owner_token),
            json!({"enabled": true, "timezone": "Europe/Prague", "days": [], "exceptions": []}),
        )
        .await;
    let detail = r.assert_error(422, "invalid_field");
    assert!(
        detail.starts_with("days") && detail.contains("object"),
        "detail names days and says an object was expected: {detail}"
    );
    // The same at a deeper level: an exception given as `[date, ranges]`.
    let r = api
        .put(
            "/v1/admin/opening-hours",
            Some(&acc.owner_token),
            json!({"enabled": true, "timezone": "UTC", "days": {},
                   "exceptions": [["2026-12-24", []]]}),
        )
        .await;
    let detail = r.assert_error(422, "invalid_field");
    assert!(
        detail.starts_with("exceptions[0]") && detail.contains("object"),
        "detail names exceptions[0]: {detail}"
    );
    let after = api.get("/v1/admin/account", Some(&acc.owner_token)).await;
    assert_eq!(
        after.body["opening_hours"], before.body["opening_hours"],
        "the stored opening hours did not change"
    );
}

#[tokio::test]
async fn a_login_whose_device_is_an_array_is_an_invalid_field_and_opens_no_session() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    let r = api
        .post(
            "/v1/login",
            None,
            json!({"account": acc.slug, "email": "owner@acme.test", "password": "pw-owner-secret",
                   "device": ["d2", "desktop", "d2", "1.0.0"]}),
        )
        .await;
    let detail = r.assert_error(422, "invalid_field");
    assert!(
        detail.starts_with("device") && detail.contains("object"),
        "detail names device and says an object was expected: {detail}"
    );
    // An optional object given as an array is refused the same way.
    let r = api
        .login_raw(
            &acc.slug,
            "owner@acme.test",
            "pw-owner-secret",
            "d3",
            json!(["fcm", "a-device-token"]),
        )
        .await;
    let detail = r.assert_error(422, "invalid_field");
    assert!(
        detail.starts_with("push") && detail.contains("object"),
        "detail names push: {detail}"
    );
    let me = api.get("/v1/me", Some(&acc.owner_token)).await;
    assert_eq!(
        me.body["sessions"].as_array().map(Vec::len),
        Some(1),
        "only the owner's first session exists: {}",
        me.body
    );
}

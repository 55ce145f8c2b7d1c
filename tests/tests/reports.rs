//! History and reports over HTTP (PROTOCOL.md, third part, "Status log and history"), on
//! whichever backend the run uses: the availability log follows logins, status changes and
//! logouts to the millisecond (checked against the status log's own `applied_at`), an agent
//! who never signed in is counted signed out for the whole range, coverage counts the chat
//! box's states, the CSV form, and every bad parameter is a `422` naming its field.
//! Midnight, DST and opening hours are pinned by hand-computed timelines in
//! `server/src/history/reports/tests.rs`.

use presence_test_support::contract::heartbeat;
use presence_test_support::{Api, Session, TestServer, new_op_id};
use serde_json::{Value, json};

/// Sets a status and answers the time the server applied it (from the status log).
async fn set_at(api: &Api, s: &Session, status: &str) -> i64 {
    let r = api
        .put(
            "/v1/me/status",
            Some(&s.token),
            json!({"status": status, "op_id": new_op_id()}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let version = r.body["status"]["version"].clone();
    let log = api.get("/v1/me/status-log?limit=1", Some(&s.token)).await;
    assert_eq!(log.status, 200, "{}", log.body);
    let e = &log.body["entries"][0];
    assert_eq!(e["version"], version, "{}", log.body);
    e["applied_at"].as_i64().expect("applied_at")
}

/// Returns once the server's clock has passed `t` (heartbeats answer its time), so the next
/// change lands in a later millisecond and every interval of the test has a length.
async fn past(api: &Api, s: &Session, t: i64) {
    for _ in 0..10_000 {
        let r = heartbeat(api, &s.token, json!({})).await;
        assert_eq!(r.status, 200, "{}", r.body);
        if r.body["server_time"].as_i64().unwrap() > t {
            return;
        }
    }
    panic!("the server's clock did not pass {t}");
}

fn intervals(v: &Value) -> Vec<(i64, Option<i64>, String)> {
    v["intervals"]
        .as_array()
        .expect("intervals")
        .iter()
        .map(|i| {
            (
                i["start"].as_i64().unwrap(),
                i["end"].as_i64(),
                i["availability"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_timeline_and_the_report_follow_an_agent_s_changes_to_the_millisecond() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    let ann_id = api.add_agent(&acc, "ann", &[]).await;
    let ann = api.login_agent(&acc, "ann", "phone").await;
    past(&api, &ann, ann.login["server_time"].as_i64().unwrap()).await;
    let t_online = set_at(&api, &ann, "online").await;
    past(&api, &ann, t_online).await;
    let t_busy = set_at(&api, &ann, "busy").await;
    past(&api, &ann, t_busy).await;
    let r = api.delete("/v1/session", Some(&ann.token)).await;
    assert!(r.status == 204 || r.status == 200, "{}", r.body);
    // The report's range ends now: let the server's clock pass the logout first, or a
    // logout in the report's own millisecond would make an empty last interval.
    let owner = Session::from_login(&json!({"token": acc.owner_token}));
    let after_logout = heartbeat(&api, &owner.token, json!({})).await.body["server_time"]
        .as_i64()
        .expect("server_time");
    past(&api, &owner, after_logout).await;

    let r = api
        .get(
            &format!(
                "/v1/admin/reports/timeline?agent={ann_id}&from={}",
                t_online - 60_000
            ),
            Some(&acc.owner_token),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let tl = intervals(&r.body);
    let states: Vec<&str> = tl.iter().map(|i| i.2.as_str()).collect();
    // Created (signed out), signed in with the first status (offline), online, busy, and
    // signed out again, still open.
    assert_eq!(
        states,
        ["signed_out", "offline", "online", "busy", "signed_out"],
        "{}",
        r.body
    );
    assert_eq!(tl[2].0, t_online);
    assert_eq!(tl[3].0, t_busy);
    assert_eq!(tl[4].1, None, "the last interval is still open");
    for w in tl.windows(2) {
        assert_eq!(w[0].1, Some(w[1].0), "intervals meet: {}", r.body);
    }
    let t_logout = tl[4].0;
    assert_eq!(r.body["intervals"][4]["ended"], "logout");

    // The availability report over the closed part of that history.
    let (from, to) = (tl[1].0, t_logout);
    let r = api
        .get(
            &format!("/v1/admin/reports/availability?from={from}&to={to}&tz=UTC"),
            Some(&acc.owner_token),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let a = r.body["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == ann_id.as_str())
        .expect("ann is in the report")
        .clone();
    assert_eq!(a["online_ms"], t_busy - t_online, "{a}");
    assert_eq!(a["busy_ms"], t_logout - t_busy, "{a}");
    assert_eq!(a["offline_ms"], t_online - from, "{a}");
    assert_eq!(a["signed_out_ms"], 0, "{a}");
    let day_sum: i64 = a["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["online_ms"].as_i64().unwrap())
        .sum();
    assert_eq!(day_sum, t_busy - t_online, "days add up to the total");
}

#[tokio::test]
async fn an_agent_who_never_signed_in_counts_signed_out_for_the_whole_range() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    let bob_id = api.add_agent(&acc, "bob", &[]).await;
    let owner = Session {
        token: acc.owner_token.clone(),
        session_id: String::new(),
        agent_id: acc.owner_id.clone(),
        login: Value::Null,
    };
    let t = set_at(&api, &owner, "online").await;
    let r = api
        .get(
            &format!(
                "/v1/admin/reports/timeline?agent={bob_id}&from={}",
                t - 60_000
            ),
            Some(&acc.owner_token),
        )
        .await;
    let created = intervals(&r.body)[0].0;
    assert!(created <= t);
    let r = api
        .get(
            &format!("/v1/admin/reports/availability?from={created}&to={t}"),
            Some(&acc.owner_token),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let bob = r.body["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == bob_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(bob["signed_out_ms"], t - created, "{bob}");
    assert_eq!(bob["online_ms"], 0);
}

#[tokio::test]
async fn coverage_counts_the_chat_box_online_then_busy() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    api.put_groups(&acc, &[("sales", "Sales")]).await;
    let owner = Session {
        token: acc.owner_token.clone(),
        session_id: String::new(),
        agent_id: acc.owner_id.clone(),
        login: Value::Null,
    };
    let t1 = set_at(&api, &owner, "online").await;
    let t2 = set_at(&api, &owner, "busy").await;
    let t3 = set_at(&api, &owner, "offline").await;
    let r = api
        .get(
            &format!("/v1/admin/reports/coverage?from={t1}&to={t3}"),
            Some(&acc.owner_token),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let boxes = r.body["chatboxes"].as_array().unwrap();
    assert_eq!(boxes.len(), 2, "the account's and the group's: {}", r.body);
    for b in boxes {
        assert_eq!(b["open_ms"], t3 - t1, "{b}");
        assert_eq!(b["online_ms"], t2 - t1, "{b}");
        assert_eq!(b["busy_ms"], t3 - t2, "{b}");
        assert_eq!(b["offline_ms"], 0, "{b}");
        if t3 > t1 {
            assert_eq!(b["coverage"], 1.0, "{b}");
        }
    }
    assert_eq!(boxes[0]["group"], Value::Null);
    assert_eq!(boxes[1]["group"], "sales");
}

#[tokio::test]
async fn the_availability_report_comes_as_csv_when_asked() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    let req = api
        .request(
            reqwest::Method::GET,
            "/v1/admin/reports/availability?from=0&to=172800000&tz=UTC",
        )
        .bearer_auth(&acc.owner_token)
        .header("accept", "text/csv");
    let r = api.send(req).await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type").unwrap().starts_with("text/csv"),
        "{:?}",
        r.headers
    );
    let text = r.body.as_str().expect("text").to_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "agent_id,agent_name,date,online_ms,busy_ms,offline_ms,signed_out_ms"
    );
    // The owner, over two days of 1970 (before it existed: nothing counted).
    assert_eq!(
        &lines[1..],
        [
            format!("{},Owner,1970-01-01,0,0,0,0", acc.owner_id),
            format!("{},Owner,1970-01-02,0,0,0,0", acc.owner_id),
        ]
    );
}

#[tokio::test]
async fn bad_report_parameters_are_refused_naming_the_field() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    let t = &acc.owner_token;
    let day = 86_400_000i64;
    for (path, field) in [
        (
            "/v1/admin/reports/availability?from=10&to=5".to_owned(),
            "from",
        ),
        (
            format!("/v1/admin/reports/availability?from=0&to={}", 401 * day),
            "to",
        ),
        (
            "/v1/admin/reports/availability?tz=Mars%2FOlympus".to_owned(),
            "tz",
        ),
        (
            "/v1/admin/reports/availability?group=nope".to_owned(),
            "group",
        ),
        (
            "/v1/admin/reports/coverage?from=yesterday".to_owned(),
            "from",
        ),
        ("/v1/admin/reports/coverage?to=-5".to_owned(), "to"),
        (
            "/v1/admin/reports/timeline?agent=nobody".to_owned(),
            "agent",
        ),
        ("/v1/admin/reports/timeline".to_owned(), "agent"),
        ("/v1/me/timeline?from=5&to=5".to_owned(), "from"),
    ] {
        let r = api.get(&path, Some(t)).await;
        let detail = r.assert_error(422, "invalid_field");
        assert!(detail.starts_with(field), "{path}: {detail}");
    }
    let r = api
        .get("/v1/admin/reports/availability?tz=Europe%2FBerlin", Some(t))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["tz"], "Europe/Berlin");
    api.add_agent(&acc, "ann", &[]).await;
    let ann = api.login_agent(&acc, "ann", "phone").await;
    for path in [
        "/v1/admin/reports/availability",
        "/v1/admin/reports/coverage",
        "/v1/admin/reports/timeline?agent=x",
    ] {
        api.get(path, Some(&ann.token))
            .await
            .assert_error(403, "forbidden");
    }
    let r = api.get("/v1/me/timeline", Some(&ann.token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["agent"], ann.agent_id.as_str());
    let last = r.body["intervals"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["availability"], "offline");
    assert_eq!(last["end"], Value::Null);
}

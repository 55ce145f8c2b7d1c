//! The account's live picture over HTTP (PROTOCOL.md, third part: `GET /v1/admin/presence`
//! and `GET /v1/admin/events`), on whichever backend the run uses: the snapshot shows every
//! agent with its availability and devices, the stream starts with it and then carries every
//! event in `seq` order, one apart, each in the contract's shape; agents may read neither.

use presence_test_support::sse::Event;
use presence_test_support::{Api, TestServer, new_op_id};
use serde_json::{Value, json};

/// The next event that is not a `ping`.
async fn next(s: &mut presence_test_support::sse::Sse) -> Event {
    loop {
        let e = s.next().await.expect("the stream stays open");
        if e.name != "ping" {
            return e;
        }
    }
}

fn agent<'a>(snapshot: &'a Value, id: &str) -> &'a Value {
    snapshot["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .find(|a| a["id"] == id)
        .unwrap_or_else(|| panic!("{id} in {snapshot}"))
}

#[tokio::test]
async fn the_presence_snapshot_shows_every_agent_with_availability_and_devices() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    let bob = api.add_agent(&acc, "bob", &[]).await;
    let r = api.get("/v1/admin/presence", Some(&acc.owner_token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["seq"].as_i64().unwrap() > 0, "{}", r.body);
    let owner = agent(&r.body, &acc.owner_id);
    assert_eq!(
        owner["availability"], "offline",
        "signed in, status offline"
    );
    assert_eq!(owner["devices"][0]["id"], "owner-dev");
    assert!(owner["since"].is_i64());
    let b = agent(&r.body, &bob);
    assert_eq!(b["availability"], "signed_out");
    assert_eq!(b["devices"], json!([]));
    assert_eq!(b["status"]["status"], "offline");
    assert_eq!(r.body["chatbox"]["status"], "offline");

    api.add_agent(&acc, "ann", &[]).await;
    let ann = api.login_agent(&acc, "ann", "phone").await;
    for path in ["/v1/admin/presence", "/v1/admin/events"] {
        api.get(path, Some(&ann.token))
            .await
            .assert_error(403, "forbidden");
    }
}

#[tokio::test]
async fn the_event_stream_follows_its_snapshot_with_every_event_one_seq_apart() {
    let srv = TestServer::start().await;
    let api: Api = srv.api();
    let acc = api.create_account("acme").await;
    let bob_id = api.add_agent(&acc, "bob", &[]).await;
    let mut s = api.sse("/v1/admin/events", Some(&acc.owner_token)).await;
    let snap = next(&mut s).await;
    assert_eq!(snap.name, "snapshot");
    let mut seq = snap.data["seq"].as_i64().expect("seq");
    assert_eq!(agent(&snap.data, &bob_id)["availability"], "signed_out");

    let bob = api.login_agent(&acc, "bob", "phone").await;
    let r = api
        .put(
            "/v1/me/status",
            Some(&bob.token),
            json!({"status": "online", "op_id": new_op_id()}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = api.delete("/v1/session", Some(&bob.token)).await;
    assert!(r.status < 300, "{}", r.body);

    let mut seen: Vec<(String, Value)> = Vec::new();
    // Sign-in (session, availability offline), online (status, availability, view), sign-out
    // (session, availability signed out, view).
    while !seen
        .iter()
        .any(|(t, d)| t == "agent.availability" && d["availability"] == "signed_out")
    {
        let e = next(&mut s).await;
        seq += 1;
        assert_eq!(e.data["seq"], seq, "one apart: {:?}", e);
        assert_eq!(e.id.as_deref(), Some(seq.to_string().as_str()));
        assert_eq!(e.data["type"], e.name.as_str());
        assert_eq!(e.data["account"], "acme");
        assert!(
            e.data["timestamp"].as_str().unwrap().ends_with('Z'),
            "{:?}",
            e
        );
        seen.push((e.name.clone(), e.data["data"].clone()));
    }
    let kinds: Vec<&str> = seen
        .iter()
        .filter(|(t, _)| t != "chatbox.view")
        .map(|(t, _)| t.as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "session.started",
            "agent.availability",
            "agent.status",
            "agent.availability",
            "session.ended",
            "agent.availability",
        ],
        "{seen:?}"
    );
    let started = &seen[0].1;
    assert_eq!(started["agent_id"], bob_id.as_str());
    assert_eq!(started["device"]["id"], "phone");
    let status = seen.iter().find(|(t, _)| t == "agent.status").unwrap();
    assert_eq!(status.1["status"]["status"], "online");
    let ended = seen.iter().find(|(t, _)| t == "session.ended").unwrap();
    assert_eq!(ended.1["reason"], "logout");
    let views: Vec<&Value> = seen
        .iter()
        .filter(|(t, _)| t == "chatbox.view")
        .map(|(_, d)| &d["view"]["status"])
        .collect();
    assert!(views.contains(&&json!("online")), "{seen:?}");
}

//! Webhooks to the customer's backend over HTTP (PROTOCOL.md, third part, "Events to the
//! customer's backend: webhooks"), on whichever backend the run uses: endpoints made,
//! listed, changed and removed with their limits and errors; every event delivered signed
//! (checked by the Standard Webhooks project's own library), in `seq` order per endpoint;
//! retries with the same `webhook-id` through errors, hangs, huge answers, closed
//! connections and redirects; `410`; dead events, the deliveries list and manual retry; a
//! secret rotation signing with both secrets; a hanging endpoint delaying no other.

use std::time::Duration;

use presence_server::webhooks::backoff::Policy;
use presence_test_support::receiver::{Answer, Received, Receiver};
use presence_test_support::standard_webhooks::verify;
use presence_test_support::{Account, Api, DEADLINE, TestServer, eventually, new_op_id};
use serde_json::{Value, json};

/// A server whose webhook retries come fast: first retry after 10 ms, attempts cut at 1 s,
/// events given up `give_up` after they happened.
async fn server(give_up: Duration) -> TestServer {
    TestServer::with(|c| {
        c.webhooks = Policy {
            first_retry: Duration::from_millis(10),
            give_up_after: give_up,
            timeout: Duration::from_secs(1),
        }
    })
    .await
}

async fn endpoint(api: &Api, acc: &Account, url: &str, events: Value) -> (String, String) {
    let r = api
        .post(
            "/v1/admin/webhooks",
            Some(&acc.owner_token),
            json!({"url": url, "events": events, "description": "routing"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let secret = r.body["secret"].as_str().expect("a secret").to_owned();
    (r.body["id"].as_str().unwrap().to_owned(), secret)
}

async fn set_status(api: &Api, token: &str, status: &str) {
    let r = api
        .put(
            "/v1/me/status",
            Some(token),
            json!({"status": status, "op_id": new_op_id()}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

async fn deliveries(api: &Api, acc: &Account, id: &str, query: &str) -> Vec<Value> {
    let r = api
        .get(
            &format!("/v1/admin/webhooks/{id}/deliveries{query}"),
            Some(&acc.owner_token),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body.as_array().expect("a list").clone()
}

#[tokio::test]
async fn endpoints_are_made_listed_changed_and_removed_within_their_rules() {
    let srv = server(Duration::from_secs(60)).await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    let rx = Receiver::start().await;
    let r = api
        .post(
            "/v1/admin/webhooks",
            Some(&acc.owner_token),
            json!({"url": rx.url, "events": ["agent.availability", "session.ended"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["enabled"], true);
    assert_eq!(
        r.body["events"],
        json!(["agent.availability", "session.ended"])
    );
    let secret = r.body["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{secret}");
    let id = r.body["id"].as_str().unwrap().to_owned();

    let list = api.get("/v1/admin/webhooks", Some(&acc.owner_token)).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body[0]["id"], id.as_str());
    assert!(
        !list.body.to_string().contains("whsec_"),
        "no secret in a list: {}",
        list.body
    );

    let p = api
        .patch(
            &format!("/v1/admin/webhooks/{id}"),
            Some(&acc.owner_token),
            json!({"events": ["*"], "enabled": false}),
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert_eq!(p.body["events"], json!(["*"]));
    assert_eq!(p.body["enabled"], false);
    assert_eq!(p.body["disabled_reason"], "admin");

    for (body, field) in [
        (json!({"url": "ftp://example.com/", "events": ["*"]}), "url"),
        (json!({"url": "https://10.0.0.1/", "events": ["*"]}), "url"),
        (
            json!({"url": "https://example.com/", "events": []}),
            "events",
        ),
        (
            json!({"url": "https://example.com/", "events": ["agent.typing"]}),
            "events",
        ),
    ] {
        let r = api
            .post("/v1/admin/webhooks", Some(&acc.owner_token), body)
            .await;
        let detail = r.assert_error(422, "invalid_field");
        assert!(detail.contains(field), "{field}: {detail}");
    }
    for _ in 1..10 {
        endpoint(&api, &acc, &rx.url, json!(["*"])).await;
    }
    api.post(
        "/v1/admin/webhooks",
        Some(&acc.owner_token),
        json!({"url": rx.url, "events": ["*"]}),
    )
    .await
    .assert_error(409, "conflict");

    // Another account cannot see or touch it; an agent may not manage webhooks.
    let other = api.create_account("other").await;
    api.patch(
        &format!("/v1/admin/webhooks/{id}"),
        Some(&other.owner_token),
        json!({"enabled": true}),
    )
    .await
    .assert_error(404, "not_found");
    api.add_agent(&acc, "ann", &[]).await;
    let ann = api.login_agent(&acc, "ann", "phone").await;
    api.get("/v1/admin/webhooks", Some(&ann.token))
        .await
        .assert_error(403, "forbidden");

    let d = api
        .delete(&format!("/v1/admin/webhooks/{id}"), Some(&acc.owner_token))
        .await;
    assert_eq!(d.status, 204, "{}", d.body);
    api.delete(&format!("/v1/admin/webhooks/{id}"), Some(&acc.owner_token))
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn every_event_arrives_signed_in_seq_order_as_the_contract_shapes_it() {
    let srv = server(Duration::from_secs(60)).await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    let mut all = Receiver::start().await;
    let mut some = Receiver::start().await;
    let (_, secret) = endpoint(&api, &acc, &all.url, json!(["*"])).await;
    endpoint(&api, &acc, &some.url, json!(["agent.availability"])).await;

    api.add_agent(&acc, "bob", &[]).await;
    let bob = api.login_agent(&acc, "bob", "phone").await;
    set_status(&api, &bob.token, "online").await;
    set_status(&api, &bob.token, "busy").await;

    // Everything, one seq apart, up to bob's busy status.
    let mut got: Vec<Received> = Vec::new();
    loop {
        let r = all.next().await;
        let done = r.kind() == "agent.status" && r.body["data"]["status"]["status"] == "busy";
        got.push(r);
        if done {
            break;
        }
    }
    for pair in got.windows(2) {
        assert_eq!(pair[1].seq(), pair[0].seq() + 1, "{:?}", pair[1].body);
    }
    let kinds: Vec<&str> = got.iter().map(Received::kind).collect();
    assert!(kinds.contains(&"session.started"), "{kinds:?}");
    assert!(kinds.contains(&"agent.availability"), "{kinds:?}");
    for r in &got {
        verify(&secret, &r.hook)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", r.hook.body));
        assert_eq!(r.body["account"], "acme");
        assert!(r.body["timestamp"].as_str().unwrap().ends_with('Z'));
        assert!(r.id().starts_with("evt_"), "{}", r.id());
        let ts: i64 = r.hook.headers["webhook-timestamp"].parse().unwrap();
        assert!(ts > 1_700_000_000 && ts < 4_000_000_000, "{ts}");
    }
    let started = got.iter().find(|r| r.kind() == "session.started").unwrap();
    assert_eq!(started.body["data"]["agent_id"], bob.agent_id.as_str());
    assert_eq!(started.body["data"]["device"]["id"], "phone");
    // A wrong secret does not verify.
    let wrong = presence_server::webhooks::rules::new_secret();
    assert!(verify(&wrong, &got[0].hook).await.is_err());

    // The other endpoint took only availability changes, in order: bob made (signed out),
    // signed in (offline), online, busy.
    let mut seen = Vec::new();
    while seen.last() != Some(&"busy".to_owned()) {
        let r = some.next().await;
        assert_eq!(r.kind(), "agent.availability", "{}", r.hook.body);
        if r.body["data"]["agent_id"] == bob.agent_id.as_str() {
            seen.push(r.body["data"]["availability"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(seen, ["signed_out", "offline", "online", "busy"]);
}

#[tokio::test]
async fn failures_are_retried_with_the_same_id_and_the_next_event_waits() {
    let srv = server(Duration::from_secs(60)).await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    let mut rx = Receiver::start().await;
    let (id, _) = endpoint(&api, &acc, &rx.url, json!(["agent.status"])).await;
    // Each way an endpoint can fail, then a 2xx.
    rx.script([
        Answer::Huge(500),
        Answer::Close,
        Answer::Redirect,
        Answer::Hang,
    ]);
    let owner = acc.owner_token.clone();
    set_status(&api, &owner, "online").await;
    set_status(&api, &owner, "busy").await;

    let first = rx.next().await;
    let mut attempts = vec![first.clone()];
    loop {
        let r = rx.next().await;
        if r.id() != first.id() {
            // The next event came only after the first was answered 2xx.
            assert!(matches!(
                attempts.last().unwrap().answer,
                Answer::Status(204)
            ));
            assert_eq!(r.body["data"]["status"]["status"], "busy");
            assert!(r.seq() > first.seq());
            break;
        }
        attempts.push(r);
    }
    // Had the redirect been followed, its target (this receiver) would have seen one more.
    assert_eq!(attempts.len(), 5, "four failures, then the 2xx");
    assert!(attempts.iter().all(|a| a.hook.body == first.hook.body));
    let list = deliveries(&api, &acc, &id, "?state=ok").await;
    let d = list
        .iter()
        .find(|d| d["event_id"] == first.id())
        .expect("the first event delivered");
    assert_eq!(d["attempts"], 5);
    assert_eq!(d["last_status"], 204);
    assert_eq!(d["state"], "ok");
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let srv = server(Duration::from_secs(60)).await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    let mut rx = Receiver::start().await;
    endpoint(&api, &acc, &rx.url, json!(["agent.status"])).await;
    rx.script([Answer::RetryAfter(429, 2)]);
    set_status(&api, &acc.owner_token, "online").await;
    let a = rx.next().await;
    let b = rx.next().await;
    assert_eq!(a.id(), b.id());
    let gap = b.at - a.at;
    assert!(gap >= Duration::from_millis(1900), "retried after {gap:?}");
}

#[tokio::test]
async fn a_dead_event_is_listed_skipped_and_sent_again_by_hand() {
    let srv = server(Duration::from_millis(400)).await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    let mut rx = Receiver::start().await;
    let (id, _) = endpoint(&api, &acc, &rx.url, json!(["agent.status"])).await;
    rx.script(std::iter::repeat_n(Answer::Status(500), 1000));
    set_status(&api, &acc.owner_token, "online").await;
    let first = rx.next().await;
    // It is given up; the endpoint moves on to the next event.
    eventually("the event is given up", DEADLINE, || async {
        !deliveries(&api, &acc, &id, "?state=dead").await.is_empty()
    })
    .await;
    let dead = deliveries(&api, &acc, &id, "?state=dead").await[0].clone();
    while let Some(r) = rx.try_next() {
        assert_eq!(r.id(), first.id(), "nothing else while it is tried");
    }
    assert_eq!(dead["event_id"], first.id());
    assert_eq!(dead["last_status"], 500);
    assert!(dead["attempts"].as_u64().unwrap() >= 2, "{dead}");
    assert!(dead["last_error"].as_str().unwrap().contains("500"));
    // Answer 2xx from now on.
    rx.clear();

    set_status(&api, &acc.owner_token, "busy").await;
    let next = rx.next_of("agent.status").await;
    assert_eq!(next.body["data"]["status"]["status"], "busy");

    let r = api
        .post(
            &format!("/v1/admin/webhooks/{id}/deliveries/{}/retry", first.id()),
            Some(&acc.owner_token),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let again = loop {
        let r = rx.next().await;
        if r.id() == first.id() {
            break r;
        }
    };
    assert_eq!(again.hook.body, first.hook.body);
    eventually("the retried event is delivered", DEADLINE, || async {
        deliveries(&api, &acc, &id, "?state=ok")
            .await
            .iter()
            .any(|d| d["event_id"] == first.id())
    })
    .await;
    // A delivered event is not retried; an unknown one is not found.
    api.post(
        &format!("/v1/admin/webhooks/{id}/deliveries/{}/retry", first.id()),
        Some(&acc.owner_token),
        json!({}),
    )
    .await
    .assert_error(409, "conflict");
    api.post(
        &format!("/v1/admin/webhooks/{id}/deliveries/evt_nope_1/retry"),
        Some(&acc.owner_token),
        json!({}),
    )
    .await
    .assert_error(404, "not_found");
    api.get(
        &format!("/v1/admin/webhooks/{id}/deliveries?state=lost"),
        Some(&acc.owner_token),
    )
    .await
    .assert_error(422, "invalid_field");
}

#[tokio::test]
async fn gone_disables_the_endpoint_and_enabling_it_resumes_where_it_stopped() {
    let srv = server(Duration::from_secs(60)).await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    let mut rx = Receiver::start().await;
    let (id, _) = endpoint(&api, &acc, &rx.url, json!(["agent.status"])).await;
    rx.script([Answer::Status(410)]);
    set_status(&api, &acc.owner_token, "online").await;
    let first = rx.next().await;
    eventually("the endpoint is disabled", DEADLINE, || async {
        let l = api.get("/v1/admin/webhooks", Some(&acc.owner_token)).await;
        l.body[0]["enabled"] == false && l.body[0]["disabled_reason"] == "gone"
    })
    .await;
    set_status(&api, &acc.owner_token, "busy").await;
    let pending = deliveries(&api, &acc, &id, "?state=pending").await;
    assert_eq!(pending.len(), 2, "{pending:?}");
    assert_eq!(pending[1]["event_id"], first.id());
    assert_eq!(pending[1]["last_status"], 410);
    assert_eq!(pending[0]["attempts"], 0);
    assert!(
        rx.try_next().is_none(),
        "nothing goes to a disabled endpoint"
    );

    let r = api
        .patch(
            &format!("/v1/admin/webhooks/{id}"),
            Some(&acc.owner_token),
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let again = rx.next().await;
    assert_eq!(again.id(), first.id());
    let next = rx.next().await;
    assert_eq!(next.body["data"]["status"]["status"], "busy");
}

#[tokio::test]
async fn after_a_rotation_both_secrets_sign_for_a_day() {
    let srv = server(Duration::from_secs(60)).await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    let mut rx = Receiver::start().await;
    let (id, old) = endpoint(&api, &acc, &rx.url, json!(["agent.status"])).await;
    let r = api
        .post(
            &format!("/v1/admin/webhooks/{id}/rotate-secret"),
            Some(&acc.owner_token),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let new = r.body["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    let until = r.body["previous_secret_until"].as_i64().unwrap();
    let day = until - chrono_now();
    assert!((86_000_000..=86_400_000).contains(&day), "{day}");

    set_status(&api, &acc.owner_token, "online").await;
    let hook = rx.next().await;
    let sig = &hook.hook.headers["webhook-signature"];
    assert_eq!(sig.split(' ').count(), 2, "{sig}");
    verify(&new, &hook.hook).await.expect("the new secret");
    verify(&old, &hook.hook).await.expect("the old secret");
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn a_hanging_endpoint_delays_no_other_endpoint() {
    let srv = TestServer::with(|c| {
        c.webhooks = Policy {
            timeout: Duration::from_secs(30),
            ..Policy::default()
        }
    })
    .await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    let mut stuck = Receiver::start().await;
    let mut fine = Receiver::start().await;
    stuck.script([Answer::Hang]);
    endpoint(&api, &acc, &stuck.url, json!(["agent.status"])).await;
    endpoint(&api, &acc, &fine.url, json!(["agent.status"])).await;
    set_status(&api, &acc.owner_token, "online").await;
    let hung = stuck.next().await;
    set_status(&api, &acc.owner_token, "busy").await;
    let a = fine.next().await;
    let b = fine.next().await;
    assert_eq!(a.body["data"]["status"]["status"], "online");
    assert_eq!(b.body["data"]["status"]["status"], "busy");
    // The hanging request is still open: the other endpoint did not wait for it.
    assert!(stuck.try_next().is_none());
    assert!(hung.at.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn a_test_event_is_sent_signed_and_its_answer_reported() {
    let srv = server(Duration::from_secs(60)).await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    let mut rx = Receiver::start().await;
    let (id, secret) = endpoint(&api, &acc, &rx.url, json!(["agent.status"])).await;
    let r = api
        .post(
            &format!("/v1/admin/webhooks/{id}/test"),
            Some(&acc.owner_token),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["ok"], true);
    assert_eq!(r.body["status"], 204);
    let hook = rx.next().await;
    assert_eq!(hook.kind(), "webhook.test");
    verify(&secret, &hook.hook).await.expect("signed");
    rx.script([Answer::Status(500)]);
    let r = api
        .post(
            &format!("/v1/admin/webhooks/{id}/test"),
            Some(&acc.owner_token),
            json!({}),
        )
        .await;
    assert_eq!(r.body["ok"], false);
    assert_eq!(r.body["status"], 500);
    assert!(r.body["error"].as_str().unwrap().contains("500"));
}

#[tokio::test]
async fn an_api_key_manages_webhooks() {
    let srv = server(Duration::from_secs(60)).await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    let k = api
        .post(
            "/v1/admin/api-keys",
            Some(&acc.owner_token),
            json!({"name": "backend"}),
        )
        .await;
    assert_eq!(k.status, 201, "{}", k.body);
    let key = k.body["key"].as_str().unwrap();
    let rx = Receiver::start().await;
    let r = api
        .post(
            "/v1/admin/webhooks",
            Some(key),
            json!({"url": rx.url, "events": ["*"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let l = api.get("/v1/admin/webhooks", Some(key)).await;
    assert_eq!(l.body.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_burst_of_changes_arrives_whole_and_in_order_at_every_endpoint() {
    let srv = server(Duration::from_secs(60)).await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    let mut a = Receiver::start().await;
    let mut b = Receiver::start().await;
    endpoint(&api, &acc, &a.url, json!(["agent.status"])).await;
    endpoint(&api, &acc, &b.url, json!(["agent.status"])).await;
    let n = 60;
    for i in 0..n {
        set_status(
            &api,
            &acc.owner_token,
            if i % 2 == 0 { "online" } else { "busy" },
        )
        .await;
    }
    for rx in [&mut a, &mut b] {
        let mut last = 0;
        for i in 0..n {
            let r = rx.next().await;
            let want = if i % 2 == 0 { "online" } else { "busy" };
            assert_eq!(r.body["data"]["status"]["status"], want, "change {i}");
            assert!(r.seq() > last, "in seq order");
            last = r.seq();
        }
    }
}

#[tokio::test]
async fn a_backlog_made_while_disabled_drains_whole_to_every_endpoint_once_enabled() {
    let srv = server(Duration::from_secs(60)).await;
    let api = srv.api();
    let mut receivers = Vec::new();
    let mut hooks = Vec::new();
    for a in 0..3 {
        let acc = api.create_account(&format!("acme{a}")).await;
        for _ in 0..4 {
            let rx = Receiver::start().await;
            let (id, _) = endpoint(&api, &acc, &rx.url, json!(["agent.status"])).await;
            let r = api
                .patch(
                    &format!("/v1/admin/webhooks/{id}"),
                    Some(&acc.owner_token),
                    json!({"enabled": false}),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
            receivers.push(rx);
            hooks.push((acc.owner_token.clone(), id));
        }
        for i in 0..10 {
            set_status(
                &api,
                &acc.owner_token,
                if i % 2 == 0 { "online" } else { "busy" },
            )
            .await;
        }
    }
    for (token, id) in &hooks {
        let r = api
            .patch(
                &format!("/v1/admin/webhooks/{id}"),
                Some(token),
                json!({"enabled": true}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    for rx in &mut receivers {
        let mut last = 0;
        for i in 0..10 {
            let r = rx.next().await;
            let want = if i % 2 == 0 { "online" } else { "busy" };
            assert_eq!(r.body["data"]["status"]["status"], want, "change {i}");
            assert!(r.seq() > last, "in seq order");
            last = r.seq();
        }
    }
}

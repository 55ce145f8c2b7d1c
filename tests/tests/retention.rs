//! History is kept as long as the contract needs it and no longer: an ended session's token
//! answers `session_expired` for the retention, then `unauthorized`; a status op id stays
//! idempotent for its retention; over many sessions' lives, memory and the database file
//! stay flat.

use std::time::Duration;

use presence_test_support::*;
use serde_json::json;

fn short_retention(c: &mut presence_server::Config) {
    c.retention.ended_sessions = Duration::from_millis(1500);
    c.retention.status_ops = Duration::from_millis(1500);
}

async fn metric(api: &Api, name: &str) -> u64 {
    let r = api
        .client
        .get(format!("{}/metrics", api.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    r.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} in /metrics"))
}

#[tokio::test]
async fn an_ended_token_answers_session_expired_for_the_retention_then_unauthorized() {
    let srv = TestServer::with(short_retention).await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    let s = api
        .login(&acc.slug, "owner@acme.test", "pw-owner-secret", "d")
        .await;
    api.delete("/v1/session", Some(&s.token)).await;
    api.post("/v1/session/heartbeat", Some(&s.token), json!({}))
        .await
        .assert_error(401, "session_expired");
    eventually(
        "the ended token is forgotten",
        Duration::from_secs(20),
        || {
            let api = api.clone();
            let token = s.token.clone();
            async move {
                api.post("/v1/session/heartbeat", Some(&token), json!({}))
                    .await
                    .code()
                    == "unauthorized"
            }
        },
    )
    .await;
}

#[tokio::test]
async fn a_status_op_id_is_idempotent_within_its_retention() {
    let srv = TestServer::with(short_retention).await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    let op = new_op_id();
    let body = json!({"status": "busy", "op_id": op});
    let first = api
        .put("/v1/me/status", Some(&acc.owner_token), body.clone())
        .await;
    let again = api
        .put("/v1/me/status", Some(&acc.owner_token), body.clone())
        .await;
    assert_eq!(first.body, again.body, "the same answer, no new version");
    eventually("the op id is pruned", Duration::from_secs(20), || {
        let api = api.clone();
        async move { metric(&api, "presence_pruned_status_ops_total").await >= 1 }
    })
    .await;
}

#[tokio::test]
async fn memory_and_file_size_stay_flat_over_many_sessions_lives() {
    let srv = TestServer::with(|c| {
        c.retention.ended_sessions = Duration::from_millis(200);
        c.retention.status_ops = Duration::from_millis(200);
        c.retention.history = Duration::from_millis(200);
    })
    .await;
    let api = srv.api();
    let acc = api.create_account("acme").await;
    api.add_agent(&acc, "ann", &[]).await;
    let db = srv.dir.path().join("presence-server.db");
    let mut sizes = Vec::new();
    for round in 0..4 {
        for i in 0..60 {
            let s = api
                .login_agent(&acc, "ann", &format!("dev-{round}-{i}"))
                .await;
            api.set_status(&s, if i % 2 == 0 { "online" } else { "busy" })
                .await;
            api.delete("/v1/session", Some(&s.token)).await;
        }
        eventually("ended sessions are forgotten", DEADLINE, || {
            let api = api.clone();
            async move { metric(&api, "presence_ended_sessions_remembered").await == 0 }
        })
        .await;
        let ops_pruned = (round + 1) * 60;
        eventually("old op ids are pruned", DEADLINE, || {
            let api = api.clone();
            async move {
                metric(&api, "presence_pruned_status_ops_total").await >= ops_pruned as u64
            }
        })
        .await;
        eventually("old status log entries are pruned", DEADLINE, || {
            let api = api.clone();
            async move {
                metric(&api, "presence_pruned_status_log_total").await >= ops_pruned as u64
            }
        })
        .await;
        if !cluster_mode() {
            sizes.push(std::fs::metadata(&db).unwrap().len());
        }
    }
    assert_eq!(
        metric(&api, "presence_sessions").await,
        1,
        "only the owner's"
    );
    // Freed pages are reused: after the first round the file does not keep growing (the
    // embedded backend's file; in cluster mode PostgreSQL holds the rows, pruned alike).
    if !cluster_mode() {
        assert!(
            sizes[3] <= sizes[1] + 32 * 1024,
            "database file sizes by round: {sizes:?}"
        );
    }
}

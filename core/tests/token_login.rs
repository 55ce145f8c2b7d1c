//! Signing an engine in with the customer's token (`login_with_token`), against the real
//! presence server in-process: the session it opens is a device of the agent the token names,
//! and a refused token is `Unauthorized` with nothing stored.

use presence_test_support as common;

use common::idp::{self, now};
use common::{TestServer, config, wait_until};
use presence_core::{AgentStatus, ClientError, Connection, PresenceClient};
use serde_json::json;

const ISS: &str = "https://id.customer.test";
const SECRET: &str = "a-shared-secret-of-at-least-32-bytes!";

fn claims(sub: &str) -> serde_json::Value {
    json!({"iss": ISS, "aud": "presence", "sub": sub, "email": format!("{sub}@customer.test"),
           "name": "Tokened Tess", "exp": now() + 600, "iat": now()})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_signs_in_with_the_customers_token_and_a_refused_one_stores_nothing() {
    let server = TestServer::start().await;
    let api = server.api();
    let acc = api.create_account("tokens").await;
    let r = api
        .put(
            "/v1/admin/sign-in",
            Some(&acc.owner_token),
            json!({"jwt": {"issuer": ISS, "audience": "presence", "hs256_secret": SECRET},
                   "password_login": true, "provision": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    let dir = tempfile::tempdir().unwrap();
    let client = PresenceClient::open(config(&server.url, dir.path()))
        .await
        .unwrap();
    let forged = idp::hs256("not-the-secret-but-just-as-long-as-it", &claims("tess"));
    match client.login_with_token("tokens", &forged).await {
        Err(ClientError::Unauthorized { .. }) => {}
        other => panic!("a forged token: {other:?}"),
    }
    assert!(client.snapshot().session.agent.is_none(), "nothing stored");

    let token = idp::hs256(SECRET, &claims("tess"));
    // Whitespace around a token read from a file is not part of it.
    client
        .login_with_token("tokens", &format!("{token}\n"))
        .await
        .expect("the customer's token signs in");
    let agent = client.snapshot().session.agent.expect("an agent");
    assert_eq!(
        (agent.name.as_str(), agent.email.as_str()),
        ("Tokened Tess", "tess@customer.test"),
        "provisioned from the claims"
    );
    wait_until(&client, "connected", |s| {
        s.connection == Connection::Connected
    })
    .await;
    client.set_status(AgentStatus::Busy).await.unwrap();
    wait_until(&client, "the change delivered", |s| {
        s.status.as_ref().is_some_and(|st| !st.pending)
    })
    .await;
    client.shutdown().await;
}

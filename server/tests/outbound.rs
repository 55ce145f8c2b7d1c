//! The binary's outbound calls ignore proxies named in its environment (PROTOCOL.md, third
//! part, "Outbound"): a proxy would route around the address checks of user-chosen targets.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use common::{ADMIN, command, spawn_command};
use presence_test_support::push::tls::TestCa;
use presence_test_support::push::unifiedpush::UnifiedPushDouble;
use presence_test_support::{Api, DEADLINE, Session, WebhookReceiver};
use serde_json::{Value, json};

/// A listener that counts the connections made to it and closes each at once.
async fn recording_proxy() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            count.fetch_add(1, SeqCst);
            drop(sock);
        }
    });
    (url, seen)
}

async fn login(api: &Api, device: &str, push: Value) -> Session {
    let r = api
        .post(
            "/v1/login",
            None,
            json!({"account": "acme", "email": "o@acme.test", "password": "pw-owner-1",
                   "device": {"id": device, "platform": "desktop", "name": device,
                              "app_version": "1"},
                   "push": push}),
        )
        .await;
    assert_eq!(r.status, 200, "login {device}: {}", r.body);
    Session::from_login(&r.body)
}

#[tokio::test]
async fn pushes_never_go_through_a_proxy_named_in_the_environment() {
    let (proxy, proxied) = recording_proxy().await;
    let ca = TestCa::new();
    let up = UnifiedPushDouble::start(&ca).await;
    let mut hook = WebhookReceiver::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let ca_file = ca.pem_path.to_str().unwrap();
    let mut cmd = command(
        tmp.path(),
        "127.0.0.1:0",
        &[
            "--push-webhook-allow",
            "127.0.0.1",
            "--push-ca-file",
            ca_file,
        ],
    );
    for var in [
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "ALL_PROXY",
        "https_proxy",
        "http_proxy",
        "all_proxy",
    ] {
        cmd.env(var, &proxy);
    }
    cmd.env_remove("NO_PROXY").env_remove("no_proxy");
    let server = spawn_command(cmd);

    let api = Api {
        url: server.url.clone(),
        client: presence_test_support::client(),
    };
    let r = api
        .post(
            "/v1/accounts",
            Some(ADMIN),
            json!({"slug": "acme", "name": "Acme",
                   "owner": {"name": "O", "email": "o@acme.test", "password": "pw-owner-1"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    login(
        &api,
        "hook-phone",
        json!({"provider": "webhook", "token": hook.url}),
    )
    .await;
    login(
        &api,
        "up-phone",
        json!({"provider": "unifiedpush", "token": up.endpoint("up-phone"),
               "p256dh": up.keys().p256dh(), "auth": up.keys().auth_b64()}),
    )
    .await;
    let desk = login(&api, "desk", Value::Null).await;
    assert_eq!(api.set_status(&desk, "busy").await.status, 200);

    let push = hook.next_of("status").await;
    assert_eq!(push["status"]["status"], "busy");
    let push = up
        .double
        .next_of("status", DEADLINE)
        .await
        .expect("the UnifiedPush endpoint is reached directly");
    assert_eq!(push.payload["status"]["status"], "busy");
    assert_eq!(proxied.load(SeqCst), 0, "connections made to the proxy");
    up.double.assert_no_violations();
}

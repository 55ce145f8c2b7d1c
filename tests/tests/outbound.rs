//! Outbound calls to targets users chose (PROTOCOL.md, third part, "Outbound"), over HTTP on
//! every backend: push webhooks carry Standard Webhooks headers and are signed with the
//! secret the device's owner registered (checked with the Standard Webhooks project's own
//! library), the secret survives a restart, and registrations outside the target rules are
//! refused by field.

use presence_test_support::standard_webhooks;
use presence_test_support::webhook::Hook;
use presence_test_support::*;
use serde_json::{Value, json};

/// 29 bytes each, as `whsec_` + base64.
const SECRET: &str = "whsec_c2lnbmluZy1zZWNyZXQtb2YtMzItYnl0ZXMtLS0=";
const OTHER_SECRET: &str = "whsec_b3RoZXItc2VjcmV0LW9mLTMyLWJ5dGVzLS0tLS0=";

fn webhook(url: &str, secret: Option<&str>) -> Value {
    let mut reg = json!({"provider": "webhook", "token": url});
    if let Some(s) = secret {
        reg["secret"] = json!(s);
    }
    reg
}

/// Account `acme` with agent `ann` at a desk (no push).
async fn desk(api: &Api) -> (Account, Session) {
    let acc = api.create_account("acme").await;
    api.add_agent(&acc, "ann", &[]).await;
    let desk = api.login_agent(&acc, "ann", "desk").await;
    (acc, desk)
}

async fn phone(api: &Api, acc: &Account, device: &str, push: Value) -> Session {
    let r = api
        .login_raw(&acc.slug, "ann@acme.test", "pw-ann-secret", device, push)
        .await;
    assert_eq!(r.status, 200, "login: {}", r.body);
    Session::from_login(&r.body)
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The headers every push webhook carries, signed or not.
fn assert_standard_headers(hook: &Hook) {
    let id = &hook.headers["webhook-id"];
    assert!(id.starts_with("msg_") && id.len() > 10, "webhook-id {id:?}");
    let ts: i64 = hook.headers["webhook-timestamp"]
        .parse()
        .expect("webhook-timestamp in seconds");
    assert!((ts - now_secs()).abs() < 60, "webhook-timestamp {ts}");
}

#[tokio::test]
async fn push_webhooks_are_signed_with_the_devices_secret_as_the_standard_webhooks_library_verifies()
 {
    let mut srv = TestServer::start().await;
    let api = srv.api();
    let (acc, desk) = desk(&api).await;
    let mut signed = WebhookReceiver::start().await;
    let mut plain = WebhookReceiver::start().await;
    phone(&api, &acc, "signed", webhook(&signed.url, Some(SECRET))).await;
    phone(&api, &acc, "plain", webhook(&plain.url, None)).await;
    assert_eq!(api.set_status(&desk, "busy").await.status, 200);

    let hook = signed.next_hook_of("status").await;
    assert_standard_headers(&hook);
    let sig = &hook.headers["webhook-signature"];
    assert!(sig.starts_with("v1,"), "webhook-signature {sig:?}");
    standard_webhooks::verify(SECRET, &hook)
        .await
        .expect("the library verifies the signature");
    let why = standard_webhooks::verify(OTHER_SECRET, &hook)
        .await
        .expect_err("another secret does not verify");
    assert!(!why.is_empty());
    let mut tampered = hook.clone();
    tampered.body = tampered.body.replace("busy", "away");
    standard_webhooks::verify(SECRET, &tampered)
        .await
        .expect_err("another body does not verify");

    let hook = plain.next_hook_of("status").await;
    assert_standard_headers(&hook);
    assert!(
        !hook.headers.contains_key("webhook-signature"),
        "no secret, no signature: {:?}",
        hook.headers
    );

    // The secret is stored with the registration: after a restart pushes are still signed.
    srv.restart().await;
    assert_eq!(api.set_status(&desk, "online").await.status, 200);
    let hook = signed.next_hook_of("status").await;
    assert_eq!(
        serde_json::from_str::<Value>(&hook.body).unwrap()["status"]["status"],
        "online"
    );
    standard_webhooks::verify(SECRET, &hook)
        .await
        .expect("signed after a restart");
}

#[tokio::test]
async fn a_secret_registered_with_put_session_push_signs_that_sessions_pushes() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let (acc, desk) = desk(&api).await;
    let mut rx = WebhookReceiver::start().await;
    let s = phone(&api, &acc, "phone", Value::Null).await;
    let r = api
        .put(
            "/v1/session/push",
            Some(&s.token),
            webhook(&rx.url, Some(SECRET)),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(api.set_status(&desk, "busy").await.status, 200);
    let hook = rx.next_hook_of("status").await;
    standard_webhooks::verify(SECRET, &hook)
        .await
        .expect("signed");
    // `/v1/me` names the provider, never the secret.
    let me = api.get("/v1/me", Some(&s.token)).await;
    assert!(!me.body.to_string().contains("whsec_"), "{}", me.body);
}

#[tokio::test]
async fn a_secret_that_is_not_whsec_and_base64_of_24_to_64_bytes_is_refused_naming_secret() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let (acc, desk) = desk(&api).await;
    let rx = WebhookReceiver::start().await;
    // Standard base64 of n bytes of 0xfb: '+' and '/' appear, as in real secrets.
    let of = |n: usize| "+/v7".repeat(n / 3) + ["", "+w==", "+/s="][n % 3];
    assert_eq!(of(24).len(), 32);
    for ok in [format!("whsec_{}", of(24)), format!("whsec_{}", of(64))] {
        let r = api
            .put(
                "/v1/session/push",
                Some(&desk.token),
                webhook(&rx.url, Some(&ok)),
            )
            .await;
        assert_eq!(r.status, 204, "{ok}: {}", r.body);
    }
    for bad in [
        format!("whsec_{}", of(23)),
        format!("whsec_{}", of(65)),
        of(33),
        "whsec_!!!not-base64!!!".to_owned(),
        "whsec_".to_owned(),
        String::new(),
    ] {
        let detail = api
            .put(
                "/v1/session/push",
                Some(&desk.token),
                webhook(&rx.url, Some(&bad)),
            )
            .await
            .assert_error(422, "invalid_field");
        assert!(detail.starts_with("secret"), "{bad:?}: {detail}");
        let detail = api
            .login_raw(
                &acc.slug,
                "ann@acme.test",
                "pw-ann-secret",
                "p2",
                webhook(&rx.url, Some(&bad)),
            )
            .await
            .assert_error(422, "invalid_field");
        assert!(detail.starts_with("push.secret"), "{bad:?}: {detail}");
    }
    // Only webhooks are signed: a secret with another provider is refused too.
    let detail = api
        .put(
            "/v1/session/push",
            Some(&desk.token),
            json!({"provider": "unifiedpush", "token": "https://push.example.org/up",
                   "p256dh": "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
                   "auth": "BTBZMqHH6r4Tts7J_aSIgg", "secret": SECRET}),
        )
        .await
        .assert_error(422, "invalid_field");
    assert!(detail.starts_with("secret"), "{detail}");
}

#[tokio::test]
async fn unifiedpush_targets_off_port_443_or_at_an_embedded_private_address_are_refused() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let (_acc, desk) = desk(&api).await;
    let reg = |url: &str| {
        json!({"provider": "unifiedpush", "token": url,
               "p256dh": "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
               "auth": "BTBZMqHH6r4Tts7J_aSIgg"})
    };
    let r = api
        .put(
            "/v1/session/push",
            Some(&desk.token),
            reg("https://push.example.org:443/up/1"),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    for (url, why) in [
        ("https://push.example.org:8443/up/1", "port 443"),
        ("https://8.8.8.8:80/up/1", "port 443"),
        ("https://[::ffff:0:10.0.0.1]/up/1", "not a public address"),
        ("https://[64:ff9b::a9fe:a9fe]/up/1", "not a public address"),
        ("https://[2002:7f00:1::1]/up/1", "not a public address"),
        ("https://[fec0::1]/up/1", "not a public address"),
    ] {
        let detail = api
            .put("/v1/session/push", Some(&desk.token), reg(url))
            .await
            .assert_error(422, "invalid_field");
        assert!(
            detail.starts_with("token") && detail.contains(why),
            "{url}: {detail}"
        );
    }
}

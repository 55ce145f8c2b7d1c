//! Push providers against wire-level doubles on loopback (`presence_test_support::push`):
//! FCM with its OAuth2 token endpoint over HTTPS, APNs over HTTP/2 with TLS, and a UnifiedPush
//! endpoint that decrypts with the device's key. The server trusts the doubles' test CA
//! through `--push-ca-file`. Every test ends by asserting the doubles saw only requests the
//! real services accept.

use std::time::Duration;

use presence_server::push::{ApnsConfig, FcmConfig};
use presence_test_support::push::apns::{self, ApnsDouble};
use presence_test_support::push::fcm::FcmDouble;
use presence_test_support::push::tls::TestCa;
use presence_test_support::push::unifiedpush::UnifiedPushDouble;
use presence_test_support::push::{Behaviour, Double};
use presence_test_support::*;
use serde_json::{Value, json};
use tokio::time::Instant;

struct Doubles {
    ca: TestCa,
    fcm: FcmDouble,
    apns: ApnsDouble,
    up: UnifiedPushDouble,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Provider {
    Fcm,
    Apns,
    UnifiedPush,
}

const ALL: [Provider; 3] = [Provider::Fcm, Provider::Apns, Provider::UnifiedPush];

impl Doubles {
    async fn start() -> Doubles {
        let ca = TestCa::new();
        let fcm = FcmDouble::start(&ca).await;
        let apns = ApnsDouble::start(&ca).await;
        let up = UnifiedPushDouble::start(&ca).await;
        Doubles { ca, fcm, apns, up }
    }

    /// A server with every provider configured against the doubles.
    async fn server(&self) -> TestServer {
        TestServer::with(|c| {
            c.push.fcm = Some(FcmConfig {
                credentials: self.fcm.credentials.clone(),
                endpoint: self.fcm.endpoint.clone(),
            });
            c.push.apns = Some(ApnsConfig {
                key: self.apns.key_file.clone(),
                key_id: apns::KEY_ID.into(),
                team_id: apns::TEAM_ID.into(),
                topic: apns::TOPIC.into(),
                endpoint: self.apns.endpoint.clone(),
            });
            c.push.ca_file = Some(self.ca.pem_path.clone());
        })
        .await
    }

    fn double(&self, p: Provider) -> &Double {
        match p {
            Provider::Fcm => &self.fcm.double,
            Provider::Apns => &self.apns.double,
            Provider::UnifiedPush => &self.up.double,
        }
    }

    /// The token a double knows the device by, for a device name.
    fn token(p: Provider, device: &str) -> String {
        match p {
            Provider::Fcm => format!("fcm-{device}:APA91b"),
            Provider::Apns => {
                let hex: String = device.bytes().map(|b| format!("{b:02x}")).collect();
                // The APNs double answers a dead token starting "bad" with 400 BadDeviceToken.
                let prefix = if device.starts_with("bad-") {
                    "bad0"
                } else {
                    ""
                };
                format!("{prefix}{}", hex.repeat(4))
            }
            Provider::UnifiedPush => format!("up-{device}"),
        }
    }

    /// The `push` body a device of that provider registers.
    fn registration(&self, p: Provider, device: &str) -> Value {
        let token = Self::token(p, device);
        match p {
            Provider::Fcm => json!({"provider": "fcm", "token": token}),
            Provider::Apns => json!({"provider": "apns", "token": token}),
            Provider::UnifiedPush => json!({
                "provider": "unifiedpush",
                "token": self.up.endpoint(&token),
                "p256dh": self.up.keys().p256dh(),
                "auth": self.up.keys().auth_b64(),
            }),
        }
    }

    fn assert_clean(&self) {
        for p in ALL {
            self.double(p).assert_no_violations();
        }
    }
}

/// An account with agent `ann` and short background leases.
async fn account(api: &Api, settings: Value) -> Account {
    let acc = api.create_account("acme").await;
    api.add_agent(&acc, "ann", &[]).await;
    let r = api
        .put("/v1/admin/settings", Some(&acc.owner_token), settings)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    acc
}

/// The doubles, a server configured for all of them, and an account with agent `ann`.
struct World {
    d: Doubles,
    _srv: TestServer,
    api: Api,
    acc: Account,
}

impl World {
    async fn start(settings: Value) -> World {
        let d = Doubles::start().await;
        let srv = d.server().await;
        let api = srv.api();
        let acc = account(&api, settings).await;
        World {
            d,
            _srv: srv,
            api,
            acc,
        }
    }
}

async fn phone(api: &Api, acc: &Account, d: &Doubles, p: Provider, device: &str) -> Session {
    let r = api
        .login_raw(
            &acc.slug,
            "ann@acme.test",
            "pw-ann-secret",
            device,
            d.registration(p, device),
        )
        .await;
    assert_eq!(r.status, 200, "login with {p:?} push: {}", r.body);
    Session::from_login(&r.body)
}

async fn heartbeat(api: &Api, s: &Session, mode: &str) -> Resp {
    api.post(
        "/v1/session/heartbeat",
        Some(&s.token),
        json!({ "mode": mode }),
    )
    .await
}

fn short_leases() -> Value {
    json!({"background_ttl_ms": 3000, "renew_margin_ms": 1500, "active_interval_ms": 200, "active_ttl_ms": 1000})
}

#[tokio::test]
async fn each_provider_delivers_the_renew_push_before_the_background_lease_ends_and_its_answer_keeps_the_agent_online()
 {
    let World { d, _srv, api, acc } = World::start(short_leases()).await;
    for p in ALL {
        let s = phone(&api, &acc, &d, p, &format!("phone-{p:?}")).await;
        assert_eq!(api.set_status(&s, "online").await.status, 200);
        let hb = heartbeat(&api, &s, "background").await;
        assert_eq!(hb.status, 200);
        let answered = Instant::now();
        let lease_left =
            hb.body["lease_until"].as_i64().unwrap() - hb.body["server_time"].as_i64().unwrap();
        assert_eq!(hb.body["ttl_ms"], 3000, "{p:?}: background terms with push");
        // Three lease periods kept by renew pushes alone.
        let mut lease_until = hb.body["lease_until"].as_i64().unwrap();
        let mut lease_end = answered + Duration::from_millis(lease_left as u64);
        for round in 0..3 {
            let push = d
                .double(p)
                .next_of("renew", DEADLINE)
                .await
                .unwrap_or_else(|| panic!("{p:?}: renew push {round}"));
            assert!(
                push.at < lease_end,
                "{p:?}: renew {round} arrived after the lease ended"
            );
            assert_eq!(push.payload["session_id"], s.session_id.as_str());
            assert_eq!(push.payload["lease_until"], lease_until);
            let hb = heartbeat(&api, &s, "background").await;
            assert_eq!(hb.status, 200, "{p:?}: the renew's heartbeat is in time");
            let next = hb.body["lease_until"].as_i64().unwrap();
            assert_eq!(next, lease_until + 3000, "{p:?}: renewed from the old end");
            lease_end += Duration::from_millis((next - lease_until) as u64);
            lease_until = next;
            let w = api.widget(&acc).await;
            assert_eq!(w["status"], "online", "{p:?}: the agent stays online");
        }
        if p == Provider::UnifiedPush {
            let push =
                d.up.double
                    .next_of("renew", DEADLINE)
                    .await
                    .expect("one more renew");
            assert_eq!(
                push.headers.get("urgency").map(String::as_str),
                Some("high")
            );
        }
        assert_eq!(api.delete("/v1/session", Some(&s.token)).await.status, 204);
    }
    d.assert_clean();
}

#[tokio::test]
async fn each_provider_carries_a_status_change_to_a_session_with_no_open_stream() {
    let World { d, _srv, api, acc } = World::start(json!({})).await;
    let desk = api.login_agent(&acc, "ann", "desk").await;
    let mut phones = Vec::new();
    for p in ALL {
        phones.push((p, phone(&api, &acc, &d, p, &format!("phone-{p:?}")).await));
    }
    assert_eq!(api.set_status(&desk, "busy").await.status, 200);
    for (p, s) in &phones {
        let push = d
            .double(*p)
            .next_of("status", DEADLINE)
            .await
            .expect("status push");
        assert_eq!(push.payload["session_id"], s.session_id.as_str(), "{p:?}");
        assert_eq!(push.payload["status"]["status"], "busy", "{p:?}");
        assert_eq!(push.payload["v"], 1);
        // What the app is handed is the payload itself, in each provider's form.
        let app: Value = serde_json::from_str(&push.app_bytes).unwrap();
        assert_eq!(app, push.payload, "{p:?}");
    }
    let push = d
        .apns
        .double
        .attempts(&Doubles::token(Provider::Apns, "phone-Apns"));
    assert_eq!(push.len(), 1);
    d.assert_clean();
}

#[tokio::test]
async fn each_provider_tells_a_session_it_ended_when_its_agent_is_removed() {
    let World { d, _srv, api, acc } = World::start(json!({})).await;
    let mut phones = Vec::new();
    for p in ALL {
        phones.push((p, phone(&api, &acc, &d, p, &format!("phone-{p:?}")).await));
    }
    let agent = phones[0].1.agent_id.clone();
    let r = api
        .delete(&format!("/v1/admin/agents/{agent}"), Some(&acc.owner_token))
        .await;
    assert_eq!(r.status, 204);
    for (p, s) in &phones {
        let push = d
            .double(*p)
            .next_of("session_ended", DEADLINE)
            .await
            .expect("end push");
        assert_eq!(push.payload["session_id"], s.session_id.as_str(), "{p:?}");
        assert_eq!(push.payload["reason"], "removed", "{p:?}");
    }
    d.assert_clean();
}

#[tokio::test]
async fn a_hundred_pushes_cost_one_oauth_token_and_one_apns_provider_token() {
    let World { d, _srv, api, acc } = World::start(json!({})).await;
    let desk = api.login_agent(&acc, "ann", "desk").await;
    phone(&api, &acc, &d, Provider::Fcm, "android").await;
    phone(&api, &acc, &d, Provider::Apns, "iphone").await;
    for i in 0..100 {
        let status = if i % 2 == 0 { "busy" } else { "online" };
        assert_eq!(api.set_status(&desk, status).await.status, 200);
    }
    eventually("100 pushes reach each double", DEADLINE * 2, || async {
        d.fcm.double.received_count() >= 100 && d.apns.double.received_count() >= 100
    })
    .await;
    assert_eq!(d.fcm.token_requests(), 1, "one OAuth token for 100 sends");
    assert_eq!(
        d.apns.provider_tokens(),
        1,
        "one provider token for 100 sends"
    );
    d.assert_clean();
}

async fn metric(api: &Api, line_start: &str) -> f64 {
    let page = api.get("/metrics", None).await;
    let text = page.body.as_str().unwrap_or_default().to_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_dead_token_removes_the_registration_and_the_session_falls_back_to_the_active_lease() {
    let World { d, _srv, api, acc } = World::start(json!({})).await;
    let desk = api.login_agent(&acc, "ann", "desk").await;
    // APNs twice: 410 Unregistered, and 400 BadDeviceToken (a token starting "bad").
    let cases = [
        (Provider::Fcm, "android"),
        (Provider::Apns, "iphone"),
        (Provider::Apns, "bad-phone"),
        (Provider::UnifiedPush, "up-phone"),
    ];
    let mut phones = Vec::new();
    for (p, device) in cases {
        let s = phone(&api, &acc, &d, p, device).await;
        let token = Doubles::token(p, device);
        d.double(p).set(&token, Behaviour::Gone);
        let hb = heartbeat(&api, &s, "background").await;
        assert_ne!(
            hb.body["ttl_ms"], 60_000,
            "{p:?}: background terms while registered"
        );
        phones.push((p, s));
    }
    assert_eq!(api.set_status(&desk, "busy").await.status, 200);
    for (p, s) in &phones {
        let sid = s.session_id.clone();
        eventually(&format!("{p:?} registration removed"), DEADLINE, || {
            let (api, token, sid) = (api.clone(), desk.token.clone(), sid.clone());
            async move {
                let me = api.get("/v1/me", Some(&token)).await;
                me.body["sessions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|x| x["session_id"] == sid.as_str() && x["push"].is_null())
            }
        })
        .await;
        let hb = heartbeat(&api, s, "background").await;
        assert_eq!(hb.status, 200);
        assert_eq!(
            hb.body["ttl_ms"], 60_000,
            "{p:?}: active lease once the token is gone"
        );
    }
    for (name, n) in [("fcm", 1.0), ("apns", 2.0), ("unifiedpush", 1.0)] {
        let v = metric(
            &api,
            &format!("presence_push_invalid_tokens_total{{provider=\"{name}\"}}"),
        )
        .await;
        assert_eq!(v, n, "{name} dead tokens counted");
    }
    d.assert_clean();
}

#[tokio::test]
async fn a_busy_provider_is_retried_after_its_retry_after() {
    let World { d, _srv, api, acc } = World::start(json!({})).await;
    let desk = api.login_agent(&acc, "ann", "desk").await;
    for p in ALL {
        let device = format!("phone-{p:?}");
        phone(&api, &acc, &d, p, &device).await;
        d.double(p).set(
            &Doubles::token(p, &device),
            Behaviour::Busy {
                times: 1,
                retry_after_secs: 2,
            },
        );
    }
    assert_eq!(api.set_status(&desk, "busy").await.status, 200);
    for p in ALL {
        let push = d
            .double(p)
            .next_of("status", DEADLINE)
            .await
            .expect("delivered on retry");
        let attempts = d
            .double(p)
            .attempts(&Doubles::token(p, &format!("phone-{p:?}")));
        assert_eq!(attempts.len(), 2, "{p:?}: one refusal, one retry");
        let waited = attempts[1] - attempts[0];
        assert!(
            waited >= Duration::from_millis(1900),
            "{p:?}: retried after {waited:?}, before Retry-After's 2 s"
        );
        assert!(push.at >= attempts[1]);
    }
    assert!(metric(&api, "presence_push_retries_total{provider=\"apns\"}").await >= 1.0);
    d.assert_clean();
}

#[tokio::test]
async fn a_provider_that_never_answers_delays_no_request_and_no_other_provider() {
    let World { d, _srv, api, acc } = World::start(json!({})).await;
    let desk = api.login_agent(&acc, "ann", "desk").await;
    phone(&api, &acc, &d, Provider::Apns, "iphone").await;
    phone(&api, &acc, &d, Provider::Fcm, "android").await;
    d.apns
        .double
        .set(&Doubles::token(Provider::Apns, "iphone"), Behaviour::Hang);
    // Many changes while APNs hangs on each: every request is answered, FCM gets each push.
    for i in 0..20 {
        let status = if i % 2 == 0 { "busy" } else { "online" };
        let r = api.set_status(&desk, status).await;
        assert_eq!(r.status, 200);
    }
    eventually("FCM gets all 20 while APNs hangs", DEADLINE, || async {
        d.fcm.double.received_count() >= 20
    })
    .await;
    assert!(
        !d.apns
            .double
            .attempts(&Doubles::token(Provider::Apns, "iphone"))
            .is_empty()
    );
    assert_eq!(d.apns.double.received_count(), 0);
    let hb = heartbeat(&api, &desk, "active").await;
    assert_eq!(hb.status, 200);
    d.assert_clean();
}

#[tokio::test]
async fn registration_refuses_a_provider_the_server_is_not_configured_for() {
    let d = Doubles::start().await;
    let srv = TestServer::start().await; // no --fcm-*, no --apns-*
    let api = srv.api();
    let acc = account(&api, json!({})).await;
    let s = api.login_agent(&acc, "ann", "desk").await;
    for p in [Provider::Fcm, Provider::Apns] {
        let r = api
            .put(
                "/v1/session/push",
                Some(&s.token),
                d.registration(p, "phone-x"),
            )
            .await;
        let detail = r.assert_error(422, "invalid_field");
        assert!(detail.starts_with("provider"), "{detail}");
        let r = api
            .login_raw(
                &acc.slug,
                "ann@acme.test",
                "pw-ann-secret",
                "p2",
                d.registration(p, "phone-x"),
            )
            .await;
        let detail = r.assert_error(422, "invalid_field");
        assert!(detail.starts_with("push.provider"), "{detail}");
    }
    // UnifiedPush is always available, within its target rules and with its keys.
    let up = d.registration(Provider::UnifiedPush, "phone-x");
    let r = api
        .put("/v1/session/push", Some(&s.token), up.clone())
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let mut bad = up.clone();
    bad["token"] = json!("http://push.example.org/up/1");
    let detail = api
        .put("/v1/session/push", Some(&s.token), bad)
        .await
        .assert_error(422, "invalid_field");
    assert!(detail.starts_with("token"), "{detail}");
    let mut bad = up.clone();
    bad["token"] = json!("https://10.1.2.3/up/1");
    api.put("/v1/session/push", Some(&s.token), bad)
        .await
        .assert_error(422, "invalid_field");
    for (field, value) in [
        ("p256dh", json!(null)),
        ("p256dh", json!("AAAA")),
        ("auth", json!("AAAA")),
    ] {
        let mut bad = up.clone();
        bad[field] = value;
        let detail = api
            .put("/v1/session/push", Some(&s.token), bad)
            .await
            .assert_error(422, "invalid_field");
        assert!(detail.starts_with(field), "{detail}");
    }
    // The configured server takes both, and checks their token forms.
    let srv = d.server().await;
    let api = srv.api();
    let acc = account(&api, json!({})).await;
    let s = api.login_agent(&acc, "ann", "desk").await;
    for p in [Provider::Fcm, Provider::Apns] {
        let r = api
            .put(
                "/v1/session/push",
                Some(&s.token),
                d.registration(p, "phone-x"),
            )
            .await;
        assert_eq!(r.status, 204, "{p:?}: {}", r.body);
    }
    let r = api
        .put(
            "/v1/session/push",
            Some(&s.token),
            json!({"provider": "apns", "token": "not hex"}),
        )
        .await;
    assert!(r.assert_error(422, "invalid_field").starts_with("token"));
}

#[tokio::test]
async fn push_metrics_are_kept_per_provider() {
    let World { d, _srv, api, acc } = World::start(json!({})).await;
    let desk = api.login_agent(&acc, "ann", "desk").await;
    for p in ALL {
        phone(&api, &acc, &d, p, &format!("phone-{p:?}")).await;
    }
    assert_eq!(api.set_status(&desk, "busy").await.status, 200);
    for p in ALL {
        d.double(p)
            .next_of("status", DEADLINE)
            .await
            .expect("status push");
    }
    for name in ["fcm", "apns", "unifiedpush"] {
        let sends = format!("presence_push_sends_total{{provider=\"{name}\"}}");
        let count = format!("presence_push_latency_seconds_count{{provider=\"{name}\"}}");
        let api = api.clone();
        eventually(&sends, DEADLINE, || {
            let (api, sends) = (api.clone(), sends.clone());
            async move { metric(&api, &sends).await >= 1.0 }
        })
        .await;
        assert!(metric(&api, &count).await >= 1.0, "{count}");
    }
    assert_eq!(
        metric(&api, "presence_push_failures_total{provider=\"apns\"}").await,
        0.0
    );
    d.assert_clean();
}

#[tokio::test]
async fn a_key_file_that_cannot_be_read_stops_the_server_with_the_flag_and_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.json");
    let garbage = dir.path().join("garbage.p8");
    std::fs::write(&garbage, "not a key").unwrap();
    type Tweak<'a> = Box<dyn Fn(&mut presence_server::Config) + 'a>;
    let cases: [(&str, Tweak); 3] = [
        (
            "--fcm-credentials",
            Box::new(|c| {
                c.push.fcm = Some(FcmConfig {
                    credentials: missing.clone(),
                    endpoint: "https://fcm.example".into(),
                })
            }),
        ),
        (
            "--apns-key",
            Box::new(|c| {
                c.push.apns = Some(ApnsConfig {
                    key: garbage.clone(),
                    key_id: apns::KEY_ID.into(),
                    team_id: apns::TEAM_ID.into(),
                    topic: apns::TOPIC.into(),
                    endpoint: "https://apns.example".into(),
                })
            }),
        ),
        (
            "--push-ca-file",
            Box::new(|c| c.push.ca_file = Some(garbage.clone())),
        ),
    ];
    for (flag, tweak) in cases {
        let data = tempfile::tempdir().unwrap();
        let mut cfg = presence_server::Config::for_tests(data.path());
        tweak(&mut cfg);
        let err = presence_server::start(cfg)
            .await
            .err()
            .unwrap_or_else(|| panic!("{flag}: the server started"))
            .to_string();
        assert!(err.contains(flag), "{flag}: {err}");
    }
}

/// What a flood answer may have put on the wire before the server hung up: the 64 KiB it
/// reads plus socket and protocol buffers, far below the 64 MiB a flood holds.
const FLOOD_READ_LIMIT: u64 = 16 << 20;

#[tokio::test]
async fn an_oversized_answer_from_any_provider_is_read_no_further_than_64_kib_and_the_push_fails_unretried()
 {
    let World { d, _srv, api, acc } = World::start(json!({})).await;
    let desk = api.login_agent(&acc, "ann", "desk").await;
    for p in ALL {
        let device = format!("phone-{p:?}");
        phone(&api, &acc, &d, p, &device).await;
        d.double(p)
            .set(&Doubles::token(p, &device), Behaviour::Flood);
    }
    let hook = WebhookReceiver::flooding().await;
    let r = api
        .login_raw(
            &acc.slug,
            "ann@acme.test",
            "pw-ann-secret",
            "phone-hook",
            json!({"provider": "webhook", "token": hook.url}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(api.set_status(&desk, "busy").await.status, 200);
    for name in ["fcm", "apns", "unifiedpush", "webhook"] {
        let failures = format!("presence_push_failures_total{{provider=\"{name}\"}}");
        eventually(&failures, DEADLINE, || {
            let (api, failures) = (api.clone(), failures.clone());
            async move { metric(&api, &failures).await >= 1.0 }
        })
        .await;
        let retries = format!("presence_push_retries_total{{provider=\"{name}\"}}");
        assert_eq!(
            metric(&api, &retries).await,
            0.0,
            "{name}: an oversized answer is a failure, not a busy provider"
        );
    }
    for p in ALL {
        let sent = d.double(p).flooded_bytes();
        assert!(
            sent < FLOOD_READ_LIMIT,
            "{p:?}: the server took {sent} bytes of the answer"
        );
    }
    let sent = hook.flooded_bytes();
    assert!(
        sent < FLOOD_READ_LIMIT,
        "webhook: the server took {sent} bytes of the answer"
    );
    d.assert_clean();
}

#[tokio::test]
async fn one_accounts_hung_targets_fill_only_its_share_and_another_accounts_pushes_go_out_promptly()
{
    let World { d, _srv, api, acc } = World::start(json!({})).await;
    let desk = api.login_agent(&acc, "ann", "desk").await;
    // 19 phones (with the desk, the most live sessions an agent has) whose endpoints never
    // answer; 30 changes make 570 pushes, more than the 512 requests the provider may have in
    // flight, and far more than the account's tenth.
    for i in 0..19 {
        let device = format!("hung-{i}");
        phone(&api, &acc, &d, Provider::UnifiedPush, &device).await;
        d.up.double.set(
            &Doubles::token(Provider::UnifiedPush, &device),
            Behaviour::Hang,
        );
    }
    for i in 0..30 {
        let status = if i % 2 == 0 { "busy" } else { "online" };
        assert_eq!(api.set_status(&desk, status).await.status, 200);
    }
    eventually("the hung account fills its share", DEADLINE, || async {
        d.up.double.attempts_total() >= 51
    })
    .await;
    // Another account's push goes out at once.
    let other = api.create_account("other").await;
    api.add_agent(&other, "bob", &[]).await;
    let bob_desk = api.login_agent(&other, "bob", "desk").await;
    let token = Doubles::token(Provider::UnifiedPush, "bob-phone");
    let r = api
        .login_raw(
            &other.slug,
            "bob@other.test",
            "pw-bob-secret",
            "bob-phone",
            json!({"provider": "unifiedpush", "token": d.up.endpoint(&token),
                   "p256dh": d.up.keys().p256dh(), "auth": d.up.keys().auth_b64()}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(api.set_status(&bob_desk, "busy").await.status, 200);
    let push =
        d.up.double
            .next_of("status", Duration::from_secs(5))
            .await
            .expect("the other account's push goes out promptly");
    assert_eq!(push.token, token);
    d.assert_clean();
}

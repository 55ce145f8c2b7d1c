//! The customer's identity over HTTP: sign-in settings, `POST /v1/login/token` with HS256,
//! RS256 and ES256 tokens (every claim rule and refusal), JWKS by URL from a loopback double
//! (cache, unknown-kid refetch, slow and huge answers), finding, linking and provisioning
//! agents, `password_login: false`, API keys and the sessions an admin or key opens. Runs on
//! both backends (`PRESENCE_TEST_BACKEND=cluster`).

use std::time::{Duration, Instant};

use presence_test_support::idp::{self, Answer, EcKey, JwksServer, RsaKey, now};
use presence_test_support::*;
use serde_json::{Value, json};

const ISS: &str = "https://id.customer.test";
const AUD: &str = "presence";
const SECRET: &str = "a-shared-secret-of-at-least-32-bytes!";

fn device(id: &str) -> Value {
    json!({"id": id, "platform": "web", "name": id, "app_version": "1"})
}

/// Claims that pass every check, for `sub`.
fn good(sub: &str) -> Value {
    json!({"iss": ISS, "aud": AUD, "sub": sub, "exp": now() + 600, "iat": now()})
}

/// Claims that pass every check and provision an agent for `sub` where provisioning is on.
fn provisions(sub: &str) -> Value {
    let mut c = good(sub);
    c["email"] = json!(format!("{sub}@customer.test"));
    c
}

fn with(mut claims: Value, f: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    f(claims.as_object_mut().expect("claims object"));
    claims
}

async fn put_sign_in(api: &Api, token: &str, body: Value) -> api::Resp {
    api.put("/v1/admin/sign-in", Some(token), body).await
}

async fn hs256_account(api: &Api, slug: &str, provision: bool) -> Account {
    let acc = api.create_account(slug).await;
    let r = put_sign_in(
        api,
        &acc.owner_token,
        json!({"jwt": {"issuer": ISS, "audience": AUD, "hs256_secret": SECRET},
               "password_login": true, "provision": provision}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    acc
}

async fn sign_in(api: &Api, slug: &str, token: &str, dev: &str) -> api::Resp {
    api.post(
        "/v1/login/token",
        None,
        json!({"account": slug, "token": token, "device": device(dev)}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_settings_are_the_owners_validated_and_shown_without_the_secret() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let acc = hs256_account(&api, "settings", false).await;
    let r = api.get("/v1/admin/account", Some(&acc.owner_token)).await;
    assert_eq!(
        r.body["sign_in"],
        json!({"jwt": {"issuer": ISS, "audience": AUD, "hs256_secret_set": true,
                       "jwks": null, "jwks_url": null},
               "password_login": true, "provision": false})
    );
    assert!(
        !r.body.to_string().contains(SECRET),
        "the secret is never shown"
    );

    let owner = acc.owner_token.as_str();
    let jwt = |extra: Value| {
        let mut j = json!({"issuer": ISS, "audience": AUD});
        for (k, v) in extra.as_object().unwrap() {
            j[k] = v.clone();
        }
        json!({"jwt": j, "password_login": true, "provision": false})
    };
    let ec = EcKey::new("k1");
    let cases = [
        (
            jwt(json!({"hs256_secret": SECRET, "jwks_url": "https://id.customer.test/j"})),
            "jwt.hs256_secret",
        ),
        (jwt(json!({})), "jwt.jwks_url"),
        (
            jwt(json!({"jwks": {"keys": [ec.jwk()]}, "jwks_url": "https://a.test/j"})),
            "jwt.jwks",
        ),
        (jwt(json!({"jwks": {"keys": "none"}})), "jwt.jwks"),
        (
            jwt(json!({"jwks": {"keys": [{"kty": "EC", "crv": "P-256", "x": "AA"}]}})),
            "jwt.jwks",
        ),
        (jwt(json!({"jwks": {"keys": []}})), "jwt.jwks"),
        // Outbound rules: private, loopback by name, plain http, another port.
        (
            jwt(json!({"jwks_url": "https://10.0.0.1/jwks"})),
            "jwt.jwks_url",
        ),
        (
            jwt(json!({"jwks_url": "https://169.254.169.254/jwks"})),
            "jwt.jwks_url",
        ),
        (
            jwt(json!({"jwks_url": "http://id.customer.example/jwks"})),
            "jwt.jwks_url",
        ),
        (
            jwt(json!({"jwks_url": "https://id.customer.example:8443/jwks"})),
            "jwt.jwks_url",
        ),
        (jwt(json!({"jwks_url": "not a url"})), "jwt.jwks_url"),
        (
            json!({"jwt": {"issuer": "", "audience": AUD, "hs256_secret": SECRET}}),
            "jwt.issuer",
        ),
        (
            json!({"jwt": {"issuer": ISS, "audience": " ", "hs256_secret": SECRET}}),
            "jwt.audience",
        ),
        (
            json!({"jwt": {"issuer": ISS, "audience": AUD, "hs256_secret": "short"}}),
            "jwt.hs256_secret",
        ),
        (
            json!({"jwt": {"audience": AUD, "hs256_secret": SECRET}}),
            "jwt.issuer",
        ),
    ];
    for (body, field) in cases {
        let r = put_sign_in(&api, owner, body.clone()).await;
        let detail = r.assert_error(422, "invalid_field");
        assert!(detail.starts_with(field), "{body}: {detail}");
    }
    // Nothing refused changed anything.
    let r = api.get("/v1/admin/account", Some(owner)).await;
    assert_eq!(r.body["sign_in"]["jwt"]["hs256_secret_set"], true);

    // An admin's session is not enough.
    api.post(
        "/v1/admin/agents",
        Some(owner),
        json!({"name": "Ada", "email": "ada@settings.test", "password": "pw-ada-secret",
               "role": "admin"}),
    )
    .await;
    let admin = api
        .login("settings", "ada@settings.test", "pw-ada-secret", "ada")
        .await;
    put_sign_in(&api, &admin.token, jwt(json!({"hs256_secret": SECRET})))
        .await
        .assert_error(403, "forbidden");

    // An inline JWKS is shown (public keys), and `jwt: null` turns token sign-in off.
    let r = put_sign_in(&api, owner, jwt(json!({"jwks": {"keys": [ec.jwk()]}}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["jwt"]["jwks"]["keys"][0]["kid"], "k1");
    assert_eq!(r.body["jwt"]["hs256_secret_set"], false);
    let r = put_sign_in(&api, owner, json!({"jwt": null, "password_login": true})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let t = ec.sign(&good("u1"));
    sign_in(&api, "settings", &t, "d1")
        .await
        .assert_error(401, "invalid_credentials");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hs256_token_signs_in_like_a_login_and_every_bad_token_is_refused() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let acc = hs256_account(&api, "hs", true).await;
    let claims = with(good("user-1"), |c| {
        c.insert("email".into(), json!("one@customer.test"));
    });
    let r = sign_in(&api, "hs", &idp::hs256(SECRET, &claims), "d1").await;
    assert_eq!(r.status, 200, "{}", r.body);
    for field in [
        "token",
        "session_id",
        "agent",
        "status",
        "heartbeat",
        "server_time",
    ] {
        assert!(!r.body[field].is_null(), "{field} in {}", r.body);
    }
    assert_eq!(r.body["agent"]["email"], "one@customer.test");
    let token = r.body["token"].as_str().unwrap();
    assert_eq!(api.get("/v1/me", Some(token)).await.status, 200);

    // Within the 60 s leeway: accepted.
    let lenient = with(good("user-1"), |c| {
        c.insert("exp".into(), json!(now() - 30));
        c.insert("nbf".into(), json!(now() + 30));
        c.insert("iat".into(), json!(now() + 30));
    });
    let r = sign_in(&api, "hs", &idp::hs256(SECRET, &lenient), "d1").await;
    assert_eq!(r.status, 200, "{}", r.body);

    let rsa = RsaKey::new("r1");
    let ec = EcKey::new("e1");
    // Each case under a user of its own: refusals fill that user's login window.
    let bad = |s: &str| -> Vec<(&str, String)> {
        vec![
            ("no signature (alg none)", idp::unsigned(&provisions(s))),
            (
                "alg none with a signature",
                idp::hs256_with(SECRET, &json!({"alg": "none"}), &provisions(s)),
            ),
            (
                "HS384",
                idp::hs256_with(SECRET, &json!({"alg": "HS384"}), &provisions(s)),
            ),
            (
                "HS512",
                idp::hs256_with(SECRET, &json!({"alg": "HS512"}), &provisions(s)),
            ),
            (
                "lower-case alg",
                idp::hs256_with(SECRET, &json!({"alg": "hs256"}), &provisions(s)),
            ),
            (
                "another secret",
                idp::hs256("another-secret-of-at-least-32-bytes!!", &provisions(s)),
            ),
            ("RS256 on an HS256 account", rsa.sign(&provisions(s))),
            ("ES256 on an HS256 account", ec.sign(&provisions(s))),
            (
                "expired",
                idp::hs256(
                    SECRET,
                    &with(provisions(s), |c| {
                        c.insert("exp".into(), json!(now() - 120));
                    }),
                ),
            ),
            (
                "not yet valid",
                idp::hs256(
                    SECRET,
                    &with(provisions(s), |c| {
                        c.insert("nbf".into(), json!(now() + 120));
                    }),
                ),
            ),
            (
                "issued in the future",
                idp::hs256(
                    SECRET,
                    &with(provisions(s), |c| {
                        c.insert("iat".into(), json!(now() + 120));
                    }),
                ),
            ),
            (
                "wrong iss",
                idp::hs256(
                    SECRET,
                    &with(provisions(s), |c| {
                        c.insert("iss".into(), json!("https://evil.test"));
                    }),
                ),
            ),
            (
                "wrong aud",
                idp::hs256(
                    SECRET,
                    &with(provisions(s), |c| {
                        c.insert("aud".into(), json!("someone-else"));
                    }),
                ),
            ),
            (
                "no iss",
                idp::hs256(
                    SECRET,
                    &with(provisions(s), |c| {
                        c.remove("iss");
                    }),
                ),
            ),
            (
                "no aud",
                idp::hs256(
                    SECRET,
                    &with(provisions(s), |c| {
                        c.remove("aud");
                    }),
                ),
            ),
            (
                "no sub",
                idp::hs256(
                    SECRET,
                    &with(provisions(s), |c| {
                        c.remove("sub");
                    }),
                ),
            ),
            (
                "empty sub",
                idp::hs256(
                    SECRET,
                    &with(provisions(s), |c| {
                        c.insert("sub".into(), json!(""));
                    }),
                ),
            ),
            (
                "sub not a string",
                idp::hs256(
                    SECRET,
                    &with(provisions(s), |c| {
                        c.insert("sub".into(), json!(42));
                    }),
                ),
            ),
            (
                "no exp",
                idp::hs256(
                    SECRET,
                    &with(provisions(s), |c| {
                        c.remove("exp");
                    }),
                ),
            ),
            ("not a JWT", "not-a-jwt".to_owned()),
            ("three junk parts", "a.b.c".to_owned()),
            ("empty", String::new()),
        ]
    };
    let n = bad("x").len();
    // The control: each case's claims, signed right, sign in (so a refusal below is the
    // case's own fault).
    let r = sign_in(
        &api,
        "hs",
        &idp::hs256(SECRET, &provisions("control")),
        "d1",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    for i in 0..n {
        let (what, token) = bad(&format!("bad-{i}")).swap_remove(i);
        let r = sign_in(&api, "hs", &token, "d1").await;
        assert_eq!(r.status, 401, "{what}: {}", r.body);
        r.assert_error(401, "invalid_credentials");
    }
    // A tampered payload with the original signature.
    let good_token = idp::hs256(SECRET, &good("user-1"));
    let parts: Vec<&str> = good_token.split('.').collect();
    let forged_claims = with(good("user-1"), |c| {
        c.insert("role".into(), json!("admin"));
    });
    let forged = idp::token(&json!({"alg": "HS256"}), &forged_claims, |_| Vec::new());
    let forged: Vec<&str> = forged.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], forged[1], parts[2]);
    sign_in(&api, "hs", &tampered, "d1")
        .await
        .assert_error(401, "invalid_credentials");
    // Unknown account: the same answer.
    sign_in(&api, "nope", &good_token, "d1")
        .await
        .assert_error(401, "invalid_credentials");
    // Bad input that is not a token's fault is still a clear 422.
    let r = api
        .post(
            "/v1/login/token",
            None,
            json!({"account": "hs", "token": good_token}),
        )
        .await;
    r.assert_error(422, "invalid_field");
    drop(acc);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_and_es256_tokens_are_checked_with_the_jwks_key_their_kid_names() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let acc = api.create_account("pk").await;
    let (rsa, ec, ec2) = (RsaKey::new("rsa-1"), EcKey::new("ec-1"), EcKey::new("ec-2"));
    let r = put_sign_in(
        &api,
        &acc.owner_token,
        json!({"jwt": {"issuer": ISS, "audience": AUD,
                       "jwks": {"keys": [rsa.jwk(), ec.jwk(), ec2.jwk(),
                                         {"kty": "OKP", "crv": "Ed25519", "x": "AA"}]}},
               "provision": true}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let claims = with(good("u-pk"), |c| {
        c.insert("email".into(), json!("pk@customer.test"));
    });
    assert_eq!(
        sign_in(&api, "pk", &rsa.sign(&claims), "d").await.status,
        200
    );
    assert_eq!(
        sign_in(&api, "pk", &ec.sign(&claims), "d").await.status,
        200
    );
    assert_eq!(
        sign_in(&api, "pk", &ec2.sign(&claims), "d").await.status,
        200
    );

    let bad = [
        // Unknown kid.
        ec.sign_with(&json!({"alg": "ES256", "kid": "nope"}), &claims),
        // The kid of a key of another algorithm.
        ec.sign_with(&json!({"alg": "ES256", "kid": "rsa-1"}), &claims),
        // Signed by ec-2's twin name: another key under ec-1's kid.
        EcKey::new("ec-1").sign(&claims),
        // No kid with two P-256 keys: which one is ambiguous.
        ec.sign_with(&json!({"alg": "ES256"}), &claims),
        // RS256 header, ES256 signature.
        ec.sign_with(&json!({"alg": "RS256", "kid": "rsa-1"}), &claims),
        // HS256 with the RSA public key as the secret (algorithm confusion).
        idp::hs256_with(
            rsa.jwk()["n"].as_str().unwrap(),
            &json!({"alg": "HS256", "kid": "rsa-1"}),
            &claims,
        ),
        // PS256 and ES384 are not accepted.
        rsa.sign_with(&json!({"alg": "PS256", "kid": "rsa-1"}), &claims),
        ec.sign_with(&json!({"alg": "ES384", "kid": "ec-1"}), &claims),
    ];
    for (i, token) in bad.iter().enumerate() {
        let r = sign_in(&api, "pk", token, "d").await;
        assert_eq!(r.status, 401, "case {i}: {}", r.body);
        r.assert_error(401, "invalid_credentials");
    }
    // No kid with exactly one RSA key: that key.
    let r = sign_in(
        &api,
        "pk",
        &rsa.sign_with(&json!({"alg": "RS256"}), &claims),
        "d",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_url_is_cached_as_cache_control_says_and_an_unknown_kid_refetches_once_a_minute() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let (k1, k2, k3) = (EcKey::new("k1"), EcKey::new("k2"), EcKey::new("k3"));
    let jwks = JwksServer::start(vec![k1.jwk()], Some("public, max-age=3600")).await;
    let acc = api.create_account("url").await;
    let r = put_sign_in(
        &api,
        &acc.owner_token,
        json!({"jwt": {"issuer": ISS, "audience": AUD, "jwks_url": jwks.url},
               "provision": true}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(jwks.hits(), 0, "setting a URL fetches nothing");
    let claims = with(good("u-url"), |c| {
        c.insert("email".into(), json!("url@customer.test"));
    });
    for _ in 0..3 {
        assert_eq!(
            sign_in(&api, "url", &k1.sign(&claims), "d").await.status,
            200
        );
    }
    assert_eq!(jwks.hits(), 1, "fetched once, then cached for max-age");

    // The issuer rotates: an unknown kid refetches at once.
    jwks.set_keys(vec![k1.jwk(), k2.jwk()]);
    assert_eq!(
        sign_in(&api, "url", &k2.sign(&claims), "d").await.status,
        200
    );
    assert_eq!(jwks.hits(), 2);
    // Within the minute, more unknown kids are refused from the cache, fetching nothing,
    // even when the URL has them by now.
    jwks.set_keys(vec![k1.jwk(), k2.jwk(), k3.jwk()]);
    for _ in 0..5 {
        sign_in(&api, "url", &k3.sign(&claims), "d")
            .await
            .assert_error(401, "invalid_credentials");
    }
    assert_eq!(jwks.hits(), 2, "at most one unknown-kid refetch a minute");
    assert_eq!(
        sign_in(&api, "url", &k2.sign(&claims), "d").await.status,
        200
    );
    assert_eq!(jwks.hits(), 2);

    // `no-store`: fetched for every sign-in.
    let fresh = JwksServer::start(vec![k1.jwk()], Some("no-store")).await;
    let acc2 = api.create_account("url2").await;
    put_sign_in(
        &api,
        &acc2.owner_token,
        json!({"jwt": {"issuer": ISS, "audience": AUD, "jwks_url": fresh.url},
               "provision": true}),
    )
    .await;
    for i in 1..=3 {
        assert_eq!(
            sign_in(&api, "url2", &k1.sign(&claims), "d").await.status,
            200
        );
        assert_eq!(fresh.hits(), i);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_or_huge_jwks_url_is_refused_without_delaying_other_sign_ins() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let key = EcKey::new("k");
    let slow = JwksServer::start(vec![key.jwk()], None).await;
    slow.set_answer(Answer::Silent);
    let huge = JwksServer::start(vec![key.jwk()], None).await;
    huge.set_answer(Answer::Huge(200 * 1024));
    for (slug, url) in [("slow", &slow.url), ("huge", &huge.url)] {
        let acc = api.create_account(slug).await;
        let r = put_sign_in(
            &api,
            &acc.owner_token,
            json!({"jwt": {"issuer": ISS, "audience": AUD, "jwks_url": url}, "provision": true}),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    hs256_account(&api, "quick", true).await;
    let claims = with(good("u"), |c| {
        c.insert("email".into(), json!("u@customer.test"));
    });

    let started = Instant::now();
    let pending = {
        let (api, t) = (api.clone(), key.sign(&claims));
        tokio::spawn(async move { sign_in(&api, "slow", &t, "d").await })
    };
    wait::eventually("the slow JWKS URL is asked", wait::DEADLINE, || async {
        slow.hits() == 1
    })
    .await;
    // While that fetch hangs, sign-ins of other accounts go on at once.
    for i in 0..3 {
        let t = Instant::now();
        let r = sign_in(
            &api,
            "quick",
            &idp::hs256(SECRET, &claims),
            &format!("q{i}"),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }
    assert!(!pending.is_finished(), "the slow sign-in still waits");
    let r = pending.await.unwrap();
    r.assert_error(401, "invalid_credentials");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(20),
        "bounded by the fetch timeout: {waited:?}"
    );

    // More than 64 KiB: refused, not read on.
    sign_in(&api, "huge", &key.sign(&claims), "d")
        .await
        .assert_error(401, "invalid_credentials");
    assert_eq!(huge.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_are_found_by_sub_then_by_email_linked_provisioned_and_follow_their_claims() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let acc = hs256_account(&api, "link", false).await;
    api.put_groups(&acc, &[("sales", "Sales"), ("support", "Support")])
        .await;
    let ada = api.add_agent(&acc, "ada", &["sales"]).await;
    let tok = |claims: Value| idp::hs256(SECRET, &claims);
    let email = |sub: &str, email: &str| {
        with(good(sub), |c| {
            c.insert("email".into(), json!(email));
        })
    };

    // Without provision, an unknown user is refused.
    sign_in(&api, "link", &tok(email("u-new", "new@link.test")), "d")
        .await
        .assert_error(401, "invalid_credentials");
    // By email (any case): Ada, now linked to her sub.
    let r = sign_in(&api, "link", &tok(email("u-ada", "ADA@link.test")), "d").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["agent"]["id"], ada);
    // By sub, whatever email the token now says.
    let r = sign_in(
        &api,
        "link",
        &tok(email("u-ada", "ada@elsewhere.test")),
        "d",
    )
    .await;
    assert_eq!(r.body["agent"]["id"], ada, "{}", r.body);
    assert_eq!(r.body["agent"]["email"], "ada@link.test");
    // Another user claiming Ada's email cannot take her over.
    sign_in(&api, "link", &tok(email("u-mallory", "ada@link.test")), "d")
        .await
        .assert_error(401, "invalid_credentials");
    // The admin session route finds her by sub.
    let r = api
        .post(
            "/v1/admin/sessions",
            Some(&acc.owner_token),
            json!({"agent": {"sub": "u-ada"}, "device": device("backend")}),
        )
        .await;
    assert_eq!(r.body["agent"]["id"], ada, "{}", r.body);

    // Name, groups and role follow the claims present at each sign-in.
    let claims = with(good("u-ada"), |c| {
        c.insert("name".into(), json!("Ada L."));
        c.insert("groups".into(), json!(["support", "unknown", "support"]));
        c.insert("role".into(), json!("admin"));
    });
    let r = sign_in(&api, "link", &tok(claims), "d").await;
    assert_eq!(
        (
            &r.body["agent"]["name"],
            &r.body["agent"]["groups"],
            &r.body["agent"]["role"]
        ),
        (&json!("Ada L."), &json!(["support"]), &json!("admin")),
        "{}",
        r.body
    );
    // Claims absent: unchanged. `owner` is never granted.
    let claims = with(good("u-ada"), |c| {
        c.insert("role".into(), json!("owner"));
    });
    let r = sign_in(&api, "link", &tok(claims), "d").await;
    assert_eq!(r.body["agent"]["role"], "admin", "{}", r.body);
    assert_eq!(r.body["agent"]["groups"], json!(["support"]));
    // An owner stays owner whatever the token says.
    let claims = with(email("u-owner", &acc.email), |c| {
        c.insert("role".into(), json!("agent"));
    });
    let r = sign_in(&api, "link", &tok(claims), "o").await;
    assert_eq!(r.body["agent"]["role"], "owner", "{}", r.body);

    // With provision: a new agent from the claims; without an email claim, none.
    put_sign_in(
        &api,
        &acc.owner_token,
        json!({"jwt": {"issuer": ISS, "audience": AUD, "hs256_secret": SECRET},
               "provision": true}),
    )
    .await;
    sign_in(&api, "link", &tok(good("u-anon")), "d")
        .await
        .assert_error(401, "invalid_credentials");
    let claims = with(email("u-new", "new@link.test"), |c| {
        c.insert("name".into(), json!("Newton"));
        c.insert("groups".into(), json!(["sales"]));
    });
    let r = sign_in(&api, "link", &tok(claims), "n").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (
            &r.body["agent"]["name"],
            &r.body["agent"]["groups"],
            &r.body["agent"]["role"]
        ),
        (&json!("Newton"), &json!(["sales"]), &json!("agent"))
    );
    let new_id = r.body["agent"]["id"].clone();
    // Once: the next sign-in finds it by sub.
    let r = sign_in(&api, "link", &tok(email("u-new", "new@link.test")), "n").await;
    assert_eq!(r.body["agent"]["id"], new_id);
    let agents = api
        .get("/v1/admin/account", Some(&acc.owner_token))
        .await
        .body["agents"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(agents, 3, "owner, ada, newton");
    // A provisioned agent has no password to log in with.
    let r = api
        .login_raw("link", "new@link.test", "", "p", Value::Null)
        .await;
    r.assert_error(401, "invalid_credentials");

    // Linking survives a restart (stored with the agent).
    let mut srv = srv;
    srv.restart().await;
    let r = sign_in(&api, "link", &tok(good("u-ada")), "d").await;
    assert_eq!(r.body["agent"]["id"], ada, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_password_login_off_a_password_login_is_forbidden_for_that_account_only() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let acc = hs256_account(&api, "tokens-only", true).await;
    let other = api.create_account("passwords").await;
    let r = put_sign_in(
        &api,
        &acc.owner_token,
        json!({"jwt": {"issuer": ISS, "audience": AUD, "hs256_secret": SECRET},
               "password_login": false, "provision": true}),
    )
    .await;
    assert_eq!(r.body["password_login"], false, "{}", r.body);
    api.login_raw("tokens-only", &acc.email, &acc.password, "x", Value::Null)
        .await
        .assert_error(403, "forbidden");
    api.login_raw(
        "tokens-only",
        &acc.email,
        "wrong-password",
        "x",
        Value::Null,
    )
    .await
    .assert_error(403, "forbidden");
    api.login(&other.slug, &other.email, &other.password, "x")
        .await;
    // Tokens still sign in; sessions opened before keep working.
    let claims = with(good("u-o"), |c| {
        c.insert("email".into(), json!(acc.email));
    });
    assert_eq!(
        sign_in(&api, "tokens-only", &idp::hs256(SECRET, &claims), "t")
            .await
            .status,
        200
    );
    assert_eq!(api.get("/v1/me", Some(&acc.owner_token)).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_act_as_admins_on_admin_routes_but_not_on_sign_in_or_api_keys() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let acc = api.create_account("keys").await;
    let owner = acc.owner_token.as_str();
    let r = api
        .post("/v1/admin/api-keys", Some(owner), json!({"name": "CRM"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let key = r.body["key"].as_str().unwrap().to_owned();
    let key_id = r.body["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("pk_"), "{key}");
    assert_eq!(r.body["name"], "CRM");
    assert!(r.body["created_at"].as_i64().unwrap() > 0);
    // Listed without the key, or anything of it.
    let r = api.get("/v1/admin/api-keys", Some(owner)).await;
    assert_eq!(
        r.body,
        json!([{"id": key_id, "name": "CRM", "created_at": r.body[0]["created_at"]}])
    );
    assert!(!r.body.to_string().contains(&key[10..]));

    // Admin routes: yes.
    let k = Some(key.as_str());
    assert_eq!(api.get("/v1/admin/account", k).await.status, 200);
    let r = api
        .post(
            "/v1/admin/agents",
            k,
            json!({"name": "Bo", "email": "bo@keys.test", "password": "pw-bo-secret",
                   "role": "admin"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let bo = r.body["id"].as_str().unwrap().to_owned();
    let r = api
        .patch(
            &format!("/v1/admin/agents/{bo}"),
            k,
            json!({"name": "Bo B."}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = api
        .put(
            &format!("/v1/admin/agents/{bo}/status"),
            k,
            json!({"status": "online"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        api.put(
            "/v1/admin/groups",
            k,
            json!([{"key": "sales", "name": "Sales"}])
        )
        .await
        .status,
        200
    );
    // Never an owner's rights.
    api.post(
        "/v1/admin/agents",
        k,
        json!({"name": "O2", "email": "o2@keys.test", "password": "pw-o2-secret",
               "role": "owner"}),
    )
    .await
    .assert_error(403, "forbidden");
    api.patch(
        &format!("/v1/admin/agents/{}", acc.owner_id),
        k,
        json!({"name": "Taken"}),
    )
    .await
    .assert_error(403, "forbidden");
    api.delete(&format!("/v1/admin/agents/{}", acc.owner_id), k)
        .await
        .assert_error(403, "forbidden");
    // Sign-in and API keys: no.
    put_sign_in(
        &api,
        &key,
        json!({"jwt": {"issuer": ISS, "audience": AUD, "hs256_secret": SECRET}}),
    )
    .await
    .assert_error(403, "forbidden");
    api.get("/v1/admin/api-keys", k)
        .await
        .assert_error(403, "forbidden");
    api.post("/v1/admin/api-keys", k, json!({"name": "more"}))
        .await
        .assert_error(403, "forbidden");
    api.delete(&format!("/v1/admin/api-keys/{key_id}"), k)
        .await
        .assert_error(403, "forbidden");
    // Not a session: device routes do not take it.
    api.get("/v1/me", k).await.assert_error(401, "unauthorized");
    // Agents make no keys; admins do.
    let agent_id = api.add_agent(&acc, "cy", &[]).await;
    let cy = api.login_agent(&acc, "cy", "cy").await;
    api.post("/v1/admin/api-keys", Some(&cy.token), json!({"name": "x"}))
        .await
        .assert_error(403, "forbidden");
    let bo_s = api
        .login("keys", "bo@keys.test", "pw-bo-secret", "bo")
        .await;
    let r = api
        .post(
            "/v1/admin/api-keys",
            Some(&bo_s.token),
            json!({"name": "Bo's"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    api.post("/v1/admin/api-keys", Some(owner), json!({"name": " "}))
        .await
        .assert_error(422, "invalid_field");

    // Made-up and malformed keys: 401.
    let forged = format!("{}{}", &key[..key.len() - 4], "0000");
    for bad in [forged.as_str(), "pk_", "pk_acc_123_456", "pk_nonsense"] {
        api.get("/v1/admin/account", Some(bad))
            .await
            .assert_error(401, "unauthorized");
    }
    // Another account's key does not reach this one (it acts on its own account).
    let other = api.create_account("keys-other").await;
    let r = api
        .post(
            "/v1/admin/api-keys",
            Some(&other.owner_token),
            json!({"name": "o"}),
        )
        .await;
    let other_key = r.body["key"].as_str().unwrap().to_owned();
    api.delete(&format!("/v1/admin/agents/{agent_id}"), Some(&other_key))
        .await
        .assert_error(404, "not_found");

    // Revoked: 401 at once, everywhere.
    assert_eq!(
        api.delete(&format!("/v1/admin/api-keys/{key_id}"), Some(owner))
            .await
            .status,
        204
    );
    api.get("/v1/admin/account", k)
        .await
        .assert_error(401, "unauthorized");
    put_sign_in(&api, &key, json!({"jwt": null}))
        .await
        .assert_error(401, "unauthorized");
    api.delete(&format!("/v1/admin/api-keys/{key_id}"), Some(owner))
        .await
        .assert_error(404, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_sessions_open_a_session_for_an_agent_by_id_sub_or_email_but_an_owners_only_for_an_owner()
 {
    let srv = TestServer::start().await;
    let api = srv.api();
    let acc = api.create_account("sess").await;
    let owner = acc.owner_token.as_str();
    let key = api
        .post(
            "/v1/admin/api-keys",
            Some(owner),
            json!({"name": "backend"}),
        )
        .await
        .body["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let ada = api.add_agent(&acc, "ada", &[]).await;
    let open = |who: Value, token: String| {
        let api = api.clone();
        async move {
            api.post(
                "/v1/admin/sessions",
                Some(&token),
                json!({"agent": who, "device": device("handed-over")}),
            )
            .await
        }
    };
    for who in [json!({"id": ada}), json!({"email": "ADA@sess.test"})] {
        let r = open(who.clone(), key.clone()).await;
        assert_eq!(r.status, 200, "{who}: {}", r.body);
        assert_eq!(r.body["agent"]["id"], ada);
        for field in ["token", "session_id", "status", "heartbeat", "server_time"] {
            assert!(!r.body[field].is_null(), "{field} in {}", r.body);
        }
        let me = api.me(r.body["token"].as_str().unwrap()).await;
        assert_eq!(me["agent"]["id"], ada);
    }
    open(json!({"sub": "nobody"}), key.clone())
        .await
        .assert_error(404, "not_found");
    open(json!({"id": "agt_nope"}), key.clone())
        .await
        .assert_error(404, "not_found");
    open(json!({"id": ada, "email": "ada@sess.test"}), key.clone())
        .await
        .assert_error(422, "invalid_field");
    open(json!({}), key.clone())
        .await
        .assert_error(422, "invalid_field");
    // An owner's session: only for an owner.
    open(json!({"id": acc.owner_id}), key.clone())
        .await
        .assert_error(403, "forbidden");
    api.post(
        "/v1/admin/agents",
        Some(owner),
        json!({"name": "Adm", "email": "adm@sess.test", "password": "pw-adm-secret",
               "role": "admin"}),
    )
    .await;
    let adm = api
        .login("sess", "adm@sess.test", "pw-adm-secret", "adm")
        .await;
    open(json!({"id": acc.owner_id}), adm.token.clone())
        .await
        .assert_error(403, "forbidden");
    assert_eq!(
        open(json!({"id": ada}), adm.token.clone()).await.status,
        200
    );
    assert_eq!(
        open(json!({"id": acc.owner_id}), owner.to_owned())
            .await
            .status,
        200
    );
    // An agent: no.
    let ada_s = api.login_agent(&acc, "ada", "ada").await;
    open(json!({"id": ada}), ada_s.token)
        .await
        .assert_error(403, "forbidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_tokens_count_toward_the_login_limits_per_user_and_address() {
    let srv = TestServer::start().await;
    let api = srv.api();
    hs256_account(&api, "limits", true).await;
    let claims = |sub: &str| {
        with(good(sub), |c| {
            c.insert("email".into(), json!(format!("{sub}@customer.test")));
        })
    };
    let forged = |sub: &str| idp::hs256("a-wrong-secret-of-at-least-32-bytes!", &claims(sub));
    for _ in 0..10 {
        sign_in(&api, "limits", &forged("victim"), "d")
            .await
            .assert_error(401, "invalid_credentials");
    }
    // The window of that user is full: even a good token waits.
    let r = sign_in(&api, "limits", &idp::hs256(SECRET, &claims("victim")), "d").await;
    r.assert_error(429, "rate_limited");
    assert!(r.header("retry-after").is_some());
    // Another user is not held back.
    let r = sign_in(&api, "limits", &idp::hs256(SECRET, &claims("other")), "d").await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Successful sign-ins are never counted.
    for i in 0..15 {
        let r = sign_in(
            &api,
            "limits",
            &idp::hs256(SECRET, &claims("other")),
            &format!("d{i}"),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // Per address: 100 failures in a minute, whatever the user (10 per user).
    for u in 0..9 {
        for _ in 0..10 {
            sign_in(&api, "limits", &forged(&format!("u{u}")), "d")
                .await
                .assert_error(401, "invalid_credentials");
        }
    }
    let r = sign_in(&api, "limits", &forged("last"), "d").await;
    r.assert_error(429, "rate_limited");
    let r = sign_in(&api, "limits", &idp::hs256(SECRET, &claims("fresh")), "d").await;
    r.assert_error(429, "rate_limited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tested_token_says_exactly_why_it_is_refused_or_what_it_would_do_and_changes_nothing() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let acc = hs256_account(&api, "tester", false).await;
    let test = |token: String| {
        let (api, owner) = (api.clone(), acc.owner_token.clone());
        async move {
            let r = api
                .post(
                    "/v1/admin/sign-in/test",
                    Some(&owner),
                    json!({ "token": token }),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
            r.body
        }
    };
    let owner_claims = with(good("owner-sub"), |c| {
        c.insert("email".into(), json!(acc.email));
    });
    // Refusals, each with its reason.
    let forged = test(idp::hs256(
        "another-secret-of-at-least-32-bytes!",
        &owner_claims,
    ))
    .await;
    assert_eq!(forged["ok"], false);
    assert!(
        forged["reason"].as_str().unwrap().contains("Signature"),
        "{forged}"
    );
    let expired = with(owner_claims.clone(), |c| {
        c.insert("exp".into(), json!(now() - 3600));
    });
    let r = test(idp::hs256(SECRET, &expired)).await;
    assert!(r["reason"].as_str().unwrap().contains("Expired"), "{r}");
    let r = test(idp::unsigned(&owner_claims)).await;
    assert_eq!(r["ok"], false, "alg none");
    let stranger = test(idp::hs256(SECRET, &provisions("nobody"))).await;
    assert_eq!(stranger["ok"], false);
    assert_eq!(stranger["sub"], "nobody", "its claims checked out");
    assert!(
        stranger["reason"]
            .as_str()
            .unwrap()
            .contains("provisioning is off"),
        "{stranger}"
    );
    // Accepted: the owner's email links it; nothing is linked by the test itself.
    let r = test(idp::hs256(SECRET, &owner_claims)).await;
    assert_eq!(
        (r["ok"].clone(), r["action"].clone(), r["agent_id"].clone()),
        (json!(true), json!("links"), json!(acc.owner_id))
    );
    let again = test(idp::hs256(SECRET, &owner_claims)).await;
    assert_eq!(again["action"], "links", "the test linked nothing");
    // Only a signed-in owner or admin may test.
    api.add_agent(&acc, "ann", &[]).await;
    let ann = api.login_agent(&acc, "ann", "ann-laptop").await;
    api.post(
        "/v1/admin/sign-in/test",
        Some(&ann.token),
        json!({"token": "x"}),
    )
    .await
    .assert_error(403, "forbidden");
}

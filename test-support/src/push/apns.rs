//! An APNs double: HTTP/2 only, over TLS on loopback, with a P-256 signing key made per test.
//!
//! Checked as Apple checks: the provider token (ES256, `kid` = the key id, `iss` = the team
//! id, `iat` within the hour, signed by the key), `apns-push-type: background` with
//! `apns-priority: 5` and `content-available: 1`, `apns-topic` = the bundle id, a numeric
//! `apns-expiration`, a hex device token, and the 4096-byte limit. A dead token answers
//! `410 Unregistered`; `400 BadDeviceToken` can be asked for with [`Behaviour::Gone`] on a
//! token starting `bad`.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use ring::signature;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::tls::{self, Req, Resp, TestCa, respond};
use super::{Answer, Double, Received, headers_of, read_jwt, unix_now};

pub const KEY_ID: &str = "ABC123DEFG";
pub const TEAM_ID: &str = "DEF123GHIJ";
pub const TOPIC: &str = "com.presence.app";

pub struct ApnsDouble {
    pub double: Double,
    /// `--apns-endpoint`.
    pub endpoint: String,
    /// `--apns-key`: the `.p8` file.
    pub key_file: PathBuf,
    shared: Arc<Shared>,
    _dir: tempfile::TempDir,
    _task: tokio::task::JoinHandle<()>,
}

struct Shared {
    double: Double,
    public_key: Vec<u8>,
    tokens: Mutex<HashSet<String>>,
}

impl ApnsDouble {
    pub async fn start(ca: &TestCa) -> ApnsDouble {
        let key = rcgen::KeyPair::generate().expect("P-256 key");
        let dir = tempfile::tempdir().expect("tempdir");
        let key_file = dir.path().join(format!("AuthKey_{KEY_ID}.p8"));
        std::fs::write(&key_file, key.serialize_pem()).expect("write .p8");
        let double = Double::default();
        let shared = Arc::new(Shared {
            double: double.clone(),
            public_key: key.public_key_raw().to_vec(),
            tokens: Mutex::new(HashSet::new()),
        });
        let s = shared.clone();
        let (addr, task) = tls::serve(ca, true, move |req| {
            let s = s.clone();
            async move { s.handle(req).await }
        })
        .await;
        ApnsDouble {
            double,
            endpoint: format!("https://{addr}"),
            key_file,
            shared,
            _dir: dir,
            _task: task,
        }
    }

    /// Distinct provider tokens seen so far.
    pub fn provider_tokens(&self) -> usize {
        self.shared.tokens.lock().len()
    }
}

fn reason(code: u16, reason: &str) -> Resp {
    respond(
        code,
        &[("content-type", "application/json".into())],
        json!({"reason": reason}).to_string(),
    )
}

impl Shared {
    fn bad(&self, code: u16, why: &str, what: String) -> Resp {
        self.double.violation(what);
        reason(code, why)
    }

    async fn handle(&self, req: Req) -> Resp {
        if req.version != hyper::Version::HTTP_2 {
            return self.bad(
                400,
                "BadRequest",
                format!("request over {:?}, not HTTP/2", req.version),
            );
        }
        let Some(token) = req.path.strip_prefix("/3/device/").map(str::to_owned) else {
            return self.bad(404, "BadPath", format!("path {}", req.path));
        };
        if req.method != hyper::Method::POST {
            return self.bad(405, "MethodNotAllowed", format!("method {}", req.method));
        }
        let (received, answer) = match self.check(&req, &token) {
            Ok(r) => (r, self.double.answer(&token)),
            Err(resp) => return resp,
        };
        match answer {
            Answer::Deliver => {
                self.double.deliver(received);
                respond(
                    200,
                    &[("apns-id", "7b0c3a5e-0000-4000-8000-000000000000".into())],
                    "",
                )
            }
            Answer::Lose => respond(200, &[], ""),
            Answer::Gone if token.starts_with("bad") => reason(400, "BadDeviceToken"),
            Answer::Gone => respond(
                410,
                &[("content-type", "application/json".into())],
                json!({"reason": "Unregistered", "timestamp": unix_now() * 1000}).to_string(),
            ),
            Answer::Busy(secs) => {
                let mut r = reason(429, "TooManyRequests");
                r.headers_mut()
                    .insert("retry-after", secs.to_string().parse().expect("header"));
                r
            }
            Answer::Hang => std::future::pending().await,
            Answer::Flood => self.double.flood(),
        }
    }

    // The error is the answer to send back, made once per refused request.
    #[allow(clippy::result_large_err)]
    fn check(&self, req: &Req, token: &str) -> Result<Received, Resp> {
        if token.is_empty()
            || !token.len().is_multiple_of(2)
            || !token.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(self.bad(
                400,
                "BadDeviceToken",
                format!("device token {token:?} is not hex"),
            ));
        }
        let header = |name: &str| {
            req.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let auth = header("authorization");
        // The scheme is case-insensitive (RFC 9110); Apple's examples write "bearer".
        let jwt = auth
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, jwt)| jwt);
        let Some(jwt) = jwt else {
            return Err(self.bad(
                403,
                "MissingProviderToken",
                format!("authorization {auth:?}"),
            ));
        };
        let verify = |msg: &[u8], sig: &[u8]| {
            signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &self.public_key)
                .verify(msg, sig)
                .is_ok()
        };
        let (h, c) = read_jwt(jwt, verify)
            .map_err(|e| self.bad(403, "InvalidProviderToken", format!("provider token: {e}")))?;
        let iat = c["iat"].as_i64().unwrap_or(0);
        if h["alg"] != "ES256" || h["kid"] != KEY_ID || c["iss"] != TEAM_ID {
            return Err(self.bad(
                403,
                "InvalidProviderToken",
                format!("provider token {h} {c}"),
            ));
        }
        if unix_now() - iat > 3600 || iat - unix_now() > 60 {
            return Err(self.bad(
                403,
                "ExpiredProviderToken",
                format!("provider token iat {iat}"),
            ));
        }
        self.tokens.lock().insert(jwt.to_owned());
        let checks = [
            ("apns-push-type", header("apns-push-type") == "background"),
            ("apns-priority", header("apns-priority") == "5"),
            ("apns-topic", header("apns-topic") == TOPIC),
            (
                "apns-expiration",
                header("apns-expiration")
                    .parse::<i64>()
                    .is_ok_and(|e| e >= unix_now() - 1),
            ),
            (
                "apns-collapse-id",
                !header("apns-collapse-id").is_empty() && header("apns-collapse-id").len() <= 64,
            ),
        ];
        if let Some((name, _)) = checks.iter().find(|(_, ok)| !ok) {
            return Err(self.bad(400, "BadHeader", format!("{name}: {:?}", header(name))));
        }
        if req.body.len() > 4096 {
            return Err(self.bad(413, "PayloadTooLarge", format!("{} bytes", req.body.len())));
        }
        let body: Value = serde_json::from_slice(&req.body)
            .map_err(|e| self.bad(400, "PayloadEmpty", format!("body not JSON: {e}")))?;
        if body["aps"]["content-available"] != 1 || body["aps"].get("alert").is_some() {
            return Err(self.bad(
                400,
                "BadPayload",
                format!("a background push needs aps.content-available 1 only: {body}"),
            ));
        }
        let payload = body["presence"].clone();
        if !payload.is_object() {
            return Err(self.bad(
                400,
                "BadPayload",
                format!("presence is not an object: {body}"),
            ));
        }
        Ok(Received {
            token: token.to_owned(),
            app_bytes: payload.to_string(),
            payload,
            headers: headers_of(&req.headers),
            at: Instant::now(),
        })
    }
}

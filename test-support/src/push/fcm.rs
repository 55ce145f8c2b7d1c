//! An OAuth2 token endpoint and an FCM HTTP v1 send endpoint, over HTTPS on loopback, with a
//! service-account key file pointing at them.
//!
//! Checked as Google checks: the JWT-bearer grant (RS256 signature by the account's key,
//! `iss`, `scope`, `aud` = `token_uri`, an `exp` at most an hour after `iat`), the bearer
//! token on sends, the message shape (`token`, string-only `data`, `android.priority`,
//! `android.ttl` as `"<seconds>s"`), and the 4096-byte limit. A dead token answers `404
//! UNREGISTERED`, as FCM does.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use parking_lot::Mutex;
use ring::signature::{self, KeyPair, RsaKeyPair};
use rustls::pki_types::PrivatePkcs8KeyDer;
use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::tls::{self, Req, Resp, TestCa, respond};
use super::{Answer, Double, Received, headers_of, read_jwt, unix_now};

/// The test service account's RSA key (PKCS#8), made for these tests only.
pub const TEST_KEY_PEM: &str = include_str!("../../fixtures/fcm-test-key.pem");
pub const PROJECT_ID: &str = "presence-test";
pub const CLIENT_EMAIL: &str = "presence-push@presence-test.iam.gserviceaccount.com";
const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

pub struct FcmDouble {
    pub double: Double,
    /// `--fcm-endpoint`.
    pub endpoint: String,
    /// `--fcm-credentials`: a key file whose `token_uri` is this double.
    pub credentials: PathBuf,
    token_requests: Arc<AtomicU64>,
    _dir: tempfile::TempDir,
    _task: tokio::task::JoinHandle<()>,
}

struct Shared {
    double: Double,
    public_key: Vec<u8>,
    token_uri: Mutex<String>,
    issued: Mutex<HashSet<String>>,
    token_requests: Arc<AtomicU64>,
}

impl FcmDouble {
    pub async fn start(ca: &TestCa) -> FcmDouble {
        let der = PrivatePkcs8KeyDer::from_pem_slice(TEST_KEY_PEM.as_bytes()).expect("key PEM");
        let key = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).expect("RSA key");
        let double = Double::default();
        let token_requests = Arc::new(AtomicU64::new(0));
        let shared = Arc::new(Shared {
            double: double.clone(),
            public_key: key.public_key().as_ref().to_vec(),
            token_uri: Mutex::new(String::new()),
            issued: Mutex::new(HashSet::new()),
            token_requests: token_requests.clone(),
        });
        let s = shared.clone();
        let (addr, task) = tls::serve(ca, false, move |req| {
            let s = s.clone();
            async move { s.handle(req).await }
        })
        .await;
        let token_uri = format!("https://{addr}/token");
        *shared.token_uri.lock() = token_uri.clone();
        let dir = tempfile::tempdir().expect("tempdir");
        let credentials = dir.path().join("service-account.json");
        let file = json!({
            "type": "service_account",
            "project_id": PROJECT_ID,
            "private_key_id": "test-key-1",
            "private_key": TEST_KEY_PEM,
            "client_email": CLIENT_EMAIL,
            "client_id": "1",
            "token_uri": token_uri,
        });
        std::fs::write(&credentials, file.to_string()).expect("write key file");
        FcmDouble {
            double,
            endpoint: endpoint(addr),
            credentials,
            token_requests,
            _dir: dir,
            _task: task,
        }
    }

    /// OAuth token requests answered so far.
    pub fn token_requests(&self) -> u64 {
        self.token_requests.load(Relaxed)
    }
}

fn endpoint(addr: SocketAddr) -> String {
    format!("https://{addr}")
}

fn error(code: u16, status: &str, message: &str) -> Resp {
    respond(
        code,
        &[("content-type", "application/json".into())],
        json!({"error": {"code": code, "status": status, "message": message}}).to_string(),
    )
}

impl Shared {
    fn handle(&self, req: Req) -> std::pin::Pin<Box<dyn Future<Output = Resp> + Send>> {
        let send_path = format!("/v1/projects/{PROJECT_ID}/messages:send");
        let r = match (req.method.as_str(), req.path.as_str()) {
            ("POST", "/token") => self.token(&req),
            ("POST", p) if p == send_path => return self.send(req),
            _ => error(404, "NOT_FOUND", "no such route"),
        };
        Box::pin(async move { r })
    }

    fn bad(&self, what: String) -> Resp {
        self.double.violation(what.clone());
        error(400, "INVALID_ARGUMENT", &what)
    }

    fn token(&self, req: &Req) -> Resp {
        self.token_requests.fetch_add(1, Relaxed);
        let body = String::from_utf8_lossy(&req.body).into_owned();
        let form: std::collections::HashMap<&str, &str> = body
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .collect();
        if form.get("grant_type") != Some(&"urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer")
        {
            return self.bad(format!("token request: wrong grant_type in {body}"));
        }
        let ct = req
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok());
        if ct != Some("application/x-www-form-urlencoded") {
            return self.bad(format!("token request: content-type {ct:?}"));
        }
        let Some(assertion) = form.get("assertion") else {
            return self.bad("token request: no assertion".into());
        };
        let verify = |msg: &[u8], sig: &[u8]| {
            signature::UnparsedPublicKey::new(
                &signature::RSA_PKCS1_2048_8192_SHA256,
                &self.public_key,
            )
            .verify(msg, sig)
            .is_ok()
        };
        let (header, claims) = match read_jwt(assertion, verify) {
            Ok(hc) => hc,
            Err(e) => return self.bad(format!("token request: {e}")),
        };
        let now = unix_now();
        let iat = claims["iat"].as_i64().unwrap_or(0);
        let exp = claims["exp"].as_i64().unwrap_or(0);
        let problems = [
            (header["alg"] != "RS256", "alg is not RS256"),
            (claims["iss"] != CLIENT_EMAIL, "iss is not the client_email"),
            (
                claims["scope"]
                    .as_str()
                    .is_none_or(|s| !s.split(' ').any(|s| s == SCOPE)),
                "scope lacks firebase.messaging",
            ),
            (
                claims["aud"] != *self.token_uri.lock(),
                "aud is not the token_uri",
            ),
            ((iat - now).abs() > 300, "iat is not now"),
            (
                exp <= iat || exp - iat > 3600,
                "exp is not within an hour of iat",
            ),
        ];
        if let Some((_, what)) = problems.iter().find(|(bad, _)| *bad) {
            return self.bad(format!("token request: {what}: {header} {claims}"));
        }
        let token = format!("ya29.test-{}", self.token_requests.load(Relaxed));
        self.issued.lock().insert(token.clone());
        respond(
            200,
            &[("content-type", "application/json".into())],
            json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}).to_string(),
        )
    }

    fn send(&self, req: Req) -> std::pin::Pin<Box<dyn Future<Output = Resp> + Send>> {
        let r = self.check_send(&req);
        let (token, received) = match r {
            Ok(v) => v,
            Err(resp) => return Box::pin(async move { resp }),
        };
        let answer = self.double.answer(&token);
        let double = self.double.clone();
        Box::pin(async move {
            match answer {
                Answer::Deliver => {
                    double.deliver(received);
                    ok()
                }
                Answer::Lose => ok(),
                Answer::Gone => respond(
                    404,
                    &[("content-type", "application/json".into())],
                    json!({"error": {"code": 404, "status": "NOT_FOUND",
                        "message": "Requested entity was not found.",
                        "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                                     "errorCode": "UNREGISTERED"}]}})
                    .to_string(),
                ),
                Answer::Busy(secs) => respond(
                    429,
                    &[("retry-after", secs.to_string())],
                    json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
                        "details": [{"errorCode": "QUOTA_EXCEEDED"}]}})
                    .to_string(),
                ),
                Answer::Hang => std::future::pending().await,
                Answer::Flood => double.flood(),
            }
        })
    }

    // The error is the answer to send back, made once per refused request.
    #[allow(clippy::result_large_err)]
    fn check_send(&self, req: &Req) -> Result<(String, Received), Resp> {
        let auth = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !self.issued.lock().contains(auth) {
            self.double
                .violation(format!("send with an access token never issued: {auth:?}"));
            return Err(error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials.",
            ));
        }
        if req.body.len() > 4096 {
            return Err(self.bad(format!("message of {} bytes is over 4096", req.body.len())));
        }
        let body: Value = serde_json::from_slice(&req.body)
            .map_err(|e| self.bad(format!("body is not JSON: {e}")))?;
        let m = &body["message"];
        let token = m["token"].as_str().unwrap_or("").to_owned();
        if token.is_empty() {
            return Err(self.bad(format!("message.token missing: {body}")));
        }
        let Some(data) = m["data"].as_object() else {
            return Err(self.bad(format!("message.data missing: {body}")));
        };
        if let Some((k, _)) = data.iter().find(|(_, v)| !v.is_string()) {
            return Err(self.bad(format!("data value {k} is not a string: {body}")));
        }
        let android = &m["android"];
        let ttl_ok = android["ttl"]
            .as_str()
            .and_then(|t| t.strip_suffix('s'))
            .is_some_and(|n| n.parse::<u64>().is_ok());
        if android["priority"] != "high" || !ttl_ok || android["collapse_key"] != "presence" {
            return Err(self.bad(format!("android options: {android}")));
        }
        let app_bytes = data
            .get("presence")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let payload: Value = serde_json::from_str(&app_bytes)
            .map_err(|e| self.bad(format!("data.presence is not the payload JSON: {e}")))?;
        Ok((
            token.clone(),
            Received {
                token,
                payload,
                app_bytes,
                headers: headers_of(&req.headers),
                at: Instant::now(),
            },
        ))
    }
}

fn ok() -> Resp {
    respond(
        200,
        &[("content-type", "application/json".into())],
        json!({"name": format!("projects/{PROJECT_ID}/messages/1")}).to_string(),
    )
}

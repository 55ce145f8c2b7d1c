//! A double of the customer's identity provider: tokens signed HS256 (a shared secret),
//! RS256 or ES256 (keys the tests publish as a JWKS), or not signed at all (`alg: none`),
//! with any header and claims a test wants; and a JWKS server on loopback that counts the
//! requests it gets and can answer slowly, hugely, or with a chosen `Cache-Control`.
//!
//! ES256 keys are made fresh per test (ring). ring cannot make RSA keys, so the RS256 key is
//! a fixed test-only key (`fixtures/idp-rsa-test-key.der`, PKCS#1), never used elsewhere.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use parking_lot::Mutex;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn b64(v: &[u8]) -> String {
    B64.encode(v)
}

/// `header.claims.` with the signature `sign` makes of the first two parts.
pub fn token(header: &Value, claims: &Value, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = sign(signing_input.as_bytes());
    format!("{signing_input}.{}", b64(&sig))
}

/// A token with `alg: none` and no signature.
pub fn unsigned(claims: &Value) -> String {
    token(&json!({"alg": "none", "typ": "JWT"}), claims, |_| {
        Vec::new()
    })
}

/// An HS256 token signed with `secret`.
pub fn hs256(secret: &str, claims: &Value) -> String {
    hs256_with(secret, &json!({"alg": "HS256", "typ": "JWT"}), claims)
}

/// An HS256 signature under any header (a wrong `alg` in it, for example).
pub fn hs256_with(secret: &str, header: &Value, claims: &Value) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    token(header, claims, |input| {
        ring::hmac::sign(&key, input).as_ref().to_vec()
    })
}

/// A P-256 key that signs ES256 tokens, made fresh.
pub struct EcKey {
    pair: EcdsaKeyPair,
    pub kid: String,
}

impl EcKey {
    pub fn new(kid: &str) -> EcKey {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("a P-256 key");
        EcKey {
            pair: EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).expect("its pair"),
            kid: kid.to_owned(),
        }
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Value {
        let p = self.pair.public_key().as_ref();
        json!({"kty": "EC", "crv": "P-256", "kid": self.kid, "use": "sig", "alg": "ES256",
               "x": b64(&p[1..33]), "y": b64(&p[33..65])})
    }

    /// An ES256 token with this key's kid.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with(
            &json!({"alg": "ES256", "typ": "JWT", "kid": self.kid}),
            claims,
        )
    }

    pub fn sign_with(&self, header: &Value, claims: &Value) -> String {
        let rng = SystemRandom::new();
        token(header, claims, |input| {
            self.pair.sign(&rng, input).expect("sign").as_ref().to_vec()
        })
    }
}

/// The fixed RSA test key, signing RS256 tokens.
pub struct RsaKey {
    pair: RsaKeyPair,
    pub kid: String,
}

impl RsaKey {
    pub fn new(kid: &str) -> RsaKey {
        let der = include_bytes!("fixtures/idp-rsa-test-key.der");
        RsaKey {
            pair: RsaKeyPair::from_der(der).expect("the RSA test key"),
            kid: kid.to_owned(),
        }
    }

    pub fn jwk(&self) -> Value {
        let c: signature::RsaPublicKeyComponents<Vec<u8>> = self.pair.public().into();
        json!({"kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256",
               "n": b64(&c.n), "e": b64(&c.e)})
    }

    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with(
            &json!({"alg": "RS256", "typ": "JWT", "kid": self.kid}),
            claims,
        )
    }

    pub fn sign_with(&self, header: &Value, claims: &Value) -> String {
        let rng = SystemRandom::new();
        token(header, claims, |input| {
            let mut sig = vec![0; self.pair.public().modulus_len()];
            self.pair
                .sign(&signature::RSA_PKCS1_SHA256, &rng, input, &mut sig)
                .expect("sign");
            sig
        })
    }
}

/// How the JWKS server answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `200` with the JWKS and this `Cache-Control` (none: no header).
    Jwks(Option<String>),
    /// Never answers (holds the connection open).
    Silent,
    /// A `200` of this many bytes.
    Huge(usize),
}

struct Served {
    jwks: Value,
    answer: Answer,
}

/// A JWKS server on loopback; counts every request it reads.
pub struct JwksServer {
    /// `http://127.0.0.1:PORT/.well-known/jwks.json`
    pub url: String,
    hits: Arc<AtomicUsize>,
    served: Arc<Mutex<Served>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl JwksServer {
    /// Serves `{"keys": keys}` with `cache_control`.
    pub async fn start(keys: Vec<Value>, cache_control: Option<&str>) -> JwksServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!(
            "http://{}/.well-known/jwks.json",
            listener.local_addr().expect("addr")
        );
        let hits = Arc::new(AtomicUsize::new(0));
        let served = Arc::new(Mutex::new(Served {
            jwks: json!({"keys": keys}),
            answer: Answer::Jwks(cache_control.map(str::to_owned)),
        }));
        let (h, s) = (hits.clone(), served.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let (h, s) = (h.clone(), s.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 2048];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    h.fetch_add(1, Ordering::SeqCst);
                    let (body, cc) = {
                        let s = s.lock();
                        match &s.answer {
                            Answer::Jwks(cc) => (s.jwks.to_string().into_bytes(), cc.clone()),
                            Answer::Huge(n) => (vec![b' '; *n], None),
                            Answer::Silent => (Vec::new(), None),
                        }
                    };
                    if s.lock().answer == Answer::Silent {
                        // Hold the connection until the client gives up.
                        let _ = sock.read(&mut chunk).await;
                        return;
                    }
                    let cc = cc
                        .map(|c| format!("cache-control: {c}\r\n"))
                        .unwrap_or_default();
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{cc}\
                         content-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = sock.write_all(head.as_bytes()).await;
                    let _ = sock.write_all(&body).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        JwksServer {
            url,
            hits,
            served,
            task,
        }
    }

    /// Requests read so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Serves these keys from now on.
    pub fn set_keys(&self, keys: Vec<Value>) {
        self.served.lock().jwks = json!({"keys": keys});
    }

    /// Answers this way from now on.
    pub fn set_answer(&self, answer: Answer) {
        self.served.lock().answer = answer;
    }
}

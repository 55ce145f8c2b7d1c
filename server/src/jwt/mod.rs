//! The customer's sign-in tokens (JWTs): which key checks one, and what it says.
//!
//! Guarantees:
//! - Only `HS256` (with the account's secret), `RS256` and `ES256` (with a key of the
//!   account's JWKS) are accepted; `none`, every other algorithm, and a header that does not
//!   parse are refused before any key is looked at. A key is used only for its own family:
//!   the secret never checks an RS256 or ES256 token, a JWKS key never an HS256 one.
//! - A token's `kid` picks its key; without one, the JWKS must hold exactly one key for the
//!   algorithm.
//! - `iss`, `aud`, `exp` and `sub` are required; `exp`, `nbf` and `iat` are checked with
//!   [`LEEWAY_S`] of leeway; `sub` is a non-empty string.
//! - Optional claims (`email`, `name`, `groups`, `role`) of the wrong shape are dropped, not
//!   fatal; what they mean for the agent is decided in `crate::ops::signin`.
//! - A refusal says why ([`Refusal`], for the log); it never carries the token.

pub mod jwks;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

/// Seconds a clock may differ between the customer's issuer and this server.
pub const LEEWAY_S: u64 = 60;

/// Why a token was refused (logged; the client only sees `invalid_credentials`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

impl Refusal {
    pub fn new(why: impl Into<String>) -> Refusal {
        Refusal(why.into())
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The algorithms a token may be signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Hs256,
    Rs256,
    Es256,
}

impl Alg {
    fn jose(self) -> Algorithm {
        match self {
            Alg::Hs256 => Algorithm::HS256,
            Alg::Rs256 => Algorithm::RS256,
            Alg::Es256 => Algorithm::ES256,
        }
    }
}

/// What a token's header says: its algorithm (one of ours) and key id.
#[derive(Debug, Clone)]
pub struct Header {
    pub alg: Alg,
    pub kid: Option<String>,
}

/// Reads a token's header; any algorithm but ours (`none` included) is refused.
pub fn header(token: &str) -> Result<Header, Refusal> {
    // The header's `alg` is read by hand first: the library's header type does not know
    // `none`, and a refusal should say what was sent.
    let first = token.split('.').next().unwrap_or("");
    let raw =
        decode_segment(first).ok_or_else(|| Refusal::new("the header is not base64url JSON"))?;
    let alg = raw.get("alg").and_then(Value::as_str).unwrap_or("");
    let alg = match alg {
        "HS256" => Alg::Hs256,
        "RS256" => Alg::Rs256,
        "ES256" => Alg::Es256,
        other => return Err(Refusal::new(format!("algorithm {other:?} is not accepted"))),
    };
    let kid = match raw.get("kid") {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(Refusal::new("the header's kid is not a string")),
    };
    Ok(Header { alg, kid })
}

fn decode_segment(seg: &str) -> Option<Value> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(seg.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The `sub` a token claims, unchecked: what the login limits key a token attempt on (so
/// one user's bad tokens fill that user's window, as wrong passwords fill an email's).
pub fn unverified_sub(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let sub = decode_segment(payload)?.get("sub")?.as_str()?.to_owned();
    Some(sub.chars().take(256).collect())
}

/// A key of a JWKS that this server can use.
struct Key {
    kid: Option<String>,
    alg: Alg,
    key: DecodingKey,
}

/// The usable keys of a JWKS (`{"keys": [...]}`): RSA keys for RS256, P-256 keys for ES256.
/// Keys for other algorithms or for encryption are skipped.
pub struct Keys {
    keys: Vec<Key>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<_> = self.keys.iter().map(|k| (&k.kid, k.alg)).collect();
        f.debug_struct("Keys").field("keys", &kids).finish()
    }
}

/// How a key lookup went.
pub enum Lookup<'a> {
    Found(&'a DecodingKey),
    /// The token names a key id this set does not have (a refetch may find it).
    UnknownKid,
    /// No kid, and not exactly one key for the algorithm.
    NoKey,
}

impl Keys {
    /// The usable keys of a JWKS; why not, if it is not one or has none.
    pub fn parse(jwks: &Value) -> Result<Keys, String> {
        let list = jwks
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("a JWKS is an object with a \"keys\" array")?;
        let mut keys = Vec::new();
        for (i, v) in list.iter().enumerate() {
            let jwk: Jwk = match serde_json::from_value(v.clone()) {
                Ok(j) => j,
                // A key type this library does not know: not ours to use.
                Err(_) if v.get("kty").and_then(Value::as_str).is_some() => continue,
                Err(e) => return Err(format!("key {i} is not a JWK: {e}")),
            };
            if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
                continue;
            }
            let alg = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => Alg::Rs256,
                AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
                    Alg::Es256
                }
                _ => continue,
            };
            // A key bound to another algorithm (RS384, PS256, ...) is not for our tokens.
            let bound = match jwk.common.key_algorithm {
                None => Some(alg),
                Some(KeyAlgorithm::RS256) => Some(Alg::Rs256),
                Some(KeyAlgorithm::ES256) => Some(Alg::Es256),
                Some(_) => None,
            };
            if bound != Some(alg) {
                continue;
            }
            let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("key {i}: {e}"))?;
            keys.push(Key {
                kid: jwk.common.key_id.clone(),
                alg,
                key,
            });
        }
        if keys.is_empty() {
            return Err("it has no RSA or P-256 key this server can use".to_owned());
        }
        Ok(Keys { keys })
    }

    /// The key for a token's header.
    pub fn find(&self, h: &Header) -> Lookup<'_> {
        match &h.kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid) && k.alg == h.alg)
                .map_or(Lookup::UnknownKid, |k| Lookup::Found(&k.key)),
            None => {
                let mut of_alg = self.keys.iter().filter(|k| k.alg == h.alg);
                match (of_alg.next(), of_alg.next()) {
                    (Some(k), None) => Lookup::Found(&k.key),
                    _ => Lookup::NoKey,
                }
            }
        }
    }
}

/// The claims of a verified token, as sent.
#[derive(Debug, Clone, Default)]
pub struct Claims {
    pub sub: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub groups: Option<Vec<String>>,
    pub role: Option<String>,
}

/// The key a token was checked with.
pub enum With<'a> {
    Secret(&'a str),
    Public(&'a DecodingKey),
}

/// Checks a token's signature with `key` (of its header's algorithm) and its registered
/// claims against the account's issuer and audience; answers its claims.
pub fn verify(
    token: &str,
    h: &Header,
    key: With<'_>,
    issuer: &str,
    audience: &str,
    now_s: u64,
) -> Result<Claims, Refusal> {
    let secret;
    let key = match (h.alg, key) {
        (Alg::Hs256, With::Secret(s)) => {
            secret = DecodingKey::from_secret(s.as_bytes());
            &secret
        }
        (Alg::Rs256 | Alg::Es256, With::Public(k)) => k,
        _ => return Err(Refusal::new("no key of this algorithm")),
    };
    let mut v = Validation::new(h.alg.jose());
    v.leeway = LEEWAY_S;
    v.validate_exp = true;
    v.validate_nbf = true;
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v.set_issuer(&[issuer]);
    v.set_audience(&[audience]);
    let data = jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, key, &v)
        .map_err(|e| Refusal::new(format!("{:?}", e.kind())))?;
    let c = data.claims;
    if let Some(iat) = c.get("iat") {
        let iat = iat
            .as_f64()
            .ok_or_else(|| Refusal::new("iat is not a number"))?;
        if iat > (now_s + LEEWAY_S) as f64 {
            return Err(Refusal::new("issued in the future (iat)"));
        }
    }
    let sub = match c.get("sub").and_then(Value::as_str) {
        Some(s) if !s.trim().is_empty() => s.to_owned(),
        _ => return Err(Refusal::new("sub is missing or not a non-empty string")),
    };
    let text = |k: &str| {
        c.get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let groups = c.get("groups").and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    });
    Ok(Claims {
        sub,
        email: text("email"),
        name: text("name"),
        groups,
        role: text("role"),
    })
}

/// Seconds since the epoch, as the issuer's clock would say.
pub fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";

    fn ec(extra: Value) -> Value {
        let mut k = serde_json::json!({"kty": "EC", "crv": "P-256", "x": X, "y": Y});
        for (name, v) in extra.as_object().unwrap() {
            k[name] = v.clone();
        }
        k
    }

    #[test]
    fn only_signing_keys_for_our_algorithms_are_kept() {
        let jwks = serde_json::json!({"keys": [
            ec(serde_json::json!({"kid": "enc", "use": "enc"})),
            ec(serde_json::json!({"kid": "other-alg", "alg": "ES384"})),
            {"kty": "OKP", "crv": "Ed25519", "x": X, "kid": "ed"},
            ec(serde_json::json!({"kid": "ok", "alg": "ES256"})),
        ]});
        let keys = Keys::parse(&jwks).unwrap();
        let h = |kid: &str| Header {
            alg: Alg::Es256,
            kid: Some(kid.into()),
        };
        assert!(matches!(keys.find(&h("ok")), Lookup::Found(_)));
        for kid in ["enc", "other-alg", "ed"] {
            assert!(matches!(keys.find(&h(kid)), Lookup::UnknownKid), "{kid}");
        }
        let only_enc = serde_json::json!({"keys": [ec(serde_json::json!({"use": "enc"}))]});
        assert!(Keys::parse(&only_enc).is_err());
    }

    #[test]
    fn only_hs256_rs256_and_es256_headers_pass() {
        use base64::Engine;
        let tok = |header: &str| {
            let h = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(header);
            format!("{h}.e30.")
        };
        for ok in ["HS256", "RS256", "ES256"] {
            assert!(
                header(&tok(&format!(r#"{{"alg":"{ok}"}}"#))).is_ok(),
                "{ok}"
            );
        }
        for bad in [
            r#"{"alg":"none"}"#,
            r#"{"alg":"None"}"#,
            r#"{"alg":"HS512"}"#,
            r#"{"alg":"PS256"}"#,
            r#"{"alg":"EdDSA"}"#,
            r#"{}"#,
            r#"{"alg":"ES256","kid":7}"#,
            "not json",
        ] {
            assert!(header(&tok(bad)).is_err(), "{bad}");
        }
    }
}

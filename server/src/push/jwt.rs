//! Signed JSON Web Tokens (RFC 7519, compact JWS) for provider authentication: RS256 for the
//! FCM OAuth2 grant, ES256 for APNs provider tokens. Keys are PKCS#8 PEM, signing is ring's
//! (already the TLS stack's crypto).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, RsaKeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivatePkcs1KeyDer, PrivatePkcs8KeyDer};
use serde_json::Value;

/// A private key that signs JWTs with one algorithm.
pub enum SigningKey {
    Rs256(RsaKeyPair),
    Es256(EcdsaKeyPair),
}

fn pkcs8(pem: &[u8]) -> Result<PrivatePkcs8KeyDer<'static>, String> {
    PrivatePkcs8KeyDer::from_pem_slice(pem)
        .map_err(|e| format!("not a PKCS#8 PEM private key ({e})"))
}

impl SigningKey {
    /// An RSA key (a Google service account's `private_key`: PKCS#8, or PKCS#1 as older
    /// tools write it).
    pub fn rs256(pem: &[u8]) -> Result<Self, String> {
        let key = match pkcs8(pem) {
            Ok(der) => RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()),
            Err(e) => {
                let der = PrivatePkcs1KeyDer::from_pem_slice(pem).map_err(|_| e)?;
                RsaKeyPair::from_der(der.secret_pkcs1_der())
            }
        };
        key.map(SigningKey::Rs256)
            .map_err(|e| format!("not an RSA private key ({e})"))
    }

    /// A P-256 key (an APNs `.p8` file).
    pub fn es256(pem: &[u8]) -> Result<Self, String> {
        let der = pkcs8(pem)?;
        EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            der.secret_pkcs8_der(),
            &SystemRandom::new(),
        )
        .map(SigningKey::Es256)
        .map_err(|e| format!("not a P-256 private key ({e})"))
    }

    fn alg(&self) -> &'static str {
        match self {
            SigningKey::Rs256(_) => "RS256",
            SigningKey::Es256(_) => "ES256",
        }
    }

    /// `header.claims.signature`; `alg` is set in the header from the key.
    pub fn sign(&self, mut header: Value, claims: &Value) -> Result<String, String> {
        header["alg"] = Value::from(self.alg());
        let mut out = B64.encode(header.to_string());
        out.push('.');
        out.push_str(&B64.encode(claims.to_string()));
        let rng = SystemRandom::new();
        let sig = match self {
            SigningKey::Rs256(k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &rng, out.as_bytes(), &mut sig)
                    .map_err(|_| "RSA signing failed".to_owned())?;
                sig
            }
            SigningKey::Es256(k) => k
                .sign(&rng, out.as_bytes())
                .map_err(|_| "ECDSA signing failed".to_owned())?
                .as_ref()
                .to_vec(),
        };
        out.push('.');
        out.push_str(&B64.encode(sig));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::KeyPair;

    const PKCS8: &str = include_str!("../../../test-support/fixtures/fcm-test-key.pem");
    const PKCS1: &str = include_str!("../../../test-support/fixtures/fcm-test-key-pkcs1.pem");

    fn verifies(jwt: &str, key: &SigningKey) -> bool {
        let (msg, sig) = jwt.rsplit_once('.').unwrap();
        let sig = B64.decode(sig).unwrap();
        match key {
            SigningKey::Rs256(k) => signature::UnparsedPublicKey::new(
                &signature::RSA_PKCS1_2048_8192_SHA256,
                k.public_key().as_ref(),
            )
            .verify(msg.as_bytes(), &sig)
            .is_ok(),
            SigningKey::Es256(k) => signature::UnparsedPublicKey::new(
                &signature::ECDSA_P256_SHA256_FIXED,
                k.public_key().as_ref(),
            )
            .verify(msg.as_bytes(), &sig)
            .is_ok(),
        }
    }

    #[test]
    fn rsa_keys_in_pkcs8_and_pkcs1_sign_rs256_tokens_that_verify() {
        for pem in [PKCS8, PKCS1] {
            let key = SigningKey::rs256(pem.as_bytes()).unwrap();
            let jwt = key
                .sign(
                    serde_json::json!({"typ": "JWT"}),
                    &serde_json::json!({"iss": "a"}),
                )
                .unwrap();
            let header: Value =
                serde_json::from_slice(&B64.decode(jwt.split('.').next().unwrap()).unwrap())
                    .unwrap();
            assert_eq!(header["alg"], "RS256");
            assert!(verifies(&jwt, &key));
        }
        assert!(SigningKey::rs256(b"not a key").is_err());
        assert!(
            SigningKey::es256(PKCS8.as_bytes()).is_err(),
            "RSA is not P-256"
        );
    }
}

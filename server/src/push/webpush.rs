//! Message encryption for Web Push (RFC 8291) in the `aes128gcm` content coding (RFC 8188),
//! as UnifiedPush endpoints expect: one record, an ephemeral P-256 key and a random salt per
//! message. ring does the ECDH, HKDF-SHA-256 and AES-128-GCM.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::agreement::{ECDH_P256, EphemeralPrivateKey, UnparsedPublicKey, agree_ephemeral};
use ring::hkdf::{HKDF_SHA256, KeyType, Salt};
use ring::rand::{SecureRandom, SystemRandom};

/// The record size written in the header; a message is one record, so it bounds the payload.
pub const RECORD_SIZE: u32 = 4096;
/// Header: salt (16), record size (4), key id length (1), key id (65-byte public key).
const HEADER_LEN: usize = 16 + 4 + 1 + 65;
/// AES-GCM tag plus the one-byte last-record delimiter.
const OVERHEAD: usize = 16 + 1;
/// The largest plaintext one record carries.
pub const MAX_PLAINTEXT: usize = RECORD_SIZE as usize - OVERHEAD;

/// A device's keys as registered: its public key and auth secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceKeys {
    pub p256dh: [u8; 65],
    pub auth: [u8; 16],
}

impl DeviceKeys {
    /// Decodes the registration's base64url keys and checks the public key is a point on
    /// P-256 (an agreement with a throwaway key must succeed).
    pub fn parse(p256dh: &str, auth: &str) -> Result<Self, (&'static str, String)> {
        let key = decode(p256dh).map_err(|e| ("p256dh", e))?;
        let p256dh: [u8; 65] = key.try_into().map_err(|k: Vec<u8>| {
            (
                "p256dh",
                format!(
                    "must be a 65-byte uncompressed P-256 point, not {} bytes",
                    k.len()
                ),
            )
        })?;
        let auth = decode(auth).map_err(|e| ("auth", e))?;
        let auth: [u8; 16] = auth
            .try_into()
            .map_err(|a: Vec<u8>| ("auth", format!("must be 16 bytes, not {}", a.len())))?;
        let probe = EphemeralPrivateKey::generate(&ECDH_P256, &SystemRandom::new())
            .map_err(|_| ("p256dh", "no randomness for a key check".to_owned()))?;
        agree_ephemeral(probe, &UnparsedPublicKey::new(&ECDH_P256, &p256dh), |_| ())
            .map_err(|_| ("p256dh", "is not a point on P-256".to_owned()))?;
        Ok(DeviceKeys { p256dh, auth })
    }
}

fn decode(s: &str) -> Result<Vec<u8>, String> {
    B64.decode(s.trim_end_matches('='))
        .map_err(|e| format!("must be base64url ({e})"))
}

/// Encrypts `plaintext` for the device with a fresh key and salt.
pub fn encrypt(keys: &DeviceKeys, plaintext: &[u8]) -> Result<Vec<u8>, String> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(format!(
            "payload of {} bytes is over the {MAX_PLAINTEXT} one record carries",
            plaintext.len()
        ));
    }
    let rng = SystemRandom::new();
    let mut salt = [0u8; 16];
    rng.fill(&mut salt)
        .map_err(|_| "no randomness".to_owned())?;
    let ephemeral =
        EphemeralPrivateKey::generate(&ECDH_P256, &rng).map_err(|_| "no randomness".to_owned())?;
    let public = ephemeral
        .compute_public_key()
        .map_err(|_| "key generation failed".to_owned())?;
    let as_public: [u8; 65] = public
        .as_ref()
        .try_into()
        .map_err(|_| "unexpected public key length".to_owned())?;
    agree_ephemeral(
        ephemeral,
        &UnparsedPublicKey::new(&ECDH_P256, &keys.p256dh),
        |secret| encrypt_with(secret, &as_public, keys, &salt, plaintext),
    )
    .map_err(|_| "key agreement failed".to_owned())
}

struct Len(usize);

impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn hkdf<const N: usize>(salt: &[u8], ikm: &[u8], info: &[&[u8]]) -> [u8; N] {
    let mut out = [0u8; N];
    Salt::new(HKDF_SHA256, salt)
        .extract(ikm)
        .expand(info, Len(N))
        .and_then(|okm| okm.fill(&mut out))
        .expect("HKDF output of at most 32 bytes");
    out
}

/// The deterministic part of [`encrypt`], given the ECDH secret, the sender's public key and
/// the salt (RFC 8291 section 3.4, RFC 8188 section 2).
pub fn encrypt_with(
    ecdh_secret: &[u8],
    as_public: &[u8; 65],
    keys: &DeviceKeys,
    salt: &[u8; 16],
    plaintext: &[u8],
) -> Vec<u8> {
    let ikm: [u8; 32] = hkdf(
        &keys.auth,
        ecdh_secret,
        &[b"WebPush: info\0", &keys.p256dh, as_public],
    );
    let cek: [u8; 16] = hkdf(salt, &ikm, &[b"Content-Encoding: aes128gcm\0"]);
    let nonce: [u8; 12] = hkdf(salt, &ikm, &[b"Content-Encoding: nonce\0"]);
    let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + OVERHEAD);
    out.extend_from_slice(salt);
    out.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    out.push(65);
    out.extend_from_slice(as_public);
    let mut record = Vec::with_capacity(plaintext.len() + OVERHEAD);
    record.extend_from_slice(plaintext);
    record.push(2); // the last (and only) record
    let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &cek).expect("16-byte key"));
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::empty(),
        &mut record,
    )
    .expect("a record within the AES-GCM limits");
    out.extend_from_slice(&record);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Vec<u8> {
        B64.decode(s).unwrap()
    }

    /// RFC 8291, Appendix A: fixed keys and salt give exactly the published body.
    #[test]
    fn encryption_matches_the_rfc_8291_test_vector() {
        let keys = DeviceKeys::parse(
            "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
            "BTBZMqHH6r4Tts7J_aSIgg",
        )
        .unwrap();
        let as_public: [u8; 65] = b("BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8")
            .try_into()
            .unwrap();
        let salt: [u8; 16] = b("DGv6ra1nlYgDCS1FRnbzlw").try_into().unwrap();
        let ecdh_secret = b("kyrL1jIIOHEzg3sM2ZWRHDRB62YACZhhSlknJ672kSs");
        let body = encrypt_with(
            &ecdh_secret,
            &as_public,
            &keys,
            &salt,
            b"When I grow up, I want to be a watermelon",
        );
        assert_eq!(
            B64.encode(body),
            "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
        );
    }

    #[test]
    fn keys_that_are_not_a_point_or_the_wrong_size_are_refused_by_field() {
        let auth = "BTBZMqHH6r4Tts7J_aSIgg";
        let mut off_curve = [0u8; 65];
        off_curve[0] = 4;
        off_curve[1] = 1;
        let e = DeviceKeys::parse(&B64.encode(off_curve), auth).unwrap_err();
        assert_eq!(e.0, "p256dh");
        assert!(e.1.contains("not a point"), "{e:?}");
        assert_eq!(DeviceKeys::parse("AAAA", auth).unwrap_err().0, "p256dh");
        let good = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
        assert_eq!(DeviceKeys::parse(good, "AAAA").unwrap_err().0, "auth");
        assert_eq!(DeviceKeys::parse(good, "!!").unwrap_err().0, "auth");
    }

    #[test]
    fn a_payload_over_one_record_is_refused() {
        let keys = DeviceKeys::parse(
            "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
            "BTBZMqHH6r4Tts7J_aSIgg",
        )
        .unwrap();
        assert!(encrypt(&keys, &vec![b'x'; MAX_PLAINTEXT]).is_ok());
        assert!(encrypt(&keys, &vec![b'x'; MAX_PLAINTEXT + 1]).is_err());
    }
}

//! Standard Webhooks signatures: the headers of a signed POST, as the contract's webhooks
//! (push webhooks now, the customer's webhooks later) carry them.
//!
//! Guarantees:
//! - A secret is `whsec_` and the standard base64 of 24 to 64 random bytes; anything else is
//!   refused by [`Secret::parse`] with the reason.
//! - [`headers`] gives `webhook-id`, `webhook-timestamp` (seconds) and, with a secret,
//!   `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` keyed with the
//!   secret's bytes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::hmac;

/// The prefix of a secret as written.
pub const SECRET_PREFIX: &str = "whsec_";
/// Secret sizes accepted, in bytes.
pub const SECRET_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

/// A signing secret's bytes.
#[derive(Clone)]
pub struct Secret(hmac::Key);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// Reads `whsec_<base64>`.
    pub fn parse(s: &str) -> Result<Secret, String> {
        let b64 = s
            .strip_prefix(SECRET_PREFIX)
            .ok_or_else(|| format!("must start with {SECRET_PREFIX:?}"))?;
        let bytes = B64
            .decode(b64)
            .map_err(|_| format!("must be {SECRET_PREFIX} and standard base64"))?;
        if !SECRET_BYTES.contains(&bytes.len()) {
            return Err(format!(
                "must hold {} to {} bytes, not {}",
                SECRET_BYTES.start(),
                SECRET_BYTES.end(),
                bytes.len()
            ));
        }
        Ok(Secret(hmac::Key::new(hmac::HMAC_SHA256, &bytes)))
    }

    /// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(format!("{id}.{timestamp}.").as_bytes());
        ctx.update(body);
        format!("v1,{}", B64.encode(ctx.sign().as_ref()))
    }
}

/// The Standard Webhooks headers of one attempt: id and timestamp always, the signature when
/// there is a secret.
pub fn headers(
    secret: Option<&Secret>,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let mut h = vec![
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", timestamp.to_string()),
    ];
    if let Some(secret) = secret {
        h.push(("webhook-signature", secret.sign(id, timestamp, body)));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification and its libraries' tests.
    #[test]
    fn signing_matches_the_standard_webhooks_example() {
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            secret.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_are_whsec_and_base64_of_24_to_64_bytes() {
        let of = |n: usize| format!("whsec_{}", B64.encode(vec![7u8; n]));
        assert!(Secret::parse(&of(24)).is_ok());
        assert!(Secret::parse(&of(64)).is_ok());
        for (bad, why) in [
            (of(23), "24 to 64 bytes"),
            (of(65), "24 to 64 bytes"),
            (B64.encode([7u8; 32]), "whsec_"),
            ("whsec_not base64!".to_owned(), "base64"),
            ("whsec_".to_owned(), "24 to 64 bytes"),
        ] {
            let e = Secret::parse(&bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn without_a_secret_there_is_no_signature_header() {
        let h = headers(None, "msg_1", 5, b"{}");
        assert_eq!(
            h,
            vec![
                ("webhook-id", "msg_1".to_owned()),
                ("webhook-timestamp", "5".to_owned())
            ]
        );
    }
}

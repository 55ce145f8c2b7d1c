//! Password checks at login, written once for every backend (ADR 3).
//!
//! Guarantees:
//! - An unknown account or email costs one argon2 verification against a dummy hash, like a
//!   known one, and answers the same `invalid_credentials`: which part was wrong is never
//!   told, by the answer or by its time.
//! - After argon2 accepts a password, a keyed digest `SHA-256(secret, agent id, stored hash,
//!   password)` is kept in memory (per-process random secret), and a later login with the
//!   same password matches it in constant time instead of paying argon2 again. A wrong
//!   password always costs a full verification. A changed hash or a removed agent makes the
//!   entry useless; the cache holds at most [`MAX_ENTRIES`] agents, then starts over.
//! - Hashing runs on the bounded pool; a full pool is `unavailable` with a retry hint.

use std::sync::Arc;

use parking_lot::Mutex;
use rand::RngCore;
use rustc_hash::FxHashMap as HashMap;
use sha2::{Digest, Sha256};

use super::service::hashing_busy;
use crate::backend::{BackendError, BackendResult};
use crate::hashing::HashPool;

/// Agents remembered before the cache starts over.
pub const MAX_ENTRIES: usize = 100_000;

/// Checks passwords for one server process.
pub struct Credentials {
    hasher: Arc<HashPool>,
    secret: [u8; 32],
    verified: Mutex<HashMap<String, [u8; 32]>>,
    /// A real argon2 hash to verify against when the email is unknown.
    dummy_hash: String,
}

impl Credentials {
    pub fn new(hasher: Arc<HashPool>) -> Credentials {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        // On a thread of its own, so its hashing memory goes when the thread does.
        let dummy_hash =
            std::thread::spawn(|| crate::auth::hash_password("presence-dummy-password"))
                .join()
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
        Credentials {
            hasher,
            secret,
            verified: Mutex::new(HashMap::default()),
            dummy_hash,
        }
    }

    fn digest(&self, agent_id: &str, password_hash: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update(agent_id.as_bytes());
        h.update([0]);
        h.update(password_hash.as_bytes());
        h.update([0]);
        h.update(password.as_bytes());
        h.finalize().into()
    }

    /// `Ok` when `password` is the password of `found` (an agent id and its stored hash);
    /// `InvalidCredentials` when it is not, or when no agent was found.
    pub async fn check(&self, found: Option<(&str, &str)>, password: &str) -> BackendResult<()> {
        let Some((agent_id, hash)) = found else {
            let (pw, dummy) = (password.to_owned(), self.dummy_hash.clone());
            self.hasher
                .run(move || crate::auth::verify_password(&pw, &dummy))
                .await
                .map_err(|_| hashing_busy())?;
            return Err(BackendError::InvalidCredentials);
        };
        let digest = self.digest(agent_id, hash, password);
        let cached = self.verified.lock().get(agent_id).copied();
        if cached.is_some_and(|c| crate::auth::secure_eq(&c, &digest)) {
            return Ok(());
        }
        let (pw, h) = (password.to_owned(), hash.to_owned());
        let ok = self
            .hasher
            .run(move || crate::auth::verify_password(&pw, &h))
            .await
            .map_err(|_| hashing_busy())?;
        if !ok {
            return Err(BackendError::InvalidCredentials);
        }
        let mut verified = self.verified.lock();
        if verified.len() >= MAX_ENTRIES {
            verified.clear();
        }
        verified.insert(agent_id.to_owned(), digest);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_known_password_is_accepted_from_the_cache_and_a_wrong_one_never_is() {
        let c = Credentials::new(HashPool::new(1));
        let hash = crate::auth::hash_password("right").unwrap();
        assert_eq!(
            c.check(Some(("a", &hash)), "wrong").await,
            Err(BackendError::InvalidCredentials)
        );
        assert!(c.verified.lock().is_empty(), "a failure is not remembered");
        c.check(Some(("a", &hash)), "right").await.unwrap();
        assert_eq!(c.verified.lock().len(), 1);
        c.check(Some(("a", &hash)), "right").await.unwrap();
        assert_eq!(
            c.check(Some(("a", &hash)), "wrong").await,
            Err(BackendError::InvalidCredentials),
            "a cached agent still has its wrong passwords refused"
        );
        let other = crate::auth::hash_password("other").unwrap();
        assert_eq!(
            c.check(Some(("a", &other)), "right").await,
            Err(BackendError::InvalidCredentials),
            "a changed hash does not match the old entry"
        );
        assert_eq!(
            c.check(None, "right").await,
            Err(BackendError::InvalidCredentials)
        );
    }
}

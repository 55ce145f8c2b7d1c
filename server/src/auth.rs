//! Credentials: argon2 password hashes, bearer tokens (256-bit random, stored only as SHA-256
//! hashes), and the failed-login rate limiter.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use parking_lot::Mutex;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

/// Hashes a password with argon2id (default parameters). CPU-heavy: call off the runtime.
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Checks a password against a stored argon2 hash. CPU-heavy: call off the runtime.
pub fn verify_password(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A new bearer token: 32 random bytes, hex.
pub fn new_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

pub type TokenHash = [u8; 32];

pub fn token_hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// A random identifier with a readable prefix, e.g. `agt_3f9c...`.
pub fn new_id(prefix: &str) -> String {
    let mut b = [0u8; 12];
    rand::rng().fill_bytes(&mut b);
    format!("{prefix}_{}", hex::encode(b))
}

/// Constant-time comparison for secrets of equal or different lengths.
pub fn secure_eq(a: &[u8], b: &[u8]) -> bool {
    let ha = Sha256::digest(a);
    let hb = Sha256::digest(b);
    ha.iter()
        .zip(hb.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// Counts failed logins and refuses further attempts while a window is full.
///
/// Two windows, from PROTOCOL.md: 10 failures per account+email in 5 minutes, and 100
/// failures per client IP in 1 minute. Only failures count, so load tests that open thousands
/// of sessions are never limited.
pub struct LoginLimiter {
    by_user: Mutex<HashMap<(String, String), VecDeque<Instant>>>,
    by_ip: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

pub const USER_LIMIT: usize = 10;
pub const USER_WINDOW: Duration = Duration::from_secs(300);
pub const IP_LIMIT: usize = 100;
pub const IP_WINDOW: Duration = Duration::from_secs(60);

fn prune(q: &mut VecDeque<Instant>, window: Duration, now: Instant) {
    while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
        q.pop_front();
    }
}

fn wait_secs(q: &VecDeque<Instant>, window: Duration, now: Instant) -> u64 {
    q.front()
        .map(|t| {
            (window.saturating_sub(now.duration_since(*t)))
                .as_secs_f64()
                .ceil() as u64
        })
        .unwrap_or(1)
        .max(1)
}

impl Default for LoginLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl LoginLimiter {
    pub fn new() -> Self {
        LoginLimiter {
            by_user: Mutex::new(HashMap::new()),
            by_ip: Mutex::new(HashMap::new()),
        }
    }

    fn user_key(account: &str, email: &str) -> (String, String) {
        (account.to_ascii_lowercase(), email.trim().to_lowercase())
    }

    /// `Err(retry_after_secs)` while either window is full.
    pub fn check(&self, account: &str, email: &str, ip: Option<IpAddr>) -> Result<(), u64> {
        let now = Instant::now();
        if let Some(ip) = ip {
            let mut m = self.by_ip.lock();
            if let Some(q) = m.get_mut(&ip) {
                prune(q, IP_WINDOW, now);
                if q.len() >= IP_LIMIT {
                    return Err(wait_secs(q, IP_WINDOW, now));
                }
            }
        }
        let mut m = self.by_user.lock();
        if let Some(q) = m.get_mut(&Self::user_key(account, email)) {
            prune(q, USER_WINDOW, now);
            if q.len() >= USER_LIMIT {
                return Err(wait_secs(q, USER_WINDOW, now));
            }
        }
        Ok(())
    }

    pub fn record_failure(&self, account: &str, email: &str, ip: Option<IpAddr>) {
        let now = Instant::now();
        if let Some(ip) = ip {
            let mut m = self.by_ip.lock();
            if m.len() > 100_000 {
                m.retain(|_, q| {
                    prune(q, IP_WINDOW, now);
                    !q.is_empty()
                });
            }
            m.entry(ip).or_default().push_back(now);
        }
        let mut m = self.by_user.lock();
        if m.len() > 100_000 {
            m.retain(|_, q| {
                prune(q, USER_WINDOW, now);
                !q.is_empty()
            });
        }
        m.entry(Self::user_key(account, email))
            .or_default()
            .push_back(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hash_round_trips_and_rejects_wrong_password() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn tokens_are_256_bit_and_hashed() {
        let t = new_token();
        assert_eq!(t.len(), 64);
        assert_ne!(token_hash(&t), token_hash(&new_token()));
    }

    #[tokio::test(start_paused = true)]
    async fn login_limit_blocks_after_ten_failures_then_lifts() {
        let l = LoginLimiter::new();
        for _ in 0..USER_LIMIT {
            assert!(l.check("acme", "a@x", None).is_ok());
            l.record_failure("acme", "A@x", None);
        }
        let wait = l.check("acme", "a@x", None).unwrap_err();
        assert!(wait > 0 && wait <= 300);
        // Another user of the same account is not affected.
        assert!(l.check("acme", "b@x", None).is_ok());
        tokio::time::advance(USER_WINDOW).await;
        assert!(l.check("acme", "a@x", None).is_ok());
    }
}

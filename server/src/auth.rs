//! Credentials: argon2 password hashes, bearer tokens (256-bit random, stored only as SHA-256
//! hashes), and the failed-login rate limiter.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Argon2, Block, Params};
use parking_lot::Mutex;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Hashes a password with argon2id (default parameters). CPU-heavy: call off the runtime
/// (the server runs it on [`crate::hashing::HashPool`]).
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    let argon = Argon2::default();
    let params = argon.params().clone();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt
        .as_salt()
        .decode_b64(&mut salt_buf)
        .map_err(|e| e.to_string())?;
    with_blocks(params.block_count(), |blocks| {
        argon.hash_password_into_with_memory(password.as_bytes(), salt_bytes, &mut out, blocks)
    })
    .map_err(|e| e.to_string())?;
    let hash = PasswordHash {
        algorithm: argon2::Algorithm::Argon2id.ident(),
        version: Some(argon2::Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| e.to_string())?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| e.to_string())?),
    };
    Ok(hash.to_string())
}

/// Checks a password against a stored argon2 hash. CPU-heavy: call off the runtime.
pub fn verify_password(password: &str, hash: &str) -> bool {
    let check = || -> Option<bool> {
        let parsed = PasswordHash::new(hash).ok()?;
        let algorithm = argon2::Algorithm::try_from(parsed.algorithm).ok()?;
        let version = match parsed.version {
            Some(v) => argon2::Version::try_from(v).ok()?,
            None => argon2::Version::default(),
        };
        let params = Params::try_from(&parsed).ok()?;
        let expected = parsed.hash?;
        let mut salt_buf = [0u8; 64];
        let salt = parsed.salt?.decode_b64(&mut salt_buf).ok()?;
        let argon = Argon2::new(algorithm, version, params.clone());
        let mut out = vec![0u8; expected.len()];
        with_blocks(params.block_count(), |blocks| {
            argon.hash_password_into_with_memory(password.as_bytes(), salt, &mut out, blocks)
        })
        .ok()?;
        Some(secure_eq(&out, expected.as_bytes()))
    };
    check().unwrap_or(false)
}

thread_local! {
    /// argon2's working memory, kept by each hashing thread for its life: allocated once at
    /// the largest size seen, never freed and re-allocated per hash, so memory stays flat
    /// however many logins come.
    static BLOCKS: std::cell::RefCell<Vec<Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn with_blocks<T>(count: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
    BLOCKS.with(|b| {
        let mut b = b.borrow_mut();
        if b.len() < count {
            b.resize(count, Block::default());
        }
        f(&mut b[..count])
    })
}

/// A new bearer token: 32 random bytes, hex.
pub fn new_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// Whether `s` has the shape of a token [`new_token`] makes (64 lowercase hex digits): any
/// other string is unknown without looking it up.
pub fn is_token_shaped(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

pub type TokenHash = [u8; 32];

pub fn token_hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// The fewest characters `--admin-token` may have.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 16;

/// A new session id, `ses_` then the time in milliseconds (12 hex digits) then 8 random
/// bytes: ids sort by age (strictly increasing within a process, so sessions opened in one
/// millisecond keep their order), which is how the oldest of an agent's sessions is found.
pub fn new_session_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let prev = LAST
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(now.max(last + 1))
        })
        .unwrap_or(now);
    let mut b = [0u8; 8];
    rand::rng().fill_bytes(&mut b);
    format!("ses_{:012x}{}", now.max(prev + 1), hex::encode(b))
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

/// Where login attempts take their slot: [`LoginLimiter`] on one node, or a limiter whose
/// windows are shared by every node of a cluster
/// ([`crate::cluster::limits::SharedLimiter`]). Both keep the windows below.
#[async_trait::async_trait]
pub trait LoginGate: Send + Sync {
    /// Takes a slot for one attempt, waiting up to [`SLOT_WAIT`] while in-flight attempts
    /// fill a window.
    /// `device`: take the slot in that known device's window instead of the account+email
    /// one (see [`user_key`]).
    async fn take(
        &self,
        account: &str,
        email: &str,
        device: Option<&str>,
        ip: Option<IpAddr>,
    ) -> Result<Box<dyn AttemptSlot + '_>, Refused>;
}

/// Why a login attempt got no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Failures fill a window (or in-flight attempts stayed too long): retry after this many
    /// seconds.
    Limited(u64),
    /// The shared windows are out of reach; no attempt is checked without them.
    Unavailable,
}

/// A slot held by one attempt; dropping it without [`AttemptSlot::failed`] frees it without
/// counting a failure.
pub trait AttemptSlot: Send {
    /// The credentials were wrong: the slot becomes a failure in both windows.
    fn failed(self: Box<Self>);
}

impl AttemptSlot for Attempt<'_> {
    fn failed(self: Box<Self>) {
        Attempt::failed(*self)
    }
}

#[async_trait::async_trait]
impl LoginGate for LoginLimiter {
    async fn take(
        &self,
        account: &str,
        email: &str,
        device: Option<&str>,
        ip: Option<IpAddr>,
    ) -> Result<Box<dyn AttemptSlot + '_>, Refused> {
        Ok(Box::new(
            self.begin_keyed(user_key(account, email, device), ip)
                .await
                .map_err(Refused::Limited)?,
        ))
    }
}

/// Counts failed logins and refuses further attempts while a window is full.
///
/// Two windows, from PROTOCOL.md: 10 failures per account+email in 5 minutes, and 100
/// failures per client IP in 1 minute. Only failures count, so load tests that open thousands
/// of sessions are never limited.
///
/// Attempts **in flight** count too: an attempt takes a slot before its password is checked
/// ([`LoginLimiter::begin`]) and gives it back when it ends, as a failure or not. So 40
/// simultaneous wrong passwords cannot all be checked while the window holds 10: the first
/// 10 run, the others wait for a slot (at most [`SLOT_WAIT`]); when those 10 fail, the window
/// is full and the rest are refused. Correct passwords free their slot at once.
pub struct LoginLimiter {
    windows: Mutex<Windows>,
    /// Woken whenever an attempt ends, so waiting attempts look again.
    ended: Notify,
}

#[derive(Default)]
struct Windows {
    /// By [`user_key`]: 32 bytes whatever the strings sent.
    by_user: HashMap<[u8; 32], Window>,
    /// By [`ip_key`].
    by_ip: HashMap<IpAddr, Window>,
}

/// The key an account+email window is kept under: a digest of the pair as the contract
/// compares them (account case-insensitive, email trimmed and case-insensitive), so the
/// memory a window takes does not depend on what a client sends.
///
/// With a `device`, the window of that agent's known device: after the account+email window
/// is full, a device the agent signed in from before still gets [`USER_LIMIT`] attempts of its
/// own, so nobody who knows an email keeps its agent off the devices it uses.
pub fn user_key(account: &str, email: &str, device: Option<&str>) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(account.to_ascii_lowercase().as_bytes());
    h.update([0]);
    h.update(email.trim().to_lowercase().as_bytes());
    if let Some(d) = device {
        h.update([0]);
        h.update(d.as_bytes());
    }
    h.finalize().into()
}

/// The address a per-address window counts: an IPv4 address (an IPv4-mapped IPv6 one as
/// its IPv4), or an IPv6 address's /64 prefix (one subscriber's whole allocation).
pub fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(std::net::Ipv6Addr::from(prefix))
            }
        },
    }
}

#[derive(Default)]
struct Window {
    failures: VecDeque<Instant>,
    in_flight: usize,
}

impl Window {
    /// `Err(wait)` when failures alone fill the window; `Ok(false)` when in-flight attempts
    /// fill it (wait for one to end); `Ok(true)` when there is room.
    fn room(&mut self, limit: usize, window: Duration, now: Instant) -> Result<bool, u64> {
        prune(&mut self.failures, window, now);
        if self.failures.len() >= limit {
            return Err(wait_secs(&self.failures, window, now));
        }
        Ok(self.failures.len() + self.in_flight < limit)
    }

    fn idle(&self) -> bool {
        self.failures.is_empty() && self.in_flight == 0
    }
}

pub const USER_LIMIT: usize = 10;
pub const USER_WINDOW: Duration = Duration::from_secs(300);
pub const IP_LIMIT: usize = 100;
pub const IP_WINDOW: Duration = Duration::from_secs(60);
/// Longest an attempt waits for an in-flight one to end before it is refused.
pub const SLOT_WAIT: Duration = Duration::from_secs(10);
/// Above this many tracked keys, idle ones are dropped.
const MAX_KEYS: usize = 100_000;

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

/// A login attempt holding its slot; dropping it without [`Attempt::failed`] frees the slot
/// without counting a failure.
pub struct Attempt<'a> {
    limiter: &'a LoginLimiter,
    user: [u8; 32],
    ip: Option<IpAddr>,
}

impl Attempt<'_> {
    /// The credentials were wrong: the slot becomes a failure in both windows.
    pub fn failed(self) {
        let now = Instant::now();
        let mut w = self.limiter.windows.lock();
        if let Some(ip) = self.ip
            && let Some(win) = w.by_ip.get_mut(&ip)
        {
            win.failures.push_back(now);
        }
        if let Some(win) = w.by_user.get_mut(&self.user) {
            win.failures.push_back(now);
        }
        // `Drop` frees the in-flight slots and wakes waiters.
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        {
            let mut w = self.limiter.windows.lock();
            if let Some(ip) = self.ip
                && let Some(win) = w.by_ip.get_mut(&ip)
            {
                win.in_flight = win.in_flight.saturating_sub(1);
            }
            if let Some(win) = w.by_user.get_mut(&self.user) {
                win.in_flight = win.in_flight.saturating_sub(1);
            }
        }
        self.limiter.ended.notify_waiters();
    }
}

impl LoginLimiter {
    pub fn new() -> Self {
        LoginLimiter {
            windows: Mutex::new(Windows::default()),
            ended: Notify::new(),
        }
    }

    /// Takes a slot for one attempt, waiting up to [`SLOT_WAIT`] while in-flight attempts
    /// fill a window. `Err(retry_after_secs)` while failures fill either window.
    pub async fn begin(
        &self,
        account: &str,
        email: &str,
        ip: Option<IpAddr>,
    ) -> Result<Attempt<'_>, u64> {
        self.begin_keyed(user_key(account, email, None), ip).await
    }

    async fn begin_keyed(&self, user: [u8; 32], ip: Option<IpAddr>) -> Result<Attempt<'_>, u64> {
        let ip = ip.map(ip_key);
        let deadline = Instant::now() + SLOT_WAIT;
        loop {
            // Register for the wake-up before looking, so an attempt ending in between is
            // not missed.
            let ended = self.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if self.try_take(&user, ip)? {
                return Ok(Attempt {
                    limiter: self,
                    user,
                    ip,
                });
            }
            if tokio::time::timeout_at(deadline, ended).await.is_err() {
                return Err(1);
            }
        }
    }

    fn try_take(&self, user: &[u8; 32], ip: Option<IpAddr>) -> Result<bool, u64> {
        let now = Instant::now();
        let mut w = self.windows.lock();
        let w = &mut *w;
        if w.by_ip.len() > MAX_KEYS {
            w.by_ip.retain(|_, win| {
                prune(&mut win.failures, IP_WINDOW, now);
                !win.idle()
            });
        }
        if w.by_user.len() > MAX_KEYS {
            w.by_user.retain(|_, win| {
                prune(&mut win.failures, USER_WINDOW, now);
                !win.idle()
            });
        }
        let ip_room = match ip {
            Some(ip) => w
                .by_ip
                .entry(ip)
                .or_default()
                .room(IP_LIMIT, IP_WINDOW, now)?,
            None => true,
        };
        let user_room = w
            .by_user
            .entry(*user)
            .or_default()
            .room(USER_LIMIT, USER_WINDOW, now)?;
        if !(ip_room && user_room) {
            return Ok(false);
        }
        if let Some(ip) = ip
            && let Some(win) = w.by_ip.get_mut(&ip)
        {
            win.in_flight += 1;
        }
        if let Some(win) = w.by_user.get_mut(user) {
            win.in_flight += 1;
        }
        Ok(true)
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
    fn hashes_stay_compatible_with_the_argon2_crates_own() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let theirs = Argon2::default()
            .hash_password(b"pw-secret-1", &salt)
            .unwrap()
            .to_string();
        assert!(
            verify_password("pw-secret-1", &theirs),
            "hashes stored before still verify"
        );
        assert!(!verify_password("px", &theirs));
        let ours = hash_password("pw-secret-1").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"pw-secret-1", &parsed)
                .is_ok()
        );
    }

    #[test]
    fn tokens_are_256_bit_and_hashed() {
        let t = new_token();
        assert!(is_token_shaped(&t));
        assert!(!is_token_shaped(&t.to_uppercase()));
        assert!(!is_token_shaped(&t[1..]));
        assert!(!is_token_shaped(&format!("{}g", &t[1..])));
        assert_eq!(t.len(), 64);
        assert_ne!(token_hash(&t), token_hash(&new_token()));
    }

    #[test]
    fn addresses_count_by_ipv4_address_and_ipv6_slash_64() {
        let key = |s: &str| ip_key(s.parse().unwrap()).to_string();
        assert_eq!(key("203.0.113.7"), "203.0.113.7");
        assert_eq!(key("::ffff:203.0.113.7"), "203.0.113.7");
        assert_eq!(key("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_window_takes_the_same_memory_whatever_is_sent_and_one_64_shares_it() {
        let l = LoginLimiter::new();
        let huge = "x".repeat(100_000);
        for i in 0..USER_LIMIT {
            let ip: IpAddr = format!("2001:db8::{i:x}").parse().unwrap();
            l.begin(&huge, &format!("{huge}@x"), Some(ip))
                .await
                .unwrap()
                .failed();
        }
        // The strings are not kept; the account+email window is full however it is spelled.
        assert_eq!(l.windows.lock().by_user.len(), 1);
        assert!(
            l.begin(&huge.to_uppercase(), &format!(" {huge}@X"), None)
                .await
                .is_err()
        );
        // Ten addresses of one /64 are one address.
        assert_eq!(l.windows.lock().by_ip.len(), 1);
        let w = l.windows.lock();
        assert_eq!(w.by_ip.values().next().unwrap().failures.len(), USER_LIMIT);
    }

    #[tokio::test(start_paused = true)]
    async fn login_limit_blocks_after_ten_failures_then_lifts() {
        let l = LoginLimiter::new();
        for _ in 0..USER_LIMIT {
            l.begin("acme", "A@x", None).await.unwrap().failed();
        }
        let wait = l.begin("acme", "a@x", None).await.err().unwrap();
        assert!(wait > 0 && wait <= 300);
        // Another user of the same account is not affected.
        assert!(l.begin("acme", "b@x", None).await.is_ok());
        tokio::time::advance(USER_WINDOW).await;
        assert!(l.begin("acme", "a@x", None).await.is_ok());
    }

    /// As many attempts in flight for `acme`/`a@x` as the limit allows.
    async fn fill_with_attempts(l: &LoginLimiter) -> Vec<Attempt<'_>> {
        futures_util::future::join_all((0..USER_LIMIT).map(|_| l.begin("acme", "a@x", None)))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_in_flight_count_against_the_limit() {
        let l = LoginLimiter::new();
        let held = fill_with_attempts(&l).await;
        // The window is full of attempts still being checked: an 11th waits, then is refused
        // once they all fail.
        let eleventh = l.begin("acme", "a@x", None);
        tokio::pin!(eleventh);
        assert!(
            tokio::time::timeout(Duration::from_millis(100), eleventh.as_mut())
                .await
                .is_err(),
            "an attempt beyond the limit must not start while ten are in flight"
        );
        for a in held {
            a.failed();
        }
        assert!(eleventh.await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_attempt_goes_ahead_when_in_flight_ones_succeed() {
        let l = LoginLimiter::new();
        let held = fill_with_attempts(&l).await;
        let next = l.begin("acme", "a@x", None);
        tokio::pin!(next);
        assert!(
            tokio::time::timeout(Duration::from_millis(100), next.as_mut())
                .await
                .is_err()
        );
        drop(held);
        assert!(next.await.is_ok());
    }
}

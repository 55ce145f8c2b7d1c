//! Failed-login limits shared by every node of a cluster, in Redis.
//!
//! The same windows as [`crate::auth::LoginLimiter`] (10 failures per account+email in
//! 5 minutes, 100 per client IP in 1 minute), and the same rule that attempts in flight take
//! a slot before their password is checked, so neither concurrency nor spreading attempts
//! over nodes passes the limit. Each window is a sorted set of failure times plus an
//! in-flight counter under one hash tag, changed by one script at a time; Redis `TIME`
//! decides what has aged out. An in-flight counter expires [`IN_FLIGHT_TTL_MS`] after its
//! last change, so a node that dies mid-attempt cannot hold slots for long.

use std::net::IpAddr;
use std::time::Duration;

use redis::Script;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::hot::Hot;
use crate::auth::{
    AttemptSlot, IP_LIMIT, IP_WINDOW, LoginGate, Refused, SLOT_WAIT, USER_LIMIT, USER_WINDOW,
    ip_key, user_key,
};

/// How long an in-flight counter outlives its last change.
pub const IN_FLIGHT_TTL_MS: u64 = 30_000;

/// How often an attempt waiting for a slot looks again (slots free up on other nodes too).
const RECHECK: Duration = Duration::from_millis(50);

const TAKE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local f = redis.call('ZCARD', KEYS[1])
if f >= limit then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {-1, math.max(1, math.ceil((tonumber(first[2]) + window - now) / 1000))}
end
local n = tonumber(redis.call('GET', KEYS[2]) or '0')
if f + n >= limit then return {0, 0} end
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return {1, 0}
"#;

const END: &str = r#"
if tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then redis.call('DECR', KEYS[2]) end
if ARGV[1] == '1' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
"#;

/// One window: its keys and terms.
#[derive(Clone)]
struct Window {
    failures: String,
    in_flight: String,
    limit: usize,
    span: Duration,
}

impl Window {
    fn new(what: &str, id: &str, limit: usize, span: Duration) -> Window {
        // Hashed: the key never carries user input, and its hash tag stays well formed.
        let h = hex::encode(&Sha256::digest(format!("{what}\0{id}"))[..12]);
        Window {
            failures: format!("pr:lim:{{{h}}}:f"),
            in_flight: format!("pr:lim:{{{h}}}:n"),
            limit,
            span,
        }
    }
}

enum Took {
    Yes,
    Full,
    Refused(u64),
}

/// The cluster-wide [`LoginGate`].
pub struct SharedLimiter {
    hot: Hot,
    take: Script,
    end: Script,
}

impl SharedLimiter {
    pub fn new(hot: Hot) -> SharedLimiter {
        SharedLimiter {
            hot,
            take: Script::new(TAKE),
            end: Script::new(END),
        }
    }

    async fn try_take(&self, w: &Window) -> Result<Took, redis::RedisError> {
        let mut c = self.hot.connection();
        let (code, wait): (i64, u64) = self
            .take
            .key(&w.failures)
            .key(&w.in_flight)
            .arg(w.limit)
            .arg(w.span.as_millis() as u64)
            .arg(IN_FLIGHT_TTL_MS)
            .invoke_async(&mut c)
            .await?;
        Ok(match code {
            1 => Took::Yes,
            0 => Took::Full,
            _ => Took::Refused(wait),
        })
    }

    fn release(&self, windows: Vec<Window>, failed: bool) {
        let hot = self.hot.clone();
        let end = self.end.clone();
        let member = uuid::Uuid::new_v4().simple().to_string();
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            let mut c = hot.connection();
            for w in windows {
                let r: Result<i64, _> = end
                    .key(&w.failures)
                    .key(&w.in_flight)
                    .arg(if failed { "1" } else { "0" })
                    .arg(w.span.as_millis() as u64)
                    .arg(&member)
                    .invoke_async(&mut c)
                    .await;
                if let Err(e) = r {
                    tracing::warn!(error = %e, "could not record a login attempt's end");
                }
            }
        });
    }
}

/// A slot held in every window of one attempt.
struct Slot<'a> {
    limiter: &'a SharedLimiter,
    windows: Vec<Window>,
    failed: bool,
}

impl AttemptSlot for Slot<'_> {
    fn failed(mut self: Box<Self>) {
        self.failed = true;
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.limiter
            .release(std::mem::take(&mut self.windows), self.failed);
    }
}

#[async_trait::async_trait]
impl LoginGate for SharedLimiter {
    async fn take(
        &self,
        account: &str,
        email: &str,
        device: Option<&str>,
        ip: Option<IpAddr>,
    ) -> Result<Box<dyn AttemptSlot + '_>, Refused> {
        let user = hex::encode(user_key(account, email, device));
        let mut wanted = Vec::new();
        if let Some(ip) = ip.map(ip_key) {
            wanted.push(Window::new("ip", &ip.to_string(), IP_LIMIT, IP_WINDOW));
        }
        wanted.push(Window::new("user", &user, USER_LIMIT, USER_WINDOW));
        let deadline = Instant::now() + SLOT_WAIT;
        let mut slot = Slot {
            limiter: self,
            windows: Vec::new(),
            failed: false,
        };
        for w in wanted {
            loop {
                match self.try_take(&w).await {
                    Ok(Took::Yes) => break,
                    Ok(Took::Refused(wait)) => return Err(Refused::Limited(wait)),
                    Ok(Took::Full) if Instant::now() + RECHECK < deadline => {
                        tokio::time::sleep(RECHECK).await
                    }
                    Ok(Took::Full) => return Err(Refused::Limited(1)),
                    Err(e) => {
                        // No password is checked without the limits that guard it.
                        tracing::warn!(error = %e, "login limits unreachable");
                        return Err(Refused::Unavailable);
                    }
                }
            }
            slot.windows.push(w);
        }
        Ok(Box::new(slot))
    }
}

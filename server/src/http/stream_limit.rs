//! How many event streams one client address holds open at once (`--max-streams-per-ip`).
//!
//! Guarantees: a stream takes a permit before anything is subscribed; past the limit the
//! request gets `503 unavailable` with `Retry-After`; the permit is given back when the
//! stream's body is dropped, however it ends. Addresses count as the login limits count
//! them ([`crate::auth::ip_key`]: an IPv4 address, an IPv6 /64), and the map holds only
//! addresses with a stream open, so its size is bounded by the open streams.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::ApiError;

pub struct StreamLimiter {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// A stream's place in its address's count, given back on drop.
pub struct StreamPermit {
    limiter: Option<(Arc<StreamLimiter>, IpAddr)>,
}

impl StreamLimiter {
    pub fn new(max: usize) -> Arc<StreamLimiter> {
        Arc::new(StreamLimiter {
            max,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A permit for one more stream of `client` (none counted without an address).
    pub fn acquire(self: &Arc<Self>, client: Option<IpAddr>) -> Result<StreamPermit, ApiError> {
        let Some(ip) = client.map(crate::auth::ip_key) else {
            return Ok(StreamPermit { limiter: None });
        };
        let mut open = self.open.lock();
        let n = open.entry(ip).or_default();
        if *n >= self.max {
            if *n == 0 {
                open.remove(&ip);
            }
            return Err(ApiError::unavailable(
                format!("at most {} open streams per client address", self.max),
                5,
            ));
        }
        *n += 1;
        Ok(StreamPermit {
            limiter: Some((self.clone(), ip)),
        })
    }

    /// Streams open for `client` now.
    pub fn open_for(&self, client: IpAddr) -> usize {
        let ip = crate::auth::ip_key(client);
        self.open.lock().get(&ip).copied().unwrap_or(0)
    }
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        if let Some((limiter, ip)) = self.limiter.take() {
            let mut open = limiter.open.lock();
            if let Some(n) = open.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    open.remove(&ip);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_the_limit_and_gets_each_stream_back() {
        let l = StreamLimiter::new(2);
        let a: IpAddr = "203.0.113.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8::ffff".parse().unwrap();
        let p1 = l.acquire(Some(a)).unwrap();
        let _p2 = l.acquire(Some(a)).unwrap();
        assert!(l.acquire(Some(a)).is_err());
        let _q1 = l.acquire(Some(b)).unwrap();
        let _q2 = l.acquire(Some(same_64)).unwrap();
        assert!(l.acquire(Some(b)).is_err(), "one /64 is one address");
        drop(p1);
        assert_eq!(l.open_for(a), 1);
        assert!(l.acquire(Some(a)).is_ok());
        assert!(l.acquire(None).is_ok(), "no address, no count");
    }
}

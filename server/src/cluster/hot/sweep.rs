//! The sweep of one partition's deadline index.
//!
//! Guarantees: the script removes every entry it reports, so when several nodes sweep one
//! partition each lease end, renew time, opening-hours boundary, timed status's end and idle
//! check is reported to exactly one of them; a lease end is published once, by the script.

use redis::Value;

use super::codec::{int, items, text};
use super::keys::{deadlines_key, tag};
use super::{Hot, Lease, redis_err};
use crate::backend::BackendResult;

/// What a sweep of one partition found due.
#[derive(Debug, Default)]
pub struct Swept {
    pub now: i64,
    /// The partition's next deadline, if any.
    pub next: Option<i64>,
    /// (account, session, agent, lease end) whose lease ended: removed and published.
    pub ended: Vec<(String, String, String, i64)>,
    /// (account, session, lease, renew time) whose renew time came.
    pub renew: Vec<(String, String, Lease, i64)>,
    /// Accounts whose opening-hours boundary came.
    pub flips: Vec<String>,
    /// (account, agent, until) whose timed status's end came.
    pub status_ends: Vec<(String, String, i64)>,
    /// (account, agent) whose reports said they go idle now.
    pub idle_checks: Vec<(String, String)>,
}

impl Hot {
    /// Removes and reports what is due in partition `p`.
    pub async fn sweep(&self, p: u32) -> BackendResult<Swept> {
        let mut c = self.conn.clone();
        let mut inv = self.scripts.sweep.key(deadlines_key(p));
        inv.arg(tag(p));
        let v: Value = self
            .timed(inv.invoke_async(&mut c))
            .await
            .map_err(redis_err)?;
        let a = items(&v);
        let mut out = Swept {
            now: self.seen(a.first().map_or(0, int)),
            next: a.get(1).map(int).filter(|n| *n >= 0),
            ..Swept::default()
        };
        for item in a.get(2).map(items).unwrap_or(&[]) {
            let f: Vec<String> = items(item).iter().map(text).collect();
            match f.first().map(String::as_str) {
                Some("s") if f.len() == 5 => out.ended.push((
                    f[1].clone(),
                    f[2].clone(),
                    f[3].clone(),
                    f[4].parse::<f64>().map_or(0, |x| x as i64),
                )),
                Some("r") if f.len() == 5 => {
                    if let Some(l) = Lease::decode(&f[3]) {
                        let at = f[4].parse::<f64>().map_or(0, |x| x as i64);
                        out.renew.push((f[1].clone(), f[2].clone(), l, at));
                    }
                }
                Some("f") if f.len() == 2 => out.flips.push(f[1].clone()),
                Some("t") if f.len() == 4 => out.status_ends.push((
                    f[1].clone(),
                    f[2].clone(),
                    f[3].parse::<f64>().map_or(0, |x| x as i64),
                )),
                Some("i") if f.len() == 4 => out.idle_checks.push((f[1].clone(), f[2].clone())),
                _ => {}
            }
        }
        Ok(out)
    }
}

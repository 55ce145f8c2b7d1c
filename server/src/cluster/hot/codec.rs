//! The values the hot state holds and publishes, and the readers of script replies.
//!
//! Guarantees: a [`Lease`] survives its encoding (`agent|mode|deadline|push`, the form the
//! Lua scripts split); an [`Event`] and a [`Profile`] are JSON, as every node's replica reads
//! them. A reply of an unexpected shape reads as zero, empty or absent, never a panic.

use redis::Value;
use serde::{Deserialize, Serialize};

use presence_protocol::{ChatboxView, EndReason, Mode, StatusView};

/// An event on an account's channel, as every node's replica reads it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub enum Event {
    View {
        view: ChatboxView,
    },
    Status {
        agent: String,
        status: StatusView,
        /// When PostgreSQL committed the change (µs since the epoch, by the system clock),
        /// for `presence_status_fanout_seconds`; absent on a repair (and from a node that
        /// predates it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at_us: Option<i64>,
    },
    Ended {
        agent: String,
        session: String,
        reason: EndReason,
    },
}

/// A lease as Redis holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    pub agent: String,
    pub mode: Mode,
    pub until: i64,
    pub push: bool,
}

impl Lease {
    pub fn encode(&self) -> String {
        let m = if self.mode == Mode::Background {
            'b'
        } else {
            'a'
        };
        format!("{}|{m}|{}|{}", self.agent, self.until, self.push as u8)
    }

    pub fn decode(s: &str) -> Option<Lease> {
        let mut it = s.split('|');
        let agent = it.next()?.to_owned();
        let mode = match it.next()? {
            "b" => Mode::Background,
            "a" => Mode::Active,
            _ => return None,
        };
        let until = it.next()?.parse().ok()?;
        let push = it.next()? == "1";
        Some(Lease {
            agent,
            mode,
            until,
            push,
        })
    }
}

/// An agent's profile as the views need it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Profile {
    pub role: presence_protocol::Role,
    pub groups: Vec<String>,
}

pub(super) fn int(v: &Value) -> i64 {
    match v {
        Value::Int(n) => *n,
        Value::BulkString(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .map_or(0, |f| f as i64),
        Value::SimpleString(s) => s.parse::<f64>().map_or(0, |f| f as i64),
        _ => 0,
    }
}

pub(super) fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(n) => n.to_string(),
        _ => String::new(),
    }
}

pub(super) fn items(v: &Value) -> &[Value] {
    match v {
        Value::Array(a) => a,
        _ => &[],
    }
}

pub(super) fn pairs(v: &Value) -> impl Iterator<Item = (String, String)> + '_ {
    items(v).chunks(2).filter_map(|c| match c {
        [k, v] => Some((text(k), text(v))),
        _ => None,
    })
}

//! Where an account's hot state lives: its partition and the Redis keys under that
//! partition's hash tag.
//!
//! Guarantees: an account's partition is a pure function of its id (FNV-1a), the same on
//! every node and every release; every key of one account (and its partition's deadline
//! index) carries the partition's hash tag `{pNN}`, so a script over them touches one slot.

/// Partitions of the account space; a node sweeps each one.
pub const PARTITIONS: u32 = 64;

/// The partition of an account (FNV-1a of its id).
pub fn partition(account_id: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in account_id.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h % PARTITIONS
}

pub(super) fn tag(p: u32) -> String {
    format!("pr:{{p{p:02}}}")
}

/// The keys of one account.
#[derive(Debug, Clone)]
pub struct Keys {
    pub meta: String,
    pub agents: String,
    pub leases: String,
    pub conn: String,
    /// Activity reports per session: `at|idle_ms`.
    pub activity: String,
    pub deadlines: String,
    pub channel: String,
}

impl Keys {
    pub fn of(account_id: &str) -> Keys {
        let t = tag(partition(account_id));
        Keys {
            meta: format!("{t}:m:{account_id}"),
            agents: format!("{t}:g:{account_id}"),
            leases: format!("{t}:l:{account_id}"),
            conn: format!("{t}:c:{account_id}"),
            activity: format!("{t}:i:{account_id}"),
            deadlines: format!("{t}:dl"),
            channel: format!("{t}:e:{account_id}"),
        }
    }
}

/// The deadline index of a partition.
pub fn deadlines_key(p: u32) -> String {
    format!("{}:dl", tag(p))
}

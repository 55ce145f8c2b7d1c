//! The Lua scripts the hot state runs, loaded from `lua/` at build time.
//!
//! Guarantees: every script that reads or writes an account's keys starts with the
//! `guard.lua` prelude, so it fails with `NOSEED` on an unseeded account instead of acting on
//! nothing; `seed` and `sweep` run without it (they make the account, or touch only a
//! partition's deadline index).

use redis::Script;

/// The heartbeat script's source as Redis runs it (the benchmark loads the same script
/// into `redis-benchmark` as its floor). KEYS: meta leases deadlines agents activity; ARGV:
/// session, mode (`a`/`b`), active ttl, background ttl, renew margin, account id, idle_ms
/// (`''`: none).
///
/// The script applies `rules::renewed_lease_until` itself, because the renewal depends on the
/// lease as it is at that instant and only a script reads and writes it atomically; the
/// rule's shared table (`rules::renewal_cases`) pins the two together in
/// `tests/tests/lease_script.rs`.
pub fn heartbeat_script_source() -> String {
    format!("{GUARD}{HEARTBEAT}")
}

const HEARTBEAT: &str = include_str!("lua/heartbeat.lua");

const GUARD: &str = include_str!("lua/guard.lua");

fn script(body: &str) -> Script {
    Script::new(&format!("{GUARD}{body}"))
}

/// The hot state's scripts, made once for every [`Hot`](super::Hot) handle.
pub(super) struct Scripts {
    pub(super) seed: Script,
    pub(super) start_session: Script,
    pub(super) heartbeat: Script,
    pub(super) end_session: Script,
    pub(super) set_status: Script,
    pub(super) snapshot: Script,
    pub(super) put_view: Script,
    pub(super) put_profile: Script,
    pub(super) remove_agent: Script,
    pub(super) put_cfg: Script,
    pub(super) conn: Script,
    pub(super) lease_push: Script,
    pub(super) auth: Script,
    pub(super) sweep: Script,
    pub(super) activity: Script,
}

impl Scripts {
    pub(super) fn new() -> Scripts {
        Scripts {
            seed: Script::new(include_str!("lua/seed.lua")),
            start_session: script(include_str!("lua/start_session.lua")),
            // KEYS meta leases deadlines agents activity; ARGV session mode(a|b) active_ttl
            // background_ttl renew_margin acc idle_ms. The lease end is rules::renewed_lease_until,
            // pinned against it by the cluster tests.
            heartbeat: script(HEARTBEAT),
            end_session: script(include_str!("lua/end_session.lua")),
            set_status: script(include_str!("lua/set_status.lua")),
            snapshot: script(include_str!("lua/snapshot.lua")),
            put_view: script(include_str!("lua/put_view.lua")),
            put_profile: script(include_str!("lua/put_profile.lua")),
            remove_agent: script(include_str!("lua/remove_agent.lua")),
            put_cfg: script(include_str!("lua/put_cfg.lua")),
            conn: script(include_str!("lua/conn.lua")),
            lease_push: script(include_str!("lua/lease_push.lua")),
            auth: script(include_str!("lua/auth.lua")),
            sweep: Script::new(include_str!("lua/sweep.lua")),
            activity: script(include_str!("lua/activity.lua")),
        }
    }
}

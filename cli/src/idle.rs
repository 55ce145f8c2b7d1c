//! How long the person at this Linux desktop has been idle, from systemd-logind, for the
//! heartbeats of `presence watch`.
//!
//! What it reads, exactly: `loginctl show-session <id> -p IdleHint -p IdleSinceHint` for the
//! caller's login session, where `<id>` is `$XDG_SESSION_ID` if set, else `auto` (logind's
//! name for the caller's session or, failing that, the user's graphical one). The desktop
//! (GNOME, KDE, a screen locker) sets `IdleHint=yes` once the user has been idle for its idle
//! delay, and `IdleSinceHint` to when that happened (µs since the epoch). So:
//!
//! - `IdleHint=yes`, `IdleSinceHint=T`: idle for `now - T`;
//! - `IdleHint=no`: active, idle 0;
//! - no `loginctl`, no logind, no such session, or a hint of 0 (never set): nothing is
//!   reported and heartbeats carry no `idle_ms`, as on a phone.
//!
//! `PRESENCE_LOGINCTL` names another program to run in place of `loginctl` (same arguments,
//! same output), for machines whose session manager is reached differently.

use std::time::Duration;

/// What logind says about the session, as parsed from `loginctl show-session`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hint {
    pub idle: bool,
    /// Microseconds since the epoch (`CLOCK_REALTIME`); 0 when never set.
    pub since_us: u64,
}

/// Parses `IdleHint=...` and `IdleSinceHint=...` lines (any order, other lines ignored).
pub fn parse(output: &str) -> Option<Hint> {
    let mut idle = None;
    let mut since = None;
    for line in output.lines() {
        match line.trim().split_once('=') {
            Some(("IdleHint", v)) => {
                idle = match v {
                    "yes" => Some(true),
                    "no" => Some(false),
                    _ => return None,
                }
            }
            Some(("IdleSinceHint", v)) => since = Some(v.parse::<u64>().ok()?),
            _ => {}
        }
    }
    Some(Hint {
        idle: idle?,
        since_us: since?,
    })
}

/// The idle time to report at `now_us` (µs since the epoch), or `None` when logind's hint
/// says nothing usable.
pub fn idle_ms(h: Hint, now_us: u64) -> Option<u64> {
    if !h.idle {
        return Some(0);
    }
    if h.since_us == 0 {
        return None;
    }
    Some(now_us.saturating_sub(h.since_us) / 1_000)
}

/// Asks logind now. `None`: no idle reporting on this machine (see the module docs).
pub async fn read() -> Option<u64> {
    let program = std::env::var("PRESENCE_LOGINCTL").unwrap_or_else(|_| "loginctl".into());
    let session = std::env::var("XDG_SESSION_ID")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "auto".into());
    let run = tokio::process::Command::new(program)
        .args([
            "show-session",
            &session,
            "-p",
            "IdleHint",
            "-p",
            "IdleSinceHint",
        ])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(2), run)
        .await
        .ok()?
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let hint = parse(&String::from_utf8_lossy(&out.stdout))?;
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_micros() as u64;
    idle_ms(hint, now_us)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logind_hints_become_an_idle_time_or_nothing() {
        let h = parse("IdleHint=yes\nIdleSinceHint=1700000000000000\n").unwrap();
        assert_eq!(idle_ms(h, 1_700_000_090_000_000), Some(90_000));
        let h = parse("IdleSinceHint=5\nIdleHint=no\n").unwrap();
        assert_eq!(idle_ms(h, 1_700_000_090_000_000), Some(0));
        // Idle, but since when was never set: say nothing rather than something wrong.
        let h = parse("IdleHint=yes\nIdleSinceHint=0").unwrap();
        assert_eq!(idle_ms(h, 1), None);
        for bad in [
            "",
            "IdleHint=yes",
            "IdleSinceHint=1",
            "IdleHint=maybe\nIdleSinceHint=1",
            "IdleHint=yes\nIdleSinceHint=n/a",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}

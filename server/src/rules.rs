//! The domain rules every backend obeys, written once and free of storage and I/O.
//!
//! A backend stores, times and fans out; what it stores and when is decided here:
//! - **Intent ordering**: the latest `intent_at` on the server's time scale wins, ties go to
//!   the higher op id, and an intent more than [`MAX_FUTURE_INTENT_MS`] ahead of the server is
//!   clamped to now ([`clamp_intent`], [`supersedes`]).
//! - **Admin changes** win over every earlier intent ([`admin_intent`]).
//! - **Lease terms**: a background lease only for a session that can be woken by push
//!   ([`lease_terms`]); the renew push goes `renew_margin_ms` before it ends ([`renew_at`]);
//!   a background lease renewed inside that window runs on from its old end
//!   ([`renewed_lease_until`]), so a phone is woken once per background ttl.
//! - **Timers**: a lease ends when its time is reached ([`lease_ended`]); a renew timer that
//!   fires still pushes only if the session is in background with push and the timer is its
//!   current one ([`renew_still_wanted`]); a restart grants every restored session at least
//!   an active lease ([`restored_lease_until`]).
//! - **View versions** are reserved on disk in blocks before they are served, so after a
//!   crash a version can skip but never repeat ([`versions_to_reserve`]).
//! - **Push targeting**: a status change is pushed to the agent's other sessions that have no
//!   open stream ([`wants_status_push`]); a session that ended for any reason but its own
//!   logout is told by push ([`wants_end_push`]).

use presence_protocol::{EndReason, Mode, Settings};

/// Status ops more than this far in the server's future are clamped to now.
pub const MAX_FUTURE_INTENT_MS: i64 = 5_000;

/// The `intent_at` a status op is ordered by: the client's, unless missing or too far ahead.
pub fn clamp_intent(requested: Option<i64>, now: i64) -> i64 {
    match requested {
        Some(t) if t > now + MAX_FUTURE_INTENT_MS => now,
        Some(t) => t,
        None => now,
    }
}

/// True when an op (`intent_at`, `op_id`) replaces the current status.
pub fn supersedes(intent_at: i64, op_id: &str, current_intent_at: i64, current_op: &str) -> bool {
    intent_at > current_intent_at || (intent_at == current_intent_at && op_id > current_op)
}

/// The intent of an admin's change: now, or just after the current intent if a device's
/// clock-skewed intent sits ahead of now, so the admin's change always applies.
pub fn admin_intent(now: i64, current_intent_at: i64) -> i64 {
    now.max(current_intent_at + 1)
}

/// (interval, ttl) of a session's lease: background terms only with a push registration.
pub fn lease_terms(settings: &Settings, mode: Mode, has_push: bool) -> (i64, i64) {
    if mode == Mode::Background && has_push {
        (
            (settings.background_ttl_ms - settings.renew_margin_ms).max(1),
            settings.background_ttl_ms,
        )
    } else {
        (settings.active_interval_ms, settings.active_ttl_ms)
    }
}

/// The end of a lease renewed by a heartbeat at `now`. A background lease renewed inside its
/// renew window (the answer to its renew push) runs on from its old end, so renew pushes come
/// once per background ttl (two an hour at the defaults, within what Apple allows) instead of
/// once per ttl minus margin. Any other renewal runs `ttl` from now. Never more than
/// `ttl + renew_margin` ahead of now.
pub fn renewed_lease_until(
    settings: &Settings,
    was_background: bool,
    mode: Mode,
    has_push: bool,
    prev_until: i64,
    now: i64,
) -> i64 {
    let (_, ttl) = lease_terms(settings, mode, has_push);
    let in_renew_window = prev_until > now && prev_until - settings.renew_margin_ms <= now;
    if was_background && mode == Mode::Background && has_push && in_renew_window {
        prev_until + ttl
    } else {
        now + ttl
    }
}

/// One case of [`renewed_lease_until`], in a table shared by this rule's unit test and the
/// test of the cluster's heartbeat script (`tests/tests/lease_script.rs`). The script applies
/// the same rule inside Redis: the renewal depends on the lease as it is at that instant, and
/// only a script reads and writes it atomically (a read, a decision here, then a write would
/// let a concurrent renewal or expiry slip in between). The shared table keeps the two equal.
#[derive(Debug, Clone, Copy)]
pub struct RenewalCase {
    pub name: &'static str,
    pub was_background: bool,
    pub mode: Mode,
    pub has_push: bool,
    /// How far the old lease's end is ahead of the renewal, in ms (always > 0: a lease that
    /// has ended is not renewed).
    pub ahead_ms: i64,
    /// Whether the new lease runs on from the old end (else from now).
    pub from_old_end: bool,
    /// Whether the new lease has the background ttl (else the active one).
    pub background_ttl: bool,
}

/// The cases of [`renewed_lease_until`] at `settings`' renew margin, with a second of slack
/// on each side of the window's edge so a test against a live clock can use them.
pub fn renewal_cases(settings: &Settings) -> Vec<RenewalCase> {
    use Mode::{Active, Background};
    let m = settings.renew_margin_ms;
    let case = |name, was_background, mode, has_push, ahead_ms, from_old_end, background_ttl| {
        RenewalCase {
            name,
            was_background,
            mode,
            has_push,
            ahead_ms,
            from_old_end,
            background_ttl,
        }
    };
    vec![
        case(
            "background renewed in its window",
            true,
            Background,
            true,
            m - 1_000,
            true,
            true,
        ),
        case(
            "background renewed before its window",
            true,
            Background,
            true,
            m + 1_000,
            false,
            true,
        ),
        case(
            "background renewed a second before its end",
            true,
            Background,
            true,
            1_000,
            true,
            true,
        ),
        case(
            "active going to background",
            false,
            Background,
            true,
            m - 1_000,
            false,
            true,
        ),
        case(
            "background without push",
            true,
            Background,
            false,
            m - 1_000,
            false,
            false,
        ),
        case(
            "background coming to the foreground",
            true,
            Active,
            true,
            m - 1_000,
            false,
            false,
        ),
        case(
            "active staying active",
            false,
            Active,
            true,
            1_000,
            false,
            false,
        ),
        case(
            "active without push going to background",
            false,
            Background,
            false,
            1_000,
            false,
            false,
        ),
    ]
}

/// Whether a lease ending at `lease_until` has ended at `now`.
pub fn lease_ended(lease_until: i64, now: i64) -> bool {
    lease_until <= now
}

/// Whether a renew timer set for `fired_at` still calls for a push: the session is in
/// background with a push registration and has not been given another renew time since.
pub fn renew_still_wanted(
    mode: Mode,
    has_push: bool,
    renew_at: Option<i64>,
    fired_at: i64,
) -> bool {
    mode == Mode::Background && has_push && renew_at == Some(fired_at)
}

/// The lease a session restored at start gets: its own, or at least an active lease from
/// now, so a restart does not flap every agent offline.
pub fn restored_lease_until(settings: &Settings, prev_until: i64, now: i64) -> i64 {
    prev_until.max(now + settings.active_ttl_ms)
}

/// View versions are reserved on disk this many at a time: one small write per this many
/// view changes.
pub const VIEW_VERSION_BLOCK: i64 = 1000;

/// The reservation to make durable before serving view version `next`, if `reserved` does
/// not cover it.
pub fn versions_to_reserve(next: i64, reserved: i64) -> Option<i64> {
    (next > reserved).then_some(next + VIEW_VERSION_BLOCK)
}

/// The reservation to start making durable in the background once view version `next` is
/// served, so the next block is reserved before `reserved` runs out: from half a block
/// before its end.
pub fn versions_to_reserve_ahead(next: i64, reserved: i64) -> Option<i64> {
    (next + VIEW_VERSION_BLOCK / 2 > reserved).then_some(reserved + VIEW_VERSION_BLOCK)
}

/// How long a `session_ended` push is worth delivering: the device learns of its end on its
/// next request anyway.
pub const END_PUSH_TTL_MS: i64 = 15 * 60_000;

/// When the renew push for a lease goes out, if the session gets one at all.
pub fn renew_at(mode: Mode, has_push: bool, lease_until: i64, renew_margin: i64) -> Option<i64> {
    (mode == Mode::Background && has_push).then(|| lease_until - renew_margin)
}

/// Whether a status change made by `origin` is pushed to `session`.
pub fn wants_status_push(session: &str, origin: Option<&str>, connected: bool) -> bool {
    Some(session) != origin && !connected
}

/// Whether a session that ended for `reason` is told so by push. Its own logout is not (the
/// device asked for it), but a sign-out from another device is, through
/// [`EndReason::Logout`] with `by_other_device`.
pub fn wants_end_push(reason: EndReason, by_other_device: bool) -> bool {
    reason != EndReason::Logout || by_other_device
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_act_only_while_they_still_apply() {
        assert!(lease_ended(10, 10) && !lease_ended(11, 10));
        assert!(renew_still_wanted(Mode::Background, true, Some(5), 5));
        assert!(
            !renew_still_wanted(Mode::Background, true, Some(6), 5),
            "rescheduled"
        );
        assert!(
            !renew_still_wanted(Mode::Active, true, Some(5), 5),
            "came to the foreground"
        );
        assert!(
            !renew_still_wanted(Mode::Background, false, Some(5), 5),
            "push removed"
        );
        let s = Settings::default();
        assert_eq!(restored_lease_until(&s, 0, 100), 100 + s.active_ttl_ms);
        assert_eq!(restored_lease_until(&s, i64::MAX, 100), i64::MAX);
    }

    #[test]
    fn view_versions_are_reserved_a_block_ahead_when_the_reservation_runs_out() {
        assert_eq!(versions_to_reserve(1000, 1000), None);
        assert_eq!(
            versions_to_reserve(1001, 1000),
            Some(1001 + VIEW_VERSION_BLOCK)
        );
    }

    #[test]
    fn the_next_block_is_reserved_ahead_from_half_a_block_before_the_end() {
        let half = VIEW_VERSION_BLOCK / 2;
        assert_eq!(versions_to_reserve_ahead(1000 - half, 1000), None);
        assert_eq!(
            versions_to_reserve_ahead(1001 - half, 1000),
            Some(1000 + VIEW_VERSION_BLOCK)
        );
    }

    #[test]
    fn a_background_lease_renewed_in_its_window_runs_on_from_its_old_end() {
        let s = Settings::default();
        let (ttl, margin) = (s.background_ttl_ms, s.renew_margin_ms);
        let prev = 10 * ttl;
        let at_renew = prev - margin;
        let bg = Mode::Background;
        assert_eq!(
            renewed_lease_until(&s, true, bg, true, prev, at_renew),
            prev + ttl
        );
        // Renewed early (a background refresh): ttl from now, no chaining into the future.
        assert_eq!(
            renewed_lease_until(&s, true, bg, true, prev, at_renew - 1),
            at_renew - 1 + ttl
        );
        // Coming from the foreground, or without push, or after the end: ttl from now.
        assert_eq!(
            renewed_lease_until(&s, false, bg, true, prev, at_renew),
            at_renew + ttl
        );
        assert_eq!(
            renewed_lease_until(&s, true, bg, false, prev, at_renew),
            at_renew + s.active_ttl_ms
        );
        assert_eq!(
            renewed_lease_until(&s, true, bg, true, prev, prev + 1),
            prev + 1 + ttl
        );
        // One renew push per background ttl: two an hour at the defaults.
        let per_hour = 3_600_000 / (prev + ttl - prev);
        assert_eq!(per_hour, 2);
    }

    #[test]
    fn later_intent_wins_and_ties_go_to_the_higher_op_id() {
        assert!(supersedes(2, "a", 1, "z"));
        assert!(!supersedes(1, "z", 2, "a"));
        assert!(supersedes(5, "b", 5, "a"));
        assert!(!supersedes(5, "a", 5, "a"));
    }

    #[test]
    fn intents_far_in_the_future_are_clamped_to_now() {
        assert_eq!(clamp_intent(None, 100), 100);
        assert_eq!(clamp_intent(Some(100 + MAX_FUTURE_INTENT_MS), 100), 5_100);
        assert_eq!(clamp_intent(Some(101 + MAX_FUTURE_INTENT_MS), 100), 100);
        assert_eq!(clamp_intent(Some(7), 100), 7);
    }

    #[test]
    fn an_admin_change_beats_an_intent_ahead_of_now() {
        assert_eq!(admin_intent(100, 50), 100);
        assert_eq!(admin_intent(100, 4_000), 4_001);
    }

    #[test]
    fn background_terms_need_push() {
        let s = Settings::default();
        assert_eq!(lease_terms(&s, Mode::Background, false), (20_000, 60_000));
        assert_eq!(
            lease_terms(&s, Mode::Background, true),
            (1_500_000, 1_800_000)
        );
        assert_eq!(
            renew_at(Mode::Background, true, 1_000_000, 300),
            Some(999_700)
        );
        assert_eq!(renew_at(Mode::Active, true, 1_000_000, 300), None);
        assert_eq!(renew_at(Mode::Background, false, 1_000_000, 300), None);
    }

    #[test]
    fn status_pushes_skip_the_origin_and_connected_sessions() {
        assert!(wants_status_push("b", Some("a"), false));
        assert!(!wants_status_push("a", Some("a"), false));
        assert!(!wants_status_push("b", Some("a"), true));
        assert!(wants_status_push("b", None, false));
    }

    #[test]
    fn own_logout_is_not_pushed_but_a_remote_sign_out_is() {
        assert!(!wants_end_push(EndReason::Logout, false));
        assert!(wants_end_push(EndReason::Logout, true));
        assert!(wants_end_push(EndReason::Expired, false));
    }

    #[test]
    fn lease_renewal_follows_the_shared_table() {
        let s = Settings::default();
        let now = 10 * s.background_ttl_ms;
        for c in renewal_cases(&s) {
            let prev = now + c.ahead_ms;
            let ttl = if c.background_ttl {
                s.background_ttl_ms
            } else {
                s.active_ttl_ms
            };
            let want = if c.from_old_end { prev } else { now } + ttl;
            let got = renewed_lease_until(&s, c.was_background, c.mode, c.has_push, prev, now);
            assert_eq!(got, want, "{}", c.name);
        }
        // The window's exact edges, which the live-clock test cannot hit.
        let m = s.renew_margin_ms;
        let bg = Mode::Background;
        assert_eq!(
            renewed_lease_until(&s, true, bg, true, now + m, now),
            now + m + s.background_ttl_ms
        );
        assert_eq!(
            renewed_lease_until(&s, true, bg, true, now + m + 1, now),
            now + s.background_ttl_ms
        );
    }
}

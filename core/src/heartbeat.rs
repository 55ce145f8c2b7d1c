//! The heartbeat sub-machine: keeping this device's session lease alive.
//!
//! # What it guarantees
//!
//! - **The server's cadence.** Heartbeats follow the `interval_ms` of the last answer (20 s
//!   active at the server's defaults); a floor of 100 ms keeps a misconfigured server from
//!   turning the engine into a busy loop.
//! - **The mode follows the lifecycle.** `set_lifecycle` sends one heartbeat at once in the
//!   new mode (a background lease needs a push registration; the server decides), as does a
//!   renew push (in background mode) and `background_refresh`.
//! - **Background with push: no timer of its own in the way.** The server renews a
//!   background lease by push at `interval_ms` (= `background_ttl - renew_margin`), so the
//!   engine's own timer is put halfway between that moment and the lease's end: it fires only
//!   when a push is late or lost, and the heartbeat answering a push reschedules it. At the
//!   defaults a backgrounded phone wakes only for the renew pushes.
//! - **Failures retry sooner, never later.** A transient failure retries after a backoff
//!   capped at the interval (the lease is running out); a 401 expires the session; another
//!   4xx waits a full interval.
//! - **No network, no heartbeats**: nothing is scheduled until the OS says the network is
//!   back, and then one goes out at once if the last one failed.
//! - **One at a time.** Callers that need one (a renew push, `background_refresh`, a login
//!   waiting for its first) wait for the next one to *start* and are answered when it ends.
//! - **Activity, when the app reports it.** After
//!   [`report_idle`](crate::PresenceClient::report_idle)`(Some(ms))` every heartbeat carries
//!   `idle_ms`: the reported idle time plus the time since the report, on tokio's clock (so
//!   an app that reports only on input still sends a growing idle time). `report_idle(None)`
//!   stops it (a phone never reports). Reports cost no request of their own, with two
//!   exceptions: the first report (after none) goes out at once, so the server counts the
//!   session as reporting from then on; and when the server has set the status for
//!   idleness (cause `idle`), the last heartbeat said the user had been idle for a second or
//!   more, and a report now says the user is back (idle under a second), one heartbeat goes
//!   out at once so the server can bring the agent back without waiting a whole interval.

use std::time::Duration;

use presence_protocol::{Heartbeat, Mode};
use tokio::time::Instant;

use crate::engine::{Engine, Reply, TaskDone, clone_error};
use crate::error::{Error, ErrorClass};
use crate::snapshot::Lifecycle;

/// The heartbeat sub-machine's state.
pub(crate) struct Heartbeats {
    /// The server's interval, from the last answer.
    pub(crate) interval: Duration,
    /// When the next one is due on our own timer (`None`: no session, or expired).
    pub(crate) next: Option<Instant>,
    pub(crate) in_flight: bool,
    /// Consecutive transient failures (the backoff's attempt count).
    pub(crate) failures: u32,
    /// A heartbeat that must go out now in this mode (lifecycle switch, renew push, refresh).
    pub(crate) forced: Option<Mode>,
    /// Waiting for the next heartbeat to *start*; moved to `running` when it does.
    pub(crate) waiters: Vec<Reply<()>>,
    pub(crate) running: Vec<Reply<()>>,
    /// The app's last activity report: when it came and the idle time it gave.
    pub(crate) idle: Option<(Instant, u64)>,
    /// The `idle_ms` the last heartbeat started carried.
    pub(crate) sent_idle_ms: Option<u64>,
}

impl Heartbeats {
    pub(crate) fn new(next: Option<Instant>) -> Heartbeats {
        Heartbeats {
            // Until the server says otherwise.
            interval: Duration::from_secs(20),
            next,
            in_flight: false,
            failures: 0,
            forced: None,
            waiters: Vec::new(),
            running: Vec::new(),
            idle: None,
            sent_idle_ms: None,
        }
    }
}

/// Idle less than this is "the user is here"; the protocol's shortest `idle_after_ms`.
const ACTIVE_BELOW_MS: u64 = 1_000;

/// The shortest wait between heartbeats, whatever the server says.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

pub(crate) fn interval(hb: &Heartbeat) -> Duration {
    // A floor keeps a misconfigured server from turning the engine into a busy loop.
    Duration::from_millis(hb.interval_ms.max(0) as u64).max(MIN_INTERVAL)
}

impl Engine {
    /// Sends a heartbeat in `mode` now and answers `reply` when it is done (a renew push, a
    /// background refresh). Refused at once when there is no live session or no network.
    /// Returns whether the heartbeat was queued.
    pub(crate) fn force_heartbeat(&mut self, mode: Mode, reply: Reply<()>) -> bool {
        if let Err(e) = self.session_ready() {
            self.respond(reply, Err(e));
            return false;
        }
        self.heartbeat.forced = Some(mode);
        self.heartbeat.waiters.push(reply);
        true
    }

    /// The app's activity report: `idle_ms` as of now, or `None` to stop reporting.
    pub(crate) fn report_idle(&mut self, idle_ms: Option<u64>) {
        let first = self.heartbeat.idle.is_none() && idle_ms.is_some();
        self.heartbeat.idle = idle_ms.map(|ms| (Instant::now(), ms));
        if first && self.session_active() {
            // The server counts a session as reporting only once a heartbeat says so.
            self.heartbeat.forced = Some(self.heartbeat.forced.unwrap_or(self.lifecycle.mode()));
            return;
        }
        let back = idle_ms.is_some_and(|ms| ms < ACTIVE_BELOW_MS);
        let was_idle = self
            .heartbeat
            .sent_idle_ms
            .is_some_and(|ms| ms >= ACTIVE_BELOW_MS);
        let set_idle = self
            .session
            .confirmed
            .as_ref()
            .is_some_and(|c| c.cause == presence_protocol::Cause::Idle);
        if back && was_idle && set_idle && self.session_active() {
            self.heartbeat.forced = Some(self.heartbeat.forced.unwrap_or(self.lifecycle.mode()));
            // Reported once: the heartbeat going out now carries the return.
            self.heartbeat.sent_idle_ms = Some(0);
        }
    }

    /// The idle time to send with a heartbeat starting now, if the app reports activity.
    pub(crate) fn idle_now(&self) -> Option<u64> {
        let (at, ms) = self.heartbeat.idle?;
        Some(ms.saturating_add(Instant::now().saturating_duration_since(at).as_millis() as u64))
    }

    pub(crate) fn on_heartbeat(&mut self, token: String, result: Result<Heartbeat, Error>) {
        self.heartbeat.in_flight = false;
        let waiters = std::mem::take(&mut self.heartbeat.running);
        self.release_logins();
        if self
            .session
            .current
            .as_ref()
            .is_none_or(|s| s.token != token)
        {
            // The session changed while this was on the wire.
            for w in waiters {
                self.respond(w, Err(Error::NotLoggedIn));
            }
            return;
        }
        match result {
            Ok(hb) => {
                self.reachable = Some(true);
                self.server_is_back();
                self.heartbeat.failures = 0;
                self.session.lease_until = Some(hb.lease_until);
                self.heartbeat.interval = interval(&hb);
                self.heartbeat.next = Some(Instant::now() + self.own_heartbeat_delay(&hb));
                let known = self.session.confirmed.as_ref().map_or(-1, |s| s.version);
                if hb.status_version > known {
                    // A change we missed (no stream in the background): fetch it.
                    self.session.me_wanted = true;
                }
                self.clear_error();
                for w in waiters {
                    self.respond(w, Ok(()));
                }
            }
            Err(e) => {
                match e.class() {
                    ErrorClass::Unauthorized => self.expire_session(e.to_string()),
                    ErrorClass::Transient { retry_after } => {
                        self.note_reachability(&e);
                        // Retry sooner than the interval, but never later: the lease is
                        // running out.
                        let delay = self
                            .backoff
                            .delay(self.heartbeat.failures, retry_after, &mut self.rng)
                            .min(self.heartbeat.interval);
                        self.heartbeat.failures = self.heartbeat.failures.saturating_add(1);
                        self.heartbeat.next = Some(Instant::now() + delay);
                        self.set_error(&e);
                    }
                    ErrorClass::Permanent | ErrorClass::Local => {
                        self.heartbeat.next = Some(Instant::now() + self.heartbeat.interval);
                        self.set_error(&e);
                    }
                }
                for w in waiters {
                    self.respond(w, Err(clone_error(&e)));
                }
            }
        }
    }

    /// When to heartbeat on our own after a successful one. Normally the server's interval.
    /// In the background with a push registration, the server renews by push at that very
    /// moment (`interval_ms` is "when the renew push comes"), so a timer of our own then would
    /// wake the phone a second time for nothing: ours is put halfway between the renew and
    /// the end of the lease, a fallback that fires only if the push is late or lost (the
    /// heartbeat answering the push reschedules it).
    ///
    /// The renew push comes `renew_margin` (= `ttl - interval`) before the lease's end, and a
    /// lease renewed in answer to one runs on from its old end, so both are read from the
    /// answer's `lease_until` rather than assumed to be `ttl` from now.
    pub(crate) fn own_heartbeat_delay(&self, hb: &Heartbeat) -> Duration {
        let interval = interval(hb);
        if self.lifecycle == Lifecycle::Background && self.has_push {
            let ttl = Duration::from_millis(hb.ttl_ms.max(0) as u64);
            let margin = ttl.saturating_sub(interval);
            let left = Duration::from_millis((hb.lease_until - hb.server_time).max(0) as u64);
            left.saturating_sub(margin / 2).max(MIN_INTERVAL)
        } else {
            interval
        }
    }

    pub(crate) fn drive_heartbeat(&mut self, now: Instant) {
        if self.heartbeat.in_flight || !self.network || !self.session_active() {
            return;
        }
        let due = self.heartbeat.forced.is_some() || self.heartbeat.next.is_some_and(|t| now >= t);
        if !due {
            return;
        }
        let Some(api) = self.api.clone() else { return };
        let Some(token) = self.session.token() else {
            return;
        };
        let mode = self
            .heartbeat
            .forced
            .take()
            .unwrap_or(self.lifecycle.mode());
        let idle_ms = self.idle_now();
        self.heartbeat.sent_idle_ms = idle_ms;
        self.heartbeat.in_flight = true;
        self.heartbeat.running.append(&mut self.heartbeat.waiters);
        self.tasks.spawn(async move {
            let result = api.heartbeat(&token, mode, idle_ms).await;
            TaskDone::Heartbeat { token, result }
        });
    }
}

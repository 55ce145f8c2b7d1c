//! The session sub-machine: who this device is logged in as, and what it last heard.
//!
//! # What it guarantees
//!
//! - **One session at a time**, stored with its token. Logging in replaces it (queued
//!   status changes of the same agent are re-stamped with the new token, see the
//!   [`outbox`](crate::outbox)); logging out clears it, the status and the chat box in one
//!   durable transaction that also queues `end_session`, so a crash cannot leave half a
//!   logout.
//! - **Expiry is sticky.** A 401 on any request, a `session_ended` event or push marks the
//!   session expired: heartbeats and the event stream stop, `last_error` shows
//!   `session_expired` until the next login or logout, and calls that need the session fail
//!   with a local `SessionExpired` error (no request is made). The session's queued changes
//!   stay and go out after logging in again as the same agent.
//! - **Newer only.** The status and chat box held are replaced only by a higher `version`
//!   (from the stream, a push, `/v1/me` or an op's answer). The login answer is the one
//!   exception: a fresh baseline, taken whatever its version (the server may have been
//!   reset). These are cache writes: no fsync (see the [store](crate::store)'s docs).
//! - **`/v1/me` refresh** runs after every (re)connect of the stream, after returning to the
//!   foreground and when a heartbeat reports a status version this device has not seen; one
//!   at a time, its waiters answered when it completes.
//! - **Answers for an old session are ignored**, recognised by their token.
//! - **`login` returns after the first heartbeat** of the new session (a precise clock
//!   sample), or as soon as it can no longer come.
//! - **The account's custom statuses** come with every `/v1/me` (so they are as fresh as the
//!   status: refreshed at each reconnect, return to the foreground and missed version) and
//!   are kept in the store; a status op the server wedges on its `custom_status` refreshes
//!   them at once (the list changed under the user).
//! - **Status log reads** (`status_log`) go straight to the server with the session's token;
//!   a 401 expires the session like any other request.

use presence_protocol::{
    Agent, AvailabilityReport, ChatboxView, CustomStatus, EndReason, ErrorCode, LoginResponse,
    MeResponse, Mode, PushBody, PushPayload, StatusLogPage, StatusView,
};
use tokio::time::Instant;

use crate::api::{Api, LogQuery, ReportQuery};
use crate::engine::{Engine, Reply, TaskDone, clone_error};
use crate::error::{Error, ErrorClass, SESSION_EXPIRED, ServerCode};
use crate::heartbeat::interval;
use crate::outbox::{Op, OpBody};
use crate::snapshot::LastError;
use crate::store::{Store, StoredSession};

/// The session sub-machine's state.
#[derive(Default)]
pub(crate) struct Session {
    /// The stored session (`None`: logged out).
    pub(crate) current: Option<StoredSession>,
    /// The server's status of this agent, as last heard.
    pub(crate) confirmed: Option<StatusView>,
    pub(crate) chatbox: Option<ChatboxView>,
    /// The account's custom statuses, as `/v1/me` last listed them.
    pub(crate) custom_statuses: Vec<CustomStatus>,
    /// When the lease ends, on the server's clock.
    pub(crate) lease_until: Option<i64>,
    /// A `/v1/me` refresh is due.
    pub(crate) me_wanted: bool,
    pub(crate) me_in_flight: bool,
    /// Waiting for the next refresh to start; moved to `me_running` when it does.
    pub(crate) me_waiters: Vec<Reply<()>>,
    pub(crate) me_running: Vec<Reply<()>>,
    /// Logins answered once the first heartbeat (the first precise clock sample) is done.
    pub(crate) login_waiters: Vec<Reply<()>>,
}

impl Session {
    /// What the store holds from the last run; a live session refreshes at once.
    pub(crate) fn restore(store: &Store) -> Result<Session, Error> {
        let current = store.session()?;
        let (confirmed, chatbox, custom_statuses) = if current.is_some() {
            (store.status()?, store.chatbox()?, store.custom_statuses()?)
        } else {
            (None, None, Vec::new())
        };
        let me_wanted = current.as_ref().is_some_and(|s| !s.expired);
        Ok(Session {
            current,
            confirmed,
            chatbox,
            custom_statuses,
            me_wanted,
            ..Session::default()
        })
    }

    pub(crate) fn is_active(&self) -> bool {
        self.current.as_ref().is_some_and(|s| !s.expired)
    }

    /// The token of the current session, expired or not.
    pub(crate) fn token(&self) -> Option<String> {
        self.current.as_ref().map(|s| s.token.clone())
    }
}

impl Engine {
    pub(crate) fn login(&mut self, account: String, proof: crate::api::Proof, reply: Reply<()>) {
        let Some(api) = self.api.clone() else {
            self.respond(reply, Err(Error::NoServer));
            return;
        };
        if let Err(e) = self.network_ready() {
            self.respond(reply, Err(e));
            return;
        }
        let push = match self.store.push() {
            Ok(p) => p,
            Err(e) => {
                self.respond(reply, Err(e));
                return;
            }
        };
        let req = crate::api::Login {
            account: account.clone(),
            proof,
            device: self.device.clone(),
            push,
        };
        self.tasks.spawn(async move {
            let mut req = req;
            let mut result = api.login(&req).await;
            // A stored push token the server now refuses (its webhook host left the
            // allow-list, say) must not lock the user out: log in without it. The push is
            // the only optional part of a login, so any `invalid_field` is retried once
            // without it (if the field was another one, the retry says so again).
            if req.push.is_some()
                && matches!(
                    &result,
                    Err(Error::Http {
                        code: ServerCode::Known(ErrorCode::InvalidField),
                        ..
                    })
                )
            {
                tracing::warn!(
                    "the server refused the stored push registration; logging in without it"
                );
                req.push = None;
                result = api.login(&req).await;
            }
            TaskDone::Login {
                account,
                reply,
                result,
            }
        });
    }

    pub(crate) fn on_login(
        &mut self,
        account: String,
        reply: Reply<()>,
        result: Result<LoginResponse, Error>,
    ) {
        let r = match result {
            Ok(r) => r,
            Err(e) => {
                self.note_reachability(&e);
                self.respond(reply, Err(e));
                return;
            }
        };
        self.reachable = Some(true);
        let session = StoredSession {
            token: r.token,
            session_id: r.session_id,
            account,
            agent: r.agent,
            expired: false,
        };
        if let Err(e) = self
            .store
            .login(&session, &r.status, self.server_url.as_deref())
        {
            self.respond(reply, Err(e));
            return;
        }
        match self.store.outbox() {
            Ok(ops) => self.outbox.ops = ops,
            Err(e) => tracing::warn!("reloading the outbox after login: {e}"),
        }
        // The login answer is a fresh baseline: take it even if its version is lower than
        // what we knew (the server may have been reset).
        self.session.confirmed = Some(r.status);
        self.session.chatbox = None;
        self.session.custom_statuses = Vec::new();
        self.session.current = Some(session);
        self.session.lease_until = Some(r.heartbeat.lease_until);
        self.heartbeat.interval = interval(&r.heartbeat);
        self.heartbeat.next = Some(Instant::now() + self.heartbeat.interval);
        // Heartbeat at once: a login answer is a poor clock sample (the server spends tens
        // of milliseconds hashing the password), a heartbeat a good one. `login` returns after
        // it, so a change made right after logging in is already stamped well. It also asks
        // for the background lease if the app is in the background.
        self.heartbeat.forced = Some(self.lifecycle.mode());
        self.heartbeat.failures = 0;
        self.stream.conn = None;
        self.stream.attempts = 0;
        self.stream.retry_at = None;
        self.outbox.reset_backoff();
        self.session.me_wanted = true;
        self.last_error = None;
        self.last_error_sticky = false;
        self.persist_clock();
        self.session.login_waiters.push(reply);
    }

    /// Answers logins waiting for their first heartbeat. Called when one completes (either
    /// way: the login itself succeeded) or can no longer happen.
    pub(crate) fn release_logins(&mut self) {
        for w in std::mem::take(&mut self.session.login_waiters) {
            self.respond(w, Ok(()));
        }
    }

    pub(crate) fn logout(&mut self, reply: Reply<()>) {
        let Some(session) = self.session.current.clone() else {
            self.respond(reply, Ok(()));
            return;
        };
        let mut end = (!session.expired).then(|| {
            Op::new(
                OpBody::EndSession,
                None,
                session.token.clone(),
                self.clock.device_now(),
            )
        });
        if let Err(e) = self.store.logout(end.as_mut()) {
            self.respond(reply, Err(e));
            return;
        }
        self.release_logins();
        self.session.current = None;
        self.session.confirmed = None;
        self.session.chatbox = None;
        self.session.custom_statuses = Vec::new();
        self.session.lease_until = None;
        self.last_error = None;
        self.last_error_sticky = false;
        self.stream.conn = None;
        self.heartbeat.next = None;
        self.heartbeat.forced = None;
        self.session.me_wanted = false;
        let waiters: Vec<_> = self
            .heartbeat
            .waiters
            .drain(..)
            .chain(self.session.me_waiters.drain(..))
            .collect();
        for w in waiters {
            self.respond(w, Err(Error::NotLoggedIn));
        }
        let Some(end) = end else {
            self.respond(reply, Ok(()));
            return;
        };
        let op_id = end.op_id.clone();
        self.outbox.ops.push(end);
        // Try to tell the server now. `logout` returns once the queue has reached this op
        // and tried it (delivered, or kept for later), or as soon as the queue stalls on a
        // failure or the network goes: the caller (a CLI about to exit) should not outwait
        // the outage, but neither should it exit before trying.
        self.retry_ops_now();
        if self.network && self.api.is_some() && self.outbox.retry_at.is_none() {
            self.outbox.waiters.entry(op_id).or_default().push(reply);
        } else {
            self.respond(reply, Ok(()));
        }
    }

    pub(crate) fn push(&mut self, payload: PushPayload, reply: Reply<()>) {
        let ours = self
            .session
            .current
            .as_ref()
            .is_some_and(|s| s.session_id == payload.session_id());
        if !ours {
            // A push for a session this device no longer has (logged out, replaced): stale.
            tracing::debug!(
                session_id = payload.session_id(),
                "ignoring push for another session"
            );
            self.respond(reply, Ok(()));
            return;
        }
        match payload.body {
            PushBody::Status { status, .. } => {
                self.apply_status(status);
                self.respond(reply, Ok(()));
            }
            PushBody::Renew { .. } => {
                self.force_heartbeat(Mode::Background, reply);
            }
            PushBody::SessionEnded { reason, .. } => {
                self.expire_session(format!("session ended: {}", reason.as_str()));
                self.respond(reply, Ok(()));
            }
        }
    }

    pub(crate) fn on_me(&mut self, token: String, result: Result<MeResponse, Error>) {
        self.session.me_in_flight = false;
        let waiters = std::mem::take(&mut self.session.me_running);
        let current = self
            .session
            .current
            .as_ref()
            .is_some_and(|s| s.token == token);
        if !current {
            for w in waiters {
                self.respond(w, Err(Error::NotLoggedIn));
            }
            return;
        }
        match result {
            Ok(me) => {
                self.reachable = Some(true);
                self.update_agent(me.agent);
                self.apply_status(me.status);
                self.apply_chatbox(me.chatbox);
                self.apply_custom_statuses(me.custom_statuses);
                for w in waiters {
                    self.respond(w, Ok(()));
                }
            }
            Err(e) => {
                if e.class() == ErrorClass::Unauthorized {
                    self.expire_session(e.to_string());
                } else {
                    self.note_reachability(&e);
                    self.set_error(&e);
                }
                for w in waiters {
                    self.respond(w, Err(clone_error(&e)));
                }
            }
        }
    }

    pub(crate) fn drive_me(&mut self) {
        if !self.session.me_wanted
            || self.session.me_in_flight
            || !self.network
            || !self.session_active()
        {
            return;
        }
        let (Some(api), Some(token)) = (self.api.clone(), self.session.token()) else {
            return;
        };
        self.session.me_wanted = false;
        self.session.me_in_flight = true;
        self.session.me_running.append(&mut self.session.me_waiters);
        self.tasks.spawn(async move {
            let result = api.me(&token).await;
            TaskDone::Me { token, result }
        });
    }

    pub(crate) fn session_active(&self) -> bool {
        self.session.is_active()
    }

    pub(crate) fn not_active_error(&self) -> Error {
        match &self.session.current {
            None => Error::NotLoggedIn,
            Some(_) => Error::SessionExpired("the session has ended; log in again".into()),
        }
    }

    /// Whether a call for the current session can go out now: a live session, a server and
    /// the network; the error to answer with when not.
    pub(crate) fn session_ready(&self) -> Result<(), Error> {
        if !self.session_active() {
            return Err(self.not_active_error());
        }
        self.network_ready()
    }

    pub(crate) fn expire_session(&mut self, detail: String) {
        let Some(s) = &mut self.session.current else {
            return;
        };
        if s.expired {
            return;
        }
        s.expired = true;
        tracing::info!(%detail, "session expired");
        if let Err(e) = self.store.set_session(Some(s)) {
            tracing::error!("storing the expired session: {e}");
        }
        self.release_logins();
        self.stream.conn = None;
        self.session.lease_until = None;
        self.heartbeat.next = None;
        self.heartbeat.forced = None;
        self.last_error = Some(LastError {
            code: SESSION_EXPIRED.into(),
            detail,
        });
        self.last_error_sticky = true;
        let waiters: Vec<_> = self
            .heartbeat
            .waiters
            .drain(..)
            .chain(self.session.me_waiters.drain(..))
            .collect();
        for w in waiters {
            self.respond(
                w,
                Err(Error::SessionExpired("the session has ended".into())),
            );
        }
    }

    /// Takes a server status if it is newer than the one we have.
    pub(crate) fn apply_status(&mut self, view: StatusView) {
        if self.session.current.is_none() {
            return;
        }
        if self
            .session
            .confirmed
            .as_ref()
            .is_some_and(|c| c.version >= view.version)
        {
            return;
        }
        if let Err(e) = self.store.set_status(Some(&view)) {
            tracing::warn!("storing the status: {e}");
        }
        self.session.confirmed = Some(view);
    }

    pub(crate) fn apply_chatbox(&mut self, view: ChatboxView) {
        if self.session.current.is_none() {
            return;
        }
        if self
            .session
            .chatbox
            .as_ref()
            .is_some_and(|c| c.version >= view.version)
        {
            return;
        }
        if let Err(e) = self.store.set_chatbox(Some(&view)) {
            tracing::warn!("storing the chat box: {e}");
        }
        self.session.chatbox = Some(view);
    }

    pub(crate) fn apply_custom_statuses(&mut self, list: Vec<CustomStatus>) {
        if self.session.current.is_none() || self.session.custom_statuses == list {
            return;
        }
        if let Err(e) = self.store.set_custom_statuses(&list) {
            tracing::warn!("storing the custom statuses: {e}");
        }
        self.session.custom_statuses = list;
    }

    /// The server and token a read of the server needs; without them the reason is answered
    /// on `reply` and `None` returned.
    fn read_access<T>(&mut self, reply: Reply<T>) -> Option<(Api, String, Reply<T>)> {
        if let Err(e) = self.session_ready() {
            self.respond(reply, Err(e));
            return None;
        }
        let (Some(api), Some(token)) = (self.api.clone(), self.session.token()) else {
            self.respond(reply, Err(Error::NotLoggedIn));
            return None;
        };
        Some((api, token, reply))
    }

    pub(crate) fn status_log(&mut self, query: LogQuery, reply: Reply<StatusLogPage>) {
        let Some((api, token, reply)) = self.read_access(reply) else {
            return;
        };
        self.tasks.spawn(async move {
            let result = api.status_log(&token, &query).await;
            TaskDone::StatusLog {
                token,
                reply,
                result,
            }
        });
    }

    pub(crate) fn availability_report(
        &mut self,
        query: ReportQuery,
        reply: Reply<AvailabilityReport>,
    ) {
        let Some((api, token, reply)) = self.read_access(reply) else {
            return;
        };
        self.tasks.spawn(async move {
            let result = api.availability_report(&token, &query).await;
            TaskDone::AvailabilityReport {
                token,
                reply,
                result,
            }
        });
    }

    /// The answer to a read of the server (status log, report): a refused token ends the
    /// session it belonged to, if it is still the current one.
    pub(crate) fn on_read<T>(&mut self, token: String, reply: Reply<T>, result: Result<T, Error>) {
        let current = self
            .session
            .current
            .as_ref()
            .is_some_and(|s| s.token == token);
        match &result {
            Ok(_) => self.reachable = Some(true),
            Err(e) if current && e.class() == ErrorClass::Unauthorized => {
                self.expire_session(e.to_string())
            }
            Err(e) => self.note_reachability(e),
        }
        self.respond(reply, result);
    }

    pub(crate) fn update_agent(&mut self, agent: Agent) {
        let Some(s) = &mut self.session.current else {
            return;
        };
        if s.agent == agent {
            return;
        }
        s.agent = agent;
        if let Err(e) = self.store.set_session(Some(s)) {
            tracing::warn!("storing the session: {e}");
        }
    }

    pub(crate) fn session_ended(&mut self, reason: EndReason) {
        self.expire_session(format!("session ended: {}", reason.as_str()));
    }
}

//! The engine actor: the one task that owns a device's state.
//!
//! The state is split by concern into four sub-machines, each in its own file with its
//! guarantees written at the top: [`session`](crate::session) (login, logout, expiry,
//! pushes, the `/v1/me` refresh), [`outbox`](crate::outbox) (the durable queue),
//! [`heartbeat`](crate::heartbeat) (the lease) and [`stream`](crate::stream) (the event
//! stream). This file routes: commands, request answers, stream messages and timers go to
//! the sub-machine they concern; what they share (store, API, clock, lifecycle, network,
//! `last_error`) and the snapshot live here.
//!
//! [`PresenceClient`](crate::PresenceClient) methods become [`Command`]s on an unbounded
//! channel (so even synchronous callers can send). The actor handles one event at a time (a
//! command, the answer of a request task, an event-stream message or a timer), then runs
//! [`Engine::drive`] to start whatever is now due, publishes a new snapshot if anything
//! visible changed, and sleeps until the next event or its earliest timer.
//!
//! Nothing here awaits the network: requests run in tasks of a `JoinSet` owned by the actor
//! (aborted with it) and come back as [`TaskDone`]. SQLite writes are synchronous and short;
//! doing them inline is what makes "stored before acknowledged" simple to see.
//!
//! Answers that arrive for a session that is no longer the current one (logged out, replaced)
//! are recognised by their token and ignored, except for outbox ops, whose fate is decided by
//! their own token (see the [`outbox`](crate::outbox) essay).

use std::sync::Arc;
use std::time::Duration;

use presence_protocol::{
    AvailabilityReport, Device, Heartbeat, LoginResponse, MeResponse, PushPayload,
    PushRegistration, SetStatusResponse, StatusLogPage,
};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::api::{Api, LogQuery, ReportQuery};
use crate::clock::{ClockEstimate, ServerClock};
use crate::config::Overrides;
use crate::error::Error;
use crate::heartbeat::Heartbeats;
use crate::meter::Meter;
use crate::outbox::Backoff;
use crate::outbox::Outbox;
use crate::session::Session;
use crate::snapshot::{
    ClientSnapshot, Connection, LastError, Lifecycle, OutboxSnapshot, SessionSnapshot,
    SessionState, StatusSnapshot, WedgedOp,
};
use crate::status::{StatusRequest, pending_view};
use crate::store::Store;
use crate::stream::EventStream;

pub(crate) type Reply<T> = oneshot::Sender<Result<T, Error>>;

pub(crate) enum Command {
    Login {
        account: String,
        proof: crate::api::Proof,
        reply: Reply<()>,
    },
    Logout {
        reply: Reply<()>,
    },
    SetStatus {
        req: StatusRequest,
        reply: Reply<()>,
    },
    /// How long the user has not touched the device, as of now (`None`: not reported).
    ReportIdle {
        idle_ms: Option<u64>,
    },
    StatusLog {
        query: LogQuery,
        reply: Reply<StatusLogPage>,
    },
    AvailabilityReport {
        query: ReportQuery,
        reply: Reply<AvailabilityReport>,
    },
    SetLifecycle {
        lifecycle: Lifecycle,
    },
    SetNetwork {
        available: bool,
    },
    Push {
        payload: PushPayload,
        reply: Reply<()>,
    },
    /// One heartbeat now (answered when it completes) and a push to drain the outbox.
    BackgroundRefresh {
        reply: Reply<()>,
    },
    RegisterPush {
        push: PushRegistration,
        reply: Reply<()>,
    },
    Refresh {
        reply: Reply<()>,
    },
    RetryWedged {
        op_id: String,
        reply: Reply<()>,
    },
    DiscardWedged {
        op_id: String,
        reply: Reply<()>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// The answer of a request task.
pub(crate) enum TaskDone {
    Login {
        account: String,
        reply: Reply<()>,
        result: Result<LoginResponse, Error>,
    },
    Op {
        op_id: String,
        token: String,
        result: Result<Option<SetStatusResponse>, Error>,
    },
    Heartbeat {
        token: String,
        result: Result<Heartbeat, Error>,
    },
    Me {
        token: String,
        result: Result<MeResponse, Error>,
    },
    StatusLog {
        token: String,
        reply: Reply<StatusLogPage>,
        result: Result<StatusLogPage, Error>,
    },
    AvailabilityReport {
        token: String,
        reply: Reply<AvailabilityReport>,
        result: Result<AvailabilityReport, Error>,
    },
}

/// Everything the actor needs to start, assembled by `PresenceClient::open`.
pub(crate) struct EngineParts {
    pub store: Store,
    pub api: Option<Api>,
    pub server_url: Option<String>,
    pub clock: Arc<ServerClock>,
    pub device: Device,
    pub overrides: Overrides,
    pub meter: Arc<Meter>,
    pub snapshots: watch::Sender<ClientSnapshot>,
    pub commands: mpsc::UnboundedReceiver<Command>,
}

/// The actor's state: what all sub-machines share (the store, the API, the clock, the
/// lifecycle and network the OS reported, what the UI shows of errors), and one field per
/// sub-machine, each defined beside its documentation and its handlers:
///
/// - [`Session`] (`session.rs`): login, logout, expiry, pushes, the `/v1/me` refresh, the
///   status, chat box and custom statuses as last heard, status log reads;
/// - [`Outbox`] (`outbox.rs`): the durable queue of changes (a pending status change is
///   shown through `status.rs`);
/// - [`Heartbeats`] (`heartbeat.rs`): the lease, and the activity reports it carries;
/// - [`EventStream`] (`stream.rs`): `/v1/me/events`.
///
/// Fields are `pub(crate)` because each sub-machine's handlers are `impl Engine` blocks in
/// its own file: a handler may touch another sub-machine (a 401 on any request expires the
/// session, which stops the heartbeats and the stream), and going through the engine keeps
/// that visible in one place rather than in messages between them.
pub(crate) struct Engine {
    pub(crate) store: Store,
    pub(crate) api: Option<Api>,
    pub(crate) server_url: Option<String>,
    pub(crate) clock: Arc<ServerClock>,
    pub(crate) device: Device,
    pub(crate) backoff: Backoff,
    pub(crate) store_poll_interval: Option<Duration>,
    pub(crate) rng: SmallRng,
    pub(crate) meter: Arc<Meter>,

    pub(crate) commands: mpsc::UnboundedReceiver<Command>,
    pub(crate) snapshots: watch::Sender<ClientSnapshot>,
    pub(crate) tasks: JoinSet<TaskDone>,

    pub(crate) lifecycle: Lifecycle,
    pub(crate) network: bool,
    /// Did the last request get an answer? `None` until one tries.
    pub(crate) reachable: Option<bool>,
    pub(crate) last_error: Option<LastError>,
    /// `last_error` is the session's expiry: only a login or a logout clears it.
    pub(crate) last_error_sticky: bool,
    pub(crate) persisted_clock: Option<ClockEstimate>,
    /// A push registration is stored (so the server can renew a background lease by push).
    pub(crate) has_push: bool,
    pub(crate) store_poll_at: Option<Instant>,

    pub(crate) session: Session,
    pub(crate) outbox: Outbox,
    pub(crate) heartbeat: Heartbeats,
    pub(crate) stream: EventStream,
}

impl Engine {
    pub(crate) fn new(parts: EngineParts) -> Result<Engine, Error> {
        let EngineParts {
            store,
            api,
            server_url,
            clock,
            device,
            overrides,
            meter,
            snapshots,
            commands,
        } = parts;
        let session = Session::restore(&store)?;
        let outbox = Outbox::new(store.outbox()?);
        let persisted_clock = store.clock()?;
        let has_push = store.push()?.is_some();
        if let Some(c) = persisted_clock {
            clock.restore(c);
        }
        let rng = match overrides.rng_seed {
            Some(seed) => SmallRng::seed_from_u64(seed),
            None => SmallRng::from_os_rng(),
        };
        let now = Instant::now();
        // A restored session heartbeats at once.
        let heartbeat = Heartbeats::new(session.is_active().then_some(now));
        Ok(Engine {
            store,
            api,
            server_url,
            clock,
            device,
            backoff: Backoff {
                base: overrides.backoff_base,
                cap: overrides.backoff_cap,
            },
            store_poll_interval: overrides.store_poll_interval,
            rng,
            meter,
            commands,
            snapshots,
            tasks: JoinSet::new(),
            lifecycle: Lifecycle::Active,
            network: true,
            reachable: None,
            last_error: None,
            last_error_sticky: false,
            persisted_clock,
            has_push,
            store_poll_at: overrides.store_poll_interval.map(|d| now + d),
            session,
            outbox,
            heartbeat,
            stream: EventStream::new(overrides.sse_idle_timeout),
        })
    }

    /// The initial snapshot, published before the actor starts.
    pub(crate) fn initial_snapshot(&self) -> ClientSnapshot {
        self.snapshot()
    }

    pub(crate) async fn run(mut self) {
        let mut shutdown_reply = None;
        loop {
            self.drive();
            self.publish();
            let wake = self.next_wake();
            tokio::select! {
                cmd = self.commands.recv() => match cmd {
                    None => break,
                    Some(Command::Shutdown { reply }) => {
                        shutdown_reply = Some(reply);
                        break;
                    }
                    Some(cmd) => self.handle_command(cmd),
                },
                Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => match done {
                    Ok(done) => self.handle_task(done),
                    Err(e) if e.is_panic() => {
                        // A panicking request task is a bug; forget what it was doing so the
                        // engine keeps going rather than wedging on an answer that never comes.
                        tracing::error!("request task panicked: {e}");
                        self.outbox.in_flight = None;
                        self.heartbeat.in_flight = false;
                        self.session.me_in_flight = false;
                    }
                    Err(_) => {}
                },
                Some(msg) = self.stream.rx.recv() => self.handle_sse(msg),
                _ = sleep_until_opt(wake) => {
                    self.meter.timer_wakeup();
                    self.on_timer();
                }
            }
            self.meter.store(self.store.counters());
        }
        self.stream.conn = None;
        self.tasks.shutdown().await;
        self.meter.store(self.store.counters());
        self.publish();
        if let Some(reply) = shutdown_reply {
            let _ = reply.send(());
        }
    }

    // -- commands --------------------------------------------------------------------------

    pub(crate) fn handle_command(&mut self, cmd: Command) {
        match cmd {
            Command::Login {
                account,
                proof,
                reply,
            } => self.login(account, proof, reply),
            Command::Logout { reply } => self.logout(reply),
            Command::SetStatus { req, reply } => {
                let r = self.set_status(req);
                self.respond(reply, r);
            }
            Command::ReportIdle { idle_ms } => self.report_idle(idle_ms),
            Command::StatusLog { query, reply } => self.status_log(query, reply),
            Command::AvailabilityReport { query, reply } => self.availability_report(query, reply),
            Command::SetLifecycle { lifecycle } => self.set_lifecycle(lifecycle),
            Command::SetNetwork { available } => self.set_network(available),
            Command::Push { payload, reply } => self.push(payload, reply),
            Command::BackgroundRefresh { reply } => {
                if self.force_heartbeat(self.lifecycle.mode(), reply) {
                    self.session.me_wanted = true;
                    self.retry_ops_now();
                }
            }
            Command::RegisterPush { push, reply } => {
                let r = self.register_push(push);
                self.respond(reply, r);
            }
            Command::Refresh { reply } => {
                if let Err(e) = self.session_ready() {
                    self.respond(reply, Err(e));
                    return;
                }
                self.session.me_wanted = true;
                self.session.me_waiters.push(reply);
            }
            Command::RetryWedged { op_id, reply } => {
                let r = self.retry_wedged(&op_id);
                self.respond(reply, r);
            }
            Command::DiscardWedged { op_id, reply } => {
                let r = self.discard_wedged(&op_id);
                self.respond(reply, r);
            }
            // Handled by `run` before dispatch.
            Command::Shutdown { .. } => {}
        }
    }

    /// Another request got through: an op waiting out a backoff for a network failure goes
    /// now rather than at its retry time (not one the server asked to wait with Retry-After),
    /// and a stream waiting to reconnect reconnects.
    pub(crate) fn server_is_back(&mut self) {
        self.retry_ops_now();
        // Likewise a stream waiting to reconnect: the outage is over.
        if self.stream.conn.is_none() && self.stream.retry_at.is_some() {
            self.stream.retry_at = None;
            self.stream.attempts = 0;
        }
    }

    pub(crate) fn set_lifecycle(&mut self, lifecycle: Lifecycle) {
        if lifecycle == self.lifecycle {
            return;
        }
        self.lifecycle = lifecycle;
        if self.session_active() {
            // Switch the lease kind now rather than at the next scheduled heartbeat.
            self.heartbeat.forced = Some(lifecycle.mode());
            if lifecycle == Lifecycle::Active {
                self.session.me_wanted = true;
            }
        }
    }

    pub(crate) fn set_network(&mut self, available: bool) {
        if available == self.network {
            return;
        }
        self.network = available;
        if available {
            // The outage that caused any backoff is over: try everything now.
            self.reachable = None;
            self.outbox.attempts = 0;
            self.retry_ops_now();
            self.stream.attempts = 0;
            self.stream.retry_at = None;
            if self.heartbeat.failures > 0 {
                self.heartbeat.failures = 0;
                self.heartbeat.next = Some(Instant::now());
            }
            if self.session_active() {
                self.session.me_wanted = true;
            }
        } else {
            self.stream.conn = None;
            self.release_logins();
            self.release_op_waiters();
            let waiters: Vec<_> = self
                .heartbeat
                .waiters
                .drain(..)
                .chain(self.session.me_waiters.drain(..))
                .collect();
            for w in waiters {
                self.respond(w, Err(no_network()));
            }
        }
    }

    // -- task answers ----------------------------------------------------------------------

    pub(crate) fn handle_task(&mut self, done: TaskDone) {
        match done {
            TaskDone::Login {
                account,
                reply,
                result,
            } => self.on_login(account, reply, result),
            TaskDone::Op {
                op_id,
                token,
                result,
            } => self.on_op(op_id, token, result),
            TaskDone::Heartbeat { token, result } => self.on_heartbeat(token, result),
            TaskDone::Me { token, result } => self.on_me(token, result),
            TaskDone::StatusLog {
                token,
                reply,
                result,
            } => self.on_read(token, reply, result),
            TaskDone::AvailabilityReport {
                token,
                reply,
                result,
            } => self.on_read(token, reply, result),
        }
        self.persist_clock();
    }

    // -- driving ---------------------------------------------------------------------------

    /// Starts whatever is due. Called after every event; cheap when nothing is.
    pub(crate) fn drive(&mut self) {
        let now = Instant::now();
        self.drive_outbox(now);
        self.drive_heartbeat(now);
        self.drive_sse(now);
        self.drive_me();
    }

    /// The earliest timer that `drive` would act on. Only actionable timers count: a
    /// deadline in the past that `drive` would ignore would spin the loop.
    pub(crate) fn next_wake(&self) -> Option<Instant> {
        let mut wake: Option<Instant> = self.store_poll_at;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                wake = Some(wake.map_or(t, |w| w.min(t)));
            }
        };
        if self.network && self.api.is_some() {
            if self.outbox.in_flight.is_none() && self.next_sendable().is_some() {
                consider(self.outbox.retry_at);
            }
            if self.session_active() && !self.heartbeat.in_flight {
                consider(self.heartbeat.next);
            }
            if self.want_sse() && self.stream.conn.is_none() {
                consider(self.stream.retry_at);
            }
        }
        wake
    }

    pub(crate) fn on_timer(&mut self) {
        let now = Instant::now();
        if let (Some(at), Some(every)) = (self.store_poll_at, self.store_poll_interval)
            && now >= at
        {
            self.store_poll_at = Some(now + every);
            self.reload_if_changed_elsewhere();
        }
        // Other timers are acted on by `drive`, which runs next.
    }

    /// Another process (a second `presence` command on this data dir) committed: take its
    /// outbox and session, which are now the truth on disk.
    pub(crate) fn reload_if_changed_elsewhere(&mut self) {
        match self.store.changed_elsewhere() {
            Ok(false) => return,
            Ok(true) => {}
            Err(e) => {
                tracing::warn!("checking the store: {e}");
                return;
            }
        }
        match self.store.outbox() {
            Ok(ops) => self.outbox.ops = ops,
            Err(e) => tracing::warn!("reloading the outbox: {e}"),
        }
        let stored = match self.store.session() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("reloading the session: {e}");
                return;
            }
        };
        if stored != self.session.current {
            let same_token = stored.as_ref().map(|s| &s.token)
                == self.session.current.as_ref().map(|s| &s.token);
            if !same_token {
                self.stream.conn = None;
                self.session.lease_until = None;
                self.session.chatbox = None;
                self.session.confirmed = None;
                self.heartbeat.next = stored
                    .as_ref()
                    .filter(|s| !s.expired)
                    .map(|_| Instant::now());
                self.session.me_wanted = stored.is_some();
            }
            self.session.current = stored;
        }
        if self.session.current.is_some()
            && let Ok(Some(s)) = self.store.status()
        {
            self.apply_status(s);
        }
    }

    // -- state helpers ---------------------------------------------------------------------

    pub(crate) fn network_ready(&self) -> Result<(), Error> {
        if self.api.is_none() {
            return Err(Error::NoServer);
        }
        if !self.network {
            return Err(no_network());
        }
        Ok(())
    }

    pub(crate) fn note_reachability(&mut self, e: &Error) {
        match e {
            // A proxy's own error page (a 502 while the server is down): not reached.
            Error::Transport(_) | Error::UnexpectedStatus { .. } => self.reachable = Some(false),
            Error::Http { .. } | Error::BadResponse(_) => self.reachable = Some(true),
            _ => {}
        }
    }

    pub(crate) fn set_error(&mut self, e: &Error) {
        let (code, detail) = e.code_and_detail();
        self.last_error = Some(LastError { code, detail });
        self.last_error_sticky = false;
    }

    pub(crate) fn clear_error(&mut self) {
        // An expired session stays visible until the user acts on it.
        if !self.last_error_sticky {
            self.last_error = None;
        }
    }

    /// Stores the clock estimate when it moved or became more certain by a couple of ms
    /// (not at every heartbeat: each write is an fsync).
    pub(crate) fn persist_clock(&mut self) {
        let Some(est) = self.clock.estimate() else {
            return;
        };
        if self.persisted_clock.is_some_and(|p| {
            (p.offset_ms - est.offset_ms).abs() < 2 && p.uncertainty_ms - est.uncertainty_ms < 2
        }) {
            return;
        }
        match self.store.set_clock(&est) {
            Ok(()) => self.persisted_clock = Some(est),
            Err(e) => tracing::warn!("storing the clock estimate: {e}"),
        }
    }

    // -- snapshot --------------------------------------------------------------------------

    pub(crate) fn connection(&self) -> Connection {
        if !self.network {
            return Connection::NoNetwork;
        }
        if self.api.is_none() || !self.session_active() {
            return Connection::Offline;
        }
        match self.lifecycle {
            Lifecycle::Active if self.stream.is_open() => Connection::Connected,
            Lifecycle::Active => match self.reachable {
                Some(false) => Connection::Offline,
                _ => Connection::Connecting,
            },
            Lifecycle::Background => match self.reachable {
                Some(true) => Connection::Connected,
                Some(false) => Connection::Offline,
                None => Connection::Connecting,
            },
        }
    }

    pub(crate) fn snapshot(&self) -> ClientSnapshot {
        let session = match &self.session.current {
            None => SessionSnapshot {
                state: SessionState::LoggedOut,
                agent: None,
                account: None,
                session_id: None,
            },
            Some(s) => SessionSnapshot {
                state: if s.expired {
                    SessionState::Expired
                } else {
                    SessionState::Active
                },
                agent: Some(s.agent.clone()),
                account: Some(s.account.clone()),
                session_id: Some(s.session_id.clone()),
            },
        };
        let status = match (&self.session.current, &self.session.confirmed) {
            (Some(s), Some(c)) => {
                let pending = self
                    .outbox
                    .ops
                    .iter()
                    .rev()
                    .filter(|o| !o.is_wedged() && o.agent_id.as_deref() == Some(&s.agent.id))
                    .find_map(|o| o.body.status_request())
                    .map(|(req, intent_at)| {
                        pending_view(&req, intent_at, c, &self.session.custom_statuses)
                    });
                let is_pending = pending.is_some();
                let shown = pending.unwrap_or_else(|| c.clone());
                Some(StatusSnapshot {
                    current: shown.status,
                    confirmed: c.status,
                    version: c.version,
                    pending: is_pending,
                    until: shown.until,
                    then: shown.then,
                    custom_status: shown.custom_status,
                    note: shown.note,
                    cause: shown.cause,
                    changed_by_agent: shown.changed_by_agent,
                })
            }
            _ => None,
        };
        ClientSnapshot {
            session,
            status,
            chatbox: self.session.chatbox.clone(),
            custom_statuses: self.session.custom_statuses.clone(),
            connection: self.connection(),
            lifecycle: self.lifecycle,
            lease_until: self.session.lease_until,
            outbox: OutboxSnapshot {
                pending: self.outbox.ops.iter().filter(|o| !o.is_wedged()).count() as u32,
                wedged: self
                    .outbox
                    .ops
                    .iter()
                    .filter_map(|o| {
                        o.wedged.as_ref().map(|(code, detail)| WedgedOp {
                            op_id: o.op_id.clone(),
                            kind: o.kind(),
                            code: code.clone(),
                            detail: detail.clone(),
                        })
                    })
                    .collect(),
            },
            last_error: self.last_error.clone(),
        }
    }

    /// Answers a caller after publishing the snapshot, so whoever awaited the command sees
    /// its effect in `snapshot()` at once.
    pub(crate) fn respond<T>(&self, reply: Reply<T>, result: Result<T, Error>) {
        self.publish();
        let _ = reply.send(result);
    }

    pub(crate) fn publish(&self) {
        let snap = self.snapshot();
        self.snapshots.send_if_modified(|cur| {
            if *cur == snap {
                false
            } else {
                *cur = snap;
                true
            }
        });
    }
}

pub(crate) fn no_network() -> Error {
    Error::Transport(crate::transport::TransportError::new(
        crate::transport::TransportErrorKind::Connect,
        "the device reports no network",
    ))
}

/// Errors are not `Clone` (they may hold a rusqlite error); waiters get an equivalent.
pub(crate) fn clone_error(e: &Error) -> Error {
    match e {
        Error::Transport(t) => Error::Transport(t.clone()),
        Error::Http {
            status,
            code,
            detail,
            retry_after,
        } => Error::Http {
            status: *status,
            code: code.clone(),
            detail: detail.clone(),
            retry_after: *retry_after,
        },
        Error::UnexpectedStatus {
            status,
            detail,
            retry_after,
        } => Error::UnexpectedStatus {
            status: *status,
            detail: detail.clone(),
            retry_after: *retry_after,
        },
        Error::BadResponse(d) => Error::BadResponse(d.clone()),
        Error::InvalidInput(d) => Error::InvalidInput(d.clone()),
        Error::NotLoggedIn => Error::NotLoggedIn,
        Error::SessionExpired(d) => Error::SessionExpired(d.clone()),
        Error::NoServer => Error::NoServer,
        Error::Shutdown => Error::Shutdown,
        other => Error::Internal(other.to_string()),
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

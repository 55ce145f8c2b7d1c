//! The engine actor: the one task that owns a device's state.
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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use presence_protocol::{
    Agent, AgentStatus, ChatboxView, Device, EndReason, Heartbeat, LoginRequest, LoginResponse,
    MeResponse, Mode, PushBody, PushPayload, PushRegistration, SessionEndedEvent, SetStatusRequest,
    SetStatusResponse, SnapshotEvent, StatusView, event,
};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::api::Api;
use crate::clock::{ClockEstimate, ServerClock};
use crate::config::Overrides;
use crate::error::{Error, ErrorClass, SESSION_EXPIRED, ServerCode};
use crate::meter::Meter;
use crate::outbox::{Backoff, Op, OpBody};
use crate::snapshot::{
    ClientSnapshot, Connection, LastError, Lifecycle, OpKind, OutboxSnapshot, SessionSnapshot,
    SessionState, StatusSnapshot, WedgedOp,
};
use crate::sse::{SseEvent, SseItem, SseParser};
use crate::store::{Store, StoredSession};
use presence_protocol::ErrorCode;

pub(crate) type Reply<T> = oneshot::Sender<Result<T, Error>>;

pub(crate) enum Command {
    Login {
        account: String,
        email: String,
        password: String,
        reply: Reply<()>,
    },
    Logout {
        reply: Reply<()>,
    },
    SetStatus {
        status: AgentStatus,
        reply: Reply<()>,
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
enum TaskDone {
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
}

/// A message from the event-stream task, tagged with the stream's generation so messages of
/// a stream already replaced are ignored.
struct SseMsg {
    generation: u64,
    kind: SseKind,
}

enum SseKind {
    Opened,
    Event(SseEvent),
    Closed(Option<Error>),
}

struct SseConn {
    generation: u64,
    opened: bool,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SseConn {
    fn drop(&mut self) {
        self.task.abort();
    }
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

pub(crate) struct Engine {
    store: Store,
    api: Option<Api>,
    server_url: Option<String>,
    clock: Arc<ServerClock>,
    device: Device,
    backoff: Backoff,
    sse_idle_timeout: Duration,
    store_poll_interval: Option<Duration>,
    rng: SmallRng,
    meter: Arc<Meter>,

    commands: mpsc::UnboundedReceiver<Command>,
    snapshots: watch::Sender<ClientSnapshot>,
    tasks: JoinSet<TaskDone>,
    sse_tx: mpsc::UnboundedSender<SseMsg>,
    sse_rx: mpsc::UnboundedReceiver<SseMsg>,

    // What the user sees.
    session: Option<StoredSession>,
    confirmed: Option<StatusView>,
    chatbox: Option<ChatboxView>,
    lifecycle: Lifecycle,
    network: bool,
    /// Did the last request get an answer? `None` until one tries.
    reachable: Option<bool>,
    lease_until: Option<i64>,
    last_error: Option<LastError>,
    /// `last_error` is the session's expiry: only a login or a logout clears it.
    last_error_sticky: bool,

    // Outbox.
    outbox: Vec<Op>,
    op_in_flight: Option<String>,
    op_attempts: u32,
    op_retry_at: Option<Instant>,
    /// The retry time came from the server's `Retry-After`: only the server may shorten it.
    op_retry_by_server: bool,
    op_waiters: HashMap<String, Vec<Reply<()>>>,

    // Heartbeats.
    hb_interval: Duration,
    next_heartbeat: Option<Instant>,
    hb_in_flight: bool,
    hb_failures: u32,
    /// A heartbeat that must go out now in this mode (lifecycle switch, renew push, refresh).
    hb_forced: Option<Mode>,
    /// Waiting for the next heartbeat to *start*; moved to `hb_running_waiters` when it does.
    hb_waiters: Vec<Reply<()>>,
    hb_running_waiters: Vec<Reply<()>>,

    // Event stream.
    sse: Option<SseConn>,
    sse_generation: u64,
    sse_attempts: u32,
    sse_retry_at: Option<Instant>,

    // `/v1/me` refresh.
    me_wanted: bool,
    me_in_flight: bool,
    me_waiters: Vec<Reply<()>>,
    me_running_waiters: Vec<Reply<()>>,

    persisted_clock: Option<ClockEstimate>,
    /// A push registration is stored (so the server can renew a background lease by push).
    has_push: bool,
    /// Logins answered once the first heartbeat (the first precise clock sample) is done.
    login_waiters: Vec<Reply<()>>,
    store_poll_at: Option<Instant>,
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
        let session = store.session()?;
        let confirmed = if session.is_some() {
            store.status()?
        } else {
            None
        };
        let chatbox = if session.is_some() {
            store.chatbox()?
        } else {
            None
        };
        let outbox = store.outbox()?;
        let persisted_clock = store.clock()?;
        let has_push = store.push()?.is_some();
        if let Some(c) = persisted_clock {
            clock.restore(c);
        }
        let rng = match overrides.rng_seed {
            Some(seed) => SmallRng::seed_from_u64(seed),
            None => SmallRng::from_os_rng(),
        };
        let (sse_tx, sse_rx) = mpsc::unbounded_channel();
        let now = Instant::now();
        let active = session.as_ref().is_some_and(|s| !s.expired);
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
            sse_idle_timeout: overrides.sse_idle_timeout,
            store_poll_interval: overrides.store_poll_interval,
            rng,
            meter,
            commands,
            snapshots,
            tasks: JoinSet::new(),
            sse_tx,
            sse_rx,
            session,
            confirmed,
            chatbox,
            lifecycle: Lifecycle::Active,
            network: true,
            reachable: None,
            lease_until: None,
            last_error: None,
            last_error_sticky: false,
            outbox,
            op_in_flight: None,
            op_attempts: 0,
            op_retry_at: None,
            op_retry_by_server: false,
            op_waiters: HashMap::new(),
            // Until the server says otherwise; a restored session heartbeats at once anyway.
            hb_interval: Duration::from_secs(20),
            next_heartbeat: active.then_some(now),
            hb_in_flight: false,
            hb_failures: 0,
            hb_forced: None,
            hb_waiters: Vec::new(),
            hb_running_waiters: Vec::new(),
            sse: None,
            sse_generation: 0,
            sse_attempts: 0,
            sse_retry_at: None,
            me_wanted: active,
            me_in_flight: false,
            me_waiters: Vec::new(),
            me_running_waiters: Vec::new(),
            persisted_clock,
            has_push,
            login_waiters: Vec::new(),
            store_poll_at: overrides.store_poll_interval.map(|d| now + d),
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
                        self.op_in_flight = None;
                        self.hb_in_flight = false;
                        self.me_in_flight = false;
                    }
                    Err(_) => {}
                },
                Some(msg) = self.sse_rx.recv() => self.handle_sse(msg),
                _ = sleep_until_opt(wake) => {
                    self.meter.timer_wakeup();
                    self.on_timer();
                }
            }
            self.meter.store(self.store.counters());
        }
        self.sse = None;
        self.tasks.shutdown().await;
        self.meter.store(self.store.counters());
        self.publish();
        if let Some(reply) = shutdown_reply {
            let _ = reply.send(());
        }
    }

    // -- commands --------------------------------------------------------------------------

    fn handle_command(&mut self, cmd: Command) {
        match cmd {
            Command::Login {
                account,
                email,
                password,
                reply,
            } => self.login(account, email, password, reply),
            Command::Logout { reply } => self.logout(reply),
            Command::SetStatus { status, reply } => {
                let r = self.set_status(status);
                self.respond(reply, r);
            }
            Command::SetLifecycle { lifecycle } => self.set_lifecycle(lifecycle),
            Command::SetNetwork { available } => self.set_network(available),
            Command::Push { payload, reply } => self.push(payload, reply),
            Command::BackgroundRefresh { reply } => {
                if !self.session_active() {
                    let e = self.not_active_error();
                    self.respond(reply, Err(e));
                    return;
                }
                if let Err(e) = self.network_ready() {
                    self.respond(reply, Err(e));
                    return;
                }
                self.hb_forced = Some(self.lifecycle.mode());
                self.hb_waiters.push(reply);
                self.me_wanted = true;
                self.retry_ops_now();
            }
            Command::RegisterPush { push, reply } => {
                let r = self.register_push(push);
                self.respond(reply, r);
            }
            Command::Refresh { reply } => {
                if !self.session_active() {
                    let e = self.not_active_error();
                    self.respond(reply, Err(e));
                    return;
                }
                if let Err(e) = self.network_ready() {
                    self.respond(reply, Err(e));
                    return;
                }
                self.me_wanted = true;
                self.me_waiters.push(reply);
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

    fn login(&mut self, account: String, email: String, password: String, reply: Reply<()>) {
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
        let req = LoginRequest {
            account: account.clone(),
            email,
            password,
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

    fn on_login(
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
            Ok(ops) => self.outbox = ops,
            Err(e) => tracing::warn!("reloading the outbox after login: {e}"),
        }
        // The login answer is a fresh baseline: take it even if its version is lower than
        // what we knew (the server may have been reset).
        self.confirmed = Some(r.status);
        self.chatbox = None;
        self.session = Some(session);
        self.lease_until = Some(r.heartbeat.lease_until);
        self.hb_interval = interval(&r.heartbeat);
        self.next_heartbeat = Some(Instant::now() + self.hb_interval);
        // Heartbeat at once: a login answer is a poor clock sample (the server spends tens
        // of milliseconds hashing the password), a heartbeat a good one. `login` returns after
        // it, so a change made right after logging in is already stamped well. It also asks
        // for the background lease if the app is in the background.
        self.hb_forced = Some(self.lifecycle.mode());
        self.hb_failures = 0;
        self.sse = None;
        self.sse_attempts = 0;
        self.sse_retry_at = None;
        self.op_attempts = 0;
        self.op_retry_at = None;
        self.op_retry_by_server = false;
        self.me_wanted = true;
        self.last_error = None;
        self.last_error_sticky = false;
        self.persist_clock();
        self.login_waiters.push(reply);
    }

    /// Answers logins waiting for their first heartbeat. Called when one completes (either
    /// way: the login itself succeeded) or can no longer happen.
    fn release_logins(&mut self) {
        for w in std::mem::take(&mut self.login_waiters) {
            self.respond(w, Ok(()));
        }
    }

    fn logout(&mut self, reply: Reply<()>) {
        let Some(session) = self.session.clone() else {
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
        self.session = None;
        self.confirmed = None;
        self.chatbox = None;
        self.lease_until = None;
        self.last_error = None;
        self.last_error_sticky = false;
        self.sse = None;
        self.next_heartbeat = None;
        self.hb_forced = None;
        self.me_wanted = false;
        let waiters: Vec<_> = self
            .hb_waiters
            .drain(..)
            .chain(self.me_waiters.drain(..))
            .collect();
        for w in waiters {
            self.respond(w, Err(Error::NotLoggedIn));
        }
        let Some(end) = end else {
            self.respond(reply, Ok(()));
            return;
        };
        let op_id = end.op_id.clone();
        self.outbox.push(end);
        // Try to tell the server now. `logout` returns once the queue has reached this op
        // and tried it (delivered, or kept for later), or as soon as the queue stalls on a
        // failure or the network goes: the caller (a CLI about to exit) should not outwait
        // the outage, but neither should it exit before trying.
        self.retry_ops_now();
        if self.network && self.api.is_some() && self.op_retry_at.is_none() {
            self.op_waiters.entry(op_id).or_default().push(reply);
        } else {
            self.respond(reply, Ok(()));
        }
    }

    /// Another request got through: an op waiting out a backoff for a network failure goes
    /// now rather than at its retry time (not one the server asked to wait with Retry-After),
    /// and a stream waiting to reconnect reconnects.
    fn server_is_back(&mut self) {
        self.retry_ops_now();
        // Likewise a stream waiting to reconnect: the outage is over.
        if self.sse.is_none() && self.sse_retry_at.is_some() {
            self.sse_retry_at = None;
            self.sse_attempts = 0;
        }
    }

    /// Ends the outbox's backoff wait, unless the server asked for it with `Retry-After`.
    fn retry_ops_now(&mut self) {
        if !self.op_retry_by_server {
            self.op_retry_at = None;
        }
    }

    /// Answers everyone waiting on an op: the queue cannot make progress right now.
    fn release_op_waiters(&mut self) {
        let waiters: Vec<_> = self.op_waiters.drain().flat_map(|(_, w)| w).collect();
        for w in waiters {
            self.respond(w, Ok(()));
        }
    }

    fn set_status(&mut self, status: AgentStatus) -> Result<(), Error> {
        let Some(session) = &self.session else {
            return Err(Error::NotLoggedIn);
        };
        let mut op = Op::new(
            OpBody::SetStatus {
                status,
                intent_at: self.clock.offset().map(|_| self.clock.server_now()),
            },
            Some(session.agent.id.clone()),
            session.token.clone(),
            self.clock.device_now(),
        );
        let removed = self
            .store
            .enqueue_coalescing(&mut op, self.op_in_flight.as_deref())?;
        self.outbox.retain(|o| !removed.contains(&o.op_id));
        self.outbox.push(op);
        Ok(())
    }

    fn register_push(&mut self, push: PushRegistration) -> Result<(), Error> {
        let mut op = self.session.as_ref().map(|s| {
            Op::new(
                OpBody::RegisterPush { push: push.clone() },
                None,
                s.token.clone(),
                self.clock.device_now(),
            )
        });
        let removed = self
            .store
            .set_push(&push, op.as_mut(), self.op_in_flight.as_deref())?;
        self.has_push = true;
        self.outbox.retain(|o| !removed.contains(&o.op_id));
        if let Some(op) = op {
            self.outbox.push(op);
        }
        Ok(())
    }

    fn set_lifecycle(&mut self, lifecycle: Lifecycle) {
        if lifecycle == self.lifecycle {
            return;
        }
        self.lifecycle = lifecycle;
        if self.session_active() {
            // Switch the lease kind now rather than at the next scheduled heartbeat.
            self.hb_forced = Some(lifecycle.mode());
            if lifecycle == Lifecycle::Active {
                self.me_wanted = true;
            }
        }
    }

    fn set_network(&mut self, available: bool) {
        if available == self.network {
            return;
        }
        self.network = available;
        if available {
            // The outage that caused any backoff is over: try everything now.
            self.reachable = None;
            self.op_attempts = 0;
            self.retry_ops_now();
            self.sse_attempts = 0;
            self.sse_retry_at = None;
            if self.hb_failures > 0 {
                self.hb_failures = 0;
                self.next_heartbeat = Some(Instant::now());
            }
            if self.session_active() {
                self.me_wanted = true;
            }
        } else {
            self.sse = None;
            self.release_logins();
            self.release_op_waiters();
            let waiters: Vec<_> = self
                .hb_waiters
                .drain(..)
                .chain(self.me_waiters.drain(..))
                .collect();
            for w in waiters {
                self.respond(w, Err(no_network()));
            }
        }
    }

    fn push(&mut self, payload: PushPayload, reply: Reply<()>) {
        let ours = self
            .session
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
                if !self.session_active() {
                    let e = self.not_active_error();
                    self.respond(reply, Err(e));
                    return;
                }
                if let Err(e) = self.network_ready() {
                    self.respond(reply, Err(e));
                    return;
                }
                self.hb_forced = Some(Mode::Background);
                self.hb_waiters.push(reply);
            }
            PushBody::SessionEnded { reason, .. } => {
                self.expire_session(format!("session ended: {}", reason.as_str()));
                self.respond(reply, Ok(()));
            }
        }
    }

    fn retry_wedged(&mut self, op_id: &str) -> Result<(), Error> {
        let Some(op) = self
            .outbox
            .iter_mut()
            .find(|o| o.op_id == op_id && o.is_wedged())
        else {
            return Err(Error::InvalidInput(format!(
                "no wedged change with op_id {op_id}"
            )));
        };
        self.store.unwedge_op(op_id)?;
        op.wedged = None;
        self.op_attempts = 0;
        self.retry_ops_now();
        Ok(())
    }

    fn discard_wedged(&mut self, op_id: &str) -> Result<(), Error> {
        if !self
            .outbox
            .iter()
            .any(|o| o.op_id == op_id && o.is_wedged())
        {
            return Err(Error::InvalidInput(format!(
                "no wedged change with op_id {op_id}"
            )));
        }
        self.store.remove_op(op_id)?;
        self.outbox.retain(|o| o.op_id != op_id);
        Ok(())
    }

    // -- task answers ----------------------------------------------------------------------

    fn handle_task(&mut self, done: TaskDone) {
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
        }
        self.persist_clock();
    }

    fn on_op(
        &mut self,
        op_id: String,
        token: String,
        result: Result<Option<SetStatusResponse>, Error>,
    ) {
        self.op_in_flight = None;
        let waiters = self.op_waiters.remove(&op_id).unwrap_or_default();
        let Some(idx) = self.outbox.iter().position(|o| o.op_id == op_id) else {
            // Removed meanwhile (another process delivered it): nothing to do.
            for w in waiters {
                self.respond(w, Ok(()));
            }
            return;
        };
        match result {
            Ok(resp) => {
                self.reachable = Some(true);
                self.op_attempts = 0;
                self.op_retry_at = None;
                self.op_retry_by_server = false;
                self.remove_op(idx);
                if let Some(resp) = resp {
                    if !resp.applied {
                        tracing::info!(
                            op_id,
                            server_status = %resp.status.status,
                            "status change superseded by a newer intent; adopting the server's"
                        );
                    }
                    self.apply_status(resp.status);
                }
                self.clear_error();
            }
            Err(e) => match e.class() {
                ErrorClass::Transient { retry_after } => {
                    self.retry_op_later(&op_id, &e, retry_after)
                }
                ErrorClass::Local => self.retry_op_later(&op_id, &e, None),
                ErrorClass::Unauthorized => {
                    self.reachable = Some(true);
                    // Compare with the op's token *now*: a login while this was on the wire
                    // may have re-stamped it with the new session's token.
                    let op_token = self.outbox[idx].token.clone();
                    let current = self.session.as_ref().is_some_and(|s| s.token == op_token);
                    if current && op_token == token {
                        // Kept: delivered after logging in again as the same agent.
                        self.expire_session(e.to_string());
                    } else if current {
                        tracing::debug!(op_id, "op re-stamped by a new login; resending");
                    } else {
                        tracing::info!(op_id, "dropping an op of a session that has ended");
                        self.remove_op(idx);
                    }
                }
                ErrorClass::Permanent => {
                    self.reachable = Some(true);
                    self.op_attempts = 0;
                    self.op_retry_at = None;
                    self.op_retry_by_server = false;
                    let (code, detail) = e.code_and_detail();
                    if self.outbox[idx].kind() == OpKind::EndSession {
                        // The user already logged out locally; nothing they could do with it.
                        tracing::warn!(op_id, %code, %detail, "server refused end_session; dropping");
                        self.remove_op(idx);
                    } else {
                        tracing::warn!(op_id, %code, %detail, "outbox op wedged");
                        if let Err(se) = self.store.wedge_op(&op_id, &code, &detail) {
                            tracing::error!("storing a wedged op: {se}");
                        }
                        self.outbox[idx].wedged = Some((code.clone(), detail.clone()));
                    }
                    self.last_error = Some(LastError { code, detail });
                    self.last_error_sticky = false;
                }
            },
        }
        for w in waiters {
            self.respond(w, Ok(()));
        }
    }

    /// Keeps the op at the head of the queue and schedules the next attempt.
    fn retry_op_later(&mut self, op_id: &str, e: &Error, retry_after: Option<Duration>) {
        self.note_reachability(e);
        let delay = self
            .backoff
            .delay(self.op_attempts, retry_after, &mut self.rng);
        self.op_attempts = self.op_attempts.saturating_add(1);
        self.op_retry_at = Some(Instant::now() + delay);
        self.op_retry_by_server = retry_after.is_some();
        tracing::debug!(op_id, error = %e, ?delay, "outbox op failed, will retry");
        self.set_error(e);
        self.release_op_waiters();
    }

    fn on_heartbeat(&mut self, token: String, result: Result<Heartbeat, Error>) {
        self.hb_in_flight = false;
        let waiters = std::mem::take(&mut self.hb_running_waiters);
        self.release_logins();
        if self.session.as_ref().is_none_or(|s| s.token != token) {
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
                self.hb_failures = 0;
                self.lease_until = Some(hb.lease_until);
                self.hb_interval = interval(&hb);
                self.next_heartbeat = Some(Instant::now() + self.own_heartbeat_delay(&hb));
                let known = self.confirmed.as_ref().map_or(-1, |s| s.version);
                if hb.status_version > known {
                    // A change we missed (no stream in the background): fetch it.
                    self.me_wanted = true;
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
                            .delay(self.hb_failures, retry_after, &mut self.rng)
                            .min(self.hb_interval);
                        self.hb_failures = self.hb_failures.saturating_add(1);
                        self.next_heartbeat = Some(Instant::now() + delay);
                        self.set_error(&e);
                    }
                    ErrorClass::Permanent | ErrorClass::Local => {
                        self.next_heartbeat = Some(Instant::now() + self.hb_interval);
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
    fn own_heartbeat_delay(&self, hb: &Heartbeat) -> Duration {
        let interval = interval(hb);
        if self.lifecycle == Lifecycle::Background && self.has_push {
            let ttl = Duration::from_millis(hb.ttl_ms.max(0) as u64);
            interval + ttl.saturating_sub(interval) / 2
        } else {
            interval
        }
    }

    fn on_me(&mut self, token: String, result: Result<MeResponse, Error>) {
        self.me_in_flight = false;
        let waiters = std::mem::take(&mut self.me_running_waiters);
        let current = self.session.as_ref().is_some_and(|s| s.token == token);
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

    // -- event stream ----------------------------------------------------------------------

    fn handle_sse(&mut self, msg: SseMsg) {
        let Some(conn) = &mut self.sse else { return };
        if conn.generation != msg.generation {
            return;
        }
        match msg.kind {
            SseKind::Opened => {
                conn.opened = true;
                self.reachable = Some(true);
                self.server_is_back();
                // Whatever happened while disconnected, `/v1/me` has it.
                self.me_wanted = true;
                self.clear_error();
            }
            SseKind::Event(ev) => self.on_sse_event(ev),
            SseKind::Closed(err) => {
                self.sse = None;
                if let Some(e) = &err {
                    if e.class() == ErrorClass::Unauthorized {
                        self.expire_session(e.to_string());
                        return;
                    }
                    self.note_reachability(e);
                    self.set_error(e);
                }
                let retry_after = match err.as_ref().map(Error::class) {
                    Some(ErrorClass::Transient { retry_after }) => retry_after,
                    _ => None,
                };
                let delay = self
                    .backoff
                    .delay(self.sse_attempts, retry_after, &mut self.rng);
                self.sse_attempts = self.sse_attempts.saturating_add(1);
                self.sse_retry_at = Some(Instant::now() + delay);
                tracing::debug!(?delay, error = ?err, "event stream closed; reconnecting");
            }
        }
    }

    fn on_sse_event(&mut self, ev: SseEvent) {
        let bad = |e: serde_json::Error| Error::BadResponse(format!("{} event: {e}", ev.event));
        let result = match ev.event.as_str() {
            event::SNAPSHOT => serde_json::from_str::<SnapshotEvent>(&ev.data)
                .map_err(bad)
                .map(|s| {
                    // A stream that got as far as its snapshot is healthy: reset the backoff.
                    self.sse_attempts = 0;
                    self.apply_status(s.status);
                    self.apply_chatbox(s.chatbox);
                }),
            event::STATUS => serde_json::from_str::<StatusView>(&ev.data)
                .map_err(bad)
                .map(|s| self.apply_status(s)),
            event::CHATBOX => serde_json::from_str::<ChatboxView>(&ev.data)
                .map_err(bad)
                .map(|c| self.apply_chatbox(c)),
            event::SESSION_ENDED => serde_json::from_str::<SessionEndedEvent>(&ev.data)
                .map_err(bad)
                .map(|e| self.session_ended(e.reason)),
            other => {
                tracing::debug!(event = other, "ignoring unknown event");
                Ok(())
            }
        };
        if let Err(e) = result {
            tracing::warn!("{e}");
            self.set_error(&e);
        }
    }

    fn session_ended(&mut self, reason: EndReason) {
        self.expire_session(format!("session ended: {}", reason.as_str()));
    }

    // -- driving ---------------------------------------------------------------------------

    /// Starts whatever is due. Called after every event; cheap when nothing is.
    fn drive(&mut self) {
        let now = Instant::now();
        self.drive_outbox(now);
        self.drive_heartbeat(now);
        self.drive_sse(now);
        self.drive_me();
    }

    fn drive_outbox(&mut self, now: Instant) {
        if self.op_in_flight.is_some() || !self.network {
            return;
        }
        if self.op_retry_at.is_some_and(|at| now < at) {
            return;
        }
        let Some(api) = self.api.clone() else { return };
        let Some(op) = self.next_sendable().cloned() else {
            return;
        };
        self.op_in_flight = Some(op.op_id.clone());
        self.tasks.spawn(async move {
            let result = match &op.body {
                OpBody::SetStatus { status, intent_at } => api
                    .set_status(
                        &op.token,
                        &SetStatusRequest {
                            status: *status,
                            op_id: op.op_id.clone(),
                            intent_at: *intent_at,
                        },
                    )
                    .await
                    .map(Some),
                OpBody::EndSession => api.end_session(&op.token).await.map(|()| None),
                OpBody::RegisterPush { push } => api.put_push(&op.token, push).await.map(|()| None),
            };
            TaskDone::Op {
                op_id: op.op_id,
                token: op.token,
                result,
            }
        });
    }

    /// The first op, in store order, that may go out now. Ops of the current session wait
    /// while it is expired (they will be re-stamped at the next login); ops of older
    /// sessions go out with their own token.
    fn next_sendable(&self) -> Option<&Op> {
        let current = self.session.as_ref();
        self.outbox.iter().find(|o| {
            !o.is_wedged()
                && match current {
                    Some(s) if s.token == o.token => !s.expired,
                    _ => true,
                }
        })
    }

    fn drive_heartbeat(&mut self, now: Instant) {
        if self.hb_in_flight || !self.network || !self.session_active() {
            return;
        }
        let due = self.hb_forced.is_some() || self.next_heartbeat.is_some_and(|t| now >= t);
        if !due {
            return;
        }
        let Some(api) = self.api.clone() else { return };
        let Some(token) = self.session.as_ref().map(|s| s.token.clone()) else {
            return;
        };
        let mode = self.hb_forced.take().unwrap_or(self.lifecycle.mode());
        self.hb_in_flight = true;
        self.hb_running_waiters.append(&mut self.hb_waiters);
        self.tasks.spawn(async move {
            let result = api.heartbeat(&token, mode).await;
            TaskDone::Heartbeat { token, result }
        });
    }

    fn want_sse(&self) -> bool {
        self.network
            && self.api.is_some()
            && self.lifecycle == Lifecycle::Active
            && self.session_active()
    }

    fn drive_sse(&mut self, now: Instant) {
        if !self.want_sse() {
            self.sse = None;
            return;
        }
        if self.sse.is_some() || self.sse_retry_at.is_some_and(|at| now < at) {
            return;
        }
        let (Some(api), Some(token)) = (
            self.api.clone(),
            self.session.as_ref().map(|s| s.token.clone()),
        ) else {
            return;
        };
        self.sse_generation += 1;
        let generation = self.sse_generation;
        let tx = self.sse_tx.clone();
        let idle = self.sse_idle_timeout;
        let task = tokio::spawn(run_event_stream(api, token, generation, tx, idle));
        self.sse = Some(SseConn {
            generation,
            opened: false,
            task,
        });
    }

    fn drive_me(&mut self) {
        if !self.me_wanted || self.me_in_flight || !self.network || !self.session_active() {
            return;
        }
        let (Some(api), Some(token)) = (
            self.api.clone(),
            self.session.as_ref().map(|s| s.token.clone()),
        ) else {
            return;
        };
        self.me_wanted = false;
        self.me_in_flight = true;
        self.me_running_waiters.append(&mut self.me_waiters);
        self.tasks.spawn(async move {
            let result = api.me(&token).await;
            TaskDone::Me { token, result }
        });
    }

    /// The earliest timer that `drive` would act on. Only actionable timers count: a
    /// deadline in the past that `drive` would ignore would spin the loop.
    fn next_wake(&self) -> Option<Instant> {
        let mut wake: Option<Instant> = self.store_poll_at;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                wake = Some(wake.map_or(t, |w| w.min(t)));
            }
        };
        if self.network && self.api.is_some() {
            if self.op_in_flight.is_none() && self.next_sendable().is_some() {
                consider(self.op_retry_at);
            }
            if self.session_active() && !self.hb_in_flight {
                consider(self.next_heartbeat);
            }
            if self.want_sse() && self.sse.is_none() {
                consider(self.sse_retry_at);
            }
        }
        wake
    }

    fn on_timer(&mut self) {
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
    fn reload_if_changed_elsewhere(&mut self) {
        match self.store.changed_elsewhere() {
            Ok(false) => return,
            Ok(true) => {}
            Err(e) => {
                tracing::warn!("checking the store: {e}");
                return;
            }
        }
        match self.store.outbox() {
            Ok(ops) => self.outbox = ops,
            Err(e) => tracing::warn!("reloading the outbox: {e}"),
        }
        let stored = match self.store.session() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("reloading the session: {e}");
                return;
            }
        };
        if stored != self.session {
            let same_token =
                stored.as_ref().map(|s| &s.token) == self.session.as_ref().map(|s| &s.token);
            if !same_token {
                self.sse = None;
                self.lease_until = None;
                self.chatbox = None;
                self.confirmed = None;
                self.next_heartbeat = stored
                    .as_ref()
                    .filter(|s| !s.expired)
                    .map(|_| Instant::now());
                self.me_wanted = stored.is_some();
            }
            self.session = stored;
        }
        if self.session.is_some()
            && let Ok(Some(s)) = self.store.status()
        {
            self.apply_status(s);
        }
    }

    // -- state helpers ---------------------------------------------------------------------

    fn session_active(&self) -> bool {
        self.session.as_ref().is_some_and(|s| !s.expired)
    }

    fn not_active_error(&self) -> Error {
        match &self.session {
            None => Error::NotLoggedIn,
            Some(_) => Error::SessionExpired("the session has ended; log in again".into()),
        }
    }

    fn network_ready(&self) -> Result<(), Error> {
        if self.api.is_none() {
            return Err(Error::NoServer);
        }
        if !self.network {
            return Err(no_network());
        }
        Ok(())
    }

    fn expire_session(&mut self, detail: String) {
        let Some(s) = &mut self.session else { return };
        if s.expired {
            return;
        }
        s.expired = true;
        tracing::info!(%detail, "session expired");
        if let Err(e) = self.store.set_session(Some(s)) {
            tracing::error!("storing the expired session: {e}");
        }
        self.release_logins();
        self.sse = None;
        self.lease_until = None;
        self.next_heartbeat = None;
        self.hb_forced = None;
        self.last_error = Some(LastError {
            code: SESSION_EXPIRED.into(),
            detail,
        });
        self.last_error_sticky = true;
        let waiters: Vec<_> = self
            .hb_waiters
            .drain(..)
            .chain(self.me_waiters.drain(..))
            .collect();
        for w in waiters {
            self.respond(
                w,
                Err(Error::SessionExpired("the session has ended".into())),
            );
        }
    }

    /// Takes a server status if it is newer than the one we have.
    fn apply_status(&mut self, view: StatusView) {
        if self.session.is_none() {
            return;
        }
        if self
            .confirmed
            .as_ref()
            .is_some_and(|c| c.version >= view.version)
        {
            return;
        }
        if let Err(e) = self.store.set_status(Some(&view)) {
            tracing::warn!("storing the status: {e}");
        }
        self.confirmed = Some(view);
    }

    fn apply_chatbox(&mut self, view: ChatboxView) {
        if self.session.is_none() {
            return;
        }
        if self
            .chatbox
            .as_ref()
            .is_some_and(|c| c.version >= view.version)
        {
            return;
        }
        if let Err(e) = self.store.set_chatbox(Some(&view)) {
            tracing::warn!("storing the chat box: {e}");
        }
        self.chatbox = Some(view);
    }

    fn update_agent(&mut self, agent: Agent) {
        let Some(s) = &mut self.session else { return };
        if s.agent == agent {
            return;
        }
        s.agent = agent;
        if let Err(e) = self.store.set_session(Some(s)) {
            tracing::warn!("storing the session: {e}");
        }
    }

    fn remove_op(&mut self, idx: usize) {
        let op = self.outbox.remove(idx);
        if let Err(e) = self.store.remove_op(&op.op_id) {
            // Delivered but still on disk: it will be resent after a restart, which the
            // server's op_id dedup makes harmless.
            tracing::error!(op_id = op.op_id, "removing a delivered op: {e}");
        }
    }

    fn note_reachability(&mut self, e: &Error) {
        match e {
            // A proxy's own error page (a 502 while the server is down): not reached.
            Error::Transport(_) | Error::UnexpectedStatus { .. } => self.reachable = Some(false),
            Error::Http { .. } | Error::BadResponse(_) => self.reachable = Some(true),
            _ => {}
        }
    }

    fn set_error(&mut self, e: &Error) {
        let (code, detail) = e.code_and_detail();
        self.last_error = Some(LastError { code, detail });
        self.last_error_sticky = false;
    }

    fn clear_error(&mut self) {
        // An expired session stays visible until the user acts on it.
        if !self.last_error_sticky {
            self.last_error = None;
        }
    }

    /// Stores the clock estimate when it moved or became more certain by a couple of ms
    /// (not at every heartbeat: each write is an fsync).
    fn persist_clock(&mut self) {
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

    fn connection(&self) -> Connection {
        if !self.network {
            return Connection::NoNetwork;
        }
        if self.api.is_none() || !self.session_active() {
            return Connection::Offline;
        }
        match self.lifecycle {
            Lifecycle::Active if self.sse.as_ref().is_some_and(|c| c.opened) => {
                Connection::Connected
            }
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

    fn snapshot(&self) -> ClientSnapshot {
        let session = match &self.session {
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
        let status = match (&self.session, &self.confirmed) {
            (Some(s), Some(c)) => {
                let latest = self
                    .outbox
                    .iter()
                    .rev()
                    .filter(|o| !o.is_wedged() && o.agent_id.as_deref() == Some(&s.agent.id))
                    .find_map(|o| match o.body {
                        OpBody::SetStatus { status, .. } => Some(status),
                        _ => None,
                    });
                Some(StatusSnapshot {
                    current: latest.unwrap_or(c.status),
                    confirmed: c.status,
                    version: c.version,
                    pending: latest.is_some(),
                })
            }
            _ => None,
        };
        ClientSnapshot {
            session,
            status,
            chatbox: self.chatbox.clone(),
            connection: self.connection(),
            lifecycle: self.lifecycle,
            lease_until: self.lease_until,
            outbox: OutboxSnapshot {
                pending: self.outbox.iter().filter(|o| !o.is_wedged()).count() as u32,
                wedged: self
                    .outbox
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
    fn respond<T>(&self, reply: Reply<T>, result: Result<T, Error>) {
        self.publish();
        let _ = reply.send(result);
    }

    fn publish(&self) {
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

fn interval(hb: &Heartbeat) -> Duration {
    // A floor keeps a misconfigured server from turning the engine into a busy loop.
    Duration::from_millis(hb.interval_ms.max(100) as u64)
}

fn no_network() -> Error {
    Error::Transport(crate::transport::TransportError::new(
        crate::transport::TransportErrorKind::Connect,
        "the device reports no network",
    ))
}

/// Errors are not `Clone` (they may hold a rusqlite error); waiters get an equivalent.
fn clone_error(e: &Error) -> Error {
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

/// One connection to `/v1/me/events`: reports `Opened`, each event, then `Closed` once.
async fn run_event_stream(
    api: Api,
    token: String,
    generation: u64,
    tx: mpsc::UnboundedSender<SseMsg>,
    idle: Duration,
) {
    use futures_util::StreamExt;
    let send = |kind| {
        let _ = tx.send(SseMsg { generation, kind });
    };
    let mut resp = match api.open_stream("/v1/me/events", Some(&token)).await {
        Ok(r) => r,
        Err(e) => return send(SseKind::Closed(Some(e))),
    };
    send(SseKind::Opened);
    let mut parser = SseParser::new();
    loop {
        match tokio::time::timeout(idle, resp.body.next()).await {
            Err(_) => {
                return send(SseKind::Closed(Some(Error::Transport(
                    crate::transport::TransportError::new(
                        crate::transport::TransportErrorKind::Timeout,
                        format!("event stream silent for {} ms", idle.as_millis()),
                    ),
                ))));
            }
            Ok(None) => return send(SseKind::Closed(None)),
            Ok(Some(Err(e))) => return send(SseKind::Closed(Some(e.into()))),
            Ok(Some(Ok(chunk))) => {
                api.received(chunk.len());
                for item in parser.push(&chunk) {
                    if let SseItem::Event(ev) = item {
                        api.stream_event();
                        send(SseKind::Event(ev));
                    }
                }
            }
        }
    }
}

//! The event-stream sub-machine: one `/v1/me/events` connection while active.
//!
//! # What it guarantees
//!
//! - **Open exactly while wanted**: logged in with a live session, the app active, a network
//!   and a server. Going to the background, losing the network or the session closes it at
//!   once (the task is aborted with its handle).
//! - **Reconnects with backoff and full jitter**, honouring `Retry-After`; the backoff resets
//!   once a stream got as far as its `snapshot` event, when the network comes back, and when
//!   any other request got through (the server is back).
//! - **Silence is death.** A stream that delivers nothing for `sse_idle_timeout` (45 s: three
//!   missed 15 s pings) is closed and reconnected.
//! - **Every (re)connect refreshes `/v1/me`**: whatever happened while disconnected is
//!   there.
//! - **Tolerant of what it does not know.** Events other than `snapshot`, `status`,
//!   `chatbox` and `session_ended` (such as the server's `ping`) are ignored, and so are the
//!   `id:` and `retry:` fields; an event whose data does not parse is logged and shown in
//!   `last_error`, and the stream goes on.
//! - **Messages of a replaced stream are ignored**: each connection has a generation.

use std::time::Duration;

use presence_protocol::{ChatboxView, SessionEndedEvent, SnapshotEvent, StatusView, event};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::api::Api;
use crate::engine::Engine;
use crate::error::{Error, ErrorClass};
use crate::snapshot::Lifecycle;
use crate::sse::{SseEvent, SseItem, SseParser};

/// A message from the event-stream task, tagged with the stream's generation so messages of
/// a stream already replaced are ignored.
pub(crate) struct SseMsg {
    generation: u64,
    kind: SseKind,
}

pub(crate) enum SseKind {
    Opened,
    Event(SseEvent),
    Closed(Option<Error>),
}

pub(crate) struct SseConn {
    generation: u64,
    pub(crate) opened: bool,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SseConn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The event-stream sub-machine's state.
pub(crate) struct EventStream {
    /// The open (or opening) connection.
    pub(crate) conn: Option<SseConn>,
    pub(crate) generation: u64,
    /// Consecutive failed connections (the backoff's attempt count).
    pub(crate) attempts: u32,
    /// When to reconnect after a failure.
    pub(crate) retry_at: Option<Instant>,
    pub(crate) idle_timeout: Duration,
    pub(crate) tx: mpsc::UnboundedSender<SseMsg>,
    pub(crate) rx: mpsc::UnboundedReceiver<SseMsg>,
}

impl EventStream {
    pub(crate) fn new(idle_timeout: Duration) -> EventStream {
        let (tx, rx) = mpsc::unbounded_channel();
        EventStream {
            conn: None,
            generation: 0,
            attempts: 0,
            retry_at: None,
            idle_timeout,
            tx,
            rx,
        }
    }

    /// The connection is open (its headers arrived).
    pub(crate) fn is_open(&self) -> bool {
        self.conn.as_ref().is_some_and(|c| c.opened)
    }
}

impl Engine {
    pub(crate) fn handle_sse(&mut self, msg: SseMsg) {
        let Some(conn) = &mut self.stream.conn else {
            return;
        };
        if conn.generation != msg.generation {
            return;
        }
        match msg.kind {
            SseKind::Opened => {
                conn.opened = true;
                self.reachable = Some(true);
                self.server_is_back();
                // Whatever happened while disconnected, `/v1/me` has it.
                self.session.me_wanted = true;
                self.clear_error();
            }
            SseKind::Event(ev) => self.on_sse_event(ev),
            SseKind::Closed(err) => {
                self.stream.conn = None;
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
                    .delay(self.stream.attempts, retry_after, &mut self.rng);
                self.stream.attempts = self.stream.attempts.saturating_add(1);
                self.stream.retry_at = Some(Instant::now() + delay);
                tracing::debug!(?delay, error = ?err, "event stream closed; reconnecting");
            }
        }
    }

    pub(crate) fn on_sse_event(&mut self, ev: SseEvent) {
        let bad = |e: serde_json::Error| Error::BadResponse(format!("{} event: {e}", ev.event));
        let result = match ev.event.as_str() {
            event::SNAPSHOT => serde_json::from_str::<SnapshotEvent>(&ev.data)
                .map_err(bad)
                .map(|s| {
                    // A stream that got as far as its snapshot is healthy: reset the backoff.
                    self.stream.attempts = 0;
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

    pub(crate) fn want_sse(&self) -> bool {
        self.network
            && self.api.is_some()
            && self.lifecycle == Lifecycle::Active
            && self.session_active()
    }

    pub(crate) fn drive_sse(&mut self, now: Instant) {
        if !self.want_sse() {
            self.stream.conn = None;
            return;
        }
        if self.stream.conn.is_some() || self.stream.retry_at.is_some_and(|at| now < at) {
            return;
        }
        let (Some(api), Some(token)) = (self.api.clone(), self.session.token()) else {
            return;
        };
        self.stream.generation += 1;
        let generation = self.stream.generation;
        let tx = self.stream.tx.clone();
        let idle = self.stream.idle_timeout;
        let task = tokio::spawn(run_event_stream(api, token, generation, tx, idle));
        self.stream.conn = Some(SseConn {
            generation,
            opened: false,
            task,
        });
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

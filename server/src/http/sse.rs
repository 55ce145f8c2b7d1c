//! Server-sent event streams, built from frames encoded once per change.
//!
//! A device stream sends `snapshot` first, then `status`, `chatbox` and `session_ended`
//! events; a widget stream sends `chatbox` events, the first at once. Both open with
//! `retry: 2000`, carry `id:` on every `chatbox` (the view version) and `status` (`s` and the
//! status version) event, send `event: ping` with the server time every [`PING_EVERY`] (so
//! a page can tell a dead stream from a quiet one, and proxies keep it open), end when the
//! server shuts down, and drop a reader that falls too far behind rather than slowing anyone
//! else down.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use tokio::sync::{broadcast, watch};
use tokio::time::{Interval, MissedTickBehavior, interval_at};

use presence_protocol::{PingEvent, SessionEndedEvent, event};

use super::conn::StreamStop;
use super::stream_limit::StreamPermit;
use crate::backend::{AgentEvent, DeviceStream, StatusFrame, ViewFrame, WidgetStream};
use crate::clock::Clock;
use crate::metrics::http::{HttpMetrics, Open, StreamKind};

/// Encodes one event from already-serialised JSON, with an `id:` line when given.
pub fn frame_raw(event: &str, id: Option<&str>, json: &[u8]) -> Bytes {
    let mut buf = Vec::with_capacity(json.len() + event.len() + 32);
    if let Some(id) = id {
        buf.extend_from_slice(b"id: ");
        buf.extend_from_slice(id.as_bytes());
        buf.push(b'\n');
    }
    buf.extend_from_slice(b"event: ");
    buf.extend_from_slice(event.as_bytes());
    buf.extend_from_slice(b"\ndata: ");
    buf.extend_from_slice(json);
    buf.extend_from_slice(b"\n\n");
    Bytes::from(buf)
}

fn sse_frame<T: serde::Serialize>(event: &str, value: &T) -> Bytes {
    frame_raw(event, None, &serde_json::to_vec(value).unwrap_or_default())
}

/// The view's JSON body, encoded once per view however many requests answer with it.
pub fn view_json(f: &ViewFrame) -> Bytes {
    f.json
        .get_or_init(|| Bytes::from(serde_json::to_vec(&f.view).unwrap_or_default()))
        .clone()
}

/// The `chatbox` event (`id:` the view version), encoded once per view.
fn view_event(f: &ViewFrame) -> Bytes {
    f.event
        .get_or_init(|| {
            let id = f.view.version.to_string();
            frame_raw(event::CHATBOX, Some(&id), &view_json(f))
        })
        .clone()
}

/// The `status` event (`id: s<version>`, never a view version), encoded once per change.
fn status_event(f: &StatusFrame) -> Bytes {
    f.event
        .get_or_init(|| {
            let id = format!("s{}", f.status.version);
            frame_raw(
                event::STATUS,
                Some(&id),
                &serde_json::to_vec(&f.status).unwrap_or_default(),
            )
        })
        .clone()
}

/// Default interval of `ping` events.
pub const PING_EVERY: Duration = Duration::from_secs(15);
/// Sent first on every stream: how long a browser waits before reconnecting.
const RETRY_FRAME: &[u8] = b"retry: 2000\n\n";

/// What every stream needs besides its source.
#[derive(Clone)]
pub struct StreamConfig {
    /// Flips to true on shutdown; open streams end.
    pub shutdown: watch::Receiver<bool>,
    pub ping_every: Duration,
    pub clock: Clock,
    /// Counts the streams open, by kind.
    pub metrics: std::sync::Arc<HttpMetrics>,
}

fn ping_frame(clock: &Clock) -> Bytes {
    sse_frame(
        event::PING,
        &PingEvent {
            server_time: clock.now_ms(),
        },
    )
}

/// Resolves when the server shuts down. Made once per stream and kept pinned. Served by
/// [`super::conn`], it is the connection's own flag and waker ([`StreamStop`]): polling it at
/// each event takes no lock. Otherwise (a router served some other way) the shutdown
/// signal, whose waiters share one list.
type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

fn shutdown_future(cfg: &StreamConfig, stop: Option<StreamStop>) -> Shutdown {
    match stop {
        Some(stop) => Box::pin(stop.wait()),
        None => {
            let mut rx = cfg.shutdown.clone();
            Box::pin(async move {
                let _ = rx.wait_for(|stop| *stop).await;
            })
        }
    }
}

fn pings(every: Duration) -> Interval {
    let mut i = interval_at(tokio::time::Instant::now() + every, every);
    i.set_missed_tick_behavior(MissedTickBehavior::Delay);
    i
}

fn sse_response(body: Body) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        body,
    )
        .into_response()
}

struct DeviceState {
    first: Option<Bytes>,
    s: DeviceStream,
    _permit: StreamPermit,
    _open: Open,
    pings: Interval,
    clock: Clock,
    shutdown: Shutdown,
    done: bool,
}

/// `retry:` and the first event, in one write.
fn opening(first: &[u8]) -> Bytes {
    let mut b = Vec::with_capacity(RETRY_FRAME.len() + first.len());
    b.extend_from_slice(RETRY_FRAME);
    b.extend_from_slice(first);
    Bytes::from(b)
}

pub fn device_stream(
    s: DeviceStream,
    cfg: StreamConfig,
    permit: StreamPermit,
    stop: Option<StreamStop>,
) -> Response {
    let state = DeviceState {
        first: Some(opening(&sse_frame(event::SNAPSHOT, &s.snapshot))),
        s,
        _permit: permit,
        _open: cfg.metrics.stream_opened(StreamKind::Device),
        pings: pings(cfg.ping_every),
        shutdown: shutdown_future(&cfg, stop),
        clock: cfg.clock,
        done: false,
    };
    let st = stream::unfold(state, |mut st| async move {
        if let Some(first) = st.first.take() {
            return Some((Ok::<_, Infallible>(first), st));
        }
        if st.done {
            return None;
        }
        loop {
            tokio::select! {
                biased;
                _ = &mut st.shutdown => return None,
                ev = st.s.events.recv() => match ev {
                    Ok(AgentEvent::Status(f)) => return Some((Ok(status_event(&f)), st)),
                    Ok(AgentEvent::SessionEnded { session_id, reason }) => {
                        if session_id == st.s.session_id {
                            st.done = true;
                            let frame = sse_frame(event::SESSION_ENDED, &SessionEndedEvent { reason });
                            return Some((Ok(frame), st));
                        }
                    }
                    // Too slow to keep up: drop it; the client reconnects and resyncs.
                    Err(broadcast::error::RecvError::Lagged(_)) => return None,
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                changed = st.s.views.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                    let frame = view_event(&st.s.views.borrow_and_update());
                    return Some((Ok(frame), st));
                }
                _ = st.pings.tick() => {
                    let frame = ping_frame(&st.clock);
                    return Some((Ok(frame), st));
                }
            }
        }
    });
    sse_response(Body::from_stream(st))
}

struct WidgetState {
    first: bool,
    s: WidgetStream,
    _permit: StreamPermit,
    _open: Open,
    pings: Interval,
    clock: Clock,
    shutdown: Shutdown,
}

pub fn widget_stream(
    s: WidgetStream,
    cfg: StreamConfig,
    permit: StreamPermit,
    stop: Option<StreamStop>,
) -> Response {
    let state = WidgetState {
        first: true,
        s,
        _permit: permit,
        _open: cfg.metrics.stream_opened(StreamKind::Widget),
        pings: pings(cfg.ping_every),
        shutdown: shutdown_future(&cfg, stop),
        clock: cfg.clock,
    };
    let st = stream::unfold(state, |mut st| async move {
        if st.first {
            st.first = false;
            let frame = opening(&view_event(&st.s.views.borrow_and_update()));
            return Some((Ok::<_, Infallible>(frame), st));
        }
        tokio::select! {
            biased;
            _ = &mut st.shutdown => None,
            changed = st.s.views.changed() => {
                if changed.is_err() {
                    return None;
                }
                let frame = view_event(&st.s.views.borrow_and_update());
                Some((Ok(frame), st))
            }
            _ = st.pings.tick() => {
                let frame = ping_frame(&st.clock);
                Some((Ok(frame), st))
            }
        }
    });
    sse_response(Body::from_stream(st))
}

/// Most events read from the store at once for one account stream.
const EVENT_BATCH: u32 = 500;

/// What `GET /v1/admin/events` streams from: the snapshot it starts with and where to read
/// the events after it.
pub struct AccountEvents {
    pub backend: std::sync::Arc<dyn crate::backend::Backend>,
    pub account_id: String,
    pub slug: String,
    pub snapshot: presence_protocol::PresenceSnapshot,
}

struct AccountState {
    first: Option<Bytes>,
    src: AccountEvents,
    after: i64,
    /// Frames read and not sent yet (at most one batch).
    ready: std::collections::VecDeque<Bytes>,
    /// Read the store before waiting (right after the snapshot, and while batches are full).
    read_now: bool,
    signal: crate::backend::EventSignal,
    _permit: StreamPermit,
    _open: Open,
    pings: Interval,
    clock: Clock,
    shutdown: Shutdown,
}

/// The account's event stream: `snapshot` first, then every event after its `seq` in order
/// (`id:` the `seq`, `event:` the type, `data:` the event's body), read from the store, so a
/// slow reader only falls behind in the store and never holds events in memory beyond one
/// batch; `ping` while quiet. A failed read ends the stream (the client reconnects).
pub fn account_stream(
    src: AccountEvents,
    cfg: StreamConfig,
    permit: StreamPermit,
    stop: Option<StreamStop>,
) -> Response {
    let state = AccountState {
        first: Some(opening(&sse_frame(event::SNAPSHOT, &src.snapshot))),
        after: src.snapshot.seq,
        signal: src.backend.event_signal(),
        src,
        ready: std::collections::VecDeque::new(),
        read_now: true,
        _permit: permit,
        _open: cfg.metrics.stream_opened(StreamKind::Admin),
        pings: pings(cfg.ping_every),
        shutdown: shutdown_future(&cfg, stop),
        clock: cfg.clock,
    };
    let st = stream::unfold(state, |mut st| async move {
        if let Some(first) = st.first.take() {
            return Some((Ok::<_, Infallible>(first), st));
        }
        loop {
            if let Some(frame) = st.ready.pop_front() {
                return Some((Ok(frame), st));
            }
            if !st.read_now {
                tokio::select! {
                    biased;
                    _ = &mut st.shutdown => return None,
                    _ = st.signal.next() => {}
                    _ = st.pings.tick() => {
                        let frame = ping_frame(&st.clock);
                        return Some((Ok(frame), st));
                    }
                }
            }
            let read = st
                .src
                .backend
                .events(&st.src.account_id, st.after, EVENT_BATCH)
                .await;
            let Ok(events) = read else { return None };
            st.read_now = events.len() == EVENT_BATCH as usize;
            for e in events {
                st.after = e.seq;
                let body = serde_json::to_vec(&e.to_wire(&st.src.slug)).unwrap_or_default();
                let id = e.seq.to_string();
                st.ready
                    .push_back(frame_raw(e.kind.as_str(), Some(&id), &body));
            }
        }
    });
    sse_response(Body::from_stream(st))
}

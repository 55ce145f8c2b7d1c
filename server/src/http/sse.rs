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

use presence_protocol::{PingEvent, event};

use crate::backend::{AgentEvent, DeviceStream, WidgetStream, sse_frame};
use crate::clock::Clock;

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
}

fn ping_frame(clock: &Clock) -> Bytes {
    sse_frame(
        event::PING,
        &PingEvent {
            server_time: clock.now_ms(),
        },
    )
}

/// Resolves when the server shuts down. Made once per stream and kept pinned: re-creating a
/// `changed()` future on every event would relink a waiter in the one list every stream
/// shares.
type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

fn shutdown_future(mut rx: watch::Receiver<bool>) -> Shutdown {
    Box::pin(async move {
        let _ = rx.wait_for(|stop| *stop).await;
    })
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

pub fn device_stream(s: DeviceStream, cfg: StreamConfig) -> Response {
    let state = DeviceState {
        first: Some(opening(&s.snapshot)),
        s,
        pings: pings(cfg.ping_every),
        clock: cfg.clock,
        shutdown: shutdown_future(cfg.shutdown),
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
                    Ok(AgentEvent::Status(frame)) => return Some((Ok(frame), st)),
                    Ok(AgentEvent::SessionEnded { session_id, frame, .. }) => {
                        if session_id == st.s.session_id {
                            st.done = true;
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
                    let frame = st.s.views.borrow_and_update().sse.clone();
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
    pings: Interval,
    clock: Clock,
    shutdown: Shutdown,
}

pub fn widget_stream(s: WidgetStream, cfg: StreamConfig) -> Response {
    let state = WidgetState {
        first: true,
        s,
        pings: pings(cfg.ping_every),
        clock: cfg.clock,
        shutdown: shutdown_future(cfg.shutdown),
    };
    let st = stream::unfold(state, |mut st| async move {
        if st.first {
            st.first = false;
            let frame = opening(&st.s.views.borrow_and_update().sse);
            return Some((Ok::<_, Infallible>(frame), st));
        }
        tokio::select! {
            biased;
            _ = &mut st.shutdown => None,
            changed = st.s.views.changed() => {
                if changed.is_err() {
                    return None;
                }
                let frame = st.s.views.borrow_and_update().sse.clone();
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

//! Server-sent event streams, built from frames encoded once per change.
//!
//! A device stream sends `snapshot` first, then `status`, `chatbox` and `session_ended`
//! events; a widget stream sends `chatbox` events, the first at once. Both send a comment every
//! [`KEEPALIVE`] so proxies keep them open, end when the server shuts down, and drop a reader
//! that falls too far behind rather than slowing anyone else down.

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

use crate::backend::{AgentEvent, DeviceStream, WidgetStream};

pub const KEEPALIVE: Duration = Duration::from_secs(15);
const KEEPALIVE_FRAME: &[u8] = b": keep-alive\n\n";

/// Resolves when the server shuts down. Made once per stream and kept pinned: re-creating a
/// `changed()` future on every event would relink a waiter in the one list every stream
/// shares.
type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

fn shutdown_future(mut rx: watch::Receiver<bool>) -> Shutdown {
    Box::pin(async move {
        let _ = rx.wait_for(|stop| *stop).await;
    })
}

fn keepalive() -> Interval {
    let mut i = interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
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
    keepalive: Interval,
    shutdown: Shutdown,
    done: bool,
}

pub fn device_stream(s: DeviceStream, shutdown: watch::Receiver<bool>) -> Response {
    let state = DeviceState {
        first: Some(s.snapshot.clone()),
        s,
        keepalive: keepalive(),
        shutdown: shutdown_future(shutdown),
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
                _ = st.keepalive.tick() => {
                    return Some((Ok(Bytes::from_static(KEEPALIVE_FRAME)), st));
                }
            }
        }
    });
    sse_response(Body::from_stream(st))
}

struct WidgetState {
    first: bool,
    s: WidgetStream,
    keepalive: Interval,
    shutdown: Shutdown,
}

pub fn widget_stream(s: WidgetStream, shutdown: watch::Receiver<bool>) -> Response {
    let state = WidgetState {
        first: true,
        s,
        keepalive: keepalive(),
        shutdown: shutdown_future(shutdown),
    };
    let st = stream::unfold(state, |mut st| async move {
        if st.first {
            st.first = false;
            let frame = st.s.views.borrow_and_update().sse.clone();
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
            _ = st.keepalive.tick() => Some((Ok(Bytes::from_static(KEEPALIVE_FRAME)), st)),
        }
    });
    sse_response(Body::from_stream(st))
}

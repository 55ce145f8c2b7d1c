//! The accept loop and each connection's life: no client can hold a connection, a thread or
//! the shutdown hostage.
//!
//! - **Headers in time**: a request's headers must arrive within `header_timeout` (hyper's
//!   header-read timer), however slowly they trickle in.
//! - **Idle connections close**: a connection on which no byte moves either way for
//!   `idle_timeout` is closed: one that connects and sends nothing, a keep-alive connection
//!   nobody reuses, a stream whose reader stopped reading (its writes stall). A stream whose
//!   reader reads stays open: a `ping` moves every few seconds.
//! - **Readers keep up**: every `drain_every` (the stream ping interval) the connection
//!   compares what its peer has acknowledged with what was written two checks before; a peer
//!   that has not taken what was sent two pings ago (a stalled or trickling stream reader)
//!   is closed, so the kernel's send buffer is the most an unread stream costs, for at most
//!   two pings.
//! - **Connections are capped**: past `max_connections` open at once, a new connection is
//!   served one request and closed, and that request gets `503 unavailable` with
//!   `Retry-After` unless it is `GET /healthz`, which is always answered; past twice the cap
//!   a new connection is closed at once. So a flood costs a bounded number of tasks.
//! - **Shutdown has a deadline**: on stop, the listener closes, every connection is asked to
//!   finish its request and close (streams end by themselves); whatever is still open after
//!   `shutdown_grace` is dropped, so the caller can flush and exit.
//!
//! Request deadlines (an answer within `request_timeout`, else `503 unavailable`) are a
//! router layer, since they need the contract's error body: see [`super::deadline`].

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::extract::connect_info::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::{Service, ServiceExt};

use crate::Limits;
use crate::metrics::http::{HttpMetrics, Open};

/// Serves `app` on `listener` until `stop` turns true, then drains connections for at most
/// `limits.shutdown_grace`.
pub async fn serve<S>(
    listener: TcpListener,
    app: S,
    limits: Limits,
    drain_every: Duration,
    metrics: Arc<HttpMetrics>,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()>
where
    S: Service<Request, Response = axum::response::Response, Error = std::convert::Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let mut conns = JoinSet::new();
    let for_conns = stop.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off a moment rather
                        // than spin; the connections already open go on.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let open = conns.len();
                if open >= limits.max_connections.saturating_mul(2) {
                    drop(tcp);
                    continue;
                }
                let _ = tcp.set_nodelay(true);
                let busy = open >= limits.max_connections;
                let open = metrics.connection_opened();
                let conn = Conn { tcp, peer, limits, drain_every, busy, _open: open };
                conns.spawn(connection(conn, app.clone(), for_conns.clone()));
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = stopped(&mut stop) => break,
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::info!(
            open = conns.len(),
            "closing connections still open after the shutdown grace"
        );
        conns.shutdown().await;
    }
    Ok(())
}

/// An accepted connection and the terms it is served on.
struct Conn {
    tcp: TcpStream,
    peer: SocketAddr,
    limits: Limits,
    drain_every: Duration,
    /// Past `max_connections`: one request, then closed.
    busy: bool,
    /// Counted in `presence_connections` while the connection lives.
    _open: Open,
}

async fn connection<S>(c: Conn, app: S, mut stop: watch::Receiver<bool>)
where
    S: Service<Request, Response = axum::response::Response, Error = std::convert::Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let Conn {
        tcp,
        peer,
        limits,
        drain_every,
        busy,
        _open,
    } = c;
    let mut drain = Drain::new(&tcp);
    let io = Watched::new(tcp);
    let activity = io.activity.clone();
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let app = app.clone();
        async move {
            if busy && req.uri().path() != "/healthz" {
                return Ok(over_capacity());
            }
            app.oneshot(req.map(axum::body::Body::new)).await
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(!busy);
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let check_every = (limits.idle_timeout / 4).max(Duration::from_millis(25));
    let mut check = tokio::time::interval(check_every);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut drain_check = tokio::time::interval(drain_every.max(Duration::from_millis(10)));
    drain_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stopping = false;
    // Made once, not per wake-up: the loop runs at every read and write of the connection.
    let stop_asked = stopped(&mut stop);
    tokio::pin!(stop_asked);
    loop {
        tokio::select! {
            // Fixed order: no random draw per wake-up, and the connection's own work first.
            biased;
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(error = %e, %peer, "connection ended with an error");
                }
                return;
            }
            _ = &mut stop_asked, if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = check.tick() => {
                if activity.idle_for() >= limits.idle_timeout {
                    tracing::debug!(%peer, "closing an idle connection");
                    return;
                }
            }
            _ = drain_check.tick() => {
                if drain.behind(activity.written()) {
                    tracing::debug!(%peer, "closing a connection whose reader fell two pings behind");
                    return;
                }
            }
        }
    }
}

/// The answer on a connection past `max_connections`.
fn over_capacity() -> axum::response::Response {
    use axum::response::IntoResponse;
    crate::error::ApiError::unavailable("the server is at its connection limit; retry shortly", 1)
        .into_response()
}

/// Resolves once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Whether a connection's peer keeps up with what is written to it: what it acknowledged,
/// against what had been written two checks before.
struct Drain {
    fd: std::os::fd::RawFd,
    /// Bytes written by the last two checks, older first.
    marks: [Option<u64>; 2],
}

impl Drain {
    fn new(tcp: &TcpStream) -> Drain {
        use std::os::fd::AsRawFd;
        Drain {
            fd: tcp.as_raw_fd(),
            marks: [None, None],
        }
    }

    /// Called once per check with the bytes written so far: true when the peer has not
    /// acknowledged everything written two checks ago.
    fn behind(&mut self, written: u64) -> bool {
        let Some(unacked) = unacked_bytes(self.fd) else {
            return false;
        };
        let acked = written.saturating_sub(unacked);
        let behind = self.marks[0].is_some_and(|two_ago| acked < two_ago);
        self.marks = [self.marks[1], Some(written)];
        behind
    }
}

/// Bytes in the socket's send queue, not yet acknowledged by the peer (`SIOCOUTQ`; no safe
/// wrapper of it exists in the crates this server uses).
#[allow(unsafe_code)]
fn unacked_bytes(fd: std::os::fd::RawFd) -> Option<u64> {
    let mut n: libc::c_int = 0;
    // SAFETY: `fd` is the connection's socket, open for as long as the connection's loop
    // runs (the only caller); TIOCOUTQ writes one int through the pointer given.
    let r = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut n) };
    (r == 0).then_some(n.max(0) as u64)
}

/// When bytes last moved on a connection, and how many were written.
struct Activity {
    base: Instant,
    last_ms: AtomicU64,
    written: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let ms = self.base.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn wrote(&self, n: usize) {
        self.written.fetch_add(n as u64, Ordering::Relaxed);
        self.touch();
    }

    fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    fn idle_for(&self) -> Duration {
        let now = self.base.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// A TCP stream that records when bytes last moved.
struct Watched {
    tcp: TcpStream,
    activity: Arc<Activity>,
}

impl Watched {
    fn new(tcp: TcpStream) -> Watched {
        Watched {
            tcp,
            activity: Arc::new(Activity {
                base: Instant::now(),
                last_ms: AtomicU64::new(0),
                written: AtomicU64::new(0),
            }),
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.tcp).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        res
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.tcp).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = res
            && n > 0
        {
            self.activity.wrote(n);
        }
        res
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = res
            && n > 0
        {
            self.activity.wrote(n);
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

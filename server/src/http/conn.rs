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
//!
//! The idle, drain and shutdown checks are made by one watchdog task for all connections,
//! not by timers in each: a connection's task then wakes only for its own traffic, and a
//! change fanned out to 10,000 streams polls no timer and takes no shared lock per stream.
//! The watchdog ends a connection through a flag and a waker of its own; an event stream
//! learns of a shutdown the same way ([`StreamStop`], in the request's extensions).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::extract::connect_info::ConnectInfo;
use futures_util::task::AtomicWaker;
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
    let watchdog = Arc::new(Watchdog::default());
    // Ends with this function, however it ends (a dropped server task included).
    let _sweeper = AbortOnDrop(tokio::spawn(watchdog.clone().run(
        limits.idle_timeout,
        drain_every.max(Duration::from_millis(10)),
    )));
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
                let watch = watchdog.watch(&tcp);
                let conn = Conn { tcp, peer, limits, busy, watch, _open: open };
                conns.spawn(connection(conn, app.clone()));
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = stopped(&mut stop) => break,
        }
    }
    drop(listener);
    watchdog.stop_all();
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

/// A task that stops when its handle is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An accepted connection and the terms it is served on.
struct Conn {
    tcp: TcpStream,
    peer: SocketAddr,
    limits: Limits,
    /// Past `max_connections`: one request, then closed.
    busy: bool,
    /// Its entry in the watchdog, removed when the connection ends.
    watch: Watched,
    /// Counted in `presence_connections` while the connection lives.
    _open: Open,
}

async fn connection<S>(c: Conn, app: S)
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
        busy,
        watch,
        _open,
    } = c;
    let entry = watch.entry.clone();
    let io = WatchedIo { tcp, watch };
    let stream_stop = StreamStop(entry.clone());
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        req.extensions_mut().insert(stream_stop.clone());
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
    let mut stopping = false;
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
            end = entry.ended(stopping) => match end {
                End::Stop => {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
                End::Idle => {
                    tracing::debug!(%peer, "closing an idle connection");
                    return;
                }
                End::Behind => {
                    tracing::debug!(%peer, "closing a connection whose reader fell two pings behind");
                    return;
                }
            },
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

/// Why the watchdog ends a connection; the larger wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The server stops: finish the request in flight, then close (streams end).
    Stop = 1,
    /// No byte moved either way for the idle timeout.
    Idle = 2,
    /// The reader has not taken what was written two checks ago.
    Behind = 3,
}

impl End {
    fn from_u8(v: u8) -> Option<End> {
        match v {
            1 => Some(End::Stop),
            2 => Some(End::Idle),
            3 => Some(End::Behind),
            _ => None,
        }
    }
}

/// One connection as the watchdog sees it: when bytes last moved, how many were written,
/// and how to tell its task (and its event stream, if it serves one) to end.
struct Entry {
    base: Instant,
    last_ms: AtomicU64,
    written: AtomicU64,
    fd: RawFd,
    /// 0 while the connection goes on, else an [`End`].
    end: AtomicU8,
    conn_waker: AtomicWaker,
    stream_waker: AtomicWaker,
    /// Bytes written at the last two drain checks, older first (the watchdog's alone).
    marks: parking_lot::Mutex<[Option<u64>; 2]>,
}

impl Entry {
    fn touch(&self) {
        let ms = self.base.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn wrote(&self, n: usize) {
        self.written.fetch_add(n as u64, Ordering::Relaxed);
        self.touch();
    }

    fn idle_for(&self) -> Duration {
        let now = self.base.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }

    fn end(&self, how: End) {
        self.end.fetch_max(how as u8, Ordering::AcqRel);
        self.conn_waker.wake();
        self.stream_waker.wake();
    }

    /// Resolves with the end asked for: any end, or, once `stopping`, a hard one (idle or
    /// behind) only.
    fn ended(&self, stopping: bool) -> impl Future<Output = End> + '_ {
        std::future::poll_fn(move |cx| {
            self.conn_waker.register(cx.waker());
            match End::from_u8(self.end.load(Ordering::Acquire)) {
                Some(End::Stop) if stopping => Poll::Pending,
                Some(end) => Poll::Ready(end),
                None => Poll::Pending,
            }
        })
    }

    /// True when the peer has not acknowledged everything written two checks ago.
    fn behind(&self) -> bool {
        let written = self.written.load(Ordering::Relaxed);
        let Some(unacked) = unacked_bytes(self.fd) else {
            return false;
        };
        let acked = written.saturating_sub(unacked);
        let mut marks = self.marks.lock();
        let behind = marks[0].is_some_and(|two_ago| acked < two_ago);
        *marks = [marks[1], Some(written)];
        behind
    }
}

/// Ends an event stream when its connection is asked to stop (in each request's extensions).
#[derive(Clone)]
pub struct StreamStop(Arc<Entry>);

impl StreamStop {
    /// Resolves once the connection is to end.
    pub fn wait(self) -> impl Future<Output = ()> + Send {
        std::future::poll_fn(move |cx| {
            self.0.stream_waker.register(cx.waker());
            if self.0.end.load(Ordering::Acquire) == 0 {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
    }
}

/// Every open connection, checked by one task.
#[derive(Default)]
struct Watchdog {
    conns: parking_lot::Mutex<HashMap<u64, Arc<Entry>>>,
    next: AtomicU64,
    stopping: AtomicBool,
}

impl Watchdog {
    /// Enters a new connection; it leaves when the returned handle drops.
    fn watch(self: &Arc<Self>, tcp: &TcpStream) -> Watched {
        use std::os::fd::AsRawFd;
        let entry = Arc::new(Entry {
            base: Instant::now(),
            last_ms: AtomicU64::new(0),
            written: AtomicU64::new(0),
            fd: tcp.as_raw_fd(),
            end: AtomicU8::new(0),
            conn_waker: AtomicWaker::new(),
            stream_waker: AtomicWaker::new(),
            marks: parking_lot::Mutex::new([None, None]),
        });
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.conns.lock().insert(id, entry.clone());
        if self.stopping.load(Ordering::Acquire) {
            entry.end(End::Stop);
        }
        Watched {
            entry,
            id,
            dog: self.clone(),
        }
    }

    fn stop_all(&self) {
        self.stopping.store(true, Ordering::Release);
        for e in self.entries() {
            e.end(End::Stop);
        }
    }

    fn entries(&self) -> Vec<Arc<Entry>> {
        self.conns.lock().values().cloned().collect()
    }

    /// Every quarter of the idle timeout, ends the connections idle that long; every
    /// `drain_every`, those whose reader fell two checks behind.
    ///
    /// The drain check asks the kernel about each entry's socket without holding the
    /// registry: a connection that ends meanwhile may have its descriptor reused, and then
    /// the answer is about another socket; it can only end the entry of the connection
    /// that already ended, so nothing comes of it.
    async fn run(self: Arc<Self>, idle_timeout: Duration, drain_every: Duration) {
        let check_every = (idle_timeout / 4).max(Duration::from_millis(25));
        let mut idle = tokio::time::interval(check_every);
        idle.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut drain = tokio::time::interval(drain_every);
        drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = idle.tick() => {
                    for e in self.entries() {
                        if e.idle_for() >= idle_timeout {
                            e.end(End::Idle);
                        }
                    }
                }
                _ = drain.tick() => {
                    for e in self.entries() {
                        if e.behind() {
                            e.end(End::Behind);
                        }
                    }
                }
            }
        }
    }
}

/// A connection's place in the watchdog, left on drop.
struct Watched {
    entry: Arc<Entry>,
    id: u64,
    dog: Arc<Watchdog>,
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.dog.conns.lock().remove(&self.id);
    }
}

/// Bytes in the socket's send queue, not yet acknowledged by the peer (`SIOCOUTQ`; no safe
/// wrapper of it exists in the crates this server uses).
#[allow(unsafe_code)]
fn unacked_bytes(fd: RawFd) -> Option<u64> {
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ writes one int through the pointer given. `fd` is a connection's
    // socket, or, if that connection just ended, a closed or reused descriptor, for which
    // the call fails or answers about another file (see `Watchdog::run`): no memory is
    // touched but `n`.
    let r = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut n) };
    (r == 0).then_some(n.max(0) as u64)
}

/// A TCP stream that records when bytes last moved. Declared before the stream in
/// [`WatchedIo`], its entry leaves the watchdog before the socket closes.
struct WatchedIo {
    watch: Watched,
    tcp: TcpStream,
}

impl AsyncRead for WatchedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.tcp).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.watch.entry.touch();
        }
        res
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.tcp).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = res
            && n > 0
        {
            self.watch.entry.wrote(n);
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
            self.watch.entry.wrote(n);
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

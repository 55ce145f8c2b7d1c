//! The one middleware every request goes through: it gives the request an id and, when debug
//! logging is on, a span.
//!
//! - `x-request-id`: the caller's own, when it sent a sane one (1 to 128 visible ASCII
//!   characters), otherwise `<process prefix>-<counter>`; set on every response.
//! - Every `/v1/` answer but the widget's (public and cacheable by design) carries
//!   `Cache-Control: no-store` and `X-Content-Type-Options: nosniff`: nothing about a
//!   session, an agent or an account is kept by a browser or a proxy, or read as another type.
//!   A widget answer that does not say how to cache it (an error) gets `no-store` too, so a
//!   CDN never keeps a `404` or a `503`.
//! - With `PRESENCE_LOG=presence_server=debug` (or any filter enabling debug here), a `request`
//!   span with method, path and id, and a `finished` event with status and latency.
//!
//! One hand-written layer replaces tower-http's `SetRequestId`, `PropagateRequestId` and
//! `Trace`: together they cost more than the heartbeat's own work (see docs/BENCHMARKS.md).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::http::header::{CACHE_CONTROL, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderName, HeaderValue, Request, Response};
use bytes::Bytes;
use tower::{Layer, Service};

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Whether an answer to `path` is private (every `/v1/` route but the widget's: `Some(true)`)
/// or the widget's (`Some(false)`).
fn private(path: &str) -> Option<bool> {
    path.strip_prefix("/v1/")
        .map(|rest| !rest.starts_with("widget/"))
}

/// Longest caller-supplied request id that is kept.
const MAX_ID_LEN: usize = 128;

#[derive(Clone)]
pub struct RequestLayer {
    ids: Arc<Ids>,
}

struct Ids {
    prefix: Box<[u8]>,
    next: AtomicU64,
}

impl RequestLayer {
    pub fn new() -> Self {
        RequestLayer {
            ids: Arc::new(Ids {
                prefix: crate::auth::new_id("req").into_bytes().into_boxed_slice(),
                next: AtomicU64::new(1),
            }),
        }
    }
}

impl Ids {
    /// `<prefix>-<n>`, written without the formatting machinery (this runs per request).
    fn make(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut rest = n;
        loop {
            at -= 1;
            digits[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        let mut buf = Vec::with_capacity(self.prefix.len() + 1 + digits.len() - at);
        buf.extend_from_slice(&self.prefix);
        buf.push(b'-');
        buf.extend_from_slice(&digits[at..]);
        // The prefix is `req_<hex>` and the rest digits: always a valid header value.
        HeaderValue::from_maybe_shared(Bytes::from(buf))
            .unwrap_or_else(|_| HeaderValue::from_static("req"))
    }
}

/// Whether a caller's `x-request-id` is kept rather than replaced.
fn acceptable(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && b.len() <= MAX_ID_LEN && b.iter().all(|c| c.is_ascii_graphic())
}

impl<S> Layer<S> for RequestLayer {
    type Service = RequestService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestService {
            inner,
            ids: self.ids.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RequestService<S> {
    inner: S,
    ids: Arc<Ids>,
}

struct Trace {
    span: tracing::Span,
    start: Instant,
}

impl<S, B, R> Service<Request<B>> for RequestService<S>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = RequestFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let id = match req.headers().get(&X_REQUEST_ID) {
            Some(v) if acceptable(v) => v.clone(),
            _ => self.ids.make(),
        };
        let private = private(req.uri().path());
        let trace = tracing::enabled!(tracing::Level::DEBUG).then(|| Trace {
            span: tracing::debug_span!(
                "request",
                method = %req.method(),
                path = %req.uri().path(),
                id = %String::from_utf8_lossy(id.as_bytes()),
            ),
            start: Instant::now(),
        });
        let inner = match &trace {
            Some(t) => t.span.in_scope(|| self.inner.call(req)),
            None => self.inner.call(req),
        };
        RequestFuture {
            inner,
            id: Some(id),
            private,
            trace,
        }
    }
}

pin_project_lite::pin_project! {
    pub struct RequestFuture<F> {
        #[pin]
        inner: F,
        id: Option<HeaderValue>,
        private: Option<bool>,
        trace: Option<Trace>,
    }
}

impl<F, R, E> Future for RequestFuture<F>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = Result<Response<R>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = match this.trace {
            Some(t) => {
                let _enter = t.span.enter();
                std::task::ready!(this.inner.poll(cx))
            }
            None => std::task::ready!(this.inner.poll(cx)),
        };
        Poll::Ready(out.map(|mut res| {
            if let Some(id) = this.id.take() {
                res.headers_mut().insert(X_REQUEST_ID.clone(), id);
            }
            let h = res.headers_mut();
            match *this.private {
                Some(true) => {
                    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
                }
                Some(false) if !h.contains_key(CACHE_CONTROL) => {
                    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                }
                _ => {}
            }
            if let Some(t) = this.trace.take() {
                let _enter = t.span.enter();
                tracing::debug!(
                    status = res.status().as_u16(),
                    latency_ms = t.start.elapsed().as_secs_f64() * 1e3,
                    "finished"
                );
            }
            res
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_count_up_after_the_process_prefix() {
        let layer = RequestLayer::new();
        let a = layer.ids.make();
        let b = layer.ids.make();
        let prefix = std::str::from_utf8(&layer.ids.prefix).unwrap().to_string();
        assert_eq!(a.to_str().unwrap(), format!("{prefix}-1"));
        assert_eq!(b.to_str().unwrap(), format!("{prefix}-2"));
        layer.ids.next.store(u64::MAX, Ordering::Relaxed);
        assert_eq!(
            layer.ids.make().to_str().unwrap(),
            format!("{prefix}-{}", u64::MAX)
        );
    }

    #[test]
    fn only_sane_caller_ids_are_kept() {
        assert!(acceptable(&HeaderValue::from_static("abc-123_x.y")));
        assert!(!acceptable(&HeaderValue::from_static("")));
        assert!(!acceptable(&HeaderValue::from_static("has space")));
        let long = "a".repeat(MAX_ID_LEN + 1);
        assert!(!acceptable(&HeaderValue::from_str(&long).unwrap()));
        assert!(acceptable(&HeaderValue::from_str(&long[1..]).unwrap()));
    }

    struct Capture(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn with_debug_logging_each_request_logs_method_path_id_status_and_latency() {
        use tower::ServiceExt;
        let out = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || Capture(sink.clone()))
            .finish();
        let _default = tracing::subscriber::set_default(subscriber);
        let svc = RequestLayer::new().layer(tower::service_fn(|_: Request<()>| async {
            Ok::<_, std::convert::Infallible>(Response::builder().status(204).body(()).unwrap())
        }));
        let req = Request::post("/v1/session/heartbeat")
            .header("x-request-id", "lb-1")
            .body(())
            .unwrap();
        let res = svc.oneshot(req).await.unwrap();
        assert_eq!(res.headers()["x-request-id"], "lb-1");
        let log = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        let line = log
            .lines()
            .find(|l| l.contains("finished"))
            .unwrap_or_else(|| panic!("a finished event in {log:?}"));
        for part in [
            "method=POST",
            "path=/v1/session/heartbeat",
            "id=lb-1",
            "status=204",
            "latency_ms=",
        ] {
            assert!(line.contains(part), "{part} in {line:?}");
        }
    }
}

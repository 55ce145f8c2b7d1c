//! The one seam between the engine and the network.
//!
//! The engine speaks in [`Request`]s and [`Response`]s; [`HttpTransport`] carries them over
//! reqwest (rustls). Tests swap in their own [`Transport`] through
//! [`Overrides::transport`](crate::Overrides::transport) to answer requests in memory, which is
//! what lets them run under tokio's paused clock without real sockets racing virtual time.
//!
//! Deadlines are *not* the transport's business: the engine wraps every call in
//! `tokio::time::timeout`, so one clock governs everything.

use std::pin::Pin;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{Stream, StreamExt};

/// HTTP methods the protocol uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

/// A request relative to the server's base URL.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// Path and query, starting with `/`, e.g. `/v1/me/status`.
    pub path: String,
    /// Session token sent as `Authorization: Bearer`.
    pub bearer: Option<String>,
    /// JSON body, sent with `Content-Type: application/json`.
    pub json: Option<Vec<u8>>,
    /// Asks for `text/event-stream`.
    pub event_stream: bool,
}

impl Request {
    pub fn new(method: Method, path: impl Into<String>) -> Request {
        Request {
            method,
            path: path.into(),
            bearer: None,
            json: None,
            event_stream: false,
        }
    }

    pub fn bearer(mut self, token: &str) -> Request {
        self.bearer = Some(token.to_owned());
        self
    }

    pub fn json<T: serde::Serialize>(mut self, body: &T) -> Request {
        // Serializing our own protocol types cannot fail.
        self.json = Some(serde_json::to_vec(body).unwrap_or_default());
        self
    }

    /// The JSON body parsed, for fakes that inspect what the engine sent.
    pub fn body_json(&self) -> Option<serde_json::Value> {
        self.json
            .as_deref()
            .and_then(|b| serde_json::from_slice(b).ok())
    }
}

/// A body arriving in chunks (an event stream never ends on its own).
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, TransportError>> + Send>>;

/// A response: status, headers (names lower-cased) and a streamed body.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: BodyStream,
}

impl Response {
    /// A complete response with a JSON body.
    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        Response::bytes(status, serde_json::to_vec(value).unwrap_or_default())
    }

    /// A complete response with the given bytes as body.
    pub fn bytes(status: u16, body: impl Into<Bytes>) -> Response {
        let body: Bytes = body.into();
        Response {
            status,
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            body: Box::pin(futures_util::stream::once(async move { Ok(body) })),
        }
    }

    /// A response whose body is whatever `stream` yields (for event streams).
    pub fn stream(
        status: u16,
        stream: impl Stream<Item = Result<Bytes, TransportError>> + Send + 'static,
    ) -> Response {
        Response {
            status,
            headers: vec![("content-type".to_owned(), "text/event-stream".to_owned())],
            body: Box::pin(stream),
        }
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// The first header with this (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Reads the whole body.
    pub async fn collect(&mut self) -> Result<Bytes, TransportError> {
        let mut out = Vec::new();
        while let Some(chunk) = self.body.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(Bytes::from(out))
    }
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

/// Why a request got no HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportErrorKind {
    /// Connection refused, reset, DNS failure: nothing was delivered, or we cannot tell.
    Connect,
    /// No answer within the deadline.
    Timeout,
    /// The connection broke while sending or reading.
    Io,
}

impl TransportErrorKind {
    pub fn code(self) -> &'static str {
        match self {
            TransportErrorKind::Connect => "connect_failed",
            TransportErrorKind::Timeout => "timeout",
            TransportErrorKind::Io => "connection_lost",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {detail}", kind.code())]
pub struct TransportError {
    pub kind: TransportErrorKind,
    pub detail: String,
}

impl TransportError {
    pub fn new(kind: TransportErrorKind, detail: impl Into<String>) -> TransportError {
        TransportError {
            kind,
            detail: detail.into(),
        }
    }
}

/// Sends requests to one server. Implementations must be cheap to call concurrently.
pub trait Transport: Send + Sync + 'static {
    fn send(&self, request: Request) -> BoxFuture<'static, Result<Response, TransportError>>;
}

/// The production transport: reqwest with rustls, one connection pool per client.
#[derive(Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
    base: String,
}

impl HttpTransport {
    /// `base` is the server URL, e.g. `http://127.0.0.1:8080` (a trailing `/` is fine).
    pub fn new(base: &str) -> Result<HttpTransport, TransportError> {
        let base = base.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(TransportError::new(
                TransportErrorKind::Connect,
                format!("server URL must start with http:// or https://, got {base:?}"),
            ));
        }
        let client = reqwest::Client::builder()
            .user_agent(concat!("presence-core/", env!("CARGO_PKG_VERSION")))
            // Keep-alive probes find half-open connections (a laptop resumed on a new
            // network) long before the idle timeout would.
            .tcp_keepalive(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| TransportError::new(TransportErrorKind::Connect, e.to_string()))?;
        Ok(HttpTransport { client, base })
    }

    pub fn base(&self) -> &str {
        &self.base
    }
}

fn map_reqwest(e: reqwest::Error) -> TransportError {
    let kind = if e.is_timeout() {
        TransportErrorKind::Timeout
    } else if e.is_connect() || e.is_builder() || e.is_request() {
        TransportErrorKind::Connect
    } else {
        TransportErrorKind::Io
    };
    // reqwest's Display hides the cause ("error sending request"); include the chain.
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    TransportError::new(kind, detail)
}

impl Transport for HttpTransport {
    fn send(&self, request: Request) -> BoxFuture<'static, Result<Response, TransportError>> {
        let url = format!("{}{}", self.base, request.path);
        let method = match request.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Delete => reqwest::Method::DELETE,
        };
        let mut builder = self.client.request(method, url);
        if let Some(token) = &request.bearer {
            builder = builder.bearer_auth(token);
        }
        if let Some(body) = request.json {
            builder = builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        if request.event_stream {
            builder = builder.header(reqwest::header::ACCEPT, "text/event-stream");
        }
        Box::pin(async move {
            let resp = builder.send().await.map_err(map_reqwest)?;
            let status = resp.status().as_u16();
            let headers = resp
                .headers()
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                .collect();
            let body = resp.bytes_stream().map(|r| r.map_err(map_reqwest));
            Ok(Response {
                status,
                headers,
                body: Box::pin(body),
            })
        })
    }
}

//! Typed calls to the presence server, on top of a [`Transport`].
//!
//! Every call: runs under one deadline on tokio's clock; turns non-2xx answers into
//! [`Error::Http`] with the protocol's `{code, detail}` and any `Retry-After`; turns a 2xx
//! whose body does not parse into [`Error::BadResponse`]; and feeds the server clock estimate
//! (coarse from `Date` on every answer, precise from `server_time` where the body has one).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use presence_protocol::{
    AvailabilityReport, Device, Heartbeat, HeartbeatRequest, LoginRequest, LoginResponse,
    MeResponse, Millis, Mode, PushRegistration, SetStatusRequest, SetStatusResponse, StatusLogPage,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::clock::{ClockSample, ServerClock, parse_http_date};
use crate::error::Error;
use crate::meter::Meter;
use crate::transport::{Method, Request, Response, Transport, TransportError, TransportErrorKind};

/// How a login proves who the agent is.
#[derive(Debug, Clone)]
pub(crate) enum Proof {
    /// The agent's email and Presence password.
    Password { email: String, password: String },
    /// A token (JWT) the customer's own backend issued for the agent.
    Token { token: String },
}

/// A login for this device.
#[derive(Debug, Clone)]
pub(crate) struct Login {
    pub account: String,
    pub proof: Proof,
    pub device: Device,
    pub push: Option<PushRegistration>,
}

/// The body of `POST /v1/login/token`.
#[derive(Serialize)]
struct TokenLogin<'a> {
    account: &'a str,
    token: &'a str,
    device: &'a Device,
    push: Option<&'a PushRegistration>,
}

#[derive(Clone)]
pub(crate) struct Api {
    transport: Arc<dyn Transport>,
    clock: Arc<ServerClock>,
    timeout: Duration,
    meter: Arc<Meter>,
}

struct Answer {
    body: Bytes,
    sent_at: Millis,
    received_at: Millis,
}

impl Api {
    pub(crate) fn new(
        transport: Arc<dyn Transport>,
        clock: Arc<ServerClock>,
        timeout: Duration,
        meter: Arc<Meter>,
    ) -> Api {
        Api {
            transport,
            clock,
            timeout,
            meter,
        }
    }

    /// Counts bytes of an answer's body (an event stream's chunks as they arrive).
    pub(crate) fn received(&self, bytes: usize) {
        self.meter.received(bytes as u64);
    }

    pub(crate) fn stream_event(&self) {
        self.meter.stream_event();
    }

    /// Sends and waits for the headers; samples the clock from `Date`; maps error statuses.
    async fn head(&self, req: Request) -> Result<(Response, Millis, Millis), Error> {
        self.meter.request(wire_len(&req));
        let sent_at = self.clock.device_now();
        let mut resp = self.transport.send(req).await?;
        let received_at = self.clock.device_now();
        // Status line and headers; the body is counted as it is read.
        self.meter.received(
            17 + resp
                .headers
                .iter()
                .map(|(k, v)| (k.len() + v.len() + 4) as u64)
                .sum::<u64>(),
        );
        if let Some(date) = resp.header("date").and_then(parse_http_date) {
            self.clock.observe(ClockSample {
                sent_at,
                received_at,
                server_time: date,
                precise: false,
            });
        }
        if !(200..300).contains(&resp.status) {
            let retry_after = resp.header("retry-after").and_then(|v| self.retry_after(v));
            let body = resp.collect().await.unwrap_or_default();
            self.meter.received(body.len() as u64);
            return Err(Error::http(resp.status, &body, retry_after));
        }
        Ok((resp, sent_at, received_at))
    }

    fn retry_after(&self, v: &str) -> Option<Duration> {
        if let Ok(secs) = v.trim().parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        let at = parse_http_date(v.trim())?;
        Some(Duration::from_millis(
            (at - self.clock.server_now()).max(0) as u64
        ))
    }

    async fn call(&self, req: Request) -> Result<Answer, Error> {
        let fut = async {
            let (mut resp, sent_at, received_at) = self.head(req).await?;
            let body = resp.collect().await?;
            self.meter.received(body.len() as u64);
            Ok(Answer {
                body,
                sent_at,
                received_at,
            })
        };
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(timeout_error(self.timeout)),
        }
    }

    /// Any call whose 2xx body the caller parses itself.
    pub(crate) async fn get_bytes(&self, req: Request) -> Result<Bytes, Error> {
        Ok(self.call(req).await?.body)
    }

    async fn call_json<T: DeserializeOwned>(&self, req: Request) -> Result<(T, Answer), Error> {
        let what = req.path.clone();
        let answer = self.call(req).await?;
        let v = serde_json::from_slice(&answer.body)
            .map_err(|e| Error::BadResponse(format!("{what}: {e}")))?;
        Ok((v, answer))
    }

    fn precise(&self, a: &Answer, server_time: Millis) {
        self.clock.observe(ClockSample {
            sent_at: a.sent_at,
            received_at: a.received_at,
            server_time,
            precise: true,
        });
    }

    /// `POST /v1/login` with a password, `POST /v1/login/token` with the customer's token.
    pub(crate) async fn login(&self, login: &Login) -> Result<LoginResponse, Error> {
        let req = match &login.proof {
            Proof::Password { email, password } => {
                Request::new(Method::Post, "/v1/login").json(&LoginRequest {
                    account: login.account.clone(),
                    email: email.clone(),
                    password: password.clone(),
                    device: login.device.clone(),
                    push: login.push.clone(),
                })
            }
            Proof::Token { token } => {
                Request::new(Method::Post, "/v1/login/token").json(&TokenLogin {
                    account: &login.account,
                    token,
                    device: &login.device,
                    push: login.push.as_ref(),
                })
            }
        };
        let (r, a): (LoginResponse, _) = self.call_json(req).await?;
        self.precise(&a, r.server_time);
        Ok(r)
    }

    pub(crate) async fn heartbeat(
        &self,
        token: &str,
        mode: Mode,
        idle_ms: Option<u64>,
    ) -> Result<Heartbeat, Error> {
        let (r, a): (Heartbeat, _) = self
            .call_json(
                Request::new(Method::Post, "/v1/session/heartbeat")
                    .bearer(token)
                    .json(&HeartbeatRequest {
                        mode,
                        idle_ms: idle_ms.map(|ms| ms.min(i64::MAX as u64) as i64),
                    }),
            )
            .await?;
        if r.interval_ms <= 0 || r.ttl_ms <= 0 {
            return Err(Error::BadResponse(format!(
                "heartbeat with interval_ms {} and ttl_ms {}",
                r.interval_ms, r.ttl_ms
            )));
        }
        self.precise(&a, r.server_time);
        Ok(r)
    }

    pub(crate) async fn end_session(&self, token: &str) -> Result<(), Error> {
        self.call(Request::new(Method::Delete, "/v1/session").bearer(token))
            .await?;
        Ok(())
    }

    pub(crate) async fn put_push(&self, token: &str, push: &PushRegistration) -> Result<(), Error> {
        self.call(
            Request::new(Method::Put, "/v1/session/push")
                .bearer(token)
                .json(push),
        )
        .await?;
        Ok(())
    }

    pub(crate) async fn me(&self, token: &str) -> Result<MeResponse, Error> {
        let (r, _) = self
            .call_json(Request::new(Method::Get, "/v1/me").bearer(token))
            .await?;
        Ok(r)
    }

    pub(crate) async fn set_status(
        &self,
        token: &str,
        body: &SetStatusRequest,
    ) -> Result<SetStatusResponse, Error> {
        let (r, _) = self
            .call_json(
                Request::new(Method::Put, "/v1/me/status")
                    .bearer(token)
                    .json(body),
            )
            .await?;
        Ok(r)
    }

    /// `GET /v1/me/status-log`: one page, newest first.
    pub(crate) async fn status_log(
        &self,
        token: &str,
        query: &LogQuery,
    ) -> Result<StatusLogPage, Error> {
        let (r, _) = self
            .call_json(Request::new(Method::Get, query.path()).bearer(token))
            .await?;
        Ok(r)
    }

    /// `GET /v1/admin/reports/availability` (owners and admins).
    pub(crate) async fn availability_report(
        &self,
        token: &str,
        query: &ReportQuery,
    ) -> Result<AvailabilityReport, Error> {
        let (r, _) = self
            .call_json(Request::new(Method::Get, query.path()).bearer(token))
            .await?;
        Ok(r)
    }

    /// Opens an event stream: waits (under the deadline) for a 2xx with headers only.
    pub(crate) async fn open_stream(
        &self,
        path: &str,
        token: Option<&str>,
    ) -> Result<Response, Error> {
        let mut req = Request::new(Method::Get, path);
        req.event_stream = true;
        if let Some(t) = token {
            req = req.bearer(t);
        }
        match tokio::time::timeout(self.timeout, self.head(req)).await {
            Ok(r) => {
                let (resp, _, _) = r?;
                Ok(resp)
            }
            Err(_) => Err(timeout_error(self.timeout)),
        }
    }
}

/// One page's worth of `GET /v1/me/status-log`: at most `limit` entries (1 to 500; the
/// server's default 100), after the page whose `next` was `after`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LogQuery {
    pub(crate) limit: Option<u32>,
    pub(crate) after: Option<String>,
}

/// The largest page the server gives.
pub(crate) const MAX_LOG_LIMIT: u32 = 500;

impl LogQuery {
    /// Checks the limit's bounds, naming the field.
    pub(crate) fn new(limit: Option<u32>, after: Option<String>) -> Result<LogQuery, Error> {
        if let Some(l) = limit
            && !(1..=MAX_LOG_LIMIT).contains(&l)
        {
            return Err(Error::InvalidInput(format!(
                "limit: must be between 1 and {MAX_LOG_LIMIT}, got {l}"
            )));
        }
        if after.as_deref() == Some("") {
            return Err(Error::InvalidInput("after: must not be empty".into()));
        }
        Ok(LogQuery { limit, after })
    }

    pub(crate) fn path(&self) -> String {
        let mut q = Vec::new();
        if let Some(l) = self.limit {
            q.push(format!("limit={l}"));
        }
        if let Some(a) = &self.after {
            q.push(format!("after={}", percent_encode(a)));
        }
        match q.is_empty() {
            true => "/v1/me/status-log".to_owned(),
            false => format!("/v1/me/status-log?{}", q.join("&")),
        }
    }
}

/// What an availability report asks for (each optional: the server's defaults apply).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportQuery {
    /// Start of the range, ms since the epoch.
    pub from: Option<i64>,
    /// End of the range (exclusive), ms since the epoch.
    pub to: Option<i64>,
    /// IANA time zone the days are counted in.
    pub tz: Option<String>,
    /// Only the agents who count for this group.
    pub group: Option<String>,
}

impl ReportQuery {
    pub(crate) fn path(&self) -> String {
        let mut q = Vec::new();
        if let Some(v) = self.from {
            q.push(format!("from={v}"));
        }
        if let Some(v) = self.to {
            q.push(format!("to={v}"));
        }
        if let Some(v) = &self.tz {
            q.push(format!("tz={}", percent_encode(v)));
        }
        if let Some(v) = &self.group {
            q.push(format!("group={}", percent_encode(v)));
        }
        format!("/v1/admin/reports/availability?{}", q.join("&"))
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters (a query value).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The bytes of `req` as HTTP/1.1 with the headers the engine sets (see the meter's docs).
fn wire_len(req: &crate::transport::Request) -> u64 {
    // "METHOD PATH HTTP/1.1\r\n" and the blank line ending the headers.
    let mut n = req.method.as_str().len() + 1 + req.path.len() + 11 + 2;
    if let Some(t) = &req.bearer {
        n += "authorization: Bearer \r\n".len() + t.len();
    }
    if req.event_stream {
        n += "accept: text/event-stream\r\n".len();
    }
    if let Some(b) = &req.json {
        n += "content-type: application/json\r\ncontent-length: \r\n".len();
        n += b.len().to_string().len() + b.len();
    }
    n as u64
}

fn timeout_error(after: Duration) -> Error {
    Error::Transport(TransportError::new(
        TransportErrorKind::Timeout,
        format!("no answer within {} ms", after.as_millis()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_log_queries_check_the_limit_and_encode_the_cursor() {
        assert_eq!(
            LogQuery::new(None, None).unwrap().path(),
            "/v1/me/status-log"
        );
        assert_eq!(
            LogQuery::new(Some(500), Some("12:a b/+=&".into()))
                .unwrap()
                .path(),
            "/v1/me/status-log?limit=500&after=12%3Aa%20b%2F%2B%3D%26"
        );
        for bad in [0, 501] {
            match LogQuery::new(Some(bad), None) {
                Err(Error::InvalidInput(d)) => assert!(d.starts_with("limit:"), "{d}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert!(LogQuery::new(None, Some(String::new())).is_err());
    }
}

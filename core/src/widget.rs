//! The public chat box view, as a website's widget sees it (no login needed).
//!
//! Used by `presence chatbox WIDGET_KEY [--watch]` and by tests; apps never need it.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use presence_protocol::{ChatboxView, event};

use crate::api::Api;
use crate::clock::ServerClock;
use crate::error::{ClientError, Error};
use crate::sse::{SseItem, SseParser};
use crate::transport::{HttpTransport, Method, Request, Response};

fn api(server_url: &str, timeout: Duration) -> Result<Api, ClientError> {
    let t = HttpTransport::new(server_url).map_err(|e| Error::InvalidInput(e.detail))?;
    Ok(Api::new(
        Arc::new(t),
        Arc::new(ServerClock::new(0)),
        timeout,
        Default::default(),
    ))
}

fn path(widget_key: &str, what: &str) -> Result<String, ClientError> {
    if widget_key.is_empty()
        || !widget_key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ClientError::InvalidInput {
            detail: format!("not a widget key: {widget_key:?}"),
        });
    }
    Ok(format!("/v1/widget/{widget_key}/{what}"))
}

/// `GET /v1/widget/{key}/status`.
pub async fn fetch_chatbox(
    server_url: &str,
    widget_key: &str,
    timeout: Duration,
) -> Result<ChatboxView, ClientError> {
    let api = api(server_url, timeout)?;
    let body = api
        .get_bytes(Request::new(Method::Get, path(widget_key, "status")?))
        .await?;
    serde_json::from_slice(&body)
        .map_err(|e| Error::BadResponse(format!("widget status: {e}")).into())
}

/// A live `GET /v1/widget/{key}/events` stream.
pub struct ChatboxStream {
    resp: Response,
    parser: SseParser,
    pending: std::collections::VecDeque<ChatboxView>,
    idle: Duration,
}

impl ChatboxStream {
    /// Opens the stream. `idle` is how long a silent stream is trusted before `next` fails.
    pub async fn open(
        server_url: &str,
        widget_key: &str,
        timeout: Duration,
        idle: Duration,
    ) -> Result<ChatboxStream, ClientError> {
        let api = api(server_url, timeout)?;
        let resp = api.open_stream(&path(widget_key, "events")?, None).await?;
        Ok(ChatboxStream {
            resp,
            parser: SseParser::new(),
            pending: Default::default(),
            idle,
        })
    }

    /// The next view; `Ok(None)` when the server closed the stream.
    pub async fn next(&mut self) -> Result<Option<ChatboxView>, ClientError> {
        loop {
            if let Some(v) = self.pending.pop_front() {
                return Ok(Some(v));
            }
            let chunk = match tokio::time::timeout(self.idle, self.resp.body.next()).await {
                Err(_) => {
                    return Err(ClientError::Network {
                        detail: format!("stream silent for {} ms", self.idle.as_millis()),
                    });
                }
                Ok(None) => return Ok(None),
                Ok(Some(r)) => r.map_err(Error::from)?,
            };
            for item in self.parser.push(&chunk) {
                if let SseItem::Event(ev) = item
                    && ev.event == event::CHATBOX
                {
                    let v = serde_json::from_str(&ev.data)
                        .map_err(|e| Error::BadResponse(format!("chatbox event: {e}")))?;
                    self.pending.push_back(v);
                }
            }
        }
    }
}

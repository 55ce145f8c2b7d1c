//! Reads `event:`/`data:` frames from an event stream, waiting with [`DEADLINE`] instead of
//! sleeping.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;

use crate::wait::DEADLINE;

type ByteStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// The reader of one open event stream; comments are skipped.
pub struct Sse {
    stream: ByteStream,
    buf: String,
    /// The last `retry:` value the stream sent.
    pub retry: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Event {
    pub name: String,
    pub data: Value,
    /// The event's `id:` line, if it had one.
    pub id: Option<String>,
}

impl Sse {
    /// Reads the body of an answer as an event stream.
    pub fn new(resp: reqwest::Response) -> Sse {
        Sse {
            stream: Box::pin(resp.bytes_stream()),
            buf: String::new(),
            retry: None,
        }
    }

    /// The next event, or `None` if the stream ended. Panics after [`DEADLINE`].
    pub async fn next(&mut self) -> Option<Event> {
        self.next_within(DEADLINE)
            .await
            .expect("an event within the deadline")
    }

    /// `Err(())` on timeout, `Ok(None)` when the stream ended.
    pub async fn next_within(&mut self, d: Duration) -> Result<Option<Event>, ()> {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            if let Some(pos) = self.buf.find("\n\n") {
                let frame: String = self.buf.drain(..pos + 2).collect();
                let mut name = String::from("message");
                let mut data = String::new();
                let mut id = None;
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    } else if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("retry:") {
                        self.retry = Some(v.trim().to_owned());
                    }
                }
                if data.is_empty() {
                    continue; // a comment, or a `retry:` line on its own
                }
                let data = serde_json::from_str(&data).unwrap_or(Value::String(data));
                return Ok(Some(Event { name, data, id }));
            }
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return Err(()),
                Ok(None) | Ok(Some(Err(_))) => return Ok(None),
                Ok(Some(Ok(bytes))) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
            }
        }
    }

    /// Skips events until one named `name` satisfies `pred`.
    pub async fn wait_for(&mut self, name: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_within(left).await {
                Ok(Some(ev)) if ev.name == name && pred(&ev.data) => return ev.data,
                Ok(Some(_)) => continue,
                Ok(None) => panic!("stream ended while waiting for {name}"),
                Err(()) => panic!("no matching {name} event within {DEADLINE:?}"),
            }
        }
    }
}

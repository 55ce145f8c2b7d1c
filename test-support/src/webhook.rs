//! A loopback receiver for the server's `webhook` push provider: every POSTed body arrives on
//! a channel with its headers, as a phone's push service would hand it to the app. A flooding
//! receiver answers every POST with `500` and a body far larger than any client should read,
//! counting what it managed to send.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::push::tls::FLOOD_BYTES;
use crate::wait::DEADLINE;

/// One POST as it arrived.
#[derive(Debug, Clone)]
pub struct Hook {
    /// Lower-case names.
    pub headers: HashMap<String, String>,
    pub body: String,
}

pub struct WebhookReceiver {
    pub url: String,
    rx: mpsc::UnboundedReceiver<Hook>,
    flooded: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

/// Reads one request: its headers, then exactly Content-Length bytes.
pub(crate) async fn read_request(sock: &mut TcpStream) -> Option<Hook> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).into_owned();
    let headers: HashMap<String, String> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < header_end + len {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[header_end..header_end + len]).into_owned();
    Some(Hook { headers, body })
}

impl WebhookReceiver {
    /// A receiver answering `204` to every push.
    pub async fn start() -> WebhookReceiver {
        Self::serve(false).await
    }

    /// A receiver answering every push with `500` and up to [`FLOOD_BYTES`] of body.
    pub async fn flooding() -> WebhookReceiver {
        Self::serve(true).await
    }

    async fn serve(flood: bool) -> WebhookReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/push", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::unbounded_channel();
        let flooded = Arc::new(AtomicU64::new(0));
        let counter = flooded.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let (tx, counter) = (tx.clone(), counter.clone());
                // One request per connection is all the tests need.
                tokio::spawn(async move {
                    let Some(hook) = read_request(&mut sock).await else {
                        return;
                    };
                    if !flood {
                        let _ = sock
                            .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                            .await;
                        let _ = tx.send(hook);
                        return;
                    }
                    let _ = tx.send(hook);
                    // No length: the body runs until the connection closes.
                    let head = b"HTTP/1.1 500 Internal Server Error\r\nconnection: close\r\n\r\n";
                    if sock.write_all(head).await.is_err() {
                        return;
                    }
                    let chunk = vec![b'x'; 64 * 1024];
                    while counter.load(Relaxed) < FLOOD_BYTES {
                        if sock.write_all(&chunk).await.is_err() {
                            return;
                        }
                        counter.fetch_add(chunk.len() as u64, Relaxed);
                    }
                });
            }
        });
        WebhookReceiver {
            url,
            rx,
            flooded,
            task,
        }
    }

    /// Body bytes a flooding receiver managed to send so far.
    pub fn flooded_bytes(&self) -> u64 {
        self.flooded.load(Relaxed)
    }

    /// The next push whose `type` is `kind`, skipping others; panics after [`DEADLINE`].
    pub async fn next_of(&mut self, kind: &str) -> Value {
        let body = self.next_body_of(kind).await;
        serde_json::from_str(&body).expect("a JSON push")
    }

    /// [`WebhookReceiver::next_of`], as the body was sent.
    pub async fn next_body_of(&mut self, kind: &str) -> String {
        self.next_hook_of(kind).await.body
    }

    /// [`WebhookReceiver::next_of`], with its headers.
    pub async fn next_hook_of(&mut self, kind: &str) -> Hook {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let hook = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("no {kind} push within {DEADLINE:?}"))
                .expect("receiver open");
            let v: Value = serde_json::from_str(&hook.body).unwrap();
            if v["type"] == kind {
                return hook;
            }
        }
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

//! A loopback receiver for the server's `webhook` push provider: every POSTed body arrives on
//! a channel, as a phone's push service would hand it to the app.

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::wait::DEADLINE;

pub struct WebhookReceiver {
    pub url: String,
    rx: mpsc::UnboundedReceiver<String>,
    task: tokio::task::JoinHandle<()>,
}

impl WebhookReceiver {
    pub async fn start() -> WebhookReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/push", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    // One request per connection is all the test needs; read headers, then
                    // exactly Content-Length bytes.
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let header_end = loop {
                        let Ok(n) = sock.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break p + 4;
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < header_end + len {
                        let Ok(n) = sock.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let body =
                        String::from_utf8_lossy(&buf[header_end..header_end + len]).into_owned();
                    let _ = sock
                        .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                        .await;
                    let _ = tx.send(body);
                });
            }
        });
        WebhookReceiver { url, rx, task }
    }

    /// The next push whose `type` is `kind`, skipping others; panics after [`DEADLINE`].
    pub async fn next_of(&mut self, kind: &str) -> Value {
        let body = self.next_body_of(kind).await;
        serde_json::from_str(&body).expect("a JSON push")
    }

    /// [`WebhookReceiver::next_of`], as the body was sent.
    pub async fn next_body_of(&mut self, kind: &str) -> String {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let body = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("no {kind} push within {DEADLINE:?}"))
                .expect("receiver open");
            let v: Value = serde_json::from_str(&body).unwrap();
            if v["type"] == kind {
                return body;
            }
        }
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

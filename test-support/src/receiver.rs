//! A loopback endpoint for the customer's webhooks whose answers a test scripts: each POST
//! takes the next scripted [`Answer`] (then `204` once the script is used up) and arrives on
//! a channel with its headers, body and arrival time. Answers cover what a real backend can
//! do wrong: an error status (with `Retry-After`), `410`, a redirect, an answer of 5 MB, a
//! connection closed without an answer, and a hang that holds the request open until the
//! receiver is released or dropped.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};

use crate::wait::DEADLINE;
use crate::webhook::{Hook, read_request};

/// How the receiver answers one POST.
#[derive(Debug, Clone)]
pub enum Answer {
    /// This status, no body.
    Status(u16),
    /// This status with `Retry-After: secs`.
    RetryAfter(u16, u64),
    /// `302` to another loopback path (which nothing serves).
    Redirect,
    /// This status with a 5 MB body.
    Huge(u16),
    /// The connection closed without an answer.
    Close,
    /// No answer until [`Receiver::release`] (or the receiver is dropped).
    Hang,
}

/// One POST as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub hook: Hook,
    pub body: Value,
    pub at: Instant,
    /// The answer it got.
    pub answer: Answer,
}

impl Received {
    pub fn id(&self) -> &str {
        self.hook
            .headers
            .get("webhook-id")
            .map_or("", String::as_str)
    }

    pub fn kind(&self) -> &str {
        self.body["type"].as_str().unwrap_or("")
    }

    pub fn seq(&self) -> i64 {
        self.body["seq"].as_i64().unwrap_or(-1)
    }
}

pub struct Receiver {
    pub url: String,
    script: Arc<Mutex<VecDeque<Answer>>>,
    release: Arc<Notify>,
    rx: mpsc::UnboundedReceiver<Received>,
    task: tokio::task::JoinHandle<()>,
}

const HUGE: usize = 5 << 20;

impl Receiver {
    /// A receiver answering `204` until scripted otherwise.
    pub async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let script: Arc<Mutex<VecDeque<Answer>>> = Arc::default();
        let release = Arc::new(Notify::new());
        let (tx, rx) = mpsc::unbounded_channel();
        let (s, r) = (script.clone(), release.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let (tx, script, release) = (tx.clone(), s.clone(), r.clone());
                tokio::spawn(async move {
                    while let Some(hook) = read_request(&mut sock).await {
                        let answer = script.lock().pop_front().unwrap_or(Answer::Status(204));
                        let body = serde_json::from_str(&hook.body).unwrap_or(Value::Null);
                        let _ = tx.send(Received {
                            hook,
                            body,
                            at: Instant::now(),
                            answer: answer.clone(),
                        });
                        let head = |status: u16, extra: &str, len: usize| {
                            format!("HTTP/1.1 {status} X\r\ncontent-length: {len}\r\n{extra}\r\n")
                        };
                        let wrote = match answer {
                            Answer::Status(s) => sock.write_all(head(s, "", 0).as_bytes()).await,
                            Answer::RetryAfter(s, secs) => {
                                let extra = format!("retry-after: {secs}\r\n");
                                sock.write_all(head(s, &extra, 0).as_bytes()).await
                            }
                            Answer::Redirect => {
                                let extra = "location: /elsewhere\r\n";
                                sock.write_all(head(302, extra, 0).as_bytes()).await
                            }
                            Answer::Huge(s) => {
                                let mut out = head(s, "", HUGE).into_bytes();
                                out.resize(out.len() + HUGE, b'x');
                                sock.write_all(&out).await
                            }
                            Answer::Close => return,
                            Answer::Hang => {
                                release.notified().await;
                                return;
                            }
                        };
                        if wrote.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Receiver {
            url,
            script,
            release,
            rx,
            task,
        }
    }

    /// Answers the next POSTs with these, in order.
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.script.lock().extend(answers);
    }

    /// Forgets the answers not yet given: `204` from now on.
    pub fn clear(&self) {
        self.script.lock().clear();
    }

    /// Ends every hanging request (their connections close unanswered).
    pub fn release(&self) {
        self.release.notify_waiters();
    }

    /// The next POST; panics after [`DEADLINE`].
    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(DEADLINE, self.rx.recv())
            .await
            .expect("a webhook within the deadline")
            .expect("the receiver runs")
    }

    /// The next POST whose `type` is `kind`, skipping others.
    pub async fn next_of(&mut self, kind: &str) -> Received {
        loop {
            let r = self.next().await;
            if r.kind() == kind {
                return r;
            }
        }
    }

    /// A POST already arrived, if any.
    pub fn try_next(&mut self) -> Option<Received> {
        self.rx.try_recv().ok()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.release();
        self.task.abort();
    }
}

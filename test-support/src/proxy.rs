//! A small fault-injecting TCP proxy: put it between a device and the real server and switch
//! faults on and off while traffic flows.
//!
//! - `Pass`: bytes flow both ways.
//! - `Delay(d)`: every chunk waits `d` before it is forwarded.
//! - `Drop`: new connections are closed at once (FIN); live ones are closed.
//! - `Reset`: new connections get a TCP RST; live ones are reset.
//! - `Blackhole`: bytes vanish both ways; connections stay open and silent (the nastiest case:
//!   only timeouts notice).
//! - `ResetUnseen`: the server's side of every live connection is reset and the client's left
//!   open, as when a firewall rejects the server's packets: while the fault lasts, the client
//!   hears nothing and what it sends vanishes; afterwards, the next thing it sends is answered
//!   with a reset (the server no longer knows the connection). New connections are reset. A
//!   client that sends nothing on such a connection never learns it is dead.
//! - `LoseAnswers`: requests reach the server, answers never come back (the server acted, the
//!   device cannot know).
//!
//! A fault applies to every connection ([`FaultProxy::set`]), or only to the connections whose
//! client sent a given marker within its first [`HEAD`] bytes, such as a Redis `SUBSCRIBE`
//! ([`FaultProxy::set_where`]); the others pass.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Pass,
    Delay(Duration),
    Drop,
    Reset,
    Blackhole,
    ResetUnseen,
    LoseAnswers,
}

/// The fault in force, and the connections it applies to.
#[derive(Debug, Clone, Copy)]
struct Rule {
    fault: Fault,
    /// Only connections whose client sent this; `None`: every connection.
    only: Option<&'static [u8]>,
}

/// How much of what a client sends first is kept, to look for a marker in.
pub const HEAD: usize = 4096;

/// The first [`HEAD`] bytes a client sent, and whether the marker in force is among them.
#[derive(Default)]
struct Head {
    bytes: Vec<u8>,
    found: Option<(&'static [u8], bool)>,
}

impl Head {
    fn push(&mut self, chunk: &[u8]) {
        let room = HEAD.saturating_sub(self.bytes.len());
        if room > 0 {
            self.bytes
                .extend_from_slice(&chunk[..chunk.len().min(room)]);
            if matches!(self.found, Some((_, false))) {
                self.found = None;
            }
        }
    }

    /// The fault `rule` puts on this connection.
    fn fault(&mut self, rule: &Rule) -> Fault {
        let Some(marker) = rule.only else {
            return rule.fault;
        };
        let marked = match self.found {
            Some((m, v)) if std::ptr::eq(m, marker) => v,
            _ => {
                let v = !marker.is_empty() && self.bytes.windows(marker.len()).any(|w| w == marker);
                self.found = Some((marker, v));
                v
            }
        };
        if marked { rule.fault } else { Fault::Pass }
    }
}

pub struct FaultProxy {
    addr: SocketAddr,
    mode: watch::Sender<Rule>,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    pub async fn start(target: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (mode, mode_rx) = watch::channel(Rule {
            fault: Fault::Pass,
            only: None,
        });
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let mode_rx = mode_rx.clone();
                tokio::spawn(handle(client, target, mode_rx));
            }
        });
        FaultProxy {
            addr,
            mode,
            accepted,
            task,
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `fault` on every connection, new and live.
    pub fn set(&self, fault: Fault) {
        self.mode.send_replace(Rule { fault, only: None });
    }

    /// `fault` only on the connections whose client sent `marker` within its first [`HEAD`]
    /// bytes (from the read that carries it on); every other connection passes.
    pub fn set_where(&self, fault: Fault, marker: &'static [u8]) {
        self.mode.send_replace(Rule {
            fault,
            only: Some(marker),
        });
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(mut client: TcpStream, target: SocketAddr, mut mode: watch::Receiver<Rule>) {
    let mut head = Head::default();
    let at_accept = *mode.borrow_and_update();
    match head.fault(&at_accept) {
        Fault::Drop => return,
        Fault::Reset | Fault::ResetUnseen => {
            let _ = client.set_zero_linger();
            return;
        }
        Fault::Blackhole => return swallow(client, mode, head).await,
        _ => {}
    }
    let Ok(mut upstream) = TcpStream::connect(target).await else {
        let _ = client.set_zero_linger();
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let mut cbuf = vec![0u8; 16 * 1024];
    let mut ubuf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            r = client.read(&mut cbuf) => {
                let n = match r { Ok(0) | Err(_) => return, Ok(n) => n };
                head.push(&cbuf[..n]);
                let rule = *mode.borrow();
                match head.fault(&rule) {
                    Fault::Blackhole => continue,
                    // Nothing more gets through; the branch below closes the connection (at
                    // once, also when this read is the one that marked it).
                    Fault::ResetUnseen | Fault::Drop | Fault::Reset => {
                        mode.mark_changed();
                        continue;
                    }
                    Fault::Delay(d) => tokio::time::sleep(d).await,
                    _ => {}
                }
                if upstream.write_all(&cbuf[..n]).await.is_err() { return; }
            }
            r = upstream.read(&mut ubuf) => {
                let n = match r { Ok(0) | Err(_) => return, Ok(n) => n };
                let rule = *mode.borrow();
                match head.fault(&rule) {
                    Fault::Blackhole
                    | Fault::LoseAnswers
                    | Fault::ResetUnseen
                    | Fault::Drop
                    | Fault::Reset => continue,
                    Fault::Delay(d) => tokio::time::sleep(d).await,
                    _ => {}
                }
                if client.write_all(&ubuf[..n]).await.is_err() { return; }
            }
            changed = mode.changed() => {
                if changed.is_err() { return; }
                let rule = *mode.borrow_and_update();
                match head.fault(&rule) {
                    Fault::Drop => return,
                    Fault::Reset => { let _ = client.set_zero_linger(); return; }
                    Fault::ResetUnseen => {
                        let _ = upstream.set_zero_linger();
                        drop(upstream);
                        return severed(client, mode, head).await;
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Reads and discards until the client gives up or the proxy kills the connection.
async fn swallow(mut client: TcpStream, mut mode: watch::Receiver<Rule>, mut head: Head) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            r = client.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => head.push(&buf[..n]),
            },
            changed = mode.changed() => {
                if changed.is_err() { return; }
                let rule = *mode.borrow_and_update();
                match head.fault(&rule) {
                    Fault::Drop => return,
                    Fault::Reset => { let _ = client.set_zero_linger(); return; }
                    _ => {}
                }
            }
        }
    }
}

/// A connection whose server side was reset ([`Fault::ResetUnseen`]): what the client sends
/// vanishes while the fault lasts, and is answered with a reset once it is over.
async fn severed(mut client: TcpStream, mut mode: watch::Receiver<Rule>, mut head: Head) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            r = client.read(&mut buf) => {
                if matches!(r, Ok(0) | Err(_)) {
                    return;
                }
                let rule = *mode.borrow();
                if head.fault(&rule) != Fault::ResetUnseen {
                    let _ = client.set_zero_linger();
                    return;
                }
            }
            changed = mode.changed() => {
                if changed.is_err() { return; }
                let rule = *mode.borrow_and_update();
                match head.fault(&rule) {
                    Fault::Drop => return,
                    Fault::Reset => { let _ = client.set_zero_linger(); return; }
                    _ => {}
                }
            }
        }
    }
}

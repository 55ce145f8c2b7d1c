//! A small fault-injecting TCP proxy: put it between a device and the real server and switch
//! faults on and off while traffic flows.
//!
//! - `Pass`: bytes flow both ways.
//! - `Delay(d)`: every chunk waits `d` before it is forwarded.
//! - `Drop`: new connections are closed at once (FIN); live ones are closed.
//! - `Reset`: new connections get a TCP RST; live ones are reset.
//! - `Blackhole`: bytes vanish both ways; connections stay open and silent (the nastiest case:
//!   only timeouts notice).
//! - `LoseAnswers`: requests reach the server, answers never come back (the server acted, the
//!   device cannot know).

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
    LoseAnswers,
}

pub struct FaultProxy {
    addr: SocketAddr,
    mode: watch::Sender<Fault>,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    pub async fn start(target: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (mode, mode_rx) = watch::channel(Fault::Pass);
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

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, fault: Fault) {
        self.mode.send_replace(fault);
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

async fn handle(mut client: TcpStream, target: SocketAddr, mut mode: watch::Receiver<Fault>) {
    let at_accept = *mode.borrow_and_update();
    match at_accept {
        Fault::Drop => return,
        Fault::Reset => {
            let _ = client.set_zero_linger();
            return;
        }
        Fault::Blackhole => return swallow(client, mode).await,
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
                let now = *mode.borrow();
                match now {
                    Fault::Blackhole => continue,
                    Fault::Delay(d) => tokio::time::sleep(d).await,
                    _ => {}
                }
                if upstream.write_all(&cbuf[..n]).await.is_err() { return; }
            }
            r = upstream.read(&mut ubuf) => {
                let n = match r { Ok(0) | Err(_) => return, Ok(n) => n };
                let now = *mode.borrow();
                match now {
                    Fault::Blackhole | Fault::LoseAnswers => continue,
                    Fault::Delay(d) => tokio::time::sleep(d).await,
                    _ => {}
                }
                if client.write_all(&ubuf[..n]).await.is_err() { return; }
            }
            changed = mode.changed() => {
                if changed.is_err() { return; }
                let now = *mode.borrow_and_update();
                match now {
                    Fault::Drop => return,
                    Fault::Reset => { let _ = client.set_zero_linger(); return; }
                    _ => {}
                }
            }
        }
    }
}

/// Reads and discards until the client gives up or the proxy kills the connection.
async fn swallow(mut client: TcpStream, mut mode: watch::Receiver<Fault>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            r = client.read(&mut buf) => if matches!(r, Ok(0) | Err(_)) { return },
            changed = mode.changed() => {
                if changed.is_err() { return; }
                let now = *mode.borrow_and_update();
                match now {
                    Fault::Drop => return,
                    Fault::Reset => { let _ = client.set_zero_linger(); return; }
                    _ => {}
                }
            }
        }
    }
}

//! A minimal HTTP/1.1 client over one keep-alive `TcpStream`, and an SSE reader.
//!
//! The load generator and the latency probes write pre-built request bytes and stamp the
//! moment a read returns, before any parsing, so client-side overhead stays out of the
//! figures as far as it can. Only what our server and the bare baseline send is understood:
//! `Content-Length` bodies, and chunked bodies for event streams.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// A byte buffer over a socket with the few parsing steps HTTP needs.
struct Buf {
    data: Vec<u8>,
    pos: usize,
}

impl Buf {
    fn new() -> Self {
        Buf {
            data: Vec::with_capacity(2048),
            pos: 0,
        }
    }

    fn avail(&self) -> &[u8] {
        &self.data[self.pos..]
    }

    /// Reads more bytes; returns the moment the read completed.
    async fn fill(&mut self, s: &mut TcpStream) -> io::Result<Instant> {
        if self.pos > 0 && self.pos == self.data.len() {
            self.data.clear();
            self.pos = 0;
        } else if self.pos > 64 * 1024 {
            self.data.drain(..self.pos);
            self.pos = 0;
        }
        self.data.reserve(4096);
        let n = s.read_buf(&mut self.data).await?;
        let at = Instant::now();
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        Ok(at)
    }

    fn find(&self, needle: &[u8]) -> Option<usize> {
        self.avail().windows(needle.len()).position(|w| w == needle)
    }
}

/// A parsed response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    /// When the last byte of the response arrived.
    pub at: Instant,
}

impl Response {
    pub fn json(&self) -> io::Result<serde_json::Value> {
        serde_json::from_slice(&self.body).map_err(|e| bad(format!("bad JSON: {e}")))
    }

    pub fn expect(self, status: u16, what: &str) -> io::Result<Response> {
        if self.status == status {
            Ok(self)
        } else {
            Err(bad(format!(
                "{what}: expected {status}, got {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )))
        }
    }
}

/// One keep-alive connection.
pub struct Conn {
    stream: TcpStream,
    buf: Buf,
}

/// Builds request bytes; `token` adds a bearer header, `body` a JSON body.
pub fn request_bytes(method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    if let Some(t) = token {
        r.push_str("Authorization: Bearer ");
        r.push_str(t);
        r.push_str("\r\n");
    }
    match body {
        Some(b) => {
            r.push_str("Content-Type: application/json\r\n");
            r.push_str(&format!("Content-Length: {}\r\n\r\n", b.len()));
            r.push_str(b);
        }
        None => r.push_str("Content-Length: 0\r\n\r\n"),
    }
    r.into_bytes()
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Buf::new(),
        })
    }

    /// Connects from the loopback source address `from` (127.0.0.x): many connections to
    /// one server spread over several sources, so no source runs out of ephemeral ports.
    pub async fn connect_from(addr: SocketAddr, from: std::net::IpAddr) -> io::Result<Conn> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(from, 0))?;
        let stream = socket.connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Buf::new(),
        })
    }

    /// Writes raw request bytes (see [`request_bytes`]).
    pub async fn send(&mut self, req: &[u8]) -> io::Result<()> {
        self.stream.write_all(req).await
    }

    /// Reads one response with a `Content-Length` (or no) body.
    pub async fn recv(&mut self) -> io::Result<Response> {
        let (status, content_length, chunked) = read_head(&mut self.buf, &mut self.stream).await?;
        if chunked {
            return Err(bad("unexpected chunked response"));
        }
        let mut at = Instant::now();
        while self.buf.avail().len() < content_length {
            at = self.buf.fill(&mut self.stream).await?;
        }
        let body = self.buf.avail()[..content_length].to_vec();
        self.buf.pos += content_length;
        Ok(Response { status, body, at })
    }

    pub async fn call(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> io::Result<Response> {
        self.send(&request_bytes(method, path, token, body)).await?;
        self.recv().await
    }
}

/// Reads a status line and headers: (status, content length, chunked).
async fn read_head(buf: &mut Buf, s: &mut TcpStream) -> io::Result<(u16, usize, bool)> {
    let end = loop {
        if let Some(i) = buf.find(b"\r\n\r\n") {
            break i;
        }
        buf.fill(s).await?;
    };
    let head = std::str::from_utf8(&buf.avail()[..end]).map_err(|_| bad("non-UTF-8 head"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad status line {status_line:?}")))?;
    let mut content_length = 0usize;
    let mut chunked = false;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let v = v.trim();
            if k.eq_ignore_ascii_case("content-length") {
                content_length = v.parse().map_err(|_| bad("bad content-length"))?;
            } else if k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked") {
                chunked = true;
            }
        }
    }
    buf.pos += end + 4;
    Ok((status, content_length, chunked))
}

/// One server-sent event.
#[derive(Debug, Clone)]
pub struct Event {
    pub name: String,
    pub data: String,
    /// When the read that completed this event returned.
    pub at: Instant,
}

/// An open event stream (`text/event-stream` over a chunked body).
pub struct Sse {
    stream: TcpStream,
    buf: Buf,
    /// Bytes of the body in the current chunk still to come.
    chunk_left: usize,
    /// The decoded body not yet split into events.
    body: Vec<u8>,
    last_read: Instant,
}

impl Sse {
    /// Opens `GET path` and checks for a 200 event stream.
    pub async fn open(addr: SocketAddr, path: &str, token: Option<&str>) -> io::Result<Sse> {
        Self::open_from(addr, None, path, token).await
    }

    /// [`Sse::open`] from the local address `from` (another loopback address gives another
    /// range of ephemeral ports: past about 28,000 streams one address runs out).
    pub async fn open_from(
        addr: SocketAddr,
        from: Option<std::net::IpAddr>,
        path: &str,
        token: Option<&str>,
    ) -> io::Result<Sse> {
        let stream = match from {
            Some(from) => {
                let socket = tokio::net::TcpSocket::new_v4()?;
                socket.bind(SocketAddr::new(from, 0))?;
                socket.connect(addr).await?
            }
            None => TcpStream::connect(addr).await?,
        };
        stream.set_nodelay(true)?;
        let mut req =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n");
        if let Some(t) = token {
            req.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        req.push_str("\r\n");
        let mut stream = stream;
        stream.write_all(req.as_bytes()).await?;
        let mut buf = Buf::new();
        let (status, _, chunked) = read_head(&mut buf, &mut stream).await?;
        if status != 200 || !chunked {
            return Err(bad(format!(
                "event stream {path}: status {status}, chunked {chunked}"
            )));
        }
        Ok(Sse {
            stream,
            buf,
            chunk_left: 0,
            body: Vec::with_capacity(1024),
            last_read: Instant::now(),
        })
    }

    /// Moves whatever complete chunk data is buffered into `body`. False when it needs more
    /// bytes from the socket.
    fn dechunk(&mut self) -> io::Result<bool> {
        let mut progressed = false;
        loop {
            if self.chunk_left > 0 {
                let avail = self.buf.avail();
                if avail.is_empty() {
                    return Ok(progressed);
                }
                let n = avail.len().min(self.chunk_left);
                self.body.extend_from_slice(&avail[..n]);
                self.buf.pos += n;
                self.chunk_left -= n;
                progressed = true;
                if self.chunk_left > 0 {
                    return Ok(progressed);
                }
                // The chunk's trailing CRLF is consumed with the next size line.
                continue;
            }
            let avail = self.buf.avail();
            // Skip the CRLF that ends the previous chunk.
            let skip = if avail.starts_with(b"\r\n") { 2 } else { 0 };
            let Some(eol) = avail[skip..].windows(2).position(|w| w == b"\r\n") else {
                return Ok(progressed);
            };
            let line =
                std::str::from_utf8(&avail[skip..skip + eol]).map_err(|_| bad("bad chunk size"))?;
            let size_str = line.split(';').next().unwrap_or("").trim();
            if size_str.is_empty() {
                // A stray CRLF; consume it.
                self.buf.pos += skip + eol + 2;
                continue;
            }
            let size = usize::from_str_radix(size_str, 16).map_err(|_| bad("bad chunk size"))?;
            self.buf.pos += skip + eol + 2;
            if size == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "event stream ended",
                ));
            }
            self.chunk_left = size;
            progressed = true;
        }
    }

    fn take_event(&mut self) -> Option<Event> {
        loop {
            let end = self.body.windows(2).position(|w| w == b"\n\n")?;
            let raw: Vec<u8> = self.body.drain(..end + 2).collect();
            let text = String::from_utf8_lossy(&raw[..end]);
            let mut name = String::from("message");
            let mut data = String::new();
            let mut any = false;
            for line in text.split('\n') {
                if line.starts_with(':') {
                    continue;
                }
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim_start().to_owned();
                    any = true;
                } else if let Some(v) = line.strip_prefix("data:") {
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    any = true;
                }
            }
            if any {
                return Some(Event {
                    name,
                    data,
                    at: self.last_read,
                });
            }
            // A comment-only block (keep-alive): skip it.
        }
    }

    /// The next event (keep-alive comments are skipped).
    pub async fn next(&mut self) -> io::Result<Event> {
        loop {
            if let Some(e) = self.take_event() {
                return Ok(e);
            }
            if !self.dechunk()? {
                self.last_read = self.buf.fill(&mut self.stream).await?;
            }
        }
    }

    /// The next event named `name`.
    pub async fn next_named(&mut self, name: &str) -> io::Result<Event> {
        loop {
            let e = self.next().await?;
            if e.name == name {
                return Ok(e);
            }
        }
    }
}

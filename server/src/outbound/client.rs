//! The HTTP clients of every outbound call, and how much of an answer is read.
//!
//! Guarantees:
//! - [`client`] builds on rustls (the built-in Mozilla roots plus the extra roots given),
//!   follows no redirects, takes no proxy from the environment (`HTTPS_PROXY`, `HTTP_PROXY`,
//!   `ALL_PROXY` would route around the address checks), and bounds connect and request time.
//! - [`read_capped`] reads at most [`MAX_ANSWER_BYTES`] of an answer's body; a longer one
//!   (announced or sent) is an error and the rest is never read.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use super::target::PublicOnly;

/// The most of any answer's body that is read.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// How a client connects.
pub struct ClientOptions<'a> {
    /// Extra roots trusted beside the built-in ones.
    pub roots: &'a [reqwest::Certificate],
    /// HTTP/2 only (APNs).
    pub http2_only: bool,
    /// Resolves names for user-chosen targets, refusing non-public addresses.
    pub resolver: Option<Arc<PublicOnly>>,
    /// Longest one request may take, answer included.
    pub timeout: Duration,
}

/// A client by those options; an error only when the TLS backend cannot be set up (the
/// server then does not start, rather than call out some other way).
pub fn client(o: ClientOptions<'_>) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .timeout(o.timeout)
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("presence-server/", env!("CARGO_PKG_VERSION")));
    for cert in o.roots {
        b = b.add_root_certificate(cert.clone());
    }
    if o.http2_only {
        b = b.http2_prior_knowledge();
    }
    if let Some(r) = o.resolver {
        b = b.dns_resolver(r);
    }
    b.build()
        .map_err(|e| format!("the outbound HTTP client cannot be built: {e}"))
}

/// Why an answer's body was not read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("an answer of more than {MAX_ANSWER_BYTES} bytes (not read further)")]
    TooLarge,
    #[error("{0}")]
    Transport(reqwest::Error),
}

/// The body of an answer, if it is at most [`MAX_ANSWER_BYTES`].
pub async fn read_capped(mut resp: reqwest::Response) -> Result<Bytes, ReadError> {
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
    {
        return Err(ReadError::TooLarge);
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| ReadError::Transport(e.without_url()))?
    {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A loopback HTTP/1.1 server answering every connection with `head` and then `body`
    /// bytes written `chunks` times; the bytes it managed to write.
    async fn answering(
        head: &'static str,
        chunk: usize,
        chunks: usize,
    ) -> (String, tokio::sync::oneshot::Receiver<usize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await;
            let mut written = 0;
            if sock.write_all(head.as_bytes()).await.is_ok() {
                let data = vec![b'x'; chunk];
                for _ in 0..chunks {
                    if sock.write_all(&data).await.is_err() {
                        break;
                    }
                    written += chunk;
                }
            }
            let _ = tx.send(written);
        });
        (url, rx)
    }

    fn test_client() -> reqwest::Client {
        client(ClientOptions {
            roots: &[],
            http2_only: false,
            resolver: None,
            timeout: Duration::from_secs(30),
        })
        .unwrap()
    }

    #[tokio::test]
    async fn an_answer_up_to_the_cap_is_read_whole() {
        let (url, _) = answering(
            "HTTP/1.1 500 Oops\r\ncontent-length: 65536\r\nconnection: close\r\n\r\n",
            MAX_ANSWER_BYTES,
            1,
        )
        .await;
        let resp = test_client().get(url).send().await.unwrap();
        assert_eq!(read_capped(resp).await.unwrap().len(), MAX_ANSWER_BYTES);
    }

    #[tokio::test]
    async fn an_endless_answer_is_cut_at_the_cap_and_the_rest_is_never_read() {
        // No length: the body runs until the connection closes, here after 1 GiB.
        let (url, written) = answering(
            "HTTP/1.1 500 Oops\r\nconnection: close\r\n\r\n",
            64 * 1024,
            16 * 1024,
        )
        .await;
        let resp = test_client().get(url).send().await.unwrap();
        assert!(matches!(read_capped(resp).await, Err(ReadError::TooLarge)));
        let written = written.await.unwrap();
        assert!(
            written < 32 << 20,
            "the server wrote {written} bytes before the client hung up"
        );
    }

    #[tokio::test]
    async fn an_announced_oversized_answer_is_not_read_at_all() {
        let (url, _) =
            answering("HTTP/1.1 200 OK\r\ncontent-length: 100000000\r\n\r\n", 1, 0).await;
        let resp = test_client().get(url).send().await.unwrap();
        assert!(matches!(read_capped(resp).await, Err(ReadError::TooLarge)));
    }
}

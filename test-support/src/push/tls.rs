//! A test certificate authority and an HTTPS server on loopback for the push doubles.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// One CA per test: its PEM (for `--push-ca-file`) and a leaf for `127.0.0.1`/`localhost`,
/// also as PEM files for servers started as processes (the stores with TLS).
pub struct TestCa {
    pub pem_path: PathBuf,
    pub leaf_cert_path: PathBuf,
    pub leaf_key_path: PathBuf,
    _dir: tempfile::TempDir,
    leaf_der: CertificateDer<'static>,
    leaf_key: Vec<u8>,
}

impl TestCa {
    pub fn new() -> TestCa {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "Presence push test CA");
        let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
        let leaf_key = KeyPair::generate().expect("leaf key");
        let mut leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("leaf params");
        leaf.distinguished_name
            .push(DnType::CommonName, "push double");
        let leaf_cert = leaf
            .signed_by(&leaf_key, &ca_cert, &ca_key)
            .expect("leaf certificate");
        let dir = tempfile::tempdir().expect("tempdir");
        let pem_path = dir.path().join("push-ca.pem");
        std::fs::write(&pem_path, ca_cert.pem()).expect("write CA PEM");
        let leaf_cert_path = dir.path().join("leaf.crt");
        std::fs::write(&leaf_cert_path, leaf_cert.pem()).expect("write leaf PEM");
        let leaf_key_path = dir.path().join("leaf.key");
        std::fs::write(&leaf_key_path, leaf_key.serialize_pem()).expect("write leaf key PEM");
        TestCa {
            pem_path,
            leaf_cert_path,
            leaf_key_path,
            _dir: dir,
            leaf_der: leaf_cert.der().clone(),
            leaf_key: leaf_key.serialize_der(),
        }
    }

    fn server_config(&self, alpn: &[&[u8]]) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![self.leaf_der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.leaf_key.clone())),
            )
            .expect("server certificate");
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}

/// A request with its body read.
pub struct Req {
    pub method: hyper::Method,
    pub path: String,
    pub version: hyper::Version,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

pub type Resp = Response<BoxBody<Bytes, std::convert::Infallible>>;

pub fn respond(status: u16, headers: &[(&str, String)], body: impl Into<Bytes>) -> Resp {
    let mut b = Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, v);
    }
    b.body(Full::new(body.into()).boxed()).expect("response")
}

/// How much a flood answer sends at most: far more than a client should read, small enough
/// that a client reading it all does not exhaust the test machine.
pub const FLOOD_BYTES: u64 = 64 << 20;

/// A `status` answer with a body of [`FLOOD_BYTES`] and no length, produced only as fast as
/// the client reads it; `produced` counts the bytes handed to the connection.
pub fn flood(status: u16, produced: Arc<std::sync::atomic::AtomicU64>) -> Resp {
    use std::sync::atomic::Ordering::Relaxed;
    const CHUNK: usize = 64 * 1024;
    let chunk = Bytes::from(vec![b'x'; CHUNK]);
    let frames = futures_util::stream::unfold(0u64, move |sent| {
        let (chunk, produced) = (chunk.clone(), produced.clone());
        async move {
            if sent >= FLOOD_BYTES {
                return None;
            }
            produced.fetch_add(CHUNK as u64, Relaxed);
            let frame = hyper::body::Frame::data(chunk);
            Some((
                Ok::<_, std::convert::Infallible>(frame),
                sent + CHUNK as u64,
            ))
        }
    });
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(BodyExt::boxed(StreamBody::new(frames)))
        .expect("response")
}

/// Serves HTTPS on a free loopback port until the returned task is dropped or aborted.
/// `http2_only` refuses HTTP/1 (ALPN `h2` only, as APNs does).
pub async fn serve<H, F>(
    ca: &TestCa,
    http2_only: bool,
    handler: H,
) -> (SocketAddr, tokio::task::JoinHandle<()>)
where
    H: Fn(Req) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Resp> + Send + 'static,
{
    let alpn: &[&[u8]] = if http2_only {
        &[b"h2"]
    } else {
        &[b"h2", b"http/1.1"]
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(ca.server_config(alpn));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let handler = handler.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let handler = handler.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let req = Req {
                            method: parts.method,
                            path: parts.uri.path().to_owned(),
                            version: parts.version,
                            headers: parts.headers,
                            body,
                        };
                        Ok::<_, std::convert::Infallible>(handler(req).await)
                    }
                });
                let mut builder =
                    hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                if http2_only {
                    builder = builder.http2_only();
                }
                let _ = builder.serve_connection(TokioIo::new(tls), service).await;
            });
        }
    });
    (addr, task)
}

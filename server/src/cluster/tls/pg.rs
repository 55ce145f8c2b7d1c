//! TLS to PostgreSQL: `sslmode` and `sslrootcert` as libpq reads them from `--postgres-url`,
//! and a `tokio-postgres` connector on rustls.
//!
//! | `sslmode` | the connection |
//! |---|---|
//! | `disable` | plain |
//! | `prefer` (the default) | TLS if the server offers it, else plain; nothing verified |
//! | `require` | TLS or no connection; nothing verified (with `sslrootcert=`: as `verify-ca`) |
//! | `verify-ca` | TLS, the chain verified against the roots |
//! | `verify-full` | TLS, the chain and the host name verified |
//!
//! The roots are `sslrootcert=` (a PEM file) if given, else the built-in ones (see the
//! parent module). Both options are read from a URL (`postgres://…?sslmode=…`); the rest of
//! the URL goes to `tokio-postgres` as it is.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::SslMode as DriverMode;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

/// How much TLS `--postgres-url` asks for (`sslmode=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(v: &str) -> Result<SslMode, String> {
        Ok(match v {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => {
                return Err(format!(
                    "--postgres-url: sslmode={v:?} is not one of disable, prefer, require, \
                     verify-ca, verify-full"
                ));
            }
        })
    }
}

/// `--postgres-url` read: the driver's configuration, and the TLS it asks for.
#[derive(Clone)]
pub struct PgTarget {
    pub config: tokio_postgres::Config,
    pub mode: SslMode,
    pub root_cert: Option<PathBuf>,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The driver's config holds the password.
        f.debug_struct("PgTarget")
            .field("mode", &self.mode)
            .field("root_cert", &self.root_cert)
            .finish_non_exhaustive()
    }
}

/// Reads `--postgres-url`; an error says what is wrong without repeating the URL (it may
/// hold a password).
pub fn parse(url: &str) -> Result<PgTarget, String> {
    let (rest, mode, root_cert) = take_tls_params(url)?;
    let mode = match (mode, &root_cert) {
        (None, None) => SslMode::Prefer,
        (None | Some(SslMode::Disable | SslMode::Prefer), Some(_)) => {
            return Err(
                "--postgres-url: sslrootcert= verifies nothing without sslmode=verify-full \
                 (or verify-ca, require)"
                    .into(),
            );
        }
        (Some(SslMode::Require), Some(_)) => SslMode::VerifyCa,
        (Some(m), _) => m,
    };
    let mut config: tokio_postgres::Config = rest
        .parse()
        .map_err(|e| format!("--postgres-url is not a PostgreSQL URL: {e}"))?;
    config.ssl_mode(match mode {
        SslMode::Disable => DriverMode::Disable,
        SslMode::Prefer => DriverMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => DriverMode::Require,
    });
    Ok(PgTarget {
        config,
        mode,
        root_cert,
    })
}

/// Removes `sslmode` and `sslrootcert` from a `postgres://` URL's query (the driver knows
/// neither `verify-*` nor `sslrootcert`) and returns them, decoded. A string that is not a
/// URL (the `key=value` form) is returned as it is.
fn take_tls_params(url: &str) -> Result<(String, Option<SslMode>, Option<PathBuf>), String> {
    let is_url = ["postgres://", "postgresql://"]
        .iter()
        .any(|p| url.starts_with(p));
    // The query starts at the first `?` after the credentials, as the driver reads it.
    let creds_end = url.find('@').map_or(0, |i| i + 1);
    let Some(q) = url[creds_end..].find('?').filter(|_| is_url) else {
        return Ok((url.to_owned(), None, None));
    };
    let (head, query) = url.split_at(creds_end + q);
    let (mut mode, mut root_cert) = (None, None);
    let mut kept = Vec::new();
    for pair in query[1..].split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "sslmode" => mode = Some(SslMode::parse(&decode(v)?)?),
            "sslrootcert" => root_cert = Some(PathBuf::from(decode(v)?)),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        head.to_owned()
    } else {
        format!("{head}?{}", kept.join("&"))
    };
    Ok((rest, mode, root_cert))
}

/// Percent-decoding of a query value.
fn decode(v: &str) -> Result<String, String> {
    let bad = || format!("--postgres-url: {v:?} is not a valid URL query value");
    let mut out = Vec::with_capacity(v.len());
    let mut bytes = v.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next().ok_or_else(bad)?, bytes.next().ok_or_else(bad)?];
            let hex = std::str::from_utf8(&hex).map_err(|_| bad())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

impl PgTarget {
    /// The connector for this target's `sslmode` (reading `sslrootcert=` if given).
    pub fn connector(&self) -> Result<RustlsConnect, String> {
        let ca = self
            .root_cert
            .as_deref()
            .map(|p| (p, "--postgres-url sslrootcert="));
        let builder = ClientConfig::builder_with_provider(super::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS to PostgreSQL: {e}"))?;
        let config = match self.mode {
            SslMode::Disable | SslMode::Prefer | SslMode::Require => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Unverified))
                .with_no_client_auth(),
            SslMode::VerifyCa => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly(webpki(ca)?)))
                .with_no_client_auth(),
            SslMode::VerifyFull => builder
                .with_webpki_verifier(webpki(ca)?)
                .with_no_client_auth(),
        };
        Ok(RustlsConnect(tokio_rustls::TlsConnector::from(Arc::new(
            config,
        ))))
    }
}

fn webpki(ca: Option<(&Path, &str)>) -> Result<Arc<WebPkiServerVerifier>, String> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(super::roots(ca)?), super::provider())
        .build()
        .map_err(|e| format!("TLS to PostgreSQL: {e}"))
}

/// `sslmode=prefer|require`: any certificate, though the handshake's signatures are still
/// checked (the session is encrypted to whoever holds the key of the certificate shown).
#[derive(Debug)]
struct Unverified;

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &super::provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &super::provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        super::provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `sslmode=verify-ca`: the chain verified, the host name not.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The pool's TLS connector: rustls under `tokio-postgres`.
#[derive(Clone)]
pub struct RustlsConnect(tokio_rustls::TlsConnector);

impl<S> MakeTlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsHandshake;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<RustlsHandshake> {
        let name = ServerName::try_from(domain.to_owned()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{domain:?} is not a host name TLS can verify"),
            )
        })?;
        Ok(RustlsHandshake {
            connector: self.0.clone(),
            name,
        })
    }
}

/// One connection's handshake, to the host it was made for.
pub struct RustlsHandshake {
    connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for RustlsHandshake
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let tls = self.connector.connect(self.name, stream).await?;
            Ok(RustlsStream(tls))
        })
    }
}

/// A connection to PostgreSQL over TLS.
pub struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        // SCRAM runs without channel binding (the driver's default `prefer` allows it).
        ChannelBinding::none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(url: &str) -> Result<SslMode, String> {
        parse(url).map(|t| t.mode)
    }

    #[test]
    fn sslmode_is_read_from_the_url_and_defaults_to_prefer() {
        assert_eq!(mode("postgres://u@h/db"), Ok(SslMode::Prefer));
        for (v, want) in [
            ("disable", SslMode::Disable),
            ("prefer", SslMode::Prefer),
            ("require", SslMode::Require),
            ("verify-ca", SslMode::VerifyCa),
            ("verify-full", SslMode::VerifyFull),
        ] {
            assert_eq!(mode(&format!("postgres://u@h/db?sslmode={v}")), Ok(want));
        }
    }

    #[test]
    fn an_unknown_sslmode_is_refused_by_name_without_the_password() {
        let e = mode("postgres://u:s3cret@h/db?sslmode=verify-everything").unwrap_err();
        assert!(e.contains("sslmode=\"verify-everything\""), "{e}");
        assert!(e.contains("verify-full"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
    }

    #[test]
    fn sslrootcert_is_taken_out_of_the_url_and_decoded_and_other_options_stay() {
        let t = parse(
            "postgresql://u:p%40ss@h:5433/db?application_name=x&sslrootcert=%2Fetc%2Fca%20x.pem\
             &sslmode=verify-full&connect_timeout=4",
        )
        .unwrap();
        assert_eq!(t.mode, SslMode::VerifyFull);
        assert_eq!(t.root_cert, Some(PathBuf::from("/etc/ca x.pem")));
        assert_eq!(t.config.get_application_name(), Some("x"));
        assert_eq!(
            t.config.get_connect_timeout(),
            Some(&std::time::Duration::from_secs(4))
        );
        assert_eq!(t.config.get_password(), Some(&b"p@ss"[..]));
        assert_eq!(t.config.get_ssl_mode(), DriverMode::Require);
    }

    #[test]
    fn require_with_a_root_certificate_verifies_the_chain_as_libpq_does() {
        assert_eq!(
            mode("postgres://h/db?sslmode=require&sslrootcert=/ca.pem"),
            Ok(SslMode::VerifyCa)
        );
    }

    #[test]
    fn a_root_certificate_that_would_verify_nothing_is_refused() {
        for url in [
            "postgres://h/db?sslrootcert=/ca.pem",
            "postgres://h/db?sslmode=prefer&sslrootcert=/ca.pem",
            "postgres://h/db?sslmode=disable&sslrootcert=/ca.pem",
        ] {
            let e = mode(url).unwrap_err();
            assert!(e.contains("sslrootcert="), "{url}: {e}");
        }
    }

    #[test]
    fn a_missing_or_empty_root_certificate_file_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        let missing = dir.path().join("missing.pem");
        for (path, says) in [
            (&empty, "holds no PEM certificate"),
            (&missing, "cannot read"),
        ] {
            let url = format!(
                "postgres://h/db?sslmode=verify-full&sslrootcert={}",
                path.display()
            );
            let e = parse(&url).unwrap().connector().err().unwrap();
            assert!(e.contains("sslrootcert=") && e.contains(says), "{e}");
        }
    }
}

//! TLS to Redis: the clients every connection a node makes to Redis comes from (commands and
//! scripts, pub/sub, each node of a Redis Cluster), so each one is TLS exactly when its URL
//! is `rediss://`, and then trusts `--redis-ca-file` if given (else the built-in roots) and
//! checks the host name.

use std::path::Path;

use redis::TlsCertificates;
use redis::cluster::ClusterClientBuilder;

use crate::cluster::hot::redacted;

/// The TLS settings of `--redis-url` and `--redis-ca-file`, checked against each other.
#[derive(Clone)]
pub struct RedisTls {
    certs: Option<TlsCertificates>,
}

/// Checks what needs no file: `--redis-ca-file` goes with `rediss://` URLs only, and TLS
/// that verifies nothing (`#insecure`) is not offered.
pub fn check(urls: &[String], ca_file: Option<&Path>) -> Result<(), String> {
    for url in urls {
        let tls = url.starts_with("rediss://");
        if ca_file.is_some() && !tls {
            return Err(format!(
                "--redis-ca-file is for TLS, but {} is not a rediss:// URL",
                redacted(url)
            ));
        }
        if tls && url.ends_with("#insecure") {
            return Err(format!(
                "--redis-url {}: #insecure (TLS without verification) is not supported; give \
                 the server's CA with --redis-ca-file",
                redacted(url)
            ));
        }
    }
    Ok(())
}

impl RedisTls {
    /// Reads `--redis-ca-file` (its PEM must hold a certificate).
    pub fn new(urls: &[String], ca_file: Option<&Path>) -> Result<RedisTls, String> {
        check(urls, ca_file)?;
        let certs = match ca_file {
            None => None,
            Some(path) => {
                let (pem, _) = super::read_ca(path, "--redis-ca-file")?;
                Some(TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                })
            }
        };
        Ok(RedisTls { certs })
    }

    /// A client of one Redis (or one seed node, for pub/sub).
    pub fn client(&self, url: &str) -> Result<redis::Client, String> {
        let client = match &self.certs {
            None => redis::Client::open(url),
            Some(certs) => redis::Client::build_with_tls(url, certs.clone()),
        };
        client.map_err(|e| format!("--redis-url {} is not a Redis URL: {e}", redacted(url)))
    }

    /// A Redis Cluster client's builder, with the CA to trust on every node if given.
    pub fn cluster(&self, builder: ClusterClientBuilder) -> ClusterClientBuilder {
        match &self.certs {
            None => builder,
            Some(certs) => builder.certs(certs.clone()),
        }
    }
}

/// `cannot reach {what}: {e}`, with a hint when plain `urls` met a connection the server
/// cut, as a Redis that takes TLS only does to a client that does not start TLS.
pub fn cannot_reach(what: &str, urls: &[String], e: &redis::RedisError) -> String {
    let plain = urls.iter().all(|u| !u.starts_with("rediss://"));
    let cut = (e.is_connection_dropped() || e.is_io_error()) && !e.is_connection_refusal();
    let hint = if plain && cut {
        " (a Redis that takes TLS only needs a rediss:// URL)"
    } else {
        ""
    };
    format!("cannot reach {what}: {e}{hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_goes_with_rediss_urls_only() {
        let ca = Path::new("/ca.pem");
        let e = check(&["redis://:s3cret@h:6379/".into()], Some(ca)).unwrap_err();
        assert!(
            e.contains("--redis-ca-file") && e.contains("rediss://"),
            "{e}"
        );
        assert!(!e.contains("s3cret"), "{e}");
        assert!(check(&["rediss://h:6380/".into()], Some(ca)).is_ok());
        assert!(check(&["rediss://h:6380/".into()], None).is_ok());
        assert!(check(&["redis://h:6379/".into()], None).is_ok());
    }

    #[test]
    fn tls_without_verification_is_refused() {
        let e = check(&["rediss://h:6380/#insecure".into()], None).unwrap_err();
        assert!(e.contains("#insecure"), "{e}");
    }
}

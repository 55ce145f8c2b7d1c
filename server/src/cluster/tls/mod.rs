//! TLS to the cluster's stores: how a node reaches PostgreSQL (`sslmode=` in
//! `--postgres-url`) and Redis (`rediss://` in `--redis-url`) over TLS, and what it trusts.
//!
//! Guarantees:
//! - One rule of trust for both stores: a CA file given (`sslrootcert=` for PostgreSQL,
//!   `--redis-ca-file` for Redis) is what the store's certificate must chain to, as libpq and
//!   `redis-cli --cacert` take it; without one, the built-in roots (Mozilla's, the ones the
//!   push client trusts) are.
//! - Wherever a chain is verified, the host name in the URL is checked against the
//!   certificate too (`sslmode=verify-full`, `rediss://`); only `sslmode=verify-ca` checks
//!   the chain alone, and `sslmode=require` encrypts without verifying, as in libpq.
//! - A setting that cannot be honoured is refused at start with a message that names the flag
//!   (an unknown `sslmode`, a CA file that cannot be read or holds no certificate, a CA file
//!   for a `redis://` URL), never quietly downgraded to less than was asked for.
//! - rustls on ring only, the TLS stack the HTTP client already brings.
//!
//! # Files
//! - `pg.rs`: `sslmode` and `sslrootcert` read from `--postgres-url`, and the connector the
//!   pool's connections go through.
//! - `hot.rs`: the Redis clients every connection to Redis is made from (scripts, commands,
//!   pub/sub, a Redis Cluster's nodes).

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

pub mod hot;
pub mod pg;

/// The certificates of a CA file (PEM): its text and the certificates in it; an error that
/// names `what` (the flag or option that gave the file) if it cannot be read or holds none.
fn read_ca(path: &Path, what: &str) -> Result<(Vec<u8>, Vec<CertificateDer<'static>>), String> {
    let pem = std::fs::read(path)
        .map_err(|e| format!("{what}: cannot read the CA file {}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what}: {} is not a PEM file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{what}: {} holds no PEM certificate",
            path.display()
        ));
    }
    Ok((pem, certs))
}

/// What a store's certificate must chain to: the CA file's certificates if one is given,
/// else the built-in roots.
fn roots(ca: Option<(&Path, &str)>) -> Result<RootCertStore, String> {
    let Some((path, what)) = ca else {
        return Ok(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        });
    };
    let (_, certs) = read_ca(path, what)?;
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| {
            format!(
                "{what}: {} holds a certificate that is not a CA: {e}",
                path.display()
            )
        })?;
    }
    Ok(roots)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

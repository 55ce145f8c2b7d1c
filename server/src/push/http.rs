//! The HTTP side every provider shares: one client per provider, as [`crate::outbound`]
//! builds them (the built-in Mozilla roots plus `--push-ca-file`, no redirects, no proxy from
//! the environment, bounded timeouts), answers read within the outbound cap, and reading
//! `Retry-After`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::{ATTEMPT_TIMEOUT, PushError};
use crate::outbound::{self, ClientOptions, PublicOnly, ReadError};

/// Parses every certificate in a PEM file; a file without one is an error.
pub fn load_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("--push-ca-file {}: {e}", path.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("--push-ca-file {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "--push-ca-file {}: no PEM certificate in it",
            path.display()
        ));
    }
    Ok(certs)
}

/// A provider's client: the outbound rules' client with the push attempt timeout.
pub fn client(
    roots: &[reqwest::Certificate],
    http2_only: bool,
    resolver: Option<Arc<PublicOnly>>,
) -> Result<reqwest::Client, String> {
    outbound::client(ClientOptions {
        roots,
        http2_only,
        resolver,
        timeout: ATTEMPT_TIMEOUT,
    })
}

/// The body of an answer that was not a success, as text, read within the outbound cap.
/// One over the cap is a failure that is not retried: the answer is not what a push service
/// sends.
pub async fn read_answer(resp: reqwest::Response) -> Result<String, PushError> {
    let status = resp.status();
    match outbound::read_capped(resp).await {
        Ok(body) => Ok(String::from_utf8_lossy(&body).into_owned()),
        Err(e @ ReadError::TooLarge) => {
            Err(PushError::Failed(format!("answered {status} with {e}")))
        }
        Err(ReadError::Transport(e)) => Err(PushError::busy(e.to_string())),
    }
}

/// `Retry-After` in seconds or as an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let ms = at.timestamp_millis() - chrono::Utc::now().timestamp_millis();
    Some(Duration::from_millis(ms.max(0) as u64))
}

/// The error for a sending failure before any answer (connect, TLS, timeout).
pub fn transport(e: reqwest::Error) -> PushError {
    PushError::busy(without_url(e).to_string())
}

/// `429` and `5xx` are worth retrying; anything else that is not a success is not.
pub fn busy_or_failed(status: reqwest::StatusCode, headers: &HeaderMap, body: &str) -> PushError {
    let detail = format!("answered {status}: {}", snippet(body));
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        PushError::Busy {
            detail,
            retry_after: retry_after(headers),
        }
    } else {
        PushError::Failed(detail)
    }
}

/// The start of a body, for a log line.
pub fn snippet(body: &str) -> &str {
    let end = body.char_indices().nth(200).map_or(body.len(), |(i, _)| i);
    &body[..end]
}

/// Device-chosen URLs carry tokens; keep them out of logs.
fn without_url(e: reqwest::Error) -> reqwest::Error {
    e.without_url()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO), "a past date: now");
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn only_429_and_5xx_are_retried() {
        let h = HeaderMap::new();
        for (code, busy) in [
            (429, true),
            (500, true),
            (503, true),
            (400, false),
            (403, false),
        ] {
            let e = busy_or_failed(reqwest::StatusCode::from_u16(code).unwrap(), &h, "");
            assert_eq!(matches!(e, PushError::Busy { .. }), busy, "{code}");
        }
    }
}

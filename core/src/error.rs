//! Two error layers, as in application-services: a rich internal [`Error`] that keeps the
//! source (HTTP status and code, SQLite error, transport failure) for classification and logs,
//! and the small public [`ClientError`] that crosses the FFI. The mapping lives in one place,
//! `impl From<Error> for ClientError`.

use std::time::Duration;

use presence_protocol::{ErrorBody, ErrorCode};
use serde::Deserialize;

use crate::transport::TransportError;

/// The public error. Each variant maps one to one onto the FFI's `PresenceError`; each carries
/// a human `detail` (never a field called `message`: it breaks the Kotlin bindings).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached or did not answer in time. Retrying later may work.
    #[error("network error: {detail}")]
    Network { detail: String },
    /// Wrong credentials, or not logged in.
    #[error("unauthorized: {detail}")]
    Unauthorized { detail: String },
    /// The session ended (logout elsewhere, expiry, replaced, removed): log in again.
    #[error("session expired: {detail}")]
    SessionExpired { detail: String },
    /// The caller passed something unusable: a malformed push payload, an unknown op id, a
    /// value the server rejected (422).
    #[error("invalid input: {detail}")]
    InvalidInput { detail: String },
    /// The local database failed (disk full, corrupt, newer schema).
    #[error("storage error: {detail}")]
    Storage { detail: String },
    /// The server failed (5xx), refused (other 4xx), rate-limited, or answered nonsense.
    #[error("server error: {detail}")]
    Server { detail: String },
    /// A bug or a closed client.
    #[error("internal error: {detail}")]
    Internal { detail: String },
}

impl ClientError {
    /// A stable snake_case name of the variant, for logs and the CLI.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientError::Network { .. } => "network",
            ClientError::Unauthorized { .. } => "unauthorized",
            ClientError::SessionExpired { .. } => "session_expired",
            ClientError::InvalidInput { .. } => "invalid_input",
            ClientError::Storage { .. } => "storage",
            ClientError::Server { .. } => "server",
            ClientError::Internal { .. } => "internal",
        }
    }

    pub fn detail(&self) -> &str {
        match self {
            ClientError::Network { detail }
            | ClientError::Unauthorized { detail }
            | ClientError::SessionExpired { detail }
            | ClientError::InvalidInput { detail }
            | ClientError::Storage { detail }
            | ClientError::Server { detail }
            | ClientError::Internal { detail } => detail,
        }
    }
}

/// A server's error code, typed. A code this build does not know (a newer server's) is kept
/// as its text: it still classifies by HTTP status and still shows in `last_error`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub(crate) enum ServerCode {
    Known(ErrorCode),
    Other(String),
}

impl ServerCode {
    pub(crate) fn parse(code: &str) -> ServerCode {
        serde_json::from_value(serde_json::Value::String(code.to_owned()))
            .unwrap_or_else(|_| ServerCode::Other(code.to_owned()))
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            ServerCode::Known(c) => c.as_str(),
            ServerCode::Other(s) => s,
        }
    }
}

impl std::fmt::Display for ServerCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The code shown in `last_error` while a session is expired (the snapshot contract's name).
pub(crate) const SESSION_EXPIRED: &str = "session_expired";

/// The internal error: keeps enough to classify (see [`ErrorClass`]) and to log.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// A non-2xx answer with the protocol's error body (or a synthesized one).
    #[error("HTTP {status} {code}: {detail}")]
    Http {
        status: u16,
        code: ServerCode,
        detail: String,
        retry_after: Option<Duration>,
    },
    /// A non-2xx answer without the protocol's error body: not the presence server talking
    /// (a proxy, a captive portal, a wrong URL), so nothing to conclude about the request.
    #[error("unexpected HTTP {status} (not a presence server answer?): {detail}")]
    UnexpectedStatus {
        status: u16,
        detail: String,
        retry_after: Option<Duration>,
    },
    /// A 2xx answer whose body is not what the protocol promises.
    #[error("bad response from server: {0}")]
    BadResponse(String),
    #[error("database: {0}")]
    Storage(#[from] rusqlite::Error),
    #[error("database: {0}")]
    StorageOther(String),
    #[error("{0}")]
    InvalidInput(String),
    #[error("not logged in")]
    NotLoggedIn,
    /// This device's session has ended (found out earlier, from the server): a call that
    /// needs it cannot run until the user logs in again. Local: no request was made.
    #[error("session expired: {0}")]
    SessionExpired(String),
    #[error("no server URL configured: pass one or log in with one first")]
    NoServer,
    #[error("the client is shut down")]
    Shutdown,
    #[error("{0}")]
    Internal(String),
}

/// How the outbox and the other loops react to a failure (see the [`outbox`](crate::outbox)
/// essay).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorClass {
    /// Network failure, timeout, 5xx, 429, garbled success: keep and retry later.
    Transient { retry_after: Option<Duration> },
    /// 401: the session is gone; retrying with the same token cannot help.
    Unauthorized,
    /// Any other 4xx: the server refuses this request as it stands.
    Permanent,
    /// Not a server answer at all (local bug, storage).
    Local,
}

impl Error {
    pub(crate) fn http(status: u16, body: &[u8], retry_after: Option<Duration>) -> Error {
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(b) => Error::Http {
                status,
                code: ServerCode::parse(&b.error.code),
                detail: b.error.detail,
                retry_after,
            },
            Err(_) => Error::UnexpectedStatus {
                status,
                detail: String::from_utf8_lossy(body).chars().take(200).collect(),
                retry_after,
            },
        }
    }

    pub(crate) fn class(&self) -> ErrorClass {
        match self {
            Error::Transport(_) | Error::BadResponse(_) => {
                ErrorClass::Transient { retry_after: None }
            }
            Error::UnexpectedStatus { retry_after, .. } => ErrorClass::Transient {
                retry_after: *retry_after,
            },
            Error::Http {
                status,
                retry_after,
                ..
            } => match *status {
                401 => ErrorClass::Unauthorized,
                // Whatever its code, a 503 (`unavailable`: draining, overloaded) is the
                // server asking to come back later.
                429 => ErrorClass::Transient {
                    retry_after: *retry_after,
                },
                // 408 is the server giving up on a slow request: the network's fault.
                408 => ErrorClass::Transient {
                    retry_after: *retry_after,
                },
                400..=499 => ErrorClass::Permanent,
                _ => ErrorClass::Transient {
                    retry_after: *retry_after,
                },
            },
            Error::SessionExpired(_) => ErrorClass::Unauthorized,
            _ => ErrorClass::Local,
        }
    }

    /// The `{code, detail}` pair shown in the snapshot's `last_error` and a wedged op.
    pub(crate) fn code_and_detail(&self) -> (String, String) {
        match self {
            Error::Http { code, detail, .. } => (code.as_str().to_owned(), detail.clone()),
            Error::Transport(t) => (t.kind.code().to_owned(), t.detail.clone()),
            Error::UnexpectedStatus { status, .. } => (format!("http_{status}"), self.to_string()),
            Error::BadResponse(d) => ("bad_response".to_owned(), d.clone()),
            Error::Storage(e) => ("storage".to_owned(), e.to_string()),
            Error::StorageOther(d) => ("storage".to_owned(), d.clone()),
            Error::InvalidInput(d) => ("invalid_input".to_owned(), d.clone()),
            Error::NotLoggedIn => ("not_logged_in".to_owned(), self.to_string()),
            Error::SessionExpired(d) => (SESSION_EXPIRED.to_owned(), d.clone()),
            Error::NoServer => ("no_server".to_owned(), self.to_string()),
            Error::Shutdown => ("shutdown".to_owned(), self.to_string()),
            Error::Internal(d) => ("internal".to_owned(), d.clone()),
        }
    }
}

impl From<Error> for ClientError {
    fn from(e: Error) -> Self {
        let detail = e.to_string();
        match e {
            Error::Transport(_) => ClientError::Network { detail },
            Error::Http { status, code, .. } => match (status, code) {
                (401, ServerCode::Known(ErrorCode::SessionExpired)) => {
                    ClientError::SessionExpired { detail }
                }
                (401, _) => ClientError::Unauthorized { detail },
                (422 | 400 | 404 | 409 | 413 | 415, _) => ClientError::InvalidInput { detail },
                _ => ClientError::Server { detail },
            },
            Error::BadResponse(_) | Error::UnexpectedStatus { .. } => {
                ClientError::Server { detail }
            }
            Error::Storage(_) | Error::StorageOther(_) => ClientError::Storage { detail },
            Error::InvalidInput(_) | Error::NoServer => ClientError::InvalidInput { detail },
            Error::NotLoggedIn => ClientError::Unauthorized { detail },
            Error::SessionExpired(_) => ClientError::SessionExpired { detail },
            Error::Shutdown | Error::Internal(_) => ClientError::Internal { detail },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::TransportErrorKind;

    #[test]
    fn codes_are_typed_and_unknown_ones_are_kept_and_classified_by_status() {
        let e = Error::http(
            401,
            br#"{"error":{"code":"session_expired","detail":"ended"}}"#,
            None,
        );
        assert!(matches!(
            &e,
            Error::Http {
                code: ServerCode::Known(ErrorCode::SessionExpired),
                ..
            }
        ));
        // A newer server's code: kept as text, classified by its status.
        let e = Error::http(
            503,
            br#"{"error":{"code":"unavailable","detail":"draining"}}"#,
            Some(Duration::from_secs(2)),
        );
        let (code, _) = e.code_and_detail();
        assert_eq!(code, "unavailable");
        assert_eq!(
            e.class(),
            ErrorClass::Transient {
                retry_after: Some(Duration::from_secs(2))
            }
        );
        assert!(matches!(ClientError::from(e), ClientError::Server { .. }));
        let e = Error::http(422, br#"{"error":{"code":"brand_new","detail":"x"}}"#, None);
        assert_eq!(e.class(), ErrorClass::Permanent);
        assert_eq!(ServerCode::parse("brand_new").as_str(), "brand_new");
        assert_eq!(
            ServerCode::parse("invalid_field"),
            ServerCode::Known(ErrorCode::InvalidField)
        );
    }

    #[test]
    fn a_session_known_to_be_over_is_a_local_error_not_an_http_one() {
        let e = Error::SessionExpired("log in again".into());
        assert_eq!(e.class(), ErrorClass::Unauthorized);
        assert_eq!(e.code_and_detail().0, SESSION_EXPIRED);
        assert!(matches!(
            ClientError::from(e),
            ClientError::SessionExpired { .. }
        ));
    }

    #[test]
    fn status_codes_classify_like_the_send_queue() {
        let h = |s: u16| Error::http(s, br#"{"error":{"code":"x","detail":"y"}}"#, None);
        assert_eq!(h(500).class(), ErrorClass::Transient { retry_after: None });
        assert_eq!(h(503).class(), ErrorClass::Transient { retry_after: None });
        assert_eq!(h(401).class(), ErrorClass::Unauthorized);
        assert_eq!(h(422).class(), ErrorClass::Permanent);
        assert_eq!(h(404).class(), ErrorClass::Permanent);
        let ra = Some(Duration::from_secs(7));
        assert_eq!(
            Error::http(429, b"", ra).class(),
            ErrorClass::Transient { retry_after: ra }
        );
        let t = Error::Transport(TransportError::new(TransportErrorKind::Connect, "refused"));
        assert_eq!(t.class(), ErrorClass::Transient { retry_after: None });
    }

    #[test]
    fn public_errors_keep_the_server_code_in_their_detail() {
        let e = Error::http(
            422,
            br#"{"error":{"code":"invalid_field","detail":"status"}}"#,
            None,
        );
        let c = ClientError::from(e);
        assert_eq!(c.kind(), "invalid_input");
        assert!(c.detail().contains("invalid_field"), "{c}");
        let e = Error::http(
            401,
            br#"{"error":{"code":"session_expired","detail":"ended"}}"#,
            None,
        );
        assert!(matches!(
            ClientError::from(e),
            ClientError::SessionExpired { .. }
        ));
        let e = Error::http(
            401,
            br#"{"error":{"code":"invalid_credentials","detail":"no"}}"#,
            None,
        );
        assert!(matches!(
            ClientError::from(e),
            ClientError::Unauthorized { .. }
        ));
    }

    #[test]
    fn an_answer_without_the_protocol_error_body_is_transient_whatever_its_status() {
        // A proxy or a wrong URL: nothing the presence server said about the request.
        for status in [404, 401, 422, 502] {
            let e = Error::http(status, b"<html>nope</html>", None);
            assert_eq!(
                e.class(),
                ErrorClass::Transient { retry_after: None },
                "{status}"
            );
            let (code, detail) = e.code_and_detail();
            assert_eq!(code, format!("http_{status}"));
            assert!(detail.contains("nope"), "{detail}");
            assert!(matches!(ClientError::from(e), ClientError::Server { .. }));
        }
    }
}

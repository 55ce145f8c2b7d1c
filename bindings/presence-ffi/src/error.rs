//! [`PresenceError`]: the one error that crosses the FFI.
//!
//! It mirrors presence-core's public `ClientError` variant for variant. Each carries a human
//! `detail`; there is deliberately no field named `message`, which would clash with
//! `Throwable.message` in the generated Kotlin. Kotlin sees it as `PresenceException`
//! (uniffi's naming for errors), Swift as `PresenceError`.

use presence_core::ClientError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum PresenceError {
    /// The server could not be reached or did not answer in time. Retrying later may work.
    #[error("network error: {detail}")]
    Network { detail: String },
    /// Wrong credentials, or not logged in.
    #[error("unauthorized: {detail}")]
    Unauthorized { detail: String },
    /// The session ended (logout elsewhere, expiry, replaced, removed): log in again.
    #[error("session expired: {detail}")]
    SessionExpired { detail: String },
    /// Something unusable was passed: a malformed push payload, an unknown op id, a value the
    /// server rejected.
    #[error("invalid input: {detail}")]
    InvalidInput { detail: String },
    /// The local database failed (disk full, corrupt, newer schema).
    #[error("storage error: {detail}")]
    Storage { detail: String },
    /// The server failed, refused, rate-limited, or answered nonsense.
    #[error("server error: {detail}")]
    Server { detail: String },
    /// A bug, a panic, a failing callback, or a client that was shut down.
    #[error("internal error: {detail}")]
    Internal { detail: String },
}

impl From<ClientError> for PresenceError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Network { detail } => PresenceError::Network { detail },
            ClientError::Unauthorized { detail } => PresenceError::Unauthorized { detail },
            ClientError::SessionExpired { detail } => PresenceError::SessionExpired { detail },
            ClientError::InvalidInput { detail } => PresenceError::InvalidInput { detail },
            ClientError::Storage { detail } => PresenceError::Storage { detail },
            ClientError::Server { detail } => PresenceError::Server { detail },
            ClientError::Internal { detail } => PresenceError::Internal { detail },
        }
    }
}

/// A foreign callback threw something that is not a `PresenceError`.
impl From<uniffi::UnexpectedUniFFICallbackError> for PresenceError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        PresenceError::Internal {
            detail: format!("callback failed: {}", e.reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_error_keeps_its_kind_and_detail() {
        let cases = [
            (
                ClientError::Network { detail: "a".into() },
                PresenceError::Network { detail: "a".into() },
            ),
            (
                ClientError::Unauthorized { detail: "b".into() },
                PresenceError::Unauthorized { detail: "b".into() },
            ),
            (
                ClientError::SessionExpired { detail: "c".into() },
                PresenceError::SessionExpired { detail: "c".into() },
            ),
            (
                ClientError::InvalidInput { detail: "d".into() },
                PresenceError::InvalidInput { detail: "d".into() },
            ),
            (
                ClientError::Storage { detail: "e".into() },
                PresenceError::Storage { detail: "e".into() },
            ),
            (
                ClientError::Server { detail: "f".into() },
                PresenceError::Server { detail: "f".into() },
            ),
            (
                ClientError::Internal { detail: "g".into() },
                PresenceError::Internal { detail: "g".into() },
            ),
        ];
        for (from, to) in cases {
            assert_eq!(PresenceError::from(from), to);
        }
    }
}

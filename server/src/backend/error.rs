//! The error of the backend seam: what went wrong, in the domain's words, with no HTTP status
//! and no storage type in it. The HTTP layer maps each kind to the contract's code once
//! (`From<BackendError> for ApiError`); a storage failure reaches it only as `Storage`, its
//! cause logged where it happened.

use std::fmt;

/// Why an operation of the seam did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendError {
    /// No such account, agent, session, widget... (`what` names it).
    NotFound(&'static str),
    /// The change contradicts what is stored (a taken slug, the last owner).
    Conflict(String),
    /// The caller's role does not allow this change (an admin touching an owner).
    Forbidden(String),
    /// A field of the request is out of bounds; `detail` starts with the field's name.
    InvalidField { field: String, detail: String },
    /// No session has this token.
    UnknownToken,
    /// The session this token opened has ended or lapsed.
    SessionEnded,
    /// Wrong account, email or password (which one is never said).
    InvalidCredentials,
    /// The store or a resource the operation needs is out of reach or saturated right now;
    /// retry after `retry_after_secs`.
    Unavailable {
        detail: String,
        retry_after_secs: u64,
    },
    /// The store failed; the cause was logged.
    Storage,
}

pub type BackendResult<T> = Result<T, BackendError>;

impl BackendError {
    pub fn not_found(what: &'static str) -> Self {
        BackendError::NotFound(what)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        BackendError::Conflict(detail.into())
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        BackendError::Forbidden(detail.into())
    }

    pub fn invalid_field(field: &str, why: impl fmt::Display) -> Self {
        BackendError::InvalidField {
            field: field.to_owned(),
            detail: format!("{field}: {why}"),
        }
    }

    pub fn session_expired() -> Self {
        BackendError::SessionEnded
    }

    pub fn unauthorized() -> Self {
        BackendError::UnknownToken
    }

    pub fn unavailable(detail: impl Into<String>, retry_after_secs: u64) -> Self {
        BackendError::Unavailable {
            detail: detail.into(),
            retry_after_secs,
        }
    }

    /// Logs the cause (a storage or encoding failure) and hides it from the caller.
    pub fn internal(cause: impl fmt::Display) -> Self {
        tracing::error!(%cause, "storage failure");
        BackendError::Storage
    }
}

/// `.map_err(storage)` on a store call: logged, then [`BackendError::Storage`].
pub fn storage(e: impl fmt::Display) -> BackendError {
    BackendError::internal(format_args!("storage: {e}"))
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendError::NotFound(what) => write!(f, "{what} not found"),
            BackendError::Conflict(d) | BackendError::Forbidden(d) => f.write_str(d),
            BackendError::InvalidField { detail, .. } => f.write_str(detail),
            BackendError::UnknownToken => f.write_str("missing or unknown bearer token"),
            BackendError::SessionEnded => f.write_str("this session has ended; log in again"),
            BackendError::InvalidCredentials => f.write_str("wrong account, email or password"),
            BackendError::Unavailable { detail, .. } => f.write_str(detail),
            BackendError::Storage => f.write_str("internal error"),
        }
    }
}

impl std::error::Error for BackendError {}

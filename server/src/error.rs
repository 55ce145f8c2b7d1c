//! The one error type every handler returns.
//!
//! Every failure the server reports is `{"error": {"code", "detail"}}` with the HTTP status that
//! PROTOCOL.md pairs with the code. Internal failures (storage, bugs) are logged with their cause
//! and reported as `500 internal` without leaking details to the client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use presence_protocol::{ErrorBody, ErrorCode, ErrorDetail};

use crate::backend::BackendError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub detail: String,
    /// Seconds, for `429 rate_limited` and `503 unavailable`.
    pub retry_after: Option<u64>,
    /// Extra status codes beyond the contract's list (405); the code then stays `bad_request`.
    pub status_override: Option<StatusCode>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        ApiError {
            code,
            detail: detail.into(),
            retry_after: None,
            status_override: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, detail)
    }

    /// `422 invalid_field`; the detail always starts with the field's name.
    pub fn invalid_field(field: &str, why: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::InvalidField, format!("{field}: {why}"))
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, detail)
    }

    pub fn unauthorized() -> Self {
        Self::new(ErrorCode::Unauthorized, "missing or unknown bearer token")
    }

    pub fn session_expired() -> Self {
        Self::new(
            ErrorCode::SessionExpired,
            "this session has ended; log in again",
        )
    }

    pub fn rate_limited(retry_after_secs: u64) -> Self {
        let mut e = Self::new(
            ErrorCode::RateLimited,
            format!("too many failed attempts; retry in {retry_after_secs} s"),
        );
        e.retry_after = Some(retry_after_secs.max(1));
        e
    }

    /// `503 unavailable` with `Retry-After`: a store is unreachable or the server is too busy
    /// to take this request now.
    pub fn unavailable(detail: impl Into<String>, retry_after_secs: u64) -> Self {
        let mut e = Self::new(ErrorCode::Unavailable, detail);
        e.retry_after = Some(retry_after_secs.max(1));
        e
    }

    /// Logs the cause and hides it from the client.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(ErrorCode::Internal, "internal error")
    }

    pub fn status(&self) -> StatusCode {
        self.status_override.unwrap_or_else(|| {
            StatusCode::from_u16(self.code.http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.detail)
    }
}

impl std::error::Error for ApiError {}

/// The one place the seam's errors become the contract's codes.
impl From<BackendError> for ApiError {
    fn from(e: BackendError) -> Self {
        let detail = e.to_string();
        match e {
            BackendError::NotFound(_) => ApiError::new(ErrorCode::NotFound, detail),
            BackendError::Conflict(_) => ApiError::new(ErrorCode::Conflict, detail),
            BackendError::Forbidden(_) => ApiError::new(ErrorCode::Forbidden, detail),
            BackendError::InvalidField { .. } => ApiError::new(ErrorCode::InvalidField, detail),
            BackendError::UnknownToken => ApiError::new(ErrorCode::Unauthorized, detail),
            BackendError::SessionEnded => ApiError::new(ErrorCode::SessionExpired, detail),
            BackendError::InvalidCredentials => {
                ApiError::new(ErrorCode::InvalidCredentials, detail)
            }
            BackendError::Unavailable {
                retry_after_secs, ..
            } => ApiError::unavailable(detail, retry_after_secs),
            BackendError::Storage => ApiError::new(ErrorCode::Internal, detail),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.as_str().to_owned(),
                detail: self.detail.clone(),
            },
        };
        let mut resp = (self.status(), axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

//! [`ApiError`]: every failure of a route as a JSON `{"error": ...}` with a fitting status. Client
//! mistakes carry their message; our own faults get a generic message, the detail goes to the log.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// What went wrong with a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The request is malformed (bad JSON, bad SQL, a refused statement, a bad filter).
    #[error("{0}")]
    BadRequest(String),
    /// No credentials, or credentials that match no token.
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// Valid credentials without the scope the route needs.
    #[error("this credential lacks the `{0}` scope")]
    Forbidden(&'static str),
    /// Valid credentials that may not do this (another cluster's data, an admin-only table).
    #[error("{0}")]
    ForbiddenBecause(String),
    /// What the request names does not exist (an alert id).
    #[error("{0}")]
    NotFound(String),
    /// The request cannot be done with the server as configured.
    #[error("{0}")]
    Conflict(String),
    /// The body is over the size limit (counted after decompression).
    #[error("request body over the {limit_bytes}-byte limit")]
    PayloadTooLarge {
        /// The limit.
        limit_bytes: usize,
    },
    /// A `Content-Encoding` other than gzip or identity.
    #[error("unsupported content encoding `{0}`; send gzip or identity")]
    UnsupportedEncoding(String),
    /// Too much in flight; the client should retry after a pause.
    #[error("{reason}; retry after {retry_after_secs} s")]
    Busy {
        /// Why.
        reason: String,
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// The service cannot take requests now (replaying, shutting down, a failed write).
    #[error("{0}")]
    Unavailable(String),
    /// Our fault; the detail is logged, not returned.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// An internal failure: logged in full, answered with a generic message.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        ApiError::Internal(e.to_string())
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::ForbiddenBecause(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Busy { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<auditlake_engine::Error> for ApiError {
    fn from(e: auditlake_engine::Error) -> Self {
        match e {
            auditlake_engine::Error::Unavailable { reason } => ApiError::Unavailable(reason),
            e if e.is_user_error() => ApiError::BadRequest(e.to_string()),
            e => ApiError::internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Internal(detail) = &self {
            tracing::error!(error = %detail, "request failed");
        }
        let message = self.to_string();
        let body = serde_json::json!({ "error": message });
        let mut response = (status, axum::Json(body)).into_response();
        response
            .extensions_mut()
            .insert(crate::access::Failure(message));
        if let ApiError::Busy {
            retry_after_secs, ..
        } = &self
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        if let ApiError::Unavailable(_) = &self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(5u64));
        }
        if let ApiError::Unauthorized = &self {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"auditlake\""),
            );
        }
        response
    }
}

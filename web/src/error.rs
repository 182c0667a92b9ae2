//! The one error type handlers return, and how it becomes an HTTP answer: JSON
//! (`{"error": "..."}`) with the status that fits.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// What went wrong answering a request.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// No such detection, recording, species, ...
    #[error("{0} not found")]
    NotFound(String),
    /// A parameter or body the server cannot use; the message names it.
    #[error("{0}")]
    BadRequest(String),
    /// A token is missing or wrong.
    #[error("a valid token is required (header `Authorization: Bearer <token>`)")]
    Unauthorized,
    /// The server will not do this (e.g. read a recording file through a symbolic link).
    #[error("{0}")]
    Forbidden(String),
    /// The request is valid but this server cannot do it (e.g. a review on a store
    /// served read-only).
    #[error("{0}")]
    Conflict(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(String),
    /// Anything else on the server's side.
    #[error("{0}")]
    Internal(String),
}

impl WebError {
    pub fn status(&self) -> StatusCode {
        match self {
            WebError::NotFound(_) => StatusCode::NOT_FOUND,
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::Unauthorized => StatusCode::UNAUTHORIZED,
            WebError::Forbidden(_) => StatusCode::FORBIDDEN,
            WebError::Conflict(_) => StatusCode::CONFLICT,
            WebError::Store(_) | WebError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<duckdb::Error> for WebError {
    fn from(error: duckdb::Error) -> Self {
        WebError::Store(error.to_string())
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        if self.status().is_server_error() {
            tracing::error!(error = %self, "dashboard request failed");
        }
        let body = serde_json::json!({ "error": self.to_string() });
        (self.status(), Json(body)).into_response()
    }
}

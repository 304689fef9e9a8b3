//! Errors: start-up/storage failures ([`IdpError`]) and Backend-API errors in Clerk's shape
//! ([`ApiError`]).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The idp could not start or its storage failed.
#[derive(Debug, thiserror::Error)]
pub enum IdpError {
    /// Reading or writing the data directory failed.
    #[error("idp data directory error at {path}: {source}")]
    DataDir {
        /// The file or directory involved.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The SQLite store failed.
    #[error("idp storage error: {0}")]
    Storage(#[from] rusqlite::Error),
    /// The PostgreSQL store (`--database-url postgres://…`) failed.
    #[error("idp PostgreSQL error: {0}")]
    Postgres(String),
    /// Key generation, parsing or signing failed.
    #[error("idp key error: {0}")]
    Key(String),
    /// A configuration value is invalid.
    #[error("invalid idp configuration: {0}")]
    Config(String),
    /// Serving HTTP failed.
    #[error("idp server error: {0}")]
    Serve(std::io::Error),
}

impl IdpError {
    /// A short stable code.
    pub fn code(&self) -> &'static str {
        match self {
            IdpError::DataDir { .. } => "IdpDataDir",
            IdpError::Storage(_) => "IdpStorage",
            IdpError::Postgres(_) => "IdpPostgres",
            IdpError::Key(_) => "IdpKey",
            IdpError::Config(_) => "IdpConfig",
            IdpError::Serve(_) => "IdpServe",
        }
    }
}

/// A Backend-API error, rendered as Clerk renders them:
/// `{ "errors": [{ "code", "message", "long_message", "meta" }], "clerk_trace_id" }`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {long_message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Clerk's error code (e.g. `resource_not_found`, `form_password_length_too_short`).
    pub code: &'static str,
    /// Short message.
    pub message: String,
    /// Detailed message.
    pub long_message: String,
    /// The request parameter at fault, if any (Clerk's `meta.param_name`).
    pub param_name: Option<&'static str>,
    /// When to try again (a `Retry-After` header, whole seconds rounded up), for 429s.
    pub retry_after: Option<std::time::Duration>,
    /// The email address to verify, for `email_address_not_verified` (`meta.email_address_id`).
    pub email_address_id: Option<Box<str>>,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        message: &str,
        long_message: String,
    ) -> Self {
        ApiError {
            status: status.as_u16(),
            code,
            message: message.to_owned(),
            long_message,
            param_name: None,
            retry_after: None,
            email_address_id: None,
        }
    }

    /// Clerk's 429: `too_many_requests` with a `Retry-After` header.
    pub(crate) fn too_many_requests(
        long_message: String,
        retry_after: std::time::Duration,
    ) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "Too many requests",
                long_message,
            )
        }
    }

    pub(crate) fn param(mut self, name: &'static str) -> Self {
        self.param_name = Some(name);
        self
    }

    pub(crate) fn unauthorized(long_message: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "authentication_invalid",
            "Invalid authentication",
            long_message.to_owned(),
        )
    }

    pub(crate) fn not_found(what: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "resource_not_found",
            "not found",
            format!("No {what} was found with id `{id}`."),
        )
    }

    pub(crate) fn unprocessable(code: &'static str, message: &str, long_message: String) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
            message,
            long_message,
        )
    }

    pub(crate) fn bad_request(long_message: String) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "form_param_format_invalid",
            "is invalid",
            long_message,
        )
    }

    pub(crate) fn internal(error: &dyn std::fmt::Display) -> Self {
        tracing::error!(%error, "idp internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_clerk_error",
            "Something went wrong",
            "The identity provider failed to process the request; see its log.".to_owned(),
        )
    }
}

impl From<IdpError> for ApiError {
    fn from(e: IdpError) -> Self {
        ApiError::internal(&e)
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> Self {
        ApiError::internal(&e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut meta = serde_json::Map::new();
        if let Some(p) = self.param_name {
            meta.insert("param_name".into(), json!(p));
        }
        if let Some(id) = &self.email_address_id {
            meta.insert("email_address_id".into(), json!(id));
        }
        let body = json!({
            "errors": [{
                "code": self.code,
                "message": self.message,
                "long_message": self.long_message,
                "meta": meta,
            }],
            "clerk_trace_id": crate::ids::random_id("trace"),
        });
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(wait) = self.retry_after {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs(wait)),
            );
        }
        response
    }
}

/// Whole seconds for `Retry-After`: rounded up, at least 1.
pub(crate) fn retry_after_secs(wait: std::time::Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

//! [`RequestError`]: why an HTTP request (or an in-process call, see `in_process`) was refused
//! before any function ran, answered as an HTTP status (from its [`ErrorClass`], see
//! `error_class`) and a `{"code", "message"}` body.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keel_auth::AuthError;
use keel_backend_core::cluster::ForwardRefusal;
use keel_backend_core::{ErrorClass, FunctionError};
use keel_protocol::ProtocolError;
use keel_protocol::http::HttpErrorBody;

use crate::error_class::http_status;

/// Why a request was refused before any function ran.
///
/// | code | class |
/// |---|---|
/// | `InvalidAuthHeader`, `MissingAdminKey`, `BadAdminKey`, the token's code (`TokenExpired` …) | `Unauthenticated` (401) |
/// | `BadRequestBody`, `BadJsonBody`, `BadFunctionPath`, `BadArgs`, `BadFormat`, `BadTimestamp`, `BadQueryParameter` | `BadRequest` (400) |
/// | `FunctionNotFound` | `NotFound` (404) |
/// | `RequestTooLarge` | `PayloadTooLarge` (413) |
/// | a forwarded mutation's refusal (`NotClustered`, `NotClusterNode`, `NotCommitter`, `BadForwardedRequest`) | its own class ([`ForwardRefusal::class`]) |
#[derive(Debug, thiserror::Error)]
pub(crate) enum RequestError {
    /// An `Authorization` header with bytes outside ASCII.
    #[error("The Authorization header is not valid ASCII")]
    AuthHeaderNotAscii,
    /// An admin route without an `Authorization` header.
    #[error("This route requires the admin key: send `Authorization: Convex <admin key>`")]
    MissingAdminKey,
    /// An admin key that is not the deployment's (or an admin route's header of another
    /// scheme).
    #[error("The provided admin key was invalid for this deployment")]
    BadAdminKey,
    /// A query parameter that is not what the route takes.
    #[error("The query parameter `{name}` is not valid: {value:?}")]
    BadQueryParameter {
        /// The parameter.
        name: &'static str,
        /// What was sent (its first 64 characters).
        value: String,
    },
    /// An `Authorization` header that is not `Bearer <token>`.
    #[error("Header must begin with `bearer `")]
    NotBearer,
    /// The bearer token did not verify.
    #[error(transparent)]
    Token(#[from] AuthError),
    /// A body over the limit.
    #[error("The request body is larger than the limit of {max} bytes")]
    BodyTooLarge {
        /// The limit in bytes.
        max: usize,
    },
    /// A body that could not be read (the connection failed while it arrived).
    #[error("Failed to buffer the request body: {0}")]
    BodyUnreadable(#[source] axum::Error),
    /// A body that is not the JSON the endpoint takes.
    #[error("Failed to parse the request body: {0}")]
    BadJsonBody(#[source] serde_json::Error),
    /// A function path that names no function.
    #[error("{0}")]
    BadFunctionPath(#[source] ProtocolError),
    /// A `/api/run/…` path without a function part.
    #[error("`{0}` must be <module>/<function>")]
    RunPathWithoutFunction(String),
    /// Arguments that are not one Convex object.
    #[error("{0}")]
    BadArgs(#[source] ProtocolError),
    /// A `?args=` query parameter that is not JSON.
    #[error("`args` is not JSON: {0}")]
    ArgsNotJson(#[source] serde_json::Error),
    /// A response format this server does not produce.
    #[error("{0}")]
    BadFormat(#[source] ProtocolError),
    /// A snapshot timestamp that is not an encoded one.
    #[error("{0}")]
    BadTimestamp(#[source] ProtocolError),
    /// `/api/run/…` for a function that is not registered.
    #[error("{0}")]
    FunctionNotFound(#[source] FunctionError),
    /// A forwarded mutation the core refused.
    #[error(transparent)]
    Forward(#[from] ForwardRefusal),
}

impl RequestError {
    /// The short code sent as `code`.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            RequestError::AuthHeaderNotAscii | RequestError::NotBearer => "InvalidAuthHeader",
            RequestError::MissingAdminKey => "MissingAdminKey",
            RequestError::BadAdminKey => "BadAdminKey",
            RequestError::BadQueryParameter { .. } => "BadQueryParameter",
            RequestError::Token(error) => error.code(),
            RequestError::BodyTooLarge { .. } => "RequestTooLarge",
            RequestError::BodyUnreadable(_) => "BadRequestBody",
            RequestError::BadJsonBody(_) => "BadJsonBody",
            RequestError::BadFunctionPath(_) | RequestError::RunPathWithoutFunction(_) => {
                "BadFunctionPath"
            }
            RequestError::BadArgs(_) | RequestError::ArgsNotJson(_) => "BadArgs",
            RequestError::BadFormat(_) => "BadFormat",
            RequestError::BadTimestamp(_) => "BadTimestamp",
            RequestError::FunctionNotFound(_) => "FunctionNotFound",
            RequestError::Forward(refusal) => refusal.code(),
        }
    }

    /// The class, which decides the HTTP status.
    pub(crate) fn class(&self) -> ErrorClass {
        match self {
            RequestError::AuthHeaderNotAscii
            | RequestError::MissingAdminKey
            | RequestError::BadAdminKey
            | RequestError::NotBearer
            | RequestError::Token(_) => ErrorClass::Unauthenticated,
            RequestError::BodyTooLarge { .. } => ErrorClass::PayloadTooLarge,
            RequestError::BodyUnreadable(_)
            | RequestError::BadJsonBody(_)
            | RequestError::BadFunctionPath(_)
            | RequestError::RunPathWithoutFunction(_)
            | RequestError::BadArgs(_)
            | RequestError::ArgsNotJson(_)
            | RequestError::BadQueryParameter { .. }
            | RequestError::BadFormat(_)
            | RequestError::BadTimestamp(_) => ErrorClass::BadRequest,
            RequestError::FunctionNotFound(_) => ErrorClass::NotFound,
            RequestError::Forward(refusal) => refusal.class(),
        }
    }
}

impl RequestError {
    /// The refusal as the client receives it — the HTTP status and the `{code, message}` body —
    /// logged once, here: the HTTP API sends it as a response, the in-process transport as a
    /// value (see `in_process`).
    pub(crate) fn answer(self) -> (StatusCode, HttpErrorBody) {
        let code = self.code();
        tracing::debug!(code, error = %self, "request refused");
        let body = HttpErrorBody {
            code: code.to_owned(),
            message: self.to_string(),
        };
        (http_status(self.class()), body)
    }
}

impl IntoResponse for RequestError {
    fn into_response(self) -> Response {
        let (status, body) = self.answer();
        (status, Json(body)).into_response()
    }
}

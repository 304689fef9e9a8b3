//! The one place where an [`ErrorClass`] takes its form on the wire: an HTTP status for a
//! refused request, a WebSocket close code for a sync session that ends with it.
//!
//! | class | HTTP status | a sync session that ends with it |
//! |---|---|---|
//! | `BadRequest` | 400 | `FatalError`, close 1000 |
//! | `Unauthenticated` | 401 | `AuthError`, close 1000 |
//! | `NotFound` | 404 | — |
//! | `PayloadTooLarge` | 413 | — (the WebSocket layer closes with 1009) |
//! | `Unavailable` | 503 | close 1013 (try again later) |
//!
//! What is classed: `RequestError` (an HTTP request refused before any function ran, see
//! `request_error`), `SessionEnd` (see `sync`) and the core's refusals (such as
//! [`keel_backend_core::cluster::ForwardRefusal`]). A function's own failure is not a class: it
//! is the call's outcome, sent inside a successful answer.

use axum::http::StatusCode;
use keel_backend_core::ErrorClass;

/// The HTTP status of a request refused with this class of error.
pub(crate) fn http_status(class: ErrorClass) -> StatusCode {
    match class {
        ErrorClass::BadRequest => StatusCode::BAD_REQUEST,
        ErrorClass::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorClass::NotFound => StatusCode::NOT_FOUND,
        ErrorClass::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorClass::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// The close code of a sync socket whose session ends with this class of error. A client's own
/// mistake closes normally: the `FatalError` or `AuthError` sent before says why.
pub(crate) fn close_code(class: ErrorClass) -> u16 {
    match class {
        ErrorClass::BadRequest
        | ErrorClass::Unauthenticated
        | ErrorClass::NotFound
        | ErrorClass::PayloadTooLarge => 1000,
        ErrorClass::Unavailable => 1013,
    }
}

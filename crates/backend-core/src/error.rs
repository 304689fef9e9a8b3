//! The backend's errors, each classified once.
//!
//! * [`FunctionError`] — why a function call failed, as its caller sees it. A transport sends it
//!   inside a successful answer (the HTTP API's `{"status": "error", …}` envelope, the sync
//!   protocol's `QueryFailed`, `MutationResponse` and `ActionResponse`).
//!   [`FunctionError::client_message`] and [`FunctionError::error_data`] build what is sent and
//!   have no side effects; the transport that sends an error logs it, once
//!   ([`FunctionError::log_delivery`]).
//! * [`ErrorClass`] — Convex's classes of error for what is refused before (or instead of) a
//!   function call: a malformed request, a bad token, a node that cannot serve. The core only
//!   classifies; each transport turns a class into its wire's form in one place (the HTTP
//!   status and the WebSocket close code are `keel-backend`'s `error_class` module).
//!
//! A function's own failure is not a class: it is the call's outcome (an internal failure
//! inside a call is logged where it is delivered and sent as [`INTERNAL_ERROR_MESSAGE`]).

use std::sync::{Arc, LazyLock};

use keel_db::DbError;
use keel_protocol::ProtocolError;
use keel_values::{ConversionError, Value};

/// The message clients see for an internal failure.
pub const INTERNAL_ERROR_MESSAGE: &str = "Your request couldn't be completed. Try again later.";

/// How many registered functions a "not found" message lists.
const MAX_LISTED_FUNCTIONS: usize = 20;

/// Convex's classes of error; a transport gives each one form on its wire (an HTTP status, a
/// WebSocket close code).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// The request is malformed; sending it again will not help.
    BadRequest,
    /// No identity, or one that could not be verified.
    Unauthenticated,
    /// Nothing is there.
    NotFound,
    /// The request is larger than the limit.
    PayloadTooLarge,
    /// This node cannot serve the request now; another attempt (or node) may.
    Unavailable,
}

/// Why a function call failed.
///
/// ```
/// use keel_backend_core::FunctionError;
/// use keel_values::obj;
/// let e = FunctionError::convex("Not authenticated", obj! { "code" => "UNAUTHENTICATED" });
/// assert_eq!(e.client_message(), "Not authenticated");
/// assert!(e.error_data().is_some());
/// ```
#[derive(Debug, Clone, thiserror::Error)]
pub enum FunctionError {
    /// A `ConvexError`: raised on purpose by the function, with data for the client.
    #[error("ConvexError: {message}")]
    Application {
        /// Human-readable message.
        message: String,
        /// Structured data, delivered as `errorData`.
        data: Value,
    },
    /// A plain error raised by the function (like JavaScript's `throw new Error(msg)`), or a
    /// function that ran past its time limit (`FunctionTimeout: …`).
    #[error("Uncaught Error: {0}")]
    Uncaught(String),
    /// The arguments do not fit the function's declared argument type; the inner error names
    /// the path and the validator, as Convex's `ArgumentValidationError` does.
    #[error("ArgumentValidationError: {0}")]
    InvalidArguments(#[source] ConversionError),
    /// The call itself is malformed: a function path, or an argument list that is not one
    /// Convex object.
    #[error("{0}")]
    InvalidCall(#[source] ProtocolError),
    /// A connection has more calls waiting or running than it may.
    #[error("TooManyConcurrentRequests: more than {limit} {calls} on this connection")]
    TooManyRequests {
        /// The bound.
        limit: usize,
        /// `"mutations are waiting"`, `"actions are running"`.
        calls: &'static str,
    },
    /// No function is registered under this path, or none the caller may call (a client asking
    /// for an internal function gets this very error).
    #[error("{}", not_found_message(path, registered))]
    NotFound {
        /// The path asked for.
        path: String,
        /// The public functions registered in the same module (they are named in the message).
        registered: Vec<String>,
    },
    /// The function exists but is another kind (e.g. a mutation called as a query).
    #[error("Trying to execute {path} as {expected}, but it is defined as {actual}.")]
    WrongKind {
        /// The function path.
        path: String,
        /// What the caller asked for.
        expected: &'static str,
        /// What the function is.
        actual: &'static str,
    },
    /// A call from a function (`ctx.run_*`) would nest calls deeper than the limit.
    #[error(
        "MaximumCallDepthExceeded: calling {path} would nest function calls more than {limit} \
         levels deep. Do you have an infinite loop in your app?"
    )]
    CallDepthExceeded {
        /// The function that was to be called.
        path: String,
        /// The limit.
        limit: u32,
    },
    /// A database error the caller can act on (conflict, invalid cursor, bad index range …).
    #[error("{0}")]
    Database(#[source] DbError),
    /// The outcome of a call that another node of the cluster ran: its message and data, as
    /// that node would have sent them.
    #[error("{message}")]
    Relayed {
        /// The message.
        message: String,
        /// The data, if any.
        data: Option<Value>,
    },
    /// A failure inside Keel; the client sees [`INTERNAL_ERROR_MESSAGE`], the log the cause.
    #[error("internal error: {0}")]
    Internal(#[source] Arc<dyn std::error::Error + Send + Sync>),
}

/// The detail of an internal failure given as text.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct InternalDetail(String);

impl FunctionError {
    /// A `ConvexError` with a message and data.
    pub fn convex(message: impl Into<String>, data: impl Into<Value>) -> Self {
        FunctionError::Application {
            message: message.into(),
            data: data.into(),
        }
    }

    /// A plain error with a message, like `throw new Error(message)`.
    pub fn uncaught(message: impl Into<String>) -> Self {
        FunctionError::Uncaught(message.into())
    }

    /// An internal failure; `detail` is logged, never sent.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        FunctionError::Internal(Arc::new(InternalDetail(detail.to_string())))
    }

    /// The message to send to the client (`errorMessage`).
    pub fn client_message(&self) -> String {
        match self {
            FunctionError::Application { message, .. } | FunctionError::Relayed { message, .. } => {
                message.clone()
            }
            FunctionError::Internal(_) => INTERNAL_ERROR_MESSAGE.to_owned(),
            FunctionError::Uncaught(_)
            | FunctionError::InvalidArguments(_)
            | FunctionError::InvalidCall(_)
            | FunctionError::TooManyRequests { .. }
            | FunctionError::NotFound { .. }
            | FunctionError::WrongKind { .. }
            | FunctionError::CallDepthExceeded { .. }
            | FunctionError::Database(_) => self.to_string(),
        }
    }

    /// The structured data to send as `errorData`, if any.
    pub fn error_data(&self) -> Option<&Value> {
        static INVALID_CURSOR: LazyLock<Value> =
            LazyLock::new(|| keel_values::obj! { "paginationError" => "InvalidCursor" });
        match self {
            FunctionError::Application { data, .. } => Some(data),
            FunctionError::Relayed { data, .. } => data.as_ref(),
            FunctionError::Database(DbError::InvalidCursor) => Some(&INVALID_CURSOR),
            FunctionError::Database(_)
            | FunctionError::Uncaught(_)
            | FunctionError::InvalidArguments(_)
            | FunctionError::InvalidCall(_)
            | FunctionError::TooManyRequests { .. }
            | FunctionError::NotFound { .. }
            | FunctionError::WrongKind { .. }
            | FunctionError::CallDepthExceeded { .. }
            | FunctionError::Internal(_) => None,
        }
    }

    /// Whether the failure is inside Keel (and may not happen again), rather than the call's.
    pub fn is_internal(&self) -> bool {
        matches!(self, FunctionError::Internal(_))
    }

    /// Logs the error as it is sent to a client: an internal failure with its cause (the client
    /// sees only [`INTERNAL_ERROR_MESSAGE`]), any other at debug level. Transports call this
    /// where they send an error, so each delivery is logged once.
    pub fn log_delivery(&self, call: &dyn std::fmt::Display) {
        match self {
            FunctionError::Internal(cause) => {
                tracing::error!(%call, error = %cause, "internal error in a function call");
            }
            FunctionError::Application { .. }
            | FunctionError::Uncaught(_)
            | FunctionError::InvalidArguments(_)
            | FunctionError::InvalidCall(_)
            | FunctionError::TooManyRequests { .. }
            | FunctionError::NotFound { .. }
            | FunctionError::WrongKind { .. }
            | FunctionError::CallDepthExceeded { .. }
            | FunctionError::Database(_)
            | FunctionError::Relayed { .. } => {
                tracing::debug!(%call, error = %self, "function call failed");
            }
        }
    }
}

impl From<DbError> for FunctionError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Storage(_) | DbError::NotCommitter(_) => {
                FunctionError::Internal(Arc::new(error))
            }
            DbError::InvalidCursor
            | DbError::NoDocumentsForPagination
            | DbError::InvalidPaginationLimit
            | DbError::OccConflict { .. }
            | DbError::UniqueMoreThanOne { .. }
            | DbError::TableNotFound(_)
            | DbError::IndexNotFound { .. }
            | DbError::InvalidIndexRange(_)
            | DbError::SystemFieldWrite(_)
            | DbError::DocumentTooLarge(_)
            | DbError::InvalidDocument(_)
            | DbError::Validation { .. }
            | DbError::DocumentTypeMismatch(_)
            | DbError::DocumentNotFound(_)
            | DbError::OutOfRetention(_)
            | DbError::InvalidSchema(_)
            | DbError::TransactionTooLarge(_)
            | DbError::TooManyReads(_) => FunctionError::Database(error),
        }
    }
}

/// "Could not find public function for 'posts:nope'" (Convex's words, also for an internal
/// function a client asked for), then what a Keel developer can act on: the public functions the
/// module does register, or where functions come from.
fn not_found_message(path: &str, registered: &[String]) -> String {
    let module = path.rsplit_once(':').map_or(path, |(module, _)| module);
    let mut message = format!("Could not find public function for '{path}'. ");
    if registered.is_empty() {
        message.push_str(&format!(
            "No function is registered in module `{module}`; functions are registered by path \
             (`module:function`) in the app's `FunctionRegistry`."
        ));
    } else {
        let listed: Vec<&str> = registered
            .iter()
            .take(MAX_LISTED_FUNCTIONS)
            .map(String::as_str)
            .collect();
        message.push_str(&format!(
            "Module `{module}` registers: {}",
            listed.join(", ")
        ));
        if registered.len() > listed.len() {
            message.push_str(&format!(" and {} more", registered.len() - listed.len()));
        }
        message.push('.');
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_names_the_module_s_functions_or_where_functions_come_from() {
        let error = FunctionError::NotFound {
            path: "posts:nope".into(),
            registered: vec!["create".into(), "list".into()],
        };
        assert_eq!(
            error.client_message(),
            "Could not find public function for 'posts:nope'. Module `posts` registers: create, \
             list."
        );
        let error = FunctionError::NotFound {
            path: "nope:x".into(),
            registered: vec![],
        };
        assert!(
            error
                .client_message()
                .contains("No function is registered in module `nope`"),
            "{error}"
        );
    }

    #[test]
    fn messages_are_pure_and_internal_details_stay_inside() {
        let error = FunctionError::internal("disk on fire");
        assert_eq!(error.client_message(), INTERNAL_ERROR_MESSAGE);
        assert!(error.is_internal());
        let storage = FunctionError::from(DbError::Storage("disk on fire".into()));
        assert_eq!(storage.client_message(), INTERNAL_ERROR_MESSAGE);
        assert!(std::error::Error::source(&storage).is_some());
        let cursor = FunctionError::from(DbError::InvalidCursor);
        assert_eq!(
            cursor.error_data(),
            Some(&keel_values::obj! { "paginationError" => "InvalidCursor" })
        );
    }
}

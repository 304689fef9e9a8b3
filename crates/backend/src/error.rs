//! Errors of function calls, as clients see them.
//!
//! Two kinds, as in Convex: an **application error** (`ConvexError`) that a function raises on
//! purpose, carrying structured `data` that reaches the client as `errorData`; and every other
//! failure, whose message is either the function's own (a plain `Error` it raised) or, for
//! failures inside Keel (storage, bugs), a generic text that leaks no internals while the details
//! go to the log.

use keel_values::Value;

/// The message clients see for an internal failure.
pub const INTERNAL_ERROR_MESSAGE: &str = "Your request couldn't be completed. Try again later.";

/// Why a function call failed.
///
/// ```
/// use keel_backend::FunctionError;
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
    /// A plain error raised by the function (like JavaScript's `throw new Error(msg)`).
    #[error("Uncaught Error: {0}")]
    Uncaught(String),
    /// The arguments do not fit the function's declared argument type.
    #[error("ArgumentValidationError: {0}")]
    InvalidArguments(String),
    /// The call itself is malformed (a function path or an argument list that is not one
    /// Convex object); the message already names the problem (`InvalidArgs: …`).
    #[error("{0}")]
    InvalidCall(String),
    /// No public function is registered under this path.
    #[error(
        "Could not find public function for '{0}'. Did you forget to run `npx convex dev` or `npx convex deploy`?"
    )]
    NotFound(String),
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
    /// A database error the caller can act on (conflict, invalid cursor, bad index range …);
    /// `data` is set for errors with a machine-readable code (e.g. `paginationError`).
    #[error("{message}")]
    Database {
        /// The database error's message.
        message: String,
        /// Optional structured data.
        data: Option<Value>,
    },
    /// A failure inside Keel; the client sees [`INTERNAL_ERROR_MESSAGE`].
    #[error("internal error: {0}")]
    Internal(String),
}

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
        FunctionError::Internal(detail.to_string())
    }

    /// The message to send to the client (`errorMessage`).
    pub fn client_message(&self) -> String {
        match self {
            FunctionError::Application { message, .. } => message.clone(),
            FunctionError::Internal(detail) => {
                tracing::error!(%detail, "internal error in function call");
                INTERNAL_ERROR_MESSAGE.to_owned()
            }
            FunctionError::Uncaught(_)
            | FunctionError::InvalidArguments(_)
            | FunctionError::InvalidCall(_)
            | FunctionError::NotFound(_)
            | FunctionError::WrongKind { .. }
            | FunctionError::Database { .. } => self.to_string(),
        }
    }

    /// The structured data to send as `errorData`, if any.
    pub fn error_data(&self) -> Option<&Value> {
        match self {
            FunctionError::Application { data, .. } => Some(data),
            FunctionError::Database { data, .. } => data.as_ref(),
            FunctionError::Uncaught(_)
            | FunctionError::InvalidArguments(_)
            | FunctionError::InvalidCall(_)
            | FunctionError::NotFound(_)
            | FunctionError::WrongKind { .. }
            | FunctionError::Internal(_) => None,
        }
    }
}

impl From<keel_db::DbError> for FunctionError {
    fn from(error: keel_db::DbError) -> Self {
        use keel_db::DbError;
        match error {
            DbError::Storage(_) | DbError::NotCommitter(_) => FunctionError::internal(error),
            DbError::InvalidCursor => FunctionError::Database {
                message: error.to_string(),
                data: Some(keel_values::obj! { "paginationError" => "InvalidCursor" }),
            },
            DbError::OccConflict { .. }
            | DbError::UniqueMoreThanOne { .. }
            | DbError::TableNotFound(_)
            | DbError::IndexNotFound { .. }
            | DbError::InvalidIndexRange(_)
            | DbError::SystemFieldWrite(_)
            | DbError::DocumentTooLarge(_)
            | DbError::InvalidDocument(_)
            | DbError::Validation { .. }
            | DbError::DocumentNotFound(_)
            | DbError::OutOfRetention(_)
            | DbError::InvalidSchema(_)
            | DbError::TransactionTooLarge(_)
            | DbError::TooManyReads(_) => FunctionError::Database {
                message: error.to_string(),
                data: None,
            },
        }
    }
}

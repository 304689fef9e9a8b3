//! The in-process transport: a client in the same process as the backend (the web tier when
//! `keel` runs every service in one process) calls it through [`InProcessBackend`] instead of
//! the HTTP API — no socket, no JSON text: arguments and results stay [`Value`]s, and a
//! query's result is the backend's own (an `Arc` shared with its query cache: no copy).
//!
//! It is the HTTP API's twin, not a shortcut around it: the backend verifies the call's token
//! the same way (cached), runs the function as the same identity, logs and records it the
//! same way, and answers with the same outcomes. A call refused before any function ran (a bad
//! or expired token, a malformed path) is an [`InProcessError::Refused`] carrying the HTTP
//! status and `{code, message}` body the HTTP API would have answered
//! ([`HttpErrorBody`](crate::http::HttpErrorBody)); a function's failure is an
//! [`InProcessError::Failed`] with what the HTTP API's `{"status":"error"}` envelope would have
//! carried. A client therefore turns both transports' answers into one error type in one way.
//!
//! ```
//! use std::future::Future;
//! use std::pin::Pin;
//! use std::sync::Arc;
//! use keel_protocol::{InProcessBackend, InProcessCall, InProcessError, Value};
//!
//! /// A backend whose every query answers 1 (a real one is `keel_backend::InProcess`).
//! struct One;
//! impl InProcessBackend for One {
//!     fn call(&self, _call: InProcessCall)
//!         -> Pin<Box<dyn Future<Output = Result<Arc<Value>, InProcessError>> + Send + '_>> {
//!         Box::pin(async { Ok(Arc::new(Value::Float64(1.0))) })
//!     }
//!     fn latest_ts(&self) -> u64 { 7 }
//!     fn open_sync(&self) -> Result<keel_protocol::InProcessSync, InProcessError> {
//!         Err(InProcessError::Refused {
//!             status: 503, code: "NoSync".into(), message: "no sync sessions here".into(),
//!         })
//!     }
//! }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use keel_values::{Object, Value};

/// What a call runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallKind {
    /// A query, at snapshot `ts` (`/api/query_at_ts`) or at the latest commit (`/api/query`).
    Query {
        /// The snapshot to read at (see [`InProcessBackend::latest_ts`]).
        ts: Option<u64>,
    },
    /// A mutation (`/api/mutation`).
    Mutation,
    /// An action (`/api/action`).
    Action,
}

/// One call of a public function, as an HTTP request would carry it.
#[derive(Clone, Debug)]
pub struct InProcessCall {
    /// Query (at which snapshot), mutation or action.
    pub kind: CallKind,
    /// The function path, in any spelling [`normalize_udf_path`](crate::normalize_udf_path)
    /// accepts.
    pub path: String,
    /// The argument object.
    pub args: Object,
    /// The caller's identity token (what `Authorization: Bearer` would carry); `None` calls as
    /// no user.
    pub token: Option<Arc<str>>,
}

/// Why an in-process call did not return a value.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum InProcessError {
    /// Refused before any function ran, as the HTTP API would have refused it.
    #[error("{status} ({code}): {message}")]
    Refused {
        /// The HTTP status the HTTP API answers such a request with (401 for a bad token).
        status: u16,
        /// The short code (`TokenExpired`, `BadFunctionPath` …).
        code: String,
        /// The message.
        message: String,
    },
    /// The function ran and failed (or is not there to run): the HTTP API's error envelope.
    #[error("{message}")]
    Failed {
        /// `errorMessage`: what the caller may see.
        message: String,
        /// `errorData`: a `ConvexError`'s data.
        data: Option<Value>,
    },
}

/// The future of an in-process call: the function's value, shared (a query's is the one its
/// execution holds in the backend's query cache, for every caller it serves).
pub type InProcessFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Arc<Value>, InProcessError>> + Send + 'a>>;

/// A backend reached in the same process. Implemented by `keel_backend::InProcess`; clients
/// (`keel_client::HttpClient::in_process`) hold it as `Arc<dyn InProcessBackend>`.
pub trait InProcessBackend: Send + Sync {
    /// Runs `call` as the identity its token proves.
    fn call(&self, call: InProcessCall) -> InProcessFuture<'_>;

    /// The latest snapshot timestamp (`/api/query_ts`).
    fn latest_ts(&self) -> u64;

    /// Opens a sync session (`/api/sync` without the socket): see
    /// [`InProcessSync`](crate::InProcessSync). Refused while the backend shuts down.
    fn open_sync(&self) -> Result<crate::InProcessSync, InProcessError>;
}

//! [`InProcess`]: the backend reached from its own process — the in-process twin of the HTTP
//! API's `/api/query`, `/api/query_at_ts`, `/api/query_ts`, `/api/mutation` and `/api/action`.
//!
//! A call goes through the steps an HTTP request takes, minus the socket and the JSON text:
//! the token is verified by [`Backend::authenticate`] (the same cached verifier), the path is
//! normalised and the arguments checked against Convex's value limits, the function runs as a
//! client's call (public functions only, recorded in the execution log and the function
//! metrics), and a failure is logged where it is delivered. A refusal carries the status and
//! code of the [`RequestError`] the HTTP API would have answered, mapped in the same place.
//!
//! Its sync sessions ([`InProcessBackend::open_sync`]) are the `/api/sync` socket's sessions
//! without the socket: see `sync`.

use std::sync::Arc;

use keel_backend_core::{Backend, FunctionError, Identity, Logged};
use keel_protocol::{
    CallKind, CanonicalPath, InProcessBackend, InProcessCall, InProcessError, InProcessFuture,
    InProcessSync, ProtocolError,
};
use keel_values::Value;

use crate::request_error::RequestError;

/// The backend as an [`InProcessBackend`], for a client in the same process
/// (`keel_client::HttpClient::in_process`).
///
/// ```no_run
/// # fn demo(backend: keel_backend::Backend) {
/// use std::sync::Arc;
/// let direct: Arc<dyn keel_protocol::InProcessBackend> =
///     Arc::new(keel_backend::InProcess::new(backend));
/// # let _ = direct;
/// # }
/// ```
#[derive(Clone)]
pub struct InProcess {
    backend: Backend,
}

impl std::fmt::Debug for InProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcess").finish_non_exhaustive()
    }
}

impl InProcess {
    /// The in-process transport of `backend`.
    pub fn new(backend: Backend) -> InProcess {
        InProcess { backend }
    }

    /// The transport as clients hold it.
    pub fn shared(backend: Backend) -> Arc<dyn InProcessBackend> {
        Arc::new(InProcess::new(backend))
    }

    async fn run(&self, call: InProcessCall) -> Result<Arc<Value>, InProcessError> {
        let identity = match &call.token {
            None => Identity::Anonymous,
            Some(token) => self
                .backend
                .authenticate(token.trim())
                .await
                .map_err(|e| refused(RequestError::Token(e)))?,
        };
        let path = crate::function_paths::canonical_path(&call.path)
            .map_err(|e| refused(RequestError::BadFunctionPath(e)))?;
        // Checked as the value it is, without a copy.
        let args = Value::Object(call.args);
        keel_values::validate_value(&args)
            .map_err(|e| refused(RequestError::BadArgs(ProtocolError::from(e))))?;
        let Value::Object(args) = args else {
            unreachable!("the arguments were an object a moment ago");
        };
        let backend = &self.backend;
        let outcome = match call.kind {
            CallKind::Query { ts } => {
                // The value as the query cache holds it: every caller it serves shares it.
                let shared = backend.run_query_shared(&path, &args, &identity, ts).await;
                return match shared.result() {
                    Ok(value) => Ok(value.clone()),
                    Err(error) => Err(failed(&path, error)),
                };
            }
            CallKind::Mutation => {
                let Logged { result, log_lines } =
                    backend.run_mutation_logged(&path, args, &identity).await;
                Logged {
                    result: result.map(|(value, _)| value),
                    log_lines,
                }
            }
            CallKind::Action => backend.run_action_logged(&path, args, &identity).await,
        };
        outcome
            .result
            .map(Arc::new)
            .map_err(|error| failed(&path, &error))
    }
}

impl InProcessBackend for InProcess {
    fn call(&self, call: InProcessCall) -> InProcessFuture<'_> {
        Box::pin(self.run(call))
    }

    fn latest_ts(&self) -> u64 {
        self.backend.latest_ts()
    }

    fn open_sync(&self) -> Result<InProcessSync, InProcessError> {
        crate::sync::serve_in_process(&self.backend).ok_or_else(|| InProcessError::Refused {
            status: 503,
            code: "ShuttingDown".to_owned(),
            message: "the backend is shutting down".to_owned(),
        })
    }
}

/// A refusal as the HTTP API answers it (status and body), logged as it logs one.
fn refused(error: RequestError) -> InProcessError {
    let (status, body) = error.answer();
    InProcessError::Refused {
        status: status.as_u16(),
        code: body.code,
        message: body.message,
    }
}

/// A function's failure as the HTTP API's error envelope carries it, logged where delivered.
fn failed(path: &CanonicalPath, error: &FunctionError) -> InProcessError {
    error.log_delivery(path);
    InProcessError::Failed {
        message: error.client_message(),
        data: error.error_data().cloned(),
    }
}

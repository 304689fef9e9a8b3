//! [`ClientError`]: what a call to the backend can fail with.

use keel_values::Value;

/// Why a client call failed.
///
/// Function failures ([`ClientError::Application`], [`ClientError::Function`]) come from the
/// function itself; the others from authentication, HTTP, the connection or decoding.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ClientError {
    /// The function threw a `ConvexError`; `data` is its payload.
    #[error("{message}")]
    Application {
        /// The error message.
        message: String,
        /// The `ConvexError`'s data.
        data: Value,
    },
    /// The function failed in another way (a bug, bad arguments, an unknown function …).
    #[error("{message}")]
    Function {
        /// The error message as the backend reports it.
        message: String,
    },
    /// The backend rejected the credentials (HTTP 401, or `AuthError` on the socket).
    #[error("authentication failed ({code}): {message}")]
    Auth {
        /// The backend's short code, e.g. `InvalidAuthHeader`.
        code: String,
        /// The backend's message.
        message: String,
    },
    /// Any other non-200 HTTP answer.
    #[error("HTTP {status} ({code}): {message}")]
    Http {
        /// The HTTP status code.
        status: u16,
        /// The backend's short code, or `Unknown` when the body had none.
        code: String,
        /// The backend's message, or the body text.
        message: String,
    },
    /// The request could not be sent or the connection was lost before an answer.
    #[error("transport error: {0}")]
    Transport(String),
    /// An answer, result or argument could not be encoded or decoded.
    #[error("decode error: {0}")]
    Decode(String),
    /// The client was shut down, or a wait ran out of time.
    #[error("{0}")]
    Closed(String),
}

impl ClientError {
    /// A short code naming the variant (`Application`, `Function`, `Auth`, `Http`, `Transport`,
    /// `Decode`, `Closed`).
    pub fn code(&self) -> &'static str {
        match self {
            ClientError::Application { .. } => "Application",
            ClientError::Function { .. } => "Function",
            ClientError::Auth { .. } => "Auth",
            ClientError::Http { .. } => "Http",
            ClientError::Transport(_) => "Transport",
            ClientError::Decode(_) => "Decode",
            ClientError::Closed(_) => "Closed",
        }
    }

    /// A function failure: [`ClientError::Application`] when `data` is present, else
    /// [`ClientError::Function`].
    pub(crate) fn from_function(message: String, data: Option<Value>) -> ClientError {
        match data {
            Some(data) => ClientError::Application { message, data },
            None => ClientError::Function { message },
        }
    }
}

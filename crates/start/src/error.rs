//! [`RouteError`] (what a route or server function can end with) and [`StartError`] (what is
//! wrong with an app's route tree or setup).

use http::StatusCode;
use keel_client::ClientError;

/// How a `before_load`, `loader` or server function ends other than with its value.
///
/// [`RouteError::Redirect`] and [`RouteError::NotFound`] are control flow (TanStack's `throw
/// redirect()` / `throw notFound()`); [`RouteError::Public`] carries a message meant for the
/// visitor; [`RouteError::Internal`] is logged and shown only as a generic message, so no
/// internals reach the page.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RouteError {
    /// Send the browser elsewhere (`307` from a page, `303` after a form post).
    #[error("redirect ({status}) to {to}")]
    Redirect {
        /// The target: a path on this site, or a written-out `http(s)` URL (anything a browser
        /// could read as another site is refused with a 500).
        to: String,
        /// `303 See Other` or `307 Temporary Redirect`.
        status: StatusCode,
    },
    /// Nothing here: render the nearest not-found component with HTTP 404.
    #[error("not found")]
    NotFound,
    /// A failure the visitor may read (bad form input, not signed in …).
    #[error("{message}")]
    Public {
        /// The HTTP status of the page.
        status: StatusCode,
        /// The message shown on the page.
        message: String,
    },
    /// Anything else: logged with its detail, rendered as "Something went wrong" with HTTP 500.
    #[error("internal error: {0}")]
    Internal(String),
}

impl RouteError {
    /// A `307` redirect to `to` (keeps the method; for `before_load`).
    pub fn redirect(to: impl Into<String>) -> RouteError {
        RouteError::Redirect {
            to: to.into(),
            status: StatusCode::TEMPORARY_REDIRECT,
        }
    }

    /// A `303 See Other` to `to` (the answer to a form post).
    pub fn see_other(to: impl Into<String>) -> RouteError {
        RouteError::Redirect {
            to: to.into(),
            status: StatusCode::SEE_OTHER,
        }
    }

    /// A message for the visitor with `status`.
    pub fn public(status: StatusCode, message: impl Into<String>) -> RouteError {
        RouteError::Public {
            status,
            message: message.into(),
        }
    }

    /// An internal failure; `detail` is logged, never shown.
    pub fn internal(detail: impl Into<String>) -> RouteError {
        RouteError::Internal(detail.into())
    }

    /// A short code naming the variant (`Redirect`, `NotFound`, `Public`, `Internal`).
    pub fn code(&self) -> &'static str {
        match self {
            RouteError::Redirect { .. } => "Redirect",
            RouteError::NotFound => "NotFound",
            RouteError::Public { .. } => "Public",
            RouteError::Internal(_) => "Internal",
        }
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            RouteError::Redirect { status, .. } | RouteError::Public { status, .. } => *status,
            RouteError::NotFound => StatusCode::NOT_FOUND,
            RouteError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message a visitor may see: the public message, or a generic one.
    pub fn visitor_message(&self) -> &str {
        match self {
            RouteError::Public { message, .. } => message,
            RouteError::NotFound => "The page you are looking for does not exist.",
            RouteError::Redirect { .. } | RouteError::Internal(_) => "Something went wrong.",
        }
    }
}

impl From<ClientError> for RouteError {
    /// Backend failures are internal: the page says "Something went wrong", the log has the
    /// detail.
    fn from(error: ClientError) -> RouteError {
        RouteError::Internal(format!("backend call failed ({}): {error}", error.code()))
    }
}

/// A mistake in the app's route tree or configuration, found when the app is built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// A route path that cannot be parsed (e.g. an unclosed `{`).
    #[error("invalid route path {path:?}: {reason}")]
    InvalidPath {
        /// The path as written.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Two routes with the same full path.
    #[error("two routes have the path {0:?}")]
    DuplicateRoute(String),
    /// Two server functions with the same name, or a name that is not `[a-zA-Z0-9_:/.-]+`.
    #[error("server function name {0:?} is a duplicate or has characters outside [a-zA-Z0-9_:/.-]")]
    BadServerFunctionName(String),
    /// The backend URL cannot be used.
    #[error("backend URL {url:?}: {reason}")]
    BackendUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// The security headers cannot be sent (e.g. a content security policy source with a
    /// character a header cannot carry).
    #[error("security headers: {0}")]
    SecurityHeaders(String),
}

impl StartError {
    /// A short code naming the variant.
    pub fn code(&self) -> &'static str {
        match self {
            StartError::InvalidPath { .. } => "InvalidPath",
            StartError::DuplicateRoute(_) => "DuplicateRoute",
            StartError::BadServerFunctionName(_) => "BadServerFunctionName",
            StartError::BackendUrl { .. } => "BackendUrl",
            StartError::SecurityHeaders(_) => "SecurityHeaders",
        }
    }
}

//! [`DashboardError`]: why a dashboard request was refused or failed — a short code, a
//! message, a status (decided here, once) and a page that shows them.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keel_backend_core::{ErrorClass, FunctionError};
use keel_db::DbError;

use crate::error_class::http_status;

/// A refused or failed dashboard request.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DashboardError {
    /// No valid session cookie: the answer is the sign-in form.
    #[error("Sign in with the admin key to use the dashboard")]
    SignInRequired,
    /// The key given at sign-in is not the deployment's (or the backend has none).
    #[error("That is not this deployment's admin key")]
    BadAdminKey,
    /// A `POST` from another site or origin.
    #[error("Cross-site request refused: {0}")]
    CrossSite(String),
    /// A `POST` without the session's CSRF token.
    #[error("The form's CSRF token is missing or not this session's; reload the page")]
    BadCsrfToken,
    /// A form or query string the route does not take.
    #[error("{0}")]
    BadForm(String),
    /// A document that is not a JSON object of Convex values.
    #[error("The document is not valid: {0}")]
    BadDocument(String),
    /// Function arguments or an identity that are not what a run takes.
    #[error("{0}")]
    BadArgs(String),
    /// An index-range filter that does not fit the index.
    #[error("The filter is not valid: {0}")]
    BadFilter(String),
    /// No such document, job or session.
    #[error("{0}")]
    NotFound(String),
    /// The database refused or failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A function (the scheduler's cancel) failed.
    #[error("{}", .0.client_message())]
    Function(FunctionError),
    /// A snapshot import was larger than the deployment takes (bytes).
    #[error("The snapshot is larger than the {0} bytes this deployment imports")]
    TooLarge(usize),
    /// A snapshot export could not start, or an import was refused or failed.
    #[error(transparent)]
    Snapshot(#[from] keel_db::snapshot::SnapshotError),
    /// The idp's Backend API refused or failed.
    #[error("The identity provider refused: {0}")]
    Idp(#[from] keel_auth::AuthError),
}

impl DashboardError {
    /// The short code shown with the message.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            DashboardError::SignInRequired => "SignInRequired",
            DashboardError::BadAdminKey => "BadAdminKey",
            DashboardError::CrossSite(_) => "CrossSiteRequest",
            DashboardError::BadCsrfToken => "BadCsrfToken",
            DashboardError::BadForm(_) => "BadForm",
            DashboardError::BadDocument(_) => "BadDocument",
            DashboardError::BadArgs(_) => "BadArgs",
            DashboardError::BadFilter(_) => "BadFilter",
            DashboardError::NotFound(_) => "NotFound",
            DashboardError::TooLarge(_) => "SnapshotTooLarge",
            DashboardError::Db(e) => e.code(),
            DashboardError::Function(_) => "FunctionFailed",
            DashboardError::Snapshot(e) => e.code(),
            DashboardError::Idp(e) => e.code(),
        }
    }

    /// The HTTP status.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            DashboardError::SignInRequired | DashboardError::BadAdminKey => {
                StatusCode::UNAUTHORIZED
            }
            DashboardError::CrossSite(_) | DashboardError::BadCsrfToken => StatusCode::FORBIDDEN,
            DashboardError::BadForm(_)
            | DashboardError::BadDocument(_)
            | DashboardError::BadArgs(_)
            | DashboardError::BadFilter(_)
            | DashboardError::Function(_) => StatusCode::BAD_REQUEST,
            DashboardError::NotFound(_) => StatusCode::NOT_FOUND,
            DashboardError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            DashboardError::Db(DbError::TableNotFound(_)) => http_status(ErrorClass::NotFound),
            DashboardError::Db(DbError::Storage(_) | DbError::NotCommitter(_)) => {
                http_status(ErrorClass::Unavailable)
            }
            DashboardError::Db(_) => http_status(ErrorClass::BadRequest),
            DashboardError::Snapshot(e) if e.is_bad_request() => StatusCode::BAD_REQUEST,
            DashboardError::Snapshot(_) => http_status(ErrorClass::Unavailable),
            DashboardError::Idp(_) => StatusCode::BAD_GATEWAY,
        }
    }
}

impl IntoResponse for DashboardError {
    fn into_response(self) -> Response {
        let status = self.status();
        tracing::info!(code = self.code(), error = %self, "dashboard request refused");
        let page = match self {
            DashboardError::SignInRequired | DashboardError::BadAdminKey => {
                super::session::sign_in_page(Some(&self))
            }
            _ => super::page::error_page(&self),
        };
        (status, page).into_response()
    }
}

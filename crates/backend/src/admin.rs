//! Operators' routes, each behind the admin key: [`Admin`], the extractor that lets a request
//! through only with `Authorization: Convex <admin key>` (the header Convex's CLI sends), and
//! the routes themselves — `GET /api/admin/logs`, the execution log. The data, export, import
//! and run routes (`admin_routes`) take the same extractor.
//!
//! A request without the header is refused with 401 `MissingAdminKey`; one with another
//! scheme, a key that is not the deployment's, or any key when the backend has none, with 401
//! `BadAdminKey`; both in the `{"code", "message"}` body of every refused request.

use std::time::Duration;

use axum::Json;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::header;
use axum::http::request::Parts;
use keel_backend_core::{Backend, ExecutionPage};
use serde::Deserialize;

use crate::request_error::RequestError;

/// The route of the execution log.
pub(crate) const LOGS_ROUTE: &str = "/api/admin/logs";
/// The most entries one page of the execution log holds (and the default).
const MAX_LOG_PAGE: usize = 1000;
/// The longest a request for new entries waits (`wait`, in milliseconds).
const MAX_LOG_WAIT: Duration = Duration::from_secs(30);

/// A request that presented the admin key: put it among a handler's arguments and the handler
/// runs only for the deployment's operators.
pub(crate) struct Admin;

impl FromRequestParts<Backend> for Admin {
    type Rejection = RequestError;

    async fn from_request_parts(
        parts: &mut Parts,
        backend: &Backend,
    ) -> Result<Admin, RequestError> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or(RequestError::MissingAdminKey)?
            .to_str()
            .map_err(|_| RequestError::AuthHeaderNotAscii)?;
        let key = admin_key_in(value).ok_or(RequestError::BadAdminKey)?;
        match backend.admin_key() {
            Some(admin_key) if admin_key.verify(key) => Ok(Admin),
            Some(_) | None => Err(RequestError::BadAdminKey),
        }
    }
}

/// The key of an `Authorization: Convex <key>` header value, if it has that scheme.
pub(crate) fn admin_key_in(value: &str) -> Option<&str> {
    let scheme = value.get(..7)?;
    scheme
        .eq_ignore_ascii_case("convex ")
        .then(|| value[7..].trim())
}

/// `GET /api/admin/logs?after=<cursor>&limit=<n>&wait=<ms>`.
#[derive(Deserialize)]
pub(crate) struct LogsParams {
    after: Option<String>,
    limit: Option<String>,
    wait: Option<String>,
}

fn number<T: std::str::FromStr>(
    name: &'static str,
    text: Option<&str>,
) -> Result<Option<T>, RequestError> {
    text.map(|text| {
        text.parse().map_err(|_| RequestError::BadQueryParameter {
            name,
            value: text.chars().take(64).collect(),
        })
    })
    .transpose()
}

/// The execution log from `after` (default 0: every entry still kept), at most `limit` entries
/// (default and most 1000). With `wait` (milliseconds, at most 30 000), a request that finds no
/// entry at its cursor waits that long for one: `keel logs` and the dashboard follow the log by
/// asking again from each answer's `cursor`.
pub(crate) async fn logs(
    _: Admin,
    State(backend): State<Backend>,
    Query(params): Query<LogsParams>,
) -> Result<Json<ExecutionPage>, RequestError> {
    let after = number::<u64>("after", params.after.as_deref())?.unwrap_or(0);
    let limit = number::<usize>("limit", params.limit.as_deref())?
        .unwrap_or(MAX_LOG_PAGE)
        .clamp(1, MAX_LOG_PAGE);
    let wait = number::<u64>("wait", params.wait.as_deref())?
        .map_or(Duration::ZERO, Duration::from_millis)
        .min(MAX_LOG_WAIT);
    let log = backend.execution_log();
    if !wait.is_zero() {
        let _ = tokio::time::timeout(wait, log.wait_beyond(after)).await;
    }
    Ok(Json(log.read(after, limit)))
}

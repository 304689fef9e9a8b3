//! `POST /dashboard/import?mode=…`: a snapshot ZIP (Convex's export format, as `keel export`
//! and the data page's export links write it) imported into the deployment in one commit, as
//! `keel import` does. Subscribers, open pages included, see the import as one change.
//!
//! The data page's form sends the chosen file as the request body through the dashboard's
//! script, with the session's CSRF token in the `x-keel-csrf` header; the answer is the
//! import's summary as JSON. Without JavaScript the browser would send `multipart/form-data`,
//! which is refused with a message naming `keel import`.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::Dashboard;
use super::error::DashboardError;
use super::session::{Operator, check_same_origin};

/// The header that carries the session's CSRF token.
pub(crate) const CSRF_HEADER: &str = "x-keel-csrf";

/// The import's query string.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImportParams {
    mode: Option<String>,
}

/// `POST /dashboard/import`.
pub(crate) async fn import(
    operator: Operator,
    State(dashboard): State<Dashboard>,
    headers: HeaderMap,
    params: Result<Query<ImportParams>, axum::extract::rejection::QueryRejection>,
    body: Result<bytes::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, DashboardError> {
    check_same_origin(&headers)?;
    let token = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    operator.check_csrf(token)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type.starts_with("multipart/form-data") {
        return Err(DashboardError::BadForm(
            "Importing from the dashboard needs its script (JavaScript); without it, run \
             `keel import <file.zip>`"
                .into(),
        ));
    }
    let Query(params) = params.map_err(|e| DashboardError::BadForm(e.body_text()))?;
    let mode = crate::admin_routes::import_mode(params.mode.as_deref())
        .map_err(DashboardError::BadForm)?;
    let limit = dashboard.backend.config().max_import_bytes;
    let zip = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            DashboardError::TooLarge(limit)
        } else {
            DashboardError::BadForm(rejection.body_text())
        }
    })?;
    if zip.is_empty() {
        return Err(DashboardError::BadForm(
            "Choose a snapshot ZIP to import".into(),
        ));
    }
    let summary = crate::admin_routes::import_snapshot(&dashboard.backend, zip, mode).await?;
    tracing::info!(?summary, "dashboard imported a snapshot");
    Ok(axum::Json(summary).into_response())
}

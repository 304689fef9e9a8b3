//! `POST /dashboard/import`: a snapshot ZIP (Convex's export format, as `keel export` and the
//! data page's export links write it) imported into the deployment in one commit, as
//! `keel import` does. Subscribers, open pages included, see the import as one change.
//!
//! The data page's form arrives in one of two shapes, with the same checks (same origin, the
//! session's CSRF token, a known mode, at most
//! [`BackendConfig::max_import_bytes`](keel_backend_core::BackendConfig::max_import_bytes)):
//! * with the dashboard's script, the chosen file as the request body, the mode in the query
//!   string (`?mode=…`) and the CSRF token in the `x-keel-csrf` header; the answer is the
//!   import's summary as JSON, which the script shows beside the form;
//! * without JavaScript, the browser's `multipart/form-data` post of the form: one file part
//!   `snapshot`, text parts `mode` and `csrf`, nothing else (see `ImportForm::read`); the
//!   answer is a page that shows what was imported.

use axum::extract::{FromRequest, Multipart, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use keel_db::snapshot::ImportSummary;
use maud::html;
use serde::Deserialize;

use super::Dashboard;
use super::error::DashboardError;
use super::page::{Section, shell};
use super::session::{Operator, check_same_origin};

/// The header that carries the session's CSRF token.
pub(crate) const CSRF_HEADER: &str = "x-keel-csrf";
/// The longest text field (`csrf`, `mode`) the multipart form may carry.
const MAX_TEXT_FIELD: usize = 1024;

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
    request: Request,
) -> Result<Response, DashboardError> {
    check_same_origin(&headers)?;
    let Query(params) = params.map_err(|e| DashboardError::BadForm(e.body_text()))?;
    let limit = dashboard.backend.config().max_import_bytes;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type.starts_with("multipart/form-data") {
        let multipart = Multipart::from_request(request, &())
            .await
            .map_err(|e| DashboardError::BadForm(e.body_text()))?;
        let form = ImportForm::read(multipart, limit).await?;
        operator.check_csrf(form.csrf.as_deref().unwrap_or_default())?;
        let mode = form.mode.or(params.mode);
        let summary = run_import(&dashboard, form.snapshot, mode.as_deref()).await?;
        return Ok(summary_page(&operator, &summary).into_response());
    }
    let token = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    operator.check_csrf(token)?;
    let zip = Bytes::from_request(request, &())
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                DashboardError::TooLarge(limit)
            } else {
                DashboardError::BadForm(rejection.body_text())
            }
        })?;
    let summary = run_import(&dashboard, Some(zip), params.mode.as_deref()).await?;
    Ok(axum::Json(summary).into_response())
}

/// Checks the mode and the file, then imports.
async fn run_import(
    dashboard: &Dashboard,
    zip: Option<Bytes>,
    mode: Option<&str>,
) -> Result<ImportSummary, DashboardError> {
    let mode = crate::admin_routes::import_mode(mode).map_err(DashboardError::BadForm)?;
    let Some(zip) = zip.filter(|zip| !zip.is_empty()) else {
        return Err(DashboardError::BadForm(
            "Choose a snapshot ZIP to import".into(),
        ));
    };
    let summary = crate::admin_routes::import_snapshot(&dashboard.backend, zip, mode).await?;
    tracing::info!(?summary, "dashboard imported a snapshot");
    Ok(summary)
}

/// The page a form post without JavaScript gets back.
fn summary_page(operator: &Operator, summary: &ImportSummary) -> maud::Markup {
    let documents: u64 = summary.tables.iter().map(|(_, n)| n).sum();
    let body = html! {
        p #import-summary.ok {
            "Imported " (documents) " documents into " (summary.tables.len()) " tables"
            @if summary.deleted > 0 { ", replacing " (summary.deleted) }
            @if summary.files > 0 { ", and " (summary.files) " stored files" }
            "."
        }
        table {
            tr { th { "table" } th { "documents" } }
            @for (table, count) in &summary.tables {
                tr { td { (table) } td { (count) } }
            }
        }
        p { a href="/dashboard/data" { "Back to the data" } }
    };
    shell("Import", Section::Data, operator, body)
}

/// The import form as a browser posts it without JavaScript.
#[derive(Default)]
struct ImportForm {
    snapshot: Option<Bytes>,
    mode: Option<String>,
    csrf: Option<String>,
}

impl ImportForm {
    /// Reads the parts, refusing a second file, a repeated or unknown field, a text field
    /// longer than [`MAX_TEXT_FIELD`] and a body past `limit` (the route's body limit).
    async fn read(mut multipart: Multipart, limit: usize) -> Result<ImportForm, DashboardError> {
        let refused = |error: axum::extract::multipart::MultipartError| {
            if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
                DashboardError::TooLarge(limit)
            } else {
                DashboardError::BadForm(format!(
                    "The import form is not valid multipart/form-data: {}",
                    error.body_text()
                ))
            }
        };
        let mut form = ImportForm::default();
        while let Some(mut field) = multipart.next_field().await.map_err(refused)? {
            let name = field.name().unwrap_or_default().to_owned();
            if name == "snapshot" {
                if form.snapshot.is_some() {
                    return Err(DashboardError::BadForm(
                        "Send one snapshot ZIP at a time".into(),
                    ));
                }
                form.snapshot = Some(field.bytes().await.map_err(refused)?);
                continue;
            }
            let slot = match name.as_str() {
                "mode" => &mut form.mode,
                "csrf" => &mut form.csrf,
                _ => {
                    return Err(DashboardError::BadForm(format!(
                        "The import form has no field {name:?}"
                    )));
                }
            };
            if slot.is_some() {
                return Err(DashboardError::BadForm(format!(
                    "The import form's field {name:?} came twice"
                )));
            }
            let mut text = Vec::new();
            while let Some(chunk) = field.chunk().await.map_err(refused)? {
                text.extend_from_slice(&chunk);
                if text.len() > MAX_TEXT_FIELD {
                    return Err(DashboardError::BadForm(format!(
                        "The import form's field {name:?} is longer than {MAX_TEXT_FIELD} bytes"
                    )));
                }
            }
            let text = String::from_utf8(text).map_err(|_| {
                DashboardError::BadForm(format!("The import form's field {name:?} is not text"))
            })?;
            *slot = Some(text);
        }
        Ok(form)
    }
}

//! The operators' data routes under `/api/admin/` — what `keel export / import / data / run`
//! and the dashboard call. Every one takes the `Admin` extractor of `admin` (the admin key,
//! `Authorization: Convex <key>`, as Convex's CLI sends it); without it, or with a wrong one,
//! each answers 401 before doing anything.
//!
//! | route | what |
//! |---|---|
//! | `GET /api/admin/export?includeStorage=true` | a snapshot ZIP, streamed as it is written |
//! | `POST /api/admin/import?mode=requireEmpty\|replace\|append` | imports the ZIP in the body (at most [`BackendConfig::max_import_bytes`](keel_backend_core::BackendConfig::max_import_bytes)) in one commit; answers what it imported |
//! | `GET /api/admin/tables` | `[{"name", "documents"}]`, the user tables with their counts |
//! | `GET /api/admin/tables/{table}?after=<id>&limit=N` | `{"documents": [...], "next": <id>\|null}`, documents in export JSON, `_id` order |
//! | `POST /api/admin/run` `{"path", "args", "identity"?}` | runs a public function as anonymous or as the given `UserIdentity` fields; answers the HTTP API's envelope |

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use keel_backend_core::{Backend, ErrorClass, FunctionKind, Identity};
use keel_db::DbError;
use keel_db::snapshot::{ExportOptions, ImportMode, ImportOptions, SnapshotError};
use keel_protocol::http::{FunctionResponse, HttpErrorBody, ResponseFormat};
use keel_values::DocumentId;
use serde::Deserialize;
use tokio::io::AsyncReadExt;

use crate::admin::Admin;
use crate::error_class::http_status;

/// The routes' common prefix.
pub(crate) const ADMIN_PREFIX: &str = "/api/admin";

/// The admin routes, with the import route's body limit from the backend's configuration.
pub(crate) fn admin_router(backend: &Backend) -> Router<Backend> {
    let import_limit = backend.config().max_import_bytes;
    Router::new()
        .route(&format!("{ADMIN_PREFIX}/export"), get(export))
        .route(
            &format!("{ADMIN_PREFIX}/import"),
            post(import).layer(axum::extract::DefaultBodyLimit::max(import_limit)),
        )
        .route(&format!("{ADMIN_PREFIX}/tables"), get(tables))
        .route(&format!("{ADMIN_PREFIX}/tables/{{table}}"), get(documents))
        .route(&format!("{ADMIN_PREFIX}/run"), post(run))
}

/// Why an admin request was refused or failed; a `{"code", "message"}` body with the status of
/// its class.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AdminError {
    /// A query parameter or body that is not what the route takes.
    #[error("{0}")]
    BadRequest(String),
    /// The import body is over the limit.
    #[error("The snapshot is larger than the limit of {0} bytes (--max-import-bytes)")]
    TooLarge(usize),
    /// The export or import failed.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// The database refused.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl AdminError {
    fn code(&self) -> &'static str {
        match self {
            AdminError::BadRequest(_) => "BadAdminRequest",
            AdminError::TooLarge(_) => "RequestTooLarge",
            AdminError::Snapshot(e) => e.code(),
            AdminError::Db(e) => e.code(),
        }
    }

    fn class(&self) -> ErrorClass {
        match self {
            AdminError::BadRequest(_) => ErrorClass::BadRequest,
            AdminError::TooLarge(_) => ErrorClass::PayloadTooLarge,
            AdminError::Snapshot(e) if e.is_bad_request() => ErrorClass::BadRequest,
            AdminError::Snapshot(_) => ErrorClass::Unavailable,
            AdminError::Db(DbError::TableNotFound(_)) => ErrorClass::NotFound,
            AdminError::Db(DbError::Storage(_) | DbError::NotCommitter(_)) => {
                ErrorClass::Unavailable
            }
            AdminError::Db(_) => ErrorClass::BadRequest,
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let code = self.code();
        tracing::info!(code, error = %self, "admin request refused");
        let body = HttpErrorBody {
            code: code.to_owned(),
            message: self.to_string(),
        };
        (http_status(self.class()), Json(body)).into_response()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ExportParams {
    #[serde(default)]
    include_storage: bool,
}

/// `GET …/export` (see [`export_response`]).
async fn export(
    _: Admin,
    State(backend): State<Backend>,
    params: Result<Query<ExportParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, AdminError> {
    let Query(params) = params.map_err(|e| AdminError::BadRequest(e.body_text()))?;
    Ok(export_response(&backend, params.include_storage)?)
}

/// A snapshot export as a streamed ZIP download (this route's and the dashboard's): the ZIP is
/// written by a task of the backend into a pipe whose other end is the response body, so the
/// response starts at once and memory holds a page.
pub(crate) fn export_response(
    backend: &Backend,
    include_storage: bool,
) -> Result<Response, SnapshotError> {
    let file_storage = match (include_storage, &backend.config().storage.blobs) {
        (false, _) => None,
        (true, Some(blobs)) => Some(blobs.0.clone()),
        (true, None) => {
            return Err(SnapshotError::StorageNotConfigured(
                "this deployment has no file storage to include".into(),
            ));
        }
    };
    let (writer, reader) = tokio::io::duplex(256 * 1024);
    let db = backend.database().clone();
    backend.tasks().spawn("snapshot export", async move {
        match db
            .export_snapshot(writer, ExportOptions { file_storage })
            .await
        {
            Ok(summary) => tracing::info!(
                tables = summary.tables.len(),
                files = summary.files,
                "exported snapshot"
            ),
            // The client sees a truncated ZIP, which no reader accepts.
            Err(error) => tracing::warn!(%error, "snapshot export failed"),
        }
    });
    let chunks = futures::stream::unfold(reader, |mut reader| async move {
        let mut buffer = vec![0u8; 64 * 1024];
        match reader.read(&mut buffer).await {
            Ok(0) => None,
            Ok(n) => {
                buffer.truncate(n);
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buffer)), reader))
            }
            Err(error) => Some((Err(error), reader)),
        }
    });
    let name = format!(
        "attachment; filename=\"snapshot_{}.zip\"",
        backend.latest_ts()
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip".to_owned()),
            (header::CONTENT_DISPOSITION, name),
        ],
        Body::from_stream(chunks.boxed()),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ImportParams {
    mode: Option<String>,
}

/// `POST …/import?mode=…` with the ZIP as the body.
async fn import(
    _: Admin,
    State(backend): State<Backend>,
    params: Result<Query<ImportParams>, axum::extract::rejection::QueryRejection>,
    body: Result<bytes::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, AdminError> {
    let Query(params) = params.map_err(|e| AdminError::BadRequest(e.body_text()))?;
    let mode = import_mode(params.mode.as_deref()).map_err(AdminError::BadRequest)?;
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AdminError::TooLarge(backend.config().max_import_bytes)
        } else {
            AdminError::BadRequest(rejection.body_text())
        }
    })?;
    let summary = import_snapshot(&backend, body, mode).await?;
    Ok(Json(summary).into_response())
}

/// An import's `mode` parameter (`requireEmpty`, the default, `replace` or `append`), or why
/// it is not one.
pub(crate) fn import_mode(mode: Option<&str>) -> Result<ImportMode, String> {
    match mode {
        None | Some("requireEmpty") => Ok(ImportMode::RequireEmpty),
        Some("replace") => Ok(ImportMode::Replace),
        Some("append") => Ok(ImportMode::Append),
        Some(other) => Err(format!(
            "mode `{other}` is not one of requireEmpty, replace, append"
        )),
    }
}

/// Imports a snapshot ZIP into the deployment in one commit, with its stored files when the
/// deployment keeps files (the admin route and the dashboard's import).
pub(crate) async fn import_snapshot(
    backend: &Backend,
    zip: bytes::Bytes,
    mode: ImportMode,
) -> Result<keel_db::snapshot::ImportSummary, SnapshotError> {
    let options = ImportOptions {
        mode,
        file_storage: backend.config().storage.blobs.as_ref().map(|b| b.0.clone()),
        ..ImportOptions::default()
    };
    backend.database().import_snapshot(zip, options).await
}

/// `GET …/tables`.
async fn tables(_: Admin, State(backend): State<Backend>) -> Result<Response, AdminError> {
    Ok(Json(backend.database().table_summaries().await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PageParams {
    after: Option<String>,
    limit: Option<usize>,
}

/// `GET …/tables/{table}?after=&limit=`.
async fn documents(
    _: Admin,
    State(backend): State<Backend>,
    Path(table): Path<String>,
    params: Result<Query<PageParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, AdminError> {
    let Query(params) = params.map_err(|e| AdminError::BadRequest(e.body_text()))?;
    let after = match params.after.as_deref() {
        None => None,
        Some(text) => Some(
            text.parse::<DocumentId>()
                .map_err(|e| AdminError::BadRequest(format!("`after`: {e}")))?,
        ),
    };
    let page = backend
        .database()
        .documents_page(&table, after, params.limit.unwrap_or(100))
        .await?;
    let documents: Vec<serde_json::Value> = page
        .documents
        .iter()
        .map(keel_db::snapshot::document_to_export_json)
        .collect();
    Ok(Json(serde_json::json!({
        "documents": documents,
        "next": page.next.map(|id| id.to_string()),
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunRequest {
    path: String,
    #[serde(default)]
    args: Option<serde_json::Value>,
    /// `UserIdentity` fields (`subject` required); anonymous when absent.
    #[serde(default)]
    identity: Option<serde_json::Map<String, serde_json::Value>>,
}

/// `POST …/run`: a public function run as anonymous or as the given identity.
async fn run(
    _: Admin,
    State(backend): State<Backend>,
    body: Result<Json<RunRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, AdminError> {
    let Json(request) = body.map_err(|e| AdminError::BadRequest(e.body_text()))?;
    let path = keel_protocol::normalize_udf_path(&request.path)
        .map_err(|e| AdminError::BadRequest(e.to_string()))?;
    let args = request
        .args
        .unwrap_or_else(|| serde_json::Value::Object(Default::default()));
    let args =
        keel_protocol::request_args(&args).map_err(|e| AdminError::BadRequest(e.to_string()))?;
    let identity = match &request.identity {
        None => Identity::Anonymous,
        Some(fields) => Identity::acting_as(
            keel_auth::UserIdentity::acting_as(fields)
                .map_err(|e| AdminError::BadRequest(format!("`identity`: {e}")))?,
        ),
    };
    let result = match backend.function_kind(&path) {
        None => Err(backend.not_found(&path)),
        Some(FunctionKind::Query) => backend.run_query(&path, &args, &identity, None).await,
        Some(FunctionKind::Mutation) => backend
            .run_mutation(&path, args, &identity)
            .await
            .map(|(value, _)| value),
        Some(FunctionKind::Action) => backend.run_action(&path, args, &identity).await,
    };
    let response = match result {
        Ok(value) => FunctionResponse::success(&value, ResponseFormat::ConvexJson, vec![]),
        Err(error) => FunctionResponse::error(
            error.client_message(),
            error.error_data(),
            ResponseFormat::ConvexJson,
            vec![],
        ),
    };
    Ok(Json(response).into_response())
}

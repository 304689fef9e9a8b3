//! The scheduler page — scheduled functions (newest first, cancel a pending or running
//! one) and the crons with their next and last runs — and the files page: the stored files'
//! metadata with links to their bytes. All read from the system tables at the latest commit.

use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use keel_db::{CRON_JOBS, Database, Document, Order, SCHEDULED_FUNCTIONS, STORAGE_TABLE};
use keel_values::{DocumentId, Value};
use maud::{Markup, html};

use super::Dashboard;
use super::data::CsrfOnly;
use super::error::DashboardError;
use super::page::{Section, csrf_field, json_text, shell, time_ms};
use super::session::Operator;

/// How many documents of a system table a page shows.
const SHOWN: usize = 200;

async fn newest(db: &Database, table: &str) -> Result<Vec<Document>, DashboardError> {
    let mut tx = db.begin();
    Ok(tx
        .system_query(table)
        .order(Order::Desc)
        .take(SHOWN)
        .await?)
}

fn text<'a>(document: &'a Document, field: &str) -> &'a str {
    document
        .fields
        .get(field)
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn time_of(document: &Document, field: &str) -> String {
    document
        .fields
        .get(field)
        .and_then(Value::as_f64)
        .map_or_else(|| "—".to_owned(), time_ms)
}

fn json_of(value: Option<&Value>) -> String {
    value.map_or_else(String::new, |v| json_text(&keel_values::to_json(v)))
}

/// `GET /dashboard/scheduler`.
pub(crate) async fn scheduler(
    operator: Operator,
    State(dashboard): State<Dashboard>,
) -> Result<Markup, DashboardError> {
    let db = dashboard.backend.database();
    let jobs = newest(db, SCHEDULED_FUNCTIONS).await?;
    let crons = newest(db, CRON_JOBS).await?;
    let body = html! {
        h2 { "Scheduled functions" }
        section #jobs data-live {
            table.jobs {
                tr { th { "id" } th { "function" } th { "scheduled for" } th { "state" } th { "arguments" } th {} }
                @for job in &jobs {
                    @let state = job.fields.get("state").and_then(Value::as_object)
                        .and_then(|s| s.get("kind")).and_then(Value::as_str).unwrap_or("");
                    tr data-id=(job.id) {
                        td { code { (job.id) } }
                        td { code { (text(job, "name")) } }
                        td { (time_of(job, "scheduledTime")) }
                        td.state { pre { (json_of(job.fields.get("state"))) } }
                        td { pre { (json_of(job.fields.get("args"))) } }
                        td {
                            @if state == "pending" || state == "inProgress" {
                                form.inline method="post" action={"/dashboard/scheduler/" (job.id) "/cancel"} {
                                    (csrf_field(&operator))
                                    button type="submit" { "Cancel" }
                                }
                            }
                        }
                    }
                }
            }
            @if jobs.is_empty() { p.hint { "Nothing scheduled." } }
        }
        h2 { "Crons" }
        section #crons data-live {
            table.crons {
                tr { th { "name" } th { "schedule" } th { "function" } th { "next run" } th { "last run" } }
                @for cron in &crons {
                    tr {
                        td { (text(cron, "name")) }
                        td { (text(cron, "schedule")) }
                        td { code { (text(cron, "function")) } }
                        td { (time_of(cron, "nextRun")) }
                        td { pre { (json_of(cron.fields.get("lastRun"))) } }
                    }
                }
            }
            @if crons.is_empty() { p.hint { "No crons." } }
        }
    };
    Ok(shell("Scheduler", Section::Scheduler, &operator, body))
}

/// `POST /dashboard/scheduler/{id}/cancel`.
pub(crate) async fn cancel(
    operator: Operator,
    State(dashboard): State<Dashboard>,
    Path(id): Path<String>,
    form: Result<Form<CsrfOnly>, axum::extract::rejection::FormRejection>,
) -> Result<Response, DashboardError> {
    let Form(form) = form.map_err(|e| DashboardError::BadForm(e.body_text()))?;
    operator.check_csrf(&form.csrf)?;
    let id: DocumentId = id
        .parse()
        .map_err(|_| DashboardError::NotFound(format!("no scheduled function {id}")))?;
    dashboard
        .backend
        .cancel_scheduled(id)
        .await
        .map_err(DashboardError::Function)?;
    tracing::info!(%id, "dashboard canceled a scheduled function");
    Ok(Redirect::to("/dashboard/scheduler").into_response())
}

/// `GET /dashboard/files`.
pub(crate) async fn files(
    operator: Operator,
    State(dashboard): State<Dashboard>,
) -> Result<Markup, DashboardError> {
    let files = newest(dashboard.backend.database(), STORAGE_TABLE).await?;
    let body = html! {
        section #files data-live {
            table.files {
                tr { th { "storage id" } th { "stored" } th { "size" } th { "content type" } th { "sha256" } }
                @for file in &files {
                    tr {
                        td { a href={"/api/storage/" (file.id)} { code { (file.id) } } }
                        td { (time_ms(file.creation_time)) }
                        td { (json_of(file.fields.get("size"))) }
                        td { (text(file, "contentType")) }
                        td { code { (text(file, "sha256")) } }
                    }
                }
            }
            @if files.is_empty() { p.hint { "No stored files." } }
        }
    };
    Ok(shell("Files", Section::Files, &operator, body))
}

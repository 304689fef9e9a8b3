//! The data pages: the user tables with their document counts and indexes; a table's
//! documents a page at a time through any of its indexes, filtered by an index range; a
//! document inserted, edited (replaced) or deleted — each write one commit, validated by the
//! schema like a mutation's, so a refused one changes nothing and says why.
//!
//! Documents are shown and edited in Convex's JSON encoding (`{"$integer": …}` for an int64,
//! `{"$bytes": …}` for bytes), the one the HTTP API speaks. The index-range filter takes the
//! values in the same encoding: `eq`, a JSON array of values for the index's first fields;
//! `gte` and `lt`, bounds on the field after them.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use keel_db::{Database, Document, IndexRange, IndexSummary, Order, PaginationOptions};
use keel_values::{DocumentId, Object, Value};
use maud::{Markup, html};
use serde::Deserialize;

use super::Dashboard;
use super::error::DashboardError;
use super::page::{Section, csrf_field, json_text, shell, time_ms};
use super::session::Operator;

/// Documents on one page of the browser.
const PAGE_SIZE: usize = 50;

/// `GET /dashboard/data`.
pub(crate) async fn tables(
    operator: Operator,
    State(dashboard): State<Dashboard>,
) -> Result<Markup, DashboardError> {
    let db = dashboard.backend.database();
    let summaries = db.table_summaries().await?;
    let mut rows = Vec::with_capacity(summaries.len());
    for table in summaries {
        let indexes = db.table_indexes(&table.name)?;
        rows.push((table, indexes));
    }
    let body = html! {
        table #tables data-live {
            tr { th { "table" } th { "documents" } th { "indexes" } }
            @for (table, indexes) in &rows {
                tr {
                    td { a href={"/dashboard/data/" (table.name)} { (table.name) } }
                    td.count { (table.documents) }
                    td { (index_list(indexes)) }
                }
            }
        }
        @if rows.is_empty() { p.hint { "No tables yet." } }
        p {
            "Export a snapshot (Convex's ZIP format, as " code { "keel export" } "): "
            a #export href="/dashboard/export" { "documents" } " · "
            a href="/dashboard/export?includeStorage=true" { "documents and stored files" }
            "."
        }
        form #import method="post" action="/dashboard/import" enctype="multipart/form-data"
            data-import data-csrf=(operator.csrf) {
            (csrf_field(&operator))
            "Import a snapshot in one commit (as " code { "keel import" } "): "
            input type="file" name="snapshot" accept=".zip,application/zip" required;
            " "
            select name="mode" {
                option value="requireEmpty" { "into empty tables" }
                option value="append" { "appending" }
                option value="replace" { "replacing the tables it names" }
            }
            " "
            button { "Import" }
            output #import-result {}
        }
    };
    Ok(shell("Data", Section::Data, &operator, body))
}

fn index_list(indexes: &[IndexSummary]) -> Markup {
    html! {
        @for (n, index) in indexes.iter().enumerate() {
            @if n > 0 { ", " }
            code { (index.name) } " (" (index.fields.join(", ")) ")"
        }
    }
}

/// The browser's query string.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BrowseParams {
    #[serde(default)]
    index: String,
    #[serde(default)]
    eq: String,
    #[serde(default)]
    gte: String,
    #[serde(default)]
    lt: String,
    #[serde(default)]
    order: String,
    #[serde(default)]
    cursor: String,
}

impl BrowseParams {
    fn index(&self) -> &str {
        if self.index.is_empty() {
            "by_creation_time"
        } else {
            &self.index
        }
    }

    fn order(&self) -> Order {
        match self.order.as_str() {
            "asc" => Order::Asc,
            _ => Order::Desc,
        }
    }

    /// This query string with another cursor.
    fn with_cursor(&self, cursor: &str) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("index", self.index())
            .append_pair("eq", &self.eq)
            .append_pair("gte", &self.gte)
            .append_pair("lt", &self.lt)
            .append_pair(
                "order",
                if self.order() == Order::Asc {
                    "asc"
                } else {
                    "desc"
                },
            )
            .append_pair("cursor", cursor)
            .finish()
    }
}

/// One Convex value in its JSON encoding.
fn filter_value(what: &str, text: &str) -> Result<Value, DashboardError> {
    let json: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| DashboardError::BadFilter(format!("`{what}` is not JSON: {e}")))?;
    keel_values::from_json(&json)
        .map_err(|e| DashboardError::BadFilter(format!("`{what}` is not a Convex value: {e}")))
}

/// The range the filter's fields describe over `index`.
fn index_range(index: &IndexSummary, params: &BrowseParams) -> Result<IndexRange, DashboardError> {
    let mut range = IndexRange::new();
    let mut used = 0;
    if !params.eq.trim().is_empty() {
        let Value::Array(values) = filter_value("eq", &params.eq)? else {
            return Err(DashboardError::BadFilter(
                "`eq` must be a JSON array of values, one per leading field of the index".into(),
            ));
        };
        if values.len() > index.fields.len() {
            return Err(DashboardError::BadFilter(format!(
                "`eq` has {} values but the index {} has {} fields ({})",
                values.len(),
                index.name,
                index.fields.len(),
                index.fields.join(", ")
            )));
        }
        used = values.len();
        for (field, value) in index.fields.iter().zip(values) {
            range = range.eq(field, value);
        }
    }
    let bounds = [("gte", &params.gte), ("lt", &params.lt)];
    if bounds.iter().any(|(_, text)| !text.trim().is_empty()) {
        let field = index.fields.get(used).ok_or_else(|| {
            DashboardError::BadFilter(format!(
                "no field of the index {} is left for a range after the equalities",
                index.name
            ))
        })?;
        if !params.gte.trim().is_empty() {
            range = range.gte(field, filter_value("gte", &params.gte)?);
        }
        if !params.lt.trim().is_empty() {
            range = range.lt(field, filter_value("lt", &params.lt)?);
        }
    }
    Ok(range)
}

/// The table's indexes, or `TableNotFound` for a table that does not exist or is a system
/// table (the dashboard never creates a table by writing to it).
fn indexes_of(db: &Database, table: &str) -> Result<Vec<IndexSummary>, DashboardError> {
    Ok(db.table_indexes(table)?)
}

/// A page of documents: those of the filter's range, after its cursor.
async fn read_page(
    db: &Database,
    table: &str,
    index: &IndexSummary,
    params: &BrowseParams,
) -> Result<keel_db::PaginationResult<Document>, DashboardError> {
    let range = index_range(index, params)?;
    let mut options = PaginationOptions::first(PAGE_SIZE);
    if !params.cursor.is_empty() {
        options.cursor = Some(params.cursor.clone());
    }
    let mut tx = db.begin();
    let page = tx
        .query(table)
        .with_index(&index.name, |_| range)
        .order(params.order())
        .paginate(options)
        .await
        .map_err(|e| match e {
            keel_db::DbError::TableNotFound(_) => DashboardError::Db(e),
            other => DashboardError::BadFilter(other.to_string()),
        })?;
    Ok(page)
}

/// The fields of a document (no system fields) in Convex's JSON encoding.
fn fields_json(document: &Document) -> serde_json::Value {
    keel_values::to_json(&Value::Object(document.fields.clone()))
}

/// `GET /dashboard/data/{table}`.
pub(crate) async fn browse(
    operator: Operator,
    State(dashboard): State<Dashboard>,
    Path(table): Path<String>,
    params: Result<Query<BrowseParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, DashboardError> {
    let Query(params) = params.map_err(|e| DashboardError::BadForm(e.body_text()))?;
    let db = dashboard.backend.database();
    let indexes = indexes_of(db, &table)?;
    let page = match indexes.iter().find(|i| i.name == params.index()) {
        None => Err(DashboardError::BadFilter(format!(
            "the table {table} has no index {}",
            params.index()
        ))),
        Some(index) => read_page(db, &table, index, &params).await,
    };
    let status = match &page {
        Ok(_) => StatusCode::OK,
        Err(error) => error.status(),
    };
    let body = html! {
        p { "Indexes: " (index_list(&indexes)) }
        form #filter method="get" action={"/dashboard/data/" (table)} {
            label { "Index "
                select name="index" {
                    @for index in &indexes {
                        option value=(index.name) selected[index.name == params.index()] {
                            (index.name) " (" (index.fields.join(", ")) ")"
                        }
                    }
                }
            }
            label { "eq (JSON array, leading fields) " input name="eq" value=(params.eq) placeholder="[\"value\"]"; }
            label { "gte (next field) " input name="gte" value=(params.gte); }
            label { "lt (next field) " input name="lt" value=(params.lt); }
            label { "Order "
                select name="order" {
                    option value="desc" selected[params.order() == Order::Desc] { "newest first" }
                    option value="asc" selected[params.order() == Order::Asc] { "oldest first" }
                }
            }
            button type="submit" { "Filter" }
        }
        section #documents data-live {
            @match &page {
                Err(error) => p.error { strong { (error.code()) } ": " (error.to_string()) },
                Ok(page) => {
                    table.documents {
                        tr { th { "_id" } th { "_creationTime" } th { "fields" } th {} }
                        @for document in &page.page {
                            tr data-id=(document.id) {
                                td { code { (document.id) } }
                                td { (time_ms(document.creation_time)) }
                                td { pre.fields { (json_text(&fields_json(document))) } }
                                td {
                                    a href={"/dashboard/data/" (table) "/" (document.id)} { "edit" }
                                }
                            }
                        }
                    }
                    @if page.page.is_empty() { p.hint { "No documents in this range." } }
                    @if !page.is_done {
                        a.next href={"/dashboard/data/" (table) "?" (params.with_cursor(&page.continue_cursor))} { "Next page" }
                    }
                }
            }
        }
        h2 { "Insert a document" }
        (document_form(&operator, &format!("/dashboard/data/{table}"), "{}", "Insert", None))
    };
    Ok((status, shell(&table, Section::Data, &operator, body)).into_response())
}

/// The form of a document's fields.
fn document_form(
    operator: &Operator,
    action: &str,
    text: &str,
    button: &str,
    error: Option<&DashboardError>,
) -> Markup {
    html! {
        @if let Some(error) = error {
            p.error { strong { (error.code()) } ": " (error.to_string()) }
        }
        form.document method="post" action=(action) {
            (csrf_field(operator))
            textarea name="document" spellcheck="false" { (text) }
            button type="submit" { (button) }
        }
    }
}

/// A document form's fields.
#[derive(Deserialize)]
pub(crate) struct DocumentForm {
    #[serde(default)]
    csrf: String,
    document: String,
}

/// The fields of a typed-in document: a JSON object of Convex values. `_id` and
/// `_creationTime` (a document pasted whole) are left out; they are the database's.
fn parse_document(text: &str) -> Result<Object, DashboardError> {
    let json: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| DashboardError::BadDocument(format!("not JSON: {e}")))?;
    let serde_json::Value::Object(mut object) = json else {
        return Err(DashboardError::BadDocument(
            "a document is a JSON object".into(),
        ));
    };
    object.remove("_id");
    object.remove("_creationTime");
    match keel_values::from_json(&serde_json::Value::Object(object))
        .map_err(|e| DashboardError::BadDocument(e.to_string()))?
    {
        Value::Object(fields) => Ok(fields),
        _ => Err(DashboardError::BadDocument(
            "a document is a JSON object".into(),
        )),
    }
}

/// The document `id` of `table`, or `NotFound`.
fn document_id(db: &Database, table: &str, id: &str) -> Result<DocumentId, DashboardError> {
    let not_found = || DashboardError::NotFound(format!("no document {id} in {table}"));
    let id: DocumentId = id.parse().map_err(|_| not_found())?;
    match db.begin().table_name(&id) {
        Some(name) if name == table => Ok(id),
        _ => Err(not_found()),
    }
}

/// A write refused: the form again, with the error and what was typed.
fn refused(
    operator: &Operator,
    table: &str,
    action: &str,
    text: &str,
    error: DashboardError,
) -> Response {
    let body = html! {
        p { a href={"/dashboard/data/" (table)} { "Back to " (table) } }
        (document_form(operator, action, text, "Save", Some(&error)))
    };
    tracing::info!(code = error.code(), %error, "dashboard write refused");
    (error.status(), shell(table, Section::Data, operator, body)).into_response()
}

/// `POST /dashboard/data/{table}`: inserts the document.
pub(crate) async fn insert(
    operator: Operator,
    State(dashboard): State<Dashboard>,
    Path(table): Path<String>,
    form: Result<Form<DocumentForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, DashboardError> {
    let Form(form) = form.map_err(|e| DashboardError::BadForm(e.body_text()))?;
    operator.check_csrf(&form.csrf)?;
    let db = dashboard.backend.database();
    indexes_of(db, &table)?;
    let action = format!("/dashboard/data/{table}");
    let written = async {
        let fields = parse_document(&form.document)?;
        let mut tx = db.begin();
        let id = tx.insert(&table, fields).await?;
        db.commit(tx).await?;
        Ok::<_, DashboardError>(id)
    };
    match written.await {
        Ok(id) => {
            tracing::info!(%table, %id, "dashboard inserted a document");
            Ok(Redirect::to(&format!("/dashboard/data/{table}")).into_response())
        }
        Err(error) => Ok(refused(&operator, &table, &action, &form.document, error)),
    }
}

/// `GET /dashboard/data/{table}/{id}`: the document's edit form.
pub(crate) async fn edit_form(
    operator: Operator,
    State(dashboard): State<Dashboard>,
    Path((table, id)): Path<(String, String)>,
) -> Result<Markup, DashboardError> {
    let db = dashboard.backend.database();
    let id = document_id(db, &table, &id)?;
    let document = db
        .begin()
        .get(id)
        .await?
        .ok_or_else(|| DashboardError::NotFound(format!("no document {id} in {table}")))?;
    let action = format!("/dashboard/data/{table}/{id}");
    let body = html! {
        p { a href={"/dashboard/data/" (table)} { "Back to " (table) } }
        p { "_id " code { (id) } ", _creationTime " (time_ms(document.creation_time)) }
        (document_form(&operator, &action, &json_text(&fields_json(&document)), "Save", None))
        form.delete method="post" action={(action) "/delete"} {
            (csrf_field(&operator))
            button type="submit" { "Delete this document" }
        }
    };
    Ok(shell(&table, Section::Data, &operator, body))
}

/// `POST /dashboard/data/{table}/{id}`: replaces the document's fields.
pub(crate) async fn replace(
    operator: Operator,
    State(dashboard): State<Dashboard>,
    Path((table, id)): Path<(String, String)>,
    form: Result<Form<DocumentForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, DashboardError> {
    let Form(form) = form.map_err(|e| DashboardError::BadForm(e.body_text()))?;
    operator.check_csrf(&form.csrf)?;
    let db = dashboard.backend.database();
    let id = document_id(db, &table, &id)?;
    let action = format!("/dashboard/data/{table}/{id}");
    let written = async {
        let fields = parse_document(&form.document)?;
        let mut tx = db.begin();
        tx.replace(id, fields).await?;
        db.commit(tx).await?;
        Ok::<_, DashboardError>(())
    };
    match written.await {
        Ok(()) => {
            tracing::info!(%table, %id, "dashboard replaced a document");
            Ok(Redirect::to(&format!("/dashboard/data/{table}")).into_response())
        }
        Err(error) => Ok(refused(&operator, &table, &action, &form.document, error)),
    }
}

/// The export link's query string.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ExportParams {
    #[serde(default)]
    include_storage: bool,
}

/// `GET /dashboard/export`: the snapshot ZIP, streamed as `GET /api/admin/export` streams it.
pub(crate) async fn export(
    _: Operator,
    State(dashboard): State<Dashboard>,
    params: Result<Query<ExportParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, DashboardError> {
    let Query(params) = params.map_err(|e| DashboardError::BadForm(e.body_text()))?;
    Ok(crate::admin_routes::export_response(
        &dashboard.backend,
        params.include_storage,
    )?)
}

/// A form with only the CSRF field.
#[derive(Deserialize)]
pub(crate) struct CsrfOnly {
    #[serde(default)]
    pub(crate) csrf: String,
}

/// `POST /dashboard/data/{table}/{id}/delete`.
pub(crate) async fn delete(
    operator: Operator,
    State(dashboard): State<Dashboard>,
    Path((table, id)): Path<(String, String)>,
    form: Result<Form<CsrfOnly>, axum::extract::rejection::FormRejection>,
) -> Result<Response, DashboardError> {
    let Form(form) = form.map_err(|e| DashboardError::BadForm(e.body_text()))?;
    operator.check_csrf(&form.csrf)?;
    let db = dashboard.backend.database();
    let id = document_id(db, &table, &id)?;
    let mut tx = db.begin();
    tx.delete(id).await?;
    db.commit(tx).await?;
    tracing::info!(%table, %id, "dashboard deleted a document");
    Ok(Redirect::to(&format!("/dashboard/data/{table}")).into_response())
}

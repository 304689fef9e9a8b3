//! The functions page: every function the app registered, with its kind and visibility, and
//! running one with JSON arguments as anonymous or as an identity (`UserIdentity` fields,
//! `subject` required) — its result or error and the lines it logged.
//!
//! A run is the app's own call ([`Backend::run_as_operator`](keel_backend_core::Backend)):
//! internal functions run too, as in Convex's dashboard; it is recorded in the execution log
//! like any other.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keel_backend_core::{FunctionKind, Identity, Visibility};
use maud::{Markup, html};
use serde::Deserialize;

use super::Dashboard;
use super::error::DashboardError;
use super::page::{Section, csrf_field, json_text, shell};
use super::session::Operator;

fn kind_name(kind: FunctionKind) -> &'static str {
    kind.name()
}

fn visibility_name(visibility: Visibility) -> &'static str {
    match visibility {
        Visibility::Public => "public",
        Visibility::Internal => "internal",
    }
}

fn run_href(path: &str) -> String {
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("path", path)
        .finish();
    format!("/dashboard/functions/run?{query}")
}

/// `GET /dashboard/functions`.
pub(crate) async fn list(operator: Operator, State(dashboard): State<Dashboard>) -> Markup {
    let functions = dashboard.backend.functions();
    let body = html! {
        table #functions {
            tr { th { "path" } th { "kind" } th { "visibility" } th {} }
            @for function in &functions {
                tr {
                    td { code { (function.path) } }
                    td { (kind_name(function.kind)) }
                    td { (visibility_name(function.visibility)) }
                    td { a href=(run_href(&function.path)) { "run" } }
                }
            }
        }
    };
    shell("Functions", Section::Functions, &operator, body)
}

/// The run form's query string and fields.
#[derive(Default, Deserialize)]
pub(crate) struct RunForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    args: String,
    /// `UserIdentity` fields as JSON; empty: anonymous.
    #[serde(default)]
    identity: String,
}

fn run_page(operator: &Operator, form: &RunForm, outcome: Option<Markup>) -> Markup {
    let args = if form.args.trim().is_empty() {
        "{}"
    } else {
        &form.args
    };
    let body = html! {
        form.run method="post" action="/dashboard/functions/run" {
            (csrf_field(operator))
            label { "Function " input name="path" value=(form.path) required; }
            label { "Arguments (JSON object) " textarea name="args" spellcheck="false" { (args) } }
            label {
                "Run as (UserIdentity fields as JSON, e.g. {\"subject\": \"user_…\"}; empty: anonymous) "
                textarea name="identity" spellcheck="false" { (form.identity) }
            }
            button type="submit" { "Run" }
        }
        @if let Some(outcome) = outcome { section #outcome { (outcome) } }
    };
    shell("Run a function", Section::Functions, operator, body)
}

/// `GET /dashboard/functions/run?path=…`.
pub(crate) async fn run_form(
    operator: Operator,
    form: Result<Query<RunForm>, axum::extract::rejection::QueryRejection>,
) -> Result<Markup, DashboardError> {
    let Query(form) = form.map_err(|e| DashboardError::BadForm(e.body_text()))?;
    Ok(run_page(&operator, &form, None))
}

/// The identity a run form names.
fn identity(text: &str) -> Result<Identity, DashboardError> {
    if text.trim().is_empty() {
        return Ok(Identity::Anonymous);
    }
    let json: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| DashboardError::BadArgs(format!("the identity is not JSON: {e}")))?;
    let serde_json::Value::Object(fields) = json else {
        return Err(DashboardError::BadArgs(
            "the identity is a JSON object of UserIdentity fields".into(),
        ));
    };
    let user = keel_auth::UserIdentity::acting_as(&fields)
        .map_err(|e| DashboardError::BadArgs(format!("the identity: {e}")))?;
    Ok(Identity::acting_as(user))
}

/// `POST /dashboard/functions/run`: runs and shows the outcome under the form.
pub(crate) async fn run(
    operator: Operator,
    State(dashboard): State<Dashboard>,
    form: Result<Form<RunForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, DashboardError> {
    let Form(form) = form.map_err(|e| DashboardError::BadForm(e.body_text()))?;
    operator.check_csrf(&form.csrf)?;
    let prepared = (|| {
        let path = keel_protocol::normalize_udf_path(form.path.trim())
            .map_err(|e| DashboardError::BadArgs(e.to_string()))?;
        let args_text = if form.args.trim().is_empty() {
            "{}"
        } else {
            &form.args
        };
        let args: serde_json::Value = serde_json::from_str(args_text)
            .map_err(|e| DashboardError::BadArgs(format!("the arguments are not JSON: {e}")))?;
        let args = keel_protocol::request_args(&args)
            .map_err(|e| DashboardError::BadArgs(e.to_string()))?;
        Ok::<_, DashboardError>((path, args, identity(&form.identity)?))
    })();
    let (path, args, identity) = match prepared {
        Ok(prepared) => prepared,
        Err(error) => {
            let outcome = html! { p.error { strong { (error.code()) } ": " (error.to_string()) } };
            let page = run_page(&operator, &form, Some(outcome));
            return Ok((error.status(), page).into_response());
        }
    };
    let logged = dashboard
        .backend
        .run_as_operator(&path, args, &identity)
        .await;
    let outcome = html! {
        @match &logged.result {
            Ok(value) => {
                h2.ok { "Result" }
                pre #result { (json_text(&keel_values::to_json(value))) }
            }
            Err(error) => {
                h2.failure { "Error" }
                // The operator sees the error in full, not the generic message a client gets
                // for an internal failure.
                pre #error { (error.to_string()) }
                @if let Some(data) = error.error_data() {
                    p { "Error data:" }
                    pre { (json_text(&keel_values::to_json(data))) }
                }
            }
        }
        h2 { "Log lines" }
        @if logged.log_lines.is_empty() {
            p.hint { "None." }
        } @else {
            ul #log-lines { @for line in &logged.log_lines { li { code { (line) } } } }
        }
    };
    Ok((StatusCode::OK, run_page(&operator, &form, Some(outcome))).into_response())
}

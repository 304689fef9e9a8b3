//! The users page: the users of the identity provider running in this process and their
//! active sessions, each session revocable — through the idp's Backend API with its secret
//! key ([`DashboardConfig::idp`](super::DashboardConfig)). Without a local idp (real Clerk,
//! or `keel backend` alone) the page says so and offers nothing.

use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::Dashboard;
use super::data::CsrfOnly;
use super::error::DashboardError;
use super::page::{Section, csrf_field, shell, time_ms};
use super::session::Operator;

/// How many users the page lists.
const SHOWN: usize = 100;

/// `GET /dashboard/users`.
pub(crate) async fn page(
    operator: Operator,
    State(dashboard): State<Dashboard>,
) -> Result<Markup, DashboardError> {
    let Some(idp) = &dashboard.idp else {
        let body = html! {
            p #no-idp .hint {
                "No identity provider runs in this process (the local idp runs with "
                code { "keel" } " or " code { "keel idp" } "; real Clerk's users are in Clerk's dashboard)."
            }
        };
        return Ok(shell("Users", Section::Users, &operator, body));
    };
    let users = idp.list_users(SHOWN, 0).await?;
    let mut rows = Vec::with_capacity(users.len());
    for user in users {
        let sessions = idp.active_sessions(&user.id).await?;
        rows.push((user, sessions));
    }
    let body = html! {
        table #users {
            tr { th { "user" } th { "email" } th { "name" } th { "active sessions" } th {} }
            @for (user, sessions) in &rows {
                tr data-id=(user.id) {
                    td { code { (user.id) } }
                    td { (user.email_addresses.first().map_or("", String::as_str)) }
                    td {
                        (user.first_name.as_deref().unwrap_or("")) " "
                        (user.last_name.as_deref().unwrap_or(""))
                    }
                    td {
                        @for session in sessions {
                            div.session {
                                code { (session.id) } " since " (time_ms(session.created_at as f64)) " "
                                form.inline method="post" action={"/dashboard/users/sessions/" (session.id) "/revoke"} {
                                    (csrf_field(&operator))
                                    button type="submit" { "Revoke" }
                                }
                            }
                        }
                        @if sessions.is_empty() { span.hint { "none" } }
                    }
                    td { a.run-as href=(run_as_href(idp.api_url(), user)) { "run a function as this user" } }
                }
            }
        }
        @if rows.is_empty() { p.hint { "No users yet." } }
    };
    Ok(shell("Users", Section::Users, &operator, body))
}

/// The run form, its identity set to `user` as the idp's tokens name them.
fn run_as_href(issuer: &str, user: &keel_auth::ApiUser) -> String {
    let mut identity = serde_json::json!({ "subject": user.id, "issuer": issuer });
    if let Some(email) = user.email_addresses.first() {
        identity["email"] = email.clone().into();
    }
    if let Some(name) = &user.first_name {
        identity["givenName"] = name.clone().into();
    }
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("identity", &identity.to_string())
        .finish();
    format!("/dashboard/functions/run?{query}")
}

/// `POST /dashboard/users/sessions/{id}/revoke`.
pub(crate) async fn revoke(
    operator: Operator,
    State(dashboard): State<Dashboard>,
    Path(id): Path<String>,
    form: Result<Form<CsrfOnly>, axum::extract::rejection::FormRejection>,
) -> Result<Response, DashboardError> {
    let Form(form) = form.map_err(|e| DashboardError::BadForm(e.body_text()))?;
    operator.check_csrf(&form.csrf)?;
    let idp = dashboard.idp.as_ref().ok_or_else(|| {
        DashboardError::NotFound("no identity provider runs in this process".into())
    })?;
    if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(DashboardError::NotFound(format!("no session {id}")));
    }
    idp.revoke_session(&id).await?;
    tracing::info!(session = %id, "dashboard revoked a session");
    Ok(Redirect::to("/dashboard/users").into_response())
}

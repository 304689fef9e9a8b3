//! Backend-API routes for managing users (update, metadata, delete, list, count), listing
//! sessions, email verification and password resets, and the development mailbox page.
//!
//! Clerk's own endpoints keep Clerk's shapes. Three are Keel's (Clerk does these through its
//! Frontend API, which the idp does not serve): `POST /v1/email_addresses/{id}/prepare_verification`
//! and `…/attempt_verification` (the Frontend API's `prepare` / `attempt` for an address),
//! `POST /v1/password_resets` and `POST /v1/password_resets/attempt`, and
//! `POST /v1/users/{id}/sign_out_everywhere`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{email_json, parse_body, query_pairs, session_json, user_json};
use crate::error::ApiError;
use crate::idp::Idp;
use crate::users::{UserListQuery, UserUpdate};

/// The list query of `GET /v1/users` and `GET /v1/users/count`: Clerk's names, repeated
/// (`email_address=a&email_address=b`) or bracketed (`email_address[]=a`).
fn list_query(query: Option<&str>, paging: bool) -> Result<UserListQuery, ApiError> {
    let mut q = UserListQuery::default();
    for (key, value) in query_pairs(query.unwrap_or("")) {
        let number = |param: &'static str| {
            value.trim().parse::<u32>().map_err(|_| {
                ApiError::unprocessable(
                    "form_param_format_invalid",
                    "is invalid",
                    format!(
                        "`{param}` must be a whole number, got `{}`.",
                        value.chars().take(32).collect::<String>().escape_debug()
                    ),
                )
                .param(param)
            })
        };
        match key.trim_end_matches("[]") {
            "email_address" => q.email_addresses.push(value),
            "user_id" => q.user_ids.push(value),
            "query" => q.query = Some(value),
            "order_by" if paging => q.order_by = Some(value),
            "limit" if paging => q.limit = Some(number("limit")?),
            "offset" if paging => q.offset = Some(number("offset")?),
            "username" => q.usernames.push(value),
            // The idp stores no phone numbers, wallets or external ids: such a filter matches
            // no user.
            "phone_number" | "web3_wallet" | "external_id" => q.matches_nothing = true,
            // Other parameters are ignored, as Clerk ignores unknown ones.
            _ => {}
        }
    }
    Ok(q)
}

pub(crate) async fn list_users(
    State(idp): State<Idp>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let q = list_query(query.as_deref(), true)?;
    let users = idp.list_users(&q)?;
    Ok(Json(Value::Array(users.iter().map(user_json).collect())))
}

pub(crate) async fn count_users(
    State(idp): State<Idp>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let q = list_query(query.as_deref(), false)?;
    let count = idp.count_users(&q)?;
    Ok(Json(
        json!({ "object": "total_count", "total_count": count }),
    ))
}

#[derive(Deserialize, Default)]
struct UpdateUserBody {
    first_name: Option<String>,
    last_name: Option<String>,
    username: Option<String>,
    password: Option<String>,
    #[serde(default)]
    skip_password_checks: bool,
    #[serde(default)]
    sign_out_of_other_sessions: bool,
    public_metadata: Option<Value>,
    private_metadata: Option<Value>,
    unsafe_metadata: Option<Value>,
}

pub(crate) async fn update_user(
    State(idp): State<Idp>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: UpdateUserBody = parse_body(&headers, &body)?;
    let user = idp
        .update_user(
            &id,
            UserUpdate {
                first_name: body.first_name,
                last_name: body.last_name,
                username: body.username,
                password: body.password,
                skip_password_checks: body.skip_password_checks,
                sign_out_of_other_sessions: body.sign_out_of_other_sessions,
                public_metadata: body.public_metadata,
                private_metadata: body.private_metadata,
                unsafe_metadata: body.unsafe_metadata,
            },
        )
        .await?;
    Ok(Json(user_json(&user)))
}

/// The metadata body: a field that is absent is left alone (`Option<Option<…>>` would be
/// needed to tell `null` from absent; `null` is treated as `{}` by the checks).
#[derive(Deserialize, Default)]
struct MetadataBody {
    #[serde(default, deserialize_with = "present")]
    public_metadata: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    private_metadata: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    unsafe_metadata: Option<Value>,
}

/// A field that is present (even as `null`) is `Some`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

pub(crate) async fn merge_metadata(
    State(idp): State<Idp>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    set_metadata(&idp, &id, &headers, &body, true)
}

pub(crate) async fn replace_metadata(
    State(idp): State<Idp>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    set_metadata(&idp, &id, &headers, &body, false)
}

/// `PATCH` (`merge`: Clerk's deep merge) or `PUT` (replace) of a user's metadata.
fn set_metadata(
    idp: &Idp,
    id: &str,
    headers: &HeaderMap,
    body: &Bytes,
    merge: bool,
) -> Result<Json<Value>, ApiError> {
    let b: MetadataBody = parse_body(headers, body)?;
    let user = idp.set_user_metadata(
        id,
        [b.public_metadata, b.private_metadata, b.unsafe_metadata],
        merge,
    )?;
    Ok(Json(user_json(&user)))
}

pub(crate) async fn delete_user(
    State(idp): State<Idp>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    idp.delete_user(&id)?;
    Ok(Json(json!({ "id": id, "object": "user", "deleted": true })))
}

pub(crate) async fn sign_out_everywhere(
    State(idp): State<Idp>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let revoked = idp.sign_out_everywhere(&id)?;
    Ok(Json(
        json!({ "object": "session_revocation", "user_id": id, "revoked_session_ids": revoked }),
    ))
}

/// `GET /v1/sessions?user_id=…&status=…[&paginated=true]`: an array, or with `paginated`
/// Clerk's `{ data, total_count }`.
pub(crate) async fn list_sessions(
    State(idp): State<Idp>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let pairs = query_pairs(query.as_deref().unwrap_or(""));
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let Some(user_id) = get("user_id").filter(|u| !u.is_empty()) else {
        return Err(ApiError::unprocessable(
            "form_param_missing",
            "is missing",
            "`user_id` is required (the idp has one client per session, so `client_id` alone is not supported).".to_owned(),
        )
        .param("user_id"));
    };
    let sessions = idp.user_sessions(user_id, get("status"))?;
    let list: Vec<Value> = sessions.iter().map(session_json).collect();
    if get("paginated") == Some("true") {
        let total = list.len();
        let number = |k: &str| get(k).and_then(|v| v.parse::<usize>().ok());
        let offset = number("offset").unwrap_or(0);
        let limit = number("limit").unwrap_or(10).clamp(1, 500);
        let page: Vec<Value> = list.into_iter().skip(offset).take(limit).collect();
        return Ok(Json(json!({ "data": page, "total_count": total })));
    }
    Ok(Json(Value::Array(list)))
}

pub(crate) async fn get_email_address(
    State(idp): State<Idp>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let user = idp.email_address_user(&id)?;
    email_of(&user, &id)
}

fn email_of(user: &crate::store::User, email_id: &str) -> Result<Json<Value>, ApiError> {
    user.email_addresses
        .iter()
        .find(|e| e.id == email_id)
        .map(|e| Json(email_json(e)))
        .ok_or_else(|| ApiError::not_found("email address", email_id))
}

#[derive(Deserialize, Default)]
struct PrepareBody {
    strategy: Option<String>,
}

pub(crate) async fn prepare_verification(
    State(idp): State<Idp>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: PrepareBody = parse_body(&headers, &body)?;
    match body.strategy.as_deref() {
        None | Some("email_code") => {}
        Some(other) => {
            return Err(ApiError::unprocessable(
                "form_param_value_invalid",
                "is invalid",
                format!(
                    "The idp verifies addresses by `email_code` only, not `{}`.",
                    other.chars().take(32).collect::<String>().escape_debug()
                ),
            )
            .param("strategy"));
        }
    }
    let user = idp.prepare_email_verification(&id)?;
    email_of(&user, &id)
}

#[derive(Deserialize, Default)]
struct AttemptBody {
    #[serde(default)]
    code: String,
}

pub(crate) async fn attempt_verification(
    State(idp): State<Idp>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: AttemptBody = parse_body(&headers, &body)?;
    let user = idp.attempt_email_verification(&id, &body.code)?;
    email_of(&user, &id)
}

#[derive(Deserialize, Default)]
struct ResetBody {
    #[serde(default)]
    email_address: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    password: String,
}

pub(crate) async fn prepare_password_reset(
    State(idp): State<Idp>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: ResetBody = parse_body(&headers, &body)?;
    idp.prepare_password_reset(&body.email_address)?;
    Ok(Json(
        json!({ "object": "password_reset", "status": "needs_code", "strategy": "reset_password_email_code" }),
    ))
}

pub(crate) async fn attempt_password_reset(
    State(idp): State<Idp>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: ResetBody = parse_body(&headers, &body)?;
    let user = idp
        .reset_password(&body.email_address, &body.code, body.password)
        .await?;
    Ok(Json(user_json(&user)))
}

/// `GET /dev/mailbox`: the development mailbox as a page (404 with an SMTP server).
pub(crate) async fn mailbox_page(State(idp): State<Idp>) -> Response {
    let Some(mails) = idp.development_mailbox() else {
        return (
            StatusCode::NOT_FOUND,
            "No development mailbox: this idp sends email by SMTP.",
        )
            .into_response();
    };
    let mut rows = String::new();
    for m in &mails {
        rows.push_str(&format!(
            "<tr><td class=\"to\">{}</td><td class=\"subject\">{}</td><td class=\"code\">{}</td><td>{}</td></tr>\n",
            escape(&m.to),
            escape(&m.subject),
            escape(&m.code),
            m.sent_at
        ));
    }
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Development mailbox</title></head>\
         <body><h1>Development mailbox</h1><p>Emails the idp would have sent (no SMTP server is configured), newest first. \
         Development only: anyone who can reach this page can read these codes.</p>\
         <table><thead><tr><th>To</th><th>Subject</th><th>Code</th><th>Sent (Unix ms)</th></tr></thead><tbody>\n{rows}</tbody></table></body></html>"
    );
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, "default-src 'none'"),
        ],
        Html(page),
    )
        .into_response()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

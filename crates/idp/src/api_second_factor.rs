//! Backend-API routes of the second factor, in Clerk's shapes: `POST /v1/users/{id}/verify_totp`
//! (`{ verified: true, code_type }`), `DELETE /v1/users/{id}/mfa`, `DELETE
//! /v1/users/{id}/totp`, `DELETE /v1/users/{id}/backup_code` (each `{ user_id }`), and
//! `POST /v1/users/{id}/totp` (a `totp` object). Two are Keel's, since Clerk confirms an
//! enrolment through its Frontend API (`/v1/me/totp/attempt_verification`), which the idp does
//! not serve: `GET /v1/users/{id}/totp` and `POST /v1/users/{id}/totp/attempt_verification`,
//! answering the Frontend API's `totp` object.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{delete, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{ClientAddress, parse_body};
use crate::error::ApiError;
use crate::idp::Idp;
use crate::second_factor::TotpEnrolment;

/// The routes, merged into the Backend API (behind its secret-key check).
pub(crate) fn routes() -> axum::Router<Idp> {
    axum::Router::new()
        .route("/v1/users/{id}/verify_totp", post(verify_totp))
        .route("/v1/users/{id}/mfa", delete(disable_mfa))
        .route("/v1/users/{id}/backup_code", delete(delete_backup_codes))
        .route(
            "/v1/users/{id}/totp",
            post(create_totp).get(get_totp).delete(delete_totp),
        )
        .route(
            "/v1/users/{id}/totp/attempt_verification",
            post(attempt_totp_verification),
        )
}

/// Clerk's `totp` object.
fn totp_json(t: &TotpEnrolment) -> Value {
    json!({
        "object": "totp", "id": t.id, "secret": t.secret, "uri": t.uri, "verified": t.verified,
        "backup_codes": t.backup_codes, "created_at": t.created_at, "updated_at": t.updated_at,
    })
}

#[derive(Deserialize, Default)]
struct CodeBody {
    #[serde(default)]
    code: String,
}

/// A code field of at most a few dozen characters (anything longer is not a code).
fn code_of(headers: &HeaderMap, body: &Bytes) -> Result<String, ApiError> {
    let body: CodeBody = parse_body(headers, body)?;
    if body.code.trim().is_empty() {
        return Err(ApiError::unprocessable(
            "form_param_missing",
            "is missing",
            "`code` is required.".to_owned(),
        )
        .param("code"));
    }
    if body.code.len() > 64 {
        return Err(ApiError::unprocessable(
            "form_code_incorrect",
            "Incorrect code",
            "A second-factor code is 6 digits, or a backup code of 8 characters.".to_owned(),
        )
        .param("code"));
    }
    Ok(body.code)
}

async fn verify_totp(
    State(idp): State<Idp>,
    Path(id): Path<String>,
    address: ClientAddress,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let code = code_of(&headers, &body)?;
    // Without a reported address, the caller's own address is throttled (as for passwords).
    let address = address.reported.or(address.peer);
    let kind = idp.verify_second_factor(&id, &code, address)?;
    Ok(Json(
        json!({ "verified": true, "code_type": kind.as_str() }),
    ))
}

async fn disable_mfa(
    State(idp): State<Idp>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    idp.disable_two_factor(&id)?;
    Ok(Json(json!({ "user_id": id })))
}

async fn delete_backup_codes(
    State(idp): State<Idp>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    idp.delete_backup_codes(&id)?;
    Ok(Json(json!({ "user_id": id })))
}

async fn delete_totp(
    State(idp): State<Idp>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    idp.delete_totp(&id)?;
    Ok(Json(json!({ "user_id": id })))
}

async fn create_totp(
    State(idp): State<Idp>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(totp_json(&idp.create_totp(&id)?)))
}

async fn get_totp(State(idp): State<Idp>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    match idp.totp(&id)? {
        Some(totp) => Ok(Json(totp_json(&totp))),
        None => Err(ApiError::not_found("totp", &id)),
    }
}

async fn attempt_totp_verification(
    State(idp): State<Idp>,
    Path(id): Path<String>,
    address: ClientAddress,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let code = code_of(&headers, &body)?;
    let address = address.reported.or(address.peer);
    Ok(Json(totp_json(&idp.confirm_totp(&id, &code, address)?)))
}

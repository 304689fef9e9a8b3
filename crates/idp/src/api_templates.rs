//! `/v1/jwt_templates` in Clerk's shapes: create (`POST`), list (`GET`, with `limit`, `offset`
//! and `paginated=true` for `{data, total_count}`), get, update (`PATCH`) and delete.
//! Bodies are JSON or form-encoded; `claims` may also be given as a JSON string (as Clerk's
//! Dashboard sends it).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{parse_body, query_pairs};
use crate::error::ApiError;
use crate::idp::Idp;
use crate::templates::JwtTemplateDraft;

/// The routes, for the Backend API router (behind the secret key).
pub(crate) fn routes() -> axum::Router<Idp> {
    axum::Router::new()
        .route("/v1/jwt_templates", get(list).post(create))
        .route(
            "/v1/jwt_templates/{id}",
            get(get_one).patch(update).delete(delete),
        )
}

#[derive(Deserialize, Default)]
struct TemplateBody {
    name: Option<String>,
    claims: Option<Value>,
    lifetime: Option<Value>,
    allowed_clock_skew: Option<Value>,
    #[serde(default)]
    custom_signing_key: Option<Value>,
}

impl TemplateBody {
    fn draft(self) -> Result<JwtTemplateDraft, ApiError> {
        // Clerk's Dashboard and form bodies send the claims as JSON text.
        let claims = match self.claims {
            Some(Value::String(text)) => Some(serde_json::from_str(&text).map_err(|e| {
                ApiError::unprocessable(
                    "form_param_format_invalid",
                    "is invalid",
                    format!("`claims` is not valid JSON: {e}."),
                )
                .param("claims")
            })?),
            other => other,
        };
        Ok(JwtTemplateDraft {
            name: self.name,
            claims,
            lifetime: seconds("lifetime", self.lifetime)?,
            allowed_clock_skew: seconds("allowed_clock_skew", self.allowed_clock_skew)?,
            custom_signing_key: match self.custom_signing_key {
                None | Some(Value::Null) | Some(Value::Bool(false)) => false,
                Some(Value::String(s)) if s == "false" => false,
                Some(_) => true,
            },
        })
    }
}

/// A whole number of seconds (`null` = not given), as a number or numeric text.
fn seconds(param: &'static str, value: Option<Value>) -> Result<Option<u64>, ApiError> {
    let parsed = match &value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        Some(_) => None,
    };
    parsed.map(Some).ok_or_else(|| {
        ApiError::unprocessable(
            "form_param_format_invalid",
            "is invalid",
            format!(
                "`{param}` must be a whole number of seconds, got `{}`.",
                value
                    .map(|v| v.to_string())
                    .unwrap_or_default()
                    .chars()
                    .take(32)
                    .collect::<String>()
                    .escape_debug()
            ),
        )
        .param(param)
    })
}

async fn create(
    State(idp): State<Idp>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: TemplateBody = parse_body(&headers, &body)?;
    Ok(Json(idp.create_jwt_template(body.draft()?)?.to_json()))
}

async fn list(State(idp): State<Idp>, RawQuery(query): RawQuery) -> Result<Json<Value>, ApiError> {
    let (mut limit, mut offset, mut paginated) = (10u32, 0u32, false);
    for (key, value) in query_pairs(query.as_deref().unwrap_or("")) {
        let number = |param: &'static str| {
            value.trim().parse::<u32>().map_err(|_| {
                ApiError::unprocessable(
                    "form_param_format_invalid",
                    "is invalid",
                    format!("`{param}` must be a whole number."),
                )
                .param(param)
            })
        };
        match key.as_str() {
            "limit" => limit = number("limit")?,
            "offset" => offset = number("offset")?,
            "paginated" => paginated = value == "true",
            _ => {}
        }
    }
    let (templates, total) = idp.jwt_templates(limit, offset)?;
    let data: Vec<Value> = templates.iter().map(|t| t.to_json()).collect();
    Ok(Json(if paginated {
        json!({ "data": data, "total_count": total })
    } else {
        Value::Array(data)
    }))
}

async fn get_one(State(idp): State<Idp>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    Ok(Json(idp.jwt_template(&id)?.to_json()))
}

async fn update(
    State(idp): State<Idp>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: TemplateBody = parse_body(&headers, &body)?;
    Ok(Json(idp.update_jwt_template(&id, body.draft()?)?.to_json()))
}

async fn delete(State(idp): State<Idp>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    idp.delete_jwt_template(&id)?;
    Ok(Json(
        json!({ "object": "jwt_template", "id": id, "deleted": true }),
    ))
}

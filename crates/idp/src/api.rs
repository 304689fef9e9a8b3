//! HTTP routes: OIDC discovery, JWKS, and the Clerk Backend API subset under `/v1`
//! (authenticated with `Authorization: Bearer <secret key>`), and serving them
//! ([`Idp::router`], [`Idp::serve`]). Each route calls an in-process operation of [`Idp`].

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::api_accounts;
use crate::error::{ApiError, IdpError};
use crate::idp::{Idp, NewUser};
use crate::store::{EmailAddress, Session, User};

impl Idp {
    /// The HTTP routes (discovery, JWKS, Backend API) for mounting or serving.
    pub fn router(&self) -> axum::Router {
        router(self.clone())
    }

    /// Serves the routes on `listener` until the task is dropped.
    pub async fn serve(self, listener: TcpListener) -> Result<(), IdpError> {
        let app = self
            .router()
            .into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, app).await.map_err(IdpError::Serve)
    }
}

fn router(idp: Idp) -> axum::Router {
    let bapi = axum::Router::new()
        .route("/v1/jwks", get(jwks))
        .route("/v1/users", post(create_user).get(api_accounts::list_users))
        .route("/v1/users/count", get(api_accounts::count_users))
        .route(
            "/v1/users/{id}",
            get(get_user)
                .patch(api_accounts::update_user)
                .delete(api_accounts::delete_user),
        )
        .route(
            "/v1/users/{id}/metadata",
            axum::routing::patch(api_accounts::merge_metadata).put(api_accounts::replace_metadata),
        )
        .route("/v1/users/{id}/verify_password", post(verify_password))
        .route(
            "/v1/users/{id}/sign_out_everywhere",
            post(api_accounts::sign_out_everywhere),
        )
        .route(
            "/v1/email_addresses/{id}",
            get(api_accounts::get_email_address),
        )
        .route(
            "/v1/email_addresses/{id}/prepare_verification",
            post(api_accounts::prepare_verification),
        )
        .route(
            "/v1/email_addresses/{id}/attempt_verification",
            post(api_accounts::attempt_verification),
        )
        .route(
            "/v1/password_resets",
            post(api_accounts::prepare_password_reset),
        )
        .route(
            "/v1/password_resets/attempt",
            post(api_accounts::attempt_password_reset),
        )
        .route(
            "/v1/sessions",
            post(create_session).get(api_accounts::list_sessions),
        )
        .route("/v1/sessions/{sid}", get(get_session))
        .route("/v1/sessions/{sid}/revoke", post(revoke_session))
        .route("/v1/sessions/{sid}/tokens", post(session_token))
        .route("/v1/sessions/{sid}/tokens/{template}", post(template_token))
        .merge(crate::api_second_factor::routes())
        .merge(crate::api_templates::routes())
        .merge(crate::api_webhooks::routes())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            idp.clone(),
            require_secret_key,
        ));
    axum::Router::new()
        .route("/dev/mailbox", get(api_accounts::mailbox_page))
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/.well-known/jwks.json", get(jwks))
        .merge(bapi)
        // One span per request (method, path, status, latency) — never the Authorization header.
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(idp)
}

async fn require_secret_key(State(idp): State<Idp>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let Some(value) = presented else {
        return ApiError::unauthorized(
            "The request has no `Authorization: Bearer <secret key>` header.",
        )
        .into_response();
    };
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .unwrap_or("");
    if !constant_time_eq(token.trim().as_bytes(), idp.secret_key().as_bytes()) {
        return ApiError::unauthorized(
            "The secret key in the `Authorization` header is not valid for this instance.",
        )
        .into_response();
    }
    next.run(request).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "resource_not_found",
        "not found",
        "No such Backend API endpoint.".to_owned(),
    )
}

async fn discovery(State(idp): State<Idp>) -> Response {
    let issuer = idp.issuer();
    let doc = json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "authorization_endpoint": format!("{issuer}/oauth/authorize"),
        "response_types_supported": ["code", "id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nbf", "azp", "sid", "name", "given_name", "family_name", "nickname", "email", "email_verified", "picture", "updated_at"],
    });
    ([(header::CACHE_CONTROL, "public, max-age=300")], Json(doc)).into_response()
}

async fn jwks(State(idp): State<Idp>) -> Response {
    (
        [(header::CACHE_CONTROL, "public, max-age=60")],
        Json(idp.jwks()),
    )
        .into_response()
}

/// Parses a JSON (or form-encoded) body; an empty body is `T::default()`.
pub(crate) fn parse_body<T: for<'de> Deserialize<'de> + Default>(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        let text = std::str::from_utf8(body)
            .map_err(|_| ApiError::bad_request("The body is not UTF-8.".to_owned()))?;
        let mut map = serde_json::Map::new();
        for (k, v) in query_pairs(text) {
            if k == "email_address" {
                let list = map.entry(k).or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(items) = list {
                    items.push(Value::String(v));
                }
            } else if let Ok(n) = v.parse::<u64>() {
                map.insert(k, json!(n));
            } else {
                map.insert(k, Value::String(v));
            }
        }
        return serde_json::from_value(Value::Object(map))
            .map_err(|e| ApiError::bad_request(format!("Invalid form body: {e}")));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("The JSON body is invalid: {e}")))
}

/// `a=1&b=x%20y` → pairs, percent- and `+`-decoded.
pub(crate) fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_component(k), decode_component(v))
        })
        .collect()
}

fn decode_component(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Accepts `email_address` as a string or a list.
#[derive(Deserialize, Default)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
    #[default]
    None,
}

#[derive(Deserialize, Default)]
struct CreateUserBody {
    #[serde(default)]
    email_address: OneOrMany,
    password: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    username: Option<String>,
    #[serde(default)]
    email_address_identification_status: Vec<String>,
    public_metadata: Option<Value>,
    private_metadata: Option<Value>,
    unsafe_metadata: Option<Value>,
}

async fn create_user(
    State(idp): State<Idp>,
    address: ClientAddress,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: CreateUserBody = parse_body(&headers, &body)?;
    let email_addresses = match body.email_address {
        OneOrMany::One(e) => vec![e],
        OneOrMany::Many(list) => list,
        OneOrMany::None => Vec::new(),
    };
    let statuses = &body.email_address_identification_status;
    if let Some(bad) = statuses
        .iter()
        .find(|s| !matches!(s.as_str(), "verified" | "reserved"))
    {
        return Err(ApiError::unprocessable(
            "form_param_value_invalid",
            "is invalid",
            format!(
                "`email_address_identification_status` entries must be `verified` or `reserved`, got `{}`.",
                bad.chars().take(32).collect::<String>().escape_debug()
            ),
        )
        .param("email_address_identification_status"));
    }
    if !statuses.is_empty() && statuses.len() != email_addresses.len() {
        return Err(ApiError::unprocessable(
            "form_param_value_invalid",
            "is invalid",
            "`email_address_identification_status` needs one entry per email address.".to_owned(),
        )
        .param("email_address_identification_status"));
    }
    let user = idp
        .create_user_from(
            NewUser {
                email_addresses,
                password: body.password,
                first_name: body.first_name,
                last_name: body.last_name,
                username: body.username,
                reserve_email_addresses: statuses.iter().any(|s| s == "reserved"),
                public_metadata: body.public_metadata,
                private_metadata: body.private_metadata,
                unsafe_metadata: body.unsafe_metadata,
            },
            address.reported,
        )
        .await?;
    Ok(Json(user_json(&user)))
}

async fn get_user(State(idp): State<Idp>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    Ok(Json(user_json(&idp.user(&id)?)))
}

#[derive(Deserialize, Default)]
struct VerifyPasswordBody {
    #[serde(default)]
    password: String,
}

async fn verify_password(
    State(idp): State<Idp>,
    Path(id): Path<String>,
    address: ClientAddress,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: VerifyPasswordBody = parse_body(&headers, &body)?;
    // A sign-in without a reported address is throttled on the caller's own address.
    let address = address.reported.or(address.peer);
    if idp.verify_password(&id, &body.password, address).await? {
        Ok(Json(json!({ "verified": true })))
    } else {
        Err(ApiError::unprocessable(
            "incorrect_password",
            "Password is incorrect. Try again, or use another method.",
            "The password does not match this user's password.".to_owned(),
        )
        .param("password"))
    }
}

/// Where a Backend-API call comes from. `reported` is the end user's address as the caller
/// reports it in `X-Forwarded-For` (first entry; a bare address or `address:port`) — trusted,
/// since only the secret-key holder gets this far, and that holder could act as any user
/// anyway. `peer` is the socket's address (the web tier itself, usually).
pub(crate) struct ClientAddress {
    pub(crate) reported: Option<IpAddr>,
    pub(crate) peer: Option<IpAddr>,
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let reported = parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .and_then(|v| {
                v.parse::<IpAddr>()
                    .ok()
                    .or_else(|| v.parse::<SocketAddr>().ok().map(|s| s.ip()))
            });
        let peer = ConnectInfo::<SocketAddr>::from_request_parts(parts, state)
            .await
            .ok()
            .map(|c| c.0.ip());
        Ok(ClientAddress { reported, peer })
    }
}

#[derive(Deserialize, Default)]
struct CreateSessionBody {
    #[serde(default)]
    user_id: String,
}

async fn create_session(
    State(idp): State<Idp>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: CreateSessionBody = parse_body(&headers, &body)?;
    if body.user_id.is_empty() {
        return Err(ApiError::unprocessable(
            "form_param_missing",
            "is missing",
            "`user_id` is required.".to_owned(),
        )
        .param("user_id"));
    }
    Ok(Json(session_json(&idp.create_session(&body.user_id)?)))
}

async fn get_session(
    State(idp): State<Idp>,
    Path(sid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(session_json(&idp.session(&sid)?)))
}

async fn revoke_session(
    State(idp): State<Idp>,
    Path(sid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(session_json(&idp.revoke_session(&sid)?)))
}

#[derive(Deserialize, Default)]
struct TokenBody {
    expires_in_seconds: Option<u64>,
}

async fn session_token(
    State(idp): State<Idp>,
    Path(sid): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let jwt = idp.session_token(&sid, origin)?;
    Ok(Json(json!({ "object": "token", "jwt": jwt })))
}

async fn template_token(
    State(idp): State<Idp>,
    Path((sid, template)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: TokenBody = parse_body(&headers, &body)?;
    let expires_in = match body.expires_in_seconds {
        None => None,
        Some(s) if (30..=315_360_000).contains(&s) => Some(Duration::from_secs(s)),
        Some(s) => {
            return Err(ApiError::unprocessable(
                "form_param_value_invalid",
                "is invalid",
                format!("`expires_in_seconds` must be between 30 and 315360000, got {s}."),
            )
            .param("expires_in_seconds"));
        }
    };
    let jwt = idp.template_token(&sid, &template, expires_in)?;
    Ok(Json(json!({ "object": "token", "jwt": jwt })))
}

/// An email address in Clerk's JSON shape, with its verification.
pub(crate) fn email_json(e: &EmailAddress) -> Value {
    let verification = match (&e.verified_by, e.pending_code) {
        (Some(strategy), _) => {
            json!({ "object": "verification_email_code", "status": "verified", "strategy": strategy, "attempts": null, "expire_at": null })
        }
        (None, Some((attempts, expire_at))) => {
            let status = if crate::ids::now_ms() >= expire_at {
                "expired"
            } else {
                "unverified"
            };
            json!({ "object": "verification_email_code", "status": status, "strategy": "email_code", "attempts": attempts, "expire_at": expire_at })
        }
        (None, None) => {
            json!({ "object": "verification_email_code", "status": "unverified", "strategy": null, "attempts": null, "expire_at": null })
        }
    };
    json!({
        "id": e.id, "object": "email_address", "email_address": e.email_address,
        "reserved": false, "linked_to": [], "verification": verification,
    })
}

/// A user in Clerk's JSON shape (the fields the official SDKs read).
pub(crate) fn user_json(u: &User) -> Value {
    let emails: Vec<Value> = u.email_addresses.iter().map(email_json).collect();
    json!({
        "id": u.id, "object": "user",
        "username": u.username, "first_name": u.first_name, "last_name": u.last_name,
        "image_url": u.image_url.clone().unwrap_or_default(), "has_image": u.image_url.is_some(),
        "primary_email_address_id": u.primary_email().map(|e| e.id.clone()),
        "primary_phone_number_id": null, "primary_web3_wallet_id": null,
        "password_enabled": u.has_password(), "two_factor_enabled": u.two_factor.enabled(),
        "totp_enabled": u.two_factor.totp, "backup_code_enabled": u.two_factor.backup_codes, "banned": false, "locked": false,
        "email_addresses": emails, "phone_numbers": [], "web3_wallets": [], "external_accounts": [],
        "saml_accounts": [], "enterprise_accounts": [], "passkeys": [],
        "public_metadata": u.public_metadata, "private_metadata": u.private_metadata,
        "unsafe_metadata": u.unsafe_metadata,
        "external_id": null, "last_sign_in_at": u.last_sign_in_at, "last_active_at": u.last_sign_in_at,
        "created_at": u.created_at, "updated_at": u.updated_at,
    })
}

/// A session in Clerk's JSON shape.
pub(crate) fn session_json(s: &Session) -> Value {
    json!({
        "id": s.id, "object": "session", "client_id": s.client_id, "user_id": s.user_id,
        "status": s.status.as_str(), "last_active_at": s.updated_at, "last_active_organization_id": null,
        "actor": null, "expire_at": s.expire_at, "abandon_at": s.expire_at,
        "created_at": s.created_at, "updated_at": s.updated_at,
    })
}

//! [`BackendApiClient`]: the Clerk Backend API subset Keel uses, for real Clerk and for the
//! local idp (which speaks the same endpoints).

use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::AuthError;

/// A Backend-API client: `{api_url}/v1/…` with `Authorization: Bearer <secret key>`.
#[derive(Clone)]
pub struct BackendApiClient {
    api_url: String,
    secret_key: String,
    origin: Option<String>,
    http: reqwest::Client,
}

impl std::fmt::Debug for BackendApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendApiClient")
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

/// A user as returned by the Backend API (the fields Keel reads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiUser {
    /// `user_…`
    pub id: String,
    /// Email addresses, primary first.
    pub email_addresses: Vec<String>,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
}

/// A session as returned by the Backend API.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ApiSession {
    /// `sess_…`
    pub id: String,
    /// The signed-in user.
    pub user_id: String,
    /// `active`, `revoked`, `ended`, `expired`, …
    pub status: String,
}

impl ApiSession {
    /// Whether tokens can still be minted for it.
    pub fn is_active(&self) -> bool {
        self.status == "active"
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    jwt: String,
}

impl BackendApiClient {
    /// A client for `api_url` (e.g. `https://api.clerk.com` or the idp's URL).
    pub fn new(api_url: &str, secret_key: &str) -> Self {
        BackendApiClient {
            api_url: api_url.trim_end_matches('/').to_owned(),
            secret_key: secret_key.to_owned(),
            origin: None,
            http: crate::http_client(Duration::from_secs(10)),
        }
    }

    /// Sends `Origin: <origin>` when minting session tokens, so they carry `azp = origin`
    /// (what the browser's request would have given them with Clerk).
    pub fn with_origin(mut self, origin: &str) -> Self {
        self.origin = Some(origin.trim_end_matches('/').to_owned());
        self
    }

    /// The base URL (no trailing `/`).
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    pub(crate) fn secret_key(&self) -> &str {
        &self.secret_key
    }

    pub(crate) fn jwks_url(&self) -> String {
        format!("{}/v1/jwks", self.api_url)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, AuthError> {
        let response = request
            .bearer_auth(&self.secret_key)
            .send()
            .await
            .map_err(|e| AuthError::BackendApi {
                status: 0,
                code: "network_error".to_owned(),
                message: format!("request to {} failed: {e}", self.api_url),
            })?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return Ok(body);
        }
        let first = &body["errors"][0];
        let text = |k: &str| first.get(k).and_then(Value::as_str).map(str::to_owned);
        Err(AuthError::BackendApi {
            status,
            code: text("code").unwrap_or_else(|| "unknown_error".to_owned()),
            message: text("long_message")
                .or_else(|| text("message"))
                .unwrap_or_else(|| format!("HTTP {status}")),
        })
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(format!("{}/v1{path}", self.api_url))
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}/v1{path}", self.api_url))
    }

    /// `POST /v1/users`.
    pub async fn create_user(
        &self,
        email: &str,
        password: &str,
        first_name: Option<&str>,
        last_name: Option<&str>,
    ) -> Result<ApiUser, AuthError> {
        let body = json!({ "email_address": [email], "password": password, "first_name": first_name, "last_name": last_name });
        Ok(parse_user(
            &self.send(self.post("/users").json(&body)).await?,
        ))
    }

    /// `GET /v1/users?email_address=…`.
    pub async fn users_by_email(&self, email: &str) -> Result<Vec<ApiUser>, AuthError> {
        let body = self
            .send(self.get(&format!("/users?email_address={}", percent_encode(email))))
            .await?;
        Ok(body
            .as_array()
            .map(|list| list.iter().map(parse_user).collect())
            .unwrap_or_default())
    }

    /// `GET /v1/users/{id}`.
    pub async fn user(&self, user_id: &str) -> Result<ApiUser, AuthError> {
        Ok(parse_user(
            &self.send(self.get(&format!("/users/{user_id}"))).await?,
        ))
    }

    /// `POST /v1/users/{id}/verify_password`: `Ok(false)` for a wrong password. The end user's
    /// address, when known, is passed as `X-Forwarded-For` for per-address rate limiting.
    pub async fn verify_password(
        &self,
        user_id: &str,
        password: &str,
        client_address: Option<IpAddr>,
    ) -> Result<bool, AuthError> {
        let mut request = self
            .post(&format!("/users/{user_id}/verify_password"))
            .json(&json!({ "password": password }));
        if let Some(addr) = client_address {
            request = request.header("x-forwarded-for", addr.to_string());
        }
        match self.send(request).await {
            Ok(body) => Ok(body["verified"] == Value::Bool(true)),
            Err(AuthError::BackendApi { code, .. }) if code == "incorrect_password" => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `POST /v1/sessions` (local idp; Clerk creates sessions through sign-in flows).
    pub async fn create_session(&self, user_id: &str) -> Result<ApiSession, AuthError> {
        parse_session(
            self.send(self.post("/sessions").json(&json!({ "user_id": user_id })))
                .await?,
        )
    }

    /// `GET /v1/sessions/{sid}`.
    pub async fn session(&self, session_id: &str) -> Result<ApiSession, AuthError> {
        parse_session(
            self.send(self.get(&format!("/sessions/{session_id}")))
                .await?,
        )
    }

    /// `POST /v1/sessions/{sid}/revoke`.
    pub async fn revoke_session(&self, session_id: &str) -> Result<ApiSession, AuthError> {
        parse_session(
            self.send(self.post(&format!("/sessions/{session_id}/revoke")))
                .await?,
        )
    }

    /// `POST /v1/sessions/{sid}/tokens`: a fresh session token.
    pub async fn session_token(&self, session_id: &str) -> Result<String, AuthError> {
        let mut request = self.post(&format!("/sessions/{session_id}/tokens"));
        if let Some(origin) = &self.origin {
            request = request.header(http::header::ORIGIN, origin);
        }
        let body = self.send(request).await?;
        parse_token(body)
    }

    /// `POST /v1/sessions/{sid}/tokens/{template}`: a JWT-template token (e.g. `convex`).
    pub async fn template_token(
        &self,
        session_id: &str,
        template: &str,
    ) -> Result<String, AuthError> {
        let body = self
            .send(self.post(&format!("/sessions/{session_id}/tokens/{template}")))
            .await?;
        parse_token(body)
    }
}

fn parse_user(v: &Value) -> ApiUser {
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    ApiUser {
        id: s("id").unwrap_or_default(),
        email_addresses: v["email_addresses"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|e| e["email_address"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        first_name: s("first_name"),
        last_name: s("last_name"),
    }
}

fn parse_session(v: Value) -> Result<ApiSession, AuthError> {
    serde_json::from_value(v).map_err(|e| AuthError::BackendApi {
        status: 200,
        code: "unexpected_response".to_owned(),
        message: format!("session object not understood: {e}"),
    })
}

fn parse_token(v: Value) -> Result<String, AuthError> {
    serde_json::from_value::<TokenResponse>(v)
        .map(|t| t.jwt)
        .map_err(|e| AuthError::BackendApi {
            status: 200,
            code: "unexpected_response".to_owned(),
            message: format!("token response not understood: {e}"),
        })
}

/// Percent-encodes a query value (everything but unreserved characters).
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

//! [`BackendApiClient`]: the Clerk Backend API subset Keel uses, for real Clerk and for the
//! local idp (which speaks the same endpoints).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::AuthError;
use crate::in_process::{InProcessIdp, to_http};

/// A Backend-API client: `{api_url}/v1/…` with `Authorization: Bearer <secret key>` — over
/// HTTP, or to an idp in this process ([`BackendApiClient::in_process`]).
#[derive(Clone)]
pub struct BackendApiClient {
    api_url: String,
    secret_key: String,
    origin: Option<String>,
    http: reqwest::Client,
    /// The idp in this process, when requests go to it without a socket.
    in_process: Option<Arc<dyn InProcessIdp>>,
}

impl std::fmt::Debug for BackendApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendApiClient")
            .field("api_url", &self.api_url)
            .field("in_process", &self.in_process.is_some())
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
    /// The primary email address's id (`idn_…`).
    pub primary_email_address_id: Option<String>,
    /// Whether the primary email address is verified.
    pub email_verified: bool,
    /// Whether sign-in asks for a second factor (Clerk's `two_factor_enabled`).
    pub two_factor_enabled: bool,
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
    /// Creation time, Unix ms.
    #[serde(default)]
    pub created_at: i64,
    /// Last activity, Unix ms.
    #[serde(default)]
    pub last_active_at: i64,
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
            in_process: None,
        }
    }

    /// Sends every request to `idp`, the identity service at `api_url` running in this
    /// process, instead of over HTTP: the same requests and the same reading of the answers.
    pub fn in_process(mut self, idp: Arc<dyn InProcessIdp>) -> Self {
        self.in_process = Some(idp);
        self
    }

    /// Whether requests go to an idp in this process ([`BackendApiClient::in_process`]).
    pub fn is_in_process(&self) -> bool {
        self.in_process.is_some()
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

    /// Sends `request`; a failure is read as what it means for a call about `subject`.
    pub(crate) async fn send(
        &self,
        request: reqwest::RequestBuilder,
        subject: Subject,
    ) -> Result<Value, AuthError> {
        let network = |e: reqwest::Error| AuthError::BackendApi {
            status: 0,
            code: "network_error".to_owned(),
            message: format!("request to {} failed: {e}", self.api_url),
        };
        let request = request.bearer_auth(&self.secret_key);
        let (status, retry_after, body) = match &self.in_process {
            Some(idp) => {
                let answer = idp.serve(to_http(request.build().map_err(network)?)).await;
                let body = serde_json::from_slice(answer.body()).unwrap_or(Value::Null);
                (
                    answer.status().as_u16(),
                    retry_after(answer.headers()),
                    body,
                )
            }
            None => {
                let response = request.send().await.map_err(network)?;
                let status = response.status().as_u16();
                let retry_after = retry_after(response.headers());
                let body: Value = response.json().await.unwrap_or(Value::Null);
                (status, retry_after, body)
            }
        };
        if (200..300).contains(&status) {
            return Ok(body);
        }
        let first = &body["errors"][0];
        let text = |v: &Value| v.as_str().map(str::to_owned);
        Err(ApiFailure {
            status,
            code: text(&first["code"]).unwrap_or_else(|| "unknown_error".to_owned()),
            message: text(&first["long_message"])
                .or_else(|| text(&first["message"]))
                .unwrap_or_else(|| format!("HTTP {status}")),
            param: text(&first["meta"]["param_name"]),
            retry_after,
            email_address_id: text(&first["meta"]["email_address_id"]),
        }
        .meaning(subject))
    }

    pub(crate) fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(format!("{}/v1{path}", self.api_url))
    }

    pub(crate) fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}/v1{path}", self.api_url))
    }

    fn patch(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.patch(format!("{}/v1{path}", self.api_url))
    }

    pub(crate) fn delete(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.delete(format!("{}/v1{path}", self.api_url))
    }

    /// `POST /v1/users`. The end user's address, when known, is passed as `X-Forwarded-For` for
    /// per-address limits on sign-ups; a refused email or password is
    /// [`AuthError::InputRefused`] with the identity service's message.
    pub async fn create_user(
        &self,
        email: &str,
        password: &str,
        first_name: Option<&str>,
        last_name: Option<&str>,
        client_address: Option<IpAddr>,
    ) -> Result<ApiUser, AuthError> {
        let body = json!({ "email_address": [email], "password": password, "first_name": first_name, "last_name": last_name });
        let request = for_client(self.post("/users").json(&body), client_address);
        Ok(parse_user(&self.send(request, Subject::NewUser).await?))
    }

    /// `POST /v1/users` for a visitor signing up: like [`BackendApiClient::create_user`], but
    /// the address is created unverified (Clerk's `email_address_identification_status:
    /// ["reserved"]`) until a code sent to it is entered.
    pub async fn sign_up_user(
        &self,
        email: &str,
        password: &str,
        first_name: Option<&str>,
        last_name: Option<&str>,
        client_address: Option<IpAddr>,
    ) -> Result<ApiUser, AuthError> {
        let body = json!({ "email_address": [email], "password": password, "first_name": first_name,
            "last_name": last_name, "email_address_identification_status": ["reserved"] });
        let request = for_client(self.post("/users").json(&body), client_address);
        Ok(parse_user(&self.send(request, Subject::NewUser).await?))
    }

    /// `PATCH /v1/users/{id}` with `changes` (Clerk's field names: `first_name`,
    /// `last_name`, `password`, `sign_out_of_other_sessions`, …); refused input is
    /// [`AuthError::InputRefused`].
    pub async fn update_user(&self, user_id: &str, changes: &Value) -> Result<ApiUser, AuthError> {
        let request = self
            .patch(&format!("/users/{}", segment(user_id)))
            .json(changes);
        Ok(parse_user(&self.send(request, Subject::Form).await?))
    }

    /// `DELETE /v1/users/{id}`: the user and their sessions.
    pub async fn delete_user(&self, user_id: &str) -> Result<(), AuthError> {
        let request = self
            .http
            .delete(format!("{}/v1/users/{}", self.api_url, segment(user_id)));
        self.send(request, Subject::Other).await.map(|_| ())
    }

    /// `GET /v1/sessions?user_id=…&status=active`: the user's active sessions, newest first.
    pub async fn active_sessions(&self, user_id: &str) -> Result<Vec<ApiSession>, AuthError> {
        let query = utf8_percent_encode(user_id, NON_ALPHANUMERIC);
        let request = self.get(&format!("/sessions?user_id={query}&status=active"));
        let body = self.send(request, Subject::Other).await?;
        serde_json::from_value(body).map_err(|e| AuthError::BackendApi {
            status: 200,
            code: "unexpected_response".to_owned(),
            message: format!("session list not understood: {e}"),
        })
    }

    /// `POST /v1/users/{id}/sign_out_everywhere` (the local idp): revokes every session.
    pub async fn sign_out_everywhere(&self, user_id: &str) -> Result<(), AuthError> {
        let request = self.post(&format!("/users/{}/sign_out_everywhere", segment(user_id)));
        self.send(request, Subject::Other).await.map(|_| ())
    }

    /// `POST /v1/email_addresses/{id}/prepare_verification` (the local idp): sends a code.
    pub async fn prepare_email_verification(
        &self,
        email_address_id: &str,
    ) -> Result<(), AuthError> {
        let request = self
            .post(&format!(
                "/email_addresses/{}/prepare_verification",
                segment(email_address_id)
            ))
            .json(&json!({ "strategy": "email_code" }));
        self.send(request, Subject::Form).await.map(|_| ())
    }

    /// `POST /v1/email_addresses/{id}/attempt_verification` (the local idp): a wrong, expired
    /// or exhausted code is [`AuthError::InputRefused`] (`form_code_incorrect`,
    /// `verification_expired`, `verification_failed`).
    pub async fn attempt_email_verification(
        &self,
        email_address_id: &str,
        code: &str,
    ) -> Result<(), AuthError> {
        let request = self
            .post(&format!(
                "/email_addresses/{}/attempt_verification",
                segment(email_address_id)
            ))
            .json(&json!({ "code": code }));
        self.send(request, Subject::Form).await.map(|_| ())
    }

    /// `POST /v1/password_resets` (the local idp): mails a reset code if the address has an
    /// account (the answer does not say).
    pub async fn prepare_password_reset(&self, email: &str) -> Result<(), AuthError> {
        let request = self
            .post("/password_resets")
            .json(&json!({ "email_address": email }));
        self.send(request, Subject::Form).await.map(|_| ())
    }

    /// `POST /v1/password_resets/attempt` (the local idp): sets a new password with the
    /// emailed code, ending every session.
    pub async fn reset_password(
        &self,
        email: &str,
        code: &str,
        password: &str,
    ) -> Result<(), AuthError> {
        let request = self
            .post("/password_resets/attempt")
            .json(&json!({ "email_address": email, "code": code, "password": password }));
        self.send(request, Subject::Form).await.map(|_| ())
    }

    /// `GET /v1/users?limit=…&offset=…`: users newest first, as the Backend API lists them.
    pub async fn list_users(&self, limit: usize, offset: usize) -> Result<Vec<ApiUser>, AuthError> {
        let request = self.get(&format!("/users?limit={limit}&offset={offset}"));
        let body = self.send(request, Subject::Other).await?;
        Ok(body
            .as_array()
            .map(|list| list.iter().map(parse_user).collect())
            .unwrap_or_default())
    }

    /// `GET /v1/users?email_address=…`.
    pub async fn users_by_email(&self, email: &str) -> Result<Vec<ApiUser>, AuthError> {
        let query = utf8_percent_encode(email, NON_ALPHANUMERIC);
        let request = self.get(&format!("/users?email_address={query}"));
        let body = self.send(request, Subject::Other).await?;
        Ok(body
            .as_array()
            .map(|list| list.iter().map(parse_user).collect())
            .unwrap_or_default())
    }

    /// `GET /v1/users/{id}`.
    pub async fn user(&self, user_id: &str) -> Result<ApiUser, AuthError> {
        let request = self.get(&format!("/users/{user_id}"));
        Ok(parse_user(&self.send(request, Subject::Other).await?))
    }

    /// `POST /v1/users/{id}/verify_password`: `Ok(false)` for a wrong password or an unknown
    /// user. The end user's address, when known, is passed as `X-Forwarded-For` for
    /// per-address rate limiting; a refusal is [`AuthError::Throttled`].
    pub async fn verify_password(
        &self,
        user_id: &str,
        password: &str,
        client_address: Option<IpAddr>,
    ) -> Result<bool, AuthError> {
        let request = self
            .post(&format!("/users/{user_id}/verify_password"))
            .json(&json!({ "password": password }));
        match self
            .send(for_client(request, client_address), Subject::PasswordCheck)
            .await
        {
            Ok(body) => Ok(body["verified"] == Value::Bool(true)),
            Err(AuthError::InvalidCredentials) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// `POST /v1/sessions` (local idp; Clerk creates sessions through sign-in flows).
    pub async fn create_session(&self, user_id: &str) -> Result<ApiSession, AuthError> {
        let request = self.post("/sessions").json(&json!({ "user_id": user_id }));
        parse_session(self.send(request, Subject::Other).await?)
    }

    /// `GET /v1/sessions/{sid}`; an unknown session is [`AuthError::SessionEnded`].
    pub async fn session(&self, session_id: &str) -> Result<ApiSession, AuthError> {
        let request = self.get(&format!("/sessions/{session_id}"));
        parse_session(self.send(request, Subject::Session).await?)
    }

    /// `POST /v1/sessions/{sid}/revoke`; an unknown session is [`AuthError::SessionEnded`].
    pub async fn revoke_session(&self, session_id: &str) -> Result<ApiSession, AuthError> {
        let request = self.post(&format!("/sessions/{session_id}/revoke"));
        parse_session(self.send(request, Subject::Session).await?)
    }

    /// `POST /v1/sessions/{sid}/tokens`: a fresh session token; [`AuthError::SessionEnded`]
    /// once the session is over.
    pub async fn session_token(&self, session_id: &str) -> Result<String, AuthError> {
        let mut request = self.post(&format!("/sessions/{session_id}/tokens"));
        if let Some(origin) = &self.origin {
            request = request.header(http::header::ORIGIN, origin);
        }
        parse_token(self.send(request, Subject::Session).await?)
    }

    /// `POST /v1/sessions/{sid}/tokens/{template}`: a JWT-template token (e.g. `convex`);
    /// [`AuthError::SessionEnded`] once the session is over, [`AuthError::Config`] when the
    /// instance has no such template.
    pub async fn template_token(
        &self,
        session_id: &str,
        template: &str,
    ) -> Result<String, AuthError> {
        let request = self.post(&format!("/sessions/{session_id}/tokens/{template}"));
        match self.send(request, Subject::Session).await {
            Ok(body) => parse_token(body),
            // An unknown session and an unknown template both answer 404: ask which it was.
            Err(AuthError::SessionEnded { reason }) => {
                if self.session(session_id).await?.is_active() {
                    Err(AuthError::Config(format!(
                        "the identity service has no JWT template named `{template}` ({reason})"
                    )))
                } else {
                    Err(AuthError::SessionEnded { reason })
                }
            }
            Err(other) => Err(other),
        }
    }
}

/// What a Backend-API call is about: decides what a failure means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Subject {
    /// A session: reading, revoking, minting its tokens.
    Session,
    /// Creating a user (sign-up).
    NewUser,
    /// Anything else a visitor typed: codes, new passwords, names.
    Form,
    /// Checking a user's password (sign-in).
    PasswordCheck,
    /// Anything else.
    Other,
}

/// A Backend-API answer that was not a success, as it came off the wire.
#[derive(Debug)]
struct ApiFailure {
    status: u16,
    /// Clerk's `errors[0].code`.
    code: String,
    /// `errors[0].long_message`, else `message`.
    message: String,
    /// `errors[0].meta.param_name`: the request field at fault.
    param: Option<String>,
    /// The `Retry-After` header.
    retry_after: Option<Duration>,
    /// `errors[0].meta.email_address_id` (the local idp's unverified-address refusal).
    email_address_id: Option<String>,
}

impl ApiFailure {
    /// The one place a Backend-API status and code are read: what the failure means for a call
    /// about `subject`. Callers match on the meaning ([`AuthError::SessionEnded`],
    /// [`AuthError::Throttled`], [`AuthError::InputRefused`], …), never on numbers.
    fn meaning(self, subject: Subject) -> AuthError {
        match (subject, self.status) {
            (_, 429) => AuthError::Throttled {
                retry_after: self.retry_after,
                message: self.message,
            },
            // Unknown (404), gone (410) or no longer active (422).
            (Subject::Session, 404 | 410 | 422) => AuthError::SessionEnded {
                reason: self.message,
            },
            (Subject::NewUser | Subject::Form, 400 | 422) => AuthError::InputRefused {
                field: self.param,
                code: self.code,
                message: self.message,
            },
            (_, 403) if self.code == "email_address_not_verified" => AuthError::EmailNotVerified {
                email_address_id: self.email_address_id.unwrap_or_default(),
            },
            // No such user, or not the password: the same answer, so neither is revealed.
            (Subject::PasswordCheck, status)
                if status == 404 || self.code == "incorrect_password" =>
            {
                AuthError::InvalidCredentials
            }
            _ => AuthError::BackendApi {
                status: self.status,
                code: self.code,
                message: self.message,
            },
        }
    }
}

/// The `Retry-After` of a refusal, in seconds.
fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// `request` on behalf of the end user at `client_address`, reported to the identity service
/// as `X-Forwarded-For` (it believes callers holding the secret key).
pub(crate) fn for_client(
    request: reqwest::RequestBuilder,
    client_address: Option<IpAddr>,
) -> reqwest::RequestBuilder {
    match client_address {
        Some(address) => request.header("x-forwarded-for", address.to_string()),
        None => request,
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
        primary_email_address_id: s("primary_email_address_id"),
        two_factor_enabled: v["two_factor_enabled"] == Value::Bool(true),
        email_verified: v["email_addresses"].as_array().is_some_and(|list| {
            list.iter().any(|e| {
                e["id"].as_str() == v["primary_email_address_id"].as_str()
                    && e["verification"]["status"] == "verified"
            })
        }),
    }
}

/// An id as one URL path segment (percent-encoded: an id never changes the path).
pub(crate) fn segment(id: &str) -> String {
    utf8_percent_encode(id, NON_ALPHANUMERIC).to_string()
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

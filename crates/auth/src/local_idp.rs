//! [`LocalIdpAuthenticator`]: the web tier against Keel's own idp, over its Backend API.
//!
//! Cookies (both `HttpOnly`, `SameSite=Lax`, `Path=/`):
//! * `__session` — the 60-second session token, verified networklessly (JWKS cached).
//! * `__client` — long-lived and opaque: `v1.<sid>.<issued>.<mac>`, HMAC-SHA256 with a key
//!   derived from the secret key. When `__session` is missing or expired, a valid `__client`
//!   whose session is still active gets a fresh session token from the idp (and a new
//!   `__session` cookie); a revoked or expired session signs the browser out.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::{digest, hmac};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;

use crate::authenticator::{
    AuthFuture, AuthState, Authentication, Authenticator, TemplateTokenCache, TokenCache,
    template_or_session_token,
};
use crate::backend_api::BackendApiClient;
use crate::cookies::{CookiePolicy, bearer, cookie};
use crate::error::AuthError;
use crate::in_process::InProcessIdp;
use crate::jwks::{CachedKeys, KeySource};
use crate::session::{SessionVerifier, VerifiedSession};

/// Name of the session-token cookie.
pub const SESSION_COOKIE: &str = "__session";
/// Name of the long-lived client cookie.
pub const CLIENT_COOKIE: &str = "__client";

/// Settings of a [`LocalIdpAuthenticator`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalIdpConfig {
    /// The idp's URL (its issuer), e.g. `http://127.0.0.1:3100`.
    pub api_url: String,
    /// The idp's secret key (`sk_test_…`).
    pub secret_key: String,
    /// Add `Secure` to cookies (serve over HTTPS).
    pub secure_cookies: bool,
    /// Lifetime of the `__client` cookie (default 30 days).
    pub client_cookie_max_age: Duration,
    /// If non-empty, session tokens must carry an `azp` from this list.
    pub authorized_parties: Vec<String>,
    /// The `iss` session tokens must carry (default: `api_url`); `None` skips the check.
    pub issuer: Option<String>,
    /// The web tier's own origin (e.g. `http://127.0.0.1:3000`): sent as `Origin` when minting
    /// session tokens, so their `azp` names it (pair with `authorized_parties`).
    pub origin: Option<String>,
}

impl LocalIdpConfig {
    /// Defaults for an idp at `api_url`.
    pub fn new(api_url: &str, secret_key: &str) -> Self {
        LocalIdpConfig {
            api_url: api_url.trim_end_matches('/').to_owned(),
            secret_key: secret_key.to_owned(),
            secure_cookies: false,
            client_cookie_max_age: Duration::from_secs(30 * 24 * 3600),
            authorized_parties: Vec::new(),
            issuer: Some(api_url.trim_end_matches('/').to_owned()),
            origin: None,
        }
    }
}

/// Fields of a sign-up form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignUp {
    /// Email address (the sign-in identifier).
    pub email: String,
    /// Password (at least 8 characters; the idp enforces it).
    pub password: String,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
}

/// The web tier's authenticator for the local idp.
pub struct LocalIdpAuthenticator {
    pub(crate) api: BackendApiClient,
    pub(crate) sessions: SessionVerifier,
    pub(crate) client_key: hmac::Key,
    pub(crate) cookies: CookiePolicy,
    client_max_age: Duration,
    pub(crate) templates: TemplateTokenCache,
}

impl std::fmt::Debug for LocalIdpAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalIdpAuthenticator")
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

impl LocalIdpAuthenticator {
    /// An authenticator for the idp described by `config` (no network until first use).
    pub fn new(config: LocalIdpConfig) -> Self {
        let mut api = BackendApiClient::new(&config.api_url, &config.secret_key);
        if let Some(origin) = &config.origin {
            api = api.with_origin(origin);
        }
        let keys = CachedKeys::new(
            KeySource::BackendApi {
                url: api.jwks_url(),
                secret_key: config.secret_key.clone(),
            },
            crate::http_client(Duration::from_secs(10)),
            Duration::from_secs(300),
            Duration::from_secs(10),
        );
        let sessions = SessionVerifier::new(keys, config.authorized_parties, config.issuer);
        let derived = digest::digest(
            &digest::SHA256,
            format!("keel client cookie v1\0{}", config.secret_key).as_bytes(),
        );
        LocalIdpAuthenticator {
            api,
            sessions,
            client_key: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
            cookies: CookiePolicy {
                secure: config.secure_cookies,
            },
            client_max_age: config.client_cookie_max_age,
            templates: TemplateTokenCache::default(),
        }
    }

    /// Reaches the idp in this process (`keel` with every service) instead of over HTTP:
    /// sign-ins, sessions and minted tokens go to `idp` without a socket. Its signing keys are
    /// still fetched from `api_url` (once, then cached).
    pub fn in_process(mut self, idp: Arc<dyn InProcessIdp>) -> Self {
        self.api = self.api.in_process(idp);
        self
    }

    /// The Backend-API client (for user administration by the app).
    pub fn backend_api(&self) -> &BackendApiClient {
        &self.api
    }

    /// Creates a user (their address unverified, a code sent to it) and signs them in.
    /// `client_address` is the visitor's address, which the idp limits sign-ups by; a refused
    /// email or password is [`AuthError::InputRefused`], too many sign-ups
    /// [`AuthError::Throttled`]; when the idp requires verified addresses, the user is created
    /// but not signed in: [`AuthError::EmailNotVerified`].
    pub async fn sign_up(
        &self,
        form: SignUp,
        client_address: Option<IpAddr>,
    ) -> Result<Authentication, AuthError> {
        let user = self
            .api
            .sign_up_user(
                &form.email,
                &form.password,
                form.first_name.as_deref(),
                form.last_name.as_deref(),
                client_address,
            )
            .await?;
        // The address starts unverified: send its code now (a failure is logged; the
        // verification page can send another).
        if let Some(email_id) = &user.primary_email_address_id
            && let Err(error) = self.api.prepare_email_verification(email_id).await
        {
            tracing::warn!(%error, "cannot send the verification code after sign-up");
        }
        self.start_session(&user.id).await
    }

    /// Checks email + password and starts a session. A wrong email and a wrong password give the
    /// same [`AuthError::InvalidCredentials`]; `client_address` is the visitor's address, which
    /// the idp throttles failed attempts by ([`AuthError::Throttled`]). A user with a second
    /// factor gets [`AuthError::SecondFactorRequired`] instead of a session: its cookie leads
    /// to [`LocalIdpAuthenticator::attempt_second_factor`].
    pub async fn sign_in(
        &self,
        email: &str,
        password: &str,
        client_address: Option<IpAddr>,
    ) -> Result<Authentication, AuthError> {
        let users = self.api.users_by_email(email).await?;
        // Unknown email: ask anyway, about a non-existent user id derived from the address, so
        // the idp spends the same hashing work and applies the same per-user rate limit — the
        // response (time, 429s) does not reveal whether the address exists.
        let unknown_id;
        let user_id = match users.first() {
            Some(u) => u.id.as_str(),
            None => {
                let digest =
                    digest::digest(&digest::SHA256, email.trim().to_lowercase().as_bytes());
                unknown_id = format!(
                    "user_unknown{}",
                    URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16])
                );
                unknown_id.as_str()
            }
        };
        let verified = self
            .api
            .verify_password(user_id, password, client_address)
            .await?;
        if !verified || users.is_empty() {
            return Err(AuthError::InvalidCredentials);
        }
        if users[0].two_factor_enabled {
            return Err(AuthError::SecondFactorRequired {
                pending: self.pending_sign_in(user_id),
            });
        }
        let started = self.start_session(user_id).await;
        if let Err(AuthError::EmailNotVerified { email_address_id }) = &started {
            // The password was right: send a code so the visitor can verify and sign in.
            // Asking again too soon is refused by the idp; the earlier code still works.
            match self.api.prepare_email_verification(email_address_id).await {
                Ok(()) | Err(AuthError::Throttled { .. }) => {}
                Err(error) => tracing::warn!(%error, "cannot send a verification code"),
            }
        }
        started
    }

    /// Revokes the request's session everywhere and returns cookies that clear the browser's.
    pub async fn sign_out(&self, headers: &HeaderMap) -> Result<Vec<String>, AuthError> {
        let sid = match cookie(headers, SESSION_COOKIE) {
            Some(token) => {
                let sid = self
                    .sessions
                    .verify(&token)
                    .await
                    .ok()
                    .and_then(|s| s.session_id.clone());
                self.sessions.forget(&token);
                sid
            }
            None => None,
        }
        .or_else(|| cookie(headers, CLIENT_COOKIE).and_then(|c| self.open_client_cookie(&c)));
        if let Some(sid) = sid {
            self.templates.forget_session(&sid);
            match self.api.revoke_session(&sid).await {
                Ok(_) | Err(AuthError::SessionEnded { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.clear_cookies())
    }

    pub(crate) async fn start_session(&self, user_id: &str) -> Result<Authentication, AuthError> {
        let session = self.api.create_session(user_id).await?;
        let token = self.api.session_token(&session.id).await?;
        let verified = self.sessions.verify(&token).await?;
        Ok(Authentication {
            state: state_of(&verified, token.clone()),
            set_cookies: vec![
                self.cookies.set(SESSION_COOKIE, &token, None),
                self.cookies.set(
                    CLIENT_COOKIE,
                    &self.client_cookie(&session.id),
                    Some(self.client_max_age),
                ),
            ],
        })
    }

    pub(crate) fn clear_cookies(&self) -> Vec<String> {
        vec![
            self.cookies.clear(SESSION_COOKIE),
            self.cookies.clear(CLIENT_COOKIE),
        ]
    }

    pub(crate) fn client_cookie(&self, session_id: &str) -> String {
        let payload = format!("v1.{session_id}.{}", crate::jwt::now_secs());
        let tag = hmac::sign(&self.client_key, payload.as_bytes());
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// The session id of a genuine, unexpired `__client` value.
    fn open_client_cookie(&self, value: &str) -> Option<String> {
        let (payload, tag) = value.rsplit_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        hmac::verify(&self.client_key, payload.as_bytes(), &tag).ok()?;
        let mut parts = payload.split('.');
        let (Some("v1"), Some(sid), Some(issued), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let issued: i64 = issued.parse().ok()?;
        let max_age = i64::try_from(self.client_max_age.as_secs()).unwrap_or(i64::MAX / 4);
        (crate::jwt::now_secs() <= issued.saturating_add(max_age)).then(|| sid.to_owned())
    }

    pub(crate) async fn authenticate_request(
        &self,
        headers: &HeaderMap,
    ) -> Result<Authentication, AuthError> {
        if let Some(token) = bearer(headers) {
            return Ok(match self.sessions.verify(&token).await {
                Ok(v) => Authentication {
                    state: state_of(&v, token),
                    set_cookies: Vec::new(),
                },
                Err(e) => {
                    tracing::debug!(error = %e, "bearer token rejected");
                    Authentication::signed_out(Vec::new())
                }
            });
        }
        if let Some(token) = cookie(headers, SESSION_COOKIE) {
            match self.sessions.verify(&token).await {
                Ok(v) => {
                    return Ok(Authentication {
                        state: state_of(&v, token),
                        set_cookies: Vec::new(),
                    });
                }
                Err(AuthError::KeySource { url, reason }) => {
                    return Err(AuthError::KeySource { url, reason });
                }
                Err(e) => {
                    tracing::debug!(error = %e, "session cookie not usable; trying the client cookie");
                }
            }
        }
        let Some(client) = cookie(headers, CLIENT_COOKIE) else {
            return Ok(Authentication::signed_out(Vec::new()));
        };
        let Some(sid) = self.open_client_cookie(&client) else {
            return Ok(Authentication::signed_out(self.clear_cookies()));
        };
        let ended = || {
            self.templates.forget_session(&sid);
            Ok(Authentication::signed_out(self.clear_cookies()))
        };
        match self.api.session(&sid).await {
            Ok(session) if session.is_active() => {}
            Ok(_) | Err(AuthError::SessionEnded { .. }) => return ended(),
            Err(e) => return Err(e),
        }
        let token = match self.api.session_token(&sid).await {
            Ok(t) => t,
            Err(AuthError::SessionEnded { .. }) => return ended(),
            Err(e) => return Err(e),
        };
        let verified = self.sessions.verify(&token).await?;
        Ok(Authentication {
            state: state_of(&verified, token.clone()),
            set_cookies: vec![self.cookies.set(SESSION_COOKIE, &token, None)],
        })
    }
}

pub(crate) fn state_of(v: &VerifiedSession, token: String) -> AuthState {
    AuthState {
        user_id: Some(v.user_id.clone()),
        session_id: v.session_id.clone(),
        claims: Some(v.claims.clone()),
        session_token: Some(token),
    }
}

impl Authenticator for LocalIdpAuthenticator {
    fn authenticate<'a>(&'a self, headers: &'a HeaderMap) -> AuthFuture<'a, Authentication> {
        Box::pin(self.authenticate_request(headers))
    }

    fn token<'a>(
        &'a self,
        state: &'a AuthState,
        template: Option<&'a str>,
        cache: TokenCache,
    ) -> AuthFuture<'a, Option<String>> {
        Box::pin(template_or_session_token(
            &self.templates,
            &self.api,
            state,
            template,
            cache,
        ))
    }
}

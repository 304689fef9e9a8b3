//! [`ClerkAuthenticator`]: the web tier against real Clerk (or anything speaking its Backend
//! API, such as the local idp).
//!
//! * Token from `Authorization: Bearer`, else the `__session_<suffix>` cookie, else `__session`
//!   (the suffix is derived from the publishable key, as Clerk's SDKs do).
//! * Keys: networkless from `CLERK_JWT_KEY` (SPKI PEM) when set, else `GET {api}/v1/jwks` with
//!   the secret key, cached and refetched on an unknown `kid`.
//! * `azp` allow-list when configured; template tokens (`cat`) refused as session tokens.
//! * A session cookie older than `__client_uat[_<suffix>]` (set by clerk-js: the browser's last
//!   sign-in or sign-out, `0` when signed out) is signed out, as Clerk's SDKs treat it.
//! * Template tokens: `POST {api}/v1/sessions/{sid}/tokens/{template}`.
//!
//! * Page requests ([`Authenticator::authenticate_page`]) run Clerk's handshake (module
//!   `handshake`): an expired, missing or outdated `__session` of a browser whose
//!   `__client_uat` says it is signed in is renewed by a round trip to the Frontend API, so
//!   the page is not rendered signed out. Other requests with such a cookie are signed out,
//!   and the browser runtime of `keel-start` re-renders the page once Clerk's script has a
//!   fresh cookie (`<meta name="keel-clerk-session">`).

use std::time::Duration;

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE};
use http::HeaderMap;

use crate::authenticator::{
    AuthFuture, AuthState, Authentication, Authenticator, PageAuthentication, TemplateTokenCache,
    TokenCache, template_or_session_token,
};
use crate::backend_api::BackendApiClient;
use crate::cookies::{bearer, cookie};
use crate::error::AuthError;
use crate::jwks::{CachedKeys, KeySet, KeySource, VerifyingKey};
use crate::local_idp::state_of;
use crate::session::SessionVerifier;

/// Development (`pk_test_`) or production (`pk_live_`) instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceType {
    /// `pk_test_…`
    Development,
    /// `pk_live_…`
    Production,
}

/// A parsed Clerk publishable key: `pk_test_`/`pk_live_` + base64(`"<frontend api host>$"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishableKey {
    /// The key as given.
    pub key: String,
    /// Development or production.
    pub instance_type: InstanceType,
    /// The Frontend API host (e.g. `verb-noun-00.clerk.accounts.dev`).
    pub frontend_api: String,
}

impl PublishableKey {
    /// Parses and validates a publishable key.
    ///
    /// ```
    /// let pk = keel_auth::PublishableKey::encode(keel_auth::InstanceType::Development, "127.0.0.1:3100");
    /// let parsed = keel_auth::PublishableKey::parse(&pk).unwrap();
    /// assert_eq!(parsed.frontend_api, "127.0.0.1:3100");
    /// ```
    pub fn parse(key: &str) -> Result<Self, AuthError> {
        let bad = |why: &str| {
            AuthError::Config(format!(
                "publishable key is not valid ({why}); expected pk_test_… or pk_live_…"
            ))
        };
        let key = key.trim();
        let (instance_type, rest) = if let Some(rest) = key.strip_prefix("pk_test_") {
            (InstanceType::Development, rest)
        } else if let Some(rest) = key.strip_prefix("pk_live_") {
            (InstanceType::Production, rest)
        } else {
            return Err(bad("wrong prefix"));
        };
        let encoded = rest
            .split('_')
            .next()
            .unwrap_or_default()
            .trim_end_matches('=');
        let decoded = STANDARD_NO_PAD
            .decode(encoded)
            .map_err(|_| bad("not base64"))?;
        let decoded = String::from_utf8(decoded).map_err(|_| bad("not UTF-8"))?;
        let host = decoded
            .strip_suffix('$')
            .ok_or_else(|| bad("missing trailing `$`"))?;
        if host.is_empty() || host.contains('$') || !host.contains('.') {
            return Err(bad(
                "the decoded host must contain a '.' and exactly one trailing '$'",
            ));
        }
        Ok(PublishableKey {
            key: key.to_owned(),
            instance_type,
            frontend_api: host.to_owned(),
        })
    }

    /// Builds a publishable key for a Frontend API host.
    pub fn encode(instance_type: InstanceType, frontend_api: &str) -> String {
        let prefix = match instance_type {
            InstanceType::Development => "pk_test_",
            InstanceType::Production => "pk_live_",
        };
        format!(
            "{prefix}{}",
            STANDARD
                .encode(format!("{frontend_api}$"))
                .trim_end_matches('=')
        )
    }

    /// Clerk's cookie suffix: the first 8 characters of URL-safe base64(SHA-1(key)).
    pub fn cookie_suffix(&self) -> String {
        let sha1 = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, self.key.as_bytes());
        URL_SAFE.encode(sha1.as_ref()).chars().take(8).collect()
    }
}

/// Settings of a [`ClerkAuthenticator`] (the `CLERK_*` environment variables).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClerkConfig {
    /// `CLERK_PUBLISHABLE_KEY`.
    pub publishable_key: String,
    /// `CLERK_SECRET_KEY`.
    pub secret_key: String,
    /// `CLERK_JWT_KEY`: SPKI PEM for networkless verification.
    pub jwt_key: Option<String>,
    /// `CLERK_API_URL` (default `https://api.clerk.com`).
    pub api_url: String,
    /// Allowed `azp` values (e.g. `https://example.com`); empty = not checked.
    pub authorized_parties: Vec<String>,
    /// Required `iss` (e.g. `https://clerk.example.com`); `None` = not checked (Clerk's default).
    pub issuer: Option<String>,
}

impl ClerkConfig {
    /// Reads `CLERK_PUBLISHABLE_KEY`, `CLERK_SECRET_KEY`, `CLERK_JWT_KEY`, `CLERK_API_URL`.
    /// `Ok(None)` when neither key is set; an error when only one is.
    pub fn from_env() -> Result<Option<Self>, AuthError> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        match (var("CLERK_PUBLISHABLE_KEY"), var("CLERK_SECRET_KEY")) {
            (None, None) => Ok(None),
            (Some(publishable_key), Some(secret_key)) => Ok(Some(ClerkConfig {
                publishable_key,
                secret_key,
                jwt_key: var("CLERK_JWT_KEY"),
                api_url: var("CLERK_API_URL").unwrap_or_else(|| "https://api.clerk.com".to_owned()),
                authorized_parties: Vec::new(),
                issuer: None,
            })),
            (Some(_), None) => Err(AuthError::Config(
                "CLERK_PUBLISHABLE_KEY is set but CLERK_SECRET_KEY is not".to_owned(),
            )),
            (None, Some(_)) => Err(AuthError::Config(
                "CLERK_SECRET_KEY is set but CLERK_PUBLISHABLE_KEY is not".to_owned(),
            )),
        }
    }
}

/// The web tier's authenticator for real Clerk.
pub struct ClerkAuthenticator {
    publishable_key: PublishableKey,
    pub(crate) suffixed_session_cookie: String,
    pub(crate) suffixed_client_uat_cookie: String,
    api: BackendApiClient,
    pub(crate) sessions: SessionVerifier,
    templates: TemplateTokenCache,
}

impl std::fmt::Debug for ClerkAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClerkAuthenticator")
            .field("frontend_api", &self.publishable_key.frontend_api)
            .finish_non_exhaustive()
    }
}

impl ClerkAuthenticator {
    /// Validates the configuration (publishable key, secret key prefix, PEM).
    pub fn new(config: ClerkConfig) -> Result<Self, AuthError> {
        let publishable_key = PublishableKey::parse(&config.publishable_key)?;
        if !config.secret_key.starts_with("sk_") {
            return Err(AuthError::Config(
                "CLERK_SECRET_KEY must start with sk_test_ or sk_live_".to_owned(),
            ));
        }
        let api = BackendApiClient::new(&config.api_url, &config.secret_key);
        let source = match &config.jwt_key {
            Some(pem) => KeySource::Static(std::sync::Arc::new(KeySet::single(
                VerifyingKey::from_rsa_pem(&normalize_pem(pem))?,
            ))),
            None => KeySource::BackendApi {
                url: api.jwks_url(),
                secret_key: api.secret_key().to_owned(),
            },
        };
        // Clerk's SDK caches the JWKS for 5 minutes and refetches on an unknown kid.
        let keys = CachedKeys::new(
            source,
            crate::http_client(Duration::from_secs(10)),
            Duration::from_secs(300),
            Duration::from_secs(10),
        );
        let suffixed_session_cookie = format!("__session_{}", publishable_key.cookie_suffix());
        let suffixed_client_uat_cookie =
            format!("__client_uat_{}", publishable_key.cookie_suffix());
        Ok(ClerkAuthenticator {
            publishable_key,
            suffixed_session_cookie,
            suffixed_client_uat_cookie,
            api,
            sessions: SessionVerifier::new(keys, config.authorized_parties, config.issuer),
            templates: TemplateTokenCache::default(),
        })
    }

    /// The parsed publishable key.
    pub fn publishable_key(&self) -> &PublishableKey {
        &self.publishable_key
    }

    /// The Backend-API client.
    pub fn backend_api(&self) -> &BackendApiClient {
        &self.api
    }

    pub(crate) async fn authenticate_request(
        &self,
        headers: &HeaderMap,
    ) -> Result<Authentication, AuthError> {
        let from_header = bearer(headers);
        let from_cookie = from_header.is_none();
        let token = from_header
            .or_else(|| cookie(headers, &self.suffixed_session_cookie))
            .or_else(|| cookie(headers, "__session"));
        let Some(token) = token else {
            return Ok(Authentication::signed_out(Vec::new()));
        };
        match self.sessions.verify(&token).await {
            Ok(v) if from_cookie && self.stale_for_client(headers, &v.claims) => {
                Ok(Authentication::signed_out(Vec::new()))
            }
            Ok(v) => Ok(Authentication {
                state: state_of(&v, token),
                set_cookies: Vec::new(),
            }),
            Err(e @ AuthError::KeySource { .. }) => Err(e),
            Err(e) => {
                tracing::debug!(error = %e, "Clerk session token rejected");
                Ok(Authentication::signed_out(Vec::new()))
            }
        }
    }
}

impl ClerkAuthenticator {
    /// Whether a session cookie predates the browser's last Clerk change, which clerk-js
    /// records in `__client_uat` (seconds; `0` once signed out): signed out in another tab, or
    /// signed in again as someone else. Clerk's SDKs then run the handshake; here the request
    /// is signed out, and the page re-renders once Clerk in the browser has a fresh cookie. A
    /// request without `__client_uat` (not a browser running clerk-js) is not checked.
    fn stale_for_client(
        &self,
        headers: &HeaderMap,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> bool {
        let uat = cookie(headers, &self.suffixed_client_uat_cookie)
            .or_else(|| cookie(headers, "__client_uat"))
            .and_then(|v| v.parse::<i64>().ok());
        let Some(uat) = uat else {
            return false;
        };
        let iat = claims
            .get("iat")
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(0);
        let stale = uat <= 0 || iat < uat;
        if stale {
            tracing::debug!(
                uat,
                iat,
                "Clerk session cookie older than the client's last change"
            );
        }
        stale
    }
}

/// Accepts a PEM whose newlines were flattened to `\n` escapes (common in env files).
fn normalize_pem(pem: &str) -> String {
    pem.replace("\\n", "\n")
}

impl Authenticator for ClerkAuthenticator {
    fn authenticate<'a>(&'a self, headers: &'a HeaderMap) -> AuthFuture<'a, Authentication> {
        Box::pin(self.authenticate_request(headers))
    }

    fn authenticate_page<'a>(
        &'a self,
        headers: &'a HeaderMap,
        page_url: &'a str,
    ) -> AuthFuture<'a, PageAuthentication> {
        Box::pin(self.authenticate_page_request(headers, page_url))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishable_keys() {
        let pk = PublishableKey::encode(InstanceType::Production, "clerk.example.com");
        let parsed = PublishableKey::parse(&pk).unwrap();
        assert_eq!(parsed.instance_type, InstanceType::Production);
        assert_eq!(parsed.frontend_api, "clerk.example.com");
        assert_eq!(parsed.cookie_suffix().len(), 8);
        // Known key from Clerk's docs format: "pk_test_" + base64("foo-bar-13.clerk.accounts.dev$").
        let known = format!(
            "pk_test_{}",
            STANDARD.encode("foo-bar-13.clerk.accounts.dev$")
        );
        assert_eq!(
            PublishableKey::parse(&known).unwrap().frontend_api,
            "foo-bar-13.clerk.accounts.dev"
        );
        for bad in [
            "",
            "sk_test_abc",
            "pk_test_",
            "pk_test_!!!",
            &format!("pk_test_{}", STANDARD.encode("localhost$")),
            &format!("pk_live_{}", STANDARD.encode("a.b")),
        ] {
            let err = PublishableKey::parse(bad).unwrap_err();
            assert_eq!(err.code(), "InvalidAuthConfig", "{bad}");
        }
    }
}

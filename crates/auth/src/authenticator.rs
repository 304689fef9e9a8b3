//! The web tier's view of identity: [`Authenticator`] turns a request into an [`AuthState`] and
//! mints tokens for the backend.

use std::future::Future;
use std::pin::Pin;

use http::HeaderMap;
use serde_json::{Map, Value};

use crate::error::AuthError;
use crate::expiring::ExpiringCache;
use crate::session::unverified_exp;

/// The boxed future returned by [`Authenticator`] methods (keeps the trait object-safe).
pub type AuthFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, AuthError>> + Send + 'a>>;

/// Who is making a request. Signed out: every field `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuthState {
    /// The user id (`sub`).
    pub user_id: Option<String>,
    /// The session id (`sid`).
    pub session_id: Option<String>,
    /// All claims of the session token.
    pub claims: Option<Map<String, Value>>,
    /// The verified session token itself (what `get_token(None)` returns).
    pub session_token: Option<String>,
}

impl AuthState {
    /// The signed-out state.
    pub fn signed_out() -> Self {
        AuthState::default()
    }

    /// Whether a user is signed in.
    pub fn is_signed_in(&self) -> bool {
        self.user_id.is_some()
    }
}

/// The outcome of authenticating a request: the state, plus `Set-Cookie` header values the
/// response must carry (a refreshed `__session`, or cookies to clear).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Authentication {
    /// Who is making the request.
    pub state: AuthState,
    /// Complete `Set-Cookie` header values to add to the response.
    pub set_cookies: Vec<String>,
}

impl Authentication {
    pub(crate) fn signed_out(set_cookies: Vec<String>) -> Self {
        Authentication {
            state: AuthState::signed_out(),
            set_cookies,
        }
    }
}

/// What authenticating a page request decided ([`Authenticator::authenticate_page`]).
#[derive(Debug, Clone, PartialEq)]
pub enum PageAuthentication {
    /// Render the page with this authentication.
    Render(Authentication),
    /// Answer `307 Temporary Redirect` to `location` (with `Cache-Control: no-store`) and
    /// these cookies instead of rendering: Clerk's handshake, there and back.
    Redirect {
        /// Where to: the Frontend API's handshake, or this page again (a path).
        location: String,
        /// Complete `Set-Cookie` header values to add to the response.
        set_cookies: Vec<String>,
    },
}

/// Authenticates web requests and mints backend tokens. Implemented by
/// [`crate::LocalIdpAuthenticator`] and [`crate::ClerkAuthenticator`]; use as
/// `Arc<dyn Authenticator>`.
///
/// Invalid or expired credentials give a signed-out state (never an error); `Err` means the
/// identity service could not be reached or answered unexpectedly.
pub trait Authenticator: Send + Sync {
    /// Reads `Authorization: Bearer` or the session cookies of a request.
    fn authenticate<'a>(&'a self, headers: &'a HeaderMap) -> AuthFuture<'a, Authentication>;

    /// Authenticates a page request (a `GET` of `page_url`, absolute): as
    /// [`Authenticator::authenticate`], except that an authenticator may answer with a
    /// redirect instead (real Clerk's handshake, see [`crate::ClerkAuthenticator`]).
    fn authenticate_page<'a>(
        &'a self,
        headers: &'a HeaderMap,
        page_url: &'a str,
    ) -> AuthFuture<'a, PageAuthentication> {
        let _ = page_url;
        Box::pin(async move {
            self.authenticate(headers)
                .await
                .map(PageAuthentication::Render)
        })
    }

    /// A token for the backend: `None` template → the session token itself (no network);
    /// `Some("convex")` → a template token from the Backend API, reused from the cache or not
    /// as `cache` says. Signed out → `Ok(None)`. Callers use [`Authenticator::get_token`] and
    /// [`Authenticator::get_fresh_token`].
    fn token<'a>(
        &'a self,
        state: &'a AuthState,
        template: Option<&'a str>,
        cache: TokenCache,
    ) -> AuthFuture<'a, Option<String>>;

    /// A token for the backend; a template token is cached until shortly before it expires.
    fn get_token<'a>(
        &'a self,
        state: &'a AuthState,
        template: Option<&'a str>,
    ) -> AuthFuture<'a, Option<String>> {
        self.token(state, template, TokenCache::Reuse)
    }

    /// Like [`Authenticator::get_token`], but never reuses a cached template token: a token the
    /// backend has just rejected must not come back (Clerk's `skipCache`). The live client asks
    /// for this when it retries after an `AuthError` (`force_refresh`).
    fn get_fresh_token<'a>(
        &'a self,
        state: &'a AuthState,
        template: Option<&'a str>,
    ) -> AuthFuture<'a, Option<String>> {
        self.token(state, template, TokenCache::Skip)
    }
}

/// Whether a template token may come from the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenCache {
    /// Reuse a cached token that is not about to expire.
    Reuse,
    /// Mint a new one (and cache it).
    Skip,
}

/// Template tokens per (session, template), reused until 15 s before expiry.
pub(crate) struct TemplateTokenCache {
    tokens: ExpiringCache<(String, String), String>,
}

impl Default for TemplateTokenCache {
    fn default() -> Self {
        TemplateTokenCache {
            tokens: ExpiringCache::new(10_000),
        }
    }
}

/// A cached template token is not handed out within this many seconds of its expiry.
const REUSE_MARGIN_SECS: i64 = 15;

impl TemplateTokenCache {
    /// The cached token for (session, template) unless it expires within the reuse margin or
    /// `cache` says to skip it; otherwise a newly minted one, which is cached.
    pub(crate) async fn get_or_mint<F>(
        &self,
        session_id: &str,
        template: &str,
        cache: TokenCache,
        mint: F,
    ) -> Result<String, AuthError>
    where
        F: Future<Output = Result<String, AuthError>>,
    {
        let key = (session_id.to_owned(), template.to_owned());
        let now = crate::jwt::now_secs();
        if cache == TokenCache::Reuse
            && let Some(token) = self.tokens.get(&key, now)
        {
            return Ok(token);
        }
        let token = mint.await?;
        if let Some(exp) = unverified_exp(&token) {
            // Reused while `exp > now + margin`.
            let valid_until = exp.saturating_sub(REUSE_MARGIN_SECS + 1);
            self.tokens.insert(key, token.clone(), valid_until, now);
        }
        Ok(token)
    }

    pub(crate) fn forget_session(&self, session_id: &str) {
        self.tokens.retain(|(sid, _)| sid != session_id);
    }
}

pub(crate) async fn template_or_session_token(
    templates: &TemplateTokenCache,
    api: &crate::BackendApiClient,
    state: &AuthState,
    template: Option<&str>,
    cache: TokenCache,
) -> Result<Option<String>, AuthError> {
    let Some(template) = template else {
        return Ok(state.session_token.clone());
    };
    let Some(sid) = state.session_id.as_deref() else {
        return Ok(None);
    };
    templates
        .get_or_mint(sid, template, cache, api.template_token(sid, template))
        .await
        .map(Some)
}

//! Clerk's handshake, for [`ClerkAuthenticator`] on page requests: a browser whose clerk-js
//! says it is signed in (`__client_uat` > 0) but whose `__session` is expired, missing or
//! older than that sign-in is sent to the Frontend API (`GET <fapi>/v1/client/handshake`),
//! which knows the browser by its `__client` cookie and sends it back with a signed payload
//! of fresh cookies (`__clerk_handshake`, a JWT whose `handshake` claim lists `Set-Cookie`
//! values). The page is then rendered for the signed-in user — never signed out while Clerk
//! still has the session.
//!
//! The shape follows `@clerk/backend` (`tokens/handshake.ts`, `authenticateRequest`):
//! * only document requests (`Sec-Fetch-Dest: document|iframe`, or `Accept: text/html`
//!   without it) are redirected (307, `Cache-Control: no-store`); others are signed out;
//! * the redirect carries `redirect_url` (this page), `suffixed_cookies`, `__clerk_hs_reason`
//!   and, for development instances, the `__clerk_db_jwt` dev-browser token;
//! * at most three handshakes in a row (cookie `__clerk_redirect_count`, 3 s): a Frontend API
//!   that keeps answering without a usable session cannot loop the browser;
//! * the payload arrives as a cookie (production) or a query parameter (development, then
//!   the page redirects to itself without it). Its signature is checked with the instance's
//!   keys (the same ones as session tokens); a payload that is not genuine, or sets cookies
//!   other than Clerk's, is ignored as a whole and the page renders signed out;
//! * the page coming back is always a path on this site (no open redirect).
//!
//! Bearer tokens never handshake; a request without `__client_uat` (not a browser running
//! clerk-js) keeps the plain cookie check.

use http::HeaderMap;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use crate::authenticator::{Authentication, PageAuthentication};
use crate::clerk::{ClerkAuthenticator, InstanceType};
use crate::config::SigningAlgorithm;
use crate::cookies::{bearer, cookie};
use crate::error::{AuthError, TokenRejection};
use crate::jwks::KeyLookupError;
use crate::jwt::{UnverifiedToken, check_times, now_secs};
use crate::local_idp::state_of;

/// The handshake payload's cookie and query parameter.
pub const HANDSHAKE_PARAM: &str = "__clerk_handshake";
const HANDSHAKE_HELP_PARAM: &str = "__clerk_help";
const DEV_BROWSER: &str = "__clerk_db_jwt";
/// The loop guard's cookie.
pub const REDIRECT_COUNT_COOKIE: &str = "__clerk_redirect_count";
/// Handshakes in a row before the page renders signed out instead.
pub const MAX_HANDSHAKE_REDIRECTS: u32 = 3;
const MAX_PAYLOAD_BYTES: usize = 32 * 1024;
const MAX_PAYLOAD_COOKIES: usize = 16;
/// Cookie names a handshake payload may set: Clerk's own.
const CLERK_COOKIE_PREFIXES: &[&str] = &[
    "__session",
    "__client_uat",
    "__clerk_db_jwt",
    "__clerk_handshake",
    "__clerk_redirect_count",
    "__refresh",
];

/// Why a handshake is needed (Clerk's `__clerk_hs_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HandshakeReason {
    ClientUatWithoutSessionToken,
    SessionTokenExpired,
    SessionTokenNotBefore,
    SessionTokenIatInTheFuture,
    SessionTokenIatBeforeClientUat,
}

impl HandshakeReason {
    fn as_str(self) -> &'static str {
        match self {
            HandshakeReason::ClientUatWithoutSessionToken => "client-uat-but-no-session-token",
            HandshakeReason::SessionTokenExpired => "session-token-expired",
            HandshakeReason::SessionTokenNotBefore => "session-token-nbf",
            HandshakeReason::SessionTokenIatInTheFuture => "session-token-iat-in-the-future",
            HandshakeReason::SessionTokenIatBeforeClientUat => {
                "session-token-iat-before-client-uat"
            }
        }
    }
}

/// Whether Clerk would redirect this request: a document navigation, not a fetch.
fn is_document_request(headers: &HeaderMap) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match header("sec-fetch-dest") {
        Some(dest) => dest == "document" || dest == "iframe",
        None => header("accept").is_some_and(|a| a.starts_with("text/html")),
    }
}

fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// The path and query of an absolute `http(s)://` URL, for a redirect that stays on this
/// site; `None` when `url` is not such a URL or its path could leave the site (`//host`,
/// `/\host`).
fn local_part(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let path = &rest[rest.find('/')?..];
    let safe = !path.starts_with("//")
        && !path.starts_with("/\\")
        && !path.chars().any(|c| c.is_control() || c.is_whitespace());
    safe.then_some(path)
}

/// `url` without the handshake's query parameters.
fn without_handshake_params(path_and_query: &str) -> String {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| {
            let name = p.split('=').next().unwrap_or_default();
            name != HANDSHAKE_PARAM && name != HANDSHAKE_HELP_PARAM
        })
        .collect();
    if kept.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", kept.join("&"))
    }
}

/// The handshake payload of a request: the `__clerk_handshake` cookie, else the query
/// parameter (`true` when it came in the query).
fn handshake_token(headers: &HeaderMap, url: &str) -> Option<(String, bool)> {
    if let Some(token) = cookie(headers, HANDSHAKE_PARAM) {
        return Some((token, false));
    }
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name == HANDSHAKE_PARAM && !value.is_empty()).then(|| {
            (
                percent_encoding::percent_decode_str(value)
                    .decode_utf8_lossy()
                    .into_owned(),
                true,
            )
        })
    })
}

/// A `Set-Cookie` value's name, if it is one of Clerk's cookies and the value is a single
/// header line.
fn clerk_cookie_name(set_cookie: &str) -> Option<&str> {
    if set_cookie.len() > 8 * 1024 || set_cookie.chars().any(|c| c.is_control()) {
        return None;
    }
    let name = set_cookie.split_once('=')?.0.trim();
    CLERK_COOKIE_PREFIXES
        .iter()
        .any(|p| name == *p || name.strip_prefix(p).is_some_and(|s| s.starts_with('_')))
        .then_some(name)
}

fn cookie_value(set_cookie: &str) -> &str {
    let first = set_cookie.split(';').next().unwrap_or_default();
    first.split_once('=').map_or("", |(_, v)| v.trim())
}

impl ClerkAuthenticator {
    /// The Frontend API base: `https://<host>`, or `http://` for a loopback host (a local
    /// stand-in for Clerk).
    fn frontend_api_url(&self) -> String {
        let host = &self.publishable_key().frontend_api;
        let loopback =
            host.starts_with("127.") || host.starts_with("[::1]") || host.starts_with("localhost");
        let scheme = if loopback { "http" } else { "https" };
        format!("{scheme}://{host}")
    }

    fn client_uat(&self, headers: &HeaderMap) -> Option<i64> {
        cookie(headers, &self.suffixed_client_uat_cookie)
            .or_else(|| cookie(headers, "__client_uat"))
            .map(|v| v.parse::<i64>().unwrap_or(0))
    }

    fn session_cookie(&self, headers: &HeaderMap) -> Option<(String, bool)> {
        cookie(headers, &self.suffixed_session_cookie)
            .map(|t| (t, true))
            .or_else(|| cookie(headers, "__session").map(|t| (t, false)))
    }

    /// Authenticates a page request at `page_url` (absolute), handshaking as the module doc
    /// describes.
    pub(crate) async fn authenticate_page_request(
        &self,
        headers: &HeaderMap,
        page_url: &str,
    ) -> Result<PageAuthentication, AuthError> {
        if bearer(headers).is_none()
            && let Some((token, in_query)) = handshake_token(headers, page_url)
        {
            return self.resolve_handshake(&token, in_query, page_url).await;
        }
        let reason = if bearer(headers).is_some() {
            None
        } else {
            match (self.session_cookie(headers), self.client_uat(headers)) {
                (None, Some(uat)) if uat > 0 => Some(HandshakeReason::ClientUatWithoutSessionToken),
                (Some((token, _)), Some(uat)) if uat > 0 => {
                    match self.sessions.verify(&token).await {
                        Ok(v) => {
                            let iat = v.claims.get("iat").and_then(Value::as_i64).unwrap_or(0);
                            if iat < uat {
                                Some(HandshakeReason::SessionTokenIatBeforeClientUat)
                            } else {
                                return Ok(PageAuthentication::Render(Authentication {
                                    state: state_of(&v, token),
                                    set_cookies: Vec::new(),
                                }));
                            }
                        }
                        Err(AuthError::SessionToken(TokenRejection::Expired { .. })) => {
                            Some(HandshakeReason::SessionTokenExpired)
                        }
                        Err(AuthError::SessionToken(TokenRejection::NotYetValid { .. })) => {
                            Some(HandshakeReason::SessionTokenNotBefore)
                        }
                        Err(AuthError::SessionToken(TokenRejection::IssuedInFuture { .. })) => {
                            Some(HandshakeReason::SessionTokenIatInTheFuture)
                        }
                        Err(e @ AuthError::KeySource { .. }) => return Err(e),
                        Err(_) => None,
                    }
                }
                _ => None,
            }
        };
        match reason {
            None => Ok(PageAuthentication::Render(
                self.authenticate_request(headers).await?,
            )),
            Some(reason) => Ok(self.redirect_to_handshake(headers, page_url, reason)),
        }
    }

    /// The 307 to the Frontend API's handshake — or, past the loop guard, for a request that
    /// is not a document, or for a page URL that is not this site's, the signed-out page.
    fn redirect_to_handshake(
        &self,
        headers: &HeaderMap,
        page_url: &str,
        reason: HandshakeReason,
    ) -> PageAuthentication {
        let signed_out = PageAuthentication::Render(Authentication::signed_out(Vec::new()));
        if !is_document_request(headers) || local_part(page_url).is_none() {
            tracing::debug!(
                reason = reason.as_str(),
                "Clerk session needs a handshake; not a page navigation, signed out"
            );
            return signed_out;
        }
        let count = cookie(headers, REDIRECT_COUNT_COOKIE)
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0);
        if count >= MAX_HANDSHAKE_REDIRECTS {
            tracing::warn!(
                reason = reason.as_str(),
                "Clerk handshake redirect loop: rendering signed out"
            );
            return signed_out;
        }
        let suffixed = cookie(headers, &self.suffixed_session_cookie).is_some()
            || cookie(headers, &self.suffixed_client_uat_cookie).is_some();
        let mut location = format!(
            "{}/v1/client/handshake?redirect_url={}&suffixed_cookies={suffixed}&__clerk_hs_reason={}",
            self.frontend_api_url(),
            enc(page_url),
            reason.as_str()
        );
        if self.publishable_key().instance_type == InstanceType::Development
            && let Some(dev_browser) = cookie(headers, DEV_BROWSER)
        {
            location.push_str(&format!("&{DEV_BROWSER}={}", enc(&dev_browser)));
        }
        tracing::debug!(reason = reason.as_str(), "Clerk handshake");
        PageAuthentication::Redirect {
            location,
            set_cookies: vec![format!(
                "{REDIRECT_COUNT_COOKIE}={}; Path=/; SameSite=Lax; HttpOnly; Max-Age=3",
                count + 1
            )],
        }
    }

    /// Applies a handshake payload: its cookies, and the page for the session they carry.
    async fn resolve_handshake(
        &self,
        token: &str,
        in_query: bool,
        page_url: &str,
    ) -> Result<PageAuthentication, AuthError> {
        let mut set_cookies = match self.handshake_cookies(token).await {
            Ok(cookies) => cookies,
            Err(e @ AuthError::KeySource { .. }) => return Err(e),
            Err(error) => {
                tracing::warn!(%error, "Clerk handshake payload refused; rendering signed out");
                let clear = if in_query {
                    Vec::new()
                } else {
                    vec![format!("{HANDSHAKE_PARAM}=; Path=/; Max-Age=0")]
                };
                return Ok(PageAuthentication::Render(Authentication::signed_out(
                    clear,
                )));
            }
        };
        if !in_query
            && !set_cookies
                .iter()
                .any(|c| clerk_cookie_name(c) == Some(HANDSHAKE_PARAM))
        {
            set_cookies.push(format!("{HANDSHAKE_PARAM}=; Path=/; Max-Age=0"));
        }
        set_cookies.push(format!("{REDIRECT_COUNT_COOKIE}=; Path=/; Max-Age=0"));
        if in_query {
            // Development: back to the page without the payload in its URL.
            let location =
                local_part(page_url).map_or_else(|| "/".to_owned(), without_handshake_params);
            return Ok(PageAuthentication::Redirect {
                location,
                set_cookies,
            });
        }
        let session = set_cookies.iter().find(|c| {
            clerk_cookie_name(c)
                .is_some_and(|n| n == "__session" || n == self.suffixed_session_cookie)
        });
        let state = match session.map(|c| cookie_value(c)).filter(|v| !v.is_empty()) {
            Some(token) => match self.sessions.verify(token).await {
                Ok(v) => state_of(&v, token.to_owned()),
                Err(e @ AuthError::KeySource { .. }) => return Err(e),
                Err(error) => {
                    tracing::warn!(%error, "the session token from Clerk's handshake is not valid");
                    crate::authenticator::AuthState::signed_out()
                }
            },
            None => crate::authenticator::AuthState::signed_out(),
        };
        Ok(PageAuthentication::Render(Authentication {
            state,
            set_cookies,
        }))
    }

    /// The `Set-Cookie` values of a genuine handshake payload.
    async fn handshake_cookies(&self, token: &str) -> Result<Vec<String>, AuthError> {
        let parsed = UnverifiedToken::parse(token, MAX_PAYLOAD_BYTES)?;
        if parsed.alg != SigningAlgorithm::RS256 {
            return Err(AuthError::UnsupportedAlgorithm {
                alg: parsed.alg.as_jose().to_owned(),
            });
        }
        if let Some(typ) = parsed.header.get("typ")
            && typ != "JWT"
        {
            return Err(AuthError::malformed("handshake header `typ` is not JWT"));
        }
        let key = match self.sessions.keys().key_for(&parsed).await {
            Ok(key) => key,
            Err(KeyLookupError::Unknown(r)) => return Err(AuthError::SessionToken(r)),
            Err(KeyLookupError::Source(e)) => return Err(e),
        };
        key.verify(&parsed).map_err(AuthError::SessionToken)?;
        if parsed.claims.contains_key("exp") {
            check_times(&parsed.claims, now_secs(), 5).map_err(AuthError::SessionToken)?;
        }
        let Some(Value::Array(list)) = parsed.claims.get("handshake") else {
            return Err(AuthError::malformed(
                "handshake payload has no `handshake` list",
            ));
        };
        if list.len() > MAX_PAYLOAD_COOKIES {
            return Err(AuthError::malformed(
                "handshake payload sets too many cookies",
            ));
        }
        list.iter()
            .map(|v| {
                v.as_str()
                    .filter(|c| clerk_cookie_name(c).is_some())
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        AuthError::malformed("handshake payload sets a cookie that is not Clerk's")
                    })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_document_navigations_are_redirected() {
        let mut h = HeaderMap::new();
        assert!(!is_document_request(&h));
        h.insert("accept", "text/html,application/xhtml+xml".parse().unwrap());
        assert!(is_document_request(&h));
        h.insert("sec-fetch-dest", "empty".parse().unwrap());
        assert!(!is_document_request(&h));
        h.insert("sec-fetch-dest", "iframe".parse().unwrap());
        assert!(is_document_request(&h));
    }

    #[test]
    fn the_page_coming_back_stays_on_the_site() {
        assert_eq!(local_part("http://a.test/posts?x=1"), Some("/posts?x=1"));
        assert_eq!(local_part("https://a.test"), None);
        assert_eq!(local_part("http://a.test//evil.example/"), None);
        assert_eq!(local_part("http://a.test/\\evil.example"), None);
        assert_eq!(local_part("javascript:alert(1)"), None);
        assert_eq!(local_part("http://a.test/a\r\nSet-Cookie: x=1"), None);
        assert_eq!(
            without_handshake_params("/p?a=1&__clerk_handshake=x.y.z&__clerk_help=1&b=2"),
            "/p?a=1&b=2"
        );
        assert_eq!(without_handshake_params("/p?__clerk_handshake=x"), "/p");
    }

    #[test]
    fn payload_cookies_must_be_clerks() {
        assert_eq!(
            clerk_cookie_name("__session=abc; Path=/"),
            Some("__session")
        );
        assert_eq!(
            clerk_cookie_name("__session_Ab12-_x=abc"),
            Some("__session_Ab12-_x")
        );
        assert_eq!(
            clerk_cookie_name("__client_uat=0; Path=/"),
            Some("__client_uat")
        );
        for refused in [
            "sessionid=1",
            "__sessionx=1",
            "__session=a\r\nLocation: https://evil.example",
            "__session",
            &format!("__session={}", "a".repeat(9000)),
        ] {
            assert_eq!(clerk_cookie_name(refused), None, "{refused:?}");
        }
    }

    #[test]
    fn the_payload_is_read_from_the_cookie_first() {
        let mut h = HeaderMap::new();
        assert_eq!(
            handshake_token(&h, "http://a.test/p?__clerk_handshake=q%2Eq"),
            Some(("q.q".to_owned(), true))
        );
        h.insert(
            http::header::COOKIE,
            "__clerk_handshake=c.c.c".parse().unwrap(),
        );
        assert_eq!(
            handshake_token(&h, "http://a.test/p?__clerk_handshake=q"),
            Some(("c.c.c".to_owned(), false))
        );
        assert_eq!(
            handshake_token(&HeaderMap::new(), "http://a.test/p?__clerk_handshake="),
            None
        );
    }
}

//! [`AppState`]: what every request handler of the app holds (the built route tree, the backend
//! client, the authenticator, server functions, the live hub), and the two steps every request
//! starts with (authenticate, build the root router context). `start` builds it; the handlers in
//! `start` and `auth_ui` read it; `client_address` takes its trusted proxies from it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::FromRef;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, Uri};
use keel_auth::{
    AuthState, Authenticator, LocalIdpAuthenticator, PageAuthentication, PublishableKey,
};
use keel_client::HttpClient;
use parking_lot::Mutex;

use crate::client_address::TrustedProxies;
use crate::context::{Reads, RequestState, RouteContext};
use crate::live::LiveHub;
use crate::params::Params;
use crate::request_auth::RequestAuth;
use crate::route::Route;
use crate::server_fn::{ServerFnHandler, ServerFnMethod};

/// Everything a request handler needs.
pub(crate) struct AppState {
    pub(crate) root: Route,
    pub(crate) http: HttpClient,
    pub(crate) authenticator: Option<Arc<dyn Authenticator>>,
    pub(crate) local_idp: Option<Arc<LocalIdpAuthenticator>>,
    pub(crate) token_template: Option<String>,
    pub(crate) devtools: bool,
    pub(crate) clerk: Option<PublishableKey>,
    pub(crate) server_fns: HashMap<String, (ServerFnMethod, ServerFnHandler)>,
    pub(crate) live: Arc<LiveHub>,
    pub(crate) trusted_proxies: TrustedProxies,
    /// Pages are `https://` (the scheme of the page URL an authenticator is given).
    pub(crate) served_over_https: bool,
}

impl AppState {
    /// Authenticates the request: who it is, and cookies to set (a refreshed `__session`).
    pub(crate) async fn authenticate(&self, headers: &HeaderMap) -> (AuthState, Vec<String>) {
        let Some(authenticator) = &self.authenticator else {
            return (AuthState::signed_out(), Vec::new());
        };
        match authenticator.authenticate(headers).await {
            Ok(auth) => (auth.state, auth.set_cookies),
            Err(error) => {
                tracing::warn!(%error, "cannot authenticate the request; treating it as signed out");
                (AuthState::signed_out(), Vec::new())
            }
        }
    }

    /// Authenticates a page request (`GET uri`): as [`AppState::authenticate`], or the answer
    /// to send instead when the authenticator redirects (real Clerk's handshake: `307`,
    /// `Cache-Control: no-store`).
    pub(crate) async fn authenticate_page(
        &self,
        headers: &HeaderMap,
        uri: &Uri,
    ) -> Result<(AuthState, Vec<String>), Response> {
        let Some(authenticator) = &self.authenticator else {
            return Ok((AuthState::signed_out(), Vec::new()));
        };
        let outcome = match page_url(self.served_over_https, headers, uri) {
            Some(url) => authenticator.authenticate_page(headers, &url).await,
            None => authenticator
                .authenticate(headers)
                .await
                .map(PageAuthentication::Render),
        };
        match outcome {
            Ok(PageAuthentication::Render(auth)) => Ok((auth.state, auth.set_cookies)),
            Ok(PageAuthentication::Redirect {
                location,
                set_cookies,
            }) => Err(temporary_redirect(&location, &set_cookies)),
            Err(error) => {
                tracing::warn!(%error, "cannot authenticate the request; treating it as signed out");
                Ok((AuthState::signed_out(), Vec::new()))
            }
        }
    }

    /// The root router context of a request, reading from the backend.
    pub(crate) fn base_context(
        &self,
        uri: Uri,
        headers: HeaderMap,
        auth: AuthState,
    ) -> RouteContext {
        self.context_reading(uri, headers, auth, Reads::Backend)
    }

    /// The root router context of a render whose queries read from `reads`.
    pub(crate) fn context_reading(
        &self,
        uri: Uri,
        headers: HeaderMap,
        auth: AuthState,
        reads: Reads,
    ) -> RouteContext {
        let mut http = self.http.clone();
        http.new_snapshot();
        RouteContext {
            request: Arc::new(RequestState {
                uri,
                headers,
                auth: RequestAuth::new(
                    auth,
                    self.authenticator.clone(),
                    self.token_template.clone(),
                ),
                local_idp: self.local_idp.clone(),
                reads,
                query_client: std::sync::OnceLock::new(),
                http: Mutex::new(http),
                http_authenticated: tokio::sync::OnceCell::new(),
                used: Mutex::new(Vec::new()),
                in_flight: Mutex::new(HashMap::new()),
            }),
            additions: Arc::new(http::Extensions::new()),
            params: Params::default(),
        }
    }
}

/// The absolute URL of a page request, from its `Host` header; `None` when the header is
/// missing or not a plain `host[:port]`.
fn page_url(https: bool, headers: &HeaderMap, uri: &Uri) -> Option<String> {
    let host = headers.get(http::header::HOST)?.to_str().ok()?;
    let plain = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if !plain {
        return None;
    }
    let scheme = if https { "https" } else { "http" };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    Some(format!("{scheme}://{host}{path}"))
}

/// `307 Temporary Redirect` to `location` with `cookies`, never cached.
fn temporary_redirect(location: &str, cookies: &[String]) -> Response {
    let mut response = StatusCode::TEMPORARY_REDIRECT.into_response();
    let headers = response.headers_mut();
    match HeaderValue::from_str(location) {
        Ok(value) => {
            headers.insert(http::header::LOCATION, value);
        }
        Err(_) => {
            tracing::error!("refused a redirect with a malformed location");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    }
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            headers.append(http::header::SET_COOKIE, value);
        }
    }
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    response
}

/// The `ClientAddress` extractor (in `client_address`) reads the trusted
/// proxies from the state.
impl FromRef<Arc<AppState>> for TrustedProxies {
    fn from_ref(state: &Arc<AppState>) -> TrustedProxies {
        state.trusted_proxies.clone()
    }
}

//! The typed router context: per request, the query client, the server HTTP client and the
//! auth state (the seed's `{ queryClient, convexQueryClient, … }`), plus what each
//! `before_load` added on the way down.

use std::collections::HashMap;
use std::sync::Arc;

use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};
use http::{HeaderMap, Uri};
use keel_auth::{AuthError, AuthState, Authenticator};
use keel_client::{ClientError, HttpClient, QueryClient, QueryKey};
use keel_protocol::{FunctionName, Public, kind};
use keel_values::Value;
use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::RouteError;
use crate::params::Params;

/// Values a `before_load` adds to the context of its loader and its children, by type
/// (like TanStack's object merge, but typed: one value per type, deeper wins).
///
/// ```
/// #[derive(Clone)]
/// struct Section(&'static str);
/// let additions = keel_start::ContextAdditions::new().with(Section("posts"));
/// # let _ = additions;
/// ```
#[derive(Clone, Debug, Default)]
pub struct ContextAdditions(pub(crate) http::Extensions);

impl ContextAdditions {
    /// Nothing added.
    pub fn new() -> ContextAdditions {
        ContextAdditions::default()
    }

    /// Adds `value` (replacing a value of the same type from a parent).
    pub fn with<T: Clone + Send + Sync + 'static>(mut self, value: T) -> ContextAdditions {
        self.0.insert(value);
        self
    }
}

/// What the root `before_load` learns about the visitor, like the seed's `fetchClerkAuth`
/// server function: the user id and the backend (`convex` template) token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FetchedAuth {
    /// The signed-in user's id, `None` when signed out.
    pub user_id: Option<String>,
    /// A token for the backend, `None` when signed out.
    pub token: Option<String>,
}

/// Per-request state shared by every match's context.
pub(crate) struct RequestState {
    pub(crate) uri: Uri,
    pub(crate) headers: HeaderMap,
    /// Who is making the request; becomes signed out when minting a token shows that the
    /// session has ended (its session token is still valid for up to a minute after a
    /// sign-out elsewhere).
    pub(crate) auth: parking_lot::RwLock<AuthState>,
    pub(crate) authenticator: Option<Arc<dyn Authenticator>>,
    /// The local idp, when the app uses it (account pages load through it).
    pub(crate) local_idp: Option<Arc<keel_auth::LocalIdpAuthenticator>>,
    pub(crate) token_template: Option<String>,
    /// Created on first use (most requests of a static page need none).
    pub(crate) query_client: std::sync::OnceLock<QueryClient>,
    pub(crate) http: Mutex<HttpClient>,
    /// Query keys the page read, in first-use order (the live layer subscribes to them).
    pub(crate) used: Mutex<Vec<QueryKey>>,
    /// Fetches under way, by query hash: loaders running in parallel that ask for the same
    /// query share one backend call.
    pub(crate) in_flight: Mutex<HashMap<String, SharedFetch>>,
}

/// One fetch of a query, awaited by every loader that asked for it meanwhile.
pub(crate) type SharedFetch = Shared<BoxFuture<'static, Result<Value, ClientError>>>;

impl RequestState {
    /// The request's query cache, fetching through the current server HTTP client.
    pub(crate) fn query_client(&self) -> &QueryClient {
        self.query_client.get_or_init(|| {
            QueryClient::new(keel_client::QueryClientConfig {
                http: Some(self.http.lock().clone()),
                ..keel_client::QueryClientConfig::default()
            })
        })
    }
}

/// The router context of one match: request-wide services plus what the `before_load`s above
/// (and of this route) added. Cheap to clone.
#[derive(Clone)]
pub struct RouteContext {
    pub(crate) request: Arc<RequestState>,
    pub(crate) additions: Arc<http::Extensions>,
    pub(crate) params: Params,
}

impl std::fmt::Debug for RouteContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteContext")
            .field("uri", &self.request.uri)
            .field("user_id", &self.request.auth.read().user_id)
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl RouteContext {
    /// The request's query cache (SSR: fetches through [`RouteContext::server_http_client`]
    /// at one consistent snapshot).
    pub fn query_client(&self) -> &QueryClient {
        self.request.query_client()
    }

    /// The server HTTP client (a copy; set its token with [`RouteContext::set_server_auth`]).
    pub fn server_http_client(&self) -> HttpClient {
        self.request.http.lock().clone()
    }

    /// `serverHttpClient.setAuth(token)`: every later backend call of this request (loaders,
    /// server functions) carries `token`.
    pub fn set_server_auth(&self, token: &str) {
        let http = self.request.http.lock().with_auth(token);
        *self.request.http.lock() = http.clone();
        if let Some(query_client) = self.request.query_client.get() {
            query_client.set_http_client(Some(http));
        }
    }

    /// Who is making the request (from the session cookies; signed out without an
    /// authenticator, or once [`RouteContext::fetch_auth`] found the session ended).
    pub fn auth(&self) -> AuthState {
        self.request.auth.read().clone()
    }

    /// `getAuth()` + `getToken({ template: "convex" })`: the user id and a backend token.
    ///
    /// A session that has ended ([`AuthError::SessionEnded`]: signed out elsewhere, revoked,
    /// expired) makes the rest of the request signed out rather than failing it.
    pub async fn fetch_auth(&self) -> Result<FetchedAuth, RouteError> {
        let auth = self.auth();
        let Some(authenticator) = &self.request.authenticator else {
            return Ok(FetchedAuth::default());
        };
        if !auth.is_signed_in() {
            return Ok(FetchedAuth::default());
        }
        match authenticator
            .get_token(&auth, self.request.token_template.as_deref())
            .await
        {
            Ok(token) => Ok(FetchedAuth {
                user_id: auth.user_id.clone(),
                token,
            }),
            Err(AuthError::SessionEnded { reason }) => {
                tracing::debug!(%reason, "the session has ended; the request is signed out");
                *self.request.auth.write() = AuthState::signed_out();
                Ok(FetchedAuth::default())
            }
            Err(e) => Err(RouteError::internal(format!(
                "cannot mint a backend token: {e}"
            ))),
        }
    }

    /// A value added by a `before_load` above (or of this route).
    pub fn get<T: Clone + Send + Sync + 'static>(&self) -> Option<&T> {
        self.additions.get::<T>()
    }

    /// The match's path parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Path parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name)
    }

    /// The request path (`/posts/abc`).
    pub fn path(&self) -> &str {
        self.request.uri.path()
    }

    /// The path with the query string, for "come back here" links.
    pub fn path_and_query(&self) -> &str {
        self.request
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
    }

    /// A query-string parameter, decoded.
    pub fn search_param(&self, name: &str) -> Option<String> {
        search_param(self.request.uri.query()?, name)
    }

    /// The request headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.request.headers
    }

    /// `ensureQueryData(convexQuery(path, args))`: the cached value or a fetch, and the page
    /// records the query so the live layer keeps it fresh.
    pub async fn query_value(&self, key: QueryKey) -> Result<Value, RouteError> {
        {
            let mut used = self.request.used.lock();
            if !used.contains(&key) {
                used.push(key.clone());
            }
        }
        let hash = key.hash();
        let fetch = self
            .request
            .in_flight
            .lock()
            .entry(hash.clone())
            .or_insert_with(|| {
                let query_client = self.request.query_client().clone();
                async move { query_client.ensure_query_data(&key).await }
                    .boxed()
                    .shared()
            })
            .clone();
        let result = fetch.await;
        // Later reads go to the cache (or fetch again if the entry was dropped meanwhile).
        self.request.in_flight.lock().remove(&hash);
        Ok(result?)
    }

    /// [`RouteContext::query_value`] with typed arguments and result: `function` is a path, or
    /// a typed [`QueryRef`](keel_protocol::QueryRef) whose argument and result types the
    /// compiler checks (`ctx.query(api::posts::LIST, ListArgs { limit: None })`).
    pub async fn query<R: DeserializeOwned, A: Serialize>(
        &self,
        function: impl FunctionName<kind::Query, Public, A, R>,
        args: A,
    ) -> Result<R, RouteError> {
        let key = QueryKey::with_args(function.path(), args)?;
        decode_plain(&self.query_value(key).await?)
    }

    /// Context for `params` below this one, with `additions` merged.
    pub(crate) fn child(
        &self,
        params: Params,
        additions: Option<ContextAdditions>,
    ) -> RouteContext {
        let mut merged = (*self.additions).clone();
        if let Some(additions) = additions {
            merged.extend(additions.0);
        }
        RouteContext {
            request: self.request.clone(),
            additions: Arc::new(merged),
            params,
        }
    }
}

/// Decodes a query result into `R` ([`keel_values::from_value`]: fields `R` does not declare are
/// skipped; a mismatch names its path).
fn decode_plain<R: DeserializeOwned>(value: &Value) -> Result<R, RouteError> {
    keel_values::from_value(value)
        .map_err(|e| RouteError::internal(format!("query result does not fit the type: {e}")))
}

/// Parameter `name` of a query string (`a=1&b=x%20y`), `+` as space.
pub(crate) fn search_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| crate::params::percent_decode(&s.replace('+', " "));
        (decode(k) == name).then(|| decode(v))
    })
}

//! The typed router context: per request, the query client, the server HTTP client and the
//! [`RequestAuth`] (the seed's `{ queryClient, convexQueryClient, … }`), plus what each
//! `before_load` added on the way down; and where the render's queries read from ([`Reads`]:
//! the backend, or a session's live cache for a pushed re-render).

use std::collections::HashMap;
use std::sync::Arc;

use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};
use http::{HeaderMap, Uri};
use keel_auth::AuthState;
use keel_client::{ClientError, HttpClient, QueryClient, QueryKey};
use keel_protocol::{FunctionName, Public, kind};
use keel_values::Value;
use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::RouteError;
use crate::params::Params;
use crate::request_auth::{RequestAuth, RequestAuthError};

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
/// server function: the user id and the backend (`convex` template) token. The framework does
/// this itself ([`RouteContext::request_auth`]); [`RouteContext::fetch_auth`] is the explicit
/// way, as in the seed's root `beforeLoad`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FetchedAuth {
    /// The signed-in user's id, `None` when signed out.
    pub user_id: Option<String>,
    /// A token for the backend, `None` when signed out.
    pub token: Option<String>,
}

/// Where a render's queries read from.
pub(crate) enum Reads {
    /// The backend, through the request's query cache (SSR: one consistent snapshot over the
    /// server HTTP client, authenticated with the request's token).
    Backend,
    /// The results of the session's live cache at one timestamp (a pushed re-render): no
    /// backend call at all.
    Live(Arc<LiveSnapshot>),
}

/// Query results of a session's live cache read at once, for re-rendering a page from them.
pub(crate) struct LiveSnapshot {
    /// The timestamp of the latest transition the results reflect.
    pub(crate) ts: u64,
    /// Results by [`QueryKey::hash`], shared with the cache (no copies).
    pub(crate) results: HashMap<String, LiveResult>,
    /// Queries the render asked for that the snapshot does not hold (subscribed, then the
    /// page is rendered again).
    pub(crate) missing: Mutex<Vec<QueryKey>>,
    /// The session's cache the results come from (the devtools panel shows its entries).
    pub(crate) cache: QueryClient,
}

/// One query's result in a [`LiveSnapshot`], with its digest (computed once per value by the
/// page's renderer, not per render).
pub(crate) struct LiveResult {
    /// The value as the cache holds it, or the query's error.
    pub(crate) result: Result<Arc<Value>, ClientError>,
    /// [`crate::digest::digest`] of `result`.
    pub(crate) digest: String,
}

/// Per-request state shared by every match's context.
pub(crate) struct RequestState {
    pub(crate) uri: Uri,
    pub(crate) headers: HeaderMap,
    /// Who is making the request, fixed for the request; its backend token is minted on
    /// first need.
    pub(crate) auth: RequestAuth,
    /// The local idp, when the app uses it (account pages load through it).
    pub(crate) local_idp: Option<Arc<keel_auth::LocalIdpAuthenticator>>,
    /// Where queries read from.
    pub(crate) reads: Reads,
    /// Created on first use (most requests of a static page need none).
    pub(crate) query_client: std::sync::OnceLock<QueryClient>,
    pub(crate) http: Mutex<HttpClient>,
    /// Set once the server HTTP client carries the request's token (or the app set one with
    /// [`RouteContext::set_server_auth`]).
    pub(crate) http_authenticated: tokio::sync::OnceCell<()>,
    /// Query keys the page read, in first-use order (the live layer subscribes to them).
    pub(crate) used: Mutex<Vec<QueryKey>>,
    /// Fetches under way, by query hash: loaders running in parallel that ask for the same
    /// query share one backend call.
    pub(crate) in_flight: Mutex<HashMap<String, SharedFetch>>,
}

/// One fetch of a query, awaited by every loader that asked for it meanwhile.
pub(crate) type SharedFetch = Shared<BoxFuture<'static, Result<Arc<Value>, ClientError>>>;

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

    /// The [`crate::digest::digest`] of what the render read for `key`.
    pub(crate) fn read_digest(&self, key: &QueryKey) -> String {
        match &self.reads {
            Reads::Live(snapshot) => match snapshot.results.get(key.hash()) {
                Some(read) => read.digest.clone(),
                None => crate::digest::digest(None),
            },
            Reads::Backend => crate::digest::cached_digest(self.query_client(), key),
        }
    }

    /// Whether a pushed render asked for results its snapshot does not hold (it is rendered
    /// again).
    pub(crate) fn missed_live_results(&self) -> bool {
        match &self.reads {
            Reads::Live(snapshot) => !snapshot.missing.lock().is_empty(),
            Reads::Backend => false,
        }
    }

    /// Makes the server HTTP client carry the request's backend token (once; signed out: no
    /// token).
    async fn authenticate_http(&self) -> Result<(), RequestAuthError> {
        if self.http_authenticated.initialized() || !self.auth.is_signed_in() {
            return Ok(());
        }
        let token = self.auth.backend_token().await?;
        self.http_authenticated
            .get_or_init(|| async {
                self.set_http_token(&token);
            })
            .await;
        Ok(())
    }

    fn set_http_token(&self, token: &str) {
        let http = self.http.lock().with_auth(token);
        *self.http.lock() = http.clone();
        if let Some(query_client) = self.query_client.get() {
            query_client.set_http_client(Some(http));
        }
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
            .field("user_id", &self.request.auth.state().user_id)
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

    /// The server HTTP client as it is (a copy): it carries the request's token once a query
    /// needed it or the app set one with [`RouteContext::set_server_auth`]. For calls that must
    /// be authenticated, [`RouteContext::authenticated_client`].
    pub fn server_http_client(&self) -> HttpClient {
        self.request.http.lock().clone()
    }

    /// A server HTTP client carrying the visitor's backend token (minted once per request):
    /// [`RequestAuthError::SignedOut`] or [`RequestAuthError::SessionEnded`] when there is no
    /// one to act for.
    pub async fn authenticated_client(&self) -> Result<HttpClient, RequestAuthError> {
        if !self.request.auth.is_signed_in() {
            return Err(RequestAuthError::SignedOut);
        }
        self.request.authenticate_http().await?;
        Ok(self.server_http_client())
    }

    /// `serverHttpClient.setAuth(token)`, the explicit way (the seed's root `beforeLoad`):
    /// every later backend call of this request carries `token` instead of the one the
    /// framework would mint.
    pub fn set_server_auth(&self, token: &str) {
        self.request.set_http_token(token);
        let _ = self.request.http_authenticated.set(());
    }

    /// Who is making the request (from the session cookies when the request started; signed
    /// out without an authenticator).
    pub fn auth(&self) -> AuthState {
        self.request.auth.state().clone()
    }

    /// The request's auth: its session state and its backend token, minted on first need.
    pub fn request_auth(&self) -> &RequestAuth {
        &self.request.auth
    }

    /// `getAuth()` + `getToken({ template: "convex" })`: the user id and a backend token —
    /// the explicit form of what the framework does for every request. A session that has
    /// ended answers as signed out (the page is then rendered signed out).
    pub async fn fetch_auth(&self) -> Result<FetchedAuth, RouteError> {
        match self.request.auth.backend_token().await {
            Ok(token) => Ok(FetchedAuth {
                user_id: self.request.auth.state().user_id.clone(),
                token: Some(token),
            }),
            Err(RequestAuthError::SignedOut | RequestAuthError::SessionEnded { .. }) => {
                Ok(FetchedAuth::default())
            }
            Err(error) => Err(error.into()),
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
    ///
    /// Signed in, the query runs with the request's backend token (minted on the first query).
    /// In a re-render pushed to an open page, it reads the session's live cache instead.
    pub async fn query_value(&self, key: QueryKey) -> Result<Value, RouteError> {
        self.query_shared(key).await.map(Arc::unwrap_or_clone)
    }

    /// [`RouteContext::query_value`] without a copy: the value as the cache holds it (a pushed
    /// render's loaders decode the session cache's values in place).
    async fn query_shared(&self, key: QueryKey) -> Result<Arc<Value>, RouteError> {
        {
            let mut used = self.request.used.lock();
            if !used.contains(&key) {
                used.push(key.clone());
            }
        }
        if let Reads::Live(snapshot) = &self.request.reads {
            return match snapshot.results.get(key.hash()) {
                Some(read) => Ok(read.result.clone()?),
                None => {
                    snapshot.missing.lock().push(key);
                    Err(RouteError::internal(
                        "the query is not in the live cache yet",
                    ))
                }
            };
        }
        self.request.authenticate_http().await?;
        let hash = key.hash().to_owned();
        let fetch = self
            .request
            .in_flight
            .lock()
            .entry(hash.clone())
            .or_insert_with(|| {
                let query_client = self.request.query_client().clone();
                async move { query_client.ensure_query_shared(&key).await }
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
        decode_plain(&*self.query_shared(key).await?)
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

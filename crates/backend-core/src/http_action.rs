//! HTTP actions (Convex's `httpRouter` and `httpAction`): routes an app declares — a method and
//! an exact path or a path prefix — each handled by an action that gets the request and returns
//! the response. A transport (`keel-backend` serves them on their own origin, the site, as
//! Convex serves `<deployment>.convex.site`) hands the request to [`Backend::run_http_action`].
//!
//! As in Convex, an exact path wins over a prefix, and of two prefixes the longer wins; a
//! prefix ends with `/`. The handler runs as an action of the app's own code (it reaches
//! internal functions through `ctx.run_*`), as the identity of the request's bearer token.
//!
//! ```
//! use keel_backend_core::{ActionCtx, FunctionError, HttpRequest, HttpResponse, HttpRoutes};
//! use http::{Method, StatusCode};
//!
//! async fn hello(_ctx: ActionCtx, request: HttpRequest) -> Result<HttpResponse, FunctionError> {
//!     let name = String::from_utf8_lossy(&request.body).into_owned();
//!     Ok(HttpResponse::text(StatusCode::OK, format!("Hello, {name}!")))
//! }
//!
//! let mut routes = HttpRoutes::new();
//! routes.route(Method::POST, "/hello", hello);
//! routes.route_prefix(Method::GET, "/files/", |_ctx, request: HttpRequest| async move {
//!     Ok(HttpResponse::text(StatusCode::OK, request.path().to_owned()))
//! });
//! assert!(routes.find(&Method::POST, "/hello").is_some());
//! assert!(routes.find(&Method::GET, "/files/a/b").is_some());
//! assert!(routes.find(&Method::GET, "/hello").is_none());
//! ```

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use bytes::Bytes;
use futures::FutureExt;
use futures::stream::BoxStream;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use crate::auth::Auth;
use crate::backend::Backend;
use crate::calls::{CallDepth, Calls};
use crate::context::ActionCtx;
use crate::error::{ErrorClass, FunctionError};
use crate::execution_log::{ExecutionKind, ExecutionStart};
use crate::identity::Identity;
use crate::registry::BoxFuture;

/// Largest request body an HTTP action receives: 20 MiB, Convex's `HTTP_ACTION_BODY_LIMIT`.
pub const HTTP_ACTION_BODY_LIMIT: usize = 20 << 20;

/// A request to an HTTP action.
#[derive(Clone, Debug)]
pub struct HttpRequest {
    /// The method.
    pub method: Method,
    /// The whole URL as the client reached the site (`http://host:port/path?query`).
    pub url: url::Url,
    /// The request's headers.
    pub headers: HeaderMap,
    /// The body, read whole (at most [`HTTP_ACTION_BODY_LIMIT`] bytes).
    pub body: Bytes,
}

impl HttpRequest {
    /// The URL's path.
    pub fn path(&self) -> &str {
        self.url.path()
    }

    /// The body as JSON of type `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

/// The body of an [`HttpResponse`]: whole, or a stream of chunks sent as they come.
pub enum HttpBody {
    /// All bytes at once.
    Full(Bytes),
    /// Chunks sent as the stream yields them; an error ends the response early.
    Stream(BoxStream<'static, Result<Bytes, std::io::Error>>),
}

impl std::fmt::Debug for HttpBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpBody::Full(bytes) => write!(f, "Full({} bytes)", bytes.len()),
            HttpBody::Stream(_) => f.write_str("Stream"),
        }
    }
}

/// What an HTTP action answers.
#[derive(Debug)]
pub struct HttpResponse {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: HttpBody,
}

impl HttpResponse {
    /// A response with `status`, no headers and `body`.
    pub fn new(status: StatusCode, body: HttpBody) -> HttpResponse {
        HttpResponse {
            status,
            headers: HeaderMap::new(),
            body,
        }
    }

    /// A `text/plain; charset=utf-8` response.
    pub fn text(status: StatusCode, text: impl Into<String>) -> HttpResponse {
        HttpResponse::new(status, HttpBody::Full(Bytes::from(text.into())))
            .with_header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
    }

    /// An `application/json` response.
    pub fn json(status: StatusCode, value: &impl serde::Serialize) -> HttpResponse {
        let body = serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec());
        HttpResponse::new(status, HttpBody::Full(Bytes::from(body)))
            .with_header(header::CONTENT_TYPE, "application/json")
    }

    /// A response whose body is sent chunk by chunk as `chunks` yields them.
    pub fn stream(
        status: StatusCode,
        chunks: BoxStream<'static, Result<Bytes, std::io::Error>>,
    ) -> HttpResponse {
        HttpResponse::new(status, HttpBody::Stream(chunks))
    }

    /// The response with a header set (a value that is not a valid header value is left out).
    pub fn with_header(mut self, name: header::HeaderName, value: &str) -> HttpResponse {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.insert(name, value);
        }
        self
    }
}

type HttpHandler = Arc<
    dyn Fn(ActionCtx, HttpRequest) -> BoxFuture<Result<HttpResponse, FunctionError>> + Send + Sync,
>;

/// How a route matches a request's path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum RoutePath {
    Exact(String),
    Prefix(String),
}

/// The app's HTTP routes (Convex's `httpRouter`).
#[derive(Clone, Default)]
pub struct HttpRoutes {
    routes: HashMap<(Method, RoutePath), HttpHandler>,
}

impl std::fmt::Debug for HttpRoutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.routes.keys()).finish()
    }
}

/// A route's handler, found for a request.
#[derive(Clone)]
pub struct HttpRoute {
    handler: HttpHandler,
    /// The route as declared: its exact path, or its prefix followed by `*`.
    pattern: String,
}

impl HttpRoutes {
    /// No routes.
    pub fn new() -> HttpRoutes {
        HttpRoutes::default()
    }

    /// Whether no route is declared.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Routes requests with `method` and exactly `path` (which starts with `/`) to `handler`.
    /// Panics if the path is malformed or the route taken (a programming error, as in Convex).
    pub fn route<F, Fut>(&mut self, method: Method, path: &str, handler: F) -> &mut Self
    where
        F: Fn(ActionCtx, HttpRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<HttpResponse, FunctionError>> + Send + 'static,
    {
        assert!(
            path.starts_with('/'),
            "HTTP route path {path:?} must start with /"
        );
        self.insert(method, RoutePath::Exact(path.to_owned()), handler)
    }

    /// Routes requests with `method` and a path starting with `prefix` (which starts and ends
    /// with `/`) to `handler`.
    pub fn route_prefix<F, Fut>(&mut self, method: Method, prefix: &str, handler: F) -> &mut Self
    where
        F: Fn(ActionCtx, HttpRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<HttpResponse, FunctionError>> + Send + 'static,
    {
        assert!(
            prefix.starts_with('/') && prefix.ends_with('/'),
            "HTTP route prefix {prefix:?} must start and end with /"
        );
        self.insert(method, RoutePath::Prefix(prefix.to_owned()), handler)
    }

    fn insert<F, Fut>(&mut self, method: Method, path: RoutePath, handler: F) -> &mut Self
    where
        F: Fn(ActionCtx, HttpRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<HttpResponse, FunctionError>> + Send + 'static,
    {
        let key = (method, path);
        assert!(
            !self.routes.contains_key(&key),
            "HTTP route {key:?} is declared twice"
        );
        let handler = Arc::new(handler);
        self.routes.insert(
            key,
            Arc::new(move |ctx, request| {
                let handler = handler.clone();
                // A panic in the handler fails this request with an internal error.
                Box::pin(
                    AssertUnwindSafe(async move { handler(ctx, request).await })
                        .catch_unwind()
                        .map(|outcome| {
                            outcome.unwrap_or_else(|_| {
                                Err(FunctionError::internal("the HTTP action panicked"))
                            })
                        }),
                )
            }),
        );
        self
    }

    /// The route for `method` and `path`: the exact path if declared, else the longest prefix.
    pub fn find(&self, method: &Method, path: &str) -> Option<HttpRoute> {
        if let Some(handler) = self
            .routes
            .get(&(method.clone(), RoutePath::Exact(path.to_owned())))
        {
            return Some(HttpRoute {
                handler: handler.clone(),
                pattern: path.to_owned(),
            });
        }
        self.routes
            .iter()
            .filter_map(|((m, route), handler)| match route {
                RoutePath::Prefix(prefix) if m == method && path.starts_with(prefix.as_str()) => {
                    Some((prefix, handler))
                }
                RoutePath::Prefix(_) | RoutePath::Exact(_) => None,
            })
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(prefix, handler)| HttpRoute {
                handler: handler.clone(),
                pattern: format!("{prefix}*"),
            })
    }
}

/// Why an HTTP action did not answer with its own response.
#[derive(Debug, thiserror::Error)]
pub enum HttpActionError {
    /// No route matches the method and path.
    #[error("No matching routes found")]
    NoRoute,
    /// The action failed.
    #[error("{}", .0.client_message())]
    Failed(#[source] FunctionError),
}

impl HttpActionError {
    /// The short code a transport sends.
    pub fn code(&self) -> &'static str {
        match self {
            HttpActionError::NoRoute => "NoMatchingRoute",
            HttpActionError::Failed(_) => "HttpActionFailed",
        }
    }

    /// `NotFound` for a missing route; `None` for a failed action (a server error, 500).
    pub fn class(&self) -> Option<ErrorClass> {
        match self {
            HttpActionError::NoRoute => Some(ErrorClass::NotFound),
            HttpActionError::Failed(_) => None,
        }
    }
}

impl Backend {
    /// Runs the HTTP action routed for `request` as `identity` (the request's bearer token),
    /// as the app's own code, within the action timeout.
    pub async fn run_http_action(
        &self,
        request: HttpRequest,
        identity: &Identity,
    ) -> Result<HttpResponse, HttpActionError> {
        let route = self
            .inner
            .functions
            .routes()
            .find(&request.method, request.path())
            .ok_or(HttpActionError::NoRoute)?;
        let span =
            tracing::debug_span!("http_action", method = %request.method, path = request.path());
        let name = format!("{} {}", request.method, route.pattern);
        let execution = ExecutionStart::new(name, ExecutionKind::HttpAction, identity);
        let calls = Calls::new(self.clone(), CallDepth::TOP, execution.console.clone());
        let ctx = ActionCtx::new(Auth::new(identity.clone()), calls);
        let limit = self.inner.config.action_timeout;
        let call = tracing::Instrument::instrument((route.handler)(ctx, request), span);
        let result = match tokio::time::timeout(limit, call).await {
            Ok(result) => result,
            Err(_) => Err(FunctionError::uncaught(format!(
                "FunctionTimeout: the HTTP action ran longer than {limit:?}"
            ))),
        };
        // An HTTP action's lines go to the execution log only: its response is the app's own.
        self.finish_execution(execution, result)
            .result
            .map_err(HttpActionError::Failed)
    }
}

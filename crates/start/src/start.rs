//! [`Start`]: the route tree, server functions and settings turned into an axum `Router`
//! (pages, `/_keel/fn/*`, `/_keel/auth/*`, `/_keel/live`, the crate's assets), with the
//! same-origin check on every state-changing request and the security headers on every
//! answer.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Form;
use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use keel_auth::{Authenticator, ClerkAuthenticator, LocalIdpAuthenticator, PublishableKey};
use keel_client::HttpClient;

use crate::app_state::AppState;
use crate::boundary::default_catch_boundary;
use crate::client_address::TrustedProxies;
use crate::document::document;
use crate::error::{RouteError, StartError};
use crate::head::Head;
use crate::live::{LIVE_PATH, LiveHub, parse_page, parse_queries};
use crate::page::Rendered;
use crate::redirect::{app_location, local_path};
use crate::route::{Match, Route};
use crate::security_headers::{ContentSecurityPolicy, SecurityHeaders};
use crate::server_fn::{
    ServerFnHandler, ServerFnMethod, ServerFnRequest, ServerFnResponse, handler,
};

/// Settings of the web tier.
#[derive(Clone)]
pub struct StartConfig {
    /// The backend the web tier calls (`http://127.0.0.1:3210`).
    pub backend_url: String,
    /// The backend at `backend_url` when it runs in this process (`keel` with every service):
    /// loaders' queries and server functions' calls go to it directly, with no loopback HTTP
    /// (see [`HttpClient::in_process`]), and the live layer's sessions use its in-process
    /// sync sessions instead of WebSockets (see [`keel_client::LiveClient::in_process`]); file
    /// uploads still use `backend_url`. `None` (the default): everything over HTTP and
    /// WebSockets.
    pub in_process_backend: Option<Arc<dyn keel_client::InProcessBackend>>,
    /// Reads sessions and mints backend tokens; `None`: everyone is signed out.
    pub authenticator: Option<Arc<dyn Authenticator>>,
    /// Enables the sign-in / sign-up / sign-out endpoints against the local idp.
    pub local_idp: Option<Arc<LocalIdpAuthenticator>>,
    /// The JWT template of backend tokens (default `convex`).
    pub token_template: Option<String>,
    /// How long a live session (backend socket) stays open after its last page stream
    /// closed (default 30 s).
    pub live_linger: Duration,
    /// Append the devtools panel to every page (development only; default off).
    pub devtools: bool,
    /// Real Clerk in the browser: pages load Clerk's script for this publishable key, the
    /// sign-in button opens Clerk's modal and the user button is Clerk's.
    pub clerk: Option<PublishableKey>,
    /// Proxies in front of the web tier whose `X-Forwarded-For` / `Forwarded` headers name the
    /// visitor (whose address the identity service throttles sign-ins by); default none: the
    /// visitor is the socket's peer.
    pub trusted_proxies: TrustedProxies,
    /// The site is served over HTTPS (by a TLS-terminating proxy in front of the web tier):
    /// every answer carries `Strict-Transport-Security` (default off).
    pub served_over_https: bool,
    /// The `Content-Security-Policy` of every answer (default: this site only; real-Clerk mode
    /// adds Clerk's hosts when the app is built).
    pub content_security_policy: ContentSecurityPolicy,
    /// The web tier's background tasks: page event streams and live sessions. Stopping them
    /// (a graceful shutdown, before the server drains) ends every page's event stream — the
    /// browser runtime reconnects by itself — and closes the sessions' backend sockets;
    /// [`Tasks::stopped`](keel_tasks::Tasks::stopped) resolves once all are gone.
    pub tasks: keel_tasks::Tasks,
    /// The web tier's metrics, served at `/metrics`: requests by route (pages as `page`) and
    /// status, and the live pages open (`keel_live_pages`).
    pub metrics: keel_metrics::Registry,
    /// Who may read `/metrics` (default: anyone who reaches the web tier).
    pub metrics_access: keel_metrics::MetricsAccess,
}

impl std::fmt::Debug for StartConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartConfig")
            .field("backend_url", &self.backend_url)
            .field("in_process_backend", &self.in_process_backend.is_some())
            .field("authenticator", &self.authenticator.is_some())
            .field("local_idp", &self.local_idp.is_some())
            .field("token_template", &self.token_template)
            .field("live_linger", &self.live_linger)
            .field("devtools", &self.devtools)
            .field("clerk", &self.clerk.as_ref().map(|k| &k.frontend_api))
            .field("trusted_proxies", &self.trusted_proxies)
            .field("served_over_https", &self.served_over_https)
            .field("content_security_policy", &self.content_security_policy)
            .field("tasks", &self.tasks)
            .finish()
    }
}

impl StartConfig {
    /// Signed-out-only settings for the backend at `backend_url`.
    pub fn new(backend_url: impl Into<String>) -> StartConfig {
        StartConfig {
            backend_url: backend_url.into(),
            in_process_backend: None,
            authenticator: None,
            local_idp: None,
            token_template: Some("convex".to_owned()),
            live_linger: Duration::from_secs(30),
            devtools: false,
            clerk: None,
            trusted_proxies: TrustedProxies::none(),
            served_over_https: false,
            content_security_policy: ContentSecurityPolicy::default(),
            tasks: keel_tasks::Tasks::new("web"),
            metrics: keel_metrics::Registry::default(),
            metrics_access: keel_metrics::MetricsAccess::Open,
        }
    }

    /// Authenticates with real Clerk (sessions from Clerk's cookies, `convex` tokens from its
    /// Backend API) and loads Clerk's browser script on every page.
    pub fn with_clerk(mut self, clerk: Arc<ClerkAuthenticator>) -> StartConfig {
        self.clerk = Some(clerk.publishable_key().clone());
        self.authenticator = Some(clerk);
        self.local_idp = None;
        self
    }

    /// Authenticates with the local idp (and enables its sign-in forms).
    pub fn with_local_idp(mut self, idp: Arc<LocalIdpAuthenticator>) -> StartConfig {
        self.authenticator = Some(idp.clone());
        self.local_idp = Some(idp);
        self
    }

    /// Authenticates with `authenticator` (e.g. real Clerk).
    pub fn with_authenticator(mut self, authenticator: Arc<dyn Authenticator>) -> StartConfig {
        self.authenticator = Some(authenticator);
        self
    }
}

/// An app: the route tree, server functions and settings.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use keel_start::{Route, Start, StartConfig};
/// let root = Route::root()
///     .component(|_m, outlet| maud::html! { nav { a href="/" { "Home" } } (outlet) })
///     .child(Route::new("").component(|_m, _| maud::html! { h1 { "Welcome" } }));
/// let app = Start::new(StartConfig::new("http://127.0.0.1:3210"), root).into_router()?;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// // With connection info, sign-ins are throttled by the visitor's address.
/// axum::serve(
///     listener,
///     app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
/// )
/// .await?;
/// # Ok(()) }
/// ```
pub struct Start {
    config: StartConfig,
    root: Route,
    server_fns: Vec<(String, ServerFnMethod, ServerFnHandler)>,
}

impl std::fmt::Debug for Start {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Start")
            .field("config", &self.config)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl Start {
    /// An app serving `root`'s tree with `config`.
    pub fn new(config: StartConfig, root: Route) -> Start {
        Start {
            config,
            root,
            server_fns: Vec::new(),
        }
    }

    /// Adds server function `name` (`[a-zA-Z0-9_:/.-]+`), called with `POST` at
    /// [`server_fn_path(name)`](crate::server_fn_path) — forms and `fetch` from this site
    /// only (see [`crate::csrf`]).
    pub fn server_fn<F, Fut>(self, name: &str, f: F) -> Start
    where
        F: Fn(ServerFnRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ServerFnResponse, RouteError>> + Send + 'static,
    {
        self.server_fn_with(ServerFnMethod::Post, name, f)
    }

    /// Adds server function `name` called with `method` (TanStack Start's
    /// `createServerFn({ method })`). A [`ServerFnMethod::Get`] function answers links and
    /// may only read:
    ///
    /// ```
    /// use keel_start::{Route, ServerFnMethod, ServerFnResponse, Start, StartConfig};
    /// let start = Start::new(StartConfig::new("http://127.0.0.1:3210"), Route::root())
    ///     .server_fn_with(ServerFnMethod::Get, "posts/count", |req| async move {
    ///         let posts: Vec<serde_json::Value> =
    ///             req.query("posts:list", serde_json::json!({})).await?;
    ///         Ok(ServerFnResponse::Json(posts.len().into()))
    ///     });
    /// # let _ = start;
    /// ```
    pub fn server_fn_with<F, Fut>(mut self, method: ServerFnMethod, name: &str, f: F) -> Start
    where
        F: Fn(ServerFnRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ServerFnResponse, RouteError>> + Send + 'static,
    {
        self.server_fns.push((name.to_owned(), method, handler(f)));
        self
    }

    /// The axum router serving the app.
    pub fn into_router(self) -> Result<Router, StartError> {
        let root = self.root.build()?;
        let url = &self.config.backend_url;
        let http = match &self.config.in_process_backend {
            Some(backend) => HttpClient::in_process(url, backend.clone()),
            None => HttpClient::new(url),
        }
        .map_err(|e| StartError::BackendUrl {
            url: url.clone(),
            reason: e.to_string(),
        })?;
        let mut server_fns = HashMap::new();
        for (name, method, f) in self.server_fns {
            let valid = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_:/.-".contains(&b));
            if !valid || server_fns.insert(name.clone(), (method, f)).is_some() {
                return Err(StartError::BadServerFunctionName(name));
            }
        }
        let csp = match &self.config.clerk {
            Some(clerk) => self
                .config
                .content_security_policy
                .clone()
                .with_clerk(clerk),
            None => self.config.content_security_policy.clone(),
        };
        let security = Arc::new(
            SecurityHeaders::new(&csp, self.config.served_over_https)
                .map_err(StartError::SecurityHeaders)?,
        );
        let live = Arc::new(LiveHub::new(
            self.config.backend_url.clone(),
            self.config.in_process_backend.clone(),
            self.config.authenticator.clone(),
            self.config.token_template.clone(),
            self.config.live_linger,
            self.config.tasks.clone(),
            &self.config.metrics,
        ));
        let state = Arc::new(AppState {
            root,
            http,
            authenticator: self.config.authenticator,
            local_idp: self.config.local_idp,
            token_template: self.config.token_template,
            devtools: self.config.devtools,
            clerk: self.config.clerk,
            server_fns,
            live,
            trusted_proxies: self.config.trusted_proxies,
            served_over_https: self.config.served_over_https,
        });
        let router = Router::new()
            .merge(crate::assets::routes())
            .route(LIVE_PATH, get(live_stream))
            .route("/_keel/fn/{*name}", any(call_server_fn))
            .route(
                crate::auth_ui::SIGN_IN_ACTION,
                post(crate::auth_ui::sign_in),
            )
            .route(
                crate::auth_ui::SIGN_UP_ACTION,
                post(crate::auth_ui::sign_up),
            )
            .route(
                crate::auth_ui::SIGN_OUT_ACTION,
                post(crate::auth_ui::sign_out),
            )
            .merge(crate::account_ui::routes())
            .merge(crate::second_factor_ui::routes())
            .fallback(page)
            .layer(axum::middleware::from_fn(crate::csrf::middleware))
            .layer(axum::middleware::from_fn_with_state(
                security,
                crate::security_headers::middleware,
            ))
            .with_state(state);
        Ok(keel_metrics::instrument(
            router,
            &self.config.metrics,
            self.config.metrics_access,
            "page",
        ))
    }
}

fn with_cookies(mut response: Response, cookies: &[String]) -> Response {
    let headers = response.headers_mut();
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::VARY, HeaderValue::from_static("Cookie"));
    response
}

/// A redirect the app asked for (a `before_load`, a loader or a server function raised
/// [`RouteError::Redirect`]): to a path on this site or a written-out `http(s)` URL. Anything a
/// browser could resolve to another site without the app having written it out is a bug in the
/// app (input passed through): logged, answered 500.
fn redirect(status: StatusCode, to: &str) -> Response {
    match app_location(to).and_then(|to| HeaderValue::from_str(&to).ok()) {
        Some(location) => {
            let mut response = status.into_response();
            response.headers_mut().insert(header::LOCATION, location);
            response
        }
        None => refused_redirect(to),
    }
}

fn refused_redirect(to: &str) -> Response {
    tracing::error!(target = ?to, "refused a redirect that leaves the site");
    (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong.").into_response()
}

/// Any page: `GET`/`HEAD` through the route tree.
#[tracing::instrument(name = "page", skip_all, fields(method = %request.method(), path = %request.uri().path()))]
async fn page(State(app): State<Arc<AppState>>, request: Request) -> Response {
    let (parts, _body) = request.into_parts();
    if !matches!(parts.method, Method::GET | Method::HEAD) {
        return (StatusCode::METHOD_NOT_ALLOWED, "pages answer GET only").into_response();
    }
    let (auth, cookies) = match app.authenticate_page(&parts.headers, &parts.uri).await {
        Ok(authenticated) => authenticated,
        Err(handshake) => return handshake,
    };
    let response = match crate::page::render_document(&app, parts.uri, parts.headers, auth).await {
        Rendered::Redirect { to, status } => redirect(status, &to),
        Rendered::Page(page) => {
            let body = maud::html! { (page.body) @if let Some(panel) = page.panel { (panel) } };
            let html = document(
                &page.head,
                body,
                page.live.as_deref(),
                app.clerk.as_ref(),
                page.auth.session_id.as_deref(),
            )
            .into_string();
            let mut response = (page.status, axum::response::Html(html)).into_response();
            if let Some(ts) = page.snapshot_ts
                && let Ok(v) = HeaderValue::from_str(&ts.to_string())
            {
                response.headers_mut().insert("x-keel-snapshot-ts", v);
            }
            response
        }
    };
    with_cookies(response, &cookies)
}

/// `POST /_keel/fn/<name>` (or `GET` for a [`ServerFnMethod::Get`] function).
#[tracing::instrument(name = "server_fn", skip_all, fields(name = %name))]
async fn call_server_fn(
    State(app): State<Arc<AppState>>,
    Path(name): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    request: Request,
) -> Response {
    let Some((declared, f)) = app.server_fns.get(&name).cloned() else {
        return (StatusCode::NOT_FOUND, "no such server function").into_response();
    };
    if !declared.answers(&method) {
        // A link (or an image, a prefetch) must never run a function that changes data.
        tracing::warn!(%method, "server function called with the wrong method");
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, declared.allow())],
            format!("server function {name} answers {} only", declared.allow()),
        )
            .into_response();
    }
    let bodyless = headers
        .get(header::CONTENT_LENGTH)
        .is_none_or(|v| v.as_bytes() == b"0");
    let multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::multipart::boundary)
        .map(str::to_owned);
    let (fields, files) = match multipart {
        Some(boundary) if method == Method::POST => {
            let Ok(body) =
                axum::body::to_bytes(request.into_body(), crate::multipart::MAX_MULTIPART_BYTES)
                    .await
            else {
                return (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "the form is larger than {} bytes",
                        crate::multipart::MAX_MULTIPART_BYTES
                    ),
                )
                    .into_response();
            };
            match crate::multipart::parse(&body, &boundary) {
                Ok(form) => (form.fields, form.files),
                Err(error) => return (StatusCode::BAD_REQUEST, error.to_string()).into_response(),
            }
        }
        _ => match Form::<Vec<(String, String)>>::from_request(request, &()).await {
            Ok(Form(fields)) => (fields, Vec::new()),
            // A POST without a body (a lone button) has no content type; that is no fields.
            Err(FormRejection::InvalidFormContentType(_)) if bodyless => (Vec::new(), Vec::new()),
            Err(rejection) => return rejection.into_response(),
        },
    };
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    let (auth, cookies) = app.authenticate(&headers).await;
    let context = app.base_context(uri, headers, auth);
    let response = match f(ServerFnRequest::new(
        context.clone(),
        declared,
        fields,
        files,
    ))
    .await
    {
        Ok(ServerFnResponse::Redirect(to)) => match local_path(&to) {
            Some(to) => redirect(StatusCode::SEE_OTHER, &to),
            None => refused_redirect(&to),
        },
        Ok(ServerFnResponse::Json(value)) => axum::Json(value).into_response(),
        Err(RouteError::Redirect { to, status }) => redirect(status, &to),
        Err(error) => {
            if let RouteError::Internal(detail) = &error {
                tracing::error!(server_fn = %name, %detail, "server function failed");
            }
            if wants_json {
                (
                    error.status(),
                    axum::Json(serde_json::json!({
                        "code": error.code(),
                        "message": error.visitor_message(),
                    })),
                )
                    .into_response()
            } else {
                let m = Match {
                    route_id: String::new(),
                    context,
                    data: None,
                };
                let body = default_catch_boundary(&m, &error);
                let html = document(
                    &Head::document_defaults().title("Error"),
                    body,
                    None,
                    app.clerk.as_ref(),
                    m.context.auth().session_id.as_deref(),
                );
                (error.status(), axum::response::Html(html.into_string())).into_response()
            }
        }
    };
    with_cookies(response, &cookies)
}

/// `GET /_keel/live?q=<queries>&u=<user id>`.
#[tracing::instrument(name = "live_stream", skip_all)]
async fn live_stream(
    State(app): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let queries = match parse_queries(params.get("q").map_or("[]", String::as_str)) {
        Ok(q) => q,
        Err(message) => return (StatusCode::BAD_REQUEST, message).into_response(),
    };
    let page = match params.get("p").map(|p| parse_page(p)) {
        Some(Ok(uri)) => Some(uri),
        Some(Err(message)) => return (StatusCode::BAD_REQUEST, message).into_response(),
        None if queries.is_empty() => None,
        None => {
            return (
                StatusCode::BAD_REQUEST,
                "`p` (the page's address) is required with queries",
            )
                .into_response();
        }
    };
    let (auth, cookies) = app.authenticate(&headers).await;
    let page_user = params.get("u").map(String::as_str);
    let render = crate::page::live_renderer(&app);
    // Renders of the page are shared by the session's tabs (and the anonymous session's by
    // every signed-out visitor): they carry the session's state, never one visitor's
    // credentials.
    let mut page_headers = headers.clone();
    page_headers.remove(header::COOKIE);
    page_headers.remove(header::AUTHORIZATION);
    let mut response = app
        .live
        .stream(
            &auth,
            page_user,
            page.map(|uri| (uri, page_headers)),
            queries,
            render,
        )
        .into_response();
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    with_cookies(response, &cookies)
}

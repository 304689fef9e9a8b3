//! Keel Start: the SSR framework of the Keel stack — the Rust side of TanStack Start with
//! `@convex-dev/react-query` and Clerk's components.
//!
//! An app is a tree of [`Route`]s. For a request, the framework matches the path (static
//! segments, `{param}`, `{*rest}`, index routes, nested layouts rendering their child in the
//! outlet), runs every `before_load` serially from the root (each may redirect, raise
//! not-found, or add typed values to the [`RouteContext`] of the routes below), then every
//! `loader` in parallel, then renders the components (maud `Markup`) from the leaf outwards
//! inside the document shell with the merged [`Head`] (deepest title wins). A failure renders
//! the nearest error component ([`default_catch_boundary`] by default, HTTP 500, no internals)
//! and an unknown path renders [`not_found`] (HTTP 404) inside the root layout.
//!
//! Loaders read with [`RouteContext::query`], naming the query by path or by its typed
//! reference (`ctx.query(api::posts::LIST, args)`, a [`keel_protocol::QueryRef`]: arguments and
//! result checked at compile time); server functions call mutations and actions through
//! [`ServerFnRequest::authenticated_client`], whose methods take references too.
//!
//! Per request the router context carries the query client, the server HTTP client and the
//! [`RequestAuth`]: who the request is for, fixed when it starts (signed in with a session, or
//! signed out), and its backend token, minted on the first backend call. Every loader's query
//! runs with that token, all at one consistent snapshot, and server functions get an
//! authenticated client from it ([`RequestAuthError`] says why not) — the app wires nothing.
//! The seed's root `before_load` — [`RouteContext::fetch_auth`] then
//! [`RouteContext::set_server_auth`] — remains as the explicit way.
//!
//! Pages stay live: the document lists the queries it was rendered from and its address; the
//! browser runtime opens one event stream per page; the web tier keeps one backend connection
//! per signed-in session (a WebSocket, or the backend's in-process sync session when it runs in
//! this process; token refreshed before expiry) and its query cache. When a listed
//! query changes, the web tier re-renders the page from that cache at one timestamp — in
//! process, no backend call, one render per session and address shared by its tabs, the newest
//! state winning — and pushes it (`render`: the body, or a splice of the previous one); the
//! runtime morphs it in without fetching. `signed-out` ends the stream when the session ends.
//!
//! # Layout
//! * `error` — [`RouteError`] (redirect / not found / public / internal) and [`StartError`].
//! * `params` — [`Params`] and the percent-decoding of path segments.
//! * `route` — [`Route`]: path pattern, children and per-route hooks; what the hooks see: a
//!   [`Match`] (one matched route's context and loader data) and [`LoaderData`].
//! * `matching` — path matching: the chain of routes a path selects, and its [`Params`].
//! * `digest` — short digests of query results (what a page shows, per query).
//! * `request_auth` — [`RequestAuth`] (a request's session state and lazily minted backend
//!   token) and [`RequestAuthError`].
//! * `context` — [`RouteContext`], [`ContextAdditions`], [`FetchedAuth`]; where a render's
//!   queries read (the backend, or a snapshot of a session's live cache).
//! * `head` — [`Head`], [`Meta`], [`Link`] and their merge.
//! * `render` — running `before_load`/`loader`/components and the boundaries.
//! * `boundary` — [`default_catch_boundary`] and [`not_found`].
//! * `document` — the HTML document shell.
//! * `multipart` — `multipart/form-data` bodies of server functions: text fields and
//!   [`UploadedFile`]s (a form with a file input works without JavaScript).
//! * `server_fn` — server functions ([`ServerFnRequest`], [`ServerFnResponse`],
//!   [`ServerFnMethod`]: `POST` by default, `GET` for read-only ones).
//! * `csrf` — the same-origin check for state-changing requests.
//! * `redirect` — redirect targets: [`local_path`] keeps input-supplied targets on the site.
//! * `client_address` — the visitor's address (socket peer, or what [`TrustedProxies`]
//!   report), passed to the identity service.
//! * `security_headers` — [`ContentSecurityPolicy`], frame, sniffing, referrer and HSTS
//!   headers on every answer.
//! * `devtools` — the development-only panel (routes, match, params, context, queries).
//! * `auth_ui` — `SignedIn`/`SignedOut`, `SignInButton`, `UserButton`, sign-in/up forms and
//!   their endpoints.
//! * `account_ui` — the "enter the code" step, password reset forms and the "Manage account"
//!   page (`user_profile`, `load_account`) for the local idp, and their endpoints.
//! * `second_factor_ui` — the code step of signing in and the account page's two-step
//!   verification section (authenticator app, backup codes), and their endpoints.
//! * `live` — page event streams and per-session backend connections (over a WebSocket, or in
//!   process with [`StartConfig::in_process_backend`]), run as the tasks of
//!   [`StartConfig::tasks`] (stopping them ends every stream and closes every session); the
//!   open ones counted in `keel_live_pages`. A stream queues one event beyond the one being
//!   written: a tab that reads slowly is sent the newest render, not every one in between.
//! * `live_render` — the per-session, per-address page renderer: re-renders from the session's
//!   cache when the page's queries change, coalescing, and prepares the pushed events (whole
//!   body, splice). It reads the cache's values shared (`Arc`, no copies), keeps each value's
//!   digest while the cache holds the same value, and writes no live address.
//! * `page` — a page rendered through the route tree, for a request (the document's parts) or
//!   for the live renderer (from a cache snapshot).
//! * `assets` — the browser runtime, stylesheets, favicons and manifest served by the crate.
//! * `app_state` — what every request handler holds (route tree, backend client, authenticator,
//!   server functions, live hub) and the first steps of a request (authenticate, root context).
//! * `start` — [`Start`] and [`StartConfig`]: everything assembled into an axum `Router` (with
//!   `/metrics` and request counting, [`StartConfig::metrics`]), and the page, server-function
//!   and live handlers.
//!
//! Dependencies run one way: `params`, `digest`, `request_auth` ← `context` ← `route` ← `matching` ←
//! `render` (with `boundary`) ← `page` ← `start`; `live_render` ← `live` ← `page`; the handlers'
//! state is `app_state`, which `start` builds and `auth_ui` reads, and `client_address` takes
//! only its [`TrustedProxies`] from it (axum's `FromRef`). `page` hands `live` its renderer as
//! a function, so no two modules import each other.

pub mod account_ui;
mod app_state;
pub mod assets;
pub mod auth_ui;
mod boundary;
mod client_address;
mod context;
pub mod csrf;
mod devtools;
mod digest;
mod document;
mod error;
mod head;
mod live;
mod live_render;
mod matching;
mod multipart;
mod page;
mod params;
mod redirect;
mod render;
mod request_auth;
mod route;
pub mod second_factor_ui;
mod security_headers;
mod server_fn;
mod start;

pub use boundary::{default_catch_boundary, not_found};
pub use client_address::{InvalidTrustedProxy, TrustedProxies};
pub use context::{ContextAdditions, FetchedAuth, RouteContext};
pub use error::{RouteError, StartError};
pub use head::{Head, Link, Meta};
pub use live::LIVE_PATH;
pub use multipart::{MAX_MULTIPART_BYTES, UploadedFile};
pub use params::Params;
pub use redirect::local_path;
pub use request_auth::{RequestAuth, RequestAuthError};
pub use route::{LoaderData, Match, Route};
pub use security_headers::ContentSecurityPolicy;
pub use server_fn::{
    SERVER_FN_PREFIX, ServerFnMethod, ServerFnRequest, ServerFnResponse, server_fn_path,
};
pub use start::{Start, StartConfig};

pub use keel_client::{HttpClient, QueryClient, QueryKey};

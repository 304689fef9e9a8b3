//! Keel's backend service: the backend core ([`keel_backend_core`], re-exported here) served over
//! the Convex HTTP API and the Convex WebSocket sync protocol, so that the official `convex`
//! clients (npm and Rust) work against it unchanged, plus the routes the nodes of a cluster use
//! among themselves.
//!
//! ```no_run
//! use keel_backend::{Backend, BackendConfig, FunctionRegistry};
//! # async fn run(db: keel_db::Database) -> std::io::Result<()> {
//! let mut functions = FunctionRegistry::new();
//! functions.query("hello:world", |_ctx, _args: serde_json::Value| async { Ok("hi") });
//! let backend = Backend::new(db, functions, BackendConfig::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3210").await?;
//! axum::serve(listener, keel_backend::router(&backend)).await
//! # }
//! ```
//!
//! # Transports over the core
//! This crate is the only part of the backend that knows axum; it also holds the in-process
//! transport ([`InProcess`]), so that both map a refusal in one place. Each transport turns what
//! arrives on its wire into calls of the core's API ([`Backend::authenticate`],
//! [`Backend::run_query`], [`Backend::subscribe_query`], [`Backend::run_mutation`],
//! [`Backend::run_session_mutation`], [`Backend::run_action`]) and the core's answers and
//! errors back into its wire's form. A new HTTP surface (another route, another origin) is a
//! module here that the [`router`] (or a router of its own) mounts; what it serves belongs to
//! the core. The core's API is re-exported, so an app writes its functions against
//! `keel_backend` (or `keel::backend`) alone.
//!
//! # Layout
//! * `http_api` — [`router`]: the HTTP endpoints (`/api/query`, `/api/mutation`, …), their
//!   envelopes (with the calls' log lines; a query's value is the text the query cache wrote
//!   once for every caller), the WebSocket upgrade, and `/metrics` (the backend's metrics
//!   registry, requests counted by route).
//! * `cors` — the HTTP API's CORS layer: any origin, no credentials, preflights answered with
//!   constant headers (the headers of the `tower_http` layer it replaced, without its
//!   per-request copies).
//! * `function_paths` — a request's function path normalized once per spelling (a bounded,
//!   process-wide table of accepted paths), not once per request.
//! * `in_process` — [`InProcess`]: the HTTP API's function calls for a client in the
//!   backend's process (`keel` running every service at once): the same token verification,
//!   identity, logs and errors, without a socket or JSON text.
//! * `sync` — the WebSocket sync protocol: one session task per socket, counted among the
//!   backend's tasks ([`Backend::tasks`]) and closed with 1001 when they stop; a writer task per
//!   socket that flushes once per burst of frames; Transitions written around query results
//!   encoded once per execution for all sockets.
//! * `node_routes` — the cluster's node-to-node forwarding route (the committer's side of
//!   [`Backend::accept_forwarded_mutation`]), the node status route and the cluster's members
//!   (`GET /api/keel/cluster/members`, admin key).
//! * `site` — [`site_router`]: the app's HTTP actions on their own origin (the site), with
//!   Convex's 20 MiB body limit, bearer-token identity and 404 for unknown routes.
//! * `storage_routes` — file storage at Convex's paths: uploads to `/api/storage/upload?token=…`
//!   streamed into the blob store, files served from `/api/storage/<id>` with range requests.
//! * `admin` — operators' routes behind the admin key (`Authorization: Convex <admin key>`,
//!   the `Admin` extractor): `GET /api/admin/logs`, the execution log, read from a cursor and
//!   long-polled.
//! * `admin_routes` — the operators' data routes under `/api/admin/` (export, import, tables
//!   and documents, run as a user), each behind `admin`'s `Admin` extractor.
//! * `dashboard` — [`DashboardConfig`]: the operators' web page at `/dashboard` (data, functions,
//!   logs, scheduler, files, the local idp's users, health), server-rendered, signed in with the
//!   admin key; mounted by [`router_with`] (and [`router`], without a local idp).
//! * `request_error` — `RequestError`: requests refused before any function ran, with their
//!   codes and classes.
//! * `error_class` — the one place where an [`ErrorClass`] becomes an HTTP status and a
//!   WebSocket close code.

mod admin;
mod admin_routes;
mod cors;
mod dashboard;
mod error_class;
mod function_paths;
mod http_api;
mod in_process;
mod node_routes;
mod request_error;
mod site;
mod storage_routes;
mod sync;

pub use dashboard::{DASHBOARD_PATH, DashboardConfig};
pub use http_api::{router, router_with};
pub use in_process::InProcess;
pub use keel_backend_core::*;
pub use site::site_router;

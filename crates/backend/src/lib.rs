//! Keel's backend service: functions written in Rust, served over the Convex HTTP API and the
//! Convex WebSocket sync protocol, so that the official `convex` clients (npm and Rust) work
//! against it unchanged.
//!
//! ```no_run
//! use keel_backend::{Backend, BackendConfig, FunctionRegistry};
//! # async fn run(db: keel_db::Database) -> std::io::Result<()> {
//! let mut functions = FunctionRegistry::new();
//! functions.query("hello:world", |_ctx, _args: serde_json::Value| async { Ok("hi") });
//! let backend = Backend::new(db, functions, BackendConfig::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3210").await?;
//! axum::serve(listener, backend.router()).await
//! # }
//! ```
//!
//! # Layout
//! * `backend` — [`Backend`]: runs queries (shared executions), mutations (OCC retries) and
//!   actions; [`BackendConfig`], [`Identity`]; graceful shutdown ([`Backend::close_sessions`],
//!   [`Backend::shutdown`]).
//! * `cluster` — [`Cluster`]: a backend node among several on one PostgreSQL database (follow the
//!   committer's commits, forward mutations to it with idempotency keys, take over when it
//!   dies; hand the lease over on shutdown).
//! * `registry` — [`FunctionRegistry`]: functions by path; arguments are decoded with Convex's
//!   validator rules and results encoded by [`keel_values::typed`].
//! * `context` — [`QueryCtx`], [`MutationCtx`], [`ActionCtx`] and their database handles.
//! * `error` — [`FunctionError`] (a call's failure as its caller sees it) and `ErrorClass`, the
//!   one place where a class of error becomes an HTTP status and a WebSocket close code.
//! * `request_error` — `RequestError`: requests refused before any function ran, with their
//!   codes and classes.
//! * `mutation_log` — at-most-once mutations per (client session, caller, request id), in
//!   memory (a resend while the first attempt runs waits for it); receipts committed with each
//!   mutation carry this across restarts and nodes (see `cluster`).
//! * `query_cache` — one execution per identical query, reused while it stays valid.
//! * `http_api` — the HTTP endpoints, their envelopes and CORS.
//! * `sync` — the WebSocket sync protocol: one session task per socket, counted among the
//!   backend's tasks (`keel_tasks`) and closed with 1001 when they stop.

mod backend;
mod cluster;
mod context;
mod error;
mod http_api;
mod mutation_log;
mod query_cache;
mod registry;
mod request_error;
mod sync;

pub use backend::{Backend, BackendConfig, Identity, VerifiedUser};
pub use cluster::{Cluster, ClusterConfig};
pub use context::{ActionCtx, Auth, DbReader, DbWriter, MutationCtx, QueryBuilder, QueryCtx};
pub use error::{FunctionError, INTERNAL_ERROR_MESSAGE};
pub use registry::{FunctionKind, FunctionRegistry};

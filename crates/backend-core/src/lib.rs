//! Keel's backend core: an app's functions written in Rust and everything that runs them, apart
//! from any transport. A [`Backend`] runs a query, a mutation or an action as an [`Identity`]
//! and returns its value or its [`FunctionError`]; the transports are layers over it.
//!
//! ```
//! use keel_backend_core::{Backend, BackendConfig, FunctionRegistry, Identity};
//! # async fn run(db: keel_db::Database) -> Result<(), keel_backend_core::FunctionError> {
//! let mut functions = FunctionRegistry::new();
//! functions.query("hello:world", |_ctx, _args: serde_json::Value| async { Ok("hi") });
//! let backend = Backend::new(db, functions, BackendConfig::default());
//! let path = keel_protocol::normalize_udf_path("hello:world").expect("a function path");
//! let hi = backend.run_query(&path, &Default::default(), &Identity::Anonymous, None).await?;
//! assert_eq!(hi, keel_values::Value::from("hi"));
//! # Ok(()) }
//! ```
//!
//! # Why a crate of its own
//! The core has no dependency on axum or any other server framework, so the compiler keeps it
//! apart from its transports: `keel-backend` serves it over the Convex HTTP API and the Convex
//! sync protocol (WebSocket), and serves the cluster's node-to-node route; its in-process
//! transport calls it directly. A transport calls [`Backend::authenticate`] (a token becomes an
//! [`Identity`]), then [`Backend::run_query`], [`Backend::subscribe_query`] (or
//! [`Backend::subscribe_query_journaled`], keeping a paginated query's page end),
//! [`Backend::run_mutation`] (or [`Backend::run_session_mutation`] for a client session's
//! request) and [`Backend::run_action`]; it sends a [`FunctionError`] as
//! [`FunctionError::client_message`] and [`FunctionError::error_data`], and answers an
//! [`ErrorClass`] in its own wire's form. New services of the core (work the backend does by
//! itself, data it keeps) go here; a new way to reach them from outside goes into a transport.
//! A service that starts functions by itself (a scheduler, crons, HTTP actions) runs them as
//! the app's own code — the runner's `query`, `mutation` and `action` with `Origin::App` at the
//! top depth — so that they reach internal functions, which clients never do.
//! Keeping the core free of the HTTP stack also lets it compile beside axum rather than after
//! it.
//!
//! # Functions
//! An app registers its functions in a [`FunctionRegistry`]: queries, mutations and actions,
//! each public (clients call it) or internal ([`FunctionRegistry::internal_query`] and its
//! siblings: only the app's own code calls it; to a client it is a path with no function, as in
//! Convex). A function calls others through its context — [`QueryCtx::run_query`],
//! [`MutationCtx::run_query`] and [`MutationCtx::run_mutation`] inside the caller's transaction
//! (a nested mutation that fails undoes only its own writes), [`ActionCtx::run_query`],
//! [`ActionCtx::run_mutation`] and [`ActionCtx::run_action`] each in its own — at most
//! [`MAX_CALL_DEPTH`] levels deep.
//!
//! # Layout
//! * `backend` — [`Backend`]: the database, the registry, the token verifier;
//!   [`BackendConfig`], [`SessionRequest`]; the connections' tasks ([`Backend::tasks`]) and
//!   graceful shutdown ([`Backend::close_sessions`], [`Backend::shutdown`]).
//! * `runner` — running a function for a client (the public `run_*` methods, public functions
//!   only) or for the app's own code (`Origin`): queries at a snapshot (shared executions),
//!   mutations as transactions (OCC retries, receipts, forwarding on a follower), actions.
//! * `calls` — functions calling functions (`ctx.run_*`), the call depth and its limit.
//! * `transaction` — the transaction of a top-level query or mutation, shared by the contexts
//!   of the functions that run in it; nested mutations in savepoints, each context using it in
//!   its turn.
//! * `http_action` — HTTP actions: [`HttpRoutes`] (method and exact path or prefix → handler),
//!   [`HttpRequest`], [`HttpResponse`] (whole or streamed), [`Backend::run_http_action`].
//! * `identity` — [`Identity`]: who calls (anonymous or a [`VerifiedUser`]).
//! * `cluster` — [`Cluster`]: a backend node among several on one PostgreSQL database (follow the
//!   committer's commits, forward mutations to it with idempotency keys, take over when it
//!   dies; hand the lease over on shutdown); both ends of the forwarding protocol (the
//!   committer's is [`Backend::accept_forwarded_mutation`]), the node's status
//!   ([`Backend::node_status`]) and the cluster's members, each node refreshing its record in
//!   the shared database ([`Backend::cluster_members`]).
//! * `registry` — [`FunctionRegistry`]: functions by path, with their [`Visibility`]; arguments
//!   are decoded with Convex's validator rules and results encoded by [`keel_values::typed`].
//! * `context` — [`QueryCtx`], [`MutationCtx`], [`ActionCtx`] and their database handles.
//! * `auth` — [`Auth`] (`ctx.auth()`): the caller's identity, and what a function looked at of
//!   it ([`AuthObservation`]: nothing, whether a caller is signed in, or who), which decides how
//!   broadly a query's result is shared.
//! * `typed_table` — typed tables in functions: `ctx.db().table::<T>()` ([`TableReader`],
//!   [`TableWriter`], [`TypedQueryBuilder`]) over `keel_db`'s typed tables.
//! * `error` — [`FunctionError`] (a call's failure as its caller sees it) and [`ErrorClass`].
//! * `mutation_log` — at-most-once mutations per (client session, caller, request id), in
//!   memory (a resend while the first attempt runs waits for it); receipts committed with each
//!   mutation carry this across restarts and nodes (see `cluster`).
//! * `query_cache` — one execution per identical query (and journal), reused while it stays
//!   valid, by every caller it serves (all, the signed-in ones, or one identity: as far as the
//!   query looked at its caller); [`QueryOutcome`], [`QuerySubscription`], and
//!   [`SharedOutcome`] (an execution's outcome as the cache holds it: its value an `Arc` handed
//!   to in-process clients without a copy, its JSON encodings written once for all its
//!   callers).
//! * `console` — function logs: [`Console`] (`ctx.console()`, `ctx.log(…)`), [`LogLine`],
//!   Convex's limits, and [`Logged`] (a call's outcome with its client log lines, from
//!   [`Backend::run_query_logged`] and its siblings).
//! * `execution_log` — [`ExecutionLog`]: every function execution (path, kind, caller,
//!   duration, outcome, error, log lines) in a bounded ring, read from a cursor and waited on.
//! * `admin_key` — [`AdminKey`]: the deployment's admin key (generated into a 0600 file, or
//!   given), checked in constant time.
//! * `metrics` — the core's metrics in the backend's registry ([`Backend::metrics`]): function
//!   calls and durations, commits, conflicts and retries, the scheduler's lag, sync sessions
//!   ([`SessionGauge`]) and their subscriptions, sessions opened by [`SyncTransport`].
//! * `operator` — what operators see and do (the dashboard, `keel` commands): the app's
//!   functions ([`Backend::functions`], [`FunctionInfo`]), a function run as the app's own code
//!   with its log lines ([`Backend::run_as_operator`]), a scheduled job canceled
//!   ([`Backend::cancel_scheduled`]), the sync sessions' load ([`Backend::sync_load`]).
//! * `journal` — [`QueryJournal`]: where a query's paginated page ended, so that its re-runs
//!   keep the page's end (a live paginated list neither duplicates nor skips documents).
//! * `scheduler` — [`Scheduler`] (`ctx.scheduler()`: functions run later, as documents of
//!   `_scheduled_functions`), [`Crons`], and the executor: a named task that runs due jobs on
//!   the committer (mutations exactly once, actions at most once).
//! * `storage` — file storage: [`StorageConfig`], the `_storage` table's [`FileMetadata`],
//!   `ctx.storage()` ([`StorageReader`], [`StorageWriter`], [`StorageActions`]), uploads to
//!   single-use URLs ([`Backend::upload`]), serving ([`Backend::stored_file`],
//!   [`Backend::read_file`]) and reclaiming ([`Backend::reclaim_storage`]); its writes are the
//!   backend's own internal mutations (`_system/storage:*`).

mod admin_key;
mod auth;
mod backend;
mod calls;
pub mod cluster;
mod console;
mod context;
mod error;
mod execution_log;
mod http_action;
mod identity;
mod journal;
mod metrics;
mod mutation_log;
mod operator;
mod query_cache;
mod registry;
mod runner;
mod scheduler;
mod storage;
mod transaction;
mod typed_table;

pub use admin_key::{AdminKey, AdminKeyError, MIN_ADMIN_KEY_LEN};
pub use auth::{Auth, AuthObservation};
pub use backend::{Backend, BackendConfig, SessionRequest};
pub use calls::MAX_CALL_DEPTH;
pub use cluster::{Cluster, ClusterConfig, ClusterMember, ClusterMembers, MemberState};
pub use console::{Console, LogLevel, LogLine, Logged, MAX_LOG_LINE_BYTES, MAX_LOG_LINES};
pub use context::{
    ActionCtx, DbReader, DbWriter, MutationCtx, QueryBuilder, QueryCtx, SystemReader,
};
pub use error::{ErrorClass, FunctionError, INTERNAL_ERROR_MESSAGE};
pub use execution_log::{
    EXECUTION_LOG_BYTES, EXECUTION_LOG_CAPACITY, ExecutionEntry, ExecutionKind, ExecutionLog,
    ExecutionOutcome, ExecutionPage,
};
/// The `http` crate's types ([`http::Method`], [`http::StatusCode`], headers) that HTTP
/// actions use.
pub use http;
pub use http_action::{
    HTTP_ACTION_BODY_LIMIT, HttpActionError, HttpBody, HttpRequest, HttpResponse, HttpRoute,
    HttpRoutes,
};
pub use identity::{Identity, VerifiedUser};
pub use journal::QueryJournal;
pub use metrics::{SessionGauge, SyncTransport};
pub use operator::{FunctionInfo, SyncLoad};
pub use query_cache::{QueryOutcome, QuerySubscription, SharedOutcome};
pub use registry::{FunctionKind, FunctionRegistry, Visibility};
pub use scheduler::{
    CronError, CronExpression, CronSchedule, Crons, MAX_SCHEDULE_AHEAD, MAX_SCHEDULED_ARGS_BYTES,
    MAX_SCHEDULED_PER_CALL, Scheduler, SchedulerError,
};
pub use storage::{
    BlobStorage, FileMetadata, ReclaimReport, StorageActions, StorageConfig, StorageReader,
    StorageWriter, StoredFile, UploadError, UploadRequest,
};
pub use typed_table::{TableReader, TableWriter, TypedQueryBuilder};

//! Keel's library entry point: an app gives [`App`] its schema, its functions and its web routes,
//! and gets the whole `keel` command line — `keel` (every service in one process), `keel web`,
//! `keel backend`, `keel idp`, `keel new <dir>`, `keel export / import / data / run`, each flag with its environment fallback — with the services
//! wired together, logging set up and errors reported.
//!
//! ```no_run
//! use keel::backend::{FunctionError, FunctionRegistry, QueryCtx};
//! use keel::db::{Schema, TableSchema};
//! use keel::start::{Route, Start};
//!
//! async fn count(ctx: QueryCtx, _args: serde_json::Value) -> Result<usize, FunctionError> {
//!     Ok(ctx.db().query("notes").collect().await?.len())
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     let schema = Schema::new().table("notes", TableSchema::new());
//!     let mut functions = FunctionRegistry::new();
//!     functions.query("notes:count", count);
//!     keel::App::new(schema, functions)
//!         .web(|config| {
//!             let root = Route::root().child(
//!                 Route::new("").component(|_, _| maud::html! { h1 { "Notes" } }),
//!             );
//!             Start::new(config, root)
//!         })
//!         .run()
//! }
//! ```
//!
//! The crates Keel is made of are re-exported under short names ([`backend`], [`db`],
//! [`start`], …), so an app can depend on `keel` alone for Keel's own types; typed tables
//! (`#[derive(Table)]`, [`Id`], [`Doc`]) are at the root.
//!
//! # Typed tables
//! `#[derive(Table)]` declares a table's documents once — its name, its indexes and the
//! validator every write must match, from the struct's fields — and `ctx.db().table::<T>()`
//! reads and writes them as `T`, [`Id<T>`] and [`Doc<T>`] (see [`values::table`]); an index
//! range takes values of its fields' types. Untyped access by table name stays.
//!
//! ```
//! use keel::backend::{FunctionError, QueryCtx};
//! use keel::{Doc, Table};
//!
//! #[derive(Debug, serde::Serialize, serde::Deserialize, Table)]
//! #[serde(rename_all = "camelCase")]
//! #[keel(table = "notes", index(by_author = [author_id]))]
//! pub struct Note {
//!     pub text: String,
//!     pub author_id: String,
//!     pub pinned: Option<bool>,
//! }
//!
//! async fn notes_by(ctx: QueryCtx, author: &str) -> Result<Vec<Doc<Note>>, FunctionError> {
//!     let notes = ctx.db().table::<Note>();
//!     notes.query().with_index(Note::by_author, |q| q.eq(author)).collect().await
//! }
//!
//! let schema = keel::db::Schema::new().table_of::<Note>();
//! let notes = schema.table_schema("notes").unwrap();
//! assert_eq!(
//!     notes.document_validator().unwrap().describe(),
//!     "v.object({authorId: v.string(), pinned: v.optional(v.boolean()), text: v.string()})"
//! );
//! ```
//!
//! An app names its functions by typed references — its `api`, as Convex generates
//! `api.notes.list` — re-exported here ([`QueryRef`], [`MutationRef`], [`ActionRef`] and their
//! `Internal*` counterparts): the registry, the web tier and the clients accept them, and the
//! compiler checks every call's argument and result types and the function's kind.
//!
//! ```
//! use keel::backend::{FunctionError, FunctionRegistry, QueryCtx};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! pub struct NoArgs {}
//!
//! /// `notes:count`.
//! pub const COUNT: keel::QueryRef<NoArgs, usize> = keel::QueryRef::new("notes:count");
//!
//! async fn count(ctx: QueryCtx, _args: NoArgs) -> Result<usize, FunctionError> {
//!     Ok(ctx.db().query("notes").collect().await?.len())
//! }
//!
//! let mut functions = FunctionRegistry::new();
//! functions.query(COUNT, count); // `count` must take `NoArgs` and return `usize`
//! // In a loader: `let n = ctx.query(COUNT, NoArgs {}).await?;` (`n: usize`).
//! ```
//!
//! # Layout
//! * `admin_cli` — [`AdminCommand`]: `keel export / import / data / run` against a running
//!   deployment's admin routes, with `--url` and `--admin-key` defaulting to the local backend
//!   and `<data dir>/admin_key`.
//! * `app` — [`App`]: the app's schema, functions, crons ([`App::crons`]) and web routes,
//!   turned into the command line
//!   ([`App::run`]) or served with a given [`Config`] ([`App::serve`], [`App::serve_until`]);
//!   logging; [`Error`].
//! * `config` — [`Config`]: every flag with its environment fallback, grouped per service
//!   ([`WebFlags`], [`BackendFlags`], [`IdpFlags`], [`ProcessFlags`] with `--data-dir` and
//!   `--shutdown-timeout`), and their checks.
//! * `listen` — [`ListenAddr`] (`host:port`, names resolved when bound) and binding it, with
//!   errors naming the flag and its variable (and a hint when the port is taken).
//! * `services` — opening the idp, the backend and the web tier, alone or together: bind every
//!   listener, lock and open what each owns (the admin key: given, or `<data dir>/admin_key`),
//!   then print the service lines; errors name the flag and its environment variable. A web
//!   tier beside the backend calls it in process (`keel_backend::InProcess`), and beside the
//!   idp calls its routes in process (`idp_router`).
//! * `idp_router` — `IdpRouter`: the idp's routes as a `keel_auth::InProcessIdp`, so the web
//!   tier's Backend-API calls (sign-ins, sessions, tokens) need no socket in one process.
//! * `new` — [`NewProject`]: `keel new <dir>` writes a project on Keel from the templates in
//!   `templates/new/` (embedded), depending on this checkout by path ([`default_keel_path`]).
//! * `otlp` — `--otlp-endpoint`: the `tracing` spans exported as OTLP/HTTP protobuf
//!   (`opentelemetry-otlp`, batched) through Keel's own `reqwest` client on the runtime, and
//!   flushed when the process stops.
//! * `lock` — `DataLock`: the backend's SQLite file and the idp's state locked for the life of
//!   the process, so a second process on the same data directory refuses to start and names
//!   the holder.
//! * `shutdown` — serving until SIGTERM / SIGINT, then the graceful shutdown in order (web tier,
//!   then backend and idp, then background work and the committer lease) within
//!   `--shutdown-timeout`. Background tasks are `keel_tasks::Tasks` of their owners.
//! * the global allocator — with the default feature `mimalloc`, every binary linking `keel`
//!   allocates with mimalloc (see [`ALLOCATOR`]).

/// The process's allocator: mimalloc (feature `mimalloc`, on by default).
///
/// A live page's update builds and drops many small values (query results, rendered markup,
/// event text) on the runtime's worker threads; with the system allocator, `malloc`/`free` and
/// their consolidation took about 40 % of the process's CPU under the live-pages benchmark.
/// mimalloc is built without transparent huge pages (feature `no_thp`): with them a soak of
/// 1,000 open pages held about twice the memory. An app that wants its own
/// `#[global_allocator]` depends on `keel` with `default-features = false`.
#[cfg(feature = "mimalloc")]
#[global_allocator]
pub static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod admin_cli;
mod app;
mod config;
mod idp_router;
mod listen;
mod lock;
mod new;
mod otlp;
mod services;
mod shutdown;

pub use admin_cli::{AdminCliError, AdminCommand, AdminRequest};
pub use app::{App, Error};
pub use config::{
    AdminTarget, BackendFlags, BackendRole, Command, Config, DatabaseLocation, DatabaseUrlError,
    IdpFlags, ProcessFlags, WebFlags,
};
pub use keel_protocol::{
    ActionRef, FunctionRef, InternalActionRef, InternalMutationRef, InternalQueryRef, MutationRef,
    QueryRef,
};
pub use listen::ListenAddr;
pub use new::{NewError, NewProject, default_keel_path};

// Typed tables (see the crate docs): the derives and the types they implement.
pub use keel_macros::{FieldValidator, Table};
pub use keel_values::table::{Doc, FieldValidator, Id, Table};

pub use keel_auth as auth;
pub use keel_backend as backend;
pub use keel_client as client;
pub use keel_db as db;
pub use keel_idp as idp;
pub use keel_protocol as protocol;
pub use keel_start as start;
pub use keel_values as values;

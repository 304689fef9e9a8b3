//! Keel's library entry point: an app gives [`App`] its schema, its functions and its web routes,
//! and gets the whole `keel` command line — `keel` (every service in one process), `keel web`,
//! `keel backend`, `keel idp`, `keel new <dir>`, each flag with its environment fallback — with the services
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
//! [`start`], …), so an app can depend on `keel` alone for Keel's own types.
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
//!   listener, lock and open what each owns, then print the service lines; errors name the
//!   flag and its environment variable.
//! * `new` — [`NewProject`]: `keel new <dir>` writes a project on Keel from the templates in
//!   `templates/new/` (embedded), depending on this checkout by path ([`default_keel_path`]).
//! * `lock` — `DataLock`: the backend's SQLite file and the idp's state locked for the life of
//!   the process, so a second process on the same data directory refuses to start and names
//!   the holder.
//! * `shutdown` — serving until SIGTERM / SIGINT, then the graceful shutdown in order (web tier,
//!   then backend and idp, then background work and the committer lease) within
//!   `--shutdown-timeout`. Background tasks are `keel_tasks::Tasks` of their owners.

mod app;
mod config;
mod listen;
mod lock;
mod new;
mod services;
mod shutdown;

pub use app::{App, Error};
pub use config::{
    BackendFlags, BackendRole, Command, Config, DatabaseLocation, DatabaseUrlError, IdpFlags,
    ProcessFlags, WebFlags,
};
pub use keel_protocol::{
    ActionRef, FunctionRef, InternalActionRef, InternalMutationRef, InternalQueryRef, MutationRef,
    QueryRef,
};
pub use listen::ListenAddr;
pub use new::{NewError, NewProject, default_keel_path};

pub use keel_auth as auth;
pub use keel_backend as backend;
pub use keel_client as client;
pub use keel_db as db;
pub use keel_idp as idp;
pub use keel_protocol as protocol;
pub use keel_start as start;
pub use keel_values as values;

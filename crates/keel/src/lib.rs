//! Keel's library entry point: an app gives [`App`] its schema, its functions and its web routes,
//! and gets the whole `keel` command line — `keel` (every service in one process), `keel web`,
//! `keel backend`, `keel idp`, each flag with its environment fallback — with the services
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
//! # Layout
//! * `app` — [`App`]: the app's schema, functions and web routes, turned into the command line
//!   ([`App::run`]) or served with a given [`Config`] ([`App::serve`]); [`Error`].
//! * `config` — [`Config`]: every flag with its environment fallback, and their checks.
//! * `services` — opening the idp, the backend and the web tier, alone or together, and serving
//!   them.

mod app;
mod config;
mod services;

pub use app::{App, Error};
pub use config::{BackendRole, Command, Config, DatabaseLocation, DatabaseUrlError};

pub use keel_auth as auth;
pub use keel_backend as backend;
pub use keel_client as client;
pub use keel_db as db;
pub use keel_idp as idp;
pub use keel_protocol as protocol;
pub use keel_start as start;
pub use keel_values as values;

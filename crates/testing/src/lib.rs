//! Test support shared by Keel's crates, so that each crate's tests start real components the
//! same way instead of keeping near-copies of the start-up code.
//!
//! Only ever a dev-dependency: `keel-backend`'s and `keel-client`'s integration tests use it
//! (a dev-dependency cycle Cargo allows, because integration tests link the crate under test as
//! an ordinary library). It turns on keel-db's `testing` feature for them.
//!
//! Each test crate still declares its own functions and schema; this crate serves them:
//!
//! ```no_run
//! # async fn demo() {
//! use keel_backend::{BackendConfig, FunctionRegistry};
//! use keel_db::{Schema, TableSchema};
//! use keel_testing::ServedBackend;
//!
//! let schema = || Schema::new().table("messages", TableSchema::new());
//! let served = ServedBackend::sqlite(schema(), FunctionRegistry::new(), BackendConfig::default()).await;
//! println!("backend at {}", served.url());
//! // Reopen the same SQLite file on a new port, as a restarted process would.
//! let served = served.restart(schema(), FunctionRegistry::new()).await;
//! # drop(served);
//! # }
//! ```
//!
//! # Layout
//! * `backend` — [`ServedBackend`]: a [`keel_backend::Backend`] served by axum on `127.0.0.1:0`,
//!   over SQLite in a temporary directory (restartable over the same file) or as a node of a
//!   PostgreSQL cluster.
//! * [`counter`] — the `counters` document that test functions read and bump.
//! * [`messages`] — the `messages` table that test functions write and list.
//! * `idp` — [`TestIdp`]: the development identity provider served in-process, with users,
//!   sessions and `convex` template tokens on demand.
//! * [`prometheus`] — a strict parser of the Prometheus text format, for tests that scrape
//!   `/metrics`.
//! * [`sync`] — [`sync::SyncClient`]: a bare sync-protocol socket for tests that send exactly
//!   the frames they choose, and helpers to read Transitions.

mod backend;
pub mod counter;
mod idp;
pub mod messages;
pub mod prometheus;
pub mod sync;

pub use backend::ServedBackend;
pub use idp::TestIdp;

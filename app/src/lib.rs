//! The Keel reference app: the seed app's backend functions, and the wiring that runs the
//! services (`keel`, `keel backend`, `keel idp`).
//!
//! # Layout
//! * `functions` — the schema (`posts`, `users`) and the functions (`posts:*`, `users:*`).
//! * `config` — [`Config`]: command-line flags with environment fallbacks.
//! * `services` — opening the idp and the backend and serving them.

pub mod config;
pub mod functions;
mod services;

pub use config::Config;
pub use services::run;

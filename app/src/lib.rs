//! The Keel reference app: the seed app's backend functions and web routes, and the wiring
//! that runs the services (`keel`, `keel web`, `keel backend`, `keel idp`).
//!
//! # Layout
//! * `functions` — the schema (`posts`, `users`) and the functions (`posts:*`, `users:*`).
//! * `config` — [`Config`]: command-line flags with environment fallbacks.
//! * `web` — the seed's routes and forms on `keel_start` ([`web::app`]).
//! * `services` — opening the idp, the backend and the web tier and serving them.

pub mod config;
pub mod functions;
mod services;
pub mod web;

pub use config::Config;
pub use services::run;

//! The Keel reference app: the seed app's backend functions and web routes, run by the `keel`
//! library entry point (`src/main.rs` is the whole binary).
//!
//! # Layout
//! * `functions` — the schema (`posts`, `users`) and the functions (`posts:*`, `users:*`).
//! * `web` — the seed's routes and forms on `keel_start` ([`web::app`]).

pub mod functions;
pub mod web;

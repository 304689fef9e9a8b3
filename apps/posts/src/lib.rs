//! The Keel reference app: the seed app's backend functions and web routes, run by the `keel`
//! library entry point (`src/main.rs` is the whole binary).
//!
//! # Layout
//! * `api` — the typed function references ([`api::posts::LIST`], …) the registry, the web
//!   tier and the tests name the functions by.
//! * `functions` — the schema (`posts`, `users`, `stats`), the functions (`posts:*`, `users:*`,
//!   `files:generateUploadUrl`, `stats:record` and `files:sweep` run by crons,
//!   `users:upsertFromClerk` / `users:deleteFromClerk` run by the webhook) and the HTTP actions
//!   on the site (`POST /posts`; `POST /clerk-users-webhook`, which keeps `users` in step with
//!   the identity provider's signed webhooks).
//! * `web` — the seed's routes and forms on `keel_start` ([`web::app`]); the new-post form
//!   takes an optional image (`multipart/form-data`, stored through the backend).

pub mod api;
pub mod functions;
pub mod web;

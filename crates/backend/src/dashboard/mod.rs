//! The dashboard: a web page the backend serves at `/dashboard` for its operators — data,
//! functions, logs, scheduler, files, the local idp's users and the node's health —
//! rendered on the server (maud), made of plain links and forms, with one small script
//! (`assets/dashboard.js`) that keeps a page live.
//!
//! Everything but the sign-in form requires the operator's session: a cookie set by signing
//! in with the admin key (see `session`). Without it, a route answers 401 with the sign-in
//! form as its page. A `POST` must also come from the dashboard's own origin and carry the
//! session's CSRF token.
//!
//! Why not Keel's web framework (`keel-start`): it is a client of the backend — its router,
//! loaders and live layer read through `keel-client`'s query cache over the Convex protocol,
//! with an identity from the idp's session cookie. The dashboard reads what no client may
//! (every table, the execution log, the scheduler's system tables) straight from the
//! backend's core, under the admin key; serving it through `keel-start` would make the
//! backend depend on its own client's framework. It shares the web tier's rendering crate
//! (maud) and its rules: forms that work without JavaScript, escaping by construction,
//! same-origin `POST`s.
//!
//! # Layout
//! * `mod.rs` — [`DashboardConfig`], the router, the state the handlers share.
//! * `error` — `DashboardError`: a refused or failed request, with its code, status and page.
//! * `session` — signing in and out; `Operator`, the extractor every other route takes
//!   (session cookie, same-origin check, CSRF token).
//! * `page` — the page shell (navigation, styles, script), and shared bits of markup.
//! * `health` — `/dashboard`: node role, latest timestamp, sync sessions, subscriptions, the
//!   web tier's live pages when it runs in this process, the cluster's members (live or gone).
//! * `data` — tables, the document browser (index-range filter, pages), insert, edit, delete;
//!   the snapshot export download.
//! * `import` — a snapshot ZIP imported in one commit from the data page: the file as the
//!   body (the script), or the form as `multipart/form-data` (without JavaScript).
//! * `functions` — the app's functions; run one with JSON arguments as anonymous or as an
//!   identity.
//! * `logs` — the execution log with filters, followed live (server-sent events).
//! * `jobs` — scheduled functions (cancel), crons, stored files.
//! * `users` — the local idp's users and sessions (revoke), through its Backend API.
//! * `live` — the commit stream that keeps a data page live, and the script.

mod data;
mod error;
mod functions;
mod health;
mod import;
mod jobs;
mod live;
mod logs;
mod page;
mod session;
mod users;

use axum::Router;
use axum::routing::{get, post};
use keel_auth::BackendApiClient;
use keel_backend_core::Backend;

/// Where the dashboard is served.
pub const DASHBOARD_PATH: &str = "/dashboard";

/// What the dashboard needs beyond the backend.
#[derive(Clone, Debug, Default)]
pub struct DashboardConfig {
    /// The Backend API of the identity provider running in the same process (the local
    /// idp, with its secret key): the users page lists its users and sessions and revokes
    /// sessions through it. `None`: the users page says there is none.
    pub idp: Option<BackendApiClient>,
    /// The metrics of the web tier running in the same process, whose open live pages
    /// (`keel_live_pages`) the health page shows. `None`: it says the web tier runs elsewhere.
    pub web_metrics: Option<keel_metrics::Registry>,
}

/// What every handler holds.
#[derive(Clone)]
pub(crate) struct Dashboard {
    pub(crate) backend: Backend,
    pub(crate) idp: Option<BackendApiClient>,
    pub(crate) web_metrics: Option<keel_metrics::Registry>,
}

/// The dashboard's routes, with their state.
pub(crate) fn dashboard_router(backend: &Backend, config: DashboardConfig) -> Router {
    let state = Dashboard {
        backend: backend.clone(),
        idp: config.idp,
        web_metrics: config.web_metrics,
    };
    Router::new()
        .route("/dashboard", get(health::page))
        .route("/dashboard/", get(health::page))
        .route(
            "/dashboard/sign-in",
            get(session::sign_in_form).post(session::sign_in),
        )
        .route("/dashboard/sign-out", post(session::sign_out))
        .route("/dashboard/assets/dashboard.js", get(live::script))
        .route("/dashboard/live", get(live::commits))
        .route("/dashboard/data", get(data::tables))
        .route("/dashboard/export", get(data::export))
        .route(
            "/dashboard/import",
            post(import::import).layer(axum::extract::DefaultBodyLimit::max(
                backend.config().max_import_bytes,
            )),
        )
        .route(
            "/dashboard/data/{table}",
            get(data::browse).post(data::insert),
        )
        .route(
            "/dashboard/data/{table}/{id}",
            get(data::edit_form).post(data::replace),
        )
        .route("/dashboard/data/{table}/{id}/delete", post(data::delete))
        .route("/dashboard/functions", get(functions::list))
        .route(
            "/dashboard/functions/run",
            get(functions::run_form).post(functions::run),
        )
        .route("/dashboard/logs", get(logs::page))
        .route("/dashboard/logs/stream", get(logs::stream))
        .route("/dashboard/scheduler", get(jobs::scheduler))
        .route("/dashboard/scheduler/{id}/cancel", post(jobs::cancel))
        .route("/dashboard/files", get(jobs::files))
        .route("/dashboard/users", get(users::page))
        .route("/dashboard/users/sessions/{id}/revoke", post(users::revoke))
        .layer(axum::middleware::from_fn(page::security_headers))
        .with_state(state)
}

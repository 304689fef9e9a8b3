//! The reference app's backend: schema, functions (`posts:*`, `users:*`, `files:*`, `stats:*`),
//! crons and HTTP actions (`POST /posts` and `POST /clerk-users-webhook` on the site, see
//! [`http_routes`]).
//!
//! These are the seed app's Convex functions written in Rust, each registered under its typed
//! reference ([`crate::api`]). The web tier and the Rust tests call them by reference; the
//! interop tests (the official clients) by path, which is what goes on the wire.

pub mod files;
mod http;
pub mod posts;
pub mod stats;
pub mod users;

pub use http::{WebhookSecret, routes as http_routes, routes_with as http_routes_with};
pub use posts::{Post, PostView, with_image_url};
pub use users::{ClerkUser, ClerkUserId, Me};

use keel_backend::{Auth, Crons, FunctionError, FunctionRegistry};
use keel_db::Schema;
use keel_values::obj;

use crate::api;

/// The app's tables, their indexes and document validators, declared by their typed documents
/// ([`posts::Post`], [`users::User`], [`stats::Stat`]).
pub fn schema() -> Schema {
    Schema::new()
        .table_of::<posts::Post>()
        .table_of::<users::User>()
        .table_of::<stats::Stat>()
}

/// The app's crons: every hour (at minute 0, UTC) `stats:record` notes the number of posts;
/// every day at 03:30 UTC `files:sweep` deletes the files no post shows that are a day old.
pub fn crons() -> Crons {
    let mut crons = Crons::new();
    crons.hourly("record post count", 0, api::stats::RECORD, users::NoArgs {});
    crons.daily(
        "delete files no post shows",
        3,
        30,
        api::files::SWEEP,
        files::SweepArgs {
            older_than_ms: files::UNSHOWN_FILE_GRACE.as_millis() as f64,
        },
    );
    crons
}

/// Every function of the app, under its typed reference ([`crate::api`]): the compiler checks
/// that each function takes its reference's arguments and returns its result.
pub fn functions() -> FunctionRegistry {
    let mut functions = FunctionRegistry::new();
    functions
        .query(api::users::ME, users::me)
        .mutation(api::users::STORE, users::store)
        .internal_mutation(api::users::UPSERT_FROM_CLERK, users::upsert_from_clerk)
        .internal_mutation(api::users::DELETE_FROM_CLERK, users::delete_from_clerk)
        .query(api::posts::LIST, posts::list)
        .query(api::posts::PAGE, posts::page)
        .query(api::posts::NEWEST, posts::newest)
        .query(api::posts::GET, posts::get)
        .mutation(api::posts::CREATE, posts::create)
        .mutation(api::posts::REMOVE, posts::remove)
        .mutation(api::posts::PUBLISH_LATER, posts::publish_later)
        .internal_mutation(api::posts::PUBLISH, posts::publish)
        .internal_mutation(api::stats::RECORD, stats::record)
        .internal_mutation(api::files::SWEEP, files::sweep)
        .action(api::posts::IMPORT_SAMPLE, posts::import_sample)
        .mutation(api::files::GENERATE_UPLOAD_URL, files::generate_upload_url);
    functions
}

/// The signed-in caller, or the `UNAUTHENTICATED` application error. It reads the identity: a
/// query that calls it keeps its result for this caller alone (one that needs only "signed in"
/// calls [`Auth::require_signed_in`], whose result all signed-in callers share).
fn require_user(auth: &Auth) -> Result<&keel_auth::UserIdentity, FunctionError> {
    auth.user_identity().ok_or_else(|| {
        FunctionError::convex("Not authenticated", obj! { "code" => "UNAUTHENTICATED" })
    })
}

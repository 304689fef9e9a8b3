//! The reference app's backend: schema, functions (`posts:*`, `users:*`, `files:*`, `stats:*`),
//! crons and HTTP actions (`POST /posts` on the site, see [`http_routes`]).
//!
//! These are the seed app's Convex functions written in Rust. Every later layer (the web tier,
//! the interop tests) calls them by path.

pub mod files;
mod http;
mod posts;
mod stats;
mod users;

pub use http::routes as http_routes;
pub use posts::{Post, with_image_url};

use keel_backend::{Auth, Crons, FunctionError, FunctionRegistry};
use keel_db::Schema;
use keel_values::obj;

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
    crons.hourly(
        "record post count",
        0,
        "stats:record",
        serde_json::json!({}),
    );
    crons.daily(
        "delete files no post shows",
        3,
        30,
        "files:sweep",
        serde_json::json!({ "olderThanMs": files::UNSHOWN_FILE_GRACE.as_millis() as f64 }),
    );
    crons
}

/// Every function of the app, by path.
pub fn functions() -> FunctionRegistry {
    let mut functions = FunctionRegistry::new();
    functions
        .query("users:me", users::me)
        .mutation("users:store", users::store)
        .query("posts:list", posts::list)
        .query("posts:page", posts::page)
        .query("posts:get", posts::get)
        .mutation("posts:create", posts::create)
        .mutation("posts:remove", posts::remove)
        .mutation("posts:publishLater", posts::publish_later)
        .internal_mutation("posts:publish", posts::publish)
        .internal_mutation("stats:record", stats::record)
        .internal_mutation("files:sweep", files::sweep)
        .action("posts:importSample", posts::import_sample)
        .mutation("files:generateUploadUrl", files::generate_upload_url);
    functions
}

/// The signed-in caller, or the `UNAUTHENTICATED` application error.
fn require_user(auth: &Auth) -> Result<&keel_auth::UserIdentity, FunctionError> {
    auth.user_identity().ok_or_else(|| {
        FunctionError::convex("Not authenticated", obj! { "code" => "UNAUTHENTICATED" })
    })
}

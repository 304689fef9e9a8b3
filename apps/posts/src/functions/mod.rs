//! The reference app's backend: schema and functions (`posts:*`, `users:*`).
//!
//! These are the seed app's Convex functions written in Rust. Every later layer (the web tier,
//! the interop tests) calls them by path.

mod posts;
mod users;

use keel_backend::{Auth, FunctionError, FunctionRegistry};
use keel_db::{Schema, TableSchema};
use keel_values::obj;

/// The app's tables and indexes.
pub fn schema() -> Schema {
    Schema::new()
        .table(
            "posts",
            TableSchema::new().index("by_author", &["authorId"]),
        )
        .table(
            "users",
            TableSchema::new().index("by_token", &["tokenIdentifier"]),
        )
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
        .action("posts:importSample", posts::import_sample);
    functions
}

/// The signed-in caller, or the `UNAUTHENTICATED` application error.
fn require_user(auth: &Auth) -> Result<&keel_auth::UserIdentity, FunctionError> {
    auth.user_identity().ok_or_else(|| {
        FunctionError::convex("Not authenticated", obj! { "code" => "UNAUTHENTICATED" })
    })
}

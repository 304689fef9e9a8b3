//! The app's typed function references — its `api`, as Convex generates `api.posts.list`:
//! one constant per function, carrying its path (what goes on the wire), its kind, who may call
//! it, and its argument and result types.
//!
//! [`crate::functions::functions`] registers every function under its reference, so the
//! compiler checks that each function takes and returns what its reference says; the web tier
//! ([`crate::web`]), the Rust clients and the app's own functions call them by reference, so a
//! wrong argument type, or a query called as a mutation, does not compile. Internal functions
//! (`Internal*Ref`) are refused by the clients at compile time, as Convex's `internal.*` are.
//!
//! ```no_run
//! # async fn run(client: keel::client::HttpClient) -> Result<(), keel::client::ClientError> {
//! use keel_posts::api;
//! use keel_posts::functions::posts::CreateArgs;
//!
//! let id = client
//!     .with_auth("eyJ…")
//!     .mutation(api::posts::CREATE, CreateArgs {
//!         title: "Hello".into(),
//!         body: "First post".into(),
//!         image_id: None,
//!     })
//!     .await?;
//! # let _: String = id; Ok(()) }
//! ```

/// `posts:*`.
pub mod posts {
    use keel::protocol::{ActionRef, InternalMutationRef, MutationRef, QueryRef};
    use keel_values::PaginationResult;

    use crate::functions::posts::{
        CreateArgs, IdArgs, ImportArgs, ListArgs, NewestArgs, PageArgs, PostView, Publish,
        PublishLaterArgs,
    };

    /// Newest posts first, at most `limit` (signed-in callers only).
    pub const LIST: QueryRef<ListArgs, Vec<PostView>> = QueryRef::new("posts:list");
    /// One page of posts, newest first (`usePaginatedQuery`'s shape).
    pub const PAGE: QueryRef<PageArgs, PaginationResult<PostView>> = QueryRef::new("posts:page");
    /// The newest posts as a page that an open view keeps bounded (the first page of `/posts`).
    pub const NEWEST: QueryRef<NewestArgs, PaginationResult<PostView>> =
        QueryRef::new("posts:newest");
    /// One post, or `None` when there is none with this id.
    pub const GET: QueryRef<IdArgs, Option<PostView>> = QueryRef::new("posts:get");
    /// Creates a post by the caller; returns its id.
    pub const CREATE: MutationRef<CreateArgs, String> = MutationRef::new("posts:create");
    /// Deletes a post (its author only).
    pub const REMOVE: MutationRef<IdArgs, ()> = MutationRef::new("posts:remove");
    /// Schedules the caller's post to be published later; returns the scheduled function's id.
    pub const PUBLISH_LATER: MutationRef<PublishLaterArgs, String> =
        MutationRef::new("posts:publishLater");
    /// Creates a post for the author in its arguments (internal: the scheduler runs it).
    pub const PUBLISH: InternalMutationRef<Publish, String> =
        InternalMutationRef::new("posts:publish");
    /// Creates `count` sample posts as the caller; returns how many.
    pub const IMPORT_SAMPLE: ActionRef<ImportArgs, u32> = ActionRef::new("posts:importSample");
}

/// `users:*`.
pub mod users {
    use keel::protocol::{MutationRef, QueryRef};

    use keel::protocol::InternalMutationRef;

    use crate::functions::users::{ClerkUser, ClerkUserId, Me, NoArgs};

    /// The caller, or `None` when signed out.
    pub const ME: QueryRef<NoArgs, Option<Me>> = QueryRef::new("users:me");
    /// Inserts or updates the caller in `users`; returns the document id.
    pub const STORE: MutationRef<NoArgs, String> = MutationRef::new("users:store");
    /// Inserts or updates a user a webhook describes (internal: the webhook action runs it).
    pub const UPSERT_FROM_CLERK: InternalMutationRef<ClerkUser, String> =
        InternalMutationRef::new("users:upsertFromClerk");
    /// Deletes the user a `user.deleted` webhook names (internal); returns how many documents.
    pub const DELETE_FROM_CLERK: InternalMutationRef<ClerkUserId, u32> =
        InternalMutationRef::new("users:deleteFromClerk");
}

/// `files:*`.
pub mod files {
    use keel::protocol::{InternalMutationRef, MutationRef};

    use crate::functions::files::SweepArgs;
    use crate::functions::users::NoArgs;

    /// A single-use upload URL for a post's image (signed-in callers only).
    pub const GENERATE_UPLOAD_URL: MutationRef<NoArgs, String> =
        MutationRef::new("files:generateUploadUrl");
    /// Deletes the files no post shows that are older than `olderThanMs` (internal: a daily
    /// cron runs it); returns how many.
    pub const SWEEP: InternalMutationRef<SweepArgs, u32> = InternalMutationRef::new("files:sweep");
}

/// `stats:*`.
pub mod stats {
    use keel::protocol::InternalMutationRef;

    use crate::functions::users::NoArgs;

    /// Records the number of posts (internal: an hourly cron runs it); returns it.
    pub const RECORD: InternalMutationRef<NoArgs, f64> = InternalMutationRef::new("stats:record");
}

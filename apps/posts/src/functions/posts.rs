//! `posts:list`, `posts:page`, `posts:newest`, `posts:get`, `posts:create`, `posts:remove`,
//! `posts:importSample`, `posts:publishLater` and the internal `posts:publish` it schedules.
//!
//! A post may carry an image: `imageId`, the storage id of an image uploaded through
//! `files:generateUploadUrl`; the queries return it with its `imageUrl` ([`with_image_url`]).

use std::time::Duration;

use keel::{Doc, Table};
use keel_backend::{ActionCtx, FunctionError, MutationCtx, QueryCtx, StorageReader};
use keel_db::{Order, PaginationOptions, PaginationResult};
use keel_values::obj;
use serde::{Deserialize, Serialize};

use super::require_user;
use crate::api;

/// A document of `posts`. The queries return it with `_id`, `_creationTime` and, when it shows an
/// image that is still stored, `imageUrl` ([`with_image_url`]).
#[derive(Clone, Debug, Serialize, Deserialize, Table)]
#[serde(rename_all = "camelCase")]
#[keel(table = "posts", index(by_author = [author_id]), index(by_image = [image_id]))]
pub struct Post {
    /// The title, trimmed, 1 to 200 characters.
    pub title: String,
    /// The body, at most 10,000 characters.
    pub body: String,
    /// The author's `tokenIdentifier`.
    pub author_id: String,
    /// The name the post shows for its author.
    pub author_name: String,
    /// The storage id of the post's image (an uploaded `image/*` file), if any.
    pub image_id: Option<String>,
}

/// Longest title, in characters.
const MAX_TITLE_CHARS: usize = 200;
/// Longest body, in characters.
const MAX_BODY_CHARS: usize = 10_000;
/// Posts returned by `posts:list` when no limit is given.
const DEFAULT_LIST_LIMIT: u32 = 50;
/// Most posts `posts:importSample` creates in one call.
const MAX_IMPORT: u32 = 100;

/// Arguments of `posts:list`.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct ListArgs {
    /// At most this many posts (50 when not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// Newest posts first, at most `limit`; signed-in users only. It asks only whether the caller
/// is signed in, so every signed-in caller shares one result (one execution per change).
pub(super) async fn list(ctx: QueryCtx, args: ListArgs) -> Result<Vec<PostView>, FunctionError> {
    ctx.auth().require_signed_in()?;
    let limit = args.limit.unwrap_or(DEFAULT_LIST_LIMIT) as usize;
    let posts = ctx
        .db()
        .table::<Post>()
        .query()
        .order(Order::Desc)
        .take(limit)
        .await?;
    let mut listed = Vec::with_capacity(posts.len());
    for post in &posts {
        listed.push(with_image_url(&ctx.storage(), post).await?);
    }
    // A function log line: the official clients print it to the console in development
    // (`[CONVEX Q(posts:list)] [LOG] 'listed 3 posts'`), and the execution log keeps it.
    ctx.log(format!("listed {} posts", listed.len()));
    Ok(listed)
}

/// A post as the queries return it: its document, plus `imageUrl` (the URL its image is served
/// at) when it has an image that is still stored.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PostView {
    /// The post's id.
    #[serde(rename = "_id")]
    pub id: String,
    /// When the post was created (milliseconds since the Unix epoch).
    #[serde(rename = "_creationTime")]
    pub creation_time: f64,
    /// The title.
    pub title: String,
    /// The text.
    pub body: String,
    /// The author's token identifier.
    pub author_id: String,
    /// The name the post shows for its author.
    pub author_name: String,
    /// The storage id of the post's image, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// Where the post's image is served, if it has one that is still stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
}

/// A post as the queries return it ([`PostView`]). Every query returning posts goes through
/// this, so they agree on the shape.
pub async fn with_image_url(
    storage: &StorageReader,
    post: &Doc<Post>,
) -> Result<PostView, FunctionError> {
    let image_url = match &post.image_id {
        Some(image_id) => storage.get_url(image_id).await?,
        None => None,
    };
    Ok(PostView {
        id: post.id.to_string(),
        creation_time: post.creation_time,
        title: post.title.clone(),
        body: post.body.clone(),
        author_id: post.author_id.clone(),
        author_name: post.author_name.clone(),
        image_id: post.image_id.clone(),
        image_url,
    })
}

/// A page of posts as the queries return it: each post through [`with_image_url`], the
/// page's cursors and status as they are.
async fn shown_page(
    storage: &StorageReader,
    page: PaginationResult<Doc<Post>>,
) -> Result<PaginationResult<PostView>, FunctionError> {
    let mut posts = Vec::with_capacity(page.page.len());
    for post in &page.page {
        posts.push(with_image_url(storage, post).await?);
    }
    Ok(PaginationResult {
        page: posts,
        is_done: page.is_done,
        continue_cursor: page.continue_cursor,
        split_cursor: page.split_cursor,
        page_status: page.page_status,
    })
}

/// Arguments of `posts:page`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PageArgs {
    /// Which page (`paginationOpts`, as `usePaginatedQuery` sends it).
    pub pagination_opts: PaginationOptions,
}

/// One page of posts, newest first (Convex's `paginate` with `paginationOpts`, so that
/// `usePaginatedQuery` lists them); signed-in users only, like the list (and, like it, one
/// result shared by every signed-in caller).
pub(super) async fn page(
    ctx: QueryCtx,
    args: PageArgs,
) -> Result<PaginationResult<PostView>, FunctionError> {
    ctx.auth().require_signed_in()?;
    let page = ctx
        .db()
        .table::<Post>()
        .query()
        .order(Order::Desc)
        .paginate(args.pagination_opts)
        .await?;
    shown_page(&ctx.storage(), page).await
}

/// Most posts `posts:newest` lists.
const MAX_NEWEST: u32 = 100;

/// Arguments of `posts:newest`.
#[derive(Debug, Deserialize, Serialize)]
pub struct NewestArgs {
    /// How many posts (1 to 100).
    pub count: u32,
}

/// The `count` newest posts as a page (its `continueCursor` continues with `posts:page`);
/// signed-in users only. A subscription keeps the page whole as posts arrive until it holds
/// twice `count`, then starts over with the newest `count` ([`paginate_window`]): an open
/// `/posts` shows new posts on top without growing for as long as it stays open.
///
/// [`paginate_window`]: keel_backend::QueryBuilder::paginate_window
pub(super) async fn newest(
    ctx: QueryCtx,
    args: NewestArgs,
) -> Result<PaginationResult<PostView>, FunctionError> {
    ctx.auth().require_signed_in()?;
    if !(1..=MAX_NEWEST).contains(&args.count) {
        return Err(invalid(
            "count",
            format!("count must be 1 to {MAX_NEWEST}, not {}", args.count),
        ));
    }
    let count = args.count as usize;
    let page = ctx
        .db()
        .table::<Post>()
        .query()
        .order(Order::Desc)
        .paginate_window(PaginationOptions::first(count), 2 * count)
        .await?;
    shown_page(&ctx.storage(), page).await
}

/// Arguments naming one post (`posts:get`, `posts:remove`).
#[derive(Debug, Deserialize, Serialize)]
pub struct IdArgs {
    /// The post's id.
    pub id: String,
}

/// One post, or `null` when there is none with this id; signed-in users only, like the list.
pub(super) async fn get(ctx: QueryCtx, args: IdArgs) -> Result<Option<PostView>, FunctionError> {
    ctx.auth().require_signed_in()?;
    let posts = ctx.db().table::<Post>();
    let Some(id) = posts.normalize_id(&args.id).await else {
        return Ok(None);
    };
    match posts.get(id).await? {
        Some(post) => with_image_url(&ctx.storage(), &post).await.map(Some),
        None => Ok(None),
    }
}

/// Arguments of `posts:create`.
#[derive(Debug, Deserialize, Serialize)]
pub struct CreateArgs {
    /// The title (1 to 200 characters once trimmed).
    pub title: String,
    /// The text (at most 10,000 characters).
    pub body: String,
    /// The storage id of the post's image (an uploaded `image/*` file), if any.
    #[serde(rename = "imageId", default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
}

fn invalid(field: &str, message: String) -> FunctionError {
    FunctionError::convex(
        message,
        obj! { "code" => "INVALID_ARGUMENT", "field" => field },
    )
}

/// Creates a post by the caller; returns its id.
pub(super) async fn create(ctx: MutationCtx, args: CreateArgs) -> Result<String, FunctionError> {
    let user = require_user(ctx.auth())?;
    let title = check_post(&args.title, &args.body)?;
    if let Some(image_id) = &args.image_id {
        // An id that is no storage id, a file that is gone, or one that is not an image.
        let image = ctx.storage().get_metadata(image_id).await.ok().flatten();
        let is_image = image
            .as_ref()
            .and_then(|file| file.content_type.as_deref())
            .is_some_and(|t| t.starts_with("image/"));
        if !is_image {
            return Err(invalid(
                "imageId",
                "imageId must be the storage id of an uploaded image".to_owned(),
            ));
        }
    }
    let post = Post {
        title: title.to_owned(),
        body: args.body.clone(),
        author_id: user.token_identifier().to_owned(),
        author_name: author_name(user),
        image_id: args.image_id,
    };
    Ok(ctx.db().table::<Post>().insert(&post).await?.to_string())
}

/// The post's title, trimmed, once the title and the body are within their limits.
fn check_post<'a>(title: &'a str, body: &str) -> Result<&'a str, FunctionError> {
    let title = title.trim();
    let title_chars = title.chars().count();
    if title_chars == 0 || title_chars > MAX_TITLE_CHARS {
        return Err(invalid(
            "title",
            format!("title must be 1 to {MAX_TITLE_CHARS} characters, got {title_chars}"),
        ));
    }
    let body_chars = body.chars().count();
    if body_chars > MAX_BODY_CHARS {
        return Err(invalid(
            "body",
            format!("body must be at most {MAX_BODY_CHARS} characters, got {body_chars}"),
        ));
    }
    Ok(title)
}

/// The name a post shows for its author.
fn author_name(user: &keel_auth::UserIdentity) -> String {
    user.attributes
        .name
        .clone()
        .or_else(|| user.attributes.email.clone())
        .unwrap_or_else(|| "Anonymous".into())
}

/// Longest `posts:publishLater` delay: 30 days.
const MAX_PUBLISH_DELAY_MS: f64 = 30.0 * 24.0 * 3600.0 * 1000.0;

/// Arguments of `posts:publishLater`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishLaterArgs {
    /// The title.
    pub title: String,
    /// The text.
    pub body: String,
    /// How long to wait, in milliseconds (at most 30 days).
    pub delay_ms: f64,
}

/// A post to publish and its author (scheduled functions run without the caller's identity, so
/// `posts:publishLater` passes the author to `posts:publish` in its arguments).
#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Publish {
    /// The title.
    pub title: String,
    /// The text.
    pub body: String,
    /// The author's token identifier.
    pub author_id: String,
    /// The name the post shows for its author.
    pub author_name: String,
}

/// Schedules the caller's post to be published (by `posts:publish`) after `delayMs`; returns
/// the scheduled function's id (a document of `_scheduled_functions`).
pub(super) async fn publish_later(
    ctx: MutationCtx,
    args: PublishLaterArgs,
) -> Result<String, FunctionError> {
    let user = require_user(ctx.auth())?;
    let delay = args.delay_ms;
    if !(0.0..=MAX_PUBLISH_DELAY_MS).contains(&delay) {
        return Err(invalid(
            "delayMs",
            format!("delayMs must be 0 to {MAX_PUBLISH_DELAY_MS} (30 days), got {delay}"),
        ));
    }
    let publish = Publish {
        title: check_post(&args.title, &args.body)?.to_owned(),
        body: args.body,
        author_id: user.token_identifier().to_owned(),
        author_name: author_name(user),
    };
    let delay = Duration::from_secs_f64(delay / 1e3);
    let id = ctx
        .scheduler()
        .run_after(delay, api::posts::PUBLISH, publish)
        .await?;
    Ok(id.to_string())
}

/// Creates a post for the author named in the arguments (internal: only the scheduler calls
/// it, on behalf of `posts:publishLater`'s caller).
pub(super) async fn publish(ctx: MutationCtx, post: Publish) -> Result<String, FunctionError> {
    let post = Post {
        title: post.title,
        body: post.body,
        author_id: post.author_id,
        author_name: post.author_name,
        image_id: None,
    };
    Ok(ctx.db().table::<Post>().insert(&post).await?.to_string())
}

/// Deletes a post; only its author may.
pub(super) async fn remove(ctx: MutationCtx, args: IdArgs) -> Result<(), FunctionError> {
    let user = require_user(ctx.auth())?;
    let not_found = || FunctionError::convex("Post not found", obj! { "code" => "NOT_FOUND" });
    let posts = ctx.db().table::<Post>();
    let id = posts.normalize_id(&args.id).await.ok_or_else(not_found)?;
    let post = posts.get(id).await?.ok_or_else(not_found)?;
    if post.author_id != user.token_identifier() {
        return Err(FunctionError::convex(
            "Only the author may delete a post",
            obj! { "code" => "FORBIDDEN" },
        ));
    }
    posts.delete(id).await?;
    // Its image goes with it, unless another post shows the same file.
    if let Some(image_id) = &post.image_id {
        let shown_elsewhere = posts
            .query()
            .with_index(Post::by_image, |q| q.eq(Some(image_id.clone())))
            .first()
            .await?
            .is_some();
        if !shown_elsewhere && ctx.storage().get_metadata(image_id).await?.is_some() {
            ctx.storage().delete(image_id).await?;
        }
    }
    Ok(())
}

/// Arguments of `posts:importSample`.
#[derive(Debug, Deserialize, Serialize)]
pub struct ImportArgs {
    /// How many sample posts to create (at most 100).
    pub count: u32,
}

/// Creates `count` sample posts through `posts:create`, as the caller; returns how many.
pub(super) async fn import_sample(ctx: ActionCtx, args: ImportArgs) -> Result<u32, FunctionError> {
    if args.count > MAX_IMPORT {
        return Err(invalid(
            "count",
            format!("count must be at most {MAX_IMPORT}, got {}", args.count),
        ));
    }
    for n in 1..=args.count {
        let post = CreateArgs {
            title: format!("Sample post {n}"),
            body: format!("This is sample post number {n}, imported by an action."),
            image_id: None,
        };
        ctx.run_mutation(api::posts::CREATE, post).await?;
    }
    Ok(args.count)
}

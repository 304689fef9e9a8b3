//! `posts:list`, `posts:page`, `posts:get`, `posts:create`, `posts:remove`,
//! `posts:importSample`.

use keel_backend::{ActionCtx, FunctionError, MutationCtx, QueryCtx};
use keel_db::{Order, PaginationOptions, PaginationResult};
use keel_values::{Object, Value, obj};
use serde::{Deserialize, Serialize};

use super::require_user;

/// Longest title, in characters.
const MAX_TITLE_CHARS: usize = 200;
/// Longest body, in characters.
const MAX_BODY_CHARS: usize = 10_000;
/// Posts returned by `posts:list` when no limit is given.
const DEFAULT_LIST_LIMIT: u32 = 50;
/// Most posts `posts:importSample` creates in one call.
const MAX_IMPORT: u32 = 100;

#[derive(Deserialize)]
pub(super) struct ListArgs {
    limit: Option<u32>,
}

/// Newest posts first, at most `limit`; signed-in users only.
pub(super) async fn list(ctx: QueryCtx, args: ListArgs) -> Result<Vec<Value>, FunctionError> {
    require_user(ctx.auth())?;
    let limit = args.limit.unwrap_or(DEFAULT_LIST_LIMIT) as usize;
    let posts = ctx
        .db()
        .query("posts")
        .order(Order::Desc)
        .take(limit)
        .await?;
    Ok(posts.iter().map(|p| p.to_value()).collect())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PageArgs {
    pagination_opts: PaginationOptions,
}

/// One page of posts, newest first (Convex's `paginate` with `paginationOpts`, so that
/// `usePaginatedQuery` lists them); signed-in users only, like the list.
pub(super) async fn page(
    ctx: QueryCtx,
    args: PageArgs,
) -> Result<PaginationResult<Value>, FunctionError> {
    require_user(ctx.auth())?;
    let page = ctx
        .db()
        .query("posts")
        .order(Order::Desc)
        .paginate(args.pagination_opts)
        .await?;
    Ok(page.map(|post| post.to_value()))
}

#[derive(Deserialize)]
pub(super) struct IdArgs {
    id: String,
}

/// One post, or `null` when there is none with this id; signed-in users only, like the list.
pub(super) async fn get(ctx: QueryCtx, args: IdArgs) -> Result<Value, FunctionError> {
    require_user(ctx.auth())?;
    let Some(id) = ctx.db().normalize_id("posts", &args.id).await else {
        return Ok(Value::Null);
    };
    Ok(ctx
        .db()
        .get(id)
        .await?
        .map_or(Value::Null, |p| p.to_value()))
}

#[derive(Deserialize, Serialize)]
pub(super) struct CreateArgs {
    title: String,
    body: String,
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
    let title = args.title.trim();
    let title_chars = title.chars().count();
    if title_chars == 0 || title_chars > MAX_TITLE_CHARS {
        return Err(invalid(
            "title",
            format!("title must be 1 to {MAX_TITLE_CHARS} characters, got {title_chars}"),
        ));
    }
    let body_chars = args.body.chars().count();
    if body_chars > MAX_BODY_CHARS {
        return Err(invalid(
            "body",
            format!("body must be at most {MAX_BODY_CHARS} characters, got {body_chars}"),
        ));
    }
    let author_name = user
        .attributes
        .name
        .clone()
        .or_else(|| user.attributes.email.clone())
        .unwrap_or_else(|| "Anonymous".into());
    let mut fields = Object::new();
    fields.insert("title".into(), title.into());
    fields.insert("body".into(), args.body.as_str().into());
    fields.insert("authorId".into(), user.token_identifier().into());
    fields.insert("authorName".into(), author_name.into());
    Ok(ctx.db().insert("posts", fields).await?.to_string())
}

/// Deletes a post; only its author may.
pub(super) async fn remove(ctx: MutationCtx, args: IdArgs) -> Result<Value, FunctionError> {
    let user = require_user(ctx.auth())?;
    let not_found = || FunctionError::convex("Post not found", obj! { "code" => "NOT_FOUND" });
    let id = ctx
        .db()
        .normalize_id("posts", &args.id)
        .await
        .ok_or_else(not_found)?;
    let post = ctx.db().get(id).await?.ok_or_else(not_found)?;
    if post.fields.get("authorId").and_then(Value::as_str) != Some(user.token_identifier()) {
        return Err(FunctionError::convex(
            "Only the author may delete a post",
            obj! { "code" => "FORBIDDEN" },
        ));
    }
    ctx.db().delete(id).await?;
    Ok(Value::Null)
}

#[derive(Deserialize)]
pub(super) struct ImportArgs {
    count: u32,
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
        };
        let _: String = ctx.run_mutation("posts:create", &post).await?;
    }
    Ok(args.count)
}

//! `/posts` (signed-in visitors only) and `/posts/{id}`.
//!
//! `/posts` lists the newest posts (`posts:newest`: new ones appear on top while the page is
//! open, and it stays bounded however long it stays open) and further pages (`posts:page`),
//! with a "Load more" link
//! that works without JavaScript: `/posts?until=<cursor>` shows every post up to `cursor` (the
//! end of the last page shown, pinned, so the posts already on screen stay there) and one more
//! page after it. Both pages are queries of the page, so the live layer keeps them current, as
//! `usePaginatedQuery` keeps its pages subscribed.

use keel_start::auth_ui::{SignInMode, sign_in_button};
use keel_start::{Head, Match, Route, RouteContext, RouteError, server_fn_path};
use keel_values::{PaginationOptions, PaginationResult};
use maud::{Markup, html};

use crate::api;
use crate::functions::posts::{IdArgs, NewestArgs, PageArgs};
use crate::functions::users::NoArgs;
use crate::functions::{Me, PostView as Post};

/// Posts per page of `/posts`, and per "Load more".
const PAGE_SIZE: usize = 10;

/// What the posts index shows.
struct PostList {
    posts: Vec<Post>,
    /// How many of `posts` were on screen before the last "Load more" (where the new page
    /// starts).
    earlier: usize,
    /// The cursor of the next "Load more", if there are more posts.
    more: Option<String>,
    me: Option<Me>,
}

/// One page of `posts:page`.
async fn posts_page(
    ctx: &RouteContext,
    opts: PaginationOptions,
) -> Result<PaginationResult<Post>, RouteError> {
    ctx.query(
        api::posts::PAGE,
        PageArgs {
            pagination_opts: opts,
        },
    )
    .await
}

/// The posts up to `until` (all the pages shown so far, ending where the last one ended) and
/// the page after it; without `until`, the first page.
async fn load_pages(
    ctx: &RouteContext,
    until: Option<String>,
) -> Result<(Vec<Post>, usize, Option<String>), RouteError> {
    let Some(until) = until else {
        // The newest page: kept bounded while the page stays open (`posts:newest`).
        let first = ctx
            .query(
                api::posts::NEWEST,
                NewestArgs {
                    count: PAGE_SIZE as u32,
                },
            )
            .await?;
        let more = (!first.is_done).then_some(first.continue_cursor);
        return Ok((first.page, 0, more));
    };
    let shown = PaginationOptions {
        num_items: PAGE_SIZE,
        end_cursor: Some(until.clone()),
        ..PaginationOptions::default()
    };
    let (shown, next) = futures::try_join!(
        posts_page(ctx, shown),
        posts_page(ctx, PaginationOptions::after(until, PAGE_SIZE)),
    )?;
    let earlier = shown.page.len();
    let more = (!next.is_done).then_some(next.continue_cursor);
    Ok(([shown.page, next.page].concat(), earlier, more))
}

pub(super) fn route() -> Route {
    Route::new("posts")
        .head(|_| Head::new().title("Posts"))
        .component(|m, outlet| {
            if m.context().auth().is_signed_in() {
                html! { div class="p-2" { (outlet) } }
            } else {
                sign_in_prompt(m)
            }
        })
        .child(
            Route::new("")
                .loader(|ctx| async move {
                    if !ctx.auth().is_signed_in() {
                        return Ok(None);
                    }
                    let until = ctx.search_param("until");
                    let resets = until.is_some();
                    let (pages, me) = futures::try_join!(
                        load_pages(&ctx, until),
                        ctx.query(api::users::ME, NoArgs {}),
                    )
                    .map_err(|error| match error {
                        // A cursor that is not one of this list (edited, or from an older
                        // version): start the list over, as usePaginatedQuery does.
                        RouteError::Internal(detail)
                            if resets && detail.contains("InvalidCursor") =>
                        {
                            RouteError::redirect("/posts")
                        }
                        other => other,
                    })?;
                    let (posts, earlier, more) = pages;
                    Ok(Some(PostList {
                        posts,
                        earlier,
                        more,
                        me,
                    }))
                })
                .component(|m, _| post_list(m)),
        )
        .child(
            Route::new("{id}")
                .loader(|ctx| async move {
                    if !ctx.auth().is_signed_in() {
                        return Ok(None);
                    }
                    let id = ctx.param("id").unwrap_or_default().to_owned();
                    match ctx.query(api::posts::GET, IdArgs { id }).await? {
                        Some(post) => Ok(Some(post)),
                        None => Err(RouteError::NotFound),
                    }
                })
                .head(|m| match m.data::<Option<Post>>() {
                    Some(Some(post)) => Head::new().title(post.title.clone()),
                    _ => Head::new(),
                })
                .component(|m, _| post_detail(m)),
        )
}

fn sign_in_prompt(m: &Match) -> Markup {
    html! {
        div class="p-2 keel-sign-in-prompt" {
            h3 { "Sign in to see the posts" }
            p { (sign_in_button(SignInMode::Modal, m.context().path_and_query())) " or "
                a href="/sign-up?redirect_url=%2Fposts" { "create an account" } "." }
        }
    }
}

fn post_list(m: &Match) -> Markup {
    let Some(Some(list)) = m.data::<Option<PostList>>() else {
        return html! {};
    };
    let mine = list.me.as_ref().map(|me| me.token_identifier.as_str());
    let error = m.context().search_param("error");
    html! {
        h3 { "Posts" }
        @if let Some(error) = &error { p class="keel-form-error" role="alert" { (error) } }
        form class="keel-form" method="post" action=(server_fn_path("posts/create"))
            enctype="multipart/form-data" {
            input type="text" name="title" placeholder="Title" maxlength="200" required;
            textarea name="body" placeholder="Write something" rows="3" {}
            label { "Image (optional) " input type="file" name="image" accept="image/*"; }
            button type="submit" { "Create post" }
        }
        form method="post" action=(server_fn_path("posts/importSample")) {
            button type="submit" { "Import 5 sample posts" }
        }
        @if list.posts.is_empty() {
            p class="empty" { "No posts yet." }
        } @else {
            ul class="posts" {
                @for (n, post) in list.posts.iter().enumerate() {
                    // "Load more" leads here: the first post of the page it loaded.
                    li data-post-id=(post.id) id=[(n == list.earlier && n > 0).then_some("more")] {
                        a href={ "/posts/" (post.id) } { (post.title) }
                        " by " (post.author_name)
                        @if Some(post.author_id.as_str()) == mine {
                            " "
                            form.inline method="post" action=(server_fn_path("posts/remove")) {
                                input type="hidden" name="id" value=(post.id);
                                button type="submit" { "Delete" }
                            }
                        }
                    }
                }
            }
            @if let Some(cursor) = &list.more {
                // A plain link: without JavaScript the browser loads the longer list and jumps to
                // its new page; with the runtime it is morphed in where the reader is.
                p { a class="load-more" data-keel-scroll="keep"
                    href={ "/posts?until=" (cursor) "#more" } { "Load more" } }
            }
        }
    }
}

fn post_detail(m: &Match) -> Markup {
    let Some(Some(post)) = m.data::<Option<Post>>() else {
        return html! {};
    };
    html! {
        article class="post" {
            h4 { (post.title) }
            p class="byline" { "by " (post.author_name) }
            @if let Some(url) = &post.image_url {
                img class="post-image" src=(url) alt={ "Image of " (post.title) };
            }
            div { (post.body) }
            p { a href="/posts" { "← All posts" } }
        }
    }
}

//! `/posts` (signed-in visitors only) and `/posts/{id}`.

use keel_start::auth_ui::{SignInMode, sign_in_button};
use keel_start::{Head, Match, Route, RouteError, server_fn_path};
use maud::{Markup, html};
use serde::Deserialize;

use super::root::Me;

/// A post as `posts:list` / `posts:get` return it.
#[derive(Clone, Debug, Deserialize)]
pub(super) struct Post {
    #[serde(rename = "_id")]
    id: String,
    title: String,
    body: String,
    #[serde(rename = "authorId")]
    author_id: String,
    #[serde(rename = "authorName")]
    author_name: String,
    /// Where the post's image is served (on the backend), if it has one.
    #[serde(rename = "imageUrl", default)]
    image_url: Option<String>,
}

/// What the posts index shows.
struct PostList {
    posts: Vec<Post>,
    me: Option<Me>,
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
                    let (posts, me) = futures::try_join!(
                        ctx.query::<Vec<Post>>("posts:list", serde_json::json!({})),
                        ctx.query::<Option<Me>>("users:me", serde_json::json!({})),
                    )?;
                    Ok(Some(PostList { posts, me }))
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
                    match ctx
                        .query::<Option<Post>>("posts:get", serde_json::json!({ "id": id }))
                        .await?
                    {
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
                @for post in &list.posts {
                    li data-post-id=(post.id) {
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

//! SSR cost of the framework: a page with loader data (50 posts) through the whole
//! `keel_start` pipeline (matching, before_load, parallel loaders, head merge, nested
//! components, document shell, per-request context) against a plain axum handler rendering the
//! same HTML with maud directly, both driven with `tower::ServiceExt::oneshot` in one process.
//! No backend: the loader's data is in memory, so this measures the framework alone.
//!
//! Run with `cargo bench -p keel-start --bench ssr`.

use std::sync::Arc;

use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use keel_start::{ContextAdditions, Head, Meta, Route, Start, StartConfig};
use maud::{DOCTYPE, Markup, html};
use tower::ServiceExt;

#[derive(Clone)]
struct Post {
    id: String,
    title: String,
    author: String,
}

fn posts() -> Arc<Vec<Post>> {
    Arc::new(
        (0..50)
            .map(|i| Post {
                id: format!("k57{i:029}"),
                title: format!("Post number {i} <with> \"escaping\""),
                author: "Ada Lovelace".to_owned(),
            })
            .collect(),
    )
}

fn nav() -> Markup {
    html! {
        div class="p-2 flex gap-2 text-lg" {
            a href="/" { "Home" } " " a href="/posts" class="font-bold" { "Posts" }
        }
        hr;
    }
}

fn list(posts: &[Post]) -> Markup {
    html! {
        ul class="posts" {
            @for post in posts {
                li data-post-id=(post.id) { a href={ "/posts/" (post.id) } { (post.title) } " by " (post.author) }
            }
        }
    }
}

fn keel_app(data: Arc<Vec<Post>>) -> axum::Router {
    let root = Route::root()
        .head(|_| Head::document_defaults().title("Keel"))
        .before_load(|_ctx| async { Ok(ContextAdditions::new().with(7_u32)) })
        .component(|_, outlet| html! { (nav()) (outlet) })
        .child(
            Route::new("posts")
                .head(|_| {
                    Head::new()
                        .title("Posts")
                        .meta(Meta::name("description", "All posts"))
                })
                .component(|_, outlet| html! { div class="p-2" { (outlet) } })
                .child(
                    Route::new("")
                        .loader(move |_ctx| {
                            let data = data.clone();
                            async move { Ok(data) }
                        })
                        .component(|m, _| {
                            list(m.data::<Arc<Vec<Post>>>().map_or(&[][..], |p| &p[..]))
                        }),
                ),
        );
    Start::new(StartConfig::new("http://127.0.0.1:9"), root)
        .into_router()
        .unwrap()
}

fn plain_app(data: Arc<Vec<Post>>) -> axum::Router {
    axum::Router::new().route(
        "/posts",
        get(move || {
            let data = data.clone();
            async move {
                html! {
                    (DOCTYPE)
                    html lang="en" {
                        head {
                            meta charset="utf-8";
                            meta name="viewport" content="width=device-width, initial-scale=1";
                            meta name="description" content="All posts";
                            title { "Posts" }
                            link rel="stylesheet" href="/_keel/app.css";
                            link rel="icon" href="/favicon.ico";
                            script type="module" src="/_keel/runtime.js" {}
                        }
                        body { (nav()) div class="p-2" { (list(&data)) } }
                    }
                }
            }
        }),
    )
}

async fn render(app: &axum::Router) -> usize {
    let response = app
        .clone()
        .oneshot(Request::get("/posts").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert!(response.status().is_success());
    axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap()
        .len()
}

fn ssr(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let data = posts();
    let (keel, plain) = runtime.block_on(async { (keel_app(data.clone()), plain_app(data)) });
    let mut group = c.benchmark_group("ssr_posts_page");
    group.bench_function("plain axum + maud (baseline)", |b| {
        b.to_async(&runtime).iter(|| render(&plain));
    });
    group.bench_function("keel_start pipeline", |b| {
        b.to_async(&runtime).iter(|| render(&keel));
    });
    group.finish();
}

criterion_group!(benches, ssr);
criterion_main!(benches);

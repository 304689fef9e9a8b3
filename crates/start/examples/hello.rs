//! Run with `cargo run -p keel-start --example hello`, then open http://127.0.0.1:3001.
//!
//! The smallest keel-start app: a root layout with a nav, an index page, a page with a path
//! parameter whose loader can raise not-found, and a server function behind a form. No backend
//! and no identity provider are needed (nothing here reads from the backend).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use keel_start::{Head, Route, RouteError, ServerFnResponse, Start, StartConfig, server_fn_path};
use maud::html;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let clicks = Arc::new(AtomicU64::new(0));
    let shown = clicks.clone();
    let root = Route::root()
        .head(|_| Head::document_defaults().title("Hello"))
        .component(|m, outlet| {
            html! {
                nav class="p-2 flex gap-2" {
                    a href="/" class=[m.is_active("/", true).then_some("font-bold")] { "Home" }
                    a href="/greet/world" class=[m.is_active("/greet", false).then_some("font-bold")] { "Greet" }
                }
                hr;
                main { (outlet) }
            }
        })
        .child(Route::new("").component(move |_, _| {
            html! {
                h1 { "Hello from keel-start" }
                p { "The button was pressed " (shown.load(Ordering::Relaxed)) " times." }
                form method="post" action=(server_fn_path("press")) { button { "Press" } }
            }
        }))
        .child(
            Route::new("greet/{name}")
                .loader(|ctx| async move {
                    match ctx.param("name") {
                        Some("nobody") | None => Err(RouteError::NotFound),
                        Some(name) => Ok(name.to_owned()),
                    }
                })
                .head(|m| Head::new().title(format!("Hello, {}", m.data::<String>().map_or("?", |s| s))))
                .component(|m, _| html! { h1 { "Hello, " (m.data::<String>().map_or("?", |s| s)) "!" } }),
        );
    let app = Start::new(StartConfig::new("http://127.0.0.1:3210"), root)
        .server_fn("press", move |_req| {
            let clicks = clicks.clone();
            async move {
                clicks.fetch_add(1, Ordering::Relaxed);
                Ok(ServerFnResponse::Redirect("/".to_owned()))
            }
        })
        .into_router()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3001").await?;
    tracing::info!("listening on http://127.0.0.1:3001");
    axum::serve(listener, app).await?;
    Ok(())
}

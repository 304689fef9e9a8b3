//! The router without sockets (`tower::ServiceExt::oneshot`): matching, params, nested
//! layouts, `before_load` order and context, parallel loaders, head merge, boundaries,
//! redirects, server functions with the same-origin check, and the crate's assets.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode, header};
use keel_start::{
    ContextAdditions, Head, Meta, Route, RouteError, ServerFnResponse, Start, StartConfig,
};
use maud::html;
use parking_lot::Mutex;
use tower::ServiceExt;

#[derive(Clone)]
struct Section(&'static str);

fn app(order: Arc<Mutex<Vec<&'static str>>>) -> axum::Router {
    app_with(order, StartConfig::new("http://127.0.0.1:9"))
}

fn app_with(order: Arc<Mutex<Vec<&'static str>>>, config: StartConfig) -> axum::Router {
    let (o1, o2) = (order.clone(), order.clone());
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let (b1, b2) = (barrier.clone(), barrier);
    let root = Route::root()
        .head(|_| Head::document_defaults().title("Site").meta(Meta::name("description", "root")))
        .before_load(move |_ctx| {
            let order = o1.clone();
            async move {
                order.lock().push("root");
                Ok(ContextAdditions::new().with(Section("root")))
            }
        })
        .component(|m, outlet| {
            html! {
                nav { a href="/" class=[m.is_active("/", true).then_some("font-bold")] { "Home" } }
                main { (outlet) }
            }
        })
        .child(Route::new("").component(|_, _| html! { h1 { "Welcome" } }))
        .child(
            Route::new("posts")
                .before_load(move |ctx| {
                    let order = o2.clone();
                    async move {
                        // The parent's addition is visible here.
                        assert_eq!(ctx.get::<Section>().map(|s| s.0), Some("root"));
                        order.lock().push("posts");
                        Ok(ContextAdditions::new().with(Section("posts")))
                    }
                })
                .loader(move |_ctx| {
                    let barrier = b1.clone();
                    async move {
                        barrier.wait().await;
                        Ok(3_usize)
                    }
                })
                .head(|_| Head::new().title("Posts").meta(Meta::name("description", "posts")))
                .component(|m, outlet| {
                    html! { section { "count=" (m.data::<usize>().copied().unwrap_or(0)) (outlet) } }
                })
                .child(
                    Route::new("{id}")
                        .loader(move |ctx| {
                            let barrier = b2.clone();
                            async move {
                                // Waits for the parent's loader: only passes if both run at once.
                                barrier.wait().await;
                                let section = ctx.get::<Section>().map(|s| s.0).unwrap_or("");
                                match ctx.param("id") {
                                    Some("missing") => Err(RouteError::NotFound),
                                    Some(id) => Ok(format!("{id} in {section}")),
                                    None => Err(RouteError::internal("no id")),
                                }
                            }
                        })
                        .head(|m| Head::new().title(m.data::<String>().cloned().unwrap_or_default()))
                        .component(|m, _| html! { p.post { (m.data::<String>().cloned().unwrap_or_default()) } }),
                ),
        )
        .child(
            Route::new("boom")
                .loader(|_ctx| async { Err::<(), _>(RouteError::internal("db password is hunter2")) })
                .component(|_, _| html! { "never" }),
        )
        .child(
            Route::new("old")
                .before_load(|_ctx| async { Err(RouteError::redirect("/posts/1")) })
                .component(|_, _| html! { "never" }),
        );
    Start::new(config, root)
        .server_fn("echo", |req| async move {
            let to = format!("/posts/{}", req.field("id").unwrap_or("none"));
            Ok(ServerFnResponse::Redirect(to))
        })
        .into_router()
        .expect("valid app")
}

async fn get(app: &axum::Router, path: &str) -> (StatusCode, http::HeaderMap, String) {
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        app.clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap()),
    )
    .await
    .expect("answers in time (loaders run in parallel)")
    .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn nested_layouts_params_context_and_head() {
    let order = Arc::new(Mutex::new(Vec::new()));
    let app = app(order.clone());
    let (status, headers, html) = get(&app, "/posts/abc").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert_eq!(*order.lock(), ["root", "posts"]);
    assert!(
        html.starts_with("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"),
        "{html}"
    );
    assert!(
        html.contains(r#"<meta name="viewport" content="width=device-width, initial-scale=1">"#)
    );
    assert!(html.contains(r#"<script type="module" src="/_keel/runtime.js"></script>"#));
    assert!(html.contains(r##"<link rel="manifest" href="/site.webmanifest" color="#ffffff">"##));
    // Root layout › posts layout (its loader data) › post (params + context from posts).
    assert!(
        html.contains("<main><section>count=3<p class=\"post\">abc in posts</p></section></main>"),
        "{html}"
    );
    // Deepest title wins; meta deduplicated by name with the deeper value.
    assert!(html.contains("<title>abc in posts</title>"));
    assert_eq!(html.matches("name=\"description\"").count(), 1);
    assert!(html.contains(r#"content="posts""#));
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    // Home is bold only on /.
    assert!(!html.contains("font-bold"));
    let (_, _, home) = get(&app, "/").await;
    assert!(home.contains(r#"class="font-bold""#) && home.contains("<h1>Welcome</h1>"));
}

#[tokio::test]
async fn unknown_paths_and_not_found_raised_by_loaders_are_404() {
    let app = app(Arc::default());
    for path in ["/nope", "/posts/missing", "/posts/a/b"] {
        let (status, _, html) = get(&app, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            html.contains("keel-not-found") && html.contains(r#"<a href="/">"#),
            "{html}"
        );
        // Inside the root layout.
        assert!(html.contains("<nav>"), "{path}: {html}");
        assert!(html.contains("<title>Not Found</title>"));
    }
}

#[tokio::test]
async fn failing_loader_renders_the_catch_boundary_without_internals() {
    let app = app(Arc::default());
    let (status, _, html) = get(&app, "/boom").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(html.contains("keel-catch-boundary"));
    assert!(
        html.contains("Something went wrong")
            && html.contains("Try again")
            && html.contains("Go back")
    );
    assert!(!html.contains("hunter2"), "{html}");
    assert!(html.contains("<nav>"), "the root layout still renders");
}

#[tokio::test]
async fn before_load_redirects() {
    let app = app(Arc::default());
    let (status, headers, _) = get(&app, "/old").await;
    assert_eq!(status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(headers[header::LOCATION], "/posts/1");
}

#[tokio::test]
async fn server_functions_answer_forms_and_refuse_cross_origin_posts() {
    let app = app(Arc::default());
    let post = |origin: Option<&str>| {
        let mut request = Request::post("/_keel/fn/echo")
            .header(header::HOST, "127.0.0.1:3000")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(origin) = origin {
            request = request.header(header::ORIGIN, origin);
        }
        request.body(Body::from("id=42")).unwrap()
    };
    let same = app
        .clone()
        .oneshot(post(Some("http://127.0.0.1:3000")))
        .await
        .unwrap();
    assert_eq!(same.status(), StatusCode::SEE_OTHER);
    assert_eq!(same.headers()[header::LOCATION], "/posts/42");
    let cross = app
        .clone()
        .oneshot(post(Some("http://evil.example")))
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    let fetch_site = Request::post("/_keel/fn/echo")
        .header("sec-fetch-site", "cross-site")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("id=1"))
        .unwrap();
    assert_eq!(
        app.clone().oneshot(fetch_site).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let (status, _, _) = get(&app, "/_keel/fn/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn assets_are_served() {
    let app = app(Arc::default());
    for (path, content_type, magic) in [
        ("/favicon.ico", "image/x-icon", &[0u8, 0, 1, 0][..]),
        ("/favicon-32x32.png", "image/png", b"\x89PNG"),
        ("/favicon-16x16.png", "image/png", b"\x89PNG"),
        ("/apple-touch-icon.png", "image/png", b"\x89PNG"),
        ("/favicon.svg", "image/svg+xml", b"<svg"),
        ("/site.webmanifest", "application/manifest+json", b"{"),
        ("/_keel/runtime.js", "text/javascript; charset=utf-8", b"//"),
        ("/_keel/app.css", "text/css; charset=utf-8", b"/*"),
    ] {
        let response = app
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            content_type,
            "{path}"
        );
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        assert!(bytes.starts_with(magic), "{path}");
    }
}

#[tokio::test]
async fn devtools_panel_only_when_enabled() {
    let (_, _, html) = get(&app(Arc::default()), "/posts/abc").await;
    assert!(!html.contains("keel-devtools"));
    let mut config = StartConfig::new("http://127.0.0.1:9");
    config.devtools = true;
    let app = app_with(Arc::default(), config);
    let (_, _, html) = get(&app, "/posts/abc").await;
    assert!(html.contains(r#"<details id="keel-devtools""#), "{html}");
    assert!(html.contains("/ › /posts › /posts/{id}"), "{html}");
    assert!(html.contains("<code>id=abc</code>"));
    assert!(html.contains("<b>/posts/{id}</b>") && html.contains("<li>/boom</li>"));
    assert!(html.contains("user: signed out"));
    assert!(
        html.contains("data-keel-devtools-live"),
        "live stream state slot"
    );
    let (_, _, html) = get(&app, "/boom").await;
    assert!(
        html.contains("failed: <code>/boom</code> (Internal)"),
        "{html}"
    );
}

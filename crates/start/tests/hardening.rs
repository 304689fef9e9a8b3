//! The router's defences without sockets (`tower::ServiceExt::oneshot`): server functions run
//! only with their declared method, redirects never leave the site unless the app wrote the URL
//! out, live streams re-render only pages of this site, and every answer carries the security
//! headers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use http::{Method, Request, StatusCode, header};
use keel_start::{
    ContentSecurityPolicy, Route, RouteError, ServerFnMethod, ServerFnResponse, Start, StartConfig,
};
use maud::html;
use tower::ServiceExt;

/// An app whose server functions count their calls.
fn app(config: StartConfig, calls: Arc<AtomicUsize>) -> axum::Router {
    let root = Route::root()
        .child(Route::new("").component(|_, _| html! { h1 { "Home" } }))
        .child(
            Route::new("boom")
                .loader(|_ctx| async { Err::<(), _>(RouteError::internal("down")) })
                .component(|_, _| html! { "never" }),
        )
        .child(
            Route::new("away")
                .before_load(|ctx| async move {
                    let to = ctx.search_param("to").unwrap_or_default();
                    Err(RouteError::redirect(to))
                })
                .component(|_, _| html! { "never" }),
        );
    let (c1, c2, c3) = (calls.clone(), calls.clone(), calls);
    Start::new(config, root)
        .server_fn("change", move |req| {
            let calls = c1.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                let to = req.field("to").unwrap_or("/").to_owned();
                Ok(ServerFnResponse::Redirect(to))
            }
        })
        .server_fn_with(ServerFnMethod::Get, "read", move |req| {
            let calls = c2.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(ServerFnResponse::Json(
                    req.field("q").unwrap_or_default().into(),
                ))
            }
        })
        .server_fn_with(ServerFnMethod::Get, "sneaky", move |req| {
            let calls = c3.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                // A read-only function may not get a client that mutates.
                req.authenticated_client().await?;
                Ok(ServerFnResponse::Json(serde_json::Value::Null))
            }
        })
        .into_router()
        .expect("valid app")
}

fn plain_app(calls: Arc<AtomicUsize>) -> axum::Router {
    app(StartConfig::new("http://127.0.0.1:9"), calls)
}

async fn send(app: &axum::Router, request: Request<Body>) -> http::Response<Body> {
    app.clone().oneshot(request).await.unwrap()
}

fn form(method: Method, uri: &str, body: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn server_functions_answer_their_declared_method_only() {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = plain_app(calls.clone());
    // A link to a function that changes data runs nothing.
    for uri in ["/_keel/fn/change?to=/x", "/_keel/fn/change"] {
        let response = send(&app, get(uri)).await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{uri}");
        assert_eq!(response.headers()[header::ALLOW], "POST");
    }
    let head = Request::head("/_keel/fn/change")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        send(&app, head).await.status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
    for method in [Method::PUT, Method::DELETE, Method::PATCH] {
        let response = send(&app, form(method.clone(), "/_keel/fn/change", "to=/x")).await;
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method}"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0, "nothing ran");
    let response = send(&app, form(Method::POST, "/_keel/fn/change", "to=/x")).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // A read-only function answers GET with its query-string fields, and only GET.
    let response = send(&app, get("/_keel/fn/read?q=hello")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap();
    assert_eq!(&body[..], b"\"hello\"");
    let response = send(&app, form(Method::POST, "/_keel/fn/read", "q=x")).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()[header::ALLOW], "GET, HEAD");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // ...and cannot get a client that changes data.
    let response = send(&app, get("/_keel/fn/sneaky")).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

/// `status` to `expected`, or — `None` — a 500 without a `Location`.
fn assert_redirect(
    response: &http::Response<Body>,
    status: StatusCode,
    expected: Option<&str>,
    to: &str,
) {
    match expected {
        Some(location) => {
            assert_eq!(response.status(), status, "{to}");
            assert_eq!(response.headers()[header::LOCATION], location, "{to}");
        }
        None => {
            assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR, "{to}");
            assert!(response.headers().get(header::LOCATION).is_none(), "{to}");
        }
    }
}

#[tokio::test]
async fn redirects_stay_on_the_site_unless_the_app_wrote_a_url() {
    let app = plain_app(Arc::default());
    for (to, expected) in [
        ("/posts/../x?y=1", Some("/x?y=1")),
        ("//evil.example", None),
        ("/%09/evil.example", None),
        ("https://evil.example/", None),
    ] {
        let body = format!("to={to}");
        let response = send(&app, form(Method::POST, "/_keel/fn/change", &body)).await;
        // A server function passing input through is a bug: refused, logged.
        assert_redirect(&response, StatusCode::SEE_OTHER, expected, to);
    }
    // A page may send the browser to a written-out URL, never to a disguised one.
    for (to, expected) in [
        ("%2Fposts", Some("/posts")),
        (
            "https%3A%2F%2Faccounts.example%2Fsign-in",
            Some("https://accounts.example/sign-in"),
        ),
        ("%2F%09%2Fevil.example", None),
        ("%2F%5Cevil.example", None),
        ("javascript%3Aalert(1)", None),
    ] {
        let response = send(&app, get(&format!("/away?to={to}"))).await;
        assert_redirect(&response, StatusCode::TEMPORARY_REDIRECT, expected, to);
    }
}

#[tokio::test]
async fn the_error_page_links_back_on_the_site_only() {
    let app = plain_app(Arc::default());
    for (path, again) in [("/boom?x=1", "/boom?x=1"), ("//boom", "/")] {
        let response = send(&app, get(path)).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let html = String::from_utf8(bytes.to_vec()).unwrap();
        // "Try again" to `//boom` would be another site (host `boom`).
        let link = format!(r#"<a href="{again}" data-keel-reload>"#);
        assert!(html.contains(&link), "{path}: {html}");
    }
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let plain = plain_app(Arc::default());
    for request in [
        get("/"),
        get("/nope"),
        get("/_keel/runtime.js"),
        get("/_keel/fn/change"),
        form(Method::POST, "/_keel/fn/change", "to=/"),
    ] {
        let uri = request.uri().clone();
        let response = send(&plain, request).await;
        let headers = response.headers();
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{uri}");
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY", "{uri}");
        assert_eq!(
            headers[header::CONTENT_SECURITY_POLICY],
            ContentSecurityPolicy::default().to_string().as_str(),
            "{uri}"
        );
        assert!(headers.contains_key(header::REFERRER_POLICY), "{uri}");
        assert!(
            !headers.contains_key(header::STRICT_TRANSPORT_SECURITY),
            "{uri}"
        );
    }
    // A cross-site post is refused, and the refusal carries them too.
    let mut cross = form(Method::POST, "/_keel/fn/change", "to=/");
    cross
        .headers_mut()
        .insert("sec-fetch-site", "cross-site".parse().unwrap());
    let response = send(&plain, cross).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(
        response
            .headers()
            .contains_key(header::CONTENT_SECURITY_POLICY)
    );

    // Served over HTTPS: HSTS; an app's own sources join the policy.
    let mut config = StartConfig::new("http://127.0.0.1:9");
    config.served_over_https = true;
    config.content_security_policy =
        ContentSecurityPolicy::default().allow("img-src", "https://images.example");
    let https = app(config, Arc::default());
    let response = send(&https, get("/")).await;
    let headers = response.headers();
    assert_eq!(
        headers[header::STRICT_TRANSPORT_SECURITY],
        "max-age=31536000"
    );
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(
        csp.contains("img-src 'self' data: https://images.example"),
        "{csp}"
    );
}

#[tokio::test]
async fn the_document_shell_needs_no_inline_script_or_style() {
    let mut config = StartConfig::new("http://127.0.0.1:9");
    config.devtools = true;
    let with_devtools = app(config, Arc::default());
    let response = send(&with_devtools, get("/")).await;
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let html = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(html.contains("keel-devtools"), "the panel is on: {html}");
    assert!(!html.contains(" style="), "{html}");
    assert!(!html.contains("<style"), "{html}");
    // Every script is a file from this site.
    assert_eq!(html.matches("<script").count(), 1, "{html}");
    assert!(html.contains(r#"<script type="module" src="/_keel/runtime.js"></script>"#));
    assert!(html.contains(r#"<link rel="stylesheet" href="/_keel/devtools.css">"#));
}

#[tokio::test]
async fn live_streams_refuse_page_addresses_off_the_site_or_into_the_framework() {
    let app = plain_app(Arc::new(AtomicUsize::new(0)));
    // One query (`[{"p":"posts:list","a":{},"d":"e"}]`, percent-encoded) with a bad `p`.
    let q = "%5B%7B%22p%22%3A%22posts%3Alist%22%2C%22a%22%3A%7B%7D%2C%22d%22%3A%22e%22%7D%5D";
    let long = format!("%2F{}", "a".repeat(3000));
    for (p, says) in [
        ("%2F%2Fevil.example%2Fposts", "a path on this site"),
        ("https%3A%2F%2Fevil.example%2F", "a path on this site"),
        (
            "%2F_keel%2Ffn%2Fchange",
            "not one of the framework's endpoints",
        ),
        ("%2F_keel%2Flive", "not one of the framework's endpoints"),
        ("%2Fa%20b", "not a path and query"),
        (long.as_str(), "longer than 2048 bytes"),
    ] {
        let response = send(&app, get(&format!("/_keel/live?q={q}&p={p}"))).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{p}");
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains(says), "{p}: {body}");
    }
    // Queries without the page's address: nothing to re-render.
    let response = send(&app, get(&format!("/_keel/live?q={q}"))).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // The app keeps answering.
    assert_eq!(send(&app, get("/")).await.status(), StatusCode::OK);
}

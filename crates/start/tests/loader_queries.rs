//! Loaders' backend reads against a fake backend on 127.0.0.1 that counts the calls: one
//! snapshot per page, and one call per query even when loaders running in parallel ask for the
//! same query.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::routing::post;
use http::{Request, StatusCode};
use keel_start::{Route, Start, StartConfig};
use maud::html;
use parking_lot::Mutex;
use tower::ServiceExt;

type Calls = Arc<Mutex<HashMap<String, usize>>>;

/// A backend answering `/api/query_ts` (snapshot 1) and `/api/query_at_ts` (the function path
/// as a string), slowly enough that parallel loaders overlap.
async fn fake_backend(calls: Calls) -> String {
    let app = axum::Router::new()
        .route(
            "/api/query_ts",
            post(|State(calls): State<Calls>| async move {
                *calls.lock().entry("query_ts".to_owned()).or_default() += 1;
                Json(serde_json::json!({ "ts": "AQAAAAAAAAA=" }))
            }),
        )
        .route(
            "/api/query_at_ts",
            post(
                |State(calls): State<Calls>, Json(body): Json<serde_json::Value>| async move {
                    let path = body["path"].as_str().unwrap_or_default().to_owned();
                    *calls.lock().entry(path.clone()).or_default() += 1;
                    // Backend latency: the second loader asks while the first call is open.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Json(serde_json::json!({ "status": "success", "value": path }))
                },
            ),
        )
        .with_state(calls);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test]
async fn parallel_loaders_share_one_fetch_per_query() {
    let calls = Calls::default();
    let backend = fake_backend(calls.clone()).await;
    let root = Route::root()
        .loader(|ctx| async move {
            ctx.query::<String, _>("users:me", serde_json::json!({}))
                .await
        })
        .component(|m, outlet| html! { p { "root " (m.data::<String>().unwrap()) } (outlet) })
        .child(
            Route::new("")
                .loader(|ctx| async move {
                    let (me, posts) = futures::try_join!(
                        ctx.query::<String, _>("users:me", serde_json::json!({})),
                        ctx.query::<String, _>("posts:list", serde_json::json!({})),
                    )?;
                    Ok(format!("{me} {posts}"))
                })
                .component(|m, _| html! { p { "index " (m.data::<String>().unwrap()) } }),
        );
    let app = Start::new(StartConfig::new(backend), root)
        .into_router()
        .unwrap();
    let response = app
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let html = String::from_utf8(
        axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    assert!(html.contains("<p>root users:me</p>"), "{html}");
    assert!(html.contains("<p>index users:me posts:list</p>"), "{html}");
    let calls = calls.lock().clone();
    assert_eq!(calls.get("query_ts"), Some(&1), "{calls:?}");
    assert_eq!(calls.get("users:me"), Some(&1), "{calls:?}");
    assert_eq!(calls.get("posts:list"), Some(&1), "{calls:?}");
}

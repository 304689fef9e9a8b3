//! HTTP actions on the site origin (`keel_backend::site_router`), spoken to with a real HTTP
//! client: routing (exact paths, prefixes, 404), the request as the action sees it, bearer
//! tokens as `ctx.auth()`, Convex's 20 MiB body limit, a streamed response, an action calling an
//! internal mutation, and a failing action.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use futures::StreamExt;
use keel_backend::http::{Method, StatusCode};
use keel_backend::{
    ActionCtx, Backend, BackendConfig, FunctionError, FunctionRegistry, HTTP_ACTION_BODY_LIMIT,
    HttpRequest, HttpResponse, HttpRoutes, MutationCtx,
};
use keel_db::{Database, Schema, SqlitePersistence, TableSchema};
use keel_values::obj;
use serde_json::{Value as Json, json};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use common::{TestIdp, WAIT};

/// A site serving the test routes, and what the tests observe of it.
struct Site {
    url: String,
    /// How many times `POST /echo` ran.
    echoes: Arc<AtomicUsize>,
    /// Lets the streamed response send its second chunk.
    release: Arc<Notify>,
    _dir: tempfile::TempDir,
}

/// Answers what the action saw of the request.
fn echo(ctx: &ActionCtx, request: &HttpRequest) -> HttpResponse {
    let subject = ctx.auth().user_identity().map(|user| user.subject.clone());
    HttpResponse::json(
        StatusCode::CREATED,
        &json!({
            "method": request.method.as_str(),
            "url": request.url.as_str(),
            "path": request.path(),
            "header": request.headers.get("x-test").and_then(|v| v.to_str().ok()),
            "bodyLength": request.body.len(),
            "subject": subject,
        }),
    )
    .with_header(
        keel_backend::http::header::HeaderName::from_static("x-echo"),
        "yes",
    )
}

async fn start(config: BackendConfig) -> Site {
    let echoes = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(Notify::new());
    let mut routes = HttpRoutes::new();
    let counted = echoes.clone();
    routes
        .route(Method::POST, "/echo", move |ctx, request| {
            counted.fetch_add(1, Ordering::SeqCst);
            let response = echo(&ctx, &request);
            async move { Ok(response) }
        })
        .route(Method::GET, "/files/exact", |_ctx, _request| async {
            Ok(HttpResponse::text(StatusCode::OK, "exact"))
        })
        .route_prefix(
            Method::GET,
            "/files/",
            |_ctx, request: HttpRequest| async move {
                Ok(HttpResponse::text(
                    StatusCode::OK,
                    format!("short {}", request.path()),
                ))
            },
        )
        .route_prefix(
            Method::GET,
            "/files/deep/",
            |_ctx, request: HttpRequest| async move {
                Ok(HttpResponse::text(
                    StatusCode::OK,
                    format!("long {}", request.path()),
                ))
            },
        )
        .route(
            Method::POST,
            "/notes",
            |ctx: ActionCtx, request: HttpRequest| async move {
                let text: String = request
                    .json::<Json>()
                    .ok()
                    .and_then(|j| j["text"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                let id: String = ctx
                    .run_mutation("notes:add", obj! { "text" => text.as_str() })
                    .await?;
                Ok(HttpResponse::json(
                    StatusCode::CREATED,
                    &json!({ "id": id }),
                ))
            },
        )
        .route(Method::GET, "/fail", |_ctx, _request| async {
            Err::<HttpResponse, _>(FunctionError::convex("refused on purpose", obj! {}))
        })
        .route(Method::GET, "/panic", |_ctx, _request| async {
            panic!("a bug in the action")
        });
    routes
        .route(Method::GET, "/big", |_ctx, _request| async {
            let body = Bytes::from(vec![b'b'; HTTP_ACTION_BODY_LIMIT + 1]);
            Ok(HttpResponse::new(
                StatusCode::OK,
                keel_backend::HttpBody::Full(body),
            ))
        })
        .route(Method::GET, "/bigstream", |_ctx, _request| async {
            let chunks =
                futures::stream::iter((0..21).map(|_| Ok(Bytes::from(vec![b's'; 1 << 20]))));
            Ok(HttpResponse::stream(StatusCode::OK, chunks.boxed()))
        });
    let released = release.clone();
    routes.route(Method::GET, "/stream", move |_ctx, _request| {
        let release = released.clone();
        async move {
            let chunks = futures::stream::once(async { Ok(Bytes::from_static(b"first;")) }).chain(
                futures::stream::once(async move {
                    release.notified().await;
                    Ok(Bytes::from_static(b"second"))
                }),
            );
            Ok(HttpResponse::stream(StatusCode::OK, chunks.boxed()))
        }
    });
    let mut functions = FunctionRegistry::new();
    functions
        .internal_mutation("notes:add", |ctx: MutationCtx, args: Json| async move {
            let text = args["text"].as_str().unwrap_or_default().to_owned();
            let fields = keel_values::Object::from([("text".to_owned(), text.into())]);
            Ok(ctx.db().insert("notes", fields).await?.to_string())
        })
        .http_routes(routes);
    let dir = tempfile::tempdir().expect("tempdir");
    let persistence = SqlitePersistence::open(dir.path().join("db.sqlite3")).expect("sqlite");
    let db = Database::open(
        Arc::new(persistence),
        Schema::new().table("notes", TableSchema::new()),
    )
    .await
    .expect("database");
    let backend = Backend::new(db, functions, config);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let router = keel_backend::site_router(&backend);
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Site {
        url,
        echoes,
        release,
        _dir: dir,
    }
}

async fn json_of(response: reqwest::Response) -> (u16, Json) {
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

#[tokio::test]
async fn a_route_gets_the_request_and_answers_with_its_response() {
    let site = start(BackendConfig::default()).await;
    let response = reqwest::Client::new()
        .post(format!("{}/echo?x=1", site.url))
        .header("x-test", "hello")
        .body("four")
        .send()
        .await
        .expect("answered");
    assert_eq!(response.headers()["x-echo"], "yes");
    let (status, body) = json_of(response).await;
    assert_eq!(status, 201);
    assert_eq!(body["method"], "POST");
    assert_eq!(body["path"], "/echo");
    assert_eq!(body["url"], format!("{}/echo?x=1", site.url));
    assert_eq!(body["header"], "hello");
    assert_eq!(body["bodyLength"], 4);
    assert_eq!(body["subject"], Json::Null, "no token: anonymous");
}

#[tokio::test]
async fn exact_paths_win_over_prefixes_and_the_longest_prefix_wins() {
    let site = start(BackendConfig::default()).await;
    let get = async |path: &str| {
        let response = reqwest::get(format!("{}{path}", site.url))
            .await
            .expect("answered");
        (
            response.status().as_u16(),
            response.text().await.expect("text"),
        )
    };
    assert_eq!(get("/files/exact").await, (200, "exact".to_owned()));
    assert_eq!(
        get("/files/a/b").await,
        (200, "short /files/a/b".to_owned())
    );
    assert_eq!(
        get("/files/deep/x").await,
        (200, "long /files/deep/x".to_owned())
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_404_and_run_nothing() {
    let site = start(BackendConfig::default()).await;
    let client = reqwest::Client::new();
    for (method, path) in [
        (reqwest::Method::GET, "/nope"),
        (reqwest::Method::GET, "/echo"),
        (reqwest::Method::PUT, "/echo"),
        (reqwest::Method::POST, "/echo/"),
        (reqwest::Method::GET, "/files"),
        (reqwest::Method::GET, "/%2e%2e/echo"),
    ] {
        let response = client
            .request(method.clone(), format!("{}{path}", site.url))
            .send()
            .await
            .expect("answered");
        let (status, body) = json_of(response).await;
        assert_eq!(status, 404, "{method} {path}");
        assert_eq!(body["code"], "NoMatchingRoute", "{method} {path}");
    }
    assert_eq!(site.echoes.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_bearer_token_is_the_actions_identity_and_a_bad_one_is_refused() {
    let idp = TestIdp::start().await;
    let site = start(idp.backend_config()).await;
    let (user_id, token) = idp.user_token("ada@example.com").await;
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{}/echo", site.url))
        .bearer_auth(&token)
        .send()
        .await
        .expect("answered");
    let (status, body) = json_of(response).await;
    assert_eq!(status, 201);
    assert_eq!(body["subject"], user_id);
    for authorization in ["Bearer not-a-token", "Basic abc", "Convex admin"] {
        let response = client
            .post(format!("{}/echo", site.url))
            .header("authorization", authorization)
            .send()
            .await
            .expect("answered");
        let (status, _) = json_of(response).await;
        assert_eq!(status, 401, "{authorization}");
    }
    assert_eq!(site.echoes.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_body_over_20_mib_is_refused_before_the_action_runs() {
    let site = start(BackendConfig::default()).await;
    let client = reqwest::Client::new();
    let at_limit = client
        .post(format!("{}/echo", site.url))
        .body(vec![b'a'; HTTP_ACTION_BODY_LIMIT])
        .send()
        .await
        .expect("answered");
    let (status, body) = json_of(at_limit).await;
    assert_eq!(status, 201);
    assert_eq!(body["bodyLength"], HTTP_ACTION_BODY_LIMIT);
    let over = client
        .post(format!("{}/echo", site.url))
        .body(vec![b'a'; HTTP_ACTION_BODY_LIMIT + 1])
        .send()
        .await
        .expect("answered");
    let (status, body) = json_of(over).await;
    assert_eq!(status, 413);
    assert_eq!(body["code"], "RequestTooLarge");
    assert!(
        body["message"].as_str().unwrap().contains("20971520"),
        "{body}"
    );
    assert_eq!(site.echoes.load(Ordering::SeqCst), 1, "only the first ran");
}

#[tokio::test]
async fn a_streamed_response_arrives_chunk_by_chunk() {
    let site = start(BackendConfig::default()).await;
    let response = reqwest::get(format!("{}/stream", site.url))
        .await
        .expect("answered");
    assert_eq!(response.status().as_u16(), 200);
    let mut body = response.bytes_stream();
    // The first chunk arrives while the action still holds back the second.
    let first = tokio::time::timeout(WAIT, body.next())
        .await
        .expect("the first chunk within the deadline")
        .expect("a chunk")
        .expect("readable");
    assert_eq!(&first[..], b"first;");
    site.release.notify_one();
    let mut rest = Vec::new();
    while let Some(chunk) = tokio::time::timeout(WAIT, body.next())
        .await
        .expect("the rest within the deadline")
    {
        rest.extend_from_slice(&chunk.expect("readable"));
    }
    assert_eq!(rest, b"second");
}

#[tokio::test]
async fn an_action_calls_internal_functions_and_failures_answer_500() {
    let site = start(BackendConfig::default()).await;
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{}/notes", site.url))
        .json(&json!({ "text": "hi" }))
        .send()
        .await
        .expect("answered");
    let (status, body) = json_of(response).await;
    assert_eq!(status, 201);
    assert!(
        body["id"].as_str().is_some_and(|id| !id.is_empty()),
        "{body}"
    );

    let (status, body) = json_of(reqwest::get(format!("{}/fail", site.url)).await.unwrap()).await;
    assert_eq!((status, &body["code"]), (500, &json!("HttpActionFailed")));
    assert_eq!(body["message"], "refused on purpose");
    let (status, body) = json_of(reqwest::get(format!("{}/panic", site.url)).await.unwrap()).await;
    assert_eq!(status, 500);
    assert!(
        !body["message"].as_str().unwrap().contains("a bug"),
        "an internal failure stays generic: {body}"
    );
}

#[tokio::test]
async fn responses_over_20_mib_are_refused_or_cut_off() {
    let site = start(BackendConfig::default()).await;
    let (status, body) = json_of(reqwest::get(format!("{}/big", site.url)).await.unwrap()).await;
    assert_eq!(
        (status, &body["code"]),
        (500, &json!("HttpActionResponseTooLarge"))
    );
    let response = reqwest::get(format!("{}/bigstream", site.url))
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        200,
        "the head went out before the limit"
    );
    let mut body = response.bytes_stream();
    let mut received = 0;
    let mut broken = false;
    while let Some(chunk) = tokio::time::timeout(WAIT, body.next())
        .await
        .expect("in time")
    {
        match chunk {
            Ok(chunk) => received += chunk.len(),
            Err(_) => {
                broken = true;
                break;
            }
        }
    }
    assert!(broken, "the stream was cut off");
    assert!(received <= HTTP_ACTION_BODY_LIMIT, "{received}");
}

//! `HttpClient` against a real backend: calls, typed results, errors, auth, snapshots, pooling.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Proxy, TestBackend, backend_with_idp};
use keel_client::{ClientError, HttpClient};
use keel_values::{Object, Value, obj};
use serde_json::json;

#[tokio::test]
async fn queries_mutations_and_actions() {
    let backend = TestBackend::start().await;
    let client = HttpClient::new(&backend.url()).unwrap();
    assert_eq!(
        client
            .query::<f64, _>("counter:get", json!({}))
            .await
            .unwrap(),
        0.0
    );
    assert_eq!(
        client
            .mutation::<u32, _>("counter:increment", json!({}))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        client
            .action::<f64, _>("actions:bump", json!({}))
            .await
            .unwrap(),
        2.0
    );
    assert_eq!(
        client
            .query_value("counter:get", Object::new())
            .await
            .unwrap(),
        Value::Float64(2.0)
    );
    client
        .mutation::<String, _>("messages:send", json!({"body": "hi"}))
        .await
        .unwrap();
    let list: Vec<String> = client.query("messages:list", json!({})).await.unwrap();
    assert_eq!(list, ["hi"]);
}

#[tokio::test]
async fn errors_are_typed() {
    let backend = TestBackend::start().await;
    let client = HttpClient::new(&backend.url()).unwrap();
    match client.query_value("errors:fail", Object::new()).await {
        Err(ClientError::Application { message, data }) => {
            assert_eq!(message, "Not allowed");
            assert_eq!(data, obj! { "code" => "FORBIDDEN", "level" => 3i64 });
        }
        other => panic!("expected an application error, got {other:?}"),
    }
    let missing = client
        .query_value("nope:nothing", Object::new())
        .await
        .unwrap_err();
    assert_eq!(missing.code(), "Function", "{missing}");
    let bad_type = client
        .query::<String, _>("counter:get", json!({}))
        .await
        .unwrap_err();
    assert_eq!(bad_type.code(), "Decode");
    // A signed-in-only query called anonymously fails with its ConvexError.
    let anonymous = client
        .query_value("private:counter", Object::new())
        .await
        .unwrap_err();
    assert!(
        matches!(anonymous, ClientError::Application { .. }),
        "{anonymous:?}"
    );
    // Nothing listening: a transport error.
    let dead = HttpClient::new("http://127.0.0.1:9").unwrap();
    assert_eq!(
        dead.query_value("counter:get", Object::new())
            .await
            .unwrap_err()
            .code(),
        "Transport"
    );
    assert!(HttpClient::new("ws://x").is_err());
}

#[tokio::test]
async fn auth_tokens_and_rejections() {
    let (backend, idp) = backend_with_idp(Duration::from_secs(60)).await;
    let (user_id, session) = idp.user_session("ada@example.com").await;
    let shared = HttpClient::new(&backend.url()).unwrap();
    let signed_in = shared.with_auth(idp.token(&session).unwrap());
    assert_eq!(
        signed_in
            .query::<String, _>("auth:whoami", json!({}))
            .await
            .unwrap(),
        user_id
    );
    assert_eq!(
        shared
            .query_value("auth:whoami", Object::new())
            .await
            .unwrap(),
        Value::Null
    );
    let mut garbage = shared.clone();
    garbage.set_auth("not-a-jwt");
    match garbage.query_value("auth:whoami", Object::new()).await {
        Err(ClientError::Auth { code, message }) => {
            assert!(!code.is_empty() && !message.is_empty());
        }
        other => panic!("expected an auth error, got {other:?}"),
    }
    garbage.clear_auth();
    assert_eq!(garbage.auth(), None);
    assert_eq!(
        garbage
            .query_value("auth:whoami", Object::new())
            .await
            .unwrap(),
        Value::Null
    );
}

#[tokio::test]
async fn consistent_queries_read_one_snapshot() {
    let backend = TestBackend::start().await;
    let page = HttpClient::new(&backend.url()).unwrap();
    backend.increment().await;
    let first: f64 = page
        .consistent_query("counter:get", json!({}))
        .await
        .unwrap();
    assert_eq!(first, 1.0);
    let snapshot = page.snapshot_ts().expect("a snapshot was taken");
    // Writes after the snapshot are invisible to this page's later loaders (and its clones)…
    backend.increment().await;
    backend.increment().await;
    let loader = page.clone();
    let (a, b) = tokio::join!(
        loader.consistent_query::<f64, _>("counter:get", json!({})),
        page.consistent_query_value("counter:get", Object::new()),
    );
    assert_eq!(a.unwrap(), 1.0);
    assert_eq!(b.unwrap(), Value::Float64(1.0));
    assert_eq!(loader.snapshot_ts(), Some(snapshot));
    // …while a plain query and a new snapshot see them.
    assert_eq!(
        page.query::<f64, _>("counter:get", json!({}))
            .await
            .unwrap(),
        3.0
    );
    let mut next_page = page.clone();
    next_page.new_snapshot();
    assert_eq!(
        next_page
            .consistent_query::<f64, _>("counter:get", json!({}))
            .await
            .unwrap(),
        3.0
    );
    assert!(next_page.snapshot_ts().unwrap() > snapshot);
    assert!(page.query_ts().await.unwrap() >= next_page.snapshot_ts().unwrap());
}

#[tokio::test]
async fn per_request_clients_share_one_connection_pool() {
    let (backend, idp) = backend_with_idp(Duration::from_secs(60)).await;
    let proxy = Proxy::start(backend.addr).await;
    let (_, session) = idp.user_session("pool@example.com").await;
    let token = idp.token(&session).unwrap();
    let shared = HttpClient::new(&proxy.url()).unwrap();
    for _ in 0..50 {
        let per_request = shared.with_auth(token.clone());
        per_request
            .query::<String, _>("auth:whoami", json!({}))
            .await
            .unwrap();
    }
    assert_eq!(
        proxy.accepted.load(Ordering::SeqCst),
        1,
        "one TCP connection for 50 requests"
    );
}

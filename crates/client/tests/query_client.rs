//! `QueryClient` against a real backend: cache operations, the live bridge, GC,
//! and read-your-writes.

mod common;

use std::time::Duration;

use common::{TestBackend, WAIT, wait_until};
use keel_client::{
    ClientError, HttpClient, LiveClient, QueryClient, QueryClientConfig, QueryKey, QueryStatus,
};
use keel_values::{Object, Value};
use serde_json::json;

fn key(path: &str, args: serde_json::Value) -> QueryKey {
    QueryKey::with_args(path, args).unwrap()
}

#[tokio::test]
async fn ensure_fetch_get_and_invalidate_over_http() {
    let backend = TestBackend::start().await;
    let http = HttpClient::new(&backend.url()).unwrap();
    let qc = QueryClient::new(QueryClientConfig {
        http: Some(http),
        consistent: false,
        ..QueryClientConfig::default()
    });
    let counter = key("counter:get", json!({}));
    assert_eq!(counter.hash(), "convexQuery|counter:get|{}");
    assert_eq!(qc.get_query_data(&counter), None);
    assert_eq!(
        qc.ensure_query_data(&counter).await.unwrap(),
        Value::Float64(0.0)
    );
    backend.increment().await;
    // Cached: not fetched again.
    assert_eq!(
        qc.ensure_query_data(&counter).await.unwrap(),
        Value::Float64(0.0)
    );
    assert_eq!(qc.get_query_data(&counter), Some(Value::Float64(0.0)));
    qc.invalidate(&counter);
    assert!(qc.get_entry(&counter).unwrap().stale);
    assert_eq!(
        qc.ensure_query_data(&counter).await.unwrap(),
        Value::Float64(1.0)
    );
    backend.increment().await;
    assert_eq!(qc.fetch_query(&counter).await.unwrap(), Value::Float64(2.0));
    let entry = qc.get_entry(&counter).unwrap();
    assert_eq!(entry.status, QueryStatus::Success);
    assert!(!entry.live && !entry.stale);

    // Errors are cached as errors.
    let failing = key("errors:fail", json!({}));
    let err = qc.ensure_query_data(&failing).await.unwrap_err();
    assert!(matches!(err, ClientError::Application { .. }), "{err:?}");
    let entry = qc.get_entry(&failing).unwrap();
    assert_eq!(entry.status, QueryStatus::Error);
    assert_eq!(entry.error, Some(err));
    qc.remove(&failing);
    assert_eq!(qc.keys(), [counter]);
}

#[tokio::test]
async fn loaders_of_one_page_read_one_snapshot() {
    let backend = TestBackend::start().await;
    backend.increment().await;
    let qc = QueryClient::with_http(HttpClient::new(&backend.url()).unwrap());
    let first = key("counter:get", json!({}));
    assert_eq!(
        qc.ensure_query_data(&first).await.unwrap(),
        Value::Float64(1.0)
    );
    backend.increment().await;
    // Another loader of the same page (different key, same function) sees the same snapshot.
    let second = key("counter:get", json!({"loader": 2}));
    assert_eq!(
        qc.ensure_query_data(&second).await.unwrap(),
        Value::Float64(1.0)
    );
    assert_eq!(
        qc.get_entry(&first).unwrap().ts,
        qc.get_entry(&second).unwrap().ts
    );
    // The next render reads a new snapshot.
    qc.new_snapshot();
    assert_eq!(qc.fetch_query(&second).await.unwrap(), Value::Float64(2.0));
}

#[tokio::test]
async fn the_server_http_client_carries_the_request_token() {
    let (backend, idp) = common::backend_with_idp(Duration::from_secs(60)).await;
    let (user_id, session) = idp.user_session("ssr@example.com").await;
    let qc = QueryClient::with_http(HttpClient::new(&backend.url()).unwrap());
    let whoami = key("auth:whoami", json!({}));
    assert_eq!(qc.fetch_query(&whoami).await.unwrap(), Value::Null);
    qc.set_http_auth(idp.token(&session));
    assert_eq!(
        qc.fetch_query(&whoami).await.unwrap(),
        Value::from(user_id.as_str())
    );
    qc.set_http_auth(None);
    assert_eq!(qc.fetch_query(&whoami).await.unwrap(), Value::Null);
}

#[tokio::test]
async fn connected_entries_follow_the_live_connection() {
    let backend = TestBackend::start().await;
    let http = HttpClient::new(&backend.url()).unwrap();
    let live = LiveClient::new(&backend.url()).unwrap();
    let qc = QueryClient::new(QueryClientConfig {
        http: Some(http.clone()),
        consistent: false,
        ..QueryClientConfig::default()
    });
    // An entry rendered over HTTP before connecting is subscribed by `connect`.
    let messages = key("messages:list", json!({}));
    assert_eq!(
        qc.ensure_query_data(&messages).await.unwrap(),
        Value::Array(vec![])
    );
    qc.connect(&live).unwrap();
    assert!(qc.connect(&live).is_err(), "connect twice");
    assert!(qc.get_entry(&messages).unwrap().live);
    let mut updates = qc.updates();

    // An HTTP mutation, then "wait until the cache reached T": the cache reflects it.
    http.mutation::<String, _>("messages:send", json!({"body": "one"}))
        .await
        .unwrap();
    let ts = http.query_ts().await.unwrap();
    qc.wait_for_ts(ts, WAIT).await.unwrap();
    assert!(qc.cache_ts() >= ts);
    assert_eq!(
        qc.get_query_data(&messages),
        Some(Value::Array(vec!["one".into()]))
    );
    let entry = qc.get_entry(&messages).unwrap();
    assert!(entry.ts.unwrap() >= ts);
    // Owners learn which entries changed.
    let mut changed = Vec::new();
    while let Ok(update) = updates.try_recv() {
        changed.push(update);
    }
    assert!(
        changed
            .iter()
            .any(|u| u.ts >= ts && u.keys == [messages.hash()]),
        "{changed:?}"
    );

    // A live mutation's commit ts works the same way.
    let counter = key("counter:get", json!({}));
    assert_eq!(
        qc.ensure_query_data(&counter).await.unwrap(),
        Value::Float64(0.0)
    );
    let (_, ts) = live
        .mutation_with_ts("counter:increment", Object::new())
        .await
        .unwrap();
    qc.wait_for_ts(ts, WAIT).await.unwrap();
    assert_eq!(qc.get_query_data(&counter), Some(Value::Float64(1.0)));

    // Several entries read at once, with the timestamp they reflect (a page re-rendered from
    // the cache); a key the cache does not hold is `None`.
    let missing = key("messages:list", json!({"other": true}));
    let (at, entries) = qc.read_at_once(&[counter.clone(), messages.clone(), missing]);
    assert!(at >= ts, "{at} < {ts}");
    assert_eq!(
        entries[0].as_ref().unwrap().data.as_deref(),
        Some(&Value::Float64(1.0))
    );
    assert_eq!(
        entries[1].as_ref().unwrap().data.as_deref(),
        Some(&Value::Array(vec!["one".into()]))
    );
    assert!(entries[2].is_none());
    assert!(
        entries[..2]
            .iter()
            .all(|e| e.as_ref().unwrap().ts <= Some(at))
    );

    // Only entries that exist are updated: a removed entry is not brought back.
    qc.remove(&counter);
    let (_, ts) = live
        .mutation_with_ts("counter:increment", Object::new())
        .await
        .unwrap();
    qc.wait_for_ts(ts, WAIT).await.unwrap();
    assert_eq!(qc.get_query_data(&counter), None);
    wait_until("the removed entry is unsubscribed", WAIT, || {
        live.stats().query_removes == 1
    })
    .await;
}

#[tokio::test]
async fn live_only_cache_fetches_through_subscriptions() {
    let backend = TestBackend::start().await;
    let qc = QueryClient::new(QueryClientConfig::default());
    let counter = key("counter:get", json!({}));
    let err = qc.ensure_query_data(&counter).await.unwrap_err();
    assert_eq!(err.code(), "Closed", "no source: {err}");
    let live = LiveClient::new(&backend.url()).unwrap();
    qc.connect(&live).unwrap();
    assert_eq!(
        qc.ensure_query_data(&counter).await.unwrap(),
        Value::Float64(0.0)
    );
    let messages = key("messages:list", json!({}));
    assert_eq!(
        qc.fetch_query(&messages).await.unwrap(),
        Value::Array(vec![])
    );
    backend.increment().await;
    let ts = HttpClient::new(&backend.url())
        .unwrap()
        .query_ts()
        .await
        .unwrap();
    qc.wait_for_ts(ts, WAIT).await.unwrap();
    assert_eq!(
        qc.ensure_query_data(&counter).await.unwrap(),
        Value::Float64(1.0)
    );
}

#[tokio::test]
async fn unused_entries_are_collected_and_unsubscribed() {
    let backend = TestBackend::start().await;
    let live = LiveClient::new(&backend.url()).unwrap();
    let qc = QueryClient::new(QueryClientConfig {
        gc_time: Duration::from_millis(300),
        ..QueryClientConfig::default()
    });
    qc.connect(&live).unwrap();
    let counter = key("counter:get", json!({}));
    qc.ensure_query_data(&counter).await.unwrap();
    assert_eq!(qc.keys().len(), 1);
    wait_until("the entry is collected", WAIT, || qc.keys().is_empty()).await;
    wait_until("its subscription is removed", WAIT, || {
        live.stats().query_removes == 1
    })
    .await;
    assert_eq!(qc.get_query_data(&counter), None);
}

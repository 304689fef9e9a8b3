//! `LiveClient` against a real backend: subscriptions, read-your-writes, errors, sync, and a
//! backend restarted mid-subscription.

mod common;

use std::time::Duration;

use common::{Proxy, TestBackend, WAIT, wait_until};
use futures::FutureExt;
use keel_client::{ClientError, HttpClient, LiveClient, LiveConfig, Subscription};
use keel_values::{Object, Value};
use serde_json::json;

async fn next_value(sub: &mut Subscription) -> Value {
    let update = tokio::time::timeout(WAIT, sub.next_update())
        .await
        .expect("an update in time")
        .expect("the client is open");
    update.result.expect("a value")
}

#[tokio::test]
async fn subscriptions_follow_mutations_with_read_your_writes() {
    let backend = TestBackend::start().await;
    let live = LiveClient::new(&backend.url()).unwrap();
    let mut counter = live.subscribe("counter:get", json!({})).unwrap();
    assert_eq!(next_value(&mut counter).await, Value::Float64(0.0));
    for expected in 1..=5 {
        let (value, ts) = live
            .mutation_with_ts("counter:increment", Object::new())
            .await
            .unwrap();
        assert_eq!(value, Value::Float64(f64::from(expected)));
        // Resolved only once a transition covering the commit arrived: the subscription
        // already holds the new value, no waiting.
        assert!(live.latest_ts() >= ts);
        let update = counter
            .next_update()
            .now_or_never()
            .expect("the update is already delivered")
            .unwrap();
        assert_eq!(update.result.unwrap(), Value::Float64(f64::from(expected)));
        assert!(update.ts >= ts);
    }
    assert!(
        counter.next_update().now_or_never().is_none(),
        "no duplicate deliveries"
    );
    // One-shot calls over the same socket.
    assert_eq!(
        live.query::<u32, _>("counter:get", json!({}))
            .await
            .unwrap(),
        5
    );
    assert_eq!(
        live.action::<u32, _>("actions:bump", json!({}))
            .await
            .unwrap(),
        6
    );
    assert_eq!(next_value(&mut counter).await, Value::Float64(6.0));
    let stats = live.stats();
    assert_eq!(stats.connects, 1);
    assert_eq!(stats.authenticates, 0);
}

#[tokio::test]
async fn a_subscriber_that_falls_behind_holds_only_the_latest_result() {
    let backend = TestBackend::start().await;
    let live = LiveClient::new(&backend.url()).unwrap();
    let mut counter = live.subscribe("counter:get", json!({})).unwrap();
    assert_eq!(next_value(&mut counter).await, Value::Float64(0.0));
    let mut last_ts = 0;
    for _ in 0..50 {
        last_ts = live
            .mutation_with_ts("counter:increment", Object::new())
            .await
            .unwrap()
            .1;
    }
    // Each mutation resolved after its transition arrived: fifty results came, one is kept.
    let update = counter
        .next_update()
        .now_or_never()
        .expect("a result is waiting")
        .unwrap();
    assert_eq!(update.result.unwrap(), Value::Float64(50.0));
    assert!(update.ts >= last_ts);
    assert!(counter.next_update().now_or_never().is_none());
    // Later changes still arrive, and the stream ends with the client.
    live.mutation_value("counter:increment", Object::new())
        .await
        .unwrap();
    assert_eq!(next_value(&mut counter).await, Value::Float64(51.0));
    live.close();
    let end = tokio::time::timeout(WAIT, counter.next_update())
        .await
        .expect("the stream ends");
    assert!(end.is_none());
    // Its socket task (and any token fetch) has ended: an owner shutting down can wait for it.
    tokio::time::timeout(WAIT, live.closed())
        .await
        .expect("the client's tasks end after close()");
}

#[tokio::test]
async fn errors_and_unsubscribes() {
    let backend = TestBackend::start().await;
    let live = LiveClient::new(&backend.url()).unwrap();
    match live.query_value("errors:fail", Object::new()).await {
        Err(ClientError::Application { message, data }) => {
            assert_eq!(message, "Not allowed");
            assert_eq!(data.as_object().unwrap()["code"], Value::from("FORBIDDEN"));
        }
        other => panic!("expected an application error, got {other:?}"),
    }
    let err = live
        .mutation_value("nope:nothing", Object::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "Function", "{err}");
    let err = live
        .action_value("nope:nothing", Object::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "Function", "{err}");
    let err = live
        .query::<String, _>("counter:get", json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "Decode");
    // Each one-shot query was added and then removed from the query set.
    wait_until("one-shot queries are removed", WAIT, || {
        live.stats().query_removes == 2
    })
    .await;
    assert_eq!(live.stats().query_adds, 2);
    live.close();
    let closed = live
        .query_value("counter:get", Object::new())
        .await
        .unwrap_err();
    assert_eq!(closed.code(), "Closed");
}

#[tokio::test]
async fn wait_for_ts_catches_up_with_writes_made_elsewhere() {
    let backend = TestBackend::start().await;
    let live = LiveClient::new(&backend.url()).unwrap();
    let _messages = live.subscribe("messages:list", json!({})).unwrap();
    wait_until("the first transition", WAIT, || {
        live.stats().transitions > 0
    })
    .await;
    // A write the subscription does not read, over HTTP: no transition would come on its own.
    let http = HttpClient::new(&backend.url()).unwrap();
    http.mutation::<f64, _>("counter:increment", json!({}))
        .await
        .unwrap();
    let ts = http.query_ts().await.unwrap();
    assert!(live.latest_ts() < ts);
    live.wait_for_ts(ts, WAIT).await.unwrap();
    assert!(live.latest_ts() >= ts);
    let err = live
        .wait_for_ts(u64::MAX / 2, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("timed out"), "{err}");
}

#[tokio::test]
async fn reconnects_and_resubscribes_after_a_backend_restart() {
    let backend = TestBackend::start().await;
    let proxy = Proxy::start(backend.addr).await;
    let mut config = LiveConfig::new(proxy.url());
    config.max_backoff = Duration::from_millis(500);
    let live = LiveClient::with_config(config).unwrap();
    let mut messages = live.subscribe("messages:list", json!({})).unwrap();
    assert_eq!(next_value(&mut messages).await, Value::Array(vec![]));
    live.mutation::<String, _>("messages:send", json!({"body": "before"}))
        .await
        .unwrap();
    assert_eq!(
        next_value(&mut messages).await,
        Value::Array(vec!["before".into()])
    );
    let ts_before = live.latest_ts();

    // The backend goes away mid-subscription: sockets cut, new connections refused.
    proxy.set_refusing(true);
    proxy.cut();
    let backend = backend.restart().await;
    // A mutation issued while disconnected waits and is sent once the socket is back.
    let pending = {
        let live = live.clone();
        tokio::spawn(async move {
            live.mutation::<String, _>("messages:send", json!({"body": "during"}))
                .await
        })
    };
    wait_until("a reconnect attempt is refused", WAIT, || {
        proxy.refused.load(std::sync::atomic::Ordering::SeqCst) >= 1
    })
    .await;
    assert!(!pending.is_finished());
    proxy.retarget(backend.addr);
    proxy.set_refusing(false);

    pending.await.unwrap().unwrap();
    let after = next_value(&mut messages).await;
    assert_eq!(after, Value::Array(vec!["before".into(), "during".into()]));
    assert!(
        live.latest_ts() > ts_before,
        "timestamps stay monotonic across the restart"
    );
    let stats = live.stats();
    assert_eq!(stats.connects, 2, "{stats:?}");
    assert_eq!(stats.query_adds, 2, "re-added once, same query: {stats:?}");
    // The unchanged "before" result was not delivered again after the reconnect.
    assert!(messages.next_update().now_or_never().is_none());
    // Later writes still arrive.
    live.mutation::<String, _>("messages:send", json!({"body": "after"}))
        .await
        .unwrap();
    let list = next_value(&mut messages).await;
    assert!(matches!(list, Value::Array(items) if items.len() == 3));
}

#[tokio::test]
async fn a_mutation_in_flight_when_the_socket_drops_runs_once() {
    let backend = TestBackend::start().await;
    let proxy = Proxy::start(backend.addr).await;
    let mut config = LiveConfig::new(proxy.url());
    config.max_backoff = Duration::from_millis(300);
    let live = LiveClient::with_config(config).unwrap();
    let mut messages = live.subscribe("messages:list", json!({})).unwrap();
    assert_eq!(next_value(&mut messages).await, Value::Array(vec![]));
    let pending = {
        let live = live.clone();
        tokio::spawn(async move {
            live.mutation::<String, _>("gated:send", json!({"body": "once"}))
                .await
        })
    };
    // The backend is running it; the socket drops before the answer.
    let gate = backend.gate.clone();
    wait_until("the mutation runs", WAIT, || {
        gate.runs.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;
    proxy.cut();
    wait_until("the client reconnected", WAIT, || {
        live.stats().connects == 2
    })
    .await;
    backend.gate.release();
    // Re-sent with the same session and request ids: the backend answers with the first run's
    // outcome instead of running it again.
    pending.await.unwrap().unwrap();
    assert_eq!(
        backend.gate.runs.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    let list = loop {
        let value = next_value(&mut messages).await;
        if value != Value::Array(vec![]) {
            break value;
        }
    };
    assert_eq!(list, Value::Array(vec!["once".into()]));
    assert_eq!(
        live.query_value("messages:list", Object::new())
            .await
            .unwrap(),
        Value::Array(vec!["once".into()])
    );
}

#[tokio::test]
async fn a_silent_server_is_left_after_the_idle_timeout() {
    // The backend pings only every 10 s; the client gives up on a socket after 400 ms of
    // silence, reconnects, and its subscription carries on without re-delivery.
    let backend = TestBackend::start_with(keel_backend::BackendConfig {
        heartbeat_interval: Duration::from_secs(10),
        ..keel_backend::BackendConfig::default()
    })
    .await;
    let mut config = LiveConfig::new(backend.url());
    config.idle_timeout = Duration::from_millis(400);
    let live = LiveClient::with_config(config).unwrap();
    let mut counter = live.subscribe("counter:get", json!({})).unwrap();
    assert_eq!(next_value(&mut counter).await, Value::Float64(0.0));
    wait_until("an idle reconnect", WAIT, || live.stats().connects >= 2).await;
    assert!(
        counter.next_update().now_or_never().is_none(),
        "nothing re-delivered"
    );
    backend.increment().await;
    assert_eq!(next_value(&mut counter).await, Value::Float64(1.0));
}

/// A listener added while transitions stream in either receives each later transition or sees
/// its timestamp in `latest_ts` (the live layer of the web tier relies on this to never leave a
/// page stale). Transitions, in order, reach a listener registered from the start; every one
/// of them with a timestamp past what `latest_ts` showed must reach the new listener too.
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn a_new_transition_listener_misses_nothing_latest_ts_does_not_show() {
    let backend = TestBackend::start().await;
    let live = LiveClient::new(&backend.url()).unwrap();
    let mut counter = live.subscribe("counter:get", json!({})).unwrap();
    next_value(&mut counter).await;
    let mut all = live.transitions().unwrap();
    let writer = {
        let backend = backend.backend.clone();
        tokio::spawn(async move {
            let path = keel_protocol::normalize_udf_path("counter:increment").unwrap();
            loop {
                let _ = backend
                    .run_mutation(&path, Object::new(), &keel_backend::Identity::Anonymous)
                    .await;
                tokio::task::yield_now().await;
            }
        })
    };
    for round in 0..1000 {
        let mut late = live.transitions().unwrap();
        let seen = live.latest_ts();
        let first = tokio::time::timeout(WAIT, late.recv())
            .await
            .expect("a transition in time")
            .expect("the client is open");
        loop {
            let batch = all
                .try_recv()
                .expect("the same batch reached every listener");
            assert!(
                batch.ts <= seen || batch.ts >= first.ts,
                "round {round}: a transition at {} went to neither the new listener (first {}) \
                 nor latest_ts ({seen})",
                batch.ts,
                first.ts
            );
            if batch.ts == first.ts {
                break;
            }
        }
    }
    writer.abort();
    // Listeners end with the connection; none can be added after it.
    live.close();
    tokio::time::timeout(WAIT, async { while all.recv().await.is_some() {} })
        .await
        .expect("the listener ends");
    assert_eq!(live.transitions().unwrap_err().code(), "Closed");
}

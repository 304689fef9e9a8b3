//! A backend shutting down gracefully: sync sessions answer what they received and close with
//! 1001 ("going away"), the committer writes what it holds and refuses what comes later, and on
//! PostgreSQL the committer lease passes to a waiting node at once.

mod common;

use std::time::{Duration, Instant};

use common::{TestBackend, WAIT, WsClient, counter_in, updated_value, wait_until};
use futures::StreamExt;
use keel_db::persistence::PostgresTestSchema;
use keel_values::Object;
use serde_json::{Value as Json, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Everything the server sends until it closes: the JSON messages (Pings left out) and the
/// close frame's code and reason.
async fn until_close_frame(c: &mut WsClient) -> (Vec<Json>, Option<(CloseCode, String)>) {
    let mut seen = Vec::new();
    loop {
        let frame = tokio::time::timeout(WAIT, c.ws.next())
            .await
            .expect("a message or a close within the deadline");
        match frame {
            Some(Ok(Message::Text(text))) => {
                let message: Json = serde_json::from_str(&text).unwrap();
                if message["type"] != "Ping" {
                    seen.push(message);
                }
            }
            Some(Ok(Message::Close(frame))) => {
                return (seen, frame.map(|f| (f.code, f.reason.to_string())));
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return (seen, None),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_answer_what_they_received_then_close_with_going_away() {
    let b = TestBackend::start().await;
    let mut c = WsClient::connect_session(&b.ws_url("/api/sync")).await;
    c.add_query(0, 0, "counter:get", json!({})).await;
    c.transition_until(|t| counter_in(t, 0).is_some()).await;
    // A mutation that is still running when the shutdown begins (it takes 300 ms).
    c.send(&json!({
        "type": "Mutation", "requestId": 0, "udfPath": "counter:slowIncrement", "args": [{}],
    }))
    .await;
    // The session reads frames in order: once the query added after the mutation is answered,
    // the mutation was received (and runs for a while yet).
    c.send(&json!({
        "type": "ModifyQuerySet", "baseVersion": 1, "newVersion": 2,
        "modifications": [{"type": "Add", "queryId": 1, "udfPath": "messages:list", "args": [{}]}],
    }))
    .await;
    c.transition_until(|t| updated_value(t, 1).is_some()).await;
    let closing = tokio::spawn({
        let backend = b.backend.clone();
        async move { backend.close_sessions().await }
    });

    let (seen, close) = until_close_frame(&mut c).await;
    let response = seen
        .iter()
        .find(|m| m["type"] == "MutationResponse")
        .unwrap_or_else(|| panic!("the mutation was answered: {seen:?}"));
    assert_eq!(response["success"], true, "{response}");
    assert!(
        seen.iter().any(|m| counter_in(m, 0) == Some(1.0)),
        "a transition reflecting the mutation came before the close: {seen:?}"
    );
    let (code, reason) = close.expect("a close frame");
    assert_eq!(code, CloseCode::Away);
    assert!(reason.contains("shutting down"), "{reason}");
    tokio::time::timeout(WAIT, closing)
        .await
        .expect("close_sessions returns once the session closed")
        .unwrap();

    // A socket opened during the shutdown is closed the same way at once.
    let mut late = WsClient::connect_session(&b.ws_url("/api/sync")).await;
    let (_, close) = until_close_frame(&mut late).await;
    assert_eq!(close.map(|(code, _)| code), Some(CloseCode::Away));

    // Then the database: the shutdown refuses later mutations with a clear message.
    tokio::time::timeout(WAIT, b.backend.shutdown())
        .await
        .expect("the shutdown finishes");
    let path = keel_protocol::normalize_udf_path("counter:increment").unwrap();
    let refused = b
        .backend
        .run_mutation(&path, Object::new(), &keel_backend::Identity::Anonymous)
        .await
        .unwrap_err();
    assert!(
        format!("{refused:?}").contains("shutting down"),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committer_shutting_down_hands_the_lease_to_a_waiting_node_at_once() {
    let pg = PostgresTestSchema::create()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let config = keel_backend::BackendConfig::default();
    let committer = TestBackend::start_node(&pg, config.clone()).await;
    let follower = TestBackend::start_node(&pg, config).await;
    let follower_cluster = follower.backend.cluster().unwrap().clone();
    assert!(committer.backend.cluster().unwrap().is_committer());
    assert!(!follower_cluster.is_committer());
    committer.increment().await;

    // The committer's process stays alive (its connections stay open): only the hand-over in
    // the shutdown lets the follower take over.
    let started = Instant::now();
    tokio::time::timeout(WAIT, committer.backend.shutdown())
        .await
        .expect("the shutdown finishes");
    wait_until("the follower takes over", async || {
        follower_cluster.is_committer()
    })
    .await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "took over after {took:?}");
    // The new committer has every commit and commits on.
    assert_eq!(follower.increment().await, 2.0);
    follower.backend.shutdown().await;
}

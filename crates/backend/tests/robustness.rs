//! What misbehaving or slow clients can do to the sync endpoint: each protocol violation ends only
//! the offending socket with a `FatalError` that says what was wrong; oversized frames and
//! clients that stop reading are disconnected; everyone else keeps receiving updates. Plus the
//! work the server shares: one query execution for many identical subscriptions, and bursts of
//! commits coalesced into fewer transitions. Fuzzed frames are in `sync_fuzz.rs`.

mod common;

use common::{
    Next, TestBackend, WsClient, assert_still_served, backend_with_idp, connect_message,
    counter_in, healthy_subscriber, random_session_id, updated_value,
};
use futures::SinkExt;
use serde_json::{Value as Json, json};
use tokio_tungstenite::tungstenite::Message;

/// Sends `frames` on a fresh session and returns everything received until the server closed.
async fn fatal_after(b: &TestBackend, frames: Vec<Message>) -> Vec<Json> {
    let mut c = WsClient::connect_session(&b.ws_url("/api/sync")).await;
    for frame in frames {
        c.ws.send(frame).await.expect("frame sent");
    }
    c.until_closed().await
}

fn text(json: Json) -> Message {
    Message::Text(json.to_string().into())
}

#[tokio::test]
async fn protocol_violations_end_only_the_offending_socket() {
    let b = TestBackend::start().await;
    let mut healthy = healthy_subscriber(&b).await;
    let add = |base: u32, id: u32, path: &str| {
        text(
            json!({"type": "ModifyQuerySet", "baseVersion": base, "newVersion": base + 1,
                    "modifications": [{"type": "Add", "queryId": id, "udfPath": path, "args": [{}]}]}),
        )
    };
    let cases: Vec<(&str, Vec<Message>, &str)> = vec![
        (
            "malformed JSON",
            vec![Message::Text("{\"type\": \"Connect\",".into())],
            "InvalidJson",
        ),
        ("no type", vec![text(json!({"queryId": 1}))], "\"type\""),
        (
            "unknown type",
            vec![text(json!({"type": "Teleport"}))],
            "UnknownMessageType",
        ),
        (
            "binary frame",
            vec![Message::Binary(vec![1, 2, 3].into())],
            "BinaryFrame",
        ),
        (
            "missing field",
            vec![text(
                json!({"type": "Mutation", "udfPath": "counter:increment", "args": [{}]}),
            )],
            "requestId",
        ),
        (
            "query set base version",
            vec![add(0, 1, "counter:get"), add(0, 2, "counter:get")],
            "BaseVersionMismatch",
        ),
        (
            "duplicate query id",
            vec![add(0, 1, "counter:get"), add(1, 1, "messages:list")],
            "DuplicateQueryId",
        ),
        (
            "remove an unknown query",
            vec![text(
                json!({"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1,
                             "modifications": [{"type": "Remove", "queryId": 9}]}),
            )],
            "QueryNotFound",
        ),
        (
            "invalid query path",
            vec![add(0, 1, "no spaces:allowed")],
            "InvalidUdfPath",
        ),
        (
            "non-ASCII query path",
            vec![add(0, 1, "ünïcödé:fn")],
            "InvalidUdfPath",
        ),
        (
            "invalid mutation path",
            vec![text(
                json!({"type": "Mutation", "requestId": 0, "udfPath": "a:b:c:", "args": [{}]}),
            )],
            "InvalidUdfPath",
        ),
        (
            "identity base version",
            vec![text(
                json!({"type": "Authenticate", "tokenType": "None", "baseVersion": 3}),
            )],
            "IdentityVersionMismatch",
        ),
        (
            "bad maxObservedTimestamp",
            vec![text(
                json!({"type": "Connect", "sessionId": random_session_id(),
                             "connectionCount": 0, "lastCloseReason": null,
                             "maxObservedTimestamp": "short", "clientTs": 0}),
            )],
            "InvalidTimestamp",
        ),
    ];
    for (what, frames, expected) in cases {
        let received = fatal_after(&b, frames).await;
        let last = received
            .last()
            .unwrap_or_else(|| panic!("{what}: closed without a FatalError"));
        assert_eq!(last["type"], "FatalError", "{what}: {received:?}");
        let message = last["error"].as_str().unwrap();
        assert!(
            message.contains(expected),
            "{what}: {message:?} should mention {expected}"
        );
        assert_still_served(&b, &mut healthy).await;
    }
}

#[tokio::test]
async fn bad_arguments_fail_the_call_not_the_socket() {
    let b = TestBackend::start().await;
    let mut c = WsClient::connect_session(&b.ws_url("/api/sync")).await;
    c.send(
        &json!({"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": [
            {"type": "Add", "queryId": 1, "udfPath": "counter:get", "args": {"pad": 1}},
            {"type": "Add", "queryId": 2, "udfPath": "counter:get", "args": [{}, {}]},
            {"type": "Add", "queryId": 3, "udfPath": "counter:get", "args": [7]},
            {"type": "Add", "queryId": 4, "udfPath": "counter:get", "args": [{"pad": "many"}]},
            {"type": "Add", "queryId": 5, "udfPath": "counter:get", "args": [{}]},
            // An int64 where a number is declared, and a field nobody declared.
            {"type": "Add", "queryId": 6, "udfPath": "counter:get", "args": [{"pad": {"$integer": "AQAAAAAAAAA="}}]},
            {"type": "Add", "queryId": 7, "udfPath": "counter:get", "args": [{"pad": 1, "sort": "new"}]},
        ]}),
    )
    .await;
    let t = c.next_of("Transition").await;
    let failed = |id: u64| -> String {
        let m = t["modifications"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["queryId"] == id)
            .unwrap_or_else(|| panic!("query {id} got a result: {t}"));
        assert_eq!(m["type"], "QueryFailed", "{m}");
        m["errorMessage"].as_str().unwrap().to_owned()
    };
    assert!(failed(1).contains("array"), "{}", failed(1));
    assert!(failed(2).contains("exactly one object"), "{}", failed(2));
    assert!(failed(3).contains("object"), "{}", failed(3));
    assert!(failed(4).contains("pad"), "{}", failed(4));
    assert_eq!(counter_in(&t, 5), Some(0.0));
    assert_eq!(
        failed(6),
        "ArgumentValidationError: Value does not match validator.\nPath: .pad\nValue: 1n\n\
         Validator: v.float64() holding a whole number that fits u32"
    );
    assert!(
        failed(7).starts_with(
            "ArgumentValidationError: Object contains extra field `sort` that is not in the \
             validator."
        ),
        "{}",
        failed(7)
    );

    c.send(
        &json!({"type": "Mutation", "requestId": 0, "udfPath": "counter:increment", "args": [1]}),
    )
    .await;
    let response = c.next_of("MutationResponse").await;
    assert_eq!(response["success"], false);
    assert!(
        response["result"].as_str().unwrap().contains("object"),
        "{response}"
    );

    // The socket still works.
    c.send(
        &json!({"type": "Mutation", "requestId": 1, "udfPath": "counter:increment", "args": [{}]}),
    )
    .await;
    // Its response, and the query's update (which may come first).
    let (mut response, mut updated) = (None, false);
    while response.is_none() || !updated {
        let m = c.next().await;
        updated |= m["type"] == "Transition" && counter_in(&m, 5) == Some(1.0);
        if m["type"] == "MutationResponse" {
            response = Some(m);
        }
    }
    let response = response.unwrap();
    assert_eq!(
        (response["success"].clone(), response["result"].clone()),
        (json!(true), json!(1.0))
    );
}

#[tokio::test]
async fn an_oversized_frame_closes_only_that_socket() {
    let b = TestBackend::start().await;
    let mut healthy = healthy_subscriber(&b).await;
    let mut big = WsClient::connect_session(&b.ws_url("/api/sync")).await;
    let body = "x".repeat(17 << 20);
    let frame = json!({"type": "Mutation", "requestId": 0, "udfPath": "messages:send",
                       "args": [{"body": body}]});
    // The server may close while the frame is still being written.
    let _ = big.ws.send(Message::Text(frame.to_string().into())).await;
    loop {
        match big.next_any().await {
            Next::Closed => break,
            Next::Message(m) => assert_ne!(m["type"], "MutationResponse", "the frame was accepted"),
        }
    }
    assert_still_served(&b, &mut healthy).await;
    // Nothing was written.
    let list = b
        .backend
        .run_query(
            &keel_protocol::normalize_udf_path("messages:list").unwrap(),
            &Default::default(),
            &keel_backend::Identity::Anonymous,
            None,
        )
        .await
        .unwrap();
    assert_eq!(list, keel_values::Value::Array(vec![]));
}

/// Subscribes a client that never reads (tiny receive buffer) to `counter:get` with `pad` bytes of
/// padding, commits until the server drops it, and returns how many commits that took.
async fn commits_until_a_non_reader_is_dropped(
    b: &TestBackend,
    pad: u32,
    max_commits: usize,
) -> usize {
    let mut healthy = healthy_subscriber(b).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(b.addr).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(
        b.ws_url("/api/sync"),
        tokio_tungstenite::MaybeTlsStream::Plain(stream),
    )
    .await
    .unwrap();
    let mut slow = WsClient { ws };
    slow.send(&connect_message(&random_session_id(), 0)).await;
    slow.add_query(0, 0, "counter:get", json!({"pad": pad}))
        .await;

    // Commits, each seen by the healthy client, until the server gives up on the slow one: its
    // writes then fail because the server has closed the connection.
    let mut disconnected_after = None;
    for commit in 1..=max_commits {
        assert_still_served(b, &mut healthy).await;
        if commit % 5 == 0 {
            let probe = Message::Text(
                json!({"type": "Event", "eventType": "probe", "event": null})
                    .to_string()
                    .into(),
            );
            if slow.ws.send(probe).await.is_err() {
                disconnected_after = Some(commit);
                break;
            }
        }
    }
    let commits = disconnected_after
        .unwrap_or_else(|| panic!("not disconnected after {max_commits} commits of {pad} bytes"));
    // It got the first updates, not all of them: its socket ended early.
    let received = slow.until_closed().await;
    assert!(received.len() < commits, "{} of {commits}", received.len());
    assert_still_served(b, &mut healthy).await;
    commits
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected() {
    let b = TestBackend::start().await;
    commits_until_a_non_reader_is_dropped(&b, 16 << 10, 3000).await;
}

#[tokio::test]
async fn a_non_reader_of_large_results_is_dropped_before_much_is_queued() {
    // 1 MiB per transition: the server must not queue hundreds of them for a client that does
    // not read (the outbox is bounded in bytes, not only in messages).
    let b = TestBackend::start().await;
    let commits = commits_until_a_non_reader_is_dropped(&b, 1 << 20, 300).await;
    assert!(
        commits <= 60,
        "{commits} MiB-sized transitions before the client was dropped"
    );
}

#[tokio::test]
async fn identical_subscriptions_share_one_execution() {
    let (b, idp) = backend_with_idp().await;
    let (_, token) = idp.user_token("ada@example.com").await;
    let mut clients = Vec::new();
    for _ in 0..20 {
        let mut c = WsClient::connect_session(&b.ws_url("/api/sync")).await;
        c.send(
            &json!({"type": "Authenticate", "tokenType": "User", "value": token, "baseVersion": 0}),
        )
        .await;
        c.add_query(0, 0, "counter:get", json!({})).await;
        clients.push(c);
    }
    for c in &mut clients {
        let t = c.transition_until(|t| counter_in(t, 0).is_some()).await;
        assert_eq!(t["endVersion"]["identity"], 1);
    }
    let initial = b.counter_runs();
    assert!(
        initial <= 2,
        "20 identical subscriptions ran the query {initial} times"
    );

    for commit in 1..=3 {
        b.increment().await;
        let mut values = Vec::new();
        for c in &mut clients {
            let t = c.transition_until(|t| counter_in(t, 0).is_some()).await;
            values.push(updated_value(&t, 0).unwrap().clone());
        }
        assert!(
            values
                .iter()
                .all(|v| *v == json!({"n": commit as f64, "pad": ""})),
            "{values:?}"
        );
        let runs = b.counter_runs() - initial;
        assert!(
            runs <= 2 * commit,
            "{runs} executions for {commit} commits and 20 subscribers"
        );
    }
}

#[tokio::test]
async fn a_burst_of_commits_is_coalesced() {
    let b = TestBackend::start().await;
    let mut c = WsClient::connect_session(&b.ws_url("/api/sync")).await;
    c.add_query(0, 0, "messages:list", json!({})).await;
    let mut end = c.next_of("Transition").await["endVersion"].clone();

    let path = keel_protocol::normalize_udf_path("messages:send").unwrap();
    let burst: Vec<_> = (0..50)
        .map(|i| {
            let backend = b.backend.clone();
            let path = path.clone();
            tokio::spawn(async move {
                let args = keel_values::obj! { "body" => format!("m{i}") };
                backend
                    .run_mutation(
                        &path,
                        args.as_object().cloned().unwrap(),
                        &keel_backend::Identity::Anonymous,
                    )
                    .await
                    .expect("insert commits")
            })
        })
        .collect();
    for task in burst {
        task.await.unwrap();
    }

    let mut transitions = 0;
    let last = loop {
        let t = c.next_of("Transition").await;
        assert_eq!(t["startVersion"], end);
        end = t["endVersion"].clone();
        transitions += 1;
        if let Some(list) = updated_value(&t, 0)
            && list.as_array().unwrap().len() == 50
        {
            break list.clone();
        }
    };
    assert!(transitions < 50, "{transitions} transitions for 50 commits");
    let mut bodies: Vec<_> = last
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    bodies.sort();
    let mut expected: Vec<_> = (0..50).map(|i| format!("m{i}")).collect();
    expected.sort();
    assert_eq!(bodies, expected);
}

#[tokio::test]
async fn commits_during_a_transition_are_folded_into_the_next() {
    let b = TestBackend::start().await;
    let mut c = WsClient::connect_session(&b.ws_url("/api/sync")).await;
    c.add_query(0, 0, "counter:slowGet", json!({})).await;
    let mut end = c.next_of("Transition").await["endVersion"].clone();
    // 50 quick commits one after the other, while the subscriber's query takes 20 ms a run.
    for _ in 0..50 {
        b.increment().await;
    }
    let mut transitions = 0;
    loop {
        let t = c.next_of("Transition").await;
        assert_eq!(t["startVersion"], end);
        end = t["endVersion"].clone();
        transitions += 1;
        if updated_value(&t, 0) == Some(&json!(50.0)) {
            break;
        }
    }
    assert!(transitions < 50, "{transitions} transitions for 50 commits");
}

#[tokio::test]
async fn a_panicking_function_fails_its_call_not_the_socket() {
    let b = TestBackend::start().await;
    let mut c = WsClient::connect_session(&b.ws_url("/api/sync")).await;
    c.send(
        &json!({"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": [
            {"type": "Add", "queryId": 0, "udfPath": "counter:get", "args": [{}]},
            {"type": "Add", "queryId": 1, "udfPath": "panics:query", "args": [{}]},
        ]}),
    )
    .await;
    let t = c.next_of("Transition").await;
    assert_eq!(counter_in(&t, 0), Some(0.0), "{t}");
    let failed = t["modifications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["queryId"] == 1)
        .unwrap_or_else(|| panic!("no result for the panicking query: {t}"));
    assert_eq!(failed["type"], "QueryFailed");
    assert_eq!(failed["errorMessage"], keel_backend::INTERNAL_ERROR_MESSAGE);

    c.send(
        &json!({"type": "Mutation", "requestId": 0, "udfPath": "panics:mutation", "args": [{}]}),
    )
    .await;
    let response = c.next_of("MutationResponse").await;
    assert_eq!(response["success"], false);
    assert_eq!(response["result"], keel_backend::INTERNAL_ERROR_MESSAGE);

    // Nothing of the panicking mutation was committed, and the socket still works.
    c.send(
        &json!({"type": "Mutation", "requestId": 1, "udfPath": "counter:increment", "args": [{}]}),
    )
    .await;
    let response = c.next_of("MutationResponse").await;
    assert_eq!(response["result"], json!(1.0));

    // Over HTTP, a 200 error envelope.
    let response = reqwest::Client::new()
        .post(format!("{}/api/query", b.url()))
        .json(&json!({"path": "panics:query", "args": {}}))
        .send()
        .await
        .expect("a response, not a dropped connection");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let body: Json = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"status": "error", "errorMessage": keel_backend::INTERNAL_ERROR_MESSAGE})
    );
}

#[tokio::test]
async fn distinct_one_off_queries_do_not_pile_up_subscriptions() {
    // Callers can send endless distinct arguments; results nobody subscribes to must not keep a
    // database subscription each for ever.
    let b = TestBackend::start().await;
    let path = keel_protocol::normalize_udf_path("messages:list").unwrap();
    for i in 0..12_000 {
        let args = keel_values::obj! { "limit" => f64::from(i) };
        b.backend
            .run_query(
                &path,
                args.as_object().unwrap(),
                &keel_backend::Identity::Anonymous,
                None,
            )
            .await
            .unwrap();
    }
    let live = b.backend.database().subscriptions().len();
    assert!(
        live <= 10_000,
        "{live} live subscriptions after 12000 one-off queries"
    );
    // The cache still works for what is asked again.
    let mut healthy = healthy_subscriber(&b).await;
    assert_still_served(&b, &mut healthy).await;
}

#[tokio::test]
async fn a_flood_of_mutations_is_refused_beyond_the_queue_bound_and_the_socket_survives() {
    // 300 ms per mutation: 1,100 sent at once cannot all wait; the ones over the bound (1,024)
    // fail at once with a clear message instead of growing the server's memory.
    let b = TestBackend::start().await;
    let mut healthy = healthy_subscriber(&b).await;
    let mut flooder = WsClient::connect_session(&b.ws_url("/api/sync")).await;
    let sent = 1100;
    for request_id in 0..sent {
        flooder
            .send(&json!({
                "type": "Mutation",
                "requestId": request_id,
                "udfPath": "counter:slowIncrement",
                "args": [{}],
            }))
            .await;
    }
    let mut refused = 0;
    while refused < sent - 1024 - 1 {
        let message = flooder.next_of("MutationResponse").await;
        assert_eq!(message["success"], json!(false), "{message}");
        let text = message["result"].as_str().unwrap_or_default();
        assert!(text.starts_with("TooManyConcurrentRequests"), "{text}");
        refused += 1;
    }
    // The connection still answers, and other clients are unaffected.
    flooder.add_query(0, 0, "messages:list", json!({})).await;
    flooder
        .transition_until(|t| updated_value(t, 0).is_some())
        .await;
    assert_still_served(&b, &mut healthy).await;
}

#[tokio::test]
async fn a_function_running_past_its_time_limit_fails_and_commits_nothing() {
    // `counter:slowIncrement` sleeps 300 ms before writing; with a 100 ms limit it must fail
    // with FunctionTimeout, write nothing, and leave the connection usable.
    let b = TestBackend::start_with(keel_backend::BackendConfig {
        transaction_timeout: std::time::Duration::from_millis(100),
        ..keel_backend::BackendConfig::default()
    })
    .await;
    let mut c = WsClient::connect_session(&b.ws_url("/api/sync")).await;
    c.send(&json!({
        "type": "Mutation",
        "requestId": 0,
        "udfPath": "counter:slowIncrement",
        "args": [{}],
    }))
    .await;
    let response = c.next_of("MutationResponse").await;
    assert_eq!(response["success"], json!(false), "{response}");
    let message = response["result"].as_str().unwrap_or_default();
    assert!(
        message.contains("FunctionTimeout") && message.contains("counter:slowIncrement"),
        "{message}"
    );
    // Nothing was committed: the counter is still 0, then a normal increment works.
    c.add_query(0, 0, "counter:get", json!({})).await;
    let first = c.transition_until(|t| counter_in(t, 0).is_some()).await;
    assert_eq!(counter_in(&first, 0), Some(0.0), "{first}");
    assert_eq!(b.increment().await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heavily_contended_mutations_all_commit() {
    const WRITERS: usize = 32;
    let b = TestBackend::start().await;
    b.increment().await;
    let tasks: Vec<_> = (0..WRITERS)
        .map(|_| {
            let backend = b.backend.clone();
            tokio::spawn(async move {
                let path = keel_protocol::normalize_udf_path("counter:increment").unwrap();
                backend
                    .run_mutation(
                        &path,
                        Default::default(),
                        &keel_backend::Identity::Anonymous,
                    )
                    .await
            })
        })
        .collect();
    for task in tasks {
        let outcome = task.await.unwrap();
        assert!(outcome.is_ok(), "a contended increment failed: {outcome:?}");
    }
    assert_eq!(b.increment().await, (WRITERS + 2) as f64);
}

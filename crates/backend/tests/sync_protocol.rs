//! The WebSocket sync protocol spoken as raw JSON, checked the way the official clients check it:
//! version chaining, identity versions, read-your-writes timestamps, mutation de-duplication,
//! both endpoint paths, heartbeats.

mod common;

use std::time::Duration;

use common::{
    TestBackend, WsClient, backend_with_idp, connect_message, counter_in, random_session_id, ts,
    updated_value,
};
use keel_backend::BackendConfig;
use serde_json::{Value as Json, json};

const ZERO_TS: &str = "AAAAAAAAAAA=";

#[tokio::test]
async fn first_transition_starts_at_zero_and_versions_chain() {
    let b = TestBackend::start().await;
    let mut c = WsClient::connect_session(&b.ws_url("/api/sync")).await;
    c.add_query(0, 7, "counter:get", json!({})).await;
    let first = c.next().await;
    assert_eq!(first["type"], "Transition", "{first}");
    assert_eq!(
        first["startVersion"],
        json!({"querySet": 0, "identity": 0, "ts": ZERO_TS})
    );
    assert_eq!(first["endVersion"]["querySet"], 1);
    assert_eq!(first["endVersion"]["identity"], 0);
    assert_eq!(
        first["modifications"],
        json!([{"type": "QueryUpdated", "queryId": 7, "value": {"n": 0.0, "pad": ""},
                "logLines": [], "journal": null}])
    );
    assert!(first["serverTs"].is_u64(), "{first}");

    // Commits elsewhere: each transition starts exactly where the previous ended.
    let mut previous_end = first["endVersion"].clone();
    for expected in 1..=5 {
        b.increment().await;
        let t = c
            .transition_until(|t| counter_in(t, 7) == Some(expected as f64))
            .await;
        assert_eq!(
            t["startVersion"], previous_end,
            "chained at update {expected}"
        );
        assert!(ts(&t["endVersion"]["ts"]) >= ts(&previous_end["ts"]));
        previous_end = t["endVersion"].clone();
    }

    // Adding and removing queries moves the query-set version and chains too.
    c.send(&json!({
        "type": "ModifyQuerySet", "baseVersion": 1, "newVersion": 2,
        "modifications": [
            {"type": "Add", "queryId": 8, "udfPath": "messages:list", "args": [{}]},
            {"type": "Remove", "queryId": 7},
        ],
    }))
    .await;
    let t = c.next_of("Transition").await;
    assert_eq!(t["startVersion"], previous_end);
    assert_eq!(t["endVersion"]["querySet"], 2);
    let mods = t["modifications"].as_array().unwrap();
    assert!(
        mods.contains(&json!({"type": "QueryRemoved", "queryId": 7})),
        "{t}"
    );
    assert_eq!(updated_value(&t, 8), Some(&json!([])), "{t}");

    // An empty modification list still gets a transition.
    c.send(
        &json!({"type": "ModifyQuerySet", "baseVersion": 2, "newVersion": 3, "modifications": []}),
    )
    .await;
    let t2 = c.next_of("Transition").await;
    assert_eq!(t2["startVersion"], t["endVersion"]);
    assert_eq!(t2["endVersion"]["querySet"], 3);
    assert_eq!(t2["modifications"], json!([]));
}

#[tokio::test]
async fn authenticate_bumps_the_identity_version_even_when_no_result_changes() {
    let (b, idp) = backend_with_idp().await;
    let (user_id, token) = idp.user_token("ada@example.com").await;
    let mut c = WsClient::connect_session(&b.ws_url("/api/sync")).await;
    c.add_query(0, 1, "counter:get", json!({})).await;
    let first = c.next_of("Transition").await;

    c.send(&json!({"type": "Authenticate", "tokenType": "User", "value": token, "baseVersion": 0}))
        .await;
    let t = c.next_of("Transition").await;
    assert_eq!(t["startVersion"], first["endVersion"]);
    assert_eq!(t["endVersion"]["identity"], 1);
    // counter:get does not depend on the caller: nothing to send, but the transition comes.
    assert_eq!(t["modifications"], json!([]), "{t}");

    // A query that does depend on the caller sees the user.
    c.add_query(1, 2, "auth:whoami", json!({})).await;
    let t = c.next_of("Transition").await;
    assert_eq!(updated_value(&t, 2), Some(&json!(user_id)));

    // Logging out: identity 2, and the caller-dependent result changes.
    c.send(&json!({"type": "Authenticate", "tokenType": "None", "baseVersion": 1}))
        .await;
    let t = c.next_of("Transition").await;
    assert_eq!(t["endVersion"]["identity"], 2);
    assert_eq!(updated_value(&t, 2), Some(&Json::Null), "{t}");
}

#[tokio::test]
async fn a_bad_token_gets_auth_error_and_the_socket_closes() {
    let (b, idp) = backend_with_idp().await;
    let (_, token) = idp.user_token("ada@example.com").await;
    for bad in ["garbage".to_owned(), format!("{token}x")] {
        let mut c = WsClient::connect_session(&b.ws_url("/api/sync")).await;
        c.add_query(0, 1, "counter:get", json!({})).await;
        c.next_of("Transition").await;
        c.send(
            &json!({"type": "Authenticate", "tokenType": "User", "value": bad, "baseVersion": 0}),
        )
        .await;
        let rest = c.until_closed().await;
        let [error] = rest.as_slice() else {
            panic!("expected exactly one AuthError before the close: {rest:?}");
        };
        assert_eq!(error["type"], "AuthError", "{error}");
        assert_eq!(
            error["baseVersion"],
            json!(0),
            "numeric baseVersion: {error}"
        );
        assert_eq!(error["authUpdateAttempted"], json!(true));
        assert!(error["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
}

#[tokio::test]
async fn mutation_response_carries_ts_and_a_transition_reaches_it() {
    let b = TestBackend::start().await;
    let mut c = WsClient::connect_session(&b.ws_url("/api/sync")).await;
    c.add_query(0, 1, "messages:list", json!({})).await;
    let mut end = c.next_of("Transition").await["endVersion"].clone();
    for (request_id, body) in ["a", "b", "c"].iter().enumerate() {
        c.send(
            &json!({"type": "Mutation", "requestId": request_id, "udfPath": "messages:send",
                       "args": [{"body": body}]}),
        )
        .await;
        // The response, and after it a transition at or past the commit; every transition
        // chains (one reflecting the commit may come before the response, too).
        let mut response = None;
        let t = loop {
            let m = c.next().await;
            match m["type"].as_str() {
                Some("MutationResponse") => response = Some(m),
                Some("Transition") => {
                    assert_eq!(m["startVersion"], end);
                    end = m["endVersion"].clone();
                    if response.is_some() {
                        break m;
                    }
                }
                _ => panic!("unexpected {m}"),
            }
        };
        let response = response.unwrap();
        assert_eq!(response["requestId"], request_id);
        assert_eq!(response["success"], true);
        assert!(response["result"].is_string(), "the new id: {response}");
        assert_eq!(response["logLines"], json!([]));
        let commit_ts = ts(&response["ts"]);
        assert!(ts(&t["endVersion"]["ts"]) >= commit_ts, "read-your-writes");
        let list = b
            .backend
            .run_query(
                &keel_protocol::normalize_udf_path("messages:list").unwrap(),
                &Default::default(),
                &keel_backend::Identity::Anonymous,
                Some(ts(&t["endVersion"]["ts"])),
            )
            .await
            .unwrap();
        let keel_values::Value::Array(list) = list else {
            panic!("a list")
        };
        assert_eq!(list.len(), request_id + 1);
        end = t["endVersion"].clone();
    }

    // A failing mutation: success false, the message as result, no ts.
    c.send(&json!({"type": "Mutation", "requestId": 3, "udfPath": "messages:send", "args": [{}]}))
        .await;
    let response = c.next_of("MutationResponse").await;
    assert_eq!(response["success"], false);
    assert!(
        response["result"].as_str().unwrap().contains("body"),
        "{response}"
    );
    assert!(response["ts"].is_null(), "{response}");

    // Actions answer with ActionResponse and their mutation's effect shows up.
    c.add_query(1, 2, "counter:get", json!({})).await;
    let t = c
        .transition_until(|t| t["endVersion"]["querySet"] == 2)
        .await;
    assert_eq!(counter_in(&t, 2), Some(0.0));
    c.send(&json!({"type": "Action", "requestId": 4, "udfPath": "actions:bump", "args": [{}]}))
        .await;
    let mut seen_update = false;
    let response = loop {
        let m = c.next().await;
        seen_update |= m["type"] == "Transition" && counter_in(&m, 2) == Some(1.0);
        if m["type"] == "ActionResponse" {
            break m;
        }
    };
    assert_eq!(
        (response["requestId"].clone(), response["success"].clone()),
        (json!(4), json!(true))
    );
    assert_eq!(response["result"], json!(1.0));
    // The action's commit is visible no later than the transition after its response.
    let t = c.next_of("Transition").await;
    assert!(seen_update || counter_in(&t, 2) == Some(1.0), "{t}");
}

/// Request 0 of a session: `counter:increment` by 5.
fn increment_by_five() -> serde_json::Value {
    json!({"type": "Mutation", "requestId": 0, "udfPath": "counter:increment", "args": [{"by": 5}]})
}

/// Sends `mutation` on the first socket of session `session_id`; its response (the socket
/// closes after).
async fn first_attempt(
    b: &TestBackend,
    session_id: &str,
    mutation: &serde_json::Value,
) -> serde_json::Value {
    let mut first = WsClient::connect(&b.ws_url("/api/sync")).await;
    first.send(&connect_message(session_id, 0)).await;
    first.send(mutation).await;
    let original = first.next_of("MutationResponse").await;
    assert_eq!(original["result"], json!(5.0));
    original
}

/// Reconnects session `session_id` (its second socket, on `path`) and sends `mutation` again,
/// as a client that saw no response does: the socket and the response.
async fn resend(
    b: &TestBackend,
    path: &str,
    session_id: &str,
    mutation: &serde_json::Value,
    close_reason: &str,
) -> (WsClient, serde_json::Value) {
    let mut second = WsClient::connect(&b.ws_url(path)).await;
    let mut reconnect = connect_message(session_id, 0);
    reconnect["connectionCount"] = json!(1);
    reconnect["lastCloseReason"] = json!(close_reason);
    second.send(&reconnect).await;
    second.send(mutation).await;
    let replayed = second.next_of("MutationResponse").await;
    (second, replayed)
}

#[tokio::test]
async fn a_resent_mutation_of_the_same_session_runs_once() {
    let b = TestBackend::start().await;
    let session_id = random_session_id();
    let mutation = increment_by_five();
    let original = first_attempt(&b, &session_id, &mutation).await;

    // The client reconnects with the same session id and sends the request again.
    let (mut second, replayed) = resend(
        &b,
        "/api/1.48.0/sync",
        &session_id,
        &mutation,
        "client closed",
    )
    .await;
    assert_eq!(replayed, original, "the stored outcome is replayed");

    // Ran once: the counter moved by 5, not 10.
    second.add_query(0, 1, "counter:get", json!({})).await;
    let t = second
        .transition_until(|t| t["endVersion"]["querySet"] == 1)
        .await;
    assert_eq!(counter_in(&t, 1), Some(5.0));

    // Another session with the same request id is a different request.
    let mut other = WsClient::connect_session(&b.ws_url("/api/sync")).await;
    other.send(&mutation).await;
    assert_eq!(
        other.next_of("MutationResponse").await["result"],
        json!(10.0)
    );
}

#[tokio::test]
async fn a_mutation_resent_after_a_backend_restart_runs_once() {
    let b = TestBackend::start().await;
    let session_id = random_session_id();
    let mutation = increment_by_five();
    let original = first_attempt(&b, &session_id, &mutation).await;

    // The process restarts (its in-memory log is gone); the client did not see the response,
    // so it reconnects with the same session and sends the request again.
    let b = b.restart().await;
    let (mut second, replayed) = resend(
        &b,
        "/api/sync",
        &session_id,
        &mutation,
        "the server restarted",
    )
    .await;
    assert_eq!(replayed["success"], json!(true), "{replayed}");
    assert_eq!(replayed["result"], original["result"], "the first outcome");
    assert!(
        keel_protocol::decode_ts(replayed["ts"].as_str().unwrap()).unwrap()
            >= keel_protocol::decode_ts(original["ts"].as_str().unwrap()).unwrap(),
        "a timestamp covering the first commit"
    );
    // Ran once: the counter moved by 5, not 10; the next request of the session runs.
    second.add_query(0, 1, "counter:get", json!({})).await;
    let t = second
        .transition_until(|t| t["endVersion"]["querySet"] == 1)
        .await;
    assert_eq!(counter_in(&t, 1), Some(5.0));
    let mut next = mutation.clone();
    next["requestId"] = json!(1);
    second.send(&next).await;
    assert_eq!(
        second.next_of("MutationResponse").await["result"],
        json!(10.0)
    );
}

#[tokio::test]
async fn both_sync_paths_serve_the_protocol() {
    let b = TestBackend::start().await;
    for path in ["/api/sync", "/api/1.48.0/sync", "/api/1.49.0/sync"] {
        let mut c = WsClient::connect_session(&b.ws_url(path)).await;
        c.add_query(0, 0, "values:sample", json!({})).await;
        let t = c.next_of("Transition").await;
        assert_eq!(
            updated_value(&t, 0),
            Some(&json!({"big": {"$integer": "KgAAAAAAAAA="}, "half": 0.5, "name": "keel"})),
            "{path}: values travel as Convex JSON"
        );
    }
}

#[tokio::test]
async fn an_idle_socket_receives_pings() {
    let b = TestBackend::start_with(BackendConfig {
        heartbeat_interval: Duration::from_millis(150),
        ..BackendConfig::default()
    })
    .await;
    let mut c = WsClient::connect_session(&b.ws_url("/api/sync")).await;
    c.add_query(0, 0, "counter:get", json!({})).await;
    c.next_of("Transition").await;
    for _ in 0..2 {
        match c.next_any().await {
            common::Next::Message(m) => assert_eq!(m, json!({"type": "Ping"})),
            common::Next::Closed => panic!("closed instead of pinging"),
        }
    }
    // Still a live session afterwards.
    b.increment().await;
    c.transition_until(|t| counter_in(t, 0) == Some(1.0)).await;
}

#[tokio::test]
async fn results_are_never_shared_across_identities() {
    let (b, idp) = backend_with_idp().await;
    let (ada_id, ada) = idp.user_token("ada@example.com").await;
    let (bob_id, bob) = idp.user_token("bob@example.com").await;
    let mut expected = Vec::new();
    let mut clients = Vec::new();
    for (token, id) in [
        (Some(&ada), json!(ada_id)),
        (Some(&bob), json!(bob_id)),
        (None, Json::Null),
    ] {
        let mut c = WsClient::connect_session(&b.ws_url("/api/sync")).await;
        if let Some(token) = token {
            c.send(
                &json!({"type": "Authenticate", "tokenType": "User", "value": token,
                           "baseVersion": 0}),
            )
            .await;
        }
        c.add_query(0, 0, "auth:whoami", json!({})).await;
        clients.push(c);
        expected.push(id);
    }
    for (c, id) in clients.iter_mut().zip(&expected) {
        let t = c.transition_until(|t| updated_value(t, 0).is_some()).await;
        assert_eq!(updated_value(&t, 0), Some(id));
    }
}

#[tokio::test]
async fn only_changed_results_are_sent_again() {
    let b = TestBackend::start().await;
    let mut c = WsClient::connect_session(&b.ws_url("/api/sync")).await;
    c.send(
        &json!({"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": [
            {"type": "Add", "queryId": 0, "udfPath": "counter:get", "args": [{}], "journal": "j0"},
            {"type": "Add", "queryId": 1, "udfPath": "messages:list", "args": [{}]},
            {"type": "Add", "queryId": 2, "udfPath": "values:sample", "args": [{}]},
        ]}),
    )
    .await;
    let t = c.next_of("Transition").await;
    assert_eq!(t["modifications"].as_array().unwrap().len(), 3, "{t}");
    let journal = |t: &Json, id: u64| {
        t["modifications"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["queryId"] == id)
            .unwrap()["journal"]
            .clone()
    };
    assert_eq!(
        journal(&t, 0),
        Json::Null,
        "a query that does not paginate writes an empty journal, whatever the client sent"
    );
    assert_eq!(journal(&t, 1), Json::Null);

    b.increment().await;
    let t = c.transition_until(|t| counter_in(t, 0) == Some(1.0)).await;
    assert_eq!(
        t["modifications"].as_array().unwrap().len(),
        1,
        "only counter:get changed: {t}"
    );

    // A commit that the counter query reads but that leaves its result the same sends nothing.
    let path = keel_protocol::normalize_udf_path("counter:increment").unwrap();
    let args = keel_values::obj! { "by" => 0.0 };
    b.backend
        .run_mutation(
            &path,
            args.as_object().cloned().unwrap(),
            &keel_backend::Identity::Anonymous,
        )
        .await
        .unwrap();
    c.send(&json!({"type": "Mutation", "requestId": 0, "udfPath": "messages:send", "args": [{"body": "hi"}]}))
        .await;
    let t = c
        .transition_until(|t| {
            let mods = t["modifications"].as_array().unwrap();
            assert!(
                mods.iter().all(|m| m["queryId"] != 0),
                "unchanged result re-sent: {t}"
            );
            updated_value(t, 1).is_some()
        })
        .await;
    assert_eq!(t["modifications"].as_array().unwrap().len(), 1, "{t}");
}

#[tokio::test]
async fn admin_keys_are_refused_with_auth_error() {
    let b = TestBackend::start().await;
    let mut c = WsClient::connect_session(&b.ws_url("/api/sync")).await;
    c.send(&json!({"type": "Authenticate", "tokenType": "Admin", "value": "prod:secret", "baseVersion": 0}))
        .await;
    let rest = c.until_closed().await;
    let [error] = rest.as_slice() else {
        panic!("expected one AuthError: {rest:?}");
    };
    assert_eq!(error["type"], "AuthError");
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("admin key was invalid")
    );
    assert_eq!(error["baseVersion"], json!(0));
}

#[tokio::test]
async fn a_failed_reauthentication_reports_the_current_identity_version() {
    let (b, idp) = backend_with_idp().await;
    let (_, token) = idp.user_token("ada@example.com").await;
    let mut c = WsClient::connect_session(&b.ws_url("/api/sync")).await;
    c.send(&json!({"type": "Authenticate", "tokenType": "User", "value": token, "baseVersion": 0}))
        .await;
    let t = c.next_of("Transition").await;
    assert_eq!(t["endVersion"]["identity"], 1);
    c.send(&json!({"type": "Authenticate", "tokenType": "User", "value": "expired.or.bad", "baseVersion": 1}))
        .await;
    let rest = c.until_closed().await;
    let [error] = rest.as_slice() else {
        panic!("expected one AuthError: {rest:?}");
    };
    assert_eq!(error["type"], "AuthError");
    assert_eq!(error["baseVersion"], json!(1), "{error}");
    assert_eq!(error["authUpdateAttempted"], json!(true));
}

#[tokio::test]
async fn mutations_of_one_socket_run_in_arrival_order() {
    let b = TestBackend::start().await;
    let mut c = WsClient::connect_session(&b.ws_url("/api/sync")).await;
    c.add_query(0, 0, "messages:list", json!({})).await;
    for i in 0..20 {
        c.send(
            &json!({"type": "Mutation", "requestId": i, "udfPath": "messages:send",
                       "args": [{"body": format!("m{i:02}")}]}),
        )
        .await;
    }
    let mut responses = Vec::new();
    let mut last_ts = 0;
    let mut final_list = None;
    while responses.len() < 20 || final_list.is_none() {
        let m = c.next().await;
        if m["type"] == "Transition" {
            if let Some(list) = updated_value(&m, 0)
                && list.as_array().unwrap().len() == 20
            {
                final_list = Some(list.clone());
            }
            continue;
        }
        assert_eq!(m["type"], "MutationResponse", "{m}");
        assert_eq!(m["success"], true, "{m}");
        let commit_ts = ts(&m["ts"]);
        assert!(
            commit_ts > last_ts,
            "commit timestamps follow arrival order"
        );
        last_ts = commit_ts;
        responses.push(m["requestId"].as_u64().unwrap());
    }
    assert_eq!(responses, (0..20).collect::<Vec<_>>());
    let expected: Vec<Json> = (0..20).map(|i| json!(format!("m{i:02}"))).collect();
    assert_eq!(final_list, Some(Json::Array(expected)));
}

#[tokio::test]
async fn a_mutation_resent_while_still_running_runs_once() {
    let b = TestBackend::start().await;
    let session_id = random_session_id();
    let mutation = json!({"type": "Mutation", "requestId": 3, "udfPath": "counter:slowIncrement",
                          "args": [{}]});
    let mut first = WsClient::connect(&b.ws_url("/api/sync")).await;
    first.send(&connect_message(&session_id, 0)).await;
    first.send(&mutation).await;
    // The connection drops while the mutation runs; the client reconnects and sends it again.
    first.ws.close(None).await.expect("closed");
    drop(first);
    let mut second = WsClient::connect(&b.ws_url("/api/sync")).await;
    second.send(&connect_message(&session_id, 0)).await;
    second.send(&mutation).await;
    let response = second.next_of("MutationResponse").await;
    assert_eq!(response["result"], json!(1.0), "{response}");
    let n = b.increment().await;
    assert_eq!(n, 2.0, "the slow mutation ran once");
}

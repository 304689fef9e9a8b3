//! Internal functions and calls between functions as clients meet them over the HTTP API and
//! the sync protocol: an internal function is unknown to every endpoint (the very answer of a
//! path with no function), while public functions that call it work; a `ConvexError` raised by
//! a callee reaches the client with its data, an internal failure stays generic, and a query
//! whose only reads are its callee's stays live.

mod common;

use common::{TestBackend, WsClient, backend_with_idp, updated_value};
use serde_json::{Value as Json, json};

/// The value of `calls:peek` (query 0) in a transition, if it was updated there.
fn peeked(transition: &Json) -> Option<f64> {
    updated_value(transition, 0).and_then(Json::as_f64)
}

/// POSTs `body` as JSON to `endpoint`; returns the status and the JSON answer.
async fn post(b: &TestBackend, endpoint: &str, body: &Json) -> (u16, Json) {
    let response = reqwest::Client::new()
        .post(format!("{}{endpoint}", b.url()))
        .json(body)
        .send()
        .await
        .expect("request completes");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON answer"))
}

/// The HTTP API's answers for `path` on every endpoint a client may use to call a function.
async fn http_answers(b: &TestBackend, path: &str) -> Vec<(u16, Json)> {
    let call = json!({ "path": path, "args": {} });
    let (module, function) = path.split_once(':').expect("module:function");
    let mut answers = Vec::new();
    for endpoint in [
        "/api/query",
        "/api/mutation",
        "/api/action",
        "/api/function",
    ] {
        answers.push(post(b, endpoint, &call).await);
    }
    answers.push(post(b, &format!("/api/run/{module}/{function}"), &json!({})).await);
    let ts = post(b, "/api/query_ts", &json!({})).await.1["ts"].clone();
    answers.push(
        post(
            b,
            "/api/query_at_ts",
            &json!({ "path": path, "args": {}, "ts": ts }),
        )
        .await,
    );
    let get = reqwest::get(format!("{}/api/query?path={path}&args=%7B%7D", b.url()))
        .await
        .expect("request completes");
    answers.push((get.status().as_u16(), get.json().await.expect("JSON")));
    answers
}

/// `answers` with `from` renamed `to` wherever it appears.
fn renamed(answers: &[(u16, Json)], from: &str, to: &str) -> Vec<(u16, Json)> {
    answers
        .iter()
        .map(|(status, body)| {
            let body = body.to_string().replace(from, to);
            (*status, serde_json::from_str(&body).expect("JSON"))
        })
        .collect()
}

#[tokio::test]
async fn over_http_an_internal_function_is_answered_as_a_missing_one() {
    let b = TestBackend::start().await;
    b.increment().await;
    let missing = http_answers(&b, "counter:nope").await;
    assert_eq!(
        missing[0],
        (
            200,
            json!({
                "status": "error",
                "errorMessage": "Could not find public function for 'counter:nope'. Module \
                                 `counter` registers: get, increment, slowGet, slowIncrement."
            })
        ),
        "the listing names public functions only"
    );
    assert_eq!(missing[4].0, 404, "/api/run: {:?}", missing[4]);
    for internal in ["counter:peek", "counter:reset", "counter:resetVia"] {
        assert_eq!(
            http_answers(&b, internal).await,
            renamed(&missing, "counter:nope", internal),
            "{internal}"
        );
    }
    // Nothing ran: the counter is as it was.
    let (_, counter) = post(
        &b,
        "/api/query",
        &json!({ "path": "counter:get", "args": {} }),
    )
    .await;
    assert_eq!(counter["value"]["n"], 1.0);
}

#[tokio::test]
async fn over_the_sync_protocol_an_internal_function_is_answered_as_a_missing_one() {
    let b = TestBackend::start().await;
    let mut c = WsClient::connect_session(&b.ws_url("/api/sync")).await;
    let mut answers = Vec::new();
    for (n, path) in ["counter:nope", "counter:peek"].into_iter().enumerate() {
        let id = n as u32;
        c.add_query(id, id, path, json!({})).await;
        let t = c
            .transition_until(|t| t["endVersion"]["querySet"] == id + 1)
            .await;
        let failed = t["modifications"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["queryId"] == id))
            .cloned()
            .expect("the query's result");
        c.send(&json!({"type": "Mutation", "requestId": 2 * id, "udfPath": path, "args": [{}]}))
            .await;
        let mutation = c.next_of("MutationResponse").await;
        c.send(&json!({"type": "Action", "requestId": 2 * id + 1, "udfPath": path, "args": [{}]}))
            .await;
        let action = c.next_of("ActionResponse").await;
        answers.push([
            json!({ "type": failed["type"], "errorMessage": failed["errorMessage"] }),
            json!({ "success": mutation["success"], "result": mutation["result"] }),
            json!({ "success": action["success"], "result": action["result"] }),
        ]);
    }
    assert_eq!(answers[0][0]["type"], "QueryFailed");
    assert_eq!(answers[0][1]["success"], false);
    let missing = serde_json::to_string(&answers[0]).unwrap();
    assert_eq!(
        serde_json::to_string(&answers[1]).unwrap(),
        missing.replace("counter:nope", "counter:peek")
    );
    // The socket keeps serving.
    c.send(
        &json!({"type": "Mutation", "requestId": 9, "udfPath": "counter:increment", "args": [{}]}),
    )
    .await;
    assert_eq!(c.next_of("MutationResponse").await["result"], 1.0);
}

#[tokio::test]
async fn calls_between_functions_reach_clients_with_their_errors_and_stay_live() {
    let b = TestBackend::start().await;
    let call = async |endpoint: &str, path: &str| {
        post(&b, endpoint, &json!({ "path": path, "args": {} }))
            .await
            .1
    };
    let messages = async || call("/api/query", "messages:list").await["value"].clone();

    // A callee's ConvexError, passed on: its message and data; the caller's write is undone.
    assert_eq!(
        call("/api/mutation", "calls:refuseInside").await,
        json!({ "status": "error", "errorMessage": "Refused inside", "errorData": { "code": "NESTED" } })
    );
    assert_eq!(messages().await, json!([]));
    // Handled by the caller: only the callee's write is undone.
    assert_eq!(
        call("/api/mutation", "calls:surviveInside").await,
        json!({ "status": "success", "value": { "code": "NESTED" } })
    );
    assert_eq!(messages().await, json!(["caller"]));
    // A callee's internal failure stays internal.
    assert_eq!(
        call("/api/mutation", "calls:panicInside").await,
        json!({ "status": "error", "errorMessage": keel_backend::INTERNAL_ERROR_MESSAGE })
    );
    assert_eq!(messages().await, json!(["caller"]));

    // Over the sync protocol: the same error, and a query reading only through its callee stays
    // live.
    let mut c = WsClient::connect_session(&b.ws_url("/api/sync")).await;
    c.add_query(0, 0, "calls:peek", json!({})).await;
    c.transition_until(|t| peeked(t) == Some(0.0)).await;
    b.increment().await;
    c.transition_until(|t| peeked(t) == Some(1.0)).await;
    c.send(
        &json!({"type": "Mutation", "requestId": 0, "udfPath": "calls:refuseInside", "args": [{}]}),
    )
    .await;
    let refused = c.next_of("MutationResponse").await;
    assert_eq!(
        (
            &refused["success"],
            &refused["result"],
            &refused["errorData"]
        ),
        (
            &json!(false),
            &json!("Refused inside"),
            &json!({ "code": "NESTED" })
        ),
        "{refused}"
    );
    // An action whose internal action runs an internal mutation; the live query follows it.
    c.send(&json!({"type": "Action", "requestId": 1, "udfPath": "calls:reset", "args": [{}]}))
        .await;
    // The transition with the reset may come before the answer or after it.
    let mut seen = false;
    let reset = loop {
        let m = c.next().await;
        seen |= m["type"] == "Transition" && peeked(&m) == Some(0.0);
        if m["type"] == "ActionResponse" {
            break m;
        }
    };
    assert_eq!(reset["success"], true, "{reset}");
    assert_eq!(reset["result"].as_f64(), Some(1.0), "{reset}");
    if !seen {
        c.transition_until(|t| peeked(t) == Some(0.0)).await;
    }
}

#[tokio::test]
async fn a_callee_runs_as_its_caller() {
    let (b, idp) = backend_with_idp().await;
    let (user_id, token) = idp.user_token("ada@example.com").await;
    let call = async |endpoint: &str, path: &str| {
        let response = reqwest::Client::new()
            .post(format!("{}{endpoint}", b.url()))
            .bearer_auth(&token)
            .json(&json!({ "path": path, "args": {} }))
            .send()
            .await
            .expect("request completes");
        response.json::<Json>().await.expect("JSON")["value"].clone()
    };
    assert_eq!(call("/api/query", "calls:whoami").await, json!(user_id));
    call("/api/mutation", "calls:sendAsMeInside").await;
    assert_eq!(call("/api/query", "messages:list").await, json!([user_id]));
}

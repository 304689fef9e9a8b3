//! Query results shared across identities, through the transports: subscribers of every
//! identity to a query that asks only whether its caller is signed in share one execution and
//! all get each commit's result (the official Rust client over the sync protocol), while a query
//! that reads the identity — itself or through a query it calls — answers every caller with
//! their own, over the sync protocol, the HTTP API and the in-process transport alike, whoever
//! asked first.

mod common;

use std::collections::BTreeMap;

use common::{TestBackend, TestIdp, backend_with_idp, next_result};
use convex::{ConvexClient, FunctionResult, QuerySubscription, Value};
use serde_json::{Value as Json, json};

/// How many times `path` has run on this backend.
fn executions(b: &TestBackend, path: &str) -> usize {
    let page = b.backend.execution_log().read(0, usize::MAX);
    page.entries.iter().filter(|e| e.path == path).count()
}

/// Results of `subscription` until one is `expected` (the official client may publish the value
/// it already had again before the new one), within the deadline of each.
async fn until(subscription: &mut QuerySubscription, expected: &FunctionResult) {
    let mut seen = Vec::new();
    for _ in 0..10 {
        let result = next_result(subscription).await;
        if &result == expected {
            return;
        }
        seen.push(result);
    }
    panic!("never {expected:?}, only {seen:?}");
}

/// A client of the backend signed in as a new user with this email; returns the user's id too.
async fn signed_in(b: &TestBackend, idp: &TestIdp, email: &str) -> (String, ConvexClient) {
    let (user_id, token) = idp.user_token(email).await;
    let mut client = ConvexClient::new(&b.url()).await.expect("client connects");
    client.set_auth(Some(token)).await;
    (user_id, client)
}

/// A `messages:signedIn` result.
fn messages(texts: &[&str]) -> FunctionResult {
    let texts = texts.iter().map(|t| Value::String((*t).to_owned()));
    FunctionResult::Value(Value::Array(texts.collect()))
}

/// The data of the `UNAUTHENTICATED` refusal.
fn unauthenticated() -> Value {
    let code = (
        "code".to_owned(),
        Value::String("UNAUTHENTICATED".to_owned()),
    );
    Value::Object(BTreeMap::from([code]))
}

#[tokio::test]
async fn subscribers_of_every_identity_share_one_execution_and_each_gets_every_commit() {
    let (b, idp) = backend_with_idp().await;
    let mut users = Vec::new();
    for email in ["ann@example.com", "bob@example.com", "cyd@example.com"] {
        users.push(signed_in(&b, &idp, email).await);
    }
    let mut lists = Vec::new();
    let mut mes = Vec::new();
    for (_, client) in &mut users {
        let list = client.subscribe("messages:signedIn", BTreeMap::new());
        lists.push(list.await.expect("subscribed"));
        let me = client.subscribe("auth:whoami", BTreeMap::new());
        mes.push(me.await.expect("subscribed"));
    }
    for list in &mut lists {
        assert_eq!(next_result(list).await, messages(&[]));
    }
    for ((user_id, _), me) in users.iter().zip(&mut mes) {
        let own = FunctionResult::Value(Value::String(user_id.clone()));
        assert_eq!(next_result(me).await, own, "each sees their own identity");
    }
    assert_eq!(
        executions(&b, "messages:signedIn"),
        1,
        "one for all signed-in"
    );
    assert_eq!(executions(&b, "auth:whoami"), 3, "one for each identity");

    // The anonymous client gets the refusal, never the signed-in callers' result.
    let mut anonymous = ConvexClient::new(&b.url()).await.expect("client connects");
    let mut refused = anonymous
        .subscribe("messages:signedIn", BTreeMap::new())
        .await
        .expect("subscribed");
    match next_result(&mut refused).await {
        FunctionResult::ConvexError(error) => assert_eq!(error.data, unauthenticated()),
        other => panic!("not refused: {other:?}"),
    }
    let mut anonymous_me = anonymous
        .subscribe("auth:whoami", BTreeMap::new())
        .await
        .expect("subscribed");
    assert_eq!(
        next_result(&mut anonymous_me).await,
        FunctionResult::Value(Value::Null)
    );
    assert_eq!(executions(&b, "messages:signedIn"), 2);

    // A commit: every signed-in subscriber gets the new result, from one execution.
    let sent = users[1]
        .1
        .mutation(
            "messages:send",
            BTreeMap::from([("body".to_owned(), Value::String("hello".to_owned()))]),
        )
        .await
        .expect("mutation ran");
    assert!(matches!(sent, FunctionResult::Value(_)), "{sent:?}");
    for list in &mut lists {
        until(list, &messages(&["hello"])).await;
    }
    assert_eq!(executions(&b, "messages:signedIn"), 3);
    // The identity readers were not touched, and still answer each their own.
    for (user_id, client) in &mut users {
        let me = client.query("calls:whoami", BTreeMap::new()).await;
        assert_eq!(
            me.expect("query ran"),
            FunctionResult::Value(Value::String(user_id.clone()))
        );
    }
}

/// Posts a query to the HTTP API with `token` (none: anonymous); returns the response's body.
async fn query(b: &TestBackend, path: &str, token: Option<&str>) -> Json {
    let mut request = reqwest::Client::new()
        .post(format!("{}/api/query", b.url()))
        .json(&json!({ "path": path, "args": {} }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request completes");
    assert!(response.status().is_success(), "{response:?}");
    response.json().await.expect("a JSON body")
}

#[tokio::test]
async fn over_the_http_api_no_caller_gets_another_callers_result() {
    let (b, idp) = backend_with_idp().await;
    let (ann, ann_token) = idp.user_token("ann@example.com").await;
    let (bob, bob_token) = idp.user_token("bob@example.com").await;
    let (ann_token, bob_token) = (Some(ann_token.as_str()), Some(bob_token.as_str()));

    for path in ["auth:whoami", "calls:whoami"] {
        // Ann first, so that her result is cached when the others ask.
        assert_eq!(
            query(&b, path, ann_token).await["value"],
            json!(ann),
            "{path}"
        );
        assert_eq!(
            query(&b, path, bob_token).await["value"],
            json!(bob),
            "{path}"
        );
        assert_eq!(query(&b, path, None).await["value"], Json::Null, "{path}");
        assert_eq!(
            query(&b, path, ann_token).await["value"],
            json!(ann),
            "{path}"
        );
    }

    assert_eq!(
        query(&b, "messages:signedIn", ann_token).await["value"],
        json!([])
    );
    assert_eq!(
        query(&b, "messages:signedIn", bob_token).await["value"],
        json!([])
    );
    let refused = query(&b, "messages:signedIn", None).await;
    assert_eq!(refused["status"], "error", "{refused}");
    assert_eq!(
        refused["errorData"],
        json!({ "code": "UNAUTHENTICATED" }),
        "{refused}"
    );
    assert_eq!(executions(&b, "messages:signedIn"), 2);
}

/// Runs a query through the in-process transport with `token` (none: anonymous).
async fn in_process_query(
    direct: &keel_backend::InProcess,
    path: &str,
    token: Option<&str>,
) -> Result<keel_values::Value, keel_protocol::InProcessError> {
    use keel_protocol::InProcessBackend;
    let call = keel_protocol::InProcessCall {
        kind: keel_protocol::CallKind::Query { ts: None },
        path: path.to_owned(),
        args: keel_values::Object::new(),
        token: token.map(Into::into),
    };
    direct.call(call).await.map(std::sync::Arc::unwrap_or_clone)
}

#[tokio::test]
async fn in_process_no_caller_gets_another_callers_result() {
    let (b, idp) = backend_with_idp().await;
    let direct = keel_backend::InProcess::new(b.backend.clone());
    let (ann, ann_token) = idp.user_token("ann@example.com").await;
    let (bob, bob_token) = idp.user_token("bob@example.com").await;
    let (ann_token, bob_token) = (Some(ann_token.as_str()), Some(bob_token.as_str()));
    let user = |id: &str| Ok(keel_values::Value::from(id));

    for path in ["auth:whoami", "calls:whoami"] {
        assert_eq!(in_process_query(&direct, path, ann_token).await, user(&ann));
        assert_eq!(in_process_query(&direct, path, bob_token).await, user(&bob));
        let anonymous = in_process_query(&direct, path, None).await;
        assert_eq!(anonymous, Ok(keel_values::Value::Null), "{path}");
    }

    let empty = Ok(keel_values::Value::Array(Vec::new()));
    assert_eq!(
        in_process_query(&direct, "messages:signedIn", bob_token).await,
        empty
    );
    assert_eq!(
        in_process_query(&direct, "messages:signedIn", ann_token).await,
        empty
    );
    match in_process_query(&direct, "messages:signedIn", None).await {
        Err(keel_protocol::InProcessError::Failed { data, .. }) => {
            let data = data.expect("a ConvexError's data");
            let code = &data.as_object().expect("an object")["code"];
            assert_eq!(code, &keel_values::Value::from("UNAUTHENTICATED"));
        }
        other => panic!("not refused: {other:?}"),
    }
    assert_eq!(executions(&b, "messages:signedIn"), 2);
}

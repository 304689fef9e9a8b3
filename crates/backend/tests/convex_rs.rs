//! The official Rust client (`convex` 0.10.4) against Keel: subscriptions with updates,
//! mutations, actions, authentication and application errors.

mod common;

use std::collections::BTreeMap;

use common::{TestBackend, WAIT, backend_with_idp};
use convex::{ConvexClient, FunctionResult, Value};
use futures::StreamExt;

/// The next result of a subscription, within the deadline.
async fn next_result(subscription: &mut convex::QuerySubscription) -> FunctionResult {
    tokio::time::timeout(WAIT, subscription.next())
        .await
        .expect("a result within the deadline")
        .expect("the subscription is open")
}

fn counter(n: f64) -> FunctionResult {
    FunctionResult::Value(Value::Object(BTreeMap::from([
        ("n".to_owned(), Value::Float64(n)),
        ("pad".to_owned(), Value::String(String::new())),
    ])))
}

#[tokio::test]
async fn subscriptions_receive_the_initial_result_and_updates() {
    let (b, idp) = backend_with_idp().await;
    let (user_id, token) = idp.user_token("ada@example.com").await;
    let mut client = ConvexClient::new(&b.url()).await.expect("client connects");
    client.set_auth(Some(token)).await;

    let mut subscription = client
        .subscribe("counter:get", BTreeMap::new())
        .await
        .expect("subscribed");
    assert_eq!(next_result(&mut subscription).await, counter(0.0));

    let result = client
        .mutation(
            "counter:increment",
            BTreeMap::from([("by".to_owned(), Value::Float64(2.0))]),
        )
        .await
        .expect("mutation ran");
    assert_eq!(result, FunctionResult::Value(Value::Float64(2.0)));
    assert_eq!(next_result(&mut subscription).await, counter(2.0));

    // A commit by someone else reaches the subscription too.
    b.increment().await;
    assert_eq!(next_result(&mut subscription).await, counter(3.0));

    // Actions, and the identity the token carries.
    let result = client
        .action("actions:bump", BTreeMap::new())
        .await
        .expect("action ran");
    assert_eq!(result, FunctionResult::Value(Value::Float64(4.0)));
    assert_eq!(next_result(&mut subscription).await, counter(4.0));
    let me = client
        .query("auth:whoami", BTreeMap::new())
        .await
        .expect("query ran");
    assert_eq!(me, FunctionResult::Value(Value::String(user_id)));

    // Int64 values arrive as Int64.
    let sample = client
        .query("values:sample", BTreeMap::new())
        .await
        .expect("query ran");
    let FunctionResult::Value(Value::Object(fields)) = sample else {
        panic!("an object: {sample:?}");
    };
    assert_eq!(fields["big"], Value::Int64(42));
}

#[tokio::test]
async fn application_errors_arrive_as_convex_errors_with_data() {
    let b = TestBackend::start().await;
    let mut client = ConvexClient::new(&b.url()).await.expect("client connects");
    let result = client
        .query("errors:fail", BTreeMap::new())
        .await
        .expect("query ran");
    let FunctionResult::ConvexError(error) = result else {
        panic!("a ConvexError: {result:?}");
    };
    assert_eq!(error.message, "Not allowed");
    assert_eq!(
        error.data,
        Value::Object(BTreeMap::from([
            ("code".to_owned(), Value::String("FORBIDDEN".to_owned())),
            ("level".to_owned(), Value::Int64(3)),
        ]))
    );

    // Other failures are plain messages.
    let result = client
        .mutation("messages:send", BTreeMap::new())
        .await
        .expect("mutation ran");
    let FunctionResult::ErrorMessage(message) = result else {
        panic!("an error message: {result:?}");
    };
    assert!(message.contains("missing field `body`"), "{message}");
    let result = client
        .query("nothing:here", BTreeMap::new())
        .await
        .expect("query ran");
    assert!(
        matches!(&result, FunctionResult::ErrorMessage(m) if m.contains("Could not find public function")),
        "{result:?}"
    );
}

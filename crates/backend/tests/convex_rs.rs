//! The official Rust client (`convex` 0.10.4) against Keel: subscriptions with updates,
//! mutations, actions, authentication and application errors.

mod common;

use std::collections::BTreeMap;

use common::{TestBackend, backend_with_idp, counter, next_result};
use convex::{ConvexClient, FunctionResult, Value};

/// The next result of a subscription, within the deadline.
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
    assert!(
        message
            .starts_with("ArgumentValidationError: Object is missing the required field `body`."),
        "{message}"
    );
    let result = client
        .query("nothing:here", BTreeMap::new())
        .await
        .expect("query ran");
    assert!(
        matches!(&result, FunctionResult::ErrorMessage(m) if m.contains("Could not find public function")),
        "{result:?}"
    );
}

#[tokio::test]
async fn internal_functions_are_unknown_to_the_rust_client_while_public_callers_reach_them() {
    let b = TestBackend::start().await;
    let mut client = ConvexClient::new(&b.url()).await.expect("client connects");
    let missing = |path: &str| {
        FunctionResult::ErrorMessage(format!(
            "Could not find public function for '{path}'. Module `counter` registers: get, \
             increment, slowGet, slowIncrement."
        ))
    };
    for path in [
        "counter:nope",
        "counter:peek",
        "counter:reset",
        "counter:resetVia",
    ] {
        let query = client.query(path, BTreeMap::new()).await.expect("ran");
        let mutation = client.mutation(path, BTreeMap::new()).await.expect("ran");
        let action = client.action(path, BTreeMap::new()).await.expect("ran");
        assert_eq!(
            [query, mutation, action],
            [missing(path), missing(path), missing(path)]
        );
    }
    let mut peeked = client
        .subscribe("counter:peek", BTreeMap::new())
        .await
        .expect("subscribed");
    assert_eq!(next_result(&mut peeked).await, missing("counter:peek"));

    // Through a public query, the internal one's result, live.
    let mut through = client
        .subscribe("calls:peek", BTreeMap::new())
        .await
        .expect("subscribed");
    assert_eq!(
        next_result(&mut through).await,
        FunctionResult::Value(Value::Float64(0.0))
    );
    b.increment().await;
    assert_eq!(
        next_result(&mut through).await,
        FunctionResult::Value(Value::Float64(1.0))
    );
    // A callee's ConvexError reaches the client as one, with its data.
    let refused = client
        .mutation("calls:refuseInside", BTreeMap::new())
        .await
        .expect("ran");
    let FunctionResult::ConvexError(error) = refused else {
        panic!("a ConvexError: {refused:?}");
    };
    assert_eq!(error.message, "Refused inside");
    assert_eq!(
        error.data,
        Value::Object(BTreeMap::from([(
            "code".to_owned(),
            Value::String("NESTED".to_owned())
        )]))
    );
}

/// A TCP proxy in front of the backend whose connections can be cut, to make clients reconnect.
struct CuttableProxy {
    addr: std::net::SocketAddr,
    connections: std::sync::Arc<parking_lot::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl CuttableProxy {
    async fn start(target: std::net::SocketAddr) -> CuttableProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
        let registry = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                registry.lock().push(task);
            }
        });
        CuttableProxy { addr, connections }
    }

    /// Drops every proxied connection (both sides see the TCP connection end).
    fn cut(&self) -> usize {
        let tasks: Vec<_> = self.connections.lock().drain(..).collect();
        for task in &tasks {
            task.abort();
        }
        tasks.len()
    }

    fn connection_count(&self) -> usize {
        self.connections.lock().len()
    }
}

#[tokio::test]
async fn the_rust_client_resubscribes_after_a_reconnect() {
    let (b, idp) = backend_with_idp().await;
    let (user_id, token) = idp.user_token("ada@example.com").await;
    let proxy = CuttableProxy::start(b.addr).await;
    let mut client = ConvexClient::new(&format!("http://{}", proxy.addr))
        .await
        .expect("client connects");
    client.set_auth(Some(token)).await;
    let mut counter_sub = client
        .subscribe("counter:get", BTreeMap::new())
        .await
        .expect("subscribed");
    let mut me_sub = client
        .subscribe("auth:whoami", BTreeMap::new())
        .await
        .expect("subscribed");
    assert_eq!(next_result(&mut counter_sub).await, counter(0.0));
    assert_eq!(
        next_result(&mut me_sub).await,
        FunctionResult::Value(Value::String(user_id.clone()))
    );

    assert_eq!(proxy.cut(), 1);
    common::wait_until("the client reconnected", async || {
        proxy.connection_count() > 0
    })
    .await;

    // After the reconnect (re-Add as `counter.js:get`, versions from zero, re-authenticated),
    // updates keep coming, as the same user.
    // (The client may hand the current value out again after reconnecting.)
    b.increment().await;
    let mut result = next_result(&mut counter_sub).await;
    while result == counter(0.0) {
        result = next_result(&mut counter_sub).await;
    }
    assert_eq!(result, counter(1.0));
    let result = client
        .mutation("counter:increment", BTreeMap::new())
        .await
        .expect("mutation ran");
    assert_eq!(result, FunctionResult::Value(Value::Float64(2.0)));
    assert_eq!(next_result(&mut counter_sub).await, counter(2.0));
    let me = client
        .query("auth:whoami", BTreeMap::new())
        .await
        .expect("query ran");
    assert_eq!(me, FunctionResult::Value(Value::String(user_id)));
}

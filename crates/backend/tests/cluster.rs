//! Two backend nodes on one PostgreSQL schema, in this process, each on its own socket: the
//! follower serves subscriptions from the committer's commits, forwards mutations (with the
//! caller's identity, errors included) and takes over once the committer's lease connection is
//! cut, after which the old committer reports that it lost the lease and writes nothing more.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{TestBackend, TestIdp, WAIT, counter, next_result};
use convex::{ConvexClient, FunctionResult, Value};
use keel_db::persistence::PostgresTestSchema;

fn strings(items: &[&str]) -> FunctionResult {
    FunctionResult::Value(Value::Array(
        items
            .iter()
            .map(|s| Value::String((*s).to_owned()))
            .collect(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_serves_forwards_and_takes_over() {
    let pg = PostgresTestSchema::create()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let idp = TestIdp::start().await;
    let committer = TestBackend::start_node(&pg, idp.backend_config()).await;
    let follower = TestBackend::start_node(&pg, idp.backend_config()).await;
    let (committer_cluster, follower_cluster) = (
        committer.backend.cluster().unwrap().clone(),
        follower.backend.cluster().unwrap().clone(),
    );
    assert!(committer_cluster.is_committer());
    assert!(!follower_cluster.is_committer());
    let role = async |node: &TestBackend| -> serde_json::Value {
        reqwest::get(format!("{}/api/keel/node", node.url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    };
    let status = role(&committer).await;
    assert_eq!(status["role"], "committer", "{status}");
    assert_eq!(status["address"], committer.url().as_str(), "{status}");
    assert_eq!(role(&follower).await["role"], "follower");

    let (user_id, token) = idp.user_token("ada@example.com").await;
    let mut client = ConvexClient::new(&follower.url()).await.unwrap();
    client.set_auth(Some(token)).await;
    let mut count = client
        .subscribe("counter:get", BTreeMap::new())
        .await
        .unwrap();
    assert_eq!(next_result(&mut count).await, counter(0.0));

    // A commit on the committer reaches the follower's subscriber within a second.
    let started = Instant::now();
    committer.increment().await;
    assert_eq!(next_other_than(&mut count, 0.0).await, counter(1.0));
    let seen_after = started.elapsed();
    assert!(seen_after < Duration::from_secs(1), "{seen_after:?}");

    // A mutation sent to the follower runs on the committer and is acknowledged once the
    // follower has it: the next update the client gets already includes it.
    let result = client
        .mutation("counter:increment", BTreeMap::new())
        .await
        .unwrap();
    assert_eq!(result, FunctionResult::Value(Value::Float64(2.0)));
    assert_eq!(next_other_than(&mut count, 1.0).await, counter(2.0));
    // The caller's identity travels with it; so do application errors.
    client
        .mutation("messages:sendAsMe", BTreeMap::new())
        .await
        .unwrap();
    match client
        .mutation("errors:failMutation", BTreeMap::new())
        .await
        .unwrap()
    {
        FunctionResult::ConvexError(e) => {
            assert_eq!(e.message, "Refused");
            assert_eq!(
                e.data,
                Value::Object(BTreeMap::from([(
                    "code".to_owned(),
                    Value::String("REFUSED".to_owned())
                )]))
            );
        }
        other => panic!("expected a ConvexError, got {other:?}"),
    }
    // An action on the follower whose mutation is forwarded.
    let result = client
        .action("actions:bump", BTreeMap::new())
        .await
        .unwrap();
    assert_eq!(result, FunctionResult::Value(Value::Float64(3.0)));
    // Its update reaches the subscriber too; read it now, or a later wait could see it first
    // (whether the follower sends 3 on its own or folds it into the next commit's update depends
    // on timing).
    assert_eq!(next_other_than(&mut count, 2.0).await, counter(3.0));
    let mut on_committer = ConvexClient::new(&committer.url()).await.unwrap();
    assert_eq!(
        on_committer
            .query("messages:list", BTreeMap::new())
            .await
            .unwrap(),
        strings(&[&user_id])
    );

    // A client session's request sent again to another node (as a client does after reconnecting
    // elsewhere) returns the first outcome instead of running twice: its receipt was committed
    // with it.
    let session = common::random_session_id();
    let increment = serde_json::json!({
        "type": "Mutation", "requestId": 0, "udfPath": "counter:increment", "args": [{}],
    });
    let mut first = common::WsClient::connect(&follower.ws_url("/api/sync")).await;
    first.send(&common::connect_message(&session, 0)).await;
    first.send(&increment).await;
    let original = first.next_of("MutationResponse").await;
    assert_eq!(original["success"], true, "{original}");
    assert_eq!(original["result"], 4.0, "{original}");
    drop(first);
    let mut again = common::WsClient::connect(&committer.ws_url("/api/sync")).await;
    again.send(&common::connect_message(&session, 0)).await;
    again.send(&increment).await;
    let repeated = again.next_of("MutationResponse").await;
    assert_eq!(repeated["result"], original["result"], "{repeated}");
    assert_eq!(next_other_than(&mut count, 3.0).await, counter(4.0));
    drop(again);

    // An action on the follower runs an internal action whose internal mutation is forwarded:
    // the committer runs it for the app's own code, while a client reaching for it through the
    // follower finds nothing.
    let reset = client.action("calls:reset", BTreeMap::new()).await.unwrap();
    assert_eq!(reset, FunctionResult::Value(Value::Float64(4.0)));
    assert_eq!(next_other_than(&mut count, 4.0).await, counter(0.0));
    let refused = client
        .mutation("counter:reset", BTreeMap::new())
        .await
        .unwrap();
    assert!(
        matches!(&refused, FunctionResult::ErrorMessage(m)
            if m.starts_with("Could not find public function for 'counter:reset'")),
        "{refused:?}"
    );
    client
        .mutation(
            "counter:increment",
            BTreeMap::from([("by".to_owned(), Value::Float64(4.0))]),
        )
        .await
        .unwrap();
    assert_eq!(next_other_than(&mut count, 0.0).await, counter(4.0));

    // The forwarding route refuses callers without the cluster's secret.
    let http = reqwest::Client::new();
    let refused = http
        .post(format!("{}/api/keel/cluster/mutation", committer.url()))
        .header("authorization", "KeelNode guess")
        .body(r#"{"path":"counter:increment","args":{},"identity":null}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let plain = TestBackend::start().await;
    let not_clustered = http
        .post(format!("{}/api/keel/cluster/mutation", plain.url()))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(not_clustered.status(), 404);
    assert_eq!(role(&plain).await["role"], "single");

    // Cut the committer's lease connection (as a network partition or a dead machine would):
    // the follower takes over within seconds, keeps its subscriber, and commits.
    let (admin, connection) = tokio_postgres::connect(pg.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    // Only this test's sessions (named after the schema): other tests hold leases too.
    let cut = admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = $1 AND pid IN \
               (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted \
                AND classid = $2::bigint::oid)",
            &[&format!("keel {}", pg.name()), &0x6b65_656c_i64],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(cut, 1, "one session held the lease");
    let took_over = Instant::now();
    tokio::time::timeout(WAIT, async {
        while !follower_cluster.is_committer() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the follower takes over");
    let status = role(&follower).await;
    assert_eq!(status["role"], "committer", "{status}");
    assert_eq!(status["address"], follower.url().as_str(), "{status}");
    let reason = tokio::time::timeout(WAIT, committer_cluster.failed())
        .await
        .expect("the old committer notices it lost the lease");
    assert!(reason.contains("lost the committer lease"), "{reason}");
    tracing::info!(elapsed = ?took_over.elapsed(), "takeover");

    let result = client
        .mutation("counter:increment", BTreeMap::new())
        .await
        .unwrap();
    assert_eq!(result, FunctionResult::Value(Value::Float64(5.0)));
    assert_eq!(next_other_than(&mut count, 4.0).await, counter(5.0));
    // The old committer cannot write any more: its commit fails and nothing of it lands.
    let old = on_committer
        .mutation("counter:increment", BTreeMap::new())
        .await
        .unwrap();
    assert!(matches!(old, FunctionResult::ErrorMessage(_)), "{old:?}");
    let total = client.query("counter:get", BTreeMap::new()).await.unwrap();
    assert_eq!(total, counter(5.0));

    drop((client, on_committer, committer, follower));
    pg.drop_schema().await;
}

/// The subscription's next value other than the count `shown`. The official client publishes its
/// whole result set again on other events (a mutation's response, say), so a subscriber can be
/// handed the value it already shows before the new one; a repeat is not a change.
async fn next_other_than(
    subscription: &mut convex::QuerySubscription,
    shown: f64,
) -> FunctionResult {
    loop {
        let result = next_result(subscription).await;
        if result != counter(shown) {
            return result;
        }
    }
}

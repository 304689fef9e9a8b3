//! The scheduler on two backend nodes of one PostgreSQL schema: an action and a mutation called
//! on the follower schedule through the committer (the action's scheduler writes its job with a
//! forwarded internal mutation), and only the committer runs the jobs, each once.

mod common;

use std::collections::BTreeMap;

use common::{TestBackend, TestIdp, counter, next_result};
use convex::{ConvexClient, FunctionResult, Value};
use keel_db::persistence::PostgresTestSchema;

/// Waits for the subscription to show the counter at `n` (a node may send the same value again
/// when a commit touched what the query read without changing it); fails on any other value.
async fn until(subscription: &mut convex::QuerySubscription, n: f64) {
    loop {
        let result = next_result(subscription).await;
        if result == counter(n) {
            return;
        }
        assert_eq!(result, counter(n - 1.0), "the counter skipped or went back");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_on_a_follower_schedule_through_the_committer_which_runs_each_job_once() {
    let pg = PostgresTestSchema::create()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let idp = TestIdp::start().await;
    let committer = TestBackend::start_node(&pg, idp.backend_config()).await;
    let follower = TestBackend::start_node(&pg, idp.backend_config()).await;
    assert!(
        committer
            .backend
            .cluster()
            .is_some_and(|c| c.is_committer())
    );

    let mut client = ConvexClient::new(&follower.url()).await.unwrap();
    let mut count = client
        .subscribe("counter:get", BTreeMap::new())
        .await
        .unwrap();
    assert_eq!(next_result(&mut count).await, counter(0.0));

    let scheduled = client
        .action("later:incrementFromAction", BTreeMap::new())
        .await
        .unwrap();
    assert!(
        matches!(&scheduled, FunctionResult::Value(Value::String(id)) if !id.is_empty()),
        "{scheduled:?}"
    );
    until(&mut count, 1.0).await;
    let scheduled = client
        .mutation("later:incrementFromMutation", BTreeMap::new())
        .await
        .unwrap();
    assert!(
        matches!(&scheduled, FunctionResult::Value(Value::String(_))),
        "{scheduled:?}"
    );
    until(&mut count, 2.0).await;

    // Each job ran once: both are `success` and the counter stayed at 2 once they were.
    let mut tx = committer.backend.database().begin();
    let jobs = tx
        .system_query(keel_db::SCHEDULED_FUNCTIONS)
        .collect()
        .await
        .unwrap();
    let kinds: Vec<_> = jobs
        .iter()
        .map(|job| keel_values::to_json(&job.fields["state"])["kind"].clone())
        .collect();
    assert_eq!(kinds, ["success", "success"], "{jobs:?}");
    let value = client.query("counter:get", BTreeMap::new()).await.unwrap();
    assert_eq!(value, counter(2.0));
    drop((client, count));
    pg.drop_schema().await;
}

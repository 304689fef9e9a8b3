//! The persistence conformance suite against PostgreSQL, each test in its own schema on the test
//! server (`KEEL_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/test`).

use std::any::Any;
use std::sync::Arc;

use keel_db::Persistence;
use keel_db::persistence::PostgresTestSchema;

async fn fresh() -> (Arc<dyn Persistence>, Box<dyn Any + Send>) {
    let schema = PostgresTestSchema::create()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let persistence = schema.connect().await.unwrap_or_else(|e| panic!("{e}"));
    (Arc::new(persistence), Box::new(schema))
}

keel_db::persistence_conformance_tests!(fresh);

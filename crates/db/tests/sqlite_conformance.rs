//! The persistence conformance suite against SQLite files.

use std::any::Any;
use std::sync::Arc;

use keel_db::{Persistence, SqlitePersistence};

// The suite takes an async factory (a PostgreSQL one has to await); SQLite needs no await.
#[allow(clippy::unused_async)]
async fn fresh() -> (Arc<dyn Persistence>, Box<dyn Any + Send>) {
    let dir = tempfile::tempdir().unwrap();
    let persistence = SqlitePersistence::open(dir.path().join("db.sqlite3")).unwrap();
    (Arc::new(persistence), Box::new(dir))
}

keel_db::persistence_conformance_tests!(fresh);

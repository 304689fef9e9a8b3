//! Shared test setup: a database over a SQLite file in a temp dir, or over a fresh schema on the
//! test PostgreSQL server.
#![allow(dead_code)]

use std::sync::Arc;

use keel_db::persistence::PostgresTestSchema;
use keel_db::{Database, Schema, SqlitePersistence, TableSchema, Validator};
use keel_values::{Object, Value};

/// Which persistence a test database uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Store {
    /// A SQLite file in a temp dir.
    Sqlite,
    /// A fresh schema on the test PostgreSQL server (`KEEL_TEST_POSTGRES_URL`).
    Postgres,
}

/// A database plus the temp dir that holds its file (and the PostgreSQL schema, if any, which
/// is dropped after the database).
pub(crate) struct TestDb {
    pub(crate) db: Database,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) pg: Option<PostgresTestSchema>,
}

pub(crate) fn schema() -> Schema {
    Schema::new()
        .table(
            "posts",
            TableSchema::new()
                .index("by_author", &["author"])
                .index("by_author_likes", &["author", "likes"]),
        )
        .table(
            "users",
            TableSchema::new()
                .index("by_name", &["name"])
                .validator(Validator::object([
                    ("name", Validator::String),
                    ("age", Validator::optional(Validator::Float64)),
                ])),
        )
        .table("counters", TableSchema::new().index("by_name", &["name"]))
        .table("accounts", TableSchema::new())
}

pub(crate) async fn open(dir: &tempfile::TempDir) -> Database {
    let persistence = SqlitePersistence::open(dir.path().join("db.sqlite3")).unwrap();
    Database::open(Arc::new(persistence), schema())
        .await
        .unwrap()
}

pub(crate) async fn fresh() -> TestDb {
    fresh_on(Store::Sqlite).await
}

/// A fresh, empty database on `store`. Panics (with how to start it) if PostgreSQL is asked for
/// and unreachable.
pub(crate) async fn fresh_on(store: Store) -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    match store {
        Store::Sqlite => TestDb {
            db: open(&dir).await,
            dir,
            pg: None,
        },
        Store::Postgres => {
            let pg = PostgresTestSchema::create()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let persistence = pg.connect().await.unwrap_or_else(|e| panic!("{e}"));
            let db = Database::open(Arc::new(persistence), schema())
                .await
                .unwrap();
            TestDb {
                db,
                dir,
                pg: Some(pg),
            }
        }
    }
}

pub(crate) fn fields(v: Value) -> Object {
    v.as_object().expect("an object").clone()
}

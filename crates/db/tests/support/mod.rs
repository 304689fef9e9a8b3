//! Shared test setup: a database over a SQLite file in a temp dir.
#![allow(dead_code)]

use std::sync::Arc;

use keel_db::{Database, Schema, SqlitePersistence, TableSchema, Validator};
use keel_values::{Object, Value};

/// A database plus the temp dir that holds its file.
pub(crate) struct TestDb {
    pub(crate) db: Database,
    pub(crate) dir: tempfile::TempDir,
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
    let dir = tempfile::tempdir().unwrap();
    TestDb {
        db: open(&dir).await,
        dir,
    }
}

pub(crate) fn fields(v: Value) -> Object {
    v.as_object().expect("an object").clone()
}

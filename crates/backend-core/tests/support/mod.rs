//! Shared setup of the core's tests: a [`Backend`] over a real SQLite file in a temp dir, called
//! as the transports call it (no socket: the core has none), and helpers to read what was
//! committed.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use keel_backend_core::{
    Backend, BackendConfig, FunctionError, FunctionRegistry, Identity, MutationCtx, QueryCtx,
};
use keel_db::{Database, Order, Schema, SqlitePersistence, TableSchema};
use keel_protocol::CanonicalPath;
use keel_values::{Object, Value};

/// How long any single wait in a test may take before it fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// A backend with its data directory.
pub struct Core {
    pub backend: Backend,
    _dir: tempfile::TempDir,
}

/// A backend serving `functions` over tables `notes` and `counters`.
pub async fn core(functions: FunctionRegistry) -> Core {
    core_with(functions, BackendConfig::default()).await
}

/// A backend serving `functions` with `config`.
pub async fn core_with(functions: FunctionRegistry, config: BackendConfig) -> Core {
    open(tempfile::tempdir().expect("tempdir"), functions, config).await
}

impl Core {
    /// Stops this backend as a process shutting down would, and opens the same database again
    /// with `functions` after `down` (a restart).
    pub async fn restart(self, functions: FunctionRegistry, down: Duration) -> Core {
        let Core { backend, _dir: dir } = self;
        backend.shutdown().await;
        drop(backend);
        tokio::time::sleep(down).await;
        open(dir, functions, BackendConfig::default()).await
    }
}

async fn open(dir: tempfile::TempDir, functions: FunctionRegistry, config: BackendConfig) -> Core {
    let persistence = SqlitePersistence::open(dir.path().join("db.sqlite3")).expect("sqlite");
    let schema = Schema::new()
        .table("notes", TableSchema::new())
        .table("counters", TableSchema::new());
    let db = Database::open(Arc::new(persistence), schema)
        .await
        .expect("database opens");
    Core {
        backend: Backend::new(db, functions, config),
        _dir: dir,
    }
}

/// A canonical function path.
pub fn path(path: &str) -> CanonicalPath {
    keel_protocol::normalize_udf_path(path).expect("a function path")
}

/// Arguments from a JSON object.
pub fn args(json: serde_json::Value) -> Object {
    match keel_values::from_json(&json).expect("Convex JSON") {
        Value::Object(object) => object,
        other => panic!("arguments are an object, not {other:?}"),
    }
}

/// A document's fields with one string field.
pub fn text(text: &str) -> Object {
    Object::from([("text".to_owned(), Value::from(text))])
}

impl Core {
    /// Runs a query as an anonymous client.
    pub async fn query(&self, name: &str, json: serde_json::Value) -> Result<Value, FunctionError> {
        self.backend
            .run_query(&path(name), &args(json), &Identity::Anonymous, None)
            .await
    }

    /// Runs a mutation as an anonymous client.
    pub async fn mutation(
        &self,
        name: &str,
        json: serde_json::Value,
    ) -> Result<Value, FunctionError> {
        self.backend
            .run_mutation(&path(name), args(json), &Identity::Anonymous)
            .await
            .map(|(value, _)| value)
    }

    /// Runs an action as an anonymous client.
    pub async fn action(
        &self,
        name: &str,
        json: serde_json::Value,
    ) -> Result<Value, FunctionError> {
        self.backend
            .run_action(&path(name), args(json), &Identity::Anonymous)
            .await
    }

    /// The `text` of every committed note, in creation order.
    pub async fn notes(&self) -> Vec<String> {
        let mut tx = self.backend.database().begin();
        tx.query("notes")
            .order(Order::Asc)
            .collect()
            .await
            .expect("notes read")
            .iter()
            .map(|d| d.fields["text"].as_str().expect("text").to_owned())
            .collect()
    }

    /// Inserts a note directly (another writer).
    pub async fn insert_note(&self, note: &str) {
        let mut tx = self.backend.database().begin();
        tx.insert("notes", text(note)).await.expect("inserted");
        self.backend.database().commit(tx).await.expect("committed");
    }
}

/// No arguments.
#[derive(serde::Deserialize)]
pub struct NoArgs {}

/// A note's text.
#[derive(serde::Deserialize)]
pub struct Note {
    pub text: String,
}

/// The texts of the notes (a query).
pub async fn texts(ctx: QueryCtx, _: NoArgs) -> Result<Vec<String>, FunctionError> {
    note_texts(ctx.db()).await
}

/// Adds a note; returns its id (a mutation).
pub async fn add(ctx: MutationCtx, note: Note) -> Result<String, FunctionError> {
    Ok(ctx
        .db()
        .insert("notes", text(&note.text))
        .await?
        .to_string())
}

/// The texts of the notes `db` sees.
pub async fn note_texts(db: &keel_backend_core::DbReader) -> Result<Vec<String>, FunctionError> {
    Ok(db
        .query("notes")
        .collect()
        .await?
        .iter()
        .filter_map(|d| {
            d.fields
                .get("text")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect())
}

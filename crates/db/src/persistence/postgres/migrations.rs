//! Versioned schema migrations, applied automatically at connect.
//!
//! `keel_migrations(version, applied_at)` records each applied step. At connect, under a
//! transaction-scoped advisory lock (so two processes starting at once do not race), the missing
//! steps are applied in order in one transaction. A database whose newest step is newer than this
//! build knows is refused rather than written with an older layout.

use tokio_postgres::Client;

use super::connection::storage_err;
use super::lease::{MIGRATION_LOCK_CLASS, schema_lock_key};
use crate::persistence::PersistenceError;

/// The steps, in order; `{s}` stands for the quoted schema name. Never edit a released step:
/// add a new one.
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        "CREATE TABLE {s}.keel_documents (
         table_num BIGINT NOT NULL, internal BYTEA NOT NULL, ts BIGINT NOT NULL,
         value BYTEA, prev_ts BIGINT,
         PRIMARY KEY (table_num, internal, ts));
     CREATE TABLE {s}.keel_indexes (
         index_id BIGINT NOT NULL, key BYTEA NOT NULL, ts BIGINT NOT NULL,
         table_num BIGINT, internal BYTEA,
         PRIMARY KEY (index_id, key, ts));
     CREATE TABLE {s}.keel_globals (key TEXT PRIMARY KEY, value BYTEA NOT NULL);
     CREATE TABLE {s}.keel_max_ts (id SMALLINT PRIMARY KEY CHECK (id = 1), ts BIGINT NOT NULL);
     CREATE TABLE {s}.keel_leases (
         name TEXT PRIMARY KEY, lease_id BIGINT NOT NULL, holder TEXT NOT NULL,
         acquired_at TIMESTAMPTZ NOT NULL);",
    ),
    // Followers read the revisions of each new commit by timestamp, and forward calls to the
    // address the committer publishes in its lease row.
    (
        2,
        "CREATE INDEX keel_documents_by_ts ON {s}.keel_documents (ts);
         ALTER TABLE {s}.keel_leases ADD COLUMN address TEXT;",
    ),
    // Stored files' bytes, so that every node serves every file (see `blobs`).
    (
        3,
        "CREATE TABLE {s}.keel_blobs (
             key TEXT PRIMARY KEY, complete BOOLEAN NOT NULL DEFAULT false,
             size BIGINT NOT NULL DEFAULT 0, updated_at TIMESTAMPTZ NOT NULL DEFAULT now());
         CREATE INDEX keel_blobs_by_updated_at ON {s}.keel_blobs (updated_at);
         CREATE TABLE {s}.keel_blob_chunks (
             key TEXT NOT NULL, n INTEGER NOT NULL, data BYTEA NOT NULL,
             PRIMARY KEY (key, n));",
    ),
    // The members of a cluster of backend nodes, each refreshing its own row (see `members`).
    (
        4,
        "CREATE TABLE {s}.keel_members (
             node_id TEXT PRIMARY KEY, role TEXT NOT NULL, address TEXT NOT NULL,
             started_at_ms BIGINT NOT NULL, last_seen TIMESTAMPTZ NOT NULL,
             latest_ts BIGINT NOT NULL, sync_sessions BIGINT NOT NULL);",
    ),
];

/// The newest schema version this build writes.
pub(crate) const LATEST_VERSION: i32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Creates the schema if needed and applies the missing migrations; returns the version now in
/// place.
pub(crate) async fn migrate(client: &mut Client, schema: &str) -> Result<i32, PersistenceError> {
    let s = format!("\"{schema}\"");
    let tx = client.transaction().await.map_err(storage_err)?;
    // No "already exists, skipping" notices in the logs.
    tx.batch_execute("SET LOCAL client_min_messages = warning")
        .await
        .map_err(storage_err)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&MIGRATION_LOCK_CLASS, &schema_lock_key(schema)],
    )
    .await
    .map_err(storage_err)?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {s};
         CREATE TABLE IF NOT EXISTS {s}.keel_migrations (
             version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now());"
    ))
    .await
    .map_err(storage_err)?;
    let row = tx
        .query_one(
            &format!("SELECT COALESCE(MAX(version), 0) FROM {s}.keel_migrations"),
            &[],
        )
        .await
        .map_err(storage_err)?;
    let current: i32 = row.get(0);
    if current > LATEST_VERSION {
        return Err(PersistenceError(format!(
            "the database schema \"{schema}\" is at version {current}, newer than this keel \
             build knows ({LATEST_VERSION}); run a newer keel"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.batch_execute(&sql.replace("{s}", &s))
            .await
            .map_err(|e| PersistenceError(format!("migration {version}: {}", storage_err(e))))?;
        tx.execute(
            &format!("INSERT INTO {s}.keel_migrations (version) VALUES ($1)"),
            &[version],
        )
        .await
        .map_err(storage_err)?;
        tracing::info!(schema, version, "applied PostgreSQL migration");
    }
    tx.commit().await.map_err(storage_err)?;
    Ok(LATEST_VERSION)
}

//! System tables: tables whose names start with `_`, which the engine and the backend's own
//! services keep and which functions cannot write (a query, `get`, `insert` … of a user treats
//! them as missing).
//!
//! Every database has them, created at open:
//! * `_receipts` — keyed requests already applied (see `receipts`).
//! * [`SCHEDULED_FUNCTIONS`] — the backend's scheduled functions (index [`BY_STATE`]: the
//!   state's kind, then the scheduled time), in Convex's shape.
//! * [`CRON_JOBS`] — the backend's cron jobs and their next tick (index [`BY_NAME`]).
//! * [`STORAGE_TABLE`] — Convex's `_storage`, the stored files: `size`, `sha256`,
//!   `contentType`, and the key of the file's bytes in the blob store.
//! * [`UPLOAD_TOKENS_TABLE`] — one document per upload URL not yet used, deleted when it is.
//!
//! The backend reads and writes them through [`Transaction::system_get`],
//! [`Transaction::system_query`], [`Transaction::system_insert`],
//! [`Transaction::system_patch`] and [`Transaction::system_delete`]: reads and writes like a
//! user's (in the read set, committed atomically with the transaction's other writes), allowed
//! on system tables.

use keel_values::{DocumentId, Object};

use crate::catalog::is_system_table;
use crate::query::Query;
use crate::{DbError, Document, Schema, TableSchema, Transaction};

/// The system table of scheduled functions (Convex's `_scheduled_functions`).
pub const SCHEDULED_FUNCTIONS: &str = "_scheduled_functions";
/// The system table of cron jobs (Convex's `_cron_jobs`).
pub const CRON_JOBS: &str = "_cron_jobs";
/// Convex's table of stored files.
pub const STORAGE_TABLE: &str = "_storage";
/// Upload URLs issued and not used yet.
pub const UPLOAD_TOKENS_TABLE: &str = "_upload_tokens";
/// The index of [`SCHEDULED_FUNCTIONS`] by `state.kind`, then `scheduledTime`.
pub const BY_STATE: &str = "by_state";
/// The index of [`CRON_JOBS`] by `name`.
pub const BY_NAME: &str = "by_name";

/// `schema` plus the system tables every database has.
pub(crate) fn with_system_tables(schema: Schema) -> Schema {
    schema
        .table(
            crate::receipts::RECEIPTS,
            TableSchema::new().index("by_key", &["key"]),
        )
        .table(
            SCHEDULED_FUNCTIONS,
            TableSchema::new().index(BY_STATE, &["state.kind", "scheduledTime"]),
        )
        .table(CRON_JOBS, TableSchema::new().index(BY_NAME, &["name"]))
        .table(STORAGE_TABLE, TableSchema::new())
        .table(UPLOAD_TOKENS_TABLE, TableSchema::new())
}

impl Transaction {
    /// The name of the table `id` belongs to, system tables included.
    pub fn system_table_name(&self, id: &DocumentId) -> Option<String> {
        self.db
            .shared
            .catalog
            .read()
            .table_of(id)
            .map(|t| t.name.clone())
    }

    /// Reads a document of any table, system tables included (see [`Transaction::get`]).
    pub async fn system_get(&mut self, id: DocumentId) -> Result<Option<Document>, DbError> {
        Ok(self.load(id, true).await?.and_then(|(_, current)| current))
    }

    /// The document `id` if it is in the system table `table` (`None` for a missing document
    /// or one of another table). The read is part of the transaction's read set.
    pub async fn system_get_in(
        &mut self,
        table: &str,
        id: DocumentId,
    ) -> Result<Option<Document>, DbError> {
        if !is_system_table(table) || self.system_table_name(&id).as_deref() != Some(table) {
            return Ok(None);
        }
        self.system_get(id).await
    }

    /// A query over any table, system tables included (see [`Transaction::query`]).
    pub fn system_query(&mut self, table: &str) -> Query<'_> {
        Query::system(self, table)
    }

    /// Inserts into a system table (a user table is refused: use [`Transaction::insert`]).
    pub async fn system_insert(
        &mut self,
        table: &str,
        fields: Object,
    ) -> Result<DocumentId, DbError> {
        if !is_system_table(table) {
            return Err(DbError::TableNotFound(format!(
                "\"{table}\" is not a system table"
            )));
        }
        self.insert_document(table, fields).await
    }

    /// Shallow-merges `fields` into a document of any table, system tables included (see
    /// [`Transaction::patch`]).
    pub async fn system_patch(&mut self, id: DocumentId, fields: Object) -> Result<(), DbError> {
        let (table, mut current) = self.load_existing(id, true).await?;
        current.fields.extend(fields);
        self.write_existing(table, current).await
    }

    /// Deletes a document of any table, system tables included.
    pub async fn system_delete(&mut self, id: DocumentId) -> Result<(), DbError> {
        self.delete_document(id).await
    }
}

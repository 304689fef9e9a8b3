//! Receipts: a record, committed with a transaction, that a keyed request was applied and what
//! it returned — so that a request sent again (a client resending after a reconnect to another
//! node, a node forwarding again after losing a connection) returns the first outcome instead of
//! applying twice.
//!
//! Receipts live in the system table `_receipts` (index `by_key`), created at open. Functions
//! cannot see system tables: queries, gets and writes by users treat them as missing. Reading a
//! receipt puts its key in the transaction's read set, so two transactions that race to record
//! the same key conflict, and the retry finds the winner's receipt. Receipts older than
//! [`RECEIPT_RETENTION`] are deleted by the committer's maintenance (see `maintenance`).

use std::time::Duration;

use keel_values::{Object, Value};

use crate::query::Query;
use crate::{Database, DbError, Document, IndexRange, Schema, TableSchema, Timestamp, Transaction};

/// The system table of receipts.
pub(crate) const RECEIPTS: &str = "_receipts";
/// How long a receipt is kept.
pub const RECEIPT_RETENTION: Duration = Duration::from_secs(600);
/// Largest result kept in a receipt (a document is at most 1 MiB).
const MAX_KEPT_RESULT: usize = 512 * 1024;
/// Receipts deleted per transaction when collecting.
const COLLECT_BATCH: usize = 1_000;

/// Whether `name` is a system table (users cannot read or write those).
pub(crate) fn is_system_table(name: &str) -> bool {
    name.starts_with('_')
}

/// The error for a user asking for a system table.
pub(crate) fn no_such_table(name: &str) -> DbError {
    DbError::TableNotFound(format!(
        "\"{name}\" (system tables cannot be used by functions)"
    ))
}

/// `schema` plus the system tables every database has.
pub(crate) fn with_system_tables(schema: Schema) -> Schema {
    schema
        .table(RECEIPTS, TableSchema::new().index("by_key", &["key"]))
        .table(crate::system::STORAGE_TABLE, TableSchema::new())
        .table(crate::system::UPLOAD_TOKENS_TABLE, TableSchema::new())
}

/// A request applied earlier, as its receipt records it.
#[derive(Clone, Debug, PartialEq)]
pub struct Receipt {
    /// What the request returned, `None` if it was too large to keep (over 512 KiB).
    pub result: Option<Value>,
}

impl Transaction {
    /// The receipt recorded under `key` by a committed transaction, if any. The lookup is part
    /// of this transaction's reads: if another transaction records the key first, this one
    /// conflicts.
    pub async fn receipt(&mut self, key: &str) -> Result<Option<Receipt>, DbError> {
        let found = Query::system(self, RECEIPTS)
            .with_index("by_key", |r: IndexRange| r.eq("key", key))
            .first()
            .await?;
        Ok(found.map(|doc| Receipt {
            result: doc.fields.get("result").cloned(),
        }))
    }

    /// Records that the request `key` was applied with `result`, as part of this transaction.
    pub async fn record_receipt(&mut self, key: &str, result: &Value) -> Result<(), DbError> {
        let mut fields = Object::new();
        fields.insert("key".into(), Value::String(key.to_owned()));
        if keel_values::value_size(result) <= MAX_KEPT_RESULT {
            fields.insert("result".into(), result.clone());
        }
        self.insert_document(RECEIPTS, fields).await.map(drop)
    }
}

impl Database {
    /// Deletes the receipts created more than `older_than` ago; returns how many. The committer
    /// runs this every minute with [`RECEIPT_RETENTION`].
    pub async fn collect_receipts(&self, older_than: Duration) -> Result<usize, DbError> {
        let cutoff = Timestamp::now().as_millis_f64() - older_than.as_secs_f64() * 1e3;
        let mut deleted = 0;
        loop {
            let mut tx = self.begin();
            let old: Vec<Document> = Query::system(&mut tx, RECEIPTS)
                .with_index("by_creation_time", |r: IndexRange| {
                    r.lt("_creationTime", cutoff)
                })
                .take(COLLECT_BATCH)
                .await?;
            for doc in &old {
                tx.delete_document(doc.id).await?;
            }
            if !old.is_empty() {
                self.commit(tx).await?;
            }
            deleted += old.len();
            if old.len() < COLLECT_BATCH {
                return Ok(deleted);
            }
        }
    }
}

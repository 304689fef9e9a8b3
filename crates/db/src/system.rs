//! System tables for the backend's own services: reading and writing them by name, which
//! functions never can (to them a system table does not exist).
//!
//! The file storage's tables are declared here: [`STORAGE_TABLE`] (`_storage`, Convex's table
//! of stored files: `size`, `sha256`, `contentType`, and the key of the file's bytes in the
//! blob store) and [`UPLOAD_TOKENS_TABLE`] (`_upload_tokens`, one document per upload URL not
//! yet used, deleted when it is).

use keel_values::{DocumentId, Object};

use crate::query::Query;
use crate::receipts::is_system_table;
use crate::{DbError, Document, Transaction};

/// Convex's table of stored files.
pub const STORAGE_TABLE: &str = "_storage";
/// Upload URLs issued and not used yet.
pub const UPLOAD_TOKENS_TABLE: &str = "_upload_tokens";

impl Transaction {
    /// The document `id` if it is in the system table `table` (`None` for a missing document
    /// or one of another table). The read is part of the transaction's read set.
    pub async fn system_get(
        &mut self,
        table: &str,
        id: DocumentId,
    ) -> Result<Option<Document>, DbError> {
        let in_table = self
            .db
            .shared
            .catalog
            .read()
            .table_of(&id)
            .is_some_and(|info| info.name == table);
        if !is_system_table(table) || !in_table {
            return Ok(None);
        }
        Ok(self.load(id, true).await?.and_then(|(_, doc)| doc))
    }

    /// Inserts into the system table `table`.
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

    /// Deletes the document `id` of a system table.
    pub async fn system_delete(&mut self, id: DocumentId) -> Result<(), DbError> {
        self.delete_document(id).await
    }

    /// A query over the system table `table`.
    pub fn system_query(&mut self, table: &str) -> Query<'_> {
        Query::system(self, table)
    }
}

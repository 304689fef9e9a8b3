//! [`Transaction`]: snapshot reads, buffered writes, the read set that OCC checks, and
//! [`Savepoint`]s that undo the writes made since (a nested mutation that fails).

use std::collections::BTreeMap;
use std::sync::Arc;

use keel_values::{DocumentId, Object};

use crate::catalog::{BY_ID, TableInfo, is_system_table, no_such_table};
use crate::document::check_fields;
use crate::{Database, DbError, Document, Interval, ReadSet, Timestamp};

/// Most documents one transaction may write (as Convex).
const MAX_WRITES: usize = 16_000;
/// Most bytes of documents one transaction may write (as Convex).
const MAX_BYTES_WRITTEN: usize = 16 * 1024 * 1024;
/// Most rows (documents fetched by reads and scans) one transaction may read (as Convex).
pub(crate) const MAX_ROWS_READ: usize = 32_000;
/// Most bytes of documents one transaction may read (as Convex).
pub(crate) const MAX_BYTES_READ: usize = 16 * 1024 * 1024;
/// Most disjoint index ranges one transaction may read (as Convex).
const MAX_INTERVALS_READ: usize = 4_096;

/// A document write buffered in a transaction.
#[derive(Clone, Debug)]
pub(crate) struct PendingWrite {
    pub(crate) table: Arc<TableInfo>,
    /// The document at the snapshot and its revision timestamp (`None` for an insert).
    pub(crate) old: Option<(Document, Timestamp)>,
    /// The document after the transaction (`None` for a delete).
    pub(crate) new: Option<Document>,
}

/// A mark in a [`Transaction`]'s writes (see [`Transaction::savepoint`]); end it with
/// [`Transaction::release`] or [`Transaction::rollback_to`].
#[derive(Debug)]
#[must_use = "a savepoint is ended with release or rollback_to"]
pub struct Savepoint {
    /// How many savepoints are open once this one is (1 for the outermost).
    depth: usize,
}

/// A transaction: reads at one snapshot timestamp, sees its own writes, and commits through
/// [`Database::commit`], which rejects it if something it read changed after the snapshot.
///
/// Reads record the index intervals they scanned in [`Transaction::read_set`]; `patch`,
/// `replace` and `delete` read the document first, so it is in the read set too.
pub struct Transaction {
    pub(crate) db: Database,
    pub(crate) snapshot: Timestamp,
    pub(crate) reads: ReadSet,
    pub(crate) writes: BTreeMap<DocumentId, PendingWrite>,
    /// One undo log per open savepoint, innermost last: each document's write as it was before
    /// the savepoint first changed it (`None`: it had none).
    undo: Vec<BTreeMap<DocumentId, Option<PendingWrite>>>,
    /// Rows and bytes read so far (against the read limits).
    rows_read: usize,
    bytes_read: usize,
}

impl Transaction {
    pub(crate) fn new(db: Database, snapshot: Timestamp) -> Transaction {
        Transaction {
            db,
            snapshot,
            reads: ReadSet::new(),
            writes: BTreeMap::new(),
            undo: Vec::new(),
            rows_read: 0,
            bytes_read: 0,
        }
    }

    /// The snapshot timestamp every read sees.
    pub fn snapshot_ts(&self) -> Timestamp {
        self.snapshot
    }

    /// The intervals read so far.
    pub fn read_set(&self) -> &ReadSet {
        &self.reads
    }

    /// Whether the transaction has written anything.
    pub fn has_writes(&self) -> bool {
        !self.writes.is_empty()
    }

    /// Marks the current writes, so that the ones made from now on can be undone
    /// ([`Transaction::rollback_to`]) or kept ([`Transaction::release`]); savepoints nest. A
    /// nested mutation (`ctx.run_mutation` in a mutation) runs inside one: when it fails, its
    /// writes are undone and its caller's stay. Reads are never undone: what a failed nested call
    /// read stays in the read set, so a commit that changes it still conflicts.
    pub fn savepoint(&mut self) -> Savepoint {
        self.undo.push(BTreeMap::new());
        Savepoint {
            depth: self.undo.len(),
        }
    }

    /// Keeps the writes made since `savepoint` (and ends the savepoints opened after it). A
    /// savepoint already ended does nothing.
    pub fn release(&mut self, savepoint: Savepoint) {
        while self.undo.len() >= savepoint.depth {
            let Some(released) = self.undo.pop() else {
                return;
            };
            // The enclosing savepoint (if any) must still be able to undo these writes: it keeps
            // the older of the two states of each document.
            if let Some(outer) = self.undo.last_mut() {
                for (id, before) in released {
                    outer.entry(id).or_insert(before);
                }
            }
        }
    }

    /// Undoes the writes made since `savepoint` (and ends the savepoints opened after it). A
    /// savepoint already ended does nothing.
    pub fn rollback_to(&mut self, savepoint: Savepoint) {
        while self.undo.len() >= savepoint.depth {
            let Some(undone) = self.undo.pop() else {
                return;
            };
            for (id, before) in undone {
                match before {
                    Some(write) => self.writes.insert(id, write),
                    None => self.writes.remove(&id),
                };
            }
        }
    }

    /// Records the write of `id` as it is before a change, for the innermost open savepoint.
    fn remember(&mut self, id: DocumentId) {
        if let Some(undo) = self.undo.last_mut() {
            undo.entry(id)
                .or_insert_with(|| self.writes.get(&id).cloned());
        }
    }

    /// The name of the table an id belongs to, `None` if no such table exists (use it to check
    /// ids that come from clients).
    pub fn table_name(&self, id: &DocumentId) -> Option<String> {
        self.db
            .shared
            .catalog
            .read()
            .table_of(id)
            .filter(|t| !is_system_table(&t.name))
            .map(|t| t.name.clone())
    }

    /// Reads a document by id: its state at the snapshot, or this transaction's own write.
    /// `None` when it does not exist (or the id's table does not exist).
    pub async fn get(&mut self, id: DocumentId) -> Result<Option<Document>, DbError> {
        Ok(self.load(id, false).await?.and_then(|(_, current)| current))
    }

    /// Inserts a document and returns its new id. `_creationTime` is set unique and increasing.
    pub async fn insert(&mut self, table: &str, fields: Object) -> Result<DocumentId, DbError> {
        if is_system_table(table) {
            return Err(no_such_table(table));
        }
        self.insert_document(table, fields).await
    }

    /// Inserts into any table, system tables included.
    pub(crate) async fn insert_document(
        &mut self,
        table: &str,
        fields: Object,
    ) -> Result<DocumentId, DbError> {
        check_fields(&fields)?;
        let info = self.db.ensure_table(table).await?;
        self.validate(&info, &fields)?;
        self.check_write_count()?;
        let now_ms = Timestamp::now().0 / 1_000_000;
        let id = DocumentId::generate(info.number(), &mut rand::rng(), now_ms);
        let creation_time = self.db.next_creation_time();
        let document = Document {
            id,
            creation_time,
            fields,
        };
        self.remember(id);
        self.writes.insert(
            id,
            PendingWrite {
                table: info,
                old: None,
                new: Some(document),
            },
        );
        Ok(id)
    }

    /// Shallow-merges `fields` into the document and removes the fields named in `remove`
    /// (Convex's `patch` with a field set to `undefined`). System fields cannot be patched.
    pub async fn patch(
        &mut self,
        id: DocumentId,
        fields: Object,
        remove: &[&str],
    ) -> Result<(), DbError> {
        if let Some(name) = fields
            .keys()
            .map(String::as_str)
            .chain(remove.iter().copied())
            .find(|n| n.starts_with('_'))
        {
            return Err(DbError::SystemFieldWrite(name.to_owned()));
        }
        let (table, current) = self.load_existing(id, false).await?;
        let mut merged = current.fields.clone();
        for name in remove {
            merged.remove(*name);
        }
        merged.extend(fields);
        self.write_existing(
            table,
            Document {
                fields: merged,
                ..current
            },
        )
        .await
    }

    /// Replaces the document's user fields (system fields are kept).
    pub async fn replace(&mut self, id: DocumentId, fields: Object) -> Result<(), DbError> {
        let (table, current) = self.load_existing(id, false).await?;
        self.write_existing(table, Document { fields, ..current })
            .await
    }

    /// Deletes the document.
    pub async fn delete(&mut self, id: DocumentId) -> Result<(), DbError> {
        self.delete_any(id, false).await
    }

    /// Deletes a document of any table, system tables included.
    pub(crate) async fn delete_document(&mut self, id: DocumentId) -> Result<(), DbError> {
        self.delete_any(id, true).await
    }

    async fn delete_any(&mut self, id: DocumentId, system: bool) -> Result<(), DbError> {
        let (table, _) = self.load_existing(id, system).await?;
        self.check_write_count()?;
        self.remember(id);
        match self.writes.get_mut(&id) {
            Some(write) if write.old.is_none() => {
                self.writes.remove(&id);
            }
            Some(write) => write.new = None,
            None => {
                let old = self
                    .db
                    .shared
                    .persistence
                    .document_at(id, self.snapshot)
                    .await?;
                let old = old.and_then(|r| r.document.map(|d| (d, r.ts)));
                self.writes.insert(
                    id,
                    PendingWrite {
                        table,
                        old,
                        new: None,
                    },
                );
            }
        }
        Ok(())
    }

    pub(crate) async fn write_existing(
        &mut self,
        table: Arc<TableInfo>,
        document: Document,
    ) -> Result<(), DbError> {
        check_fields(&document.fields)?;
        self.validate(&table, &document.fields)?;
        self.check_write_count()?;
        let id = document.id;
        self.remember(id);
        match self.writes.get_mut(&id) {
            Some(write) => write.new = Some(document),
            None => {
                let old = self
                    .db
                    .shared
                    .persistence
                    .document_at(id, self.snapshot)
                    .await?;
                let old = old.and_then(|r| r.document.map(|d| (d, r.ts)));
                self.writes.insert(
                    id,
                    PendingWrite {
                        table,
                        old,
                        new: Some(document),
                    },
                );
            }
        }
        Ok(())
    }

    /// Counts documents fetched from storage against the read limits.
    /// Documents and bytes read so far (what the read limits count).
    pub(crate) fn reads(&self) -> (usize, usize) {
        (self.rows_read, self.bytes_read)
    }

    pub(crate) fn charge_reads<'d>(
        &mut self,
        documents: impl IntoIterator<Item = &'d Document>,
    ) -> Result<(), DbError> {
        for document in documents {
            self.rows_read += 1;
            self.bytes_read += document.size();
        }
        if self.rows_read > MAX_ROWS_READ {
            return Err(DbError::TooManyReads(format!(
                "a function may read at most {MAX_ROWS_READ} documents; read fewer (an index \
                 range that selects less, a smaller limit, or pagination)"
            )));
        }
        if self.bytes_read > MAX_BYTES_READ {
            return Err(DbError::TooManyReads(format!(
                "a function may read at most {} MiB of documents; read fewer (an index range \
                 that selects less, a smaller limit, or pagination)",
                MAX_BYTES_READ >> 20
            )));
        }
        Ok(())
    }

    /// Records a read interval, within the limit on distinct ranges.
    pub(crate) fn record_read(
        &mut self,
        index: crate::IndexId,
        interval: Interval,
    ) -> Result<(), DbError> {
        self.reads.record(index, interval);
        if self.reads.interval_count() > MAX_INTERVALS_READ {
            return Err(DbError::TooManyReads(format!(
                "a function may read at most {MAX_INTERVALS_READ} separate index ranges; \
                 combine them into fewer, wider ranges"
            )));
        }
        Ok(())
    }

    /// The bytes of documents this transaction writes, within the limit (checked at commit).
    pub(crate) fn check_write_size(&self) -> Result<(), DbError> {
        let written: usize = self
            .writes
            .values()
            .filter_map(|w| w.new.as_ref().map(Document::size))
            .sum();
        if written > MAX_BYTES_WRITTEN {
            return Err(DbError::TransactionTooLarge(format!(
                "a transaction may write at most {} MiB of documents, this one writes {written} bytes",
                MAX_BYTES_WRITTEN >> 20
            )));
        }
        Ok(())
    }

    fn check_write_count(&self) -> Result<(), DbError> {
        if self.writes.len() >= MAX_WRITES {
            return Err(DbError::TransactionTooLarge(format!(
                "a transaction may write at most {MAX_WRITES} documents"
            )));
        }
        Ok(())
    }

    fn validate(&self, table: &TableInfo, fields: &Object) -> Result<(), DbError> {
        let Some(validator) = &table.validator else {
            return Ok(());
        };
        let catalog = self.db.shared.catalog.read();
        crate::schema::check_document(&table.name, validator, fields, &|id| {
            catalog.table_of(id).map(|t| t.name.clone())
        })
    }

    pub(crate) async fn load_existing(
        &mut self,
        id: DocumentId,
        system: bool,
    ) -> Result<(Arc<TableInfo>, Document), DbError> {
        match self.load(id, system).await? {
            Some((table, Some(doc))) => Ok((table, doc)),
            Some((_, None)) => Err(DbError::DocumentNotFound(id.to_string())),
            None => Err(DbError::TableNotFound(format!("for document ID \"{id}\""))),
        }
    }

    /// The id's table and the document's current state (own write first, else the snapshot),
    /// recording the `by_id` read. `None` when the table does not exist, or is a system table
    /// and `system` is false.
    pub(crate) async fn load(
        &mut self,
        id: DocumentId,
        system: bool,
    ) -> Result<Option<(Arc<TableInfo>, Option<Document>)>, DbError> {
        let Some(table) = self.db.shared.catalog.read().table_of(&id).cloned() else {
            return Ok(None);
        };
        if !system && is_system_table(&table.name) {
            return Ok(None);
        }
        if let Some(by_id) = table.index(BY_ID) {
            self.record_read(by_id.id, Interval::point(&id.to_bytes()))?;
        }
        if let Some(write) = self.writes.get(&id) {
            return Ok(Some((table, write.new.clone())));
        }
        let revision = self
            .db
            .shared
            .persistence
            .document_at(id, self.snapshot)
            .await?;
        let document = revision.and_then(|r| r.document);
        self.charge_reads(&document)?;
        Ok(Some((table, document)))
    }
}

//! [`Database::import_snapshot`]: a checked snapshot committed in one commit, keeping every
//! `_id`, `_creationTime` and table number (see the [`snapshot`](crate::snapshot) docs).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use keel_values::{DocumentId, Object, TableNumber, Value};

use super::parse::{ParsedSnapshot, parse};
use super::{ImportMode, ImportOptions, ImportSummary, STORAGE_KEY_FIELD, SnapshotError};
use crate::blobs::{BlobKey, BlobStore};
use crate::catalog::{BY_ID, Catalog, TableInfo};
use crate::document::check_fields;
use crate::transaction::PendingWrite;
use crate::{Database, DbError, Document, Interval, Order, STORAGE_TABLE, Timestamp};

/// Times an import is rebuilt and committed again when a concurrent commit touched its tables.
const MAX_ATTEMPTS: usize = 5;
/// Documents read from storage per page (a replace reads the tables it empties).
const PAGE_SIZE: usize = 1000;

/// Where one snapshot table goes.
struct TablePlan {
    name: String,
    /// The number it must have: the snapshot's, or `None` for a table without ids whose name
    /// is new here (it gets the next free number).
    number: Option<TableNumber>,
}

/// A document ready to commit: the table it goes to and the document.
struct ImportedDocument {
    table: usize,
    document: Document,
}

impl Database {
    /// Imports a snapshot ZIP (Convex's snapshot export format, see
    /// [`snapshot`](crate::snapshot)) in one commit: every `_id`, `_creationTime` and table
    /// number is kept, the tables the snapshot names are filled according to
    /// [`ImportOptions::mode`], and subscribers see the whole import at once. A snapshot with a
    /// malformed entry, a document the schema refuses, a table number taken by another table or
    /// (by default) a target table that holds documents is refused, and nothing changes.
    ///
    /// ```no_run
    /// # async fn demo(db: keel_db::Database) -> Result<(), keel_db::snapshot::SnapshotError> {
    /// use keel_db::snapshot::{ImportMode, ImportOptions};
    /// let zip = bytes::Bytes::from(std::fs::read("/tmp/snapshot.zip")?);
    /// let options = ImportOptions { mode: ImportMode::Replace, ..ImportOptions::default() };
    /// let summary = db.import_snapshot(zip, options).await?;
    /// println!("{:?}", summary.tables);
    /// # Ok(()) }
    /// ```
    pub async fn import_snapshot(
        &self,
        zip: Bytes,
        options: ImportOptions,
    ) -> Result<ImportSummary, SnapshotError> {
        if !self.is_committer() {
            return Err(DbError::NotCommitter(
                "a snapshot is imported on the node that commits".into(),
            )
            .into());
        }
        let limits = options.limits;
        let snapshot = tokio::task::spawn_blocking(move || parse(zip, &limits))
            .await
            .map_err(|e| SnapshotError::Io(format!("reading the ZIP stopped: {e}")))??;
        let blobs = match (&snapshot.files, &options.file_storage) {
            (Some(files), None) if !files.is_empty() => {
                return Err(SnapshotError::StorageNotConfigured(
                    "the snapshot holds stored files and this deployment has no file storage"
                        .into(),
                ));
            }
            (_, blobs) => blobs.clone(),
        };
        let plans = self.plan_tables(&snapshot)?;
        self.check_documents(&snapshot, &plans)?;
        if options.mode == ImportMode::RequireEmpty {
            self.check_empty(&snapshot, &plans).await?;
        }
        // Nothing was written so far; from here on, only creating the (empty, invisible) new
        // tables and storing the files' bytes precede the one commit.
        let mut tables = Vec::with_capacity(plans.len());
        for plan in &plans {
            tables.push(self.import_table(plan).await?);
        }
        let storage = match &snapshot.files {
            Some(_) => Some(self.ensure_table(STORAGE_TABLE).await?),
            None => None,
        };
        let mut stored: Vec<BlobKey> = Vec::new();
        let result =
            async {
                let storage_documents = match (&snapshot.files, &blobs, &storage) {
                    (Some(files), Some(blobs), Some(storage)) => {
                        store_files(files, blobs.as_ref(), storage.number(), &mut stored).await?
                    }
                    _ => Vec::new(),
                };
                let mut documents = Vec::new();
                for (i, table) in snapshot.tables.iter().enumerate() {
                    for parsed in &table.documents {
                        documents.push(ImportedDocument {
                            table: i,
                            document: Document {
                                id: parsed.id.unwrap_or_else(|| {
                                    DocumentId::generate(
                                        tables[i].number(),
                                        &mut rand::rng(),
                                        Timestamp::now().0 / 1_000_000,
                                    )
                                }),
                                creation_time: parsed
                                    .creation_time
                                    .unwrap_or_else(|| self.next_creation_time()),
                                fields: parsed.fields.clone(),
                            },
                        });
                    }
                }
                if let Some(storage) = &storage {
                    tables.push(storage.clone());
                    let index = tables.len() - 1;
                    documents.extend(storage_documents.into_iter().map(|document| {
                        ImportedDocument {
                            table: index,
                            document,
                        }
                    }));
                }
                let mut attempt = 1;
                loop {
                    match self.commit_import(&tables, &documents, options.mode).await {
                        Err(SnapshotError::Db(e)) if e.is_occ() && attempt < MAX_ATTEMPTS => {
                            attempt += 1;
                        }
                        other => break other,
                    }
                }
            }
            .await;
        match result {
            Ok(mut summary) => {
                summary.files = snapshot.files.as_ref().map_or(0, |f| f.len() as u64);
                tracing::info!(
                    tables = summary.tables.len(),
                    files = summary.files,
                    deleted = summary.deleted,
                    "imported snapshot"
                );
                Ok(summary)
            }
            Err(error) => {
                if let Some(blobs) = &blobs {
                    for key in &stored {
                        if let Err(e) = blobs.delete(key).await {
                            tracing::warn!(error = %e, "could not delete a refused import's file");
                        }
                    }
                }
                Err(error)
            }
        }
    }

    /// Decides each snapshot table's number against the catalog (see the module docs).
    fn plan_tables(&self, snapshot: &ParsedSnapshot) -> Result<Vec<TablePlan>, SnapshotError> {
        let catalog = self.shared.catalog.read();
        let mut taken: HashMap<u32, &str> = HashMap::new();
        let mut plans = Vec::new();
        for table in &snapshot.tables {
            let existing = catalog.table(&table.name).filter(|t| !t.is_missing());
            match (existing, table.number) {
                (Some(here), Some(number)) if here.number != number.0 => {
                    return Err(SnapshotError::TableNumberConflict(format!(
                        "\"{name}\" is table number {number} in the snapshot but {here} here, and \
                         ids encode their table's number; import into a deployment where \
                         \"{name}\" does not exist yet, or whose tables were created in the same \
                         order (the same app and schema)",
                        name = table.name,
                        number = number.0,
                        here = here.number
                    )));
                }
                (None, Some(number)) => {
                    if let Some(other) = catalog.table_by_number(number) {
                        return Err(SnapshotError::TableNumberConflict(format!(
                            "the snapshot's \"{}\" has table number {}, which \"{}\" has here",
                            table.name, number.0, other.name
                        )));
                    }
                }
                _ => {}
            }
            if let Some(number) = table.number
                && let Some(other) = taken.insert(number.0, &table.name)
            {
                return Err(SnapshotError::TableNumberConflict(format!(
                    "the snapshot's \"{other}\" and \"{}\" both have table number {}",
                    table.name, number.0
                )));
            }
            plans.push(TablePlan {
                name: table.name.clone(),
                number: table.number,
            });
        }
        if let Some(files) = &snapshot.files {
            let here = catalog.table(STORAGE_TABLE).map(|t| t.number);
            if let Some(file) = files.iter().find(|f| Some(f.id.table.0) != here) {
                return Err(SnapshotError::TableNumberConflict(format!(
                    "the snapshot's stored files have table number {} (e.g. \"{}\"), this \
                     deployment's {STORAGE_TABLE} is {}; storage ids would not match",
                    file.id.table.0,
                    file.id,
                    here.map_or("missing".to_owned(), |n| n.to_string())
                )));
            }
        }
        Ok(plans)
    }

    /// Checks every document against Convex's rules and the table's schema, before anything is
    /// written; an error names the entry and line.
    fn check_documents(
        &self,
        snapshot: &ParsedSnapshot,
        plans: &[TablePlan],
    ) -> Result<(), SnapshotError> {
        let catalog = self.shared.catalog.read();
        let planned: HashMap<u32, &str> = plans
            .iter()
            .filter_map(|p| p.number.map(|n| (n.0, p.name.as_str())))
            .collect();
        let id_table = |id: &DocumentId| {
            catalog
                .table_of(id)
                .map(|t| t.name.clone())
                .or_else(|| planned.get(&id.table.0).map(|n| (*n).to_owned()))
        };
        for table in &snapshot.tables {
            let validator = catalog.table(&table.name).and_then(|t| t.validator.clone());
            for document in &table.documents {
                let refused = |e: DbError| {
                    SnapshotError::malformed(&table.entry(), Some(document.line), e.to_string())
                };
                check_fields(&document.fields).map_err(refused)?;
                if let Some(validator) = &validator {
                    crate::schema::check_document(
                        &table.name,
                        validator,
                        &document.fields,
                        &id_table,
                    )
                    .map_err(refused)?;
                }
            }
        }
        Ok(())
    }

    /// Refuses the import if a table it fills holds documents (the default mode).
    async fn check_empty(
        &self,
        snapshot: &ParsedSnapshot,
        plans: &[TablePlan],
    ) -> Result<(), SnapshotError> {
        let tables: Vec<Arc<TableInfo>> = {
            let catalog = self.shared.catalog.read();
            let mut names: Vec<&str> = plans.iter().map(|p| p.name.as_str()).collect();
            if snapshot.files.is_some() {
                names.push(STORAGE_TABLE);
            }
            names
                .into_iter()
                .filter_map(|n| catalog.table(n).cloned())
                .collect()
        };
        let ts = self.latest_ts();
        for table in tables {
            if self.first_document(&table, ts).await?.is_some() {
                return Err(not_empty(&table.name));
            }
        }
        Ok(())
    }

    async fn first_document(
        &self,
        table: &TableInfo,
        ts: Timestamp,
    ) -> Result<Option<Document>, DbError> {
        let Some(by_id) = table.index(BY_ID) else {
            return Ok(None);
        };
        let rows = self
            .shared
            .persistence
            .index_scan(by_id.id, &Interval::all(), ts, Order::Asc, 1)
            .await?;
        Ok(rows.into_iter().next().map(|r| r.document))
    }

    /// The table a snapshot table goes to, created (with its number) if it does not exist.
    async fn import_table(&self, plan: &TablePlan) -> Result<Arc<TableInfo>, SnapshotError> {
        let Some(number) = plan.number else {
            return Ok(self.ensure_table(&plan.name).await?);
        };
        let _guard = self.shared.catalog_change.lock().await;
        let mut next: Catalog = self.shared.catalog.read().clone();
        if let Some(table) = next.table(&plan.name).filter(|t| !t.is_missing()) {
            if table.number() == number {
                return Ok(table.clone());
            }
            return Err(SnapshotError::TableNumberConflict(format!(
                "\"{}\" was created as number {} while the import ran",
                plan.name, table.number
            )));
        }
        if let Some(other) = next.table_by_number(number) {
            return Err(SnapshotError::TableNumberConflict(format!(
                "table number {} of \"{}\" was taken by \"{}\" while the import ran",
                number.0, plan.name, other.name
            )));
        }
        let table = next.add_table_numbered(&plan.name, number);
        self.shared
            .persistence
            .set_global(crate::catalog::CATALOG_KEY, next.encode())
            .await
            .map_err(DbError::from)?;
        *self.shared.catalog.write() = next;
        tracing::debug!(table = %plan.name, number = number.0, "created table for an import");
        Ok(table)
    }

    /// Builds the import's one transaction at the latest snapshot and commits it. The tables'
    /// whole `by_id` ranges are in its read set, so a concurrent write to them makes it
    /// conflict (and the caller builds it again).
    async fn commit_import(
        &self,
        tables: &[Arc<TableInfo>],
        documents: &[ImportedDocument],
        mode: ImportMode,
    ) -> Result<ImportSummary, SnapshotError> {
        let mut tx = self.begin();
        let mut summary = ImportSummary::default();
        for table in tables {
            let Some(by_id) = table.index(BY_ID) else {
                continue;
            };
            tx.record_read(by_id.id, Interval::all())?;
            match mode {
                ImportMode::RequireEmpty => {
                    if self.first_document(table, tx.snapshot).await?.is_some() {
                        return Err(not_empty(&table.name));
                    }
                }
                ImportMode::Replace => {
                    let mut interval = Interval::all();
                    loop {
                        let rows = self
                            .shared
                            .persistence
                            .index_scan(by_id.id, &interval, tx.snapshot, Order::Asc, PAGE_SIZE)
                            .await
                            .map_err(DbError::from)?;
                        let full = rows.len() == PAGE_SIZE;
                        if let Some(last) = rows.last() {
                            interval.start = crate::interval::key_successor(&last.key);
                        }
                        for row in rows {
                            summary.deleted += 1;
                            tx.writes.insert(
                                row.document.id,
                                PendingWrite {
                                    table: table.clone(),
                                    old: Some((row.document, row.ts)),
                                    new: None,
                                },
                            );
                        }
                        if !full {
                            break;
                        }
                    }
                }
                ImportMode::Append => {}
            }
        }
        let mut counts = vec![0u64; tables.len()];
        for imported in documents {
            let id = imported.document.id;
            let table = &tables[imported.table];
            counts[imported.table] += 1;
            if let Some(write) = tx.writes.get_mut(&id) {
                summary.deleted -= 1;
                write.new = Some(imported.document.clone());
                continue;
            }
            if mode == ImportMode::Append
                && let Some(revision) = self
                    .shared
                    .persistence
                    .document_at(id, tx.snapshot)
                    .await
                    .map_err(DbError::from)?
                && revision.document.is_some()
            {
                return Err(SnapshotError::TargetNotEmpty(format!(
                    "document \"{id}\" of \"{}\" exists here already (an append keeps the \
                     snapshot's ids)",
                    table.name
                )));
            }
            tx.writes.insert(
                id,
                PendingWrite {
                    table: table.clone(),
                    old: None,
                    new: Some(imported.document.clone()),
                },
            );
        }
        summary.tables = tables
            .iter()
            .zip(counts)
            .map(|(t, n)| (t.name.clone(), n))
            .collect();
        if tx.has_writes() {
            self.submit(tx).await?;
        }
        Ok(summary)
    }
}

fn not_empty(table: &str) -> SnapshotError {
    SnapshotError::TargetNotEmpty(format!(
        "table \"{table}\" holds documents; import with --replace to replace them or --append to \
         add to them"
    ))
}

/// Stores the files' bytes under new blob keys (recorded in `stored`, so a refused import
/// deletes them) and returns their `_storage` documents.
async fn store_files(
    files: &[super::parse::ParsedFile],
    blobs: &dyn BlobStore,
    storage: TableNumber,
    stored: &mut Vec<BlobKey>,
) -> Result<Vec<Document>, SnapshotError> {
    let mut documents = Vec::with_capacity(files.len());
    for file in files {
        debug_assert_eq!(file.id.table, storage);
        let key = BlobKey::generate();
        let chunks = futures::stream::iter([Ok(file.bytes.clone())]).boxed();
        stored.push(key.clone());
        blobs.put(&key, chunks).await?;
        let mut fields = Object::new();
        fields.insert(STORAGE_KEY_FIELD.into(), Value::String(key.to_string()));
        fields.insert("size".into(), Value::Int64(file.size as i64));
        fields.insert("sha256".into(), Value::String(file.sha256.clone()));
        if let Some(content_type) = &file.content_type {
            fields.insert("contentType".into(), Value::String(content_type.clone()));
        }
        documents.push(Document {
            id: file.id,
            creation_time: file
                .creation_time
                .unwrap_or(Timestamp::now().as_millis_f64()),
            fields,
        });
    }
    Ok(documents)
}

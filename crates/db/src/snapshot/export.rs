//! [`Database::export_snapshot`]: every user table (and optionally the stored files) at one
//! snapshot timestamp, written as a snapshot ZIP a page at a time.

use std::io::Write;
use std::sync::Arc;

use futures::StreamExt;
use parking_lot::Mutex;
use serde_json::{Map, Number, Value as Json};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use zip::write::{SimpleFileOptions, StreamWriter};
use zip::{CompressionMethod, ZipWriter};

use super::format::{
    DOCUMENTS_FILE, GENERATED_SCHEMA_FILE, README_ENTRY, README_TEXT, STORAGE_DIR, TABLES_ENTRY,
    extension_for, object_to_export_json,
};
use super::{ExportOptions, ExportSummary, STORAGE_KEY_FIELD, SnapshotError};
use crate::blobs::BlobKey;
use crate::catalog::{BY_ID, TableInfo, is_system_table};
use crate::write_log::RETENTION;
use crate::{Database, DbError, Document, IndexId, Interval, Order, STORAGE_TABLE, Timestamp};

/// Documents read from storage per page.
const PAGE_SIZE: usize = 500;

/// What the ZIP writer has produced and not yet handed to the output. The ZIP writer is
/// synchronous; the export drains this buffer into the asynchronous output after every page,
/// so memory holds at most one page's worth of compressed bytes.
#[derive(Clone, Default)]
struct PageBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for PageBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The ZIP being written and where its bytes go.
struct ZipOut<W> {
    /// Boxed: the writer is large, and would make every export future as large.
    zip: Box<ZipWriter<StreamWriter<PageBuffer>>>,
    buffer: PageBuffer,
    out: W,
}

fn zip_error(error: zip::result::ZipError) -> SnapshotError {
    SnapshotError::Io(format!("writing the ZIP: {error}"))
}

impl<W: AsyncWrite + Unpin + Send> ZipOut<W> {
    fn new(out: W) -> Self {
        let buffer = PageBuffer::default();
        ZipOut {
            zip: Box::new(ZipWriter::new_stream(buffer.clone())),
            buffer,
            out,
        }
    }

    fn start(&mut self, name: &str) -> Result<(), SnapshotError> {
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .unix_permissions(0o644);
        self.zip.start_file(name, options).map_err(zip_error)
    }

    fn line(&mut self, json: &Json) -> Result<(), SnapshotError> {
        serde_json::to_writer(&mut *self.zip, json)
            .map_err(|e| SnapshotError::Io(format!("writing the ZIP: {e}")))?;
        self.zip.write_all(b"\n")?;
        Ok(())
    }

    /// Hands what the ZIP writer produced to the output.
    async fn drain(&mut self) -> Result<(), SnapshotError> {
        let bytes = std::mem::take(&mut *self.buffer.0.lock());
        if !bytes.is_empty() {
            self.out.write_all(&bytes).await?;
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<(), SnapshotError> {
        self.zip.finish().map_err(zip_error)?;
        let bytes = std::mem::take(&mut *self.buffer.0.lock());
        self.out.write_all(&bytes).await?;
        self.out.flush().await?;
        Ok(())
    }
}

/// A document in export JSON, as a line of `documents.jsonl` holds it: its fields plus `_id`
/// and `_creationTime` (what `keel data` and the dashboard show).
pub fn document_to_export_json(document: &Document) -> Json {
    let mut object = object_to_export_json(&document.fields);
    object.insert("_id".into(), Json::String(document.id.to_string()));
    object.insert(
        "_creationTime".into(),
        Number::from_f64(document.creation_time).map_or(Json::Null, Json::Number),
    );
    Json::Object(object)
}

impl Database {
    /// Writes a snapshot of every user table — and of the stored files when
    /// [`ExportOptions::file_storage`] is set — to `out` as a ZIP in Convex's snapshot export
    /// format (see [`snapshot`](crate::snapshot)). Every table is read at one timestamp, the
    /// latest at the start, a page at a time; an export that takes longer than the history
    /// retention window (5 minutes) fails with `OutOfRetention` rather than mixing states.
    ///
    /// ```no_run
    /// # async fn demo(db: keel_db::Database) -> Result<(), keel_db::snapshot::SnapshotError> {
    /// let file = tokio::fs::File::create("/tmp/snapshot.zip").await?;
    /// let summary = db.export_snapshot(file, keel_db::snapshot::ExportOptions::default()).await?;
    /// println!("{:?}", summary.tables);
    /// # Ok(()) }
    /// ```
    pub async fn export_snapshot<W: AsyncWrite + Unpin + Send>(
        &self,
        out: W,
        options: ExportOptions,
    ) -> Result<ExportSummary, SnapshotError> {
        let ts = self.latest_ts();
        let (mut tables, storage) = {
            let catalog = self.shared.catalog.read();
            let user: Vec<Arc<TableInfo>> = catalog
                .tables
                .iter()
                .filter(|t| !is_system_table(&t.name) && !t.is_missing())
                .cloned()
                .collect();
            (user, catalog.table(STORAGE_TABLE).cloned())
        };
        tables.sort_by_key(|t| t.number);
        let mut zip = ZipOut::new(out);
        let mut summary = ExportSummary::default();

        zip.start(README_ENTRY)?;
        zip.zip.write_all(README_TEXT.as_bytes())?;
        zip.start(TABLES_ENTRY)?;
        for table in &tables {
            zip.line(&serde_json::json!({ "name": table.name, "id": table.number }))?;
        }
        zip.drain().await?;

        for table in &tables {
            zip.start(&format!("{}/{DOCUMENTS_FILE}", table.name))?;
            let mut count = 0u64;
            let mut scan = TableScan::new(table);
            while let Some(page) = self.next_page(&mut scan, ts).await? {
                for document in &page {
                    zip.line(&document_to_export_json(document))?;
                }
                count += page.len() as u64;
                zip.drain().await?;
            }
            zip.start(&format!("{}/{GENERATED_SCHEMA_FILE}", table.name))?;
            zip.line(&Json::String("uniform".into()))?;
            summary.tables.push((table.name.clone(), count));
            tracing::debug!(table = %table.name, documents = count, "exported table");
        }

        if let (Some(blobs), Some(storage)) = (&options.file_storage, storage) {
            let mut files: Vec<(String, BlobKey)> = Vec::new();
            zip.start(&format!("{STORAGE_DIR}/{DOCUMENTS_FILE}"))?;
            let mut scan = TableScan::new(&storage);
            while let Some(page) = self.next_page(&mut scan, ts).await? {
                for document in &page {
                    let (line, file) = storage_line(document);
                    zip.line(&line)?;
                    files.extend(file);
                }
                zip.drain().await?;
            }
            summary
                .tables
                .push((STORAGE_TABLE.to_owned(), files.len() as u64));
            for (name, key) in files {
                let Some(mut chunks) = blobs.get(&key, None).await? else {
                    return Err(SnapshotError::Io(format!(
                        "the bytes of stored file {name} are missing from the blob store"
                    )));
                };
                zip.start(&format!("{STORAGE_DIR}/{name}"))?;
                while let Some(chunk) = chunks.next().await {
                    zip.zip.write_all(&chunk?)?;
                    zip.drain().await?;
                }
                summary.files += 1;
            }
        }
        zip.finish().await?;
        Ok(summary)
    }

    /// The next page of a table's live documents at `ts`, in `_id` order; `None` once the
    /// table is read.
    async fn next_page(
        &self,
        scan: &mut TableScan,
        ts: Timestamp,
    ) -> Result<Option<Vec<Document>>, SnapshotError> {
        let Some(by_id) = scan.by_id.filter(|_| !scan.done) else {
            return Ok(None);
        };
        let rows = self
            .shared
            .persistence
            .index_scan(by_id, &scan.interval, ts, Order::Asc, PAGE_SIZE)
            .await
            .map_err(DbError::from)?;
        scan.done = rows.len() < PAGE_SIZE;
        if let Some(last) = rows.last() {
            scan.interval.start = crate::interval::key_successor(&last.key);
        }
        // History older than the retention window may be pruned under a long export.
        if self.latest_ts().0.saturating_sub(ts.0) > RETENTION.as_nanos() as u64 {
            return Err(DbError::OutOfRetention(format!(
                "the export took longer than the {}-second history retention window",
                RETENTION.as_secs()
            ))
            .into());
        }
        Ok(Some(rows.into_iter().map(|row| row.document).collect()))
    }
}

/// Where the reading of one table's `by_id` index has got to.
struct TableScan {
    by_id: Option<IndexId>,
    interval: Interval,
    done: bool,
}

impl TableScan {
    fn new(table: &TableInfo) -> TableScan {
        TableScan {
            by_id: table.index(BY_ID).map(|i| i.id),
            interval: Interval::all(),
            done: false,
        }
    }
}

/// A `_storage` document as a line of `_storage/documents.jsonl`, and the file's entry name and
/// blob key (`None` for a document without a valid key, written without its file).
fn storage_line(document: &Document) -> (Json, Option<(String, BlobKey)>) {
    let field = |name: &str| document.fields.get(name);
    let content_type = field("contentType").and_then(|v| v.as_str());
    let key = field(STORAGE_KEY_FIELD)
        .and_then(|v| v.as_str())
        .and_then(BlobKey::parse);
    let mut line = Map::new();
    line.insert("_id".into(), Json::String(document.id.to_string()));
    line.insert(
        "_creationTime".into(),
        Number::from_f64(document.creation_time).map_or(Json::Null, Json::Number),
    );
    for name in ["sha256", "size"] {
        if let Some(value) = field(name) {
            line.insert(name.into(), super::format::to_export_json(value));
        }
    }
    line.insert(
        "contentType".into(),
        content_type.map_or(Json::Null, |c| Json::String(c.to_owned())),
    );
    if let Some(key) = &key {
        line.insert("internalId".into(), Json::String(key.to_string()));
    }
    let file = key.map(|key| {
        (
            format!("{}{}", document.id, extension_for(content_type)),
            key,
        )
    });
    (Json::Object(line), file)
}

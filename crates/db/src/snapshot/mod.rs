//! Snapshot export and import in Convex's snapshot export format, so that a deployment's data
//! moves between Keel deployments (SQLite ↔ PostgreSQL) and to and from Convex.
//!
//! The ZIP (deflate entries, unix mode 0644):
//! * `README.md` first;
//! * `_tables/documents.jsonl`: `{"name": <table>, "id": <table number>}` per user table, in
//!   table-number order;
//! * per table, `<table>/documents.jsonl` (one document per line in export JSON, in `_id`
//!   order) and `<table>/generated_schema.jsonl` (the line `"uniform"`);
//! * with file storage, `_storage/documents.jsonl` (`_id`, `_creationTime`, `sha256` in
//!   base64, `size`, `contentType`, `internalId`) and each file as `_storage/<id><.ext>`.
//!
//! [`Database::export_snapshot`] reads every table at one snapshot timestamp, a page at a time,
//! and writes the ZIP as it goes (memory holds one page). [`Database::import_snapshot`] reads a
//! whole ZIP, checks every entry and document, and then commits it in **one** commit through
//! the committer: readers see all of it or none of it, and subscriptions are invalidated like
//! for any commit. A snapshot that is refused changes nothing (stored files written for it are
//! deleted again): every check on its contents runs before anything is written. Only a refusal
//! found at the commit itself (a concurrent write made a table non-empty, five conflicts in a
//! row) can leave behind the empty tables the import had created for it.
//!
//! # Table numbers
//! Document ids encode their table's number, and a document's fields may hold ids of other
//! tables (`v.id("users")`, storage ids), so an import keeps every `_id` and hence every table
//! number. For each table of the snapshot:
//! * the deployment has a table of that name with the same number: it is imported into;
//! * the deployment has no table of that name: the table is created with the snapshot's number,
//!   if no other table has it;
//! * otherwise the import is refused (`TableNumberConflict`). Convex would replace the table by
//!   a new one with the snapshot's number; a Keel table keeps its number for life, so import
//!   into a deployment whose tables were numbered alike (same app, same schema) or where the
//!   table does not exist yet.
//!
//! # Modes
//! As `npx convex import`: by default every table the snapshot names must be empty;
//! [`ImportMode::Replace`] deletes their documents first (in the same commit);
//! [`ImportMode::Append`] adds the snapshot's documents to them (an `_id` already present is
//! refused). Tables the snapshot does not name are left alone.
//!
//! # Layout
//! * `format` — entry names and the export JSON value encoding.
//! * `export` — [`Database::export_snapshot`], [`document_to_export_json`].
//! * `parse` — reading a ZIP into checked tables and files, with size limits.
//! * `import` — [`Database::import_snapshot`]: table numbers, modes, the one commit.

mod export;
mod format;

pub use export::document_to_export_json;

/// A value in Convex's export JSON (int64 as a JSON integer, float64 with a point, bytes and
/// non-finite floats as `{"$bytes"|"$float": base64}`): lossless and readable, what
/// `keel run` prints.
///
/// ```
/// use keel_values::Value;
/// assert_eq!(keel_db::snapshot::value_to_export_json(&Value::Float64(2.0)).to_string(), "2.0");
/// assert_eq!(keel_db::snapshot::value_to_export_json(&Value::Int64(2)).to_string(), "2");
/// ```
pub fn value_to_export_json(value: &keel_values::Value) -> serde_json::Value {
    format::to_export_json(value)
}
mod import;
mod parse;

use std::sync::Arc;

use crate::DbError;
use crate::blobs::BlobStore;

/// The `_storage` document field naming the blob that holds the file's bytes.
pub const STORAGE_KEY_FIELD: &str = "storageKey";

/// What an import does with tables that already hold documents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ImportMode {
    /// Refuse the import if a table the snapshot names holds documents (the default).
    #[default]
    RequireEmpty,
    /// Delete the documents of the tables the snapshot names, in the same commit.
    Replace,
    /// Add the snapshot's documents to what the tables hold.
    Append,
}

/// Bounds on what an import reads from a ZIP (a ZIP bomb is refused, not unpacked).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImportLimits {
    /// Most bytes one entry may unpack to.
    pub max_entry_bytes: u64,
    /// Most bytes all entries together may unpack to.
    pub max_total_bytes: u64,
    /// Most entries in the ZIP.
    pub max_entries: usize,
}

impl Default for ImportLimits {
    /// 1 GiB per entry and in all, 100,000 entries.
    fn default() -> Self {
        ImportLimits {
            max_entry_bytes: 1 << 30,
            max_total_bytes: 1 << 30,
            max_entries: 100_000,
        }
    }
}

/// How to export: with or without file storage.
#[derive(Clone, Default)]
pub struct ExportOptions {
    /// Where stored files' bytes are; `Some` includes file storage in the export.
    pub file_storage: Option<Arc<dyn BlobStore>>,
}

/// How to import.
#[derive(Clone, Default)]
pub struct ImportOptions {
    /// What to do with tables that hold documents.
    pub mode: ImportMode,
    /// Where to store imported files' bytes (needed when the snapshot has `_storage`).
    pub file_storage: Option<Arc<dyn BlobStore>>,
    /// Size limits on the ZIP's contents.
    pub limits: ImportLimits,
}

/// What an export wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ExportSummary {
    /// Documents written, per table (`_storage` included when exported).
    pub tables: Vec<(String, u64)>,
    /// Stored files written.
    pub files: u64,
}

/// What an import committed.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportSummary {
    /// Documents imported, per table.
    pub tables: Vec<(String, u64)>,
    /// Documents deleted by [`ImportMode::Replace`].
    pub deleted: u64,
    /// Stored files imported.
    pub files: u64,
}

/// Why an export or import failed. Each variant has a short code ([`SnapshotError::code`]).
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The upload is not a ZIP, or an entry of it cannot be read.
    #[error("InvalidZip: {0}")]
    InvalidZip(String),
    /// An entry or a line of an entry is not what the format allows.
    #[error("InvalidSnapshot: {entry}{}: {message}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Malformed {
        /// The ZIP entry (`posts/documents.jsonl`).
        entry: String,
        /// The 1-based line, when the problem is in one.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// An entry unpacks to more than the limits allow.
    #[error("SnapshotTooLarge: {0}")]
    TooLarge(String),
    /// A table's number in the snapshot is taken, or differs from the deployment's.
    #[error("TableNumberConflict: {0}")]
    TableNumberConflict(String),
    /// A table the snapshot names holds documents and the mode is [`ImportMode::RequireEmpty`],
    /// or an appended `_id` exists already.
    #[error("ImportTargetNotEmpty: {0}")]
    TargetNotEmpty(String),
    /// The snapshot holds files and this deployment has no file storage.
    #[error("StorageNotConfigured: {0}")]
    StorageNotConfigured(String),
    /// Writing the export or storing a file failed.
    #[error("SnapshotIo: {0}")]
    Io(String),
    /// The database refused or failed.
    #[error("{0}")]
    Db(#[from] DbError),
}

impl SnapshotError {
    /// The short code of the error (the first word of its message).
    pub fn code(&self) -> &'static str {
        match self {
            SnapshotError::InvalidZip(_) => "InvalidZip",
            SnapshotError::Malformed { .. } => "InvalidSnapshot",
            SnapshotError::TooLarge(_) => "SnapshotTooLarge",
            SnapshotError::TableNumberConflict(_) => "TableNumberConflict",
            SnapshotError::TargetNotEmpty(_) => "ImportTargetNotEmpty",
            SnapshotError::StorageNotConfigured(_) => "StorageNotConfigured",
            SnapshotError::Io(_) => "SnapshotIo",
            SnapshotError::Db(e) => e.code(),
        }
    }

    /// Whether the fault is in the snapshot or the request (as opposed to the server).
    pub fn is_bad_request(&self) -> bool {
        match self {
            SnapshotError::InvalidZip(_)
            | SnapshotError::Malformed { .. }
            | SnapshotError::TooLarge(_)
            | SnapshotError::TableNumberConflict(_)
            | SnapshotError::TargetNotEmpty(_)
            | SnapshotError::StorageNotConfigured(_) => true,
            SnapshotError::Io(_) => false,
            SnapshotError::Db(e) => !matches!(e, DbError::Storage(_) | DbError::NotCommitter(_)),
        }
    }

    pub(crate) fn malformed(entry: &str, line: Option<usize>, message: impl Into<String>) -> Self {
        SnapshotError::Malformed {
            entry: entry.to_owned(),
            line,
            message: message.into(),
        }
    }
}

impl From<std::io::Error> for SnapshotError {
    fn from(error: std::io::Error) -> Self {
        SnapshotError::Io(error.to_string())
    }
}

impl From<crate::blobs::BlobError> for SnapshotError {
    fn from(error: crate::blobs::BlobError) -> Self {
        SnapshotError::Io(error.to_string())
    }
}

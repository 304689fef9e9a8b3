//! The [`Persistence`] trait: an append-only log of document revisions plus versioned index
//! entries, read at a snapshot timestamp.
//!
//! Implementations: [`SqlitePersistence`] (bundled SQLite in WAL mode) and
//! [`PostgresPersistence`] (tokio-postgres, with versioned migrations and a committer lease).
//! Both read rows back through `stored` (ids and documents from their columns, and the folding
//! of an index scan's versioned entries into live rows, kept encoded in one buffer until the
//! scan is done).
//! Every implementation must pass the conformance suite in [`conformance`] (see
//! [`persistence_conformance_tests!`]).
//!
//! [`persistence_conformance_tests!`]: crate::persistence_conformance_tests

#[cfg(feature = "testing")]
pub mod conformance;
mod postgres;
mod sqlite;
mod stored;

use async_trait::async_trait;
use keel_values::DocumentId;

#[cfg(feature = "testing")]
pub use postgres::PostgresTestSchema;
pub use postgres::{PostgresBlobStore, PostgresOptions, PostgresPersistence, PostgresTarget};
pub use sqlite::SqlitePersistence;

use crate::{Document, Interval, Timestamp};

/// The order of a scan along an index (a query's results come in it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Order {
    /// Ascending index order (the default).
    #[default]
    Asc,
    /// Descending index order.
    Desc,
}

/// A persisted index's number. Index numbers are assigned by the database's catalog and never
/// reused.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct IndexId(pub u32);

/// One revision of one document: its state after the commit at `ts`.
#[derive(Clone, Debug, PartialEq)]
pub struct DocumentRevision {
    /// The document id.
    pub id: DocumentId,
    /// The commit timestamp of this revision.
    pub ts: Timestamp,
    /// The document after the commit, or `None` if the commit deleted it (a tombstone).
    pub document: Option<Document>,
    /// The timestamp of the previous revision, `None` for an insert.
    pub prev_ts: Option<Timestamp>,
}

/// One versioned index entry: from `ts` on, `key` in `index` points at `document` (or at nothing,
/// a tombstone, when the document left that key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// The index.
    pub index: IndexId,
    /// The full sort key (indexed values then the document id).
    pub key: Vec<u8>,
    /// The commit timestamp that wrote this entry.
    pub ts: Timestamp,
    /// The document at this key from `ts` on, or `None` for a tombstone.
    pub document: Option<DocumentId>,
}

/// Everything one commit writes, all at one timestamp.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CommitRecord {
    /// The commit timestamp (every revision and entry below carries it too).
    pub ts: Timestamp,
    /// New document revisions.
    pub documents: Vec<DocumentRevision>,
    /// New index entries.
    pub index_entries: Vec<IndexEntry>,
}

/// A row of an index scan: a live key and the document it points at, as of the read timestamp.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexRow {
    /// The index key.
    pub key: Vec<u8>,
    /// The document at that key, at its newest revision not after the read timestamp.
    pub document: Document,
    /// The timestamp of that revision.
    pub ts: Timestamp,
}

/// A revision written by some commit, with the document as it was before (what a follower needs
/// to rebuild the commit's write-log entry: the index keys it left and the ones it took).
#[derive(Clone, Debug, PartialEq)]
pub struct ChangedDocument {
    /// The new revision.
    pub revision: DocumentRevision,
    /// The document at the revision's `prev_ts`, `None` for an insert or a re-insert after a
    /// delete.
    pub previous: Option<Document>,
}

/// A storage failure. The message says what the storage layer reported.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct PersistenceError(pub String);

/// Durable storage of the document log and the index entries.
///
/// Semantics every implementation keeps (checked by [`conformance`]):
/// * [`write`](Persistence::write) is atomic and durable: when it returns `Ok`, all the records
///   survive a crash; when the process dies during it, none or all of them are visible later.
/// * Reads at `ts` see, per document and per index key, the newest entry with timestamp ≤ `ts`.
/// * Nothing is ever overwritten: writing twice at one (document, ts) or (index, key, ts) is an
///   error.
#[async_trait]
pub trait Persistence: Send + Sync + 'static {
    /// Writes the commits (each with its own timestamp) in one atomic, durable step.
    async fn write(&self, commits: Vec<CommitRecord>) -> Result<(), PersistenceError>;

    /// The largest commit timestamp written, `None` for empty storage.
    async fn max_ts(&self) -> Result<Option<Timestamp>, PersistenceError>;

    /// The newest revision of a document with timestamp ≤ `ts` (possibly a tombstone).
    async fn document_at(
        &self,
        id: DocumentId,
        ts: Timestamp,
    ) -> Result<Option<DocumentRevision>, PersistenceError>;

    /// Up to `limit` live keys of `index` inside `interval`, in `order`, as of `ts`, each with its
    /// document (tombstoned keys are skipped).
    async fn index_scan(
        &self,
        index: IndexId,
        interval: &Interval,
        ts: Timestamp,
        order: Order,
        limit: usize,
    ) -> Result<Vec<IndexRow>, PersistenceError>;

    /// Every document revision committed in `(after, until]`, in timestamp order, each with the
    /// document before it. Followers use it to learn about commits another process made.
    async fn revisions_between(
        &self,
        after: Timestamp,
        until: Timestamp,
    ) -> Result<Vec<ChangedDocument>, PersistenceError>;

    /// Deletes history no read at or after `horizon` can see: document revisions and index
    /// entries older than `horizon` that a newer one at or before `horizon` supersedes, and
    /// tombstones older than `horizon` with nothing older left. Deletes at most about `limit`
    /// rows of each kind per call; returns how many it deleted (call again while it is not 0).
    /// Reads at `horizon` or later see exactly what they saw before.
    async fn prune(&self, horizon: Timestamp, limit: usize) -> Result<usize, PersistenceError>;

    /// A named global value (the database keeps its catalog here).
    async fn global(&self, key: &str) -> Result<Option<Vec<u8>>, PersistenceError>;

    /// Sets a named global value, durably.
    async fn set_global(&self, key: &str, value: Vec<u8>) -> Result<(), PersistenceError>;
}

//! [`DbError`]: every way a database call can fail, each with a short code.

use crate::Timestamp;

/// An error from the database engine.
///
/// Each variant has a short, stable code ([`DbError::code`]) that the backend maps to the error
/// it reports; the `Display` text is the human message, starting with the code.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DbError {
    /// A transaction's reads overlap a write committed after its snapshot (optimistic concurrency
    /// control). The caller should re-run the whole transaction.
    #[error(
        "OptimisticConcurrencyControlFailure: Documents read from or written to the \"{table}\" \
         table changed while this mutation was being run and on every subsequent retry. Another \
         call to a mutation changed the document with ID \"{document_id}\". See \
         https://docs.convex.dev/error#1"
    )]
    OccConflict {
        /// The table of the conflicting document.
        table: String,
        /// The conflicting document's id (Convex text form).
        document_id: String,
        /// The commit timestamp of the conflicting write.
        conflicting_ts: Timestamp,
    },
    /// `unique()` found more than one document.
    #[error(
        "UniqueMoreThanOne: unique() query returned more than one result from table \"{table}\": \
         [{first}, {second}, ...]"
    )]
    UniqueMoreThanOne {
        /// The queried table.
        table: String,
        /// Id of the first document.
        first: String,
        /// Id of the second document.
        second: String,
    },
    /// A pagination cursor that does not belong to this query, or is not a cursor at all.
    #[error(
        "InvalidCursor: Tried to run a query starting from a cursor, but it looks like this cursor is from a different query."
    )]
    InvalidCursor,
    /// A page of no documents asked for (`numItems` 0), as Convex refuses it.
    #[error("NoDocumentsForPagination: Must request at least 1 document while paginating")]
    NoDocumentsForPagination,
    /// `maximumRowsRead` or `maximumBytesRead` of 0: a page must be able to read something.
    #[error("InvalidPaginationLimit: maximumRowsRead and maximumBytesRead must be greater than 0")]
    InvalidPaginationLimit,
    /// A table that does not exist (for example the table of a foreign document id).
    #[error("TableNotFound: table {0} does not exist")]
    TableNotFound(String),
    /// An index that is not declared for the table.
    #[error("IndexNotFound: index \"{index}\" not found on table \"{table}\"")]
    IndexNotFound {
        /// The table.
        table: String,
        /// The requested index name.
        index: String,
    },
    /// A range expression that does not fit the index (fields out of order, two ranges …).
    #[error("InvalidIndexRange: {0}")]
    InvalidIndexRange(String),
    /// A write that sets a system field (`_id`, `_creationTime`) or another `_`-prefixed field.
    #[error("SystemFieldWrite: field \"{0}\" is a system field and cannot be written")]
    SystemFieldWrite(String),
    /// A document above the size or nesting limits.
    #[error("DocumentTooLarge: {0}")]
    DocumentTooLarge(String),
    /// A document that is not a valid Convex document (bad field name, too many fields …).
    #[error("InvalidDocument: {0}")]
    InvalidDocument(String),
    /// A document that does not match the table's schema validator.
    #[error(
        "SchemaValidationFailed: Failed to insert or update a document in table \"{table}\" because it does not match the schema: {message}"
    )]
    Validation {
        /// The table written to.
        table: String,
        /// Where the mismatch is, e.g. `.author.name` (empty for the document itself).
        path: String,
        /// What was wrong.
        message: String,
    },
    /// A stored document that does not decode as its typed table's Rust type (a document written
    /// before the type changed, or through untyped access to a table without a validator).
    #[error("DocumentTypeMismatch: {0}")]
    DocumentTypeMismatch(String),
    /// `patch`, `replace` or `delete` of a document that does not exist.
    #[error("DocumentNotFound: document with ID \"{0}\" does not exist")]
    DocumentNotFound(String),
    /// A snapshot timestamp older than the retained history or later than the latest commit.
    #[error("OutOfRetention: {0}")]
    OutOfRetention(String),
    /// A bad schema (duplicate table, too many index fields, bad names …).
    #[error("InvalidSchema: {0}")]
    InvalidSchema(String),
    /// The transaction hit a size limit (too many writes or reads).
    #[error("TooManyWrites: {0}")]
    TransactionTooLarge(String),
    /// The transaction read more than a transaction may (rows, bytes or index ranges); nothing
    /// it wrote is committed.
    #[error("TooManyReads: {0}")]
    TooManyReads(String),
    /// A commit or table creation on a follower: this process reads the database but another one
    /// holds the committer lease (see `Database::open_follower`).
    #[error("NotCommitter: {0}")]
    NotCommitter(String),
    /// The storage layer failed; the outcome of a commit that reports this is not known.
    #[error("StorageError: {0}")]
    Storage(String),
}

impl DbError {
    /// The short code of the error (the first word of its message).
    pub fn code(&self) -> &'static str {
        match self {
            DbError::OccConflict { .. } => "OptimisticConcurrencyControlFailure",
            DbError::UniqueMoreThanOne { .. } => "UniqueMoreThanOne",
            DbError::InvalidCursor => "InvalidCursor",
            DbError::NoDocumentsForPagination => "NoDocumentsForPagination",
            DbError::InvalidPaginationLimit => "InvalidPaginationLimit",
            DbError::TableNotFound(_) => "TableNotFound",
            DbError::IndexNotFound { .. } => "IndexNotFound",
            DbError::InvalidIndexRange(_) => "InvalidIndexRange",
            DbError::SystemFieldWrite(_) => "SystemFieldWrite",
            DbError::DocumentTooLarge(_) => "DocumentTooLarge",
            DbError::InvalidDocument(_) => "InvalidDocument",
            DbError::Validation { .. } => "SchemaValidationFailed",
            DbError::DocumentTypeMismatch(_) => "DocumentTypeMismatch",
            DbError::DocumentNotFound(_) => "DocumentNotFound",
            DbError::OutOfRetention(_) => "OutOfRetention",
            DbError::InvalidSchema(_) => "InvalidSchema",
            DbError::TransactionTooLarge(_) => "TooManyWrites",
            DbError::TooManyReads(_) => "TooManyReads",
            DbError::NotCommitter(_) => "NotCommitter",
            DbError::Storage(_) => "StorageError",
        }
    }

    /// Whether this is an optimistic-concurrency conflict (the transaction may be retried).
    pub fn is_occ(&self) -> bool {
        matches!(self, DbError::OccConflict { .. })
    }
}

impl From<crate::persistence::PersistenceError> for DbError {
    fn from(e: crate::persistence::PersistenceError) -> Self {
        DbError::Storage(e.to_string())
    }
}

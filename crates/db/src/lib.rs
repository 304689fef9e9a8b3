//! Keel's database engine: a reactive document database in the manner of Convex.
//!
//! Documents live in tables; every table has the `by_id` and `by_creation_time` indexes plus the
//! user indexes of its [`Schema`]. Storage is an append-only log of document revisions and
//! versioned index entries behind the [`Persistence`] trait ([`SqlitePersistence`] by default,
//! [`PostgresPersistence`] for a PostgreSQL server).
//! A [`Transaction`] reads at one snapshot timestamp and records the index intervals it scanned
//! (its [`ReadSet`]); [`Database::commit`] hands it to the single committer, which rejects it if
//! a write committed after the snapshot overlaps that read set, and otherwise assigns a commit
//! [`Timestamp`] and acknowledges once the write is durable. Transactions are bounded as in
//! Convex: at most 32,000 documents, 16 MiB and 4,096 index ranges read
//! ([`DbError::TooManyReads`]), 16,000 documents and 16 MiB written. Subscriptions
//! ([`Subscription`]) are read sets waiting for an overlapping commit.
//!
//! # Layout
//! * `error` — [`DbError`] with short codes.
//! * `timestamp` — [`Timestamp`], u64 nanoseconds.
//! * `document` — [`Document`] and the checks on written fields (Convex limits from keel-values).
//! * `codec` — the binary storage encoding of documents.
//! * `schema` — [`Schema`], [`TableSchema`], [`IndexSchema`] and the schema validation of writes
//!   (the [`Validator`] itself is `keel_values`', re-exported).
//! * `catalog` — table names ↔ numbers and index ids, persisted; which names are system tables
//!   (`is_system_table`) and the error a user gets for one.
//! * `interval` — [`Interval`] and [`IntervalSet`] over index keys.
//! * `interval_map` — the treap of intervals the subscription manager stabs.
//! * `read_set` — [`ReadSet`]: intervals read per index.
//! * `write_log` — recent commits' written keys, for OCC and late subscribers.
//! * [`persistence`] — the [`Persistence`] trait, the scan [`Order`] and [`SqlitePersistence`].
//! * `persistence::postgres` — [`PostgresPersistence`] (`PostgresPersistence::connect(url)`),
//!   its migrations, committer lease (held at connect, or taken later by a standby), commit
//!   notifications for followers (LISTEN/NOTIFY), TLS with rustls per libpq's `sslmode` and
//!   `sslrootcert` (`tls`), and [`PostgresTarget`]: a URL read as the engine reads it, for
//!   another component's own connections (the idp's store).
//! * `shared` — the engine state one database's handles, transactions and committer hold
//!   together (persistence, catalog, write log, subscriptions, tasks). Below `database` and
//!   `committer`, which both build on it.
//! * `database` — [`Database`]: open, begin, commit, subscribe, shut down (its committer and
//!   maintenance are tasks of a `keel_tasks::Tasks`).
//! * `receipts` — [`Receipt`]s: a keyed request's outcome committed with it (the `_receipts`
//!   system table), so a request sent again is not applied twice; old ones are collected.
//! * `maintenance` — the committer's minute job: old receipts, and history pruned behind the
//!   retention window ([`Database::prune_history`], `Persistence::prune`).
//! * `replica` — followers: [`Database::open_follower`], [`Database::follow_to`] (apply another
//!   process's commits) and [`Database::promote`] (take over as the committer).
//! * `replication` — several processes on one database: the [`SharedStore`] trait (committer
//!   lease, commit notifications, the committer's address; PostgreSQL implements it in
//!   `persistence::postgres::shared_store`) and [`ReplicaNode`], which joins as the committer or
//!   a follower, follows, takes over when the committer dies, and hands the lease over on
//!   shutdown. The backend's cluster builds on it and sees only this.
//! * `members` — the group's members recording themselves ([`MemberRegistry`],
//!   [`MemberReport`], [`MemberRecord`]); PostgreSQL keeps them in `keel_members`
//!   (`persistence::postgres::members`).
//! * `transaction` — [`Transaction`]: snapshot reads, own writes, insert/patch/replace/delete;
//!   [`Savepoint`]s (a nested mutation's writes undone when it fails).
//! * `typed` — typed tables: [`Transaction::table`] gives a [`TypedTable`] (insert, get, patch,
//!   replace, delete with the table's Rust type, [`Id`] and [`Doc`]) and [`TypedQuery`] (typed
//!   index ranges, [`Doc`] results); [`Schema::table_of`] declares the table. The types
//!   themselves ([`Table`], `#[derive(Table)]`'s output) are in `keel_values::table`.
//! * `query` — [`Transaction::query`], [`Query`], [`IndexRange`]; the index scan every query
//!   runs.
//! * `pagination` — [`Query::paginate`] with Convex's [`PaginationOptions`] and
//!   [`PaginationResult`]: pages pinned to an end cursor, read limits, split cursors.
//! * `committer` — the single committer task (validation, timestamps, group commit; on shutdown
//!   it writes what it holds and takes nothing more).
//! * `cursor` — pagination cursors bound to their query.
//! * [`blobs`] — the bytes of stored files: the [`blobs::BlobStore`] trait, files in a directory
//!   ([`blobs::LocalBlobStore`]) or chunks in PostgreSQL (`persistence::postgres::blobs`,
//!   [`PostgresPersistence::blob_store`]).
//! * `subscription` — [`SubscriptionManager`] and [`Subscription`].
//! * `browse` — [`Database::table_summaries`] (user tables with document counts),
//!   [`Database::table_indexes`] ([`IndexSummary`]) and [`Database::documents_page`]: data as
//!   an operator browses it, outside any transaction.
//! * [`snapshot`] — export and import in Convex's snapshot export format
//!   ([`Database::export_snapshot`], [`Database::import_snapshot`]): a ZIP of per-table
//!   `documents.jsonl`, streamed out a page at a time, imported in one commit keeping ids and
//!   table numbers.
//! * `system` — the system tables (`_receipts`, [`SCHEDULED_FUNCTIONS`], [`CRON_JOBS`], the file
//!   storage's [`STORAGE_TABLE`] and [`UPLOAD_TOKENS_TABLE`]) and the backend's access to them
//!   (`Transaction::system_*`).
//!
//! No two modules import each other, with one exception: `database` ↔ `transaction` (a handle
//! begins and commits transactions; a transaction keeps its handle to create tables). Modules
//! that extend a type of another (`query`, `pagination`, `system`, `receipts` add methods to
//! [`Transaction`] or [`Database`]) depend on it, never the reverse.
//!
//! ## Test support (feature `testing`)
//! Compiled only when the `testing` feature is on, which tests enable through their
//! dev-dependencies, so release builds carry none of it:
//! `persistence::conformance` (the suite every [`Persistence`] must pass, as the
//! `persistence_conformance_tests!` macro), `persistence::PostgresTestSchema` (a throw-away
//! PostgreSQL schema per test), `SubscriptionManager::standalone` (a manager without a database,
//! for benchmarks) and the `db-crash-writer` binary that `tests/crash.rs` kills with SIGKILL.

pub mod blobs;
mod browse;
mod catalog;
mod codec;
mod committer;
mod cursor;
mod database;
mod document;
mod error;
mod interval;
mod interval_map;
mod maintenance;
pub mod members;
mod pagination;
pub mod persistence;
mod query;
mod read_set;
mod receipts;
mod replica;
mod replication;
mod schema;
mod shared;
pub mod snapshot;
mod subscription;
mod system;
mod timestamp;
mod transaction;
mod typed;
mod write_log;

pub use browse::{DocumentPage, IndexSummary, MAX_BROWSE_PAGE, TableSummary};
pub use database::Database;
pub use document::Document;
pub use error::DbError;
pub use interval::{Interval, IntervalSet};
/// Typed tables: re-exported from [`keel_values::table`].
pub use keel_values::table::{Doc, Id, Table};
pub use keel_values::{PageStatus, PaginationOptions, PaginationResult};
pub use members::{MemberRecord, MemberRegistry, MemberReport};
pub use persistence::{
    IndexId, Order, Persistence, PostgresPersistence, PostgresTarget, SqlitePersistence,
};
pub use query::{IndexRange, Query};
pub use read_set::ReadSet;
pub use receipts::{RECEIPT_RETENTION, Receipt};
pub use replication::{ReplicaNode, SharedStore};
pub use schema::{IndexSchema, MAX_INDEX_FIELDS, Schema, TableSchema, Validator};
pub use subscription::{Subscription, SubscriptionManager};
pub use system::{
    BY_NAME, BY_STATE, CRON_JOBS, SCHEDULED_FUNCTIONS, STORAGE_TABLE, UPLOAD_TOKENS_TABLE,
};
pub use timestamp::Timestamp;
pub use transaction::{Savepoint, Transaction};
pub use typed::{TypedQuery, TypedTable, decode, typed_page};

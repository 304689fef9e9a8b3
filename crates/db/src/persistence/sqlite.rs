//! [`SqlitePersistence`]: the document log and index entries in one SQLite file (WAL mode).
//!
//! Tables:
//! * `documents(table_num, internal, neg_ts, value, prev_ts)`, primary key `(table_num,
//!   internal, neg_ts)`: the revision log; `neg_ts` is the negated commit timestamp, so a
//!   document's newest revision at or before `ts` is the first row with `neg_ts >= -ts` in key
//!   order (see [`DOCUMENT_AT`]); `value` is NULL for a tombstone, else the [`codec`] encoding.
//! * `indexes(index_id, key, ts, table_num, internal)`, primary key `(index_id, key, ts)`:
//!   versioned index entries; `internal` is NULL for a tombstone.
//! * `latest(table_num, internal, ts, value)`, primary key `(table_num, internal)`: each
//!   document's newest revision (a copy of its newest `documents` row, `value` NULL for a
//!   tombstone), kept in the same transaction as the revision log. A scan reads an entry's
//!   document from here with one search when the read timestamp is at or after that revision, and
//!   from the revision log (two searches) otherwise; see [`scan_sql`].
//! * `globals(key, value)`: small named values (the catalog, the largest commit timestamp).
//!
//! Writes: every statement of a commit (`BEGIN`, the inserts, the newest-revision upserts, the
//! largest-timestamp update, `COMMIT`) is a cached prepared statement.
//!
//! Format: the layout version lives in `user_version` (see [`FORMAT_VERSION`]); a file of
//! format 2 (before `latest`) is migrated on open, any other version is refused.
//!
//! Durability: `synchronous=FULL`, so a write returns only after the WAL is synced. SQLite is
//! synchronous: writes and long scans run on Tokio's blocking pool, point reads and short scans
//! inline (see `read_inline`); one writer connection behind a mutex, and a pool of reader
//! connections that WAL lets run beside the writer. The pool is bounded: at most
//! [`read_slots`] reads run on the blocking pool at once (more wait their turn), and at most
//! [`idle_readers`] connections are kept between reads — each keeps its own page cache (up to
//! 16 MiB), so a pool that kept every connection a burst opened would hold memory for the
//! largest burst ever seen, and each of them a copy of the hot pages.
//!
//! [`codec`]: crate::codec

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use keel_values::DocumentId;
use parking_lot::Mutex;
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OptionalExtension, params};

use super::stored::{KeyGroups, LiveRows, id_from_parts, stored_document, ts_to_sql};
use super::{
    ChangedDocument, CommitRecord, DocumentRevision, IndexId, IndexRow, Persistence,
    PersistenceError,
};
use crate::codec::encode_document;
use crate::{Interval, Order, Timestamp};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS documents (
    table_num INTEGER NOT NULL, internal BLOB NOT NULL, neg_ts INTEGER NOT NULL,
    value BLOB, prev_ts INTEGER,
    PRIMARY KEY (table_num, internal, neg_ts)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS indexes (
    index_id INTEGER NOT NULL, key BLOB NOT NULL, ts INTEGER NOT NULL,
    table_num INTEGER, internal BLOB,
    PRIMARY KEY (index_id, key, ts)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS globals (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
";

/// The newest-revision table (format 3), created apart from [`SCHEMA`] so that the migration
/// from format 2 can run it too.
const LATEST_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS latest (
    table_num INTEGER NOT NULL, internal BLOB NOT NULL, ts INTEGER NOT NULL, value BLOB,
    PRIMARY KEY (table_num, internal)) WITHOUT ROWID;
";

/// Fills `latest` from the revision log of a format-2 file: per document, the row with the
/// smallest `neg_ts` (SQLite takes the bare `value` column from the row that holds the `min`).
const FILL_LATEST: &str = "
INSERT INTO latest (table_num, internal, ts, value)
    SELECT table_num, internal, -min(neg_ts), value FROM documents GROUP BY table_num, internal;
";

/// The storage layout version, kept in SQLite's `user_version`. Format 3 added `latest`.
const FORMAT_VERSION: i64 = 3;

/// The one older layout this build migrates (in one transaction, on open).
const MIGRATES_FROM: i64 = 2;

/// Refuses a file written in a layout this build cannot read (rather than misreading it), and
/// migrates a format-2 file to the current one.
fn check_format(conn: &Connection) -> Result<(), PersistenceError> {
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(storage_err)?;
    let has_tables: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'documents')",
            [],
            |row| row.get(0),
        )
        .map_err(storage_err)?;
    if !has_tables || version == FORMAT_VERSION {
        return Ok(());
    }
    if version == MIGRATES_FROM {
        return migrate_from_2(conn);
    }
    Err(PersistenceError(format!(
        "sqlite: the database file uses storage format {version}, this build reads format {FORMAT_VERSION} \
         (and migrates format {MIGRATES_FROM}); move the file away to start fresh"
    )))
}

/// Adds the newest-revision table to a format-2 file, filled from its revision log, and marks
/// the file as format 3 — all in one transaction, so a crash leaves the file in format 2.
fn migrate_from_2(conn: &Connection) -> Result<(), PersistenceError> {
    in_write_transaction(conn, |tx| {
        tx.execute_batch(LATEST_SCHEMA).map_err(storage_err)?;
        let documents = tx.execute(FILL_LATEST, []).map_err(storage_err)?;
        tx.pragma_update(None, "user_version", FORMAT_VERSION)
            .map_err(storage_err)?;
        tracing::info!(
            documents,
            "sqlite: migrated the file from storage format {MIGRATES_FROM} to {FORMAT_VERSION}"
        );
        Ok(())
    })
}

/// Opens a connection with the query planner stability guarantee (QPSG) on.
///
/// Why QPSG: without it SQLite re-prepares a statement whenever a newly bound parameter might
/// change the plan, which for these statements (an `ORDER BY` next to bound `=` terms) is on every
/// execution, and preparing costs several times the lookup itself. The plans here do not depend
/// on the values, so a fixed plan is what we want.
fn connect(path: &Path, pragmas: &str) -> Result<Connection, PersistenceError> {
    let conn = Connection::open(path).map_err(storage_err)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(storage_err)?;
    conn.execute_batch(pragmas).map_err(storage_err)?;
    Ok(conn)
}

/// Writer settings: WAL, and a sync of the WAL before a commit returns.
const WRITER_PRAGMAS: &str =
    "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=10000;";

/// Reader settings: a 16 MiB page cache and memory-mapped reads of the main file (pages still in
/// the WAL are read from it as usual).
const READER_PRAGMAS: &str =
    "PRAGMA busy_timeout=10000; PRAGMA cache_size=-16384; PRAGMA mmap_size=268435456;";

/// A document's newest revision at or before `?3`: the first row of its key range from
/// `neg_ts = -?3` on, a forward walk of the primary key.
const DOCUMENT_AT: &str = "SELECT neg_ts, value, prev_ts FROM documents \
     WHERE table_num = ?1 AND internal = ?2 AND neg_ts >= -?3 ORDER BY neg_ts LIMIT 1";

/// The global row holding the largest commit timestamp.
const MAX_TS_KEY: &str = "max_ts";

/// History pruning (see `Persistence::prune`), in order: superseded revisions, lone tombstones,
/// then the same for index entries, then newest-revision rows of documents deleted before the
/// horizon (a read at or after it finds no document either way). Each is a search for the keys to delete (`?1` the horizon,
/// `?2` the batch size), run on a reader so that commits never wait behind the scan, and the
/// delete of one found key (every key column, in order). A key found stays deletable: history
/// only grows, and only the committer prunes.
const PRUNE: [(&str, &str); 5] = [
    (
        "SELECT d.table_num, d.internal, d.neg_ts FROM documents d \
         WHERE d.neg_ts > -?1 AND EXISTS (SELECT 1 FROM documents n \
           WHERE n.table_num = d.table_num AND n.internal = d.internal \
             AND n.neg_ts < d.neg_ts AND n.neg_ts >= -?1) \
         LIMIT ?2",
        DELETE_REVISION,
    ),
    (
        "SELECT d.table_num, d.internal, d.neg_ts FROM documents d \
         WHERE d.neg_ts > -?1 AND d.value IS NULL AND NOT EXISTS (SELECT 1 FROM documents o \
           WHERE o.table_num = d.table_num AND o.internal = d.internal AND o.neg_ts > d.neg_ts) \
         LIMIT ?2",
        DELETE_REVISION,
    ),
    (
        "SELECT i.index_id, i.key, i.ts FROM indexes i \
         WHERE i.ts < ?1 AND EXISTS (SELECT 1 FROM indexes n \
           WHERE n.index_id = i.index_id AND n.key = i.key AND n.ts > i.ts AND n.ts <= ?1) \
         LIMIT ?2",
        DELETE_ENTRY,
    ),
    (
        "SELECT i.index_id, i.key, i.ts FROM indexes i \
         WHERE i.ts < ?1 AND i.internal IS NULL AND NOT EXISTS (SELECT 1 FROM indexes o \
           WHERE o.index_id = i.index_id AND o.key = i.key AND o.ts < i.ts) \
         LIMIT ?2",
        DELETE_ENTRY,
    ),
    (
        "SELECT table_num, internal, ts FROM latest WHERE value IS NULL AND ts < ?1 LIMIT ?2",
        DELETE_LATEST,
    ),
];
const DELETE_REVISION: &str =
    "DELETE FROM documents WHERE table_num = ?1 AND internal = ?2 AND neg_ts = ?3";
const DELETE_LATEST: &str = "DELETE FROM latest WHERE table_num = ?1 AND internal = ?2 AND ts = ?3";
const DELETE_ENTRY: &str = "DELETE FROM indexes WHERE index_id = ?1 AND key = ?2 AND ts = ?3";

/// A row to prune: its delete statement and key columns.
type PruneKey = (&'static str, i64, Vec<u8>, i64);

/// Persistence in a SQLite file. Cheap to clone (shares its connections).
#[derive(Clone)]
pub struct SqlitePersistence {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    /// Idle reader connections, at most `max_idle_readers`.
    readers: Mutex<Vec<Connection>>,
    /// [`idle_readers`], counted once (asking for the cores reads files).
    max_idle_readers: usize,
    /// Turns for reads on the blocking pool ([`read_slots`] of them).
    read_slots: Arc<tokio::sync::Semaphore>,
    /// Inline scans that passed [`INLINE_SCAN_BYTES`] and ran again on the blocking pool.
    #[cfg(test)]
    scans_moved_off: std::sync::atomic::AtomicUsize,
}

/// How many reads run on Tokio's blocking pool at once: twice the cores, at least 4. Each holds
/// a reader connection and a blocking thread; SQLite work beyond the cores only time-slices,
/// and twice covers reads waiting on the disk.
fn read_slots() -> usize {
    (2 * cores()).max(4)
}

/// How many idle reader connections are kept: one for each read slot and for each core's
/// inline reads (see [`SqlitePersistence::read_inline`]), which is every reader a steady load
/// uses. A connection opened beyond them, in a burst, is closed after its read.
fn idle_readers() -> usize {
    read_slots() + cores()
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn storage_err(e: impl std::fmt::Display) -> PersistenceError {
    PersistenceError(format!("sqlite: {e}"))
}

impl SqlitePersistence {
    /// Opens (or creates) the database file at `path`, in WAL mode with full sync.
    pub fn open(path: impl AsRef<Path>) -> Result<SqlitePersistence, PersistenceError> {
        let path = path.as_ref().to_path_buf();
        let writer = connect(&path, WRITER_PRAGMAS)?;
        check_format(&writer)?;
        writer.execute_batch(SCHEMA).map_err(storage_err)?;
        writer.execute_batch(LATEST_SCHEMA).map_err(storage_err)?;
        writer
            .pragma_update(None, "user_version", FORMAT_VERSION)
            .map_err(storage_err)?;
        Ok(SqlitePersistence {
            inner: Arc::new(Inner {
                path,
                writer: Mutex::new(writer),
                readers: Mutex::new(Vec::new()),
                max_idle_readers: idle_readers(),
                read_slots: Arc::new(tokio::sync::Semaphore::new(read_slots())),
                #[cfg(test)]
                scans_moved_off: std::sync::atomic::AtomicUsize::new(0),
            }),
        })
    }

    /// The file this persistence writes.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` on a reader connection on the blocking pool (for reads that may take long),
    /// once one of the [`read_slots`] is free.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, PersistenceError> + Send + 'static,
    ) -> Result<T, PersistenceError> {
        let slot = (self.inner.read_slots.clone().acquire_owned().await).map_err(storage_err)?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            // The slot is held until the read is done, even if the caller stops waiting.
            let _slot = slot;
            inner.with_reader(f)
        })
        .await
        .map_err(storage_err)?
    }

    /// How many reader connections are idle in the pool.
    #[cfg(test)]
    fn idle_reader_count(&self) -> usize {
        self.inner.readers.lock().len()
    }

    /// Runs `f` on a reader connection right here, on the calling task's thread.
    ///
    /// Why not the blocking pool: a point lookup in SQLite's page cache takes a microsecond or
    /// two, and a scan of [`INLINE_SCAN_ROWS`] about a hundred, while the hand-off to a
    /// blocking thread and back costs about as much as that scan (see [`INLINE_SCAN_ROWS`]).
    /// Short reads (point lookups, scans of up to that many rows) therefore run inline; they
    /// block the executor no longer than an ordinary piece of CPU work would, unless the page
    /// has to come from disk.
    fn read_inline<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, PersistenceError>,
    ) -> Result<T, PersistenceError> {
        self.inner.with_reader(f)
    }

    /// Runs `f` on the writer connection on the blocking pool.
    async fn write_with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, PersistenceError> + Send + 'static,
    ) -> Result<T, PersistenceError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&mut inner.writer.lock()))
            .await
            .map_err(storage_err)?
    }
}

impl Inner {
    /// Runs `f` with a pooled reader connection (opening one if the pool is empty); the
    /// connection goes back to the pool unless [`idle_readers`] are there already.
    /// (`available_parallelism` reads the cgroup's files: the bound is counted at open, not
    /// per read, where it made a point read 15 times slower.)
    fn with_reader<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, PersistenceError>,
    ) -> Result<T, PersistenceError> {
        let conn = self.readers.lock().pop();
        let conn = match conn {
            Some(conn) => conn,
            None => connect(&self.path, READER_PRAGMAS)?,
        };
        let result = f(&conn);
        let surplus = {
            let mut idle = self.readers.lock();
            if idle.len() < self.max_idle_readers {
                idle.push(conn);
                None
            } else {
                Some(conn)
            }
        };
        // Closed outside the lock.
        drop(surplus);
        result
    }
}

/// Scans up to this many rows run inline (see [`SqlitePersistence::read_inline`]): about
/// 100 µs of work for 100 rows on a 2-core machine, no more than the hop to the blocking pool
/// and back costs by itself.
///
/// Measured (engine bench, reads on a runtime worker): a 100-row range read cost 208–236 µs
/// of process CPU through the blocking pool and 113–121 µs inline, where the statement and
/// decoding take about 100; the hop is two thread wake-ups, and 100 documents built on one
/// thread and freed on another. Handing the worker off instead (`block_in_place`) was as cheap
/// in that bench but not under load: the live-load bench at 100 posts/s went from 31–39 ms to
/// 59–81 ms p50, used more CPU per post and ended with 22–35 MiB more memory (each hand-off
/// moves the worker's queue to another thread), so long scans stay on the blocking pool.
const INLINE_SCAN_ROWS: usize = 128;

/// An inline scan that has kept more than this many bytes of documents stops, and runs again
/// on the blocking pool: 128 large documents (up to 1 MiB each) would otherwise hold a worker
/// for as long as reading and decoding 128 MiB takes. What the inline attempt read is wasted,
/// at most this much and one document.
const INLINE_SCAN_BYTES: usize = 1 << 20;

fn document_at(
    conn: &Connection,
    id: DocumentId,
    ts: Timestamp,
) -> Result<Option<DocumentRevision>, PersistenceError> {
    let mut stmt = conn.prepare_cached(DOCUMENT_AT).map_err(storage_err)?;
    let mut rows = stmt
        .query(params![id.table.0, &id.internal[..], ts_to_sql(ts)?])
        .map_err(storage_err)?;
    let Some(row) = rows.next().map_err(storage_err)? else {
        return Ok(None);
    };
    let neg_ts: i64 = row.get(0).map_err(storage_err)?;
    // Decoded straight from SQLite's copy of the row (no intermediate `Vec`).
    let document = blob(row, 1)?
        .map(|bytes| stored_document(id, bytes))
        .transpose()?;
    let prev_ts: Option<i64> = row.get(2).map_err(storage_err)?;
    Ok(Some(DocumentRevision {
        id,
        ts: Timestamp(neg_ts.unsigned_abs()),
        document,
        prev_ts: prev_ts.map(|t| Timestamp(t as u64)),
    }))
}

/// The revisions in `(after, until]` with their previous documents. The revision log has no
/// index by timestamp, so this scans it whole: fine for tests and small files, and a SQLite file
/// has no followers in production (one process owns it).
fn revisions_between(
    conn: &Connection,
    after: i64,
    until: i64,
) -> Result<Vec<ChangedDocument>, PersistenceError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT table_num, internal, neg_ts FROM documents \
             WHERE neg_ts >= ?1 AND neg_ts < ?2 ORDER BY neg_ts DESC",
        )
        .map_err(storage_err)?;
    let found = stmt
        .query_map(params![-until, -after], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, Vec<u8>>(1)?,
                row.get::<_, i64>(2)?,
            ))
        })
        .map_err(storage_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(storage_err)?;
    let mut changed = Vec::with_capacity(found.len());
    for (table, internal, neg_ts) in found {
        let id = id_from_parts(table, &internal)?;
        let ts = Timestamp(neg_ts.unsigned_abs());
        let revision = document_at(conn, id, ts)?
            .ok_or_else(|| PersistenceError(format!("revision {id}@{ts} vanished")))?;
        let previous = match revision.prev_ts {
            Some(prev) => document_at(conn, id, prev)?.and_then(|r| r.document),
            None => None,
        };
        changed.push(ChangedDocument { revision, previous });
    }
    Ok(changed)
}

/// The scan query: index entries in the interval, each joined (inside SQLite, so one statement
/// serves the whole scan) with its document's newest revision at the read timestamp.
///
/// The document comes from `latest` (one search of its primary key) when that newest revision
/// is not after the read timestamp, which is the common case; otherwise from the revision log,
/// the first row of the document's key range from `neg_ts = -?3` on. The revision-log searches
/// sit in the `ELSE` arms, which SQLite evaluates only for rows that take them. A tombstone entry
/// (NULL target) joins nothing and reads NULLs.
///
/// The four texts (order × bounded) are built once: a scan looks its statement up by text in
/// the connection's cache, and formatting the text anew cost each scan about 28,000
/// instructions (callgrind), as much as decoding eight documents.
fn scan_sql(order: Order, bounded: bool) -> &'static str {
    static TEXTS: LazyLock<[String; 4]> = LazyLock::new(|| {
        [
            build_scan_sql(Order::Asc, false),
            build_scan_sql(Order::Asc, true),
            build_scan_sql(Order::Desc, false),
            build_scan_sql(Order::Desc, true),
        ]
    });
    let i = match order {
        Order::Asc => 0,
        Order::Desc => 2,
    } + usize::from(bounded);
    &TEXTS[i]
}

fn build_scan_sql(order: Order, bounded: bool) -> String {
    let direction = match order {
        Order::Asc => "ASC",
        Order::Desc => "DESC",
    };
    let end_clause = if bounded { "AND i.key < ?4" } else { "" };
    let versioned = |column: &str| {
        format!(
            "(SELECT d.{column} FROM documents d WHERE d.table_num = i.table_num \
             AND d.internal = i.internal AND d.neg_ts >= -?3 ORDER BY d.neg_ts LIMIT 1)"
        )
    };
    let (versioned_ts, versioned_value) = (versioned("neg_ts"), versioned("value"));
    format!(
        "SELECT i.key, i.ts, i.table_num, i.internal, \
           CASE WHEN l.ts <= ?3 THEN l.ts ELSE -{versioned_ts} END, \
           CASE WHEN l.ts <= ?3 THEN l.value ELSE {versioned_value} END \
         FROM indexes i \
         LEFT JOIN latest l ON l.table_num = i.table_num AND l.internal = i.internal \
         WHERE i.index_id = ?1 AND i.key >= ?2 AND i.ts <= ?3 {end_clause} \
         ORDER BY i.key {direction}, i.ts {direction}"
    )
}

/// What an index scan with a byte cap found.
enum Scanned {
    /// The live rows.
    Rows(LiveRows),
    /// More than the cap was read: the scan stopped (run it again without one).
    OverCap,
}

impl Scanned {
    /// The rows of a scan that had no cap.
    fn rows(self) -> Result<LiveRows, PersistenceError> {
        match self {
            Scanned::Rows(rows) => Ok(rows),
            Scanned::OverCap => Err(PersistenceError("scan stopped at a byte cap".into())),
        }
    }
}

/// Scans `index` over `interval` at `ts` in `order` for up to `limit` live rows; stops with
/// [`Scanned::OverCap`] once the rows kept hold more than `byte_cap` bytes.
fn index_scan(
    conn: &Connection,
    index: IndexId,
    interval: &Interval,
    ts: Timestamp,
    order: Order,
    limit: usize,
    byte_cap: Option<usize>,
) -> Result<Scanned, PersistenceError> {
    let mut groups = KeyGroups::new(limit);
    if limit == 0 || interval.is_empty() {
        return groups.finish().map(Scanned::Rows);
    }
    let mut stmt = conn
        .prepare_cached(scan_sql(order, interval.end.is_some()))
        .map_err(storage_err)?;
    let ts_sql = ts_to_sql(ts)?;
    let mut rows = match &interval.end {
        Some(end) => stmt.query(params![index.0, &interval.start, ts_sql, end]),
        None => stmt.query(params![index.0, &interval.start, ts_sql]),
    }
    .map_err(storage_err)?;
    // Columns are read in place (`blob`): the folding copies only the rows it keeps.
    while let Some(row) = rows.next().map_err(storage_err)? {
        let key =
            blob(row, 0)?.ok_or_else(|| PersistenceError("index entry without a key".into()))?;
        let entry_ts: i64 = row.get(1).map_err(storage_err)?;
        let target = |value: &mut Vec<u8>| {
            let table: Option<i64> = row.get(2).map_err(storage_err)?;
            Ok(match (table, blob(row, 3)?) {
                (Some(table), Some(internal)) => {
                    let id = id_from_parts(table, internal)?;
                    let doc_ts: Option<i64> = row.get(4).map_err(storage_err)?;
                    let revision = doc_ts.zip(blob(row, 5)?).map(|(doc_ts, bytes)| {
                        value.extend_from_slice(bytes);
                        doc_ts
                    });
                    Some((id, revision))
                }
                _ => None,
            })
        };
        if groups.push(key, entry_ts, target)? {
            break;
        }
        if byte_cap.is_some_and(|cap| groups.kept_bytes() > cap) {
            return Ok(Scanned::OverCap);
        }
    }
    groups.finish().map(Scanned::Rows)
}

/// A BLOB (or NULL) column of `row`, borrowed from SQLite's copy of the row.
fn blob<'r>(row: &'r rusqlite::Row<'_>, i: usize) -> Result<Option<&'r [u8]>, PersistenceError> {
    row.get_ref(i)
        .and_then(|v| Ok(v.as_blob_or_null()?))
        .map_err(storage_err)
}

/// Raises the stored largest commit timestamp to `?2` (never lowers it).
const RAISE_MAX_TS: &str = "INSERT INTO globals (key, value) VALUES (?1, ?2) \
     ON CONFLICT (key) DO UPDATE SET value = excluded.value \
     WHERE CAST(excluded.value AS INTEGER) > CAST(globals.value AS INTEGER)";

/// Records a revision in `latest` unless a newer one of the document is there already (so the
/// table holds each document's newest revision whatever order revisions are written in).
const UPSERT_LATEST: &str = "INSERT INTO latest (table_num, internal, ts, value) \
     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (table_num, internal) \
     DO UPDATE SET ts = excluded.ts, value = excluded.value WHERE excluded.ts > latest.ts";

/// Runs `f` in a write transaction whose `BEGIN` and `COMMIT` are cached statements (rusqlite's
/// `Transaction` prepares both anew for every commit). On any failure the transaction is rolled
/// back.
fn in_write_transaction<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, PersistenceError>,
) -> Result<T, PersistenceError> {
    let run = |sql: &str| {
        conn.prepare_cached(sql)
            .and_then(|mut stmt| stmt.execute([]))
            .map_err(storage_err)
    };
    run("BEGIN")?;
    let result = f(conn).and_then(|value| run("COMMIT").map(|_| value));
    if result.is_err()
        && !conn.is_autocommit()
        && let Err(e) = conn.execute_batch("ROLLBACK")
    {
        tracing::error!(error = %e, "sqlite: rollback of a failed write failed");
    }
    result
}

fn write_commits(conn: &Connection, commits: &[CommitRecord]) -> Result<(), PersistenceError> {
    in_write_transaction(conn, |tx| {
        let mut insert_doc = tx
            .prepare_cached("INSERT INTO documents (table_num, internal, neg_ts, value, prev_ts) VALUES (?1, ?2, ?3, ?4, ?5)")
            .map_err(storage_err)?;
        let mut upsert_latest = tx.prepare_cached(UPSERT_LATEST).map_err(storage_err)?;
        let mut insert_entry = tx
            .prepare_cached("INSERT INTO indexes (index_id, key, ts, table_num, internal) VALUES (?1, ?2, ?3, ?4, ?5)")
            .map_err(storage_err)?;
        let mut max_ts = None;
        for commit in commits {
            max_ts = max_ts.max(Some(commit.ts));
            for rev in &commit.documents {
                let value = rev
                    .document
                    .as_ref()
                    .map(|d| encode_document(d.creation_time, &d.fields));
                let prev = rev.prev_ts.map(ts_to_sql).transpose()?;
                let ts = ts_to_sql(rev.ts)?;
                insert_doc
                    .execute(params![
                        rev.id.table.0,
                        &rev.id.internal[..],
                        -ts,
                        value,
                        prev
                    ])
                    .map_err(storage_err)?;
                upsert_latest
                    .execute(params![rev.id.table.0, &rev.id.internal[..], ts, value])
                    .map_err(storage_err)?;
            }
            for entry in &commit.index_entries {
                let table = entry.document.map(|d| d.table.0);
                let internal = entry.document.as_ref().map(|d| &d.internal[..]);
                insert_entry
                    .execute(params![
                        entry.index.0,
                        &entry.key,
                        ts_to_sql(entry.ts)?,
                        table,
                        internal
                    ])
                    .map_err(storage_err)?;
            }
        }
        if let Some(max_ts) = max_ts {
            tx.prepare_cached(RAISE_MAX_TS)
                .and_then(|mut stmt| {
                    stmt.execute(params![MAX_TS_KEY, max_ts.0.to_string().into_bytes()])
                })
                .map_err(storage_err)?;
        }
        Ok(())
    })
}

#[async_trait]
impl Persistence for SqlitePersistence {
    async fn write(&self, commits: Vec<CommitRecord>) -> Result<(), PersistenceError> {
        self.write_with(move |conn| write_commits(conn, &commits))
            .await
    }

    async fn max_ts(&self) -> Result<Option<Timestamp>, PersistenceError> {
        let Some(bytes) = self.global(MAX_TS_KEY).await? else {
            return Ok(None);
        };
        let text = String::from_utf8(bytes).map_err(storage_err)?;
        text.parse::<u64>()
            .map(|t| Some(Timestamp(t)))
            .map_err(storage_err)
    }

    async fn document_at(
        &self,
        id: DocumentId,
        ts: Timestamp,
    ) -> Result<Option<DocumentRevision>, PersistenceError> {
        self.read_inline(|conn| document_at(conn, id, ts))
    }

    async fn index_scan(
        &self,
        index: IndexId,
        interval: &Interval,
        ts: Timestamp,
        order: Order,
        limit: usize,
    ) -> Result<Vec<IndexRow>, PersistenceError> {
        if limit <= INLINE_SCAN_ROWS {
            let inline = self.read_inline(|conn| {
                match index_scan(
                    conn,
                    index,
                    interval,
                    ts,
                    order,
                    limit,
                    Some(INLINE_SCAN_BYTES),
                )? {
                    Scanned::Rows(rows) => rows.decode().map(Some),
                    Scanned::OverCap => Ok(None),
                }
            })?;
            if let Some(rows) = inline {
                return Ok(rows);
            }
            #[cfg(test)]
            self.inner
                .scans_moved_off
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let interval = interval.clone();
        self.read(move |conn| {
            index_scan(conn, index, &interval, ts, order, limit, None)?
                .rows()?
                .decode()
        })
        .await
    }

    async fn revisions_between(
        &self,
        after: Timestamp,
        until: Timestamp,
    ) -> Result<Vec<ChangedDocument>, PersistenceError> {
        let (after, until) = (ts_to_sql(after)?, ts_to_sql(until)?);
        self.read(move |conn| revisions_between(conn, after, until))
            .await
    }

    async fn prune(&self, horizon: Timestamp, limit: usize) -> Result<usize, PersistenceError> {
        let horizon = ts_to_sql(horizon)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let found: Vec<PruneKey> = self
            .read(move |conn| {
                let mut found = Vec::new();
                for (search, delete) in PRUNE {
                    let mut stmt = conn.prepare_cached(search).map_err(storage_err)?;
                    let rows = stmt
                        .query_map(params![horizon, limit], |row| {
                            Ok((delete, row.get(0)?, row.get(1)?, row.get(2)?))
                        })
                        .map_err(storage_err)?;
                    for row in rows {
                        found.push(row.map_err(storage_err)?);
                    }
                }
                Ok(found)
            })
            .await?;
        if found.is_empty() {
            return Ok(0);
        }
        self.write_with(move |conn| {
            let tx = conn.transaction().map_err(storage_err)?;
            let mut deleted = 0;
            for (delete, a, b, c) in &found {
                deleted += tx
                    .prepare_cached(delete)
                    .and_then(|mut stmt| stmt.execute(params![a, b, c]))
                    .map_err(storage_err)?;
            }
            tx.commit().map_err(storage_err)?;
            Ok(deleted)
        })
        .await
    }

    async fn global(&self, key: &str) -> Result<Option<Vec<u8>>, PersistenceError> {
        self.read_inline(|conn| {
            conn.prepare_cached("SELECT value FROM globals WHERE key = ?1")
                .and_then(|mut stmt| stmt.query_row([key], |row| row.get(0)).optional())
                .map_err(storage_err)
        })
    }

    async fn set_global(&self, key: &str, value: Vec<u8>) -> Result<(), PersistenceError> {
        let key = key.to_owned();
        self.write_with(move |conn| {
            conn.execute(
                "INSERT INTO globals (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map(drop)
            .map_err(storage_err)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use keel_values::{Object, TableNumber, Value};

    use super::*;
    use crate::persistence::IndexEntry;
    use crate::{Document, Interval};

    fn id(n: u8) -> DocumentId {
        DocumentId::new(TableNumber(10001), [n; 16])
    }

    /// Revision `version` of document `n` at `ts` (`None`: a tombstone).
    fn revision(n: u8, version: Option<i64>, ts: u64) -> DocumentRevision {
        let document = version.map(|v| {
            let mut fields = Object::new();
            fields.insert("v".into(), Value::Int64(v));
            Document {
                id: id(n),
                creation_time: 1000.0,
                fields,
            }
        });
        DocumentRevision {
            id: id(n),
            ts: Timestamp(ts),
            document,
            prev_ts: None,
        }
    }

    /// A commit at `ts` of `revisions`, each live one at key `[n]` of index 1.
    fn commit(ts: u64, revisions: Vec<DocumentRevision>) -> CommitRecord {
        let index_entries = revisions
            .iter()
            .map(|r| IndexEntry {
                index: IndexId(1),
                key: vec![r.id.internal[0]],
                ts: Timestamp(ts),
                document: r.document.as_ref().map(|_| r.id),
            })
            .collect();
        CommitRecord {
            ts: Timestamp(ts),
            documents: revisions,
            index_entries,
        }
    }

    /// What a scan of index 1 at `ts` reads: (document number, version, revision ts).
    async fn scan(p: &SqlitePersistence, ts: u64) -> Vec<(u8, Value, u64)> {
        let rows = p
            .index_scan(IndexId(1), &Interval::all(), Timestamp(ts), Order::Asc, 100)
            .await
            .unwrap();
        rows.into_iter()
            .map(|r| (r.key[0], r.document.fields["v"].clone(), r.ts.0))
            .collect()
    }

    /// Doc 1: versions at 10 and 20; doc 2: at 10, deleted at 30; doc 3: at 20.
    async fn history(p: &SqlitePersistence) {
        p.write(vec![commit(
            10,
            vec![revision(1, Some(1), 10), revision(2, Some(1), 10)],
        )])
        .await
        .unwrap();
        let mut second = commit(20, vec![revision(3, Some(1), 20)]);
        // Doc 1's new version keeps its key: no index entry, as the committer writes it.
        second.documents.push(revision(1, Some(2), 20));
        p.write(vec![second]).await.unwrap();
        p.write(vec![commit(30, vec![revision(2, None, 30)])])
            .await
            .unwrap();
    }

    async fn check_history(p: &SqlitePersistence) {
        let v = Value::Int64;
        assert_eq!(scan(p, 15).await, vec![(1, v(1), 10), (2, v(1), 10)]);
        assert_eq!(
            scan(p, 25).await,
            vec![(1, v(2), 20), (2, v(1), 10), (3, v(1), 20)]
        );
        assert_eq!(scan(p, 35).await, vec![(1, v(2), 20), (3, v(1), 20)]);
    }

    /// A burst of reads holding connections at once opens what it needs, and the pool then
    /// keeps only [`idle_readers`] of them: it does not grow with the largest burst.
    #[test]
    fn the_reader_pool_keeps_at_most_its_idle_connections() {
        let dir = tempfile::tempdir().unwrap();
        let p = SqlitePersistence::open(dir.path().join("db.sqlite3")).unwrap();
        let burst = idle_readers() + 8;
        let all_open = Arc::new(std::sync::Barrier::new(burst));
        let readers: Vec<_> = (0..burst)
            .map(|_| {
                let (p, all_open) = (p.clone(), all_open.clone());
                std::thread::spawn(move || {
                    p.read_inline(|conn| {
                        // Every reader holds its connection until all of them hold one.
                        all_open.wait();
                        conn.query_row("SELECT count(*) FROM documents", [], |row| {
                            row.get::<_, i64>(0)
                        })
                        .map_err(storage_err)
                    })
                })
            })
            .collect();
        for reader in readers {
            assert_eq!(reader.join().unwrap().unwrap(), 0);
        }
        assert_eq!(p.idle_reader_count(), idle_readers());
    }

    /// Reads on the blocking pool take turns: never more than [`read_slots`] at once, however
    /// many are asked for, and every one of them is answered.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn blocking_reads_take_turns() {
        let dir = tempfile::tempdir().unwrap();
        let p = SqlitePersistence::open(dir.path().join("db.sqlite3")).unwrap();
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let reads = (0..read_slots() * 4).map(|_| {
            let (running, most) = (running.clone(), most.clone());
            p.read(move |conn| {
                use std::sync::atomic::Ordering::SeqCst;
                let now = running.fetch_add(1, SeqCst) + 1;
                most.fetch_max(now, SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(5));
                let count = conn
                    .query_row("SELECT count(*) FROM documents", [], |row| {
                        row.get::<_, i64>(0)
                    })
                    .map_err(storage_err);
                running.fetch_sub(1, SeqCst);
                count
            })
        });
        let answers = futures::future::join_all(reads).await;
        assert!(answers.iter().all(|a| matches!(a, Ok(0))), "{answers:?}");
        let most = most.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            (2..=read_slots()).contains(&most),
            "{most} reads ran at once (slots: {})",
            read_slots()
        );
        assert!(p.idle_reader_count() <= idle_readers());
    }

    /// A long read on a runtime with a single worker does not hold up that worker's other
    /// tasks. The read waits (with a deadline) for a task spawned just before it to run; if the
    /// read ran on the worker's own thread, that task could not run until the read returned.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_long_read_lets_the_workers_other_tasks_run() {
        use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
        let dir = tempfile::tempdir().unwrap();
        let p = SqlitePersistence::open(dir.path().join("db.sqlite3")).unwrap();
        let other_ran = Arc::new(AtomicBool::new(false));
        let read = tokio::spawn({
            let other_ran = other_ran.clone();
            async move {
                let flag = other_ran.clone();
                tokio::spawn(async move { flag.store(true, SeqCst) });
                p.read(move |_conn| {
                    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                    while !other_ran.load(SeqCst) && std::time::Instant::now() < deadline {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                    Ok(other_ran.load(SeqCst))
                })
                .await
            }
        });
        assert!(
            read.await.unwrap().unwrap(),
            "the other task did not run while the read held the worker"
        );
    }

    /// An inline scan that keeps more than [`INLINE_SCAN_BYTES`] of documents runs again on the
    /// blocking pool, and answers exactly what it would have inline; a scan of the same large
    /// documents that stays under the cap runs inline.
    #[tokio::test]
    async fn large_documents_move_a_short_scan_off_the_executor() {
        let dir = tempfile::tempdir().unwrap();
        let p = SqlitePersistence::open(dir.path().join("db.sqlite3")).unwrap();
        let large = |n: u8| {
            let mut rev = revision(n, Some(i64::from(n)), 10);
            let doc = rev.document.as_mut().unwrap();
            doc.fields
                .insert("text".into(), Value::String("x".repeat(100_000)));
            rev
        };
        p.write(vec![commit(10, (1..=20).map(large).collect())])
            .await
            .unwrap();
        let moved_off = || {
            p.inner
                .scans_moved_off
                .load(std::sync::atomic::Ordering::Relaxed)
        };
        let all = Interval::all();
        let read = |limit: usize| p.index_scan(IndexId(1), &all, Timestamp(10), Order::Asc, limit);
        let five = read(5).await.unwrap();
        assert_eq!(five.len(), 5);
        assert_eq!(moved_off(), 0, "500 kB stay inline");
        let twenty = read(20).await.unwrap();
        assert_eq!(moved_off(), 1, "2 MB go to the blocking pool");
        let found: Vec<(u8, Value, usize)> = twenty
            .into_iter()
            .map(|r| {
                let text = r.document.fields["text"].as_str().unwrap().len();
                (r.key[0], r.document.fields["v"].clone(), text)
            })
            .collect();
        let expected: Vec<(u8, Value, usize)> = (1..=20u8)
            .map(|n| (n, Value::Int64(i64::from(n)), 100_000))
            .collect();
        assert_eq!(found, expected);
    }

    /// Scans read from the newest-revision table when the snapshot allows and from the revision
    /// log otherwise; both give each document as of the read timestamp.
    #[tokio::test]
    async fn scans_read_newest_and_older_revisions() {
        let dir = tempfile::tempdir().unwrap();
        let p = SqlitePersistence::open(dir.path().join("db.sqlite3")).unwrap();
        history(&p).await;
        check_history(&p).await;
    }

    /// A revision written after a newer one of the same document (an import, a replay) does not
    /// replace the newer one in `latest`.
    #[tokio::test]
    async fn an_older_revision_written_later_stays_history() {
        let dir = tempfile::tempdir().unwrap();
        let p = SqlitePersistence::open(dir.path().join("db.sqlite3")).unwrap();
        p.write(vec![commit(20, vec![revision(1, Some(2), 20)])])
            .await
            .unwrap();
        let mut older = commit(10, vec![revision(1, Some(1), 10)]);
        older.index_entries.clear();
        p.write(vec![older]).await.unwrap();
        assert_eq!(scan(&p, 30).await, vec![(1, Value::Int64(2), 20)]);
        assert_eq!(scan(&p, 15).await, Vec::new(), "the key's entry is at 20");
    }

    /// A file of storage format 2 (no `latest` table) is migrated on open, and reads the same.
    #[tokio::test]
    async fn migrates_a_format_2_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v2.sqlite3");
        let p = SqlitePersistence::open(&path).unwrap();
        history(&p).await;
        drop(p);
        let old = Connection::open(&path).unwrap();
        old.execute_batch("DROP TABLE latest; PRAGMA user_version = 2;")
            .unwrap();
        drop(old);
        let p = SqlitePersistence::open(&path).unwrap();
        check_history(&p).await;
        let latest: i64 = p
            .read_inline(|conn| {
                conn.query_row("SELECT count(*) FROM latest", [], |row| row.get(0))
                    .map_err(storage_err)
            })
            .unwrap();
        assert_eq!(latest, 3, "one row per document, the deleted one included");
        drop(p);
        let version: i64 = Connection::open(&path)
            .unwrap()
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, FORMAT_VERSION);
    }

    #[test]
    fn refuses_a_file_in_another_layout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite3");
        let old = Connection::open(&path).unwrap();
        old.execute_batch("CREATE TABLE documents (table_num INTEGER, internal BLOB, ts INTEGER);")
            .unwrap();
        drop(old);
        let err = SqlitePersistence::open(&path).err().unwrap();
        assert!(err.to_string().contains("storage format 0"), "{err}");
        // A file from a newer build is refused too, and left as it was.
        let newer = dir.path().join("newer.sqlite3");
        drop(SqlitePersistence::open(&newer).unwrap());
        Connection::open(&newer)
            .unwrap()
            .pragma_update(None, "user_version", FORMAT_VERSION + 1)
            .unwrap();
        let err = SqlitePersistence::open(&newer).err().unwrap();
        assert!(
            err.to_string()
                .contains(&format!("storage format {}", FORMAT_VERSION + 1)),
            "{err}"
        );
        let version: i64 = Connection::open(&newer)
            .unwrap()
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, FORMAT_VERSION + 1);
        let fresh = dir.path().join("new.sqlite3");
        drop(SqlitePersistence::open(&fresh).unwrap());
        assert!(
            SqlitePersistence::open(&fresh).is_ok(),
            "a file this build wrote reopens"
        );
    }
}

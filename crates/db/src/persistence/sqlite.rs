//! [`SqlitePersistence`]: the document log and index entries in one SQLite file (WAL mode).
//!
//! Tables:
//! * `documents(table_num, internal, neg_ts, value, prev_ts)`, primary key `(table_num,
//!   internal, neg_ts)`: the revision log; `neg_ts` is the negated commit timestamp, so a
//!   document's newest revision at or before `ts` is the first row with `neg_ts >= -ts` in key
//!   order (see [`DOCUMENT_AT`]); `value` is NULL for a tombstone, else the [`codec`] encoding.
//! * `indexes(index_id, key, ts, table_num, internal)`, primary key `(index_id, key, ts)`:
//!   versioned index entries; `internal` is NULL for a tombstone.
//! * `globals(key, value)`: small named values (the catalog, the largest commit timestamp).
//!
//! Writes: every statement of a commit (`BEGIN`, the inserts, the largest-timestamp update,
//! `COMMIT`) is a cached prepared statement.
//!
//! Durability: `synchronous=FULL`, so a write returns only after the WAL is synced. SQLite is
//! synchronous: writes and long scans run on Tokio's blocking pool, point reads and short scans
//! inline (see `read_inline`); one writer connection behind a mutex, and a pool of reader
//! connections that WAL lets run beside the writer.
//!
//! [`codec`]: crate::codec

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use keel_values::DocumentId;
use parking_lot::Mutex;
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OptionalExtension, params};

use super::stored::{KeyGroups, id_from_parts, stored_document, ts_to_sql};
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

/// The storage layout version, kept in SQLite's `user_version`.
const FORMAT_VERSION: i64 = 2;

/// Refuses a file written in another layout (rather than misreading it).
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
    if has_tables && version != FORMAT_VERSION {
        return Err(PersistenceError(format!(
            "sqlite: the database file uses storage format {version}, this build reads format {FORMAT_VERSION}; \
             move the file away to start fresh"
        )));
    }
    Ok(())
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
/// then the same for index entries. Each is a search for the keys to delete (`?1` the horizon,
/// `?2` the batch size), run on a reader so that commits never wait behind the scan, and the
/// delete of one found key (every key column, in order). A key found stays deletable: history
/// only grows, and only the committer prunes.
const PRUNE: [(&str, &str); 4] = [
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
];
const DELETE_REVISION: &str =
    "DELETE FROM documents WHERE table_num = ?1 AND internal = ?2 AND neg_ts = ?3";
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
    readers: Mutex<Vec<Connection>>,
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
        writer
            .pragma_update(None, "user_version", FORMAT_VERSION)
            .map_err(storage_err)?;
        Ok(SqlitePersistence {
            inner: Arc::new(Inner {
                path,
                writer: Mutex::new(writer),
                readers: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The file this persistence writes.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` on a reader connection on the blocking pool (for reads that may take long).
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, PersistenceError> + Send + 'static,
    ) -> Result<T, PersistenceError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.with_reader(f))
            .await
            .map_err(storage_err)?
    }

    /// Runs `f` on a reader connection right here, on the calling task's thread.
    ///
    /// Why not the blocking pool: a point lookup in SQLite's page cache takes a microsecond or
    /// two, while the hand-off to a blocking thread and back costs about ten. Short reads (point
    /// lookups, scans of a few rows) therefore run inline; they block the executor no longer than
    /// an ordinary piece of CPU work would, unless the page has to come from disk.
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
    /// Runs `f` with a pooled reader connection (opening one if the pool is empty).
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
        self.readers.lock().push(conn);
        result
    }
}

/// Scans up to this many rows run inline (see [`SqlitePersistence::read_inline`]).
const INLINE_SCAN_ROWS: usize = 16;

fn document_at(
    conn: &Connection,
    id: DocumentId,
    ts: Timestamp,
) -> Result<Option<DocumentRevision>, PersistenceError> {
    let mut stmt = conn.prepare_cached(DOCUMENT_AT).map_err(storage_err)?;
    let row = stmt
        .query_row(
            params![id.table.0, &id.internal[..], ts_to_sql(ts)?],
            |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, Option<Vec<u8>>>(1)?,
                    row.get::<_, Option<i64>>(2)?,
                ))
            },
        )
        .optional()
        .map_err(storage_err)?;
    let Some((neg_ts, value, prev_ts)) = row else {
        return Ok(None);
    };
    let document = value.map(|bytes| stored_document(id, &bytes)).transpose()?;
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
        let id = id_from_parts(table, internal)?;
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
fn scan_sql(order: Order, bounded: bool) -> String {
    let direction = match order {
        Order::Asc => "ASC",
        Order::Desc => "DESC",
    };
    let end_clause = if bounded { "AND i.key < ?4" } else { "" };
    format!(
        "SELECT i.key, i.ts, i.table_num, i.internal, -d.neg_ts, d.value FROM indexes i \
         LEFT JOIN documents d ON d.table_num = i.table_num AND d.internal = i.internal AND d.neg_ts = \
           (SELECT d2.neg_ts FROM documents d2 \
            WHERE d2.table_num = i.table_num AND d2.internal = i.internal AND d2.neg_ts >= -?3 \
            ORDER BY d2.neg_ts LIMIT 1) \
         WHERE i.index_id = ?1 AND i.key >= ?2 AND i.ts <= ?3 {end_clause} \
         ORDER BY i.key {direction}, i.ts {direction}"
    )
}

fn index_scan(
    conn: &Connection,
    index: IndexId,
    interval: &Interval,
    ts: Timestamp,
    order: Order,
    limit: usize,
) -> Result<Vec<IndexRow>, PersistenceError> {
    if limit == 0 || interval.is_empty() {
        return Ok(Vec::new());
    }
    let mut stmt = conn
        .prepare_cached(&scan_sql(order, interval.end.is_some()))
        .map_err(storage_err)?;
    let ts_sql = ts_to_sql(ts)?;
    let mut rows = match &interval.end {
        Some(end) => stmt.query(params![index.0, &interval.start, ts_sql, end]),
        None => stmt.query(params![index.0, &interval.start, ts_sql]),
    }
    .map_err(storage_err)?;
    let mut groups = KeyGroups::new(limit);
    while let Some(row) = rows.next().map_err(storage_err)? {
        let key: Vec<u8> = row.get(0).map_err(storage_err)?;
        let entry_ts: i64 = row.get(1).map_err(storage_err)?;
        let target = || {
            let table: Option<i64> = row.get(2).map_err(storage_err)?;
            let internal: Option<Vec<u8>> = row.get(3).map_err(storage_err)?;
            Ok(match (table, internal) {
                (Some(table), Some(internal)) => {
                    let doc_ts: Option<i64> = row.get(4).map_err(storage_err)?;
                    let value: Option<Vec<u8>> = row.get(5).map_err(storage_err)?;
                    Some((id_from_parts(table, internal)?, doc_ts.zip(value)))
                }
                _ => None,
            })
        };
        if groups.push(key, entry_ts, target)? {
            break;
        }
    }
    groups.finish()
}

/// Raises the stored largest commit timestamp to `?2` (never lowers it).
const RAISE_MAX_TS: &str = "INSERT INTO globals (key, value) VALUES (?1, ?2) \
     ON CONFLICT (key) DO UPDATE SET value = excluded.value \
     WHERE CAST(excluded.value AS INTEGER) > CAST(globals.value AS INTEGER)";

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
                insert_doc
                    .execute(params![
                        rev.id.table.0,
                        &rev.id.internal[..],
                        -ts_to_sql(rev.ts)?,
                        value,
                        prev
                    ])
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
            return self.read_inline(|conn| index_scan(conn, index, interval, ts, order, limit));
        }
        let interval = interval.clone();
        self.read(move |conn| index_scan(conn, index, &interval, ts, order, limit))
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
    use super::*;

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
        let fresh = dir.path().join("new.sqlite3");
        drop(SqlitePersistence::open(&fresh).unwrap());
        assert!(
            SqlitePersistence::open(&fresh).is_ok(),
            "a file this build wrote reopens"
        );
    }
}

//! [`PostgresPersistence`]: the document log and index entries in PostgreSQL tables, inside one
//! PostgreSQL schema (namespace) of one database.
//!
//! Tables (in the schema given by [`PostgresOptions::schema`], `keel` by default):
//! * `keel_documents(table_num, internal, ts, value, prev_ts)`, primary key `(table_num,
//!   internal, ts)`: the revision log; `value` is NULL for a tombstone, else the codec encoding.
//! * `keel_indexes(index_id, key, ts, table_num, internal)`, primary key `(index_id, key, ts)`:
//!   versioned index entries; `internal` is NULL for a tombstone. `bytea` compares bytewise,
//!   the order index keys need.
//! * `keel_globals(key, value)`, `keel_max_ts(id, ts)`: named values and the largest commit
//!   timestamp.
//! * `keel_leases`, `keel_migrations`: see [`lease`] and [`migrations`].
//! * `keel_blobs`, `keel_blob_chunks`: stored files' bytes ([`PostgresBlobStore`], see `blobs`).
//! * `keel_members(node_id, role, address, started_at_ms, last_seen, latest_ts, sync_sessions)`:
//!   the members of a group of nodes, each refreshing its own row (see `members`).
//!
//! Durability: a write returns after its PostgreSQL transaction commits (with the server's
//! default `synchronous_commit = on`, after the WAL flush). Connections: one writer (behind a
//! mutex, one transaction at a time), a few readers used in turn (tokio-postgres pipelines
//! concurrent queries on one connection), and the lease connection. TLS follows libpq's
//! `sslmode` (`prefer` by default) and `sslrootcert` URL parameters (see `tls`). A reader or
//! writer connection that closed (a server restart, a dropped network) is re-opened on its next
//! use; the call that found it broken fails. The lease connection is never re-opened: losing it loses the lease.
//!
//! More than one node: [`PostgresPersistence::connect_standby`] opens without the lease; such a
//! node follows the holder's commits through [`PostgresPersistence::commit_notifications`]
//! (see `notify`) and takes over with [`PostgresPersistence::acquire_lease`] when the holder dies.

mod blobs;
mod connection;
mod lease;
mod members;
mod migrations;
mod notify;
mod scan;
mod shared_store;
mod target;
#[cfg(feature = "testing")]
mod test_schema;
mod tls;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use keel_values::DocumentId;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};

use self::connection::{Target, check_schema_name, split_schema, storage_err};
use self::lease::{Lease, LockWait};
use self::scan::{ReaderStatements, decode_change, decode_revision};
use super::stored::ts_to_sql;
use super::{
    ChangedDocument, CommitRecord, DocumentRevision, IndexId, IndexRow, Persistence,
    PersistenceError,
};
use crate::codec::encode_document;
use crate::{Interval, Order, Timestamp};

pub use self::blobs::PostgresBlobStore;
pub use self::target::PostgresTarget;
#[cfg(feature = "testing")]
pub use self::test_schema::PostgresTestSchema;

/// Settings of a [`PostgresPersistence`] besides the URL.
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    /// The PostgreSQL schema (namespace) holding keel's tables; created if missing. Lower-case
    /// letters, digits and `_`. Default `keel`; a `schema=<name>` URL parameter overrides it.
    pub schema: String,
    /// How long to wait for another process's committer lease before refusing (a holder that
    /// just exited or was killed lets go within moments). Default 5 s.
    pub lease_wait: Duration,
    /// Reader connections. Default 3.
    pub readers: usize,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            schema: "keel".to_owned(),
            lease_wait: Duration::from_secs(5),
            readers: 3,
        }
    }
}

/// Persistence in a PostgreSQL database. Cheap to clone (shares its connections). Holds the
/// committer lease of its schema while it lives (see the `lease` module docs).
///
/// ```no_run
/// # async fn demo() -> Result<(), keel_db::persistence::PersistenceError> {
/// let p = keel_db::PostgresPersistence::connect("postgres://postgres@127.0.0.1:5432/test").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresPersistence {
    inner: Arc<Inner>,
}

struct Inner {
    target: Target,
    schema: String,
    writer: tokio::sync::Mutex<Writer>,
    /// Reader slots; a slot whose connection closed is re-opened on its next use.
    readers: Vec<parking_lot::Mutex<Arc<Reader>>>,
    next_reader: AtomicUsize,
    /// The committer lease, once held (at connect, or when a standby takes over).
    lease: OnceLock<Lease>,
}

struct Reader {
    client: Client,
    statements: ReaderStatements,
}

struct Writer {
    client: Client,
    check_lease: Statement,
    insert_documents: Statement,
    insert_entries: Statement,
    raise_max_ts: Statement,
    notify: Statement,
    set_global: Statement,
}

impl Writer {
    async fn prepare(client: Client, schema: &str) -> Result<Writer, PersistenceError> {
        let s = format!("\"{schema}\"");
        let check_sql = Lease::check_sql(schema);
        let documents_sql = format!(
            "INSERT INTO {s}.keel_documents (table_num, internal, ts, value, prev_ts) \
             SELECT * FROM UNNEST($1::int8[], $2::bytea[], $3::int8[], $4::bytea[], $5::int8[])"
        );
        let entries_sql = format!(
            "INSERT INTO {s}.keel_indexes (index_id, key, ts, table_num, internal) \
             SELECT * FROM UNNEST($1::int8[], $2::bytea[], $3::int8[], $4::int8[], $5::bytea[])"
        );
        let max_ts_sql = format!(
            "INSERT INTO {s}.keel_max_ts (id, ts) VALUES (1, $1) ON CONFLICT (id) \
             DO UPDATE SET ts = GREATEST({s}.keel_max_ts.ts, EXCLUDED.ts)"
        );
        let global_sql = format!(
            "INSERT INTO {s}.keel_globals (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
        );
        let (check_lease, insert_documents, insert_entries, raise_max_ts, notify, set_global) =
            tokio::try_join!(
                client.prepare(&check_sql),
                client.prepare(&documents_sql),
                client.prepare(&entries_sql),
                client.prepare(&max_ts_sql),
                client.prepare("SELECT pg_notify($1, $2)"),
                client.prepare(&global_sql),
            )
            .map_err(storage_err)?;
        Ok(Writer {
            client,
            check_lease,
            insert_documents,
            insert_entries,
            raise_max_ts,
            notify,
            set_global,
        })
    }
}

/// Begins a write transaction on `client` that holds the lease row (`check`, see
/// [`Lease::check_sql`]) and has verified this process still holds the lease.
async fn fenced<'c>(
    client: &'c mut Client,
    check: &Statement,
    lease: &Lease,
) -> Result<tokio_postgres::Transaction<'c>, PersistenceError> {
    let tx = client.transaction().await.map_err(storage_err)?;
    let found = tx.query_opt(check, &[]).await.map_err(storage_err)?;
    lease.verify(found.map(|row| row.get(0)))?;
    Ok(tx)
}

/// History pruning (see `Persistence::prune`), in order: superseded revisions, lone tombstones,
/// then the same for index entries. Each is a search for the keys to delete (`$1` the horizon,
/// `$2` the batch size), run on a reader so that commits never wait behind the scan, and the
/// table the keys are deleted from with its key columns. A key found stays deletable: history
/// only grows, and only the lease holder prunes.
fn prune_searches(s: &str) -> [(String, String, &'static str); 4] {
    // The two searches of one table: `group` its key columns, `live` NULL in a tombstone.
    let searches = |table: String, group: &'static str, live: &str| {
        [
            (superseded(&table, group), table.clone(), group),
            (lone_tombstones(&table, group, live), table, group),
        ]
    };
    let [revisions, revision_tombstones] = searches(
        format!("{s}.keel_documents"),
        "table_num, internal",
        "value",
    );
    let [entries, entry_tombstones] =
        searches(format!("{s}.keel_indexes"), "index_id, key", "internal");
    [revisions, revision_tombstones, entries, entry_tombstones]
}

/// Keys of rows of `table` (grouped by the columns `group`) older than the horizon that a newer
/// row of their group at or before the horizon supersedes.
fn superseded(table: &str, group: &str) -> String {
    let same = same_group(group, "n");
    format!(
        "SELECT {group}, ts FROM {table} r WHERE r.ts < $1 AND EXISTS ( \
           SELECT 1 FROM {table} n WHERE {same} AND n.ts > r.ts AND n.ts <= $1) \
         LIMIT $2"
    )
}

/// Keys of tombstones (`live` is NULL) older than the horizon with no older row in their group.
fn lone_tombstones(table: &str, group: &str, live: &str) -> String {
    let same = same_group(group, "o");
    format!(
        "SELECT {group}, ts FROM {table} r WHERE r.ts < $1 AND r.{live} IS NULL \
           AND NOT EXISTS (SELECT 1 FROM {table} o WHERE {same} AND o.ts < r.ts) \
         LIMIT $2"
    )
}

/// `<alias>.c = r.c AND …` for each column of `group`.
fn same_group(group: &str, alias: &str) -> String {
    group
        .split(", ")
        .map(|c| format!("{alias}.{c} = r.{c}"))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// The columns of a batch of document revisions, for one `UNNEST` insert.
#[derive(Default)]
struct DocumentColumns {
    table: Vec<i64>,
    internal: Vec<Vec<u8>>,
    ts: Vec<i64>,
    value: Vec<Option<Vec<u8>>>,
    prev_ts: Vec<Option<i64>>,
}

/// The columns of a batch of index entries, for one `UNNEST` insert.
#[derive(Default)]
struct EntryColumns {
    index: Vec<i64>,
    key: Vec<Vec<u8>>,
    ts: Vec<i64>,
    table: Vec<Option<i64>>,
    internal: Vec<Option<Vec<u8>>>,
}

fn columns(
    commits: &[CommitRecord],
) -> Result<(DocumentColumns, EntryColumns, Option<i64>), PersistenceError> {
    let mut docs = DocumentColumns::default();
    let mut entries = EntryColumns::default();
    let mut max_ts = None;
    for commit in commits {
        max_ts = max_ts.max(Some(ts_to_sql(commit.ts)?));
        for rev in &commit.documents {
            docs.table.push(i64::from(rev.id.table.0));
            docs.internal.push(rev.id.internal.to_vec());
            docs.ts.push(ts_to_sql(rev.ts)?);
            docs.value.push(
                rev.document
                    .as_ref()
                    .map(|d| encode_document(d.creation_time, &d.fields)),
            );
            docs.prev_ts.push(rev.prev_ts.map(ts_to_sql).transpose()?);
        }
        for entry in &commit.index_entries {
            entries.index.push(i64::from(entry.index.0));
            entries.key.push(entry.key.clone());
            entries.ts.push(ts_to_sql(entry.ts)?);
            entries
                .table
                .push(entry.document.map(|d| i64::from(d.table.0)));
            entries
                .internal
                .push(entry.document.map(|d| d.internal.to_vec()));
        }
    }
    Ok((docs, entries, max_ts))
}

impl PostgresPersistence {
    /// Connects to the database at `url` (`postgres://user[:password]@host[:port]/database`,
    /// optionally `?schema=<name>`) with the default [`PostgresOptions`] (schema `keel`):
    /// applies missing migrations and takes the committer lease.
    pub async fn connect(url: &str) -> Result<PostgresPersistence, PersistenceError> {
        PostgresPersistence::connect_with(url, PostgresOptions::default()).await
    }

    /// Connects with explicit options. Fails with a message naming the URL (never its password)
    /// when the server is unreachable, the database is missing or the login is refused, and
    /// with a message naming the holder when another process holds the committer lease. A
    /// `schema=<name>` parameter in the URL overrides [`PostgresOptions::schema`].
    pub async fn connect_with(
        url: &str,
        options: PostgresOptions,
    ) -> Result<PostgresPersistence, PersistenceError> {
        let (target, schema, lock) = PostgresPersistence::migrate(url, &options).await?;
        let lease = Lease::acquire(lock, &schema, &target.shown, options.lease_wait).await?;
        let persistence = PostgresPersistence::open(target, schema, &options).await?;
        let _ = persistence.inner.lease.set(lease);
        Ok(persistence)
    }

    /// Connects without the committer lease, as a standby node: reads work, writes fail until
    /// [`try_acquire_lease`](PostgresPersistence::try_acquire_lease) or
    /// [`acquire_lease`](PostgresPersistence::acquire_lease) succeeds. Followers use it with
    /// [`commit_notifications`](PostgresPersistence::commit_notifications).
    pub async fn connect_standby(
        url: &str,
        options: PostgresOptions,
    ) -> Result<PostgresPersistence, PersistenceError> {
        let (target, schema, _) = PostgresPersistence::migrate(url, &options).await?;
        PostgresPersistence::open(target, schema, &options).await
    }

    /// Parses the URL, connects once and applies missing migrations; returns that connection.
    async fn migrate(
        url: &str,
        options: &PostgresOptions,
    ) -> Result<(Target, String, Client), PersistenceError> {
        let (url, url_schema) = split_schema(url);
        let schema = url_schema.unwrap_or_else(|| options.schema.clone());
        check_schema_name(&schema)?;
        let mut target = Target::parse(&url)?;
        // Names the sessions in `pg_stat_activity` (and lets operators and tests find them).
        target.config.application_name(format!("keel {schema}"));
        let mut lock = target.connect().await?;
        migrations::migrate(&mut lock, &schema).await?;
        Ok((target, schema, lock))
    }

    /// Opens the writer and reader connections.
    async fn open(
        target: Target,
        schema: String,
        options: &PostgresOptions,
    ) -> Result<PostgresPersistence, PersistenceError> {
        let writer = Writer::prepare(target.connect().await?, &schema).await?;
        let mut readers = Vec::new();
        for _ in 0..options.readers.max(1) {
            let client = target.connect().await?;
            let statements = ReaderStatements::prepare(&client, &schema).await?;
            readers.push(parking_lot::Mutex::new(Arc::new(Reader {
                client,
                statements,
            })));
        }
        tracing::debug!(target = %target.shown, schema, "connected to PostgreSQL");
        Ok(PostgresPersistence {
            inner: Arc::new(Inner {
                target,
                schema,
                writer: tokio::sync::Mutex::new(writer),
                readers,
                next_reader: AtomicUsize::new(0),
                lease: OnceLock::new(),
            }),
        })
    }

    /// The database this persistence writes, as `postgres://user@host:port/database`.
    pub fn target(&self) -> &str {
        &self.inner.target.shown
    }

    /// Whether this process holds the committer lease (and so may write).
    pub fn holds_lease(&self) -> bool {
        self.inner.lease.get().is_some()
    }

    /// Whether this process held the committer lease and lost it: released, or the connection
    /// holding it closed (PostgreSQL then lets another process take it). A lost lease is never
    /// regained by this persistence; writes through it fail.
    pub fn lease_lost(&self) -> bool {
        self.inner.lease.get().is_some_and(Lease::is_lost)
    }

    /// Takes the committer lease if no live process holds it; returns whether this process
    /// holds it now.
    pub async fn try_acquire_lease(&self) -> Result<bool, PersistenceError> {
        self.take_lease(LockWait::No).await
    }

    /// Waits until the committer lease is free (its holder exited or died, which PostgreSQL
    /// notices when the holder's connection closes) and takes it. A standby node calls this and
    /// then promotes its database (`Database::promote`).
    pub async fn acquire_lease(&self) -> Result<(), PersistenceError> {
        self.take_lease(LockWait::Forever).await.map(drop)
    }

    async fn take_lease(&self, wait: LockWait) -> Result<bool, PersistenceError> {
        if self.holds_lease() {
            return Ok(true);
        }
        let lock = self.inner.target.connect().await?;
        if !Lease::lock(&lock, &self.inner.schema, wait).await? {
            return Ok(false);
        }
        let lease = Lease::claim(lock, &self.inner.schema).await?;
        Ok(self.inner.lease.set(lease).is_ok())
    }

    /// Publishes, in the lease row, where this lease holder accepts calls forwarded by other
    /// nodes (for example `http://10.0.0.5:3210`).
    pub async fn set_committer_address(&self, address: &str) -> Result<(), PersistenceError> {
        match self.inner.lease.get() {
            Some(lease) => lease.set_address(address).await,
            None => Err(self.not_holder()),
        }
    }

    /// The address the live lease holder published, `None` while no live process holds the
    /// lease or its holder has not published one yet.
    pub async fn committer_address(&self) -> Result<Option<String>, PersistenceError> {
        Lease::holder_address(&self.reader().await?.client, &self.inner.schema).await
    }

    /// Follows the largest durable commit timestamp as the lease holder commits: a channel fed by
    /// PostgreSQL notifications (sent inside each write transaction) and a poll every second.
    /// Stops listening once every receiver is dropped.
    pub async fn commit_notifications(
        &self,
    ) -> Result<tokio::sync::watch::Receiver<Timestamp>, PersistenceError> {
        let start = self.max_ts().await?.unwrap_or(Timestamp::MIN);
        let (sender, receiver) = tokio::sync::watch::channel(start);
        notify::spawn_listener(self.inner.target.clone(), self.inner.schema.clone(), sender);
        Ok(receiver)
    }

    /// The lease, or the error for a write without it.
    fn lease(&self) -> Result<&Lease, PersistenceError> {
        self.inner.lease.get().ok_or_else(|| self.not_holder())
    }

    fn not_holder(&self) -> PersistenceError {
        PersistenceError(format!(
            "this process does not hold the committer lease for schema \"{}\" (it is a \
             standby): another backend node commits",
            self.inner.schema
        ))
    }

    /// A store of blobs (stored files' bytes) in this database's schema, with connections of
    /// its own: every backend node on the database reads the blobs any node wrote.
    pub fn blob_store(&self) -> PostgresBlobStore {
        PostgresBlobStore::new(self.inner.target.clone(), &self.inner.schema)
    }

    /// The members' table of this schema, with a connection of its own (see
    /// [`SharedStore::member_registry`](crate::SharedStore::member_registry)).
    pub(crate) fn members_table(&self) -> members::PostgresMembers {
        members::PostgresMembers::new(self.inner.target.clone(), &self.inner.schema)
    }

    /// The PostgreSQL schema holding the tables.
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }

    /// Releases the committer lease now (it is also released when the last clone is dropped and
    /// its connections close). Writes through this persistence fail afterwards.
    pub async fn release(&self) -> Result<(), PersistenceError> {
        self.lease()?.release().await
    }

    /// The next reader connection in turn, re-opened first if it closed (the server restarted
    /// or the network dropped it).
    async fn reader(&self) -> Result<Arc<Reader>, PersistenceError> {
        let n = self.inner.next_reader.fetch_add(1, Ordering::Relaxed);
        let slot = &self.inner.readers[n % self.inner.readers.len()];
        let reader = slot.lock().clone();
        if !reader.client.is_closed() {
            return Ok(reader);
        }
        let client = self.inner.target.connect().await?;
        let statements = ReaderStatements::prepare(&client, &self.inner.schema).await?;
        let fresh = Arc::new(Reader { client, statements });
        *slot.lock() = fresh.clone();
        tracing::info!(target = %self.inner.target.shown, "re-opened a PostgreSQL reader connection");
        Ok(fresh)
    }

    /// The writer, re-opened first if its connection closed.
    async fn writer(&self) -> Result<tokio::sync::MutexGuard<'_, Writer>, PersistenceError> {
        let mut writer = self.inner.writer.lock().await;
        if writer.client.is_closed() {
            let client = self.inner.target.connect().await?;
            *writer = Writer::prepare(client, &self.inner.schema).await?;
            tracing::info!(target = %self.inner.target.shown, "re-opened the PostgreSQL writer connection");
        }
        Ok(writer)
    }
}

#[async_trait]
impl Persistence for PostgresPersistence {
    async fn write(&self, commits: Vec<CommitRecord>) -> Result<(), PersistenceError> {
        let (docs, entries, max_ts) = columns(&commits)?;
        let Some(max_ts) = max_ts else {
            return Ok(()); // nothing to write
        };
        let lease_holder = self.lease()?;
        let mut writer = self.writer().await?;
        let w = &mut *writer;
        let tx = w.client.transaction().await.map_err(storage_err)?;
        // Sent together (tokio-postgres pipelines them); the lease check runs first on the server.
        let doc_params: [&(dyn ToSql + Sync); 5] = [
            &docs.table,
            &docs.internal,
            &docs.ts,
            &docs.value,
            &docs.prev_ts,
        ];
        let entry_params: [&(dyn ToSql + Sync); 5] = [
            &entries.index,
            &entries.key,
            &entries.ts,
            &entries.table,
            &entries.internal,
        ];
        // All sent at once (tokio-postgres pipelines them); the server runs them in order, the
        // lease check first. On any failure the transaction rolls back when `tx` is dropped.
        // The notice reaches followers only if (and once) the transaction commits.
        let max_params: [&(dyn ToSql + Sync); 1] = [&max_ts];
        let (channel, payload) = (notify::channel(&self.inner.schema), max_ts.to_string());
        let notify_params: [&(dyn ToSql + Sync); 2] = [&channel, &payload];
        let (lease, _, _, _, _) = tokio::try_join!(
            tx.query_opt(&w.check_lease, &[]),
            tx.execute(&w.insert_documents, &doc_params),
            tx.execute(&w.insert_entries, &entry_params),
            tx.execute(&w.raise_max_ts, &max_params),
            tx.query_opt(&w.notify, &notify_params),
        )
        .map_err(storage_err)?;
        lease_holder.verify(lease.map(|row| row.get(0)))?;
        tx.commit().await.map_err(storage_err)
    }

    async fn max_ts(&self) -> Result<Option<Timestamp>, PersistenceError> {
        let reader = self.reader().await?;
        let row = reader
            .client
            .query_opt(&reader.statements.max_ts, &[])
            .await
            .map_err(storage_err)?;
        Ok(row.map(|row| Timestamp(row.get::<_, i64>(0) as u64)))
    }

    async fn document_at(
        &self,
        id: DocumentId,
        ts: Timestamp,
    ) -> Result<Option<DocumentRevision>, PersistenceError> {
        let reader = self.reader().await?;
        let (table, internal, ts_sql) = (i64::from(id.table.0), &id.internal[..], ts_to_sql(ts)?);
        let row = reader
            .client
            .query_opt(
                &reader.statements.document_at,
                &[&table, &internal, &ts_sql],
            )
            .await
            .map_err(storage_err)?;
        row.map(|row| decode_revision(id, &row)).transpose()
    }

    async fn index_scan(
        &self,
        index: IndexId,
        interval: &Interval,
        ts: Timestamp,
        order: Order,
        limit: usize,
    ) -> Result<Vec<IndexRow>, PersistenceError> {
        let reader = self.reader().await?;
        scan::index_scan(
            &reader.client,
            &reader.statements,
            index,
            interval,
            ts,
            order,
            limit,
        )
        .await
    }

    async fn revisions_between(
        &self,
        after: Timestamp,
        until: Timestamp,
    ) -> Result<Vec<ChangedDocument>, PersistenceError> {
        let reader = self.reader().await?;
        let (after, until) = (ts_to_sql(after)?, ts_to_sql(until)?);
        let rows = reader
            .client
            .query(&reader.statements.revisions, &[&after, &until])
            .await
            .map_err(storage_err)?;
        rows.iter().map(decode_change).collect()
    }

    async fn prune(&self, horizon: Timestamp, limit: usize) -> Result<usize, PersistenceError> {
        let lease_holder = self.lease()?;
        let (horizon, limit) = (
            ts_to_sql(horizon)?,
            i64::try_from(limit).unwrap_or(i64::MAX),
        );
        let s = format!("\"{}\"", self.inner.schema);
        // Find the keys on a reader: (table, key columns, the keys as three columns).
        let reader = self.reader().await?;
        let mut found = Vec::new();
        for (search, table, group) in prune_searches(&s) {
            let rows = reader
                .client
                .query(&search, &[&horizon, &limit])
                .await
                .map_err(storage_err)?;
            if rows.is_empty() {
                continue;
            }
            let mut keys: (Vec<i64>, Vec<Vec<u8>>, Vec<i64>) = Default::default();
            for row in &rows {
                keys.0.push(row.try_get(0).map_err(storage_err)?);
                keys.1.push(row.try_get(1).map_err(storage_err)?);
                keys.2.push(row.try_get(2).map_err(storage_err)?);
            }
            found.push((table, group, keys));
        }
        if found.is_empty() {
            return Ok(0);
        }
        let mut writer = self.writer().await?;
        let w = &mut *writer;
        let tx = fenced(&mut w.client, &w.check_lease, lease_holder).await?;
        let mut deleted = 0;
        for (table, group, (a, b, c)) in &found {
            deleted += tx
                .execute(
                    &format!(
                        "DELETE FROM {table} WHERE ({group}, ts) IN ( \
                           SELECT * FROM UNNEST($1::int8[], $2::bytea[], $3::int8[]))"
                    ),
                    &[a, b, c],
                )
                .await
                .map_err(storage_err)?;
        }
        tx.commit().await.map_err(storage_err)?;
        Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
    }

    async fn global(&self, key: &str) -> Result<Option<Vec<u8>>, PersistenceError> {
        let reader = self.reader().await?;
        let row = reader
            .client
            .query_opt(&reader.statements.global, &[&key])
            .await
            .map_err(storage_err)?;
        Ok(row.map(|row| row.get(0)))
    }

    async fn set_global(&self, key: &str, value: Vec<u8>) -> Result<(), PersistenceError> {
        let lease_holder = self.lease()?;
        let mut writer = self.writer().await?;
        let w = &mut *writer;
        let tx = fenced(&mut w.client, &w.check_lease, lease_holder).await?;
        tx.execute(&w.set_global, &[&key, &value])
            .await
            .map_err(storage_err)?;
        tx.commit().await.map_err(storage_err)
    }
}

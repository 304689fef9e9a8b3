//! [`Database`]: opens persistence, keeps the catalog, hands out transactions, commits them
//! through the single committer and owns the subscription manager.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::{Mutex, RwLock};
use tokio::sync::{mpsc, oneshot, watch};

use crate::catalog::{BY_ID, CATALOG_KEY, Catalog, IndexInfo, TableInfo, is_system_table};
use crate::committer::{CommitJob, Committer, prepare};
use crate::persistence::{CommitRecord, IndexEntry, Persistence};
use crate::schema::check_table_name;
use crate::shared::Shared;
use crate::subscription::{Subscription, SubscriptionManager};
use crate::write_log::{RETENTION, WriteLog};
use crate::{DbError, Interval, Order, ReadSet, Schema, Timestamp, Transaction};

/// The database engine. Cheap to clone; all clones share one committer.
///
/// ```no_run
/// # async fn demo() -> Result<(), keel_db::DbError> {
/// use std::sync::Arc;
/// use keel_db::{Database, Schema, SqlitePersistence, TableSchema};
/// let persistence = SqlitePersistence::open("/tmp/keel-demo.sqlite3")?;
/// let db = Database::open(Arc::new(persistence), Schema::new().table("posts", TableSchema::new())).await?;
/// let mut tx = db.begin();
/// let Some(fields) = keel_values::obj! { "title" => "Hello" }.as_object().cloned() else { return Ok(()) };
/// let id = tx.insert("posts", fields).await?;
/// let ts = db.commit(tx).await?;
/// let mut tx = db.begin();
/// assert!(tx.get(id).await?.is_some() && tx.snapshot_ts() >= ts);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Database {
    pub(crate) shared: Arc<Shared>,
    /// The committer's queue: set at open, or at promotion for a follower. Outside [`Shared`] so
    /// that the committer task (which holds `Shared`) stops once every handle is gone.
    pub(crate) committer: Arc<OnceLock<mpsc::UnboundedSender<CommitJob>>>,
}

impl Database {
    /// Opens the database: loads the catalog, brings it in line with `schema` (new tables,
    /// new indexes backfilled from the documents), and starts the committer task. Must be called
    /// inside a Tokio runtime.
    pub async fn open(
        persistence: Arc<dyn Persistence>,
        schema: Schema,
    ) -> Result<Database, DbError> {
        schema.check()?;
        let schema = crate::system::with_system_tables(schema);
        let mut latest = persistence.max_ts().await?.unwrap_or(Timestamp::MIN);
        let mut catalog = Catalog::load(persistence.as_ref()).await?;
        // Bring the catalog in line with the schema.
        let mut backfills: Vec<(Arc<TableInfo>, IndexInfo)> = Vec::new();
        let names: Vec<String> = catalog.tables.iter().map(|t| t.name.clone()).collect();
        let mut declared: Vec<&str> = schema.tables().map(|(n, _)| n).collect();
        // System tables after the user's, so user tables keep their numbers.
        declared.sort_by_key(|name| is_system_table(name));
        for name in declared.iter().copied().chain(
            names
                .iter()
                .map(String::as_str)
                .filter(|n| !declared.contains(n)),
        ) {
            let existed = catalog.table(name).is_some();
            let base = match catalog.table(name) {
                Some(t) => t.clone(),
                None => catalog.add_table(name),
            };
            let table_schema = schema.table_schema(name);
            let mut indexes: Vec<IndexInfo> = base.indexes[..2].to_vec();
            for index in table_schema.map(|t| t.indexes()).unwrap_or_default() {
                let mut fields = index.fields.clone();
                fields.push("_creationTime".into());
                match base.index(&index.name).filter(|i| i.fields == fields) {
                    Some(existing) => indexes.push(existing.clone()),
                    None => {
                        let info = IndexInfo {
                            name: index.name.clone(),
                            id: catalog.new_index_id(),
                            fields,
                        };
                        if existed {
                            backfills.push((base.clone(), info.clone()));
                        }
                        indexes.push(info);
                    }
                }
            }
            let validator = table_schema.and_then(|t| t.document_validator().cloned());
            catalog.put_table(TableInfo {
                name: name.to_owned(),
                number: base.number,
                indexes,
                validator,
            });
        }
        if !backfills.is_empty() {
            // Reserve the new index ids durably before writing entries under them.
            let mut reserved = Catalog::load(persistence.as_ref()).await?;
            reserved.next_index = catalog.next_index;
            reserved.next_table = reserved.next_table.max(catalog.next_table);
            persistence
                .set_global(CATALOG_KEY, reserved.encode())
                .await?;
            latest = backfill(persistence.as_ref(), &backfills, latest).await?;
        }
        persistence
            .set_global(CATALOG_KEY, catalog.encode())
            .await?;
        let db = Database::assemble(persistence, catalog, latest, schema);
        db.start_committer(latest);
        tracing::debug!(%latest, "database opened");
        Ok(db)
    }

    /// The shared state at `latest`, without a committer.
    pub(crate) fn assemble(
        persistence: Arc<dyn Persistence>,
        catalog: Catalog,
        latest: Timestamp,
        schema: Schema,
    ) -> Database {
        let write_log = Arc::new(RwLock::new(WriteLog::new(latest)));
        let (commits, _) = watch::channel(latest);
        let shared = Arc::new(Shared {
            persistence,
            catalog: RwLock::new(catalog),
            write_log: write_log.clone(),
            latest: AtomicU64::new(latest.0),
            commits,
            subscriptions: SubscriptionManager::new(write_log, latest),
            creation_clock: Mutex::new(latest.as_millis_f64()),
            catalog_change: tokio::sync::Mutex::new(()),
            follow: tokio::sync::Mutex::new(()),
            schema,
            tasks: keel_tasks::Tasks::new("database"),
        });
        Database {
            shared,
            committer: Arc::new(OnceLock::new()),
        }
    }

    /// Starts the committer task, whose first commit comes after `last_ts`.
    pub(crate) fn start_committer(&self, last_ts: Timestamp) {
        let (sender, receiver) = mpsc::unbounded_channel();
        if self.committer.set(sender).is_ok() {
            let committer = Committer::new(self.shared.clone(), last_ts);
            let stop = self.shared.tasks.clone();
            self.shared
                .tasks
                .spawn("committer", committer.run(receiver, stop));
            self.spawn_maintenance();
        }
    }

    /// Stops this database's background work, for a graceful shutdown: the committer writes
    /// (and acknowledges) the commits already handed to it and then stops, so later commits
    /// fail with a storage error saying so; the maintenance stops between steps. Returns once
    /// both have stopped. Reads keep working. Every clone shares the one committer, so this
    /// stops it for all of them.
    pub async fn shutdown(&self) {
        self.shared.tasks.stop();
        self.shared.tasks.stopped().await;
    }

    /// Whether this handle commits (it opened the database, or a follower was promoted), as
    /// opposed to a follower reading another process's commits.
    pub fn is_committer(&self) -> bool {
        self.committer.get().is_some()
    }

    /// A transaction reading at the latest committed timestamp.
    pub fn begin(&self) -> Transaction {
        Transaction::new(self.clone(), self.latest_ts())
    }

    /// A transaction reading at `ts` (for reads at a client-chosen timestamp). Fails with
    /// [`DbError::OutOfRetention`] if `ts` is after the latest commit or older than the
    /// retention window (5 minutes). [`Timestamp::MIN`], the latest timestamp of a database
    /// before its first commit, stays readable (as the empty database): a snapshot taken then
    /// must not fail because the first commit landed before it was read.
    pub fn begin_at(&self, ts: Timestamp) -> Result<Transaction, DbError> {
        let latest = self.latest_ts();
        if ts > latest {
            return Err(DbError::OutOfRetention(format!(
                "timestamp {ts} is after the latest commit {latest}"
            )));
        }
        if ts != Timestamp::MIN && ts.0 < latest.0.saturating_sub(RETENTION.as_nanos() as u64) {
            return Err(DbError::OutOfRetention(format!(
                "timestamp {ts} is older than the retention window"
            )));
        }
        Ok(Transaction::new(self.clone(), ts))
    }

    /// The latest committed timestamp: everything at or before it is durable and readable.
    pub fn latest_ts(&self) -> Timestamp {
        Timestamp(self.shared.latest.load(Ordering::Acquire))
    }

    /// Follows the latest committed timestamp as commits happen.
    pub fn watch_commits(&self) -> watch::Receiver<Timestamp> {
        self.shared.commits.subscribe()
    }

    /// The subscription manager.
    pub fn subscriptions(&self) -> &SubscriptionManager {
        &self.shared.subscriptions
    }

    /// Subscribes to changes of `read_set` after `ts` (see [`SubscriptionManager::subscribe`]).
    pub fn subscribe(&self, read_set: ReadSet, ts: Timestamp) -> Subscription {
        self.shared.subscriptions.subscribe(read_set, ts)
    }

    /// Commits a transaction and returns its commit timestamp once it is durable. A read-only
    /// transaction returns its snapshot timestamp without going through the committer. Fails
    /// with [`DbError::OccConflict`] if something it read changed after its snapshot.
    pub async fn commit(&self, tx: Transaction) -> Result<Timestamp, DbError> {
        if tx.writes.is_empty() {
            return Ok(tx.snapshot);
        }
        tx.check_write_size()?;
        self.submit(tx).await
    }

    /// Hands a transaction with writes to the committer, without the per-transaction write
    /// limits (a snapshot import commits in one piece, bounded by its own limits).
    pub(crate) async fn submit(&self, tx: Transaction) -> Result<Timestamp, DbError> {
        let job_parts = prepare(tx);
        let (reply, result) = oneshot::channel();
        let job = CommitJob {
            snapshot: job_parts.0,
            reads: job_parts.1,
            writes: job_parts.2,
            reply,
        };
        let Some(committer) = self.committer.get() else {
            return Err(DbError::NotCommitter(
                "this database is a follower: another process commits to it".into(),
            ));
        };
        committer.send(job).map_err(|_| {
            DbError::Storage(if self.shared.tasks.is_stopping() {
                "the database is shutting down: it takes no new commits".into()
            } else {
                "the committer has stopped".into()
            })
        })?;
        result
            .await
            .map_err(|_| DbError::Storage("the committer stopped before answering".into()))?
    }

    /// A fresh `_creationTime`: now in milliseconds, and always above the previous one.
    pub(crate) fn next_creation_time(&self) -> f64 {
        let now = Timestamp::now().as_millis_f64();
        let mut clock = self.shared.creation_clock.lock();
        *clock = now.max(clock.next_up());
        *clock
    }

    /// The table named `name`, created (and persisted in the catalog) if it does not exist.
    pub(crate) async fn ensure_table(&self, name: &str) -> Result<Arc<TableInfo>, DbError> {
        if let Some(table) = self.shared.catalog.read().table(name) {
            return Ok(table.clone());
        }
        check_table_name(name)
            .map_err(|_| DbError::TableNotFound(format!("\"{name}\" (not a valid table name)")))?;
        if !self.is_committer() {
            return self.follower_table(name).await;
        }
        let _guard = self.shared.catalog_change.lock().await;
        if let Some(table) = self.shared.catalog.read().table(name) {
            return Ok(table.clone());
        }
        let mut next = self.shared.catalog.read().clone();
        let table = next.add_table(name);
        self.shared
            .persistence
            .set_global(CATALOG_KEY, next.encode())
            .await?;
        *self.shared.catalog.write() = next;
        tracing::debug!(table = name, number = table.number, "created table");
        Ok(table)
    }
}

/// Writes index entries for new indexes of existing tables, at a new timestamp after `latest`.
async fn backfill(
    persistence: &dyn Persistence,
    backfills: &[(Arc<TableInfo>, IndexInfo)],
    latest: Timestamp,
) -> Result<Timestamp, DbError> {
    let ts = latest.succ().max(Timestamp::now());
    let mut entries = Vec::new();
    for (table, index) in backfills {
        let Some(by_id) = table.index(BY_ID) else {
            continue;
        };
        let mut interval = Interval::all();
        loop {
            let rows = persistence
                .index_scan(by_id.id, &interval, latest, Order::Asc, 1000)
                .await?;
            for row in &rows {
                entries.push(IndexEntry {
                    index: index.id,
                    key: index.key(&row.document),
                    ts,
                    document: Some(row.document.id),
                });
            }
            match rows.last() {
                Some(last) if rows.len() == 1000 => {
                    interval.start = crate::interval::key_successor(&last.key);
                }
                _ => break,
            }
        }
        tracing::info!(table = %table.name, index = %index.name, "backfilled index");
    }
    persistence
        .write(vec![CommitRecord {
            ts,
            documents: Vec::new(),
            index_entries: entries,
        }])
        .await?;
    Ok(ts)
}

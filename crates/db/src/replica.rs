//! Followers: a [`Database`] over a persistence that another process commits to.
//!
//! A follower serves reads and subscriptions exactly like the committer: reads at its latest
//! timestamp, a write log for late subscribers, invalidations through the same
//! [`SubscriptionManager`](crate::SubscriptionManager). It learns about commits when its owner
//! calls [`Database::follow_to`] with a timestamp the committer reached (from a notification or a
//! poll): it reads the revisions committed since its own latest timestamp, rebuilds each commit's
//! write-log entry (every index key the document had before or has after, computed from the
//! catalog as the committer computed them), invalidates subscriptions, and only then publishes
//! the new latest timestamp — the order the committer keeps too.
//!
//! A follower that fell behind the committer's pruning horizon (see `maintenance`) cannot
//! rebuild the commits whose revisions were deleted: it invalidates every subscription and
//! starts a fresh write log instead.
//!
//! A follower cannot create tables: a query of a table that does not exist yet reads it as
//! empty and records the table's name on the `TABLE_CREATED` pseudo-index, which every insert
//! touches, so the table's first document invalidates the query.
//!
//! When the committer dies, whoever holds the lease next calls [`Database::promote`]: the
//! follower catches up to the last durable commit, reloads the catalog and starts its own
//! committer, keeping every subscription it serves.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::catalog::{Catalog, TableInfo};
use crate::maintenance::pruned_before;
use crate::persistence::{ChangedDocument, Persistence};
use crate::write_log::{RETENTION, WriteLog, WriteLogEntry, WrittenDocument};
use crate::{Database, DbError, Schema, Timestamp};

/// A follower this close behind the present cannot have missed pruned history: the committer
/// prunes only what was superseded more than `RETENTION` plus a minute before its latest commit.
const SAFE_LAG: std::time::Duration = RETENTION;

impl Database {
    /// Opens a database that another process commits to: it reads at the latest durable commit
    /// and follows later ones through [`Database::follow_to`]. Commits fail with
    /// [`DbError::NotCommitter`] until [`Database::promote`] succeeds.
    ///
    /// ```no_run
    /// # async fn demo(persistence: std::sync::Arc<dyn keel_db::Persistence>) -> Result<(), keel_db::DbError> {
    /// let db = keel_db::Database::open_follower(persistence, keel_db::Schema::new()).await?;
    /// assert!(!db.is_committer());
    /// # Ok(()) }
    /// ```
    pub async fn open_follower(
        persistence: Arc<dyn Persistence>,
        schema: Schema,
    ) -> Result<Database, DbError> {
        schema.check()?;
        let schema = crate::system::with_system_tables(schema);
        let latest = persistence.max_ts().await?.unwrap_or(Timestamp::MIN);
        let mut catalog = Catalog::load(persistence.as_ref()).await?;
        apply_validators(&mut catalog, &schema);
        tracing::debug!(%latest, "database opened as a follower");
        Ok(Database::assemble(persistence, catalog, latest, schema))
    }

    /// Applies every commit up to `until` that this follower has not seen yet and publishes
    /// `until` as its latest timestamp. `until` must be a timestamp the committer reached
    /// (durable); earlier or equal timestamps are no-ops, and so is any call on the committer.
    /// Returns the latest timestamp afterwards.
    pub async fn follow_to(&self, until: Timestamp) -> Result<Timestamp, DbError> {
        let _guard = self.shared.follow.lock().await;
        if self.is_committer() {
            return Ok(self.latest_ts());
        }
        self.apply_until(until).await
    }

    /// Turns a follower into the committer: catches up to the last durable commit, reloads the
    /// catalog and starts committing. The caller must hold the persistence's committer lease
    /// first (see `PostgresPersistence::acquire_lease`), so that no other process commits
    /// after the catch-up. A no-op on the committer.
    pub async fn promote(&self) -> Result<(), DbError> {
        let _guard = self.shared.follow.lock().await;
        if self.is_committer() {
            return Ok(());
        }
        let persistence = &self.shared.persistence;
        let durable = persistence.max_ts().await?.unwrap_or(Timestamp::MIN);
        let latest = self.apply_until(durable).await?;
        self.reload_catalog().await?;
        {
            let mut clock = self.shared.creation_clock.lock();
            *clock = clock.max(latest.as_millis_f64());
        }
        self.start_committer(latest);
        tracing::info!(%latest, "follower promoted to committer");
        Ok(())
    }

    /// Catches up to `until` (the caller holds the follow lock).
    async fn apply_until(&self, until: Timestamp) -> Result<Timestamp, DbError> {
        let latest = self.latest_ts();
        if until <= latest {
            return Ok(latest);
        }
        let changed = self
            .shared
            .persistence
            .revisions_between(latest, until)
            .await?;
        // History older than the pruning horizon may be gone: a revision whose previous one
        // is missing, or a follower far behind, checks whether it was.
        let mut may_have_gaps =
            Timestamp::now().0.saturating_sub(latest.0) > SAFE_LAG.as_nanos() as u64;
        let mut entries: Vec<WriteLogEntry> = Vec::new();
        for change in changed {
            may_have_gaps |= change.previous.is_none() && change.revision.prev_ts.is_some();
            let ts = change.revision.ts;
            let written = self.written_document(change).await?;
            match entries.last_mut() {
                Some(entry) if entry.ts == ts => entry.writes.push(written),
                _ => entries.push(WriteLogEntry {
                    ts,
                    writes: vec![written],
                }),
            }
        }
        let commits = entries.len();
        let gaps =
            may_have_gaps && latest < pruned_before(self.shared.persistence.as_ref()).await?;
        if gaps {
            // Some writes since `latest` left no trace: nothing can tell which reads they
            // touched. Every subscription starts over, and so does the write log.
            tracing::warn!(
                %latest,
                %until,
                "follower fell behind pruned history; invalidating every subscription"
            );
            *self.shared.write_log.write() = WriteLog::new(until);
            self.shared.subscriptions.invalidate_all(until);
        } else {
            let entries: Vec<Arc<WriteLogEntry>> = entries.into_iter().map(Arc::new).collect();
            {
                let mut log = self.shared.write_log.write();
                for entry in &entries {
                    log.append(entry.clone());
                }
            }
            for entry in &entries {
                self.shared.subscriptions.process(entry);
            }
        }
        self.shared.latest.store(until.0, Ordering::Release);
        self.shared.commits.send_replace(until);
        tracing::trace!(%until, commits, "follower caught up");
        Ok(until)
    }

    /// A changed document as the committer logged it: every index key before and after.
    async fn written_document(&self, change: ChangedDocument) -> Result<WrittenDocument, DbError> {
        let id = change.revision.id;
        let known = self.shared.catalog.read().table_of(&id).cloned();
        let table = match known {
            Some(table) => table,
            None => {
                self.reload_catalog().await?;
                self.shared
                    .catalog
                    .read()
                    .table_of(&id)
                    .cloned()
                    .ok_or_else(|| {
                        DbError::Storage(format!(
                            "a commit wrote document {id} of table number {}, which the catalog \
                             does not know",
                            id.table.0
                        ))
                    })?
            }
        };
        let (_, keys) =
            table.index_changes(change.previous.as_ref(), change.revision.document.as_ref());
        Ok(WrittenDocument {
            table: Arc::from(table.name.as_str()),
            id,
            keys,
        })
    }

    /// Replaces the in-memory catalog with the persisted one (tables the committer created).
    async fn reload_catalog(&self) -> Result<(), DbError> {
        let mut catalog = Catalog::load(self.shared.persistence.as_ref()).await?;
        apply_validators(&mut catalog, &self.shared.schema);
        *self.shared.catalog.write() = catalog;
        Ok(())
    }

    /// A table on a follower: the committer creates tables, so an unknown name is looked up in
    /// the persisted catalog and otherwise refused (queries then read the table as empty).
    pub(crate) async fn follower_table(&self, name: &str) -> Result<Arc<TableInfo>, DbError> {
        self.reload_catalog().await?;
        self.shared
            .catalog
            .read()
            .table(name)
            .cloned()
            .ok_or_else(|| {
                DbError::NotCommitter(format!(
                    "table \"{name}\" does not exist yet, and this backend node is a follower: \
                     tables are created by the committer node (declare the table in the schema, \
                     or write to it first)"
                ))
            })
    }
}

/// Puts the schema's document validators on the catalog's tables (the persisted catalog does not
/// carry them), so that a promoted follower validates writes as the committer did.
fn apply_validators(catalog: &mut Catalog, schema: &Schema) {
    let tables: Vec<TableInfo> = catalog.tables.iter().map(|t| (**t).clone()).collect();
    for mut table in tables {
        table.validator = schema
            .table_schema(&table.name)
            .and_then(|t| t.document_validator().cloned());
        catalog.put_table(table);
    }
}

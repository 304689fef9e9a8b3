//! The committer's maintenance: once a minute, deleting receipts past their retention; every ten
//! minutes, pruning history no read can see any more (superseded document revisions and index
//! entries, old tombstones; see `Persistence::prune`). Pruning searches on a reader connection,
//! so commits only wait for the deletes themselves.
//!
//! The pruning horizon trails the latest commit by the write log's retention (the oldest
//! snapshot `Database::begin_at` accepts) plus a minute for transactions still running, so no
//! read ever misses a revision it could see.

use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::write_log::RETENTION;
use crate::{Database, DbError, RECEIPT_RETENTION, Timestamp};

/// How often the maintenance runs.
const INTERVAL: Duration = Duration::from_secs(60);
/// History is pruned every this many runs (its search reads whole tables).
const PRUNE_EVERY: u32 = 10;
/// How far behind the latest commit history is pruned.
const HISTORY_HORIZON: Duration = RETENTION.saturating_add(Duration::from_secs(60));
/// Rows of each kind deleted per pruning step (one persistence write each).
const PRUNE_BATCH: usize = 2_000;
/// Most pruning steps per run (the rest waits for the next run).
const MAX_PRUNE_STEPS: usize = 100;

/// The global holding the latest pruning horizon (big-endian nanoseconds).
const PRUNED_BEFORE_KEY: &str = "pruned_before";

/// History superseded before this timestamp may have been deleted ([`Timestamp::MIN`] when
/// nothing was ever pruned).
pub(crate) async fn pruned_before(
    persistence: &dyn crate::Persistence,
) -> Result<Timestamp, DbError> {
    let stored = persistence.global(PRUNED_BEFORE_KEY).await?;
    Ok(stored
        .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_slice()).ok())
        .map_or(Timestamp::MIN, |b| Timestamp(u64::from_be_bytes(b))))
}

impl Database {
    /// Deletes history older than `older_than` before the latest commit that no read at or after
    /// that point can see; returns how many rows went. Reads at snapshots older than that may
    /// miss documents afterwards: the committer runs this with the retention window plus a
    /// minute, which [`Database::begin_at`] never reaches back past.
    pub async fn prune_history(&self, older_than: Duration) -> Result<usize, DbError> {
        let latest = self.latest_ts();
        let horizon = Timestamp(latest.0.saturating_sub(older_than.as_nanos() as u64));
        // Recorded before anything is deleted: a follower that read revisions older than this
        // checks it afterwards and knows its view may have gaps (see `replica`).
        if pruned_before(self.shared.persistence.as_ref()).await? < horizon {
            self.shared
                .persistence
                .set_global(PRUNED_BEFORE_KEY, horizon.0.to_be_bytes().to_vec())
                .await?;
        }
        let mut deleted = 0;
        for _ in 0..MAX_PRUNE_STEPS {
            let step = self.shared.persistence.prune(horizon, PRUNE_BATCH).await?;
            deleted += step;
            if step == 0 {
                break;
            }
        }
        Ok(deleted)
    }

    /// Starts the maintenance for as long as this database is open and not shut down.
    pub(crate) fn spawn_maintenance(&self) {
        let shared: Weak<_> = Arc::downgrade(&self.shared);
        let committer = Arc::downgrade(&self.committer);
        let tasks = self.shared.tasks.clone();
        self.shared.tasks.spawn("maintenance", async move {
            let mut tick = tokio::time::interval(INTERVAL);
            tick.tick().await;
            for run in 1u32.. {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = tasks.stopping() => return,
                }
                let (Some(shared), Some(committer)) = (shared.upgrade(), committer.upgrade())
                else {
                    return;
                };
                let db = Database { shared, committer };
                // A shutdown does not wait for a whole run: the deletes are redone next time.
                tokio::select! {
                    () = db.maintain(run) => {}
                    () = tasks.stopping() => return,
                }
            }
        });
    }

    /// One maintenance run (the `run`th): old receipts, and every [`PRUNE_EVERY`] runs old
    /// history.
    async fn maintain(&self, run: u32) {
        match self.collect_receipts(RECEIPT_RETENTION).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(deleted = n, "collected old receipts"),
            Err(e) => tracing::warn!(error = %e, "cannot delete old receipts"),
        }
        if !run.is_multiple_of(PRUNE_EVERY) {
            return;
        }
        match self.prune_history(HISTORY_HORIZON).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(deleted = n, "pruned old history"),
            Err(e) => tracing::warn!(error = %e, "cannot prune old history"),
        }
    }
}

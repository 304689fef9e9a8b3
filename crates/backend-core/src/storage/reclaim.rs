//! Reclaiming storage: the bytes of deleted files and of uploads that never completed, and
//! upload tokens that expired. The committer (or the only node) runs
//! [`Backend::reclaim_storage`] every minute.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use keel_db::blobs::BlobKey;
use keel_db::{IndexRange, STORAGE_TABLE, UPLOAD_TOKENS_TABLE};
use keel_values::Value;

use super::StoredFile;
use crate::backend::Backend;
use crate::error::FunctionError;

/// Documents read or deleted per transaction.
const BATCH: usize = 1_000;
/// How often the committer reclaims.
pub(crate) const RECLAIM_INTERVAL: Duration = Duration::from_secs(60);

/// What one [`Backend::reclaim_storage`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReclaimReport {
    /// Blobs deleted (no `_storage` document referred to them).
    pub blobs: usize,
    /// Expired upload tokens deleted.
    pub tokens: usize,
}

impl Backend {
    /// Deletes the blobs older than `grace` that no stored file refers to (deleted files,
    /// uploads that broke off or were refused) and the upload tokens that expired. A blob
    /// younger than `grace` is kept: an upload writes its bytes before the mutation recording
    /// the file commits. Run it on the committer (it writes).
    pub async fn reclaim_storage(&self, grace: Duration) -> Result<ReclaimReport, FunctionError> {
        let mut report = ReclaimReport::default();
        let blobs = self.blobs()?.clone();
        let cutoff = SystemTime::now()
            .checked_sub(grace)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let old = blobs
            .written_before(cutoff)
            .await
            .map_err(FunctionError::internal)?;
        if !old.is_empty() {
            let referenced = self.referenced_blobs().await?;
            for key in old.iter().filter(|key| !referenced.contains(*key)) {
                blobs.delete(key).await.map_err(FunctionError::internal)?;
                report.blobs += 1;
            }
        }
        report.tokens = self.delete_expired_tokens().await?;
        if report != ReclaimReport::default() {
            tracing::info!(
                blobs = report.blobs,
                tokens = report.tokens,
                "reclaimed storage"
            );
        }
        Ok(report)
    }

    /// The blobs the stored files refer to, at the latest commit.
    async fn referenced_blobs(&self) -> Result<HashSet<BlobKey>, FunctionError> {
        let mut keys = HashSet::new();
        let mut after = f64::NEG_INFINITY;
        loop {
            let mut tx = self.inner.db.begin();
            let docs = tx
                .system_query(STORAGE_TABLE)
                .with_index("by_creation_time", |r: IndexRange| {
                    r.gt("_creationTime", after)
                })
                .take(BATCH)
                .await?;
            keys.extend(
                docs.iter()
                    .filter_map(StoredFile::from_document)
                    .map(|file| file.key),
            );
            match docs.last() {
                Some(last) if docs.len() == BATCH => after = last.creation_time,
                _ => return Ok(keys),
            }
        }
    }

    async fn delete_expired_tokens(&self) -> Result<usize, FunctionError> {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64()
            * 1e3;
        // Tokens are created with the same lifetime, so none created after this has expired.
        let ttl = self.inner.config.storage.upload_url_ttl.as_secs_f64() * 1e3;
        let mut deleted = 0;
        loop {
            let mut tx = self.inner.db.begin();
            let docs = tx
                .system_query(UPLOAD_TOKENS_TABLE)
                .with_index("by_creation_time", |r: IndexRange| {
                    r.lte("_creationTime", now - ttl + 1.0)
                })
                .take(BATCH)
                .await?;
            let mut expired = 0;
            for doc in &docs {
                let expires = doc.fields.get("expiresAt").and_then(Value::as_f64);
                if expires.is_none_or(|at| at <= now) {
                    tx.system_delete(doc.id).await?;
                    expired += 1;
                }
            }
            if expired > 0 {
                self.inner.db.commit(tx).await?;
            }
            deleted += expired;
            if docs.len() < BATCH || expired == 0 {
                return Ok(deleted);
            }
        }
    }

    /// Starts the minute job reclaiming storage (on the committer or the only node), if this
    /// backend has file storage; it stops with the backend's tasks.
    pub(crate) fn start_reclaiming(&self) {
        if self.inner.config.storage.blobs.is_none()
            || tokio::runtime::Handle::try_current().is_err()
        {
            return;
        }
        // A weak reference: the job must not keep a dropped backend (and its database) alive.
        let weak = std::sync::Arc::downgrade(&self.inner);
        let tasks = self.tasks().clone();
        let grace = self.inner.config.storage.reclaim_grace;
        self.tasks().spawn("storage-reclaim", async move {
            loop {
                tokio::select! {
                    () = tasks.stopping() => return,
                    () = tokio::time::sleep(RECLAIM_INTERVAL) => {}
                }
                let Some(inner) = weak.upgrade() else { return };
                let backend = Backend { inner };
                let committer = backend.cluster().is_none_or(|c| c.is_committer());
                if committer && let Err(error) = backend.reclaim_storage(grace).await {
                    tracing::warn!(%error, "reclaiming storage failed; trying again in a minute");
                }
            }
        });
    }
}

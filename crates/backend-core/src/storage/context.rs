//! What functions see of the storage: [`StorageReader`] (`ctx.storage()` in queries),
//! [`StorageWriter`] (in mutations) and [`StorageActions`] (in actions).
//!
//! Queries and mutations read `_storage` in their transaction, so a query's `get_url` is
//! reactive like any read; a mutation's `generate_upload_url` and `delete` commit or roll back
//! with it. Actions store and read files outside any transaction.

use bytes::Bytes;
use futures::StreamExt;
use keel_db::STORAGE_TABLE;
use keel_db::blobs::ByteStream;

use super::system_functions::storage_id;
use super::upload::{UploadError, issue_token};
use super::{FileMetadata, StoredFile};
use crate::backend::Backend;
use crate::context::{ActionCtx, MutationCtx, QueryCtx};
use crate::error::FunctionError;
use crate::transaction::TxAccess;

/// The storage as a query sees it: file URLs and metadata, read in its transaction.
#[derive(Clone)]
pub struct StorageReader {
    tx: TxAccess,
    backend: Backend,
}

impl StorageReader {
    /// The file `id`, if stored.
    async fn file(&self, id: &str) -> Result<Option<StoredFile>, FunctionError> {
        let id = storage_id(id)?;
        let doc = self
            .tx
            .with(async move |tx| tx.system_get_in(STORAGE_TABLE, id).await)
            .await?;
        Ok(doc.as_ref().and_then(StoredFile::from_document))
    }

    /// The URL the file `id` is served at, or `None` if there is no such file (Convex's
    /// `ctx.storage.getUrl`). Fails with `InvalidStorageId` for a string that is no id.
    ///
    /// ```
    /// # use keel_backend_core::{FunctionError, QueryCtx};
    /// async fn image(ctx: QueryCtx, id: String) -> Result<Option<String>, FunctionError> {
    ///     ctx.storage().get_url(&id).await
    /// }
    /// ```
    pub async fn get_url(&self, id: &str) -> Result<Option<String>, FunctionError> {
        Ok(self
            .file(id)
            .await?
            .map(|file| self.backend.file_url(&file.metadata.id)))
    }

    /// The file's metadata (its `_storage` document), or `None`.
    pub async fn get_metadata(&self, id: &str) -> Result<Option<FileMetadata>, FunctionError> {
        Ok(self.file(id).await?.map(|file| file.metadata))
    }
}

/// The storage as a mutation sees it: a reader, and upload URLs and deletes that commit with
/// the mutation.
#[derive(Clone)]
pub struct StorageWriter {
    reader: StorageReader,
}

impl std::ops::Deref for StorageWriter {
    type Target = StorageReader;

    fn deref(&self) -> &StorageReader {
        &self.reader
    }
}

impl StorageWriter {
    /// A short-lived, single-use URL to `POST` a file's bytes to, answered with
    /// `{"storageId": …}` (Convex's `ctx.storage.generateUploadUrl`). It is valid once this
    /// mutation commits, for the configured time (an hour by default).
    pub async fn generate_upload_url(&self) -> Result<String, FunctionError> {
        self.reader.backend.blobs()?;
        let ttl = self.reader.backend.config().storage.upload_url_ttl;
        let token = self
            .reader
            .tx
            .with(async move |tx| issue_token(tx, ttl).await)
            .await?;
        Ok(format!(
            "{}/api/storage/upload?token={token}",
            self.reader
                .backend
                .config()
                .storage
                .origin
                .trim_end_matches('/')
        ))
    }

    /// Deletes the file `id` (its bytes are reclaimed later). Fails with `StorageIdNotFound`
    /// if there is no such file, as in Convex.
    pub async fn delete(&self, id: &str) -> Result<(), FunctionError> {
        let doc_id = storage_id(id)?;
        let found = self
            .reader
            .tx
            .with(async move |tx| {
                if tx.system_get_in(STORAGE_TABLE, doc_id).await?.is_none() {
                    return Ok(false);
                }
                tx.system_delete(doc_id).await?;
                Ok(true)
            })
            .await?;
        if !found {
            let shown: String = id.chars().take(64).collect();
            return Err(FunctionError::uncaught(format!(
                "StorageIdNotFound: storage id {shown} not found"
            )));
        }
        Ok(())
    }

    /// Every stored file, oldest first (for a job that removes unreferenced files; bounded by
    /// the transaction's read limits).
    pub async fn list(&self) -> Result<Vec<FileMetadata>, FunctionError> {
        let docs = self
            .reader
            .tx
            .with(async move |tx| tx.system_query(STORAGE_TABLE).collect().await)
            .await?;
        Ok(docs
            .iter()
            .filter_map(StoredFile::from_document)
            .map(|file| file.metadata)
            .collect())
    }
}

impl QueryCtx {
    /// The file storage (URLs and metadata of stored files).
    pub fn storage(&self) -> StorageReader {
        StorageReader {
            tx: self.db().tx().clone(),
            backend: self.calls.backend().clone(),
        }
    }
}

impl MutationCtx {
    /// The file storage: URLs, metadata, upload URLs, deletes.
    pub fn storage(&self) -> StorageWriter {
        StorageWriter {
            reader: StorageReader {
                tx: self.tx().clone(),
                backend: self.calls.backend().clone(),
            },
        }
    }
}

/// The storage as an action sees it: storing and reading files' bytes, each call on its own.
#[derive(Clone)]
pub struct StorageActions {
    backend: Backend,
}

impl ActionCtx {
    /// The file storage: store and read files, URLs, deletes.
    pub fn storage(&self) -> StorageActions {
        StorageActions {
            backend: self.calls.backend().clone(),
        }
    }
}

impl StorageActions {
    /// Stores `bytes` as a new file with `content_type`; returns its storage id (Convex's
    /// `ctx.storage.store(blob)`).
    pub async fn store(
        &self,
        bytes: Bytes,
        content_type: Option<&str>,
    ) -> Result<String, FunctionError> {
        self.store_stream(futures::stream::iter([Ok(bytes)]).boxed(), content_type)
            .await
    }

    /// Stores what `chunks` yields as a new file (never held whole in memory).
    pub async fn store_stream(
        &self,
        chunks: ByteStream,
        content_type: Option<&str>,
    ) -> Result<String, FunctionError> {
        let blob = self.backend.store_blob(chunks).await.map_err(|e| match e {
            UploadError::Failed(error) => error,
            other => FunctionError::uncaught(other.to_string()),
        })?;
        let recorded = self
            .backend
            .system_mutation::<String>(
                "_system/storage:insert",
                serde_json::json!({
                    "storageKey": blob.key.as_str(),
                    "size": blob.size as f64,
                    "sha256": blob.sha256,
                    "contentType": content_type,
                }),
            )
            .await;
        if recorded.is_err()
            && let Ok(blobs) = self.backend.blobs()
        {
            let _ = blobs.delete(&blob.key).await;
        }
        recorded
    }

    /// The file's bytes as a stream, or `None` if there is no such file (Convex's
    /// `ctx.storage.get`).
    pub async fn get(&self, id: &str) -> Result<Option<ByteStream>, FunctionError> {
        storage_id(id)?;
        let Some(file) = self.backend.stored_file(id).await? else {
            return Ok(None);
        };
        self.backend.read_file(&file, None).await
    }

    /// The file's metadata, or `None`.
    pub async fn get_metadata(&self, id: &str) -> Result<Option<FileMetadata>, FunctionError> {
        storage_id(id)?;
        Ok(self.backend.stored_file(id).await?.map(|f| f.metadata))
    }

    /// The URL the file is served at, or `None`.
    pub async fn get_url(&self, id: &str) -> Result<Option<String>, FunctionError> {
        Ok(self
            .get_metadata(id)
            .await?
            .map(|m| self.backend.file_url(&m.id)))
    }

    /// Deletes the file (`StorageIdNotFound` if there is none).
    pub async fn delete(&self, id: &str) -> Result<(), FunctionError> {
        self.backend
            .system_mutation::<keel_values::Value>(
                "_system/storage:delete",
                serde_json::json!({ "id": id }),
            )
            .await
            .map(drop)
    }

    /// An upload URL, as [`StorageWriter::generate_upload_url`].
    pub async fn generate_upload_url(&self) -> Result<String, FunctionError> {
        self.backend
            .system_mutation("_system/storage:generateUploadUrl", serde_json::json!({}))
            .await
    }
}

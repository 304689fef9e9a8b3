//! File storage (Convex's `ctx.storage`): files uploaded to a short-lived, single-use URL or
//! stored by an action, described by documents of the `_storage` system table (`size`,
//! `sha256` in base64, `contentType`) whose ids are the storage ids, their bytes in a
//! [`BlobStore`] (a directory under the data directory, or PostgreSQL so that every node of a
//! cluster serves every file).
//!
//! | Convex | Keel |
//! |---|---|
//! | `ctx.storage.generateUploadUrl()` (mutations, actions) | [`StorageWriter::generate_upload_url`], [`StorageActions::generate_upload_url`] |
//! | `POST <upload URL>` → `{"storageId"}` | [`Backend::upload`] (served as `POST /api/storage/upload?token=…`) |
//! | `ctx.storage.getUrl(id)` | [`StorageReader::get_url`] (`<origin>/api/storage/<id>`, served with its content type and range requests) |
//! | `ctx.db.system.get(id)` / `getMetadata` | [`StorageReader::get_metadata`] |
//! | `ctx.storage.delete(id)` | [`StorageWriter::delete`], [`StorageActions::delete`] |
//! | `ctx.storage.store(blob)` / `get(id)` (actions) | [`StorageActions::store`], [`StorageActions::get`] |
//!
//! An upload URL is a token `<_upload_tokens id>.<secret>` valid for
//! [`StorageConfig::upload_url_ttl`] (an hour, as Convex's); the mutation that records the
//! uploaded file deletes the token's document in the same transaction, so a URL stores at most
//! one file, on whichever node it is used. The bytes are streamed into the blob store (hashed
//! and counted on the way, refused past [`StorageConfig::max_file_bytes`]) before that mutation
//! runs; a refused or failed upload deletes what it wrote. Writes of the storage (recording an
//! upload, an action's `store` and `delete`) are internal mutations of the backend itself
//! (`_system/storage:*`), so a follower node forwards them to the committer like any other.
//!
//! A deleted file's bytes, and those of uploads that never completed, are reclaimed by
//! [`Backend::reclaim_storage`]: every minute the committer deletes the blobs no `_storage`
//! document refers to once they are older than [`StorageConfig::reclaim_grace`], and the upload
//! tokens that expired.

mod context;
mod reclaim;
mod system_functions;
mod upload;

use std::sync::Arc;
use std::time::Duration;

use keel_db::blobs::{BlobKey, BlobStore};
use keel_db::{Document, STORAGE_TABLE};
use keel_values::{DocumentId, Value};
use serde::Serialize;

use crate::backend::Backend;
use crate::error::FunctionError;

pub use context::{StorageActions, StorageReader, StorageWriter};
pub use reclaim::ReclaimReport;
pub(crate) use system_functions::register;
pub use upload::{UploadError, UploadRequest};

/// Where stored files' bytes live (see [`keel_db::blobs`]).
#[derive(Clone)]
pub struct BlobStorage(pub Arc<dyn BlobStore>);

impl std::fmt::Debug for BlobStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlobStorage")
    }
}

/// How file storage works; part of [`BackendConfig`](crate::BackendConfig).
#[derive(Clone, Debug)]
pub struct StorageConfig {
    /// Where files' bytes are kept; `None`: file storage is off (its calls fail with
    /// `StorageNotConfigured`). `keel` sets a directory under the data directory, or the
    /// PostgreSQL database.
    pub blobs: Option<BlobStorage>,
    /// The backend's URL as clients reach it (`http://127.0.0.1:3210`): upload URLs and file
    /// URLs start with it.
    pub origin: String,
    /// How long an upload URL may be used (default one hour, as in Convex).
    pub upload_url_ttl: Duration,
    /// Largest file an upload or an action may store (default 1 GiB).
    pub max_file_bytes: u64,
    /// How old an unreferenced blob must be before it is reclaimed (default 10 minutes): an
    /// upload writes its bytes before the mutation that refers to them commits.
    pub reclaim_grace: Duration,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            blobs: None,
            origin: "http://127.0.0.1:3210".to_owned(),
            upload_url_ttl: Duration::from_secs(3600),
            max_file_bytes: 1 << 30,
            reclaim_grace: Duration::from_secs(600),
        }
    }
}

/// A stored file as its `_storage` document describes it (what `getMetadata` returns).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileMetadata {
    /// The storage id (the document's id).
    #[serde(rename = "_id")]
    pub id: String,
    /// When it was stored (milliseconds since the epoch).
    #[serde(rename = "_creationTime")]
    pub creation_time: f64,
    /// Its size in bytes.
    pub size: u64,
    /// The SHA-256 of its bytes, in base64.
    pub sha256: String,
    /// The content type it was uploaded or stored with.
    pub content_type: Option<String>,
}

/// A stored file: its metadata and where its bytes are.
#[derive(Clone, Debug)]
pub struct StoredFile {
    /// What `_storage` says of it.
    pub metadata: FileMetadata,
    pub(crate) key: BlobKey,
}

/// Field of a `_storage` document naming the blob (not part of Convex's fields).
pub(crate) const KEY_FIELD: &str = "storageKey";

impl StoredFile {
    /// The file a `_storage` document describes.
    pub(crate) fn from_document(doc: &Document) -> Option<StoredFile> {
        let key = BlobKey::parse(doc.fields.get(KEY_FIELD)?.as_str()?)?;
        let size = match doc.fields.get("size")? {
            Value::Int64(n) => u64::try_from(*n).ok()?,
            Value::Float64(n) => *n as u64,
            _ => return None,
        };
        Some(StoredFile {
            metadata: FileMetadata {
                id: doc.id.to_string(),
                creation_time: doc.creation_time,
                size,
                sha256: doc.fields.get("sha256")?.as_str()?.to_owned(),
                content_type: doc
                    .fields
                    .get("contentType")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            },
            key,
        })
    }
}

/// Parses a storage id; `None` for anything that is not a document id.
pub(crate) fn parse_storage_id(id: &str) -> Option<DocumentId> {
    id.parse().ok()
}

/// The error of a call naming a storage id that is not one.
pub(crate) fn invalid_storage_id(id: &str) -> FunctionError {
    let shown: String = id.chars().take(64).collect();
    FunctionError::uncaught(format!(
        "InvalidStorageId: \"{shown}\" is not a storage id (an Id<\"_storage\">)"
    ))
}

impl Backend {
    /// The blob store, or the error of a backend without file storage.
    pub(crate) fn blobs(&self) -> Result<&Arc<dyn BlobStore>, FunctionError> {
        self.inner
            .config
            .storage
            .blobs
            .as_ref()
            .map(|b| &b.0)
            .ok_or_else(|| {
                FunctionError::uncaught(
                    "StorageNotConfigured: this backend has no file storage".to_owned(),
                )
            })
    }

    /// The URL a stored file is served at: `<origin>/api/storage/<storage id>`.
    pub fn file_url(&self, id: &str) -> String {
        format!(
            "{}/api/storage/{id}",
            self.inner.config.storage.origin.trim_end_matches('/')
        )
    }

    /// The stored file `id` at the latest commit, or `None` (no such file, or not a storage
    /// id): what a transport serving `/api/storage/<id>` looks up.
    pub async fn stored_file(&self, id: &str) -> Result<Option<StoredFile>, FunctionError> {
        let Some(id) = parse_storage_id(id) else {
            return Ok(None);
        };
        let mut tx = self.inner.db.begin();
        let doc = tx.system_get_in(STORAGE_TABLE, id).await?;
        Ok(doc.as_ref().and_then(StoredFile::from_document))
    }

    /// The bytes of `file` (those in `range`, clipped to its size, if given); `None` if they
    /// are gone (the file was deleted meanwhile).
    pub async fn read_file(
        &self,
        file: &StoredFile,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<Option<keel_db::blobs::ByteStream>, FunctionError> {
        self.blobs()?
            .get(&file.key, range)
            .await
            .map_err(FunctionError::internal)
    }
}

//! The bytes of stored files, apart from the documents that describe them (the `_storage`
//! system table). A [`BlobStore`] keeps each blob under a [`BlobKey`] and streams it in and out
//! in chunks, so no file is ever held whole in memory.
//!
//! Two stores: [`LocalBlobStore`] (files in a directory, by default under the data directory;
//! each written to a temporary file and renamed into place once complete, so a reader never sees
//! half a file) and the PostgreSQL store (`PostgresPersistence::blob_store`: chunks in a table,
//! so that every backend node on the database serves every file).
//!
//! Blobs are written before the document that refers to them commits, and a deleted document
//! leaves its blob behind; the backend reclaims blobs no document refers to once they are older
//! than a grace period ([`BlobStore::written_before`]).
//!
//! ```
//! # async fn demo() -> Result<(), keel_db::blobs::BlobError> {
//! use futures::StreamExt;
//! use keel_db::blobs::{BlobKey, BlobStore, LocalBlobStore};
//! let dir = tempfile::tempdir().unwrap();
//! let store = LocalBlobStore::new(dir.path());
//! let key = BlobKey::generate();
//! let chunks = futures::stream::iter([Ok(bytes::Bytes::from_static(b"hello"))]).boxed();
//! assert_eq!(store.put(&key, chunks).await?, 5);
//! let mut read = store.get(&key, Some(1..4)).await?.expect("stored");
//! assert_eq!(&read.next().await.unwrap()?[..], b"ell");
//! # Ok(()) }
//! ```

mod local;

use std::ops::Range;
use std::time::SystemTime;

use bytes::Bytes;
use futures::stream::BoxStream;

pub use local::LocalBlobStore;

/// A stream of byte chunks, in or out of a store.
pub type ByteStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// Where a blob is kept: 32 lowercase hexadecimal digits (128 random bits), so that it is safe
/// as a file name and unguessable.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobKey(String);

impl BlobKey {
    /// A new random key.
    pub fn generate() -> BlobKey {
        BlobKey(format!("{:032x}", rand::random::<u128>()))
    }

    /// `text` as a key, if it is one (32 lowercase hex digits).
    pub fn parse(text: &str) -> Option<BlobKey> {
        (text.len() == 32 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| BlobKey(text.to_owned()))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for BlobKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A blob store failed (I/O, the database, or the stream that was being stored).
#[derive(Debug, thiserror::Error)]
#[error("blob storage: {0}")]
pub struct BlobError(pub String);

impl From<std::io::Error> for BlobError {
    fn from(error: std::io::Error) -> BlobError {
        BlobError(error.to_string())
    }
}

/// Keeps blobs.
#[async_trait::async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Stores what `chunks` yields under `key` and returns its size. If the stream fails (the
    /// upload broke off, or was too large), nothing is kept and the stream's error is returned.
    async fn put(&self, key: &BlobKey, chunks: ByteStream) -> Result<u64, BlobError>;

    /// The blob's bytes (those in `range` if given, clipped to its size), or `None` if there is
    /// no such blob.
    async fn get(
        &self,
        key: &BlobKey,
        range: Option<Range<u64>>,
    ) -> Result<Option<ByteStream>, BlobError>;

    /// Deletes the blob (nothing happens if there is none).
    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError>;

    /// The keys of blobs — complete ones, and the leftovers of writes that never finished —
    /// last written before `before`.
    async fn written_before(&self, before: SystemTime) -> Result<Vec<BlobKey>, BlobError>;
}

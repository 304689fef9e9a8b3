//! [`PostgresBlobStore`]: blobs as chunks in PostgreSQL, so that every backend node on the
//! database serves every file.
//!
//! Tables (migration 3): `keel_blobs(key, complete, size, updated_at)`, one row per blob, and
//! `keel_blob_chunks(key, n, data)`, the blob's bytes in [`CHUNK`]-sized pieces (the last one
//! shorter). A blob is written chunk by chunk as its stream yields them, in one transaction on a
//! connection of its own: nothing of it is visible (to readers or to reclaiming) until it is
//! complete, a broken-off upload leaves nothing behind, and the server syncs its log once per
//! blob rather than once per chunk. A range is read from the chunks that hold it, one chunk per
//! query, a few chunks ahead of the reader, so a large file never sits whole in memory.
//! Connections: a few for reads, used in turn (tokio-postgres pipelines concurrent statements
//! on one connection), and a few for writes, each held by one upload at a time; opened on first
//! use, re-opened when one closed.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use tokio_postgres::Client;

use super::connection::Target;
use crate::blobs::{BlobError, BlobKey, BlobStore, ByteStream};

/// Bytes per stored chunk.
pub(crate) const CHUNK: usize = 512 * 1024;
/// Connections the store reads with, in turn.
const CONNECTIONS: usize = 4;
/// Connections the store writes with, each held by one upload.
const WRITERS: usize = 4;
/// Chunks a download reads ahead of what it has sent.
const PREFETCH: usize = 4;

/// Blobs in the PostgreSQL schema of a [`PostgresPersistence`](super::PostgresPersistence);
/// see [`PostgresPersistence::blob_store`](super::PostgresPersistence::blob_store).
#[derive(Clone)]
pub struct PostgresBlobStore {
    inner: Arc<Inner>,
}

struct Inner {
    target: Target,
    /// The quoted schema name.
    schema: String,
    slots: Vec<tokio::sync::Mutex<Option<Arc<Client>>>>,
    next: AtomicUsize,
    writers: Vec<tokio::sync::Mutex<Option<Client>>>,
    next_writer: AtomicUsize,
}

fn db_error(error: tokio_postgres::Error) -> BlobError {
    BlobError(super::connection::storage_err(error).to_string())
}

impl PostgresBlobStore {
    pub(crate) fn new(target: Target, schema: &str) -> PostgresBlobStore {
        PostgresBlobStore {
            inner: Arc::new(Inner {
                target,
                schema: format!("\"{schema}\""),
                slots: (0..CONNECTIONS)
                    .map(|_| tokio::sync::Mutex::new(None))
                    .collect(),
                next: AtomicUsize::new(0),
                writers: (0..WRITERS)
                    .map(|_| tokio::sync::Mutex::new(None))
                    .collect(),
                next_writer: AtomicUsize::new(0),
            }),
        }
    }

    /// A connection, opened (again) if needed.
    async fn client(&self) -> Result<Arc<Client>, BlobError> {
        let n = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let mut slot = self.inner.slots[n % CONNECTIONS].lock().await;
        if let Some(client) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(client.clone());
        }
        let client = Arc::new(
            self.inner
                .target
                .connect()
                .await
                .map_err(|e| BlobError(e.to_string()))?,
        );
        *slot = Some(client.clone());
        Ok(client)
    }

    fn sql(&self, text: &str) -> String {
        text.replace("{s}", &self.inner.schema)
    }

    /// A write connection for this upload alone: a free one if there is, else the next in
    /// turn once its upload is done; opened (again) if needed.
    async fn writer(&self) -> Result<tokio::sync::MutexGuard<'_, Option<Client>>, BlobError> {
        let free = self
            .inner
            .writers
            .iter()
            .find_map(|slot| slot.try_lock().ok());
        let mut slot = match free {
            Some(slot) => slot,
            None => {
                let n = self.inner.next_writer.fetch_add(1, Ordering::Relaxed);
                self.inner.writers[n % WRITERS].lock().await
            }
        };
        if slot.as_ref().is_none_or(Client::is_closed) {
            let client = self
                .inner
                .target
                .connect()
                .await
                .map_err(|e| BlobError(e.to_string()))?;
            *slot = Some(client);
        }
        Ok(slot)
    }

    /// Writes the blob in one transaction: it commits complete or not at all.
    async fn write(
        &self,
        client: &mut Client,
        key: &BlobKey,
        mut chunks: ByteStream,
    ) -> Result<u64, BlobError> {
        let tx = client.transaction().await.map_err(db_error)?;
        tx.execute(
            &self.sql("INSERT INTO {s}.keel_blobs (key) VALUES ($1)"),
            &[&key.as_str()],
        )
        .await
        .map_err(db_error)?;
        let insert = tx
            .prepare(
                &self.sql("INSERT INTO {s}.keel_blob_chunks (key, n, data) VALUES ($1, $2, $3)"),
            )
            .await
            .map_err(db_error)?;
        let mut buffer = BytesMut::new();
        let mut n: i32 = 0;
        let mut size = 0u64;
        loop {
            let next = chunks.next().await.transpose()?;
            if let Some(chunk) = &next {
                size += chunk.len() as u64;
                buffer.extend_from_slice(chunk);
            }
            while buffer.len() >= CHUNK || (next.is_none() && !buffer.is_empty()) {
                let piece = buffer.split_to(buffer.len().min(CHUNK));
                tx.execute(&insert, &[&key.as_str(), &n, &&piece[..]])
                    .await
                    .map_err(db_error)?;
                n += 1;
            }
            if next.is_none() {
                break;
            }
        }
        let size_sql = i64::try_from(size).map_err(|_| BlobError("blob too large".into()))?;
        tx.execute(
            &self.sql(
                "UPDATE {s}.keel_blobs SET complete = true, size = $2, updated_at = now()
                 WHERE key = $1",
            ),
            &[&key.as_str(), &size_sql],
        )
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(size)
    }
}

#[async_trait::async_trait]
impl BlobStore for PostgresBlobStore {
    async fn put(&self, key: &BlobKey, chunks: ByteStream) -> Result<u64, BlobError> {
        let mut slot = self.writer().await?;
        let client = slot
            .as_mut()
            .ok_or_else(|| BlobError("no connection".to_owned()))?;
        // On an error the transaction is rolled back as it is dropped: nothing is kept.
        self.write(client, key, chunks).await
    }

    async fn get(
        &self,
        key: &BlobKey,
        range: Option<Range<u64>>,
    ) -> Result<Option<ByteStream>, BlobError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &self.sql("SELECT size FROM {s}.keel_blobs WHERE key = $1 AND complete"),
                &[&key.as_str()],
            )
            .await
            .map_err(db_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let size = u64::try_from(row.get::<_, i64>(0)).unwrap_or(0);
        let range = range.unwrap_or(0..size);
        let (start, end) = (range.start.min(size), range.end.min(size));
        let select = client
            .prepare(&self.sql("SELECT data FROM {s}.keel_blob_chunks WHERE key = $1 AND n = $2"))
            .await
            .map_err(db_error)?;
        let key = key.clone();
        let chunk = CHUNK as u64;
        // The pieces of the chunks that hold the range, fetched a few ahead of the reader
        // (pipelined on one connection): at most `PREFETCH` chunks sit in memory.
        let first = start / chunk;
        let last = if end > start {
            (end - 1) / chunk
        } else {
            first
        };
        let pieces = (first..=last).filter(move |_| end > start).map(move |n| {
            let from = if n == first { start - n * chunk } else { 0 };
            let to = if n == last { end - n * chunk } else { chunk };
            (n, from as usize, to as usize)
        });
        let chunks = futures::stream::iter(pieces)
            .map(move |(n, from, to)| {
                let (client, select, key) = (client.clone(), select.clone(), key.clone());
                async move {
                    let n = i32::try_from(n).map_err(std::io::Error::other)?;
                    let row = client
                        .query_opt(&select, &[&key.as_str(), &n])
                        .await
                        .map_err(std::io::Error::other)?
                        .ok_or_else(|| std::io::Error::other("a chunk of the blob is missing"))?;
                    let data: &[u8] = row.get(0);
                    if to > data.len() || from >= to {
                        return Err(std::io::Error::other("a chunk of the blob is short"));
                    }
                    Ok(Bytes::copy_from_slice(&data[from..to]))
                }
            })
            .buffered(PREFETCH);
        Ok(Some(chunks.boxed()))
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        let client = self.client().await?;
        client
            .execute(
                &self.sql("DELETE FROM {s}.keel_blob_chunks WHERE key = $1"),
                &[&key.as_str()],
            )
            .await
            .map_err(db_error)?;
        client
            .execute(
                &self.sql("DELETE FROM {s}.keel_blobs WHERE key = $1"),
                &[&key.as_str()],
            )
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn written_before(&self, before: SystemTime) -> Result<Vec<BlobKey>, BlobError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &self.sql("SELECT key FROM {s}.keel_blobs WHERE updated_at < $1"),
                &[&before],
            )
            .await
            .map_err(db_error)?;
        Ok(rows
            .iter()
            .filter_map(|row| BlobKey::parse(row.get(0)))
            .collect())
    }
}

//! [`LocalBlobStore`]: blobs as files in a directory, `<dir>/<first two digits>/<key>`, each
//! written to `<dir>/tmp/<key>` first and renamed into place once complete and synced.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::{BlobError, BlobKey, BlobStore, ByteStream};

/// Bytes read from a file at a time.
const READ_CHUNK: usize = 256 * 1024;

/// Blobs as files under one directory (created when the first blob is written).
#[derive(Clone, Debug)]
pub struct LocalBlobStore {
    dir: PathBuf,
}

impl LocalBlobStore {
    /// A store in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> LocalBlobStore {
        LocalBlobStore { dir: dir.into() }
    }

    fn path(&self, key: &BlobKey) -> PathBuf {
        self.dir.join(&key.as_str()[..2]).join(key.as_str())
    }

    fn temp_path(&self, key: &BlobKey) -> PathBuf {
        self.dir.join("tmp").join(key.as_str())
    }

    async fn write(path: &Path, mut chunks: ByteStream) -> Result<u64, BlobError> {
        let mut file = tokio::fs::File::create(path).await?;
        let mut size = 0u64;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            file.write_all(&chunk).await?;
            size += chunk.len() as u64;
        }
        file.flush().await?;
        file.sync_data().await?;
        Ok(size)
    }
}

#[async_trait::async_trait]
impl BlobStore for LocalBlobStore {
    async fn put(&self, key: &BlobKey, chunks: ByteStream) -> Result<u64, BlobError> {
        let temp = self.temp_path(key);
        let path = self.path(key);
        tokio::fs::create_dir_all(self.dir.join("tmp")).await?;
        let written = LocalBlobStore::write(&temp, chunks).await;
        let size = match written {
            Ok(size) => size,
            Err(error) => {
                let _ = tokio::fs::remove_file(&temp).await;
                return Err(error);
            }
        };
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        tokio::fs::rename(&temp, &path).await?;
        Ok(size)
    }

    async fn get(
        &self,
        key: &BlobKey,
        range: Option<Range<u64>>,
    ) -> Result<Option<ByteStream>, BlobError> {
        let mut file = match tokio::fs::File::open(self.path(key)).await {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        let size = file.metadata().await?.len();
        let range = range.unwrap_or(0..size);
        let (start, end) = (range.start.min(size), range.end.min(size));
        file.seek(std::io::SeekFrom::Start(start)).await?;
        let remaining = end.saturating_sub(start);
        let chunks =
            futures::stream::try_unfold((file, remaining), |(mut file, remaining)| async move {
                if remaining == 0 {
                    return Ok(None);
                }
                let want = remaining.min(READ_CHUNK as u64) as usize;
                let mut buffer = BytesMut::zeroed(want);
                let mut filled = 0;
                while filled < want {
                    let n = file.read(&mut buffer[filled..]).await?;
                    if n == 0 {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "the blob is shorter than it was",
                        ));
                    }
                    filled += n;
                }
                let chunk: Bytes = buffer.freeze();
                Ok(Some((chunk, (file, remaining - want as u64))))
            });
        Ok(Some(chunks.boxed()))
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        for path in [self.path(key), self.temp_path(key)] {
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }

    async fn written_before(&self, before: SystemTime) -> Result<Vec<BlobKey>, BlobError> {
        let mut keys = Vec::new();
        let mut dirs = match tokio::fs::read_dir(&self.dir).await {
            Ok(dirs) => dirs,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(keys),
            Err(error) => return Err(error.into()),
        };
        while let Some(dir) = dirs.next_entry().await? {
            if !dir.file_type().await?.is_dir() {
                continue;
            }
            let mut files = tokio::fs::read_dir(dir.path()).await?;
            while let Some(file) = files.next_entry().await? {
                let Some(key) = file.file_name().to_str().and_then(BlobKey::parse) else {
                    continue;
                };
                if file.metadata().await?.modified()? < before {
                    keys.push(key);
                }
            }
        }
        Ok(keys)
    }
}

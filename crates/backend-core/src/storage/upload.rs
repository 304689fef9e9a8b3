//! Upload URLs and uploads: issuing a token (a document of `_upload_tokens` holding the hash of
//! a secret and an expiry), streaming an upload's bytes into the blob store while hashing and
//! counting them, and recording the file with the mutation that uses up the token.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use futures::StreamExt;
use keel_db::blobs::{BlobKey, ByteStream};
use keel_db::{Transaction, UPLOAD_TOKENS_TABLE};
use keel_values::{DocumentId, Object, Value};
use sha2::{Digest, Sha256};

use crate::backend::Backend;
use crate::error::{ErrorClass, FunctionError};

/// The longest content type recorded.
const MAX_CONTENT_TYPE: usize = 256;

/// What an upload's request says of its body besides the bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct UploadRequest<'a> {
    /// Its `Content-Type`, recorded with the file.
    pub content_type: Option<&'a str>,
    /// Its `Content-Length`: a length over the limit is refused before anything is read.
    pub content_length: Option<u64>,
    /// The SHA-256 its `Digest: sha-256=<base64>` header announces (as Convex checks it): a
    /// body that does not match is refused and nothing is kept.
    pub sha256: Option<&'a str>,
}

/// Why an upload stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The backend has no file storage.
    #[error("This backend has no file storage")]
    NotConfigured,
    /// The token is malformed, unknown, expired or used.
    #[error("The upload URL {0}; generate a new one with generateUploadUrl")]
    InvalidToken(&'static str),
    /// The body is larger than the limit.
    #[error("The file is larger than the limit of {max} bytes; nothing was stored")]
    TooLarge {
        /// The limit in bytes.
        max: u64,
    },
    /// The `Content-Type` is not a plain header value of at most 256 characters.
    #[error("The Content-Type is not a valid media type")]
    BadContentType,
    /// The body's SHA-256 is not the one its `Digest` header announced.
    #[error("The file's SHA-256 does not match its Digest header; nothing was stored")]
    Sha256Mismatch,
    /// The body broke off.
    #[error("The upload broke off: {0}")]
    BodyBroken(String),
    /// Storing failed on the backend's side.
    #[error("The file could not be stored; try again")]
    Failed(#[source] FunctionError),
}

impl UploadError {
    /// The short code sent as `code`.
    pub fn code(&self) -> &'static str {
        match self {
            UploadError::NotConfigured => "StorageNotConfigured",
            UploadError::InvalidToken(_) => "InvalidUploadToken",
            UploadError::TooLarge { .. } => "FileTooLarge",
            UploadError::BadContentType => "BadContentType",
            UploadError::BodyBroken(_) => "BadRequestBody",
            UploadError::Sha256Mismatch => "Sha256Mismatch",
            UploadError::Failed(_) => "StorageUnavailable",
        }
    }

    /// The class, which decides the HTTP status.
    pub fn class(&self) -> ErrorClass {
        match self {
            UploadError::InvalidToken(_) => ErrorClass::Unauthenticated,
            UploadError::TooLarge { .. } => ErrorClass::PayloadTooLarge,
            UploadError::BadContentType
            | UploadError::BodyBroken(_)
            | UploadError::Sha256Mismatch => ErrorClass::BadRequest,
            UploadError::NotConfigured | UploadError::Failed(_) => ErrorClass::Unavailable,
        }
    }
}

/// The error data `_system/storage:finishUpload` refuses a token with.
pub(crate) const TOKEN_REFUSED: &str = "InvalidUploadToken";

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
        * 1e3
}

fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A parsed token: its document and its secret.
struct Token<'a> {
    id: DocumentId,
    secret: &'a str,
}

fn parse_token(token: &str) -> Option<Token<'_>> {
    let (id, secret) = token.split_once('.')?;
    (secret.len() == 32 && secret.bytes().all(|b| b.is_ascii_hexdigit())).then_some(())?;
    Some(Token {
        id: id.parse().ok()?,
        secret,
    })
}

/// Issues an upload token in `tx`, valid for `ttl`.
pub(crate) async fn issue_token(
    tx: &mut Transaction,
    ttl: Duration,
) -> Result<String, keel_db::DbError> {
    let secret = format!("{:032x}", rand::random::<u128>());
    let mut fields = Object::new();
    fields.insert("secretHash".into(), secret_hash(&secret).into());
    fields.insert(
        "expiresAt".into(),
        Value::Float64(now_ms() + ttl.as_secs_f64() * 1e3),
    );
    let id = tx.system_insert(UPLOAD_TOKENS_TABLE, fields).await?;
    Ok(format!("{id}.{secret}"))
}

/// Checks `token` in `tx`: `Ok(Some(id))` of its document when it may be used, `Ok(None)` when
/// its document is not there, else why not.
async fn check_token(tx: &mut Transaction, token: &str) -> Result<Option<DocumentId>, UploadError> {
    let token = parse_token(token).ok_or(UploadError::InvalidToken("is not valid"))?;
    let Some(doc) = tx
        .system_get_in(UPLOAD_TOKENS_TABLE, token.id)
        .await
        .map_err(|e| UploadError::Failed(e.into()))?
    else {
        return Ok(None);
    };
    if doc.fields.get("secretHash").and_then(Value::as_str) != Some(&secret_hash(token.secret)) {
        return Err(UploadError::InvalidToken("is not valid"));
    }
    let expires = doc
        .fields
        .get("expiresAt")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    if expires <= now_ms() {
        return Err(UploadError::InvalidToken("has expired"));
    }
    Ok(Some(token.id))
}

/// Uses up `token` in `tx` (the mutation recording the upload): refuses it unless it may be
/// used, then deletes its document.
pub(crate) async fn use_token(tx: &mut Transaction, token: &str) -> Result<(), FunctionError> {
    let refused = |error: UploadError| {
        FunctionError::convex(
            error.to_string(),
            keel_values::obj! { "code" => TOKEN_REFUSED },
        )
    };
    match check_token(tx, token).await {
        Ok(Some(id)) => Ok(tx.system_delete(id).await?),
        Ok(None) => Err(refused(UploadError::InvalidToken("has already been used"))),
        Err(UploadError::Failed(error)) => Err(error),
        Err(error) => Err(refused(error)),
    }
}

/// What was written: size and hash, taken from the stream as it passed.
#[derive(Default)]
struct Tally {
    size: u64,
    hasher: Sha256,
}

/// `chunks`, counted and hashed into `tally`, failing once more than `max` bytes passed.
fn tallied(chunks: ByteStream, tally: Arc<parking_lot::Mutex<Tally>>, max: u64) -> ByteStream {
    chunks
        .map(move |chunk| {
            let chunk = chunk?;
            let mut tally = tally.lock();
            tally.size += chunk.len() as u64;
            if tally.size > max {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::FileTooLarge,
                    "over the limit",
                ));
            }
            tally.hasher.update(&chunk);
            Ok(chunk)
        })
        .boxed()
}

/// The bytes stored for a new file.
pub(crate) struct StoredBlob {
    pub(crate) key: BlobKey,
    pub(crate) size: u64,
    pub(crate) sha256: String,
}

impl Backend {
    /// Streams `chunks` into the blob store under a new key, within the size limit.
    pub(crate) async fn store_blob(&self, chunks: ByteStream) -> Result<StoredBlob, UploadError> {
        let blobs = self.blobs().map_err(|_| UploadError::NotConfigured)?;
        let max = self.inner.config.storage.max_file_bytes;
        let tally = Arc::new(parking_lot::Mutex::new(Tally::default()));
        let key = BlobKey::generate();
        match blobs.put(&key, tallied(chunks, tally.clone(), max)).await {
            Ok(_) => {}
            Err(error) => {
                let tally = tally.lock();
                return Err(if tally.size > max {
                    UploadError::TooLarge { max }
                } else {
                    UploadError::BodyBroken(error.0)
                });
            }
        }
        let Tally { size, hasher } = std::mem::take(&mut *tally.lock());
        Ok(StoredBlob {
            key,
            size,
            sha256: base64::engine::general_purpose::STANDARD.encode(hasher.finalize()),
        })
    }

    /// An upload to an upload URL: `token` from its `?token=`, what its headers say of the
    /// body ([`UploadRequest`]) and the body. Returns the new file's storage id.
    ///
    /// The token is checked first where this node can (a follower that has not seen the token
    /// yet leaves it to the committer); a body announced or found larger than
    /// [`StorageConfig::max_file_bytes`](super::StorageConfig::max_file_bytes) is refused and
    /// whatever was written of it deleted, as it is when the token turns out to be used.
    pub async fn upload(
        &self,
        token: &str,
        request: UploadRequest<'_>,
        body: ByteStream,
    ) -> Result<String, UploadError> {
        let UploadRequest {
            content_type,
            content_length,
            sha256,
        } = request;
        self.blobs().map_err(|_| UploadError::NotConfigured)?;
        let content_type = match content_type {
            Some(value)
                if value.len() > MAX_CONTENT_TYPE
                    || !value.bytes().all(|b| (b' '..=b'~').contains(&b)) =>
            {
                return Err(UploadError::BadContentType);
            }
            other => other.map(str::to_owned),
        };
        let mut tx = self.inner.db.begin();
        let known = check_token(&mut tx, token).await?;
        let follower = self.cluster().is_some_and(|c| !c.is_committer());
        if known.is_none() && !follower {
            return Err(UploadError::InvalidToken("has already been used"));
        }
        drop(tx);
        let max = self.inner.config.storage.max_file_bytes;
        if content_length.is_some_and(|length| length > max) {
            return Err(UploadError::TooLarge { max });
        }
        let blob = self.store_blob(body).await?;
        if let Some(expected) = sha256
            && expected != blob.sha256
        {
            if let Ok(blobs) = self.blobs() {
                let _ = blobs.delete(&blob.key).await;
            }
            return Err(UploadError::Sha256Mismatch);
        }
        let recorded = self
            .system_mutation::<String>(
                "_system/storage:finishUpload",
                serde_json::json!({
                    "token": token,
                    "storageKey": blob.key.as_str(),
                    "size": blob.size as f64,
                    "sha256": blob.sha256,
                    "contentType": content_type,
                }),
            )
            .await;
        match recorded {
            Ok(id) => Ok(id),
            Err(error) => {
                if let Ok(blobs) = self.blobs()
                    && let Err(cleanup) = blobs.delete(&blob.key).await
                {
                    tracing::warn!(key = %blob.key, error = %cleanup, "cannot delete a refused upload's bytes; they are reclaimed later");
                }
                let refused = error
                    .error_data()
                    .and_then(|data| match data {
                        Value::Object(o) => o.get("code").and_then(Value::as_str),
                        _ => None,
                    })
                    .is_some_and(|code| code == TOKEN_REFUSED);
                Err(if refused {
                    UploadError::InvalidToken(if error.client_message().contains("expired") {
                        "has expired"
                    } else {
                        "has already been used"
                    })
                } else {
                    UploadError::Failed(error)
                })
            }
        }
    }
}

//! The public data of the cache: keys, entry copies, update notices.

use std::sync::Arc;
use std::time::SystemTime;

use keel_values::{Object, Value, to_json_string};
use serde::{Deserialize, Serialize};

use crate::ClientError;
use crate::convert::args_object;

/// A query in the cache: a function path and its arguments (with its [hash](QueryKey::hash),
/// written once when the key is made).
#[derive(Clone, Debug, PartialEq)]
pub struct QueryKey {
    path: String,
    args: Object,
    hash: String,
}

impl QueryKey {
    /// The key of query `path` with `args`.
    pub fn new(path: impl Into<String>, args: Object) -> QueryKey {
        let path = path.into();
        let hash = format!(
            "convexQuery|{path}|{}",
            to_json_string(&Value::Object(args.clone()))
        );
        QueryKey { path, args, hash }
    }

    /// The key of query `path` with typed arguments (like `convexQuery(api.x.y, args)`).
    pub fn with_args(
        path: impl Into<String>,
        args: impl Serialize,
    ) -> Result<QueryKey, ClientError> {
        Ok(QueryKey::new(path, args_object(args)?))
    }

    /// The function path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The arguments.
    pub fn args(&self) -> &Object {
        &self.args
    }

    /// The cache key, byte-identical to `ConvexQueryClient`'s hash:
    /// `convexQuery|<path>|<JSON.stringify(convexToJson(args))>` (encoded when the key was
    /// made, not per lookup).
    ///
    /// ```
    /// let key = keel_client::QueryKey::with_args("messages:list", serde_json::json!({"b": 1, "a": "x"})).unwrap();
    /// assert_eq!(key.hash(), r#"convexQuery|messages:list|{"a":"x","b":1}"#);
    /// ```
    pub fn hash(&self) -> &str {
        &self.hash
    }
}

/// Where an entry stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum QueryStatus {
    /// No result yet.
    Pending,
    /// The latest result is a value.
    Success,
    /// The latest result is an error.
    Error,
}

/// A copy of one cache entry.
#[derive(Clone, Debug, PartialEq)]
pub struct CacheEntry {
    /// The query.
    pub key: QueryKey,
    /// Where the entry stands.
    pub status: QueryStatus,
    /// The latest value (kept when a later result is an error), shared with the cache (and,
    /// for a live result in process, with the backend's query execution): no copy.
    pub data: Option<Arc<Value>>,
    /// The latest error, when `status` is [`QueryStatus::Error`].
    pub error: Option<ClientError>,
    /// When the latest result was written.
    pub updated_at: SystemTime,
    /// The snapshot timestamp of the latest result, when known.
    pub ts: Option<u64>,
    /// Whether the entry is subscribed on a connected [`LiveClient`](crate::LiveClient).
    pub live: bool,
    /// Marked by [`QueryClient::invalidate`](crate::QueryClient::invalidate): the next `ensure_query_data` refetches.
    pub stale: bool,
}

/// Entries a live transition changed (see [`QueryClient::updates`](crate::QueryClient::updates)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheUpdate {
    /// The transition's timestamp.
    pub ts: u64,
    /// The changed entries, by [`QueryKey::hash`].
    pub keys: Vec<String>,
}

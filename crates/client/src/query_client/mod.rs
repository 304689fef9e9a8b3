//! [`QueryClient`]: the query cache bridged to a live connection, like
//! `@convex-dev/react-query`'s `ConvexQueryClient` with TanStack Query's cache.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use keel_protocol::{FunctionName, Public, kind};
use keel_values::Value;
use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

mod key;

pub use key::{CacheEntry, CacheUpdate, QueryKey, QueryStatus};

/// How many [`CacheUpdate`]s a slow receiver may fall behind.
const UPDATES_CAPACITY: usize = 1024;

use crate::convert::decode_result;
use crate::live::{TransitionBatch, wait_watch_ts};
use crate::{ClientError, HttpClient, LiveClient, QueryWatch};

/// Settings of a [`QueryClient`].
#[derive(Clone, Debug)]
pub struct QueryClientConfig {
    /// Entries not used for this long are dropped and unsubscribed (default 5 minutes, as in
    /// TanStack Query).
    pub gc_time: Duration,
    /// Fetch through this HTTP client (SSR); without it, fetches wait for the live
    /// subscription's first result.
    pub http: Option<HttpClient>,
    /// Fetch through the HTTP client at one snapshot (`consistent_query`, the default, like
    /// `ConvexQueryClient`'s `ssrQueryMode: "consistent"`).
    pub consistent: bool,
    /// How long a fetch waits for a live subscription's first result (default 10 s).
    pub fetch_timeout: Duration,
}

impl Default for QueryClientConfig {
    fn default() -> Self {
        QueryClientConfig {
            gc_time: Duration::from_secs(300),
            http: None,
            consistent: true,
            fetch_timeout: Duration::from_secs(10),
        }
    }
}

struct Entry {
    key: QueryKey,
    /// Shared: handed out without a copy (see [`CacheEntry::data`]).
    data: Option<Arc<Value>>,
    error: Option<ClientError>,
    updated_at: SystemTime,
    ts: Option<u64>,
    /// The latest result came from the live subscription.
    from_live: bool,
    stale: bool,
    last_used: Instant,
    watch: Option<QueryWatch>,
}

impl Entry {
    fn new(key: QueryKey) -> Entry {
        Entry {
            key,
            data: None,
            error: None,
            updated_at: SystemTime::now(),
            ts: None,
            from_live: false,
            stale: false,
            last_used: Instant::now(),
            watch: None,
        }
    }

    fn set(&mut self, result: Result<Arc<Value>, ClientError>, ts: Option<u64>, from_live: bool) {
        match result {
            Ok(value) => {
                self.data = Some(value);
                self.error = None;
            }
            Err(error) => self.error = Some(error),
        }
        self.ts = ts.or(self.ts);
        self.from_live = from_live;
        self.stale = false;
        self.updated_at = SystemTime::now();
    }

    fn snapshot(&self) -> CacheEntry {
        let status = match (&self.error, &self.data) {
            (Some(_), _) => QueryStatus::Error,
            (None, Some(_)) => QueryStatus::Success,
            (None, None) => QueryStatus::Pending,
        };
        CacheEntry {
            key: self.key.clone(),
            status,
            data: self.data.clone(),
            error: self.error.clone(),
            updated_at: self.updated_at,
            ts: self.ts,
            live: self.watch.is_some(),
            stale: self.stale,
        }
    }

    fn result(&self) -> Option<Result<Arc<Value>, ClientError>> {
        match (&self.error, &self.data) {
            (Some(e), _) => Some(Err(e.clone())),
            (None, Some(v)) => Some(Ok(v.clone())),
            (None, None) => None,
        }
    }
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    /// Live query id → entry hash.
    by_query_id: HashMap<u32, String>,
    live: Option<LiveClient>,
}

struct Inner {
    config: Mutex<QueryClientConfig>,
    state: Mutex<State>,
    /// The timestamp of the latest transition applied to the cache.
    cache_ts: watch::Sender<u64>,
    /// Bumped at every change, to wake fetches waiting for a live result.
    changes: watch::Sender<u64>,
    /// Keys updated by live transitions, for owners that re-render on change.
    updates: broadcast::Sender<CacheUpdate>,
    /// The garbage collection and the live bridge; stopped when the cache is dropped.
    tasks: keel_tasks::Tasks,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.tasks.stop();
    }
}

/// A query cache keyed like `ConvexQueryClient`, optionally kept live by a [`LiveClient`].
///
/// Cheap to clone (clones share the cache). Background tasks (GC, the live bridge) stop when
/// the last clone is dropped. Must be created inside a Tokio runtime.
#[derive(Clone)]
pub struct QueryClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for QueryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryClient")
            .field("entries", &self.inner.state.lock().entries.len())
            .field("cache_ts", &*self.inner.cache_ts.borrow())
            .finish_non_exhaustive()
    }
}

impl QueryClient {
    /// An empty cache with `config`. Cheap: a per-request cache (SSR) spawns nothing; the timed
    /// collection of unused entries starts when the cache is [connected](QueryClient::connect)
    /// (a long-lived, live cache), and [`QueryClient::gc`] can be called at any time.
    pub fn new(config: QueryClientConfig) -> QueryClient {
        let inner = Arc::new(Inner {
            config: Mutex::new(config),
            state: Mutex::new(State::default()),
            cache_ts: watch::channel(0).0,
            changes: watch::channel(0).0,
            updates: broadcast::channel(UPDATES_CAPACITY).0,
            tasks: keel_tasks::Tasks::new("query client"),
        });
        QueryClient { inner }
    }

    /// Collects unused entries every quarter of `gc_time` until the cache is dropped.
    fn spawn_gc(&self) {
        let gc_time = self.inner.config.lock().gc_time;
        let gc_every = (gc_time / 4).clamp(Duration::from_millis(20), Duration::from_secs(30));
        let weak = Arc::downgrade(&self.inner);
        let tasks = self.inner.tasks.clone();
        self.inner.tasks.spawn("gc", async move {
            let mut tick = tokio::time::interval(gc_every);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = tasks.stopping() => break,
                }
                let Some(inner) = weak.upgrade() else { break };
                QueryClient { inner }.gc();
            }
        });
    }

    /// An empty cache fetching through `http` (consistent reads), other settings default.
    pub fn with_http(http: HttpClient) -> QueryClient {
        QueryClient::new(QueryClientConfig {
            http: Some(http),
            ..QueryClientConfig::default()
        })
    }

    /// Replaces the HTTP client fetches go through (e.g. one carrying the request's token).
    pub fn set_http_client(&self, http: Option<HttpClient>) {
        self.inner.config.lock().http = http;
    }

    /// The HTTP client fetches go through, if any.
    pub fn http_client(&self) -> Option<HttpClient> {
        self.inner.config.lock().http.clone()
    }

    /// Sends `token` (or none) with later HTTP fetches; starts a new snapshot. The SSR step
    /// `ctx.query_client.server_http_client().set_auth(token)`.
    pub fn set_http_auth(&self, token: Option<String>) {
        let mut config = self.inner.config.lock();
        if let Some(http) = config.http.as_mut() {
            match token {
                Some(token) => *http = http.with_auth(token),
                None => {
                    http.clear_auth();
                    http.new_snapshot();
                }
            }
        }
    }

    /// Later consistent HTTP fetches read a new snapshot (e.g. at the start of each page render
    /// when this cache outlives one render).
    pub fn new_snapshot(&self) {
        if let Some(http) = self.inner.config.lock().http.as_mut() {
            http.new_snapshot();
        }
    }

    /// The cached value if there is one (and it is not stale), else [`QueryClient::fetch_query`].
    pub async fn ensure_query_data(&self, key: &QueryKey) -> Result<Value, ClientError> {
        self.ensure_query_shared(key)
            .await
            .map(Arc::unwrap_or_clone)
    }

    /// [`QueryClient::ensure_query_data`] without a copy: the value as the cache holds it.
    pub async fn ensure_query_shared(&self, key: &QueryKey) -> Result<Arc<Value>, ClientError> {
        {
            let mut state = self.inner.state.lock();
            if let Some(entry) = state.entries.get_mut(key.hash()) {
                entry.last_used = Instant::now();
                if !entry.stale
                    && entry.error.is_none()
                    && let Some(value) = &entry.data
                {
                    return Ok(value.clone());
                }
            }
        }
        self.fetch_query_shared(key).await
    }

    /// `ensureQueryData(convexQuery(function, args))` decoded: the cached result of the query
    /// `function` (a path, or a typed [`QueryRef`](keel_protocol::QueryRef), whose argument and
    /// result types are then checked at compile time), else a fetch.
    pub async fn query<R: DeserializeOwned, A: Serialize>(
        &self,
        function: impl FunctionName<kind::Query, Public, A, R>,
        args: A,
    ) -> Result<R, ClientError> {
        let key = QueryKey::with_args(function.path(), args)?;
        decode_result(&*self.ensure_query_shared(&key).await?)
    }

    /// Fetches the query (HTTP client if configured, else the live subscription's next result),
    /// writes the result into the cache and returns it.
    pub async fn fetch_query(&self, key: &QueryKey) -> Result<Value, ClientError> {
        self.fetch_query_shared(key).await.map(Arc::unwrap_or_clone)
    }

    /// [`QueryClient::fetch_query`] returning the value as the cache holds it.
    async fn fetch_query_shared(&self, key: &QueryKey) -> Result<Arc<Value>, ClientError> {
        let hash = key.hash();
        let (http, consistent, timeout) = {
            let c = self.inner.config.lock();
            (c.http.clone(), c.consistent, c.fetch_timeout)
        };
        let changes_before = *self.inner.changes.borrow();
        self.touch_entry(key, hash);
        let Some(http) = http else {
            return self.wait_live_result(hash, changes_before, timeout).await;
        };
        // In process, the backend's own value (shared with its query cache): no copy.
        let (result, ts) = if consistent {
            let result = http
                .consistent_query_shared(key.path(), key.args().clone())
                .await;
            (result, http.snapshot_ts())
        } else {
            (
                http.query_shared(key.path(), key.args().clone()).await,
                None,
            )
        };
        let mut state = self.inner.state.lock();
        if let Some(entry) = state.entries.get_mut(hash) {
            // A live result newer than (or not comparable with) this fetch wins.
            let newer_live = entry.from_live
                && entry.data.is_some()
                && ts.is_none_or(|t| entry.ts.is_some_and(|e| e > t));
            if !newer_live {
                entry.set(result.clone(), ts, false);
            }
        }
        drop(state);
        self.inner.changes.send_modify(|c| *c += 1);
        result
    }

    /// Creates the entry if missing (subscribing it when connected) and marks it used.
    fn touch_entry(&self, key: &QueryKey, hash: &str) {
        let mut state = self.inner.state.lock();
        let live = state.live.clone();
        let state = &mut *state;
        let entry = state
            .entries
            .entry(hash.to_owned())
            .or_insert_with(|| Entry::new(key.clone()));
        entry.last_used = Instant::now();
        if entry.watch.is_none()
            && let Some(live) = live
            && let Ok(watch) = live.watch_value(key.path(), key.args().clone())
        {
            state.by_query_id.insert(watch.query_id(), hash.to_owned());
            entry.watch = Some(watch);
        }
    }

    /// Waits for the live subscription to write a result into entry `hash`.
    async fn wait_live_result(
        &self,
        hash: &str,
        changes_before: u64,
        timeout: Duration,
    ) -> Result<Arc<Value>, ClientError> {
        let mut changes = self.inner.changes.subscribe();
        let deadline = Instant::now() + timeout;
        loop {
            {
                let state = self.inner.state.lock();
                let Some(entry) = state.entries.get(hash) else {
                    return Err(ClientError::Closed("the entry was removed".to_owned()));
                };
                if entry.watch.is_none() {
                    return Err(ClientError::Closed(
                        "no HTTP client is configured and no live client is connected".to_owned(),
                    ));
                }
                if entry.from_live
                    && (!entry.stale || *changes.borrow() != changes_before)
                    && let Some(result) = entry.result()
                {
                    return result;
                }
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(ClientError::Closed("the cache is gone".to_owned())),
                Err(_) => {
                    return Err(ClientError::Closed(format!(
                        "timed out after {timeout:?} waiting for the live result"
                    )));
                }
            }
        }
    }

    /// The cached value, if any (marks the entry used).
    pub fn get_query_data(&self, key: &QueryKey) -> Option<Value> {
        let mut state = self.inner.state.lock();
        let entry = state.entries.get_mut(key.hash())?;
        entry.last_used = Instant::now();
        entry.data.as_deref().cloned()
    }

    /// A copy of the entry, if any.
    pub fn get_entry(&self, key: &QueryKey) -> Option<CacheEntry> {
        self.inner
            .state
            .lock()
            .entries
            .get(key.hash())
            .map(Entry::snapshot)
    }

    /// The entries of `keys` (in order; `None` for a key not in the cache) read at once, with
    /// the timestamp of the latest live transition applied (0 before any): the results of one
    /// consistent snapshot, for rendering a page from the cache. Marks the entries used. The
    /// values are shared with the cache, not copied.
    pub fn read_at_once(&self, keys: &[QueryKey]) -> (u64, Vec<Option<CacheEntry>>) {
        let mut state = self.inner.state.lock();
        // `apply` publishes the timestamp while it still holds the state lock.
        let ts = *self.inner.cache_ts.borrow();
        let now = Instant::now();
        let entries = keys
            .iter()
            .map(|key| {
                let entry = state.entries.get_mut(key.hash())?;
                entry.last_used = now;
                Some(entry.snapshot())
            })
            .collect();
        (ts, entries)
    }

    /// Writes a value into the cache (creating and, when connected, subscribing the entry).
    pub fn set_query_data(&self, key: &QueryKey, value: Value) {
        let hash = key.hash();
        self.touch_entry(key, hash);
        if let Some(entry) = self.inner.state.lock().entries.get_mut(hash) {
            entry.set(Ok(Arc::new(value)), None, false);
        }
        self.inner.changes.send_modify(|c| *c += 1);
    }

    /// Marks the entry stale: the next [`QueryClient::ensure_query_data`] fetches again. A live
    /// update also refreshes it.
    pub fn invalidate(&self, key: &QueryKey) {
        if let Some(entry) = self.inner.state.lock().entries.get_mut(key.hash()) {
            entry.stale = true;
        }
    }

    /// Marks every entry stale.
    pub fn invalidate_all(&self) {
        for entry in self.inner.state.lock().entries.values_mut() {
            entry.stale = true;
        }
    }

    /// Drops the entry (and its subscription).
    pub fn remove(&self, key: &QueryKey) {
        let mut state = self.inner.state.lock();
        if let Some(entry) = state.entries.remove(key.hash())
            && let Some(watch) = &entry.watch
        {
            state.by_query_id.remove(&watch.query_id());
        }
    }

    /// The keys in the cache.
    pub fn keys(&self) -> Vec<QueryKey> {
        self.inner
            .state
            .lock()
            .entries
            .values()
            .map(|e| e.key.clone())
            .collect()
    }

    /// Drops entries unused for `gc_time` (and their subscriptions); returns how many. Runs
    /// periodically on its own.
    pub fn gc(&self) -> usize {
        let gc_time = self.inner.config.lock().gc_time;
        let mut state = self.inner.state.lock();
        let now = Instant::now();
        let expired: Vec<String> = state
            .entries
            .iter()
            .filter(|(_, e)| now.duration_since(e.last_used) >= gc_time)
            .map(|(k, _)| k.clone())
            .collect();
        for hash in &expired {
            if let Some(entry) = state.entries.remove(hash)
                && let Some(watch) = &entry.watch
            {
                state.by_query_id.remove(&watch.query_id());
            }
        }
        if !expired.is_empty() {
            tracing::debug!(count = expired.len(), "query cache entries collected");
        }
        expired.len()
    }

    /// Keeps the cache live through `live`: every entry (present and future) is subscribed and
    /// its updates are written into the cache as they arrive (only entries that exist). Fails
    /// if already connected.
    pub fn connect(&self, live: &LiveClient) -> Result<(), ClientError> {
        let mut transitions = live.transitions()?;
        {
            let mut state = self.inner.state.lock();
            if state.live.is_some() {
                return Err(ClientError::Closed(
                    "the query client is already connected".to_owned(),
                ));
            }
            state.live = Some(live.clone());
            let state = &mut *state;
            for (hash, entry) in &mut state.entries {
                if entry.watch.is_none() {
                    let watch = live.watch_value(entry.key.path(), entry.key.args().clone())?;
                    state.by_query_id.insert(watch.query_id(), hash.clone());
                    entry.watch = Some(watch);
                }
            }
        }
        self.spawn_gc();
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let tasks = self.inner.tasks.clone();
        self.inner.tasks.spawn("live bridge", async move {
            loop {
                let batch = tokio::select! {
                    batch = transitions.recv() => batch,
                    () = tasks.stopping() => None,
                };
                let Some(batch) = batch else { break };
                let Some(inner) = weak.upgrade() else { break };
                apply(&inner, &batch);
            }
        });
        Ok(())
    }

    /// Live updates as they are written: which entries (by [`QueryKey::hash`]) changed, at
    /// which timestamp (the web tier re-renders open pages from them). A receiver that falls more than 1024 updates behind gets
    /// `RecvError::Lagged` and should treat everything as changed.
    pub fn updates(&self) -> broadcast::Receiver<CacheUpdate> {
        self.inner.updates.subscribe()
    }

    /// The timestamp of the latest live transition applied to the cache (0 before any).
    pub fn cache_ts(&self) -> u64 {
        *self.inner.cache_ts.borrow()
    }

    /// Waits until the cache has applied a live transition at or after `ts` (e.g. a mutation's
    /// commit timestamp, or [`HttpClient::query_ts`] after an HTTP mutation): a page rendered
    /// from the cache afterwards reflects the write.
    pub async fn wait_for_ts(&self, ts: u64, timeout: Duration) -> Result<(), ClientError> {
        let mut watch = self.inner.cache_ts.subscribe();
        if *watch.borrow() >= ts {
            return Ok(());
        }
        let live = self.inner.state.lock().live.clone();
        let Some(live) = live else {
            return Err(ClientError::Closed(
                "wait_for_ts needs a connected live client".to_owned(),
            ));
        };
        live.request_sync()?;
        wait_watch_ts(&mut watch, ts, timeout).await
    }
}

/// Writes one live transition into the cache, then publishes its timestamp.
fn apply(inner: &Inner, batch: &TransitionBatch) {
    let mut keys = Vec::new();
    {
        let mut state = inner.state.lock();
        let state = &mut *state;
        for (query_id, result) in &batch.updates {
            let Some(hash) = state.by_query_id.get(query_id) else {
                continue;
            };
            if let Some(entry) = state.entries.get_mut(hash) {
                entry.set(result.clone(), Some(batch.ts), true);
                keys.push(hash.clone());
            }
        }
        // Under the state lock, so that `read_at_once` sees entries and timestamp together.
        inner.cache_ts.send_if_modified(|t| {
            let changed = batch.ts > *t;
            *t = (*t).max(batch.ts);
            changed
        });
    }
    inner.changes.send_modify(|c| *c += 1);
    if !keys.is_empty() {
        // No receivers is fine.
        let _ = inner.updates.send(CacheUpdate { ts: batch.ts, keys });
    }
}

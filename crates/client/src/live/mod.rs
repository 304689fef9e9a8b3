//! [`LiveClient`]: the Convex WebSocket sync protocol with subscriptions, reconnects and
//! token refresh — over a socket, or in the backend's own process over its in-process sync
//! sessions ([`LiveClient::in_process`]).
//!
//! A background task owns the connection; the handles ([`LiveClient`], [`Subscription`],
//! [`QueryWatch`]) talk to it over a channel. See the crate docs for why this is not the
//! official `convex` crate's client.

mod worker;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use keel_protocol::{FunctionName, InProcessBackend, Public, kind};
use keel_values::{Object, Value};
use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::wrappers::WatchStream;

use crate::ClientError;
use crate::convert::{args_object, decode_result};
pub use worker::AuthState;

/// Fetches an auth token: called with `force_refresh = false` first and `true` when the token
/// must be new (scheduled refresh, or the backend rejected the last one). `None` means signed
/// out. Like `ConvexProviderWithClerk`'s `getToken({template: "convex", skipCache})`.
pub type AuthTokenFetcher = Arc<dyn Fn(bool) -> BoxFuture<'static, Option<String>> + Send + Sync>;

/// Settings of a [`LiveClient`].
#[derive(Clone, Debug)]
pub struct LiveConfig {
    /// Deployment URL (`http(s)://host:port`); the socket goes to `ws(s)://host:port/api/sync`.
    pub url: String,
    /// How long before a token expires the next one is fetched (default 10 s, as in JS). A
    /// token living no longer than this is refreshed at half its lifetime.
    pub refresh_leeway: Duration,
    /// First reconnect delay (default 100 ms); doubled per failed attempt, ±50 % jitter.
    pub initial_backoff: Duration,
    /// Largest reconnect delay (default 15 s).
    pub max_backoff: Duration,
    /// Reconnect when the server sent nothing for this long (default 30 s; it pings every 15 s).
    pub idle_timeout: Duration,
    /// Give up one connection attempt after this long (default 10 s).
    pub connect_timeout: Duration,
}

impl LiveConfig {
    /// Defaults for the deployment at `url`.
    pub fn new(url: impl Into<String>) -> LiveConfig {
        LiveConfig {
            url: url.into(),
            refresh_leeway: Duration::from_secs(10),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// One result of a subscribed query.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryUpdate {
    /// The value, or the query's error.
    pub result: Result<Value, ClientError>,
    /// The snapshot timestamp the result was computed at.
    pub ts: u64,
}

/// Everything one server transition changed, for consumers that need whole snapshots (the
/// query cache): see [`LiveClient::transitions`].
#[derive(Clone, Debug, PartialEq)]
pub struct TransitionBatch {
    /// The snapshot timestamp of the transition.
    pub ts: u64,
    /// New results by query id ([`Subscription::query_id`], [`QueryWatch::query_id`]); only
    /// results that differ from the last one delivered. Values are shared, not copied: over an
    /// in-process connection, with the backend's own query execution.
    pub updates: Vec<(u32, Result<Arc<Value>, ClientError>)>,
}

/// Counters of what the connection did, for tests and monitoring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectionStats {
    /// Sockets opened (the first one included).
    pub connects: u64,
    /// `Authenticate` messages sent with a token.
    pub authenticates: u64,
    /// `AuthError`s received.
    pub auth_errors: u64,
    /// Transitions received.
    pub transitions: u64,
    /// Times a query was (re-)added to the server's query set.
    pub query_adds: u64,
    /// Times a query was removed from the server's query set.
    pub query_removes: u64,
}

#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) connects: AtomicU64,
    pub(crate) authenticates: AtomicU64,
    pub(crate) auth_errors: AtomicU64,
    pub(crate) transitions: AtomicU64,
    pub(crate) query_adds: AtomicU64,
    pub(crate) query_removes: AtomicU64,
}

pub(crate) enum AuthMode {
    None,
    Static(String),
    Fetcher(AuthTokenFetcher),
}

pub(crate) type Reply<T> = oneshot::Sender<Result<T, ClientError>>;

pub(crate) enum Command {
    Subscribe {
        query_id: u32,
        path: String,
        args: Object,
        tx: Option<UpdateSender>,
    },
    Unsubscribe(u32),
    Mutation {
        path: String,
        args: Object,
        reply: Reply<(Value, u64)>,
    },
    Action {
        path: String,
        args: Object,
        reply: Reply<Value>,
    },
    SetAuth(AuthMode),
    Sync,
    Close,
}

/// The receivers of [`LiveClient::transitions`]; `None` once the connection ended.
///
/// Shared with the worker rather than registered through its command queue: a listener is in
/// place the moment `transitions` returns, and the worker publishes a transition's timestamp
/// before it takes this lock to deliver the batch. So a caller that registers, then reads
/// [`LiveClient::latest_ts`], either receives a transition or sees its timestamp; none falls
/// between the two.
pub(crate) type Listeners = Arc<Mutex<Option<Vec<mpsc::UnboundedSender<Arc<TransitionBatch>>>>>>;

struct Shared {
    next_query_id: AtomicU32,
    stats: Arc<Stats>,
    auth: watch::Receiver<AuthState>,
    ts: watch::Receiver<u64>,
    listeners: Listeners,
    /// The socket task and its token fetches.
    tasks: keel_tasks::Tasks,
    /// Connected in process ([`LiveClient::in_process`]).
    in_process: bool,
}

/// A connection to the backend over the WebSocket sync protocol, like the JS `ConvexClient`
/// with `setAuth`.
///
/// Cheap to clone (all clones share one socket). The connection ends when every clone is
/// dropped or [`LiveClient::close`] is called. Must be created inside a Tokio runtime.
///
/// ```no_run
/// # async fn run() -> Result<(), keel_client::ClientError> {
/// use futures::StreamExt;
/// let live = keel_client::LiveClient::new("http://127.0.0.1:3210")?;
/// let mut messages = live.subscribe("messages:list", serde_json::json!({}))?;
/// live.mutation::<String, _>("messages:send", serde_json::json!({"body": "hi"})).await?;
/// while let Some(update) = messages.next().await {
///     println!("{:?} at {}", update.result, update.ts);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct LiveClient {
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for LiveClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveClient")
            .field("auth", &*self.shared.auth.borrow())
            .field("ts", &*self.shared.ts.borrow())
            .finish_non_exhaustive()
    }
}

impl LiveClient {
    /// Connects to the deployment at `url` with default settings.
    pub fn new(url: &str) -> Result<LiveClient, ClientError> {
        Self::with_config(LiveConfig::new(url))
    }

    /// Connects with `config`. The socket opens in the background; calls made before it is
    /// open are sent once it is.
    pub fn with_config(config: LiveConfig) -> Result<LiveClient, ClientError> {
        let ws_url = worker::ws_url(&config.url)?;
        Ok(Self::start(config, worker::Transport::WebSocket(ws_url)))
    }

    /// Connects to a backend in this process (`keel_backend::InProcess`): the same client —
    /// subscriptions, mutations, actions, token refresh, `AuthError`s, reconnects — over the
    /// backend's in-process sync sessions ([`InProcessBackend::open_sync`]) instead of a
    /// socket. The backend runs the same session for it as for a socket, verifying tokens the
    /// same way; only the carrier differs. `config.url` is not dialled.
    ///
    /// ```no_run
    /// # async fn demo(backend: keel_backend::Backend) -> Result<(), keel_client::ClientError> {
    /// let direct = keel_backend::InProcess::shared(backend);
    /// let live = keel_client::LiveClient::in_process(
    ///     keel_client::LiveConfig::new("http://127.0.0.1:3210"),
    ///     direct,
    /// );
    /// assert!(live.is_in_process());
    /// # Ok(()) }
    /// ```
    pub fn in_process(config: LiveConfig, backend: Arc<dyn InProcessBackend>) -> LiveClient {
        Self::start(config, worker::Transport::InProcess(backend))
    }

    fn start(config: LiveConfig, transport: worker::Transport) -> LiveClient {
        let in_process = matches!(transport, worker::Transport::InProcess(_));
        let (commands, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(Stats::default());
        let (auth_tx, auth) = watch::channel(AuthState::Unauthenticated);
        let (ts_tx, ts) = watch::channel(0);
        let listeners: Listeners = Arc::new(Mutex::new(Some(Vec::new())));
        let tasks = worker::spawn(
            config,
            transport,
            rx,
            stats.clone(),
            auth_tx,
            ts_tx,
            listeners.clone(),
        );
        LiveClient {
            commands,
            shared: Arc::new(Shared {
                next_query_id: AtomicU32::new(0),
                stats,
                auth,
                ts,
                listeners,
                tasks,
                in_process,
            }),
        }
    }

    /// Whether the client talks to a backend in this process ([`LiveClient::in_process`]).
    pub fn is_in_process(&self) -> bool {
        self.shared.in_process
    }

    fn send(&self, command: Command) -> Result<(), ClientError> {
        self.commands
            .send(command)
            .map_err(|_| ClientError::Closed("the live client is closed".to_owned()))
    }

    fn add_query(
        &self,
        path: &str,
        args: Object,
        tx: Option<UpdateSender>,
    ) -> Result<u32, ClientError> {
        let query_id = self.shared.next_query_id.fetch_add(1, Ordering::Relaxed);
        self.send(Command::Subscribe {
            query_id,
            path: path.to_owned(),
            args,
            tx,
        })?;
        Ok(query_id)
    }

    /// Subscribes to a query: a stream of its results as they change, in order. A subscriber
    /// that reads slower than results arrive gets the latest one (intermediate results are
    /// skipped, as in the JS client's `onUpdate`), so an unread subscription holds one result.
    ///
    /// ```no_run
    /// # async fn run(live: keel_client::LiveClient) -> Result<(), keel_client::ClientError> {
    /// let mut posts = live.subscribe("posts:list", serde_json::json!({}))?;
    /// while let Some(update) = posts.next_update().await {
    ///     println!("at {}: {:?}", update.ts, update.result?);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn subscribe_value(&self, path: &str, args: Object) -> Result<Subscription, ClientError> {
        let (tx, rx) = watch::channel(None);
        let query_id = self.add_query(path, args, Some(tx))?;
        Ok(Subscription {
            query_id,
            updates: WatchStream::from_changes(rx),
            commands: self.commands.downgrade(),
        })
    }

    /// [`LiveClient::subscribe_value`] with typed arguments.
    pub fn subscribe(&self, path: &str, args: impl Serialize) -> Result<Subscription, ClientError> {
        self.subscribe_value(path, args_object(args)?)
    }

    /// Keeps a query subscribed without a stream of its own; its results arrive in
    /// [`LiveClient::transitions`].
    pub fn watch_value(&self, path: &str, args: Object) -> Result<QueryWatch, ClientError> {
        let query_id = self.add_query(path, args, None)?;
        Ok(QueryWatch {
            query_id,
            commands: self.commands.downgrade(),
        })
    }

    /// Every later transition as a [`TransitionBatch`] (after its results went to the
    /// subscriptions), in order; the receiver ends when the connection does.
    ///
    /// The listener is registered before this returns: any transition not delivered to it is
    /// already reflected in [`LiveClient::latest_ts`].
    pub fn transitions(
        &self,
    ) -> Result<mpsc::UnboundedReceiver<Arc<TransitionBatch>>, ClientError> {
        let (tx, rx) = mpsc::unbounded_channel();
        match self.shared.listeners.lock().as_mut() {
            Some(listeners) => listeners.push(tx),
            None => return Err(ClientError::Closed("the live client is closed".to_owned())),
        }
        Ok(rx)
    }

    /// Runs a query once over the socket (subscribe, first result, unsubscribe).
    pub async fn query_value(&self, path: &str, args: Object) -> Result<Value, ClientError> {
        let mut subscription = self.subscribe_value(path, args)?;
        match subscription.next_update().await {
            Some(update) => update.result,
            None => Err(ClientError::Closed("the live client is closed".to_owned())),
        }
    }

    /// [`LiveClient::query_value`] with typed arguments and result.
    pub async fn query<R: DeserializeOwned, A: Serialize>(
        &self,
        function: impl FunctionName<kind::Query, Public, A, R>,
        args: A,
    ) -> Result<R, ClientError> {
        decode_result(
            &self
                .query_value(function.path(), args_object(args)?)
                .await?,
        )
    }

    /// Runs a mutation; returns its result and commit timestamp once a transition at or after
    /// that timestamp has been received (read-your-writes: every subscription reflects it).
    /// Re-sent with the same request id after a reconnect, so it runs at most once.
    pub async fn mutation_with_ts(
        &self,
        path: &str,
        args: Object,
    ) -> Result<(Value, u64), ClientError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Mutation {
            path: path.to_owned(),
            args,
            reply,
        })?;
        rx.await
            .map_err(|_| ClientError::Closed("the live client is closed".to_owned()))?
    }

    /// Runs a mutation; see [`LiveClient::mutation_with_ts`].
    pub async fn mutation_value(&self, path: &str, args: Object) -> Result<Value, ClientError> {
        Ok(self.mutation_with_ts(path, args).await?.0)
    }

    /// [`LiveClient::mutation_value`] with typed arguments and result.
    pub async fn mutation<R: DeserializeOwned, A: Serialize>(
        &self,
        function: impl FunctionName<kind::Mutation, Public, A, R>,
        args: A,
    ) -> Result<R, ClientError> {
        decode_result(
            &self
                .mutation_value(function.path(), args_object(args)?)
                .await?,
        )
    }

    /// Runs an action. An action in flight when the connection drops fails with
    /// [`ClientError::Transport`] (it may or may not have run), as in JS.
    pub async fn action_value(&self, path: &str, args: Object) -> Result<Value, ClientError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Action {
            path: path.to_owned(),
            args,
            reply,
        })?;
        rx.await
            .map_err(|_| ClientError::Closed("the live client is closed".to_owned()))?
    }

    /// [`LiveClient::action_value`] with typed arguments and result.
    pub async fn action<R: DeserializeOwned, A: Serialize>(
        &self,
        function: impl FunctionName<kind::Action, Public, A, R>,
        args: A,
    ) -> Result<R, ClientError> {
        decode_result(
            &self
                .action_value(function.path(), args_object(args)?)
                .await?,
        )
    }

    /// Authenticates with tokens from `fetch`, refreshed `refresh_leeway` before they expire on
    /// the open socket (subscriptions stay), re-fetched with `force_refresh = true` after an
    /// `AuthError` (at most twice in a row), then [`AuthState::SignedOut`]. Calls made while
    /// the first token is fetched wait for it.
    pub fn set_auth_fetcher<F, Fut>(&self, fetch: F) -> Result<(), ClientError>
    where
        F: Fn(bool) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<String>> + Send + 'static,
    {
        let fetcher: AuthTokenFetcher = Arc::new(move |force| Box::pin(fetch(force)));
        self.send(Command::SetAuth(AuthMode::Fetcher(fetcher)))
    }

    /// Authenticates with a fixed token (never refreshed; an `AuthError` signs out).
    pub fn set_auth(&self, token: impl Into<String>) -> Result<(), ClientError> {
        self.send(Command::SetAuth(AuthMode::Static(token.into())))
    }

    /// Drops authentication; later calls run anonymously.
    pub fn clear_auth(&self) -> Result<(), ClientError> {
        self.send(Command::SetAuth(AuthMode::None))
    }

    /// The current [`AuthState`].
    pub fn auth_state(&self) -> AuthState {
        *self.shared.auth.borrow()
    }

    /// Observes [`AuthState`] changes.
    pub fn watch_auth(&self) -> watch::Receiver<AuthState> {
        self.shared.auth.clone()
    }

    /// The timestamp of the latest transition received (0 before the first).
    pub fn latest_ts(&self) -> u64 {
        *self.shared.ts.borrow()
    }

    /// Observes the latest transition timestamp.
    pub fn watch_ts(&self) -> watch::Receiver<u64> {
        self.shared.ts.clone()
    }

    /// Asks the server for a transition at its latest timestamp (an empty query-set change),
    /// so that [`LiveClient::latest_ts`] catches up even when no subscribed result changed.
    pub fn request_sync(&self) -> Result<(), ClientError> {
        self.send(Command::Sync)
    }

    /// Waits until a transition at or after `ts` has been received (asking for one first).
    pub async fn wait_for_ts(&self, ts: u64, timeout: Duration) -> Result<(), ClientError> {
        let mut watch = self.watch_ts();
        if *watch.borrow() >= ts {
            return Ok(());
        }
        self.request_sync()?;
        wait_watch_ts(&mut watch, ts, timeout).await
    }

    /// What the connection has done so far.
    pub fn stats(&self) -> ConnectionStats {
        let s = &self.shared.stats;
        ConnectionStats {
            connects: s.connects.load(Ordering::Relaxed),
            authenticates: s.authenticates.load(Ordering::Relaxed),
            auth_errors: s.auth_errors.load(Ordering::Relaxed),
            transitions: s.transitions.load(Ordering::Relaxed),
            query_adds: s.query_adds.load(Ordering::Relaxed),
            query_removes: s.query_removes.load(Ordering::Relaxed),
        }
    }

    /// Closes the connection now (for every clone); pending calls fail with
    /// [`ClientError::Closed`].
    pub fn close(&self) {
        let _ = self.commands.send(Command::Close);
    }

    /// Resolves once the client has closed: its socket closed (with a close frame) and its
    /// background tasks ended — after [`LiveClient::close`], or when every clone was dropped.
    pub async fn closed(&self) {
        self.shared.tasks.stopped().await;
    }
}

/// Waits until `watch` holds a value ≥ `ts`.
pub(crate) async fn wait_watch_ts(
    watch: &mut watch::Receiver<u64>,
    ts: u64,
    timeout: Duration,
) -> Result<(), ClientError> {
    match tokio::time::timeout(timeout, watch.wait_for(|t| *t >= ts)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(_)) => Err(ClientError::Closed("the live client is closed".to_owned())),
        Err(_) => Err(ClientError::Closed(format!(
            "timed out after {timeout:?} waiting for timestamp {ts}"
        ))),
    }
}

/// Where the worker puts a subscription's latest result.
pub(crate) type UpdateSender = watch::Sender<Option<QueryUpdate>>;

/// A subscribed query: a [`Stream`](futures::Stream) of [`QueryUpdate`]s, the latest result
/// when read slower than results arrive. Dropping it unsubscribes.
pub struct Subscription {
    query_id: u32,
    updates: WatchStream<Option<QueryUpdate>>,
    commands: mpsc::WeakUnboundedSender<Command>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("query_id", &self.query_id)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// The query's id on the connection.
    pub fn query_id(&self) -> u32 {
        self.query_id
    }

    /// The next result; `None` once the client is closed.
    pub async fn next_update(&mut self) -> Option<QueryUpdate> {
        futures::StreamExt::next(self).await
    }
}

impl futures::Stream for Subscription {
    type Item = QueryUpdate;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<QueryUpdate>> {
        loop {
            match Pin::new(&mut self.updates).poll_next(cx) {
                Poll::Ready(Some(Some(update))) => return Poll::Ready(Some(update)),
                Poll::Ready(Some(None)) => continue,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(commands) = self.commands.upgrade() {
            let _ = commands.send(Command::Unsubscribe(self.query_id));
        }
    }
}

/// A query kept subscribed; results go to [`LiveClient::transitions`]. Dropping it
/// unsubscribes.
#[derive(Debug)]
pub struct QueryWatch {
    query_id: u32,
    commands: mpsc::WeakUnboundedSender<Command>,
}

impl QueryWatch {
    /// The query's id on the connection.
    pub fn query_id(&self) -> u32 {
        self.query_id
    }
}

impl Drop for QueryWatch {
    fn drop(&mut self) {
        if let Some(commands) = self.commands.upgrade() {
            let _ = commands.send(Command::Unsubscribe(self.query_id));
        }
    }
}

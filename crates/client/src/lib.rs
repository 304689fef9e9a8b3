//! Keel's Rust clients: the Rust side of `ConvexHttpClient`, of `ConvexClient` with
//! `ConvexProviderWithClerk`'s token refresh, and of `@convex-dev/react-query`'s
//! `ConvexQueryClient`.
//!
//! * [`HttpClient`] — the HTTP API: `query`/`mutation`/`action`, one-snapshot reads
//!   (`/api/query_ts` + `/api/query_at_ts`) for SSR, cheap per-request copies sharing one pool;
//!   in the backend's own process ([`HttpClient::in_process`]) the same calls without HTTP.
//! * [`LiveClient`] — the WebSocket sync protocol: subscriptions, mutations resolved only when a
//!   transition reflects them, reconnects with backoff that re-add every query under its
//!   original id and re-send in-flight mutations under the same session and request ids, and
//!   auth from a token fetcher refreshed before expiry on the open socket. In the backend's
//!   own process ([`LiveClient::in_process`]) the same client over the backend's in-process
//!   sync sessions: typed messages on channels, no socket, the same session on the backend.
//! * [`QueryClient`] — a query cache keyed like `ConvexQueryClient`
//!   (`convexQuery|<path>|<args JSON>`), kept live by a [`LiveClient`], with GC, change
//!   notices, reads of several entries at one timestamp and "wait until the cache reached
//!   timestamp T".
//!
//! # How the web tier uses it
//!
//! ```no_run
//! # async fn run(token: String, session_token: impl Fn(bool) -> Option<String> + Send + Sync + 'static)
//! # -> Result<(), keel_client::ClientError> {
//! use std::time::Duration;
//! use keel_client::{HttpClient, LiveClient, QueryClient, QueryClientConfig, QueryKey};
//! // Once per process: one connection pool.
//! let http = HttpClient::new("http://127.0.0.1:3210")?;
//! // SSR, per request: the user's token, all loaders at one snapshot.
//! let page = QueryClient::with_http(http.with_auth(token));
//! let posts = QueryKey::with_args("posts:list", serde_json::json!({}))?;
//! page.ensure_query_data(&posts).await?;
//! // Live, per signed-in session: one socket, tokens refreshed before they expire.
//! let live = LiveClient::new("http://127.0.0.1:3210")?;
//! live.set_auth_fetcher(move |force| std::future::ready(session_token(force)))?;
//! let cache = QueryClient::new(QueryClientConfig::default());
//! cache.connect(&live)?;
//! cache.ensure_query_data(&posts).await?; // subscribed; its first live result
//! let mut changed = cache.updates(); // → re-render the pages that read a changed entry
//! let (_at, _entries) = cache.read_at_once(&[posts.clone()]); // one consistent snapshot
//! // After a mutation: re-render once the cache reflects it.
//! let (_, ts) = live.mutation_with_ts("posts:create", Default::default()).await?;
//! cache.wait_for_ts(ts, Duration::from_secs(5)).await?;
//! # let _ = changed.try_recv(); Ok(()) }
//! ```
//!
//! # Why not the official `convex` crate
//!
//! `convex` 0.10.4's `ConvexClient` cannot do what [`LiveClient`] must:
//! * it calls its auth callback only when it (re)connects — a token change is applied by
//!   restarting the protocol, so there is no refresh on the open socket, and nothing schedules
//!   a refresh before `exp`;
//! * it treats `AuthError` as a reason to reconnect and never tells its owner, so "retry with a
//!   forced refresh at most twice, then report signed out" cannot be built on it, and it has no
//!   observable auth state;
//! * it does not expose transition timestamps, so "wait until the cache reached T" is not
//!   possible, and it resolves mutations at the next transition rather than at one whose `ts`
//!   covers the commit;
//! * it uses a fresh session id per socket, so the backend cannot de-duplicate a mutation
//!   re-sent after a reconnect.
//!
//! [`LiveClient`] is therefore our own client over `tokio-tungstenite`, with the message types
//! of `keel_protocol` (which re-exports `convex_sync_types`, the wire types of the official
//! client and backend). It follows the sequencing rules of the protocol: per-socket versions
//! starting at 0 and checked transition by transition, reconnect order (`Connect` with
//! `maxObservedTimestamp` → `Authenticate{baseVersion: 0}` → `ModifyQuerySet` re-adding every
//! query with its id and journal → re-sent mutations), backoff from 100 ms doubling to 15 s
//! with ±50 % jitter, and an idle timeout (the server pings every 15 s).
//!
//! Every `query`/`mutation`/`action` method takes a function's path or its typed reference
//! ([`keel_protocol::QueryRef`], [`keel_protocol::MutationRef`], [`keel_protocol::ActionRef`]:
//! the app's `api`), whose argument and result types the compiler then checks; a reference of
//! another kind, or an internal one, does not compile.
//!
//! # Layout
//! * `error` — [`ClientError`], each variant with a short code.
//! * `convert` — typed arguments and results to and from Convex values.
//! * `http` — [`HttpClient`]: function calls over the HTTP API or, in the backend's process,
//!   through its [`InProcessBackend`] (one error mapping for both), and file uploads to the
//!   deployment's upload URLs ([`HttpClient::upload_file`]).
//! * `jwt` — a token's `iat`/`exp` and the refresh schedule.
//! * `live` — [`LiveClient`], [`Subscription`], [`QueryWatch`], [`LiveConfig`], [`AuthState`].
//! * `live::worker` — the task owning the connection: connect, re-subscribe, resend, reconnect
//!   ([`LiveClient::closed`] waits for it to end). It owns the `Worker`'s state: every field is
//!   private to it, and only its two submodules add methods over it. `live` (the handle) talks to
//!   it only through commands.
//! * `live::worker::connection` — what carries its messages: a WebSocket, or an in-process
//!   session's channels (`keel_protocol::InProcessSync`); the worker is the same for both.
//!   Results travel as `Arc<Value>` from there on: in process, the backend's own execution's
//!   value reaches the [`QueryClient`]'s entries ([`TransitionBatch`], [`CacheEntry::data`])
//!   without a copy; only APIs that hand out owned values ([`Subscription`],
//!   [`QueryClient::ensure_query_data`]) copy, at the edge.
//! * `live::worker::transition` — applying transitions and mutation responses.
//! * `live::worker::auth` — fetch, authenticate, confirm, refresh, retry, sign out (the
//!   worker's auth state and [`AuthState`]).
//! * `query_client` — [`QueryClient`]: fetches, the live bridge, GC, `wait_for_ts`.
//! * `query_client::key` — [`QueryKey`], [`CacheEntry`], [`CacheUpdate`].

mod convert;
mod error;
mod http;
mod jwt;
mod live;
mod query_client;

pub use error::ClientError;
pub use http::HttpClient;
pub use keel_protocol::InProcessBackend;
pub use live::{
    AuthState, AuthTokenFetcher, ConnectionStats, LiveClient, LiveConfig, QueryUpdate, QueryWatch,
    Subscription, TransitionBatch,
};
pub use query_client::{
    CacheEntry, CacheUpdate, QueryClient, QueryClientConfig, QueryKey, QueryStatus,
};

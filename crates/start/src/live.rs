//! The live layer: one event stream per open page (`GET /_keel/live?q=…`), one backend
//! WebSocket per signed-in session.
//!
//! Per session (keyed by the session id; one shared anonymous session for signed-out pages),
//! the [`LiveHub`] keeps a [`LiveClient`] authenticated by a token fetcher (the
//! authenticator's `get_token("convex")`, refreshed before expiry on the open socket, like
//! `ConvexProviderWithClerk`) and a [`QueryClient`] connected to it. A page's stream lists the
//! queries the page was rendered from, each with a digest of the value the page showed; the
//! stream subscribes them in the session's cache and sends:
//! * `ready` once every query is subscribed;
//! * `refresh` whenever a query's value differs from what the page shows (also right away
//!   when it changed between the render and the stream opening), so the runtime refetches
//!   the page and morphs it;
//! * `signed-out` when the session ends (sign-out here, or the fetcher finds no token), then
//!   the stream ends.
//!
//! A session lingers for a while after its last stream closes, so navigating between pages
//! reuses the socket.
//!
//! Streams and sessions run as the hub's tasks: once they are told to stop (a graceful
//! shutdown), every stream ends — the browser runtime reconnects by itself, to this process
//! until it stops accepting, then to its successor — and every session closes its socket.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_lc_rs::digest;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use keel_auth::{AuthState, Authenticator};
use keel_client::AuthState as LiveAuthState;
use keel_client::{ClientError, LiveClient, LiveConfig, QueryClient, QueryClientConfig, QueryKey};
use keel_values::Value;
use parking_lot::Mutex;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;

/// Where page streams are served.
pub const LIVE_PATH: &str = "/_keel/live";

/// Most queries one page stream may list.
const MAX_QUERIES: usize = 64;
/// How long a fetch for a live query may wait.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// How often an idle stream pings (also finds closed browsers).
const PING_EVERY: Duration = Duration::from_secs(15);

/// One query of a page, as the page's live address lists it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct PageQuery {
    /// Function path.
    #[serde(rename = "p")]
    pub(crate) path: String,
    /// Arguments (Convex JSON).
    #[serde(rename = "a")]
    pub(crate) args: serde_json::Value,
    /// [`digest`] of the value the page showed.
    #[serde(rename = "d")]
    pub(crate) digest: String,
}

/// A short digest of a query result (`e` for an error or no value).
pub(crate) fn digest(result: Option<Result<&Value, &ClientError>>) -> String {
    match result {
        Some(Ok(value)) => {
            let d = digest::digest(
                &digest::SHA256,
                keel_values::to_json_string(value).as_bytes(),
            );
            d.as_ref()[..12]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        }
        Some(Err(_)) | None => "e".to_owned(),
    }
}

/// `q` and `u` parameters of a page's live address.
pub(crate) fn live_url(queries: &[PageQuery], user_id: Option<&str>) -> String {
    let q = serde_json::to_string(queries).unwrap_or_else(|_| "[]".to_owned());
    format!(
        "{LIVE_PATH}?q={}&u={}",
        encode_component(&q),
        encode_component(user_id.unwrap_or(""))
    )
}

/// Everything but RFC 3986's unreserved characters (`A-Z a-z 0-9 - _ . ~`).
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes `text` for a query value or path segment.
pub(crate) fn encode_component(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

/// The backend connection and cache of one session.
pub(crate) struct LiveSession {
    key: String,
    live: LiveClient,
    query_client: QueryClient,
    ended: watch::Sender<bool>,
    streams: AtomicUsize,
}

/// Every live session of the web tier.
pub(crate) struct LiveHub {
    backend_url: String,
    authenticator: Option<Arc<dyn Authenticator>>,
    token_template: Option<String>,
    linger: Duration,
    sessions: Mutex<HashMap<String, Arc<LiveSession>>>,
    /// Page streams and lingering sessions.
    tasks: keel_tasks::Tasks,
    /// How many page streams are open (`keel_live_pages`).
    live_pages: keel_metrics::GaugeVec,
}

impl LiveHub {
    pub(crate) fn new(
        backend_url: String,
        authenticator: Option<Arc<dyn Authenticator>>,
        token_template: Option<String>,
        linger: Duration,
        tasks: keel_tasks::Tasks,
        metrics: &keel_metrics::Registry,
    ) -> LiveHub {
        LiveHub {
            backend_url,
            authenticator,
            token_template,
            linger,
            sessions: Mutex::new(HashMap::new()),
            tasks,
            live_pages: metrics.gauge(
                "keel_live_pages",
                "Open pages kept live (event streams).",
                &[],
            ),
        }
    }

    /// The session of `auth` (created on first use), with one more stream counted.
    fn acquire(&self, auth: &AuthState) -> Result<Arc<LiveSession>, ClientError> {
        let key = match (&auth.user_id, &auth.session_id) {
            (Some(_), Some(sid)) => sid.clone(),
            _ => String::new(),
        };
        let mut sessions = self.sessions.lock();
        if let Some(session) = sessions.get(&key) {
            session.streams.fetch_add(1, Ordering::SeqCst);
            return Ok(session.clone());
        }
        let live = LiveClient::with_config(LiveConfig::new(self.backend_url.clone()))?;
        if !key.is_empty()
            && let Some(authenticator) = &self.authenticator
        {
            let authenticator = authenticator.clone();
            let state = auth.clone();
            let template = self.token_template.clone();
            live.set_auth_fetcher(move |force_refresh| {
                let authenticator = authenticator.clone();
                let state = state.clone();
                let template = template.clone();
                async move {
                    let token = if force_refresh {
                        authenticator
                            .get_fresh_token(&state, template.as_deref())
                            .await
                    } else {
                        authenticator.get_token(&state, template.as_deref()).await
                    };
                    match token {
                        Ok(token) => token,
                        Err(error) => {
                            tracing::warn!(%error, "no backend token for a live session");
                            None
                        }
                    }
                }
            })?;
        }
        // Open pages touch their entries every minute; entries of closed pages (and their
        // backend subscriptions) go after three.
        let query_client = QueryClient::new(QueryClientConfig {
            gc_time: Duration::from_secs(180),
            http: None,
            consistent: false,
            fetch_timeout: FETCH_TIMEOUT,
        });
        query_client.connect(&live)?;
        let session = Arc::new(LiveSession {
            key: key.clone(),
            live,
            query_client,
            ended: watch::channel(false).0,
            streams: AtomicUsize::new(1),
        });
        tracing::debug!(signed_in = !key.is_empty(), "live session opened");
        sessions.insert(key, session.clone());
        Ok(session)
    }

    /// One stream fewer; the session closes `linger` after its last stream (at once when the
    /// hub is stopping).
    fn release(self: &Arc<Self>, session: &Arc<LiveSession>) {
        if session.streams.fetch_sub(1, Ordering::SeqCst) != 1 {
            return;
        }
        let hub = self.clone();
        let session = session.clone();
        self.tasks.spawn("live session linger", async move {
            tokio::select! {
                () = tokio::time::sleep(hub.linger) => {}
                () = hub.tasks.stopping() => {}
            }
            let closed = {
                let mut sessions = hub.sessions.lock();
                let idle = session.streams.load(Ordering::SeqCst) == 0
                    && sessions
                        .get(&session.key)
                        .is_some_and(|s| Arc::ptr_eq(s, &session));
                if idle {
                    sessions.remove(&session.key);
                    session.live.close();
                    tracing::debug!("live session closed");
                }
                idle
            };
            if closed {
                // Counted until its socket is closed, so a shutdown waits for the close frame.
                session.live.closed().await;
            }
        });
    }

    /// Ends session `session_id` now (sign-out): its streams get `signed-out`.
    pub(crate) fn end_session(&self, session_id: &str) {
        if let Some(session) = self.sessions.lock().remove(session_id) {
            session.ended.send_replace(true);
            session.live.close();
        }
    }

    /// The event stream of one page.
    pub(crate) fn stream(
        self: &Arc<Self>,
        auth: &AuthState,
        page_user: Option<&str>,
        queries: Vec<(QueryKey, String)>,
    ) -> Sse<impl Stream<Item = Result<Event, Infallible>> + use<>> {
        let (tx, rx) = mpsc::channel::<Event>(16);
        let signed_in_as = auth.user_id.as_deref().unwrap_or("");
        if self.tasks.is_stopping() {
            // Shutting down: the stream ends at once and the browser tries again later.
        } else if page_user.unwrap_or("") != signed_in_as {
            // The page was rendered for someone else (or signed in, and the session is gone).
            let _ = tx.try_send(Event::default().event("signed-out").data("{}"));
        } else {
            match self.acquire(auth) {
                Ok(session) => {
                    let hub = self.clone();
                    self.tasks.spawn("live stream", async move {
                        hub.live_pages.add(&[], 1.0);
                        let guard = StreamGuard {
                            hub: hub.clone(),
                            session: session.clone(),
                        };
                        tokio::select! {
                            () = run_stream(&session, queries, &tx) => {}
                            () = hub.tasks.stopping() => {}
                        }
                        drop(guard);
                    });
                }
                Err(error) => {
                    tracing::error!(%error, "cannot open a live session");
                }
            }
        }
        let stream = ReceiverStream::new(rx).map(Ok::<_, Infallible>);
        Sse::new(stream).keep_alive(KeepAlive::new().interval(PING_EVERY))
    }
}

struct StreamGuard {
    hub: Arc<LiveHub>,
    session: Arc<LiveSession>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.hub.live_pages.add(&[], -1.0);
        self.hub.release(&self.session);
    }
}

/// Decodes the `q` parameter.
pub(crate) fn parse_queries(q: &str) -> Result<Vec<(QueryKey, String)>, String> {
    let list: Vec<PageQuery> =
        serde_json::from_str(q).map_err(|e| format!("`q` is not a query list: {e}"))?;
    if list.len() > MAX_QUERIES {
        return Err(format!("at most {MAX_QUERIES} queries per page"));
    }
    list.into_iter()
        .map(|q| {
            let args = match keel_values::from_json(&q.args) {
                Ok(Value::Object(o)) => o,
                Ok(_) => return Err("query arguments must be an object".to_owned()),
                Err(e) => return Err(format!("query arguments are not Convex JSON: {e}")),
            };
            Ok((QueryKey::new(q.path, args), q.digest))
        })
        .collect()
}

/// The digest of `key`'s current cache entry.
fn cached_digest(query_client: &QueryClient, key: &QueryKey) -> String {
    match query_client.get_entry(key) {
        Some(entry) => match (&entry.error, &entry.data) {
            (Some(error), _) => digest(Some(Err(error))),
            (None, Some(value)) => digest(Some(Ok(value))),
            (None, None) => digest(None),
        },
        None => digest(None),
    }
}

async fn send(tx: &mpsc::Sender<Event>, name: &str, data: String) -> bool {
    tx.send(Event::default().event(name).data(data))
        .await
        .is_ok()
}

/// Runs one page stream until the browser goes away or the session ends.
async fn run_stream(
    session: &LiveSession,
    queries: Vec<(QueryKey, String)>,
    tx: &mpsc::Sender<Event>,
) {
    let Ok(mut transitions) = session.live.transitions() else {
        return;
    };
    let mut auth = session.live.watch_auth();
    let mut ended = session.ended.subscribe();
    let qc = &session.query_client;
    let fetches =
        futures::future::join_all(queries.iter().map(|(key, _)| qc.ensure_query_data(key)));
    let results = tokio::select! {
        results = fetches => results,
        () = tx.closed() => return,
    };
    // A transition the connection handled before `transitions` was registered reaches the cache
    // but not this stream: let the cache catch up with the connection, then compare what the
    // cache holds now.
    let _ = qc
        .wait_for_ts(session.live.latest_ts(), FETCH_TIMEOUT)
        .await;
    let mut shown: Vec<String> = queries.iter().map(|(_, d)| d.clone()).collect();
    let mut changed = false;
    for (i, result) in results.iter().enumerate() {
        let now = match qc.get_entry(&queries[i].0) {
            Some(_) => cached_digest(qc, &queries[i].0),
            None => digest(Some(result.as_ref())),
        };
        if now != shown[i] {
            changed = true;
            shown[i] = now;
        }
    }
    if !send(tx, "ready", "{}".to_owned()).await {
        return;
    }
    if changed
        && !send(
            tx,
            "refresh",
            serde_json::json!({"ts": qc.cache_ts()}).to_string(),
        )
        .await
    {
        return;
    }
    let mut touch = tokio::time::interval(Duration::from_secs(60));
    loop {
        if *ended.borrow() || *auth.borrow() == LiveAuthState::SignedOut {
            let _ = send(tx, "signed-out", "{}".to_owned()).await;
            return;
        }
        tokio::select! {
            () = tx.closed() => return,
            batch = transitions.recv() => {
                let Some(batch) = batch else {
                    let _ = send(tx, "signed-out", "{}".to_owned()).await;
                    return;
                };
                // The cache applies the same batch on its own task; wait for it.
                let _ = qc.wait_for_ts(batch.ts, Duration::from_secs(5)).await;
                let mut changed = false;
                for (i, (key, _)) in queries.iter().enumerate() {
                    let now = cached_digest(qc, key);
                    if now != shown[i] {
                        changed = true;
                        shown[i] = now;
                    }
                }
                if changed && !send(tx, "refresh", serde_json::json!({"ts": batch.ts}).to_string()).await {
                    return;
                }
            }
            result = auth.changed() => {
                // The connection is gone (the session ended): the same end as a closed
                // transition feed.
                if result.is_err() {
                    let _ = send(tx, "signed-out", "{}".to_owned()).await;
                    return;
                }
            }
            result = ended.changed() => {
                if result.is_err() {
                    let _ = send(tx, "signed-out", "{}".to_owned()).await;
                    return;
                }
            }
            _ = touch.tick() => {
                // Keep the entries from being collected while the page is open.
                for (key, _) in &queries {
                    let _ = qc.get_query_data(key);
                }
            }
        }
    }
}

/// The page's query list for its live address, with digests of what the page shows.
pub(crate) fn page_queries(query_client: &QueryClient, keys: &[QueryKey]) -> Vec<PageQuery> {
    keys.iter()
        .map(|key| PageQuery {
            path: key.path().to_owned(),
            args: keel_values::to_json(&Value::Object(key.args().clone())),
            digest: cached_digest(query_client, key),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_address_round_trips_and_bad_lists_are_refused() {
        let value = Value::from("hello");
        let queries = vec![PageQuery {
            path: "posts:get".to_owned(),
            args: serde_json::json!({"id": "a b&c", "n": {"$integer": "AQAAAAAAAAA="}}),
            digest: digest(Some(Ok(&value))),
        }];
        let url = live_url(&queries, Some("user_1"));
        assert!(url.starts_with("/_keel/live?q=%5B%7B%22p%22"), "{url}");
        assert!(url.ends_with("&u=user_1"));
        let q = url.split("q=").nth(1).unwrap().split('&').next().unwrap();
        let parsed = parse_queries(&crate::params::percent_decode(q)).unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].0.path(), "posts:get");
        assert_eq!(parsed[0].0.args()["n"], Value::Int64(1));
        assert_eq!(parsed[0].1, queries[0].digest);
        assert!(parse_queries("{").is_err());
        assert!(parse_queries(r#"[{"p":"a:b","a":[1],"d":"x"}]"#).is_err());
        let many = format!("[{}]", vec![r#"{"p":"a:b","a":{},"d":"x"}"#; 65].join(","));
        assert!(parse_queries(&many).unwrap_err().contains("at most 64"));
    }

    #[test]
    fn digests_tell_values_apart() {
        let a = digest(Some(Ok(&Value::from("a"))));
        assert_eq!(a, digest(Some(Ok(&Value::from("a")))));
        assert_ne!(a, digest(Some(Ok(&Value::from("b")))));
        // int64 1 and float64 1 are different Convex values.
        assert_ne!(
            digest(Some(Ok(&Value::Int64(1)))),
            digest(Some(Ok(&Value::Float64(1.0))))
        );
        assert_eq!(digest(None), "e");
        assert_eq!(a.len(), 24);
    }
}

//! The live layer: one event stream per open page (`GET /_keel/live?q=…&u=…&p=…`), one
//! backend connection per signed-in session — a WebSocket, or, when the backend runs in this
//! process (`StartConfig::in_process_backend`), its in-process sync session
//! ([`LiveClient::in_process`]: no socket, the same session and token checks).
//!
//! Per session (keyed by the session id; one shared anonymous session for signed-out pages),
//! the [`LiveHub`] keeps a [`LiveClient`] authenticated by a token fetcher (the
//! authenticator's `get_token("convex")`, refreshed before expiry on the open socket, like
//! `ConvexProviderWithClerk`) and a [`QueryClient`] connected to it. A page's stream lists the
//! queries the page was rendered from, each with a digest of the value the page showed, and
//! the page's address; the stream subscribes the queries in the session's cache and joins the
//! page's [`PageRenderer`] (one per session and address, shared by every tab), which
//! re-renders the page from the cache whenever one of its queries changes. The stream sends:
//! * `ready` once every query is subscribed;
//! * `render` with the page's new body (or splices of the previous one) whenever what the page shows
//!   changed — also right away when it changed between the page's render and the stream
//!   opening; the runtime morphs it in without fetching;
//! * `refresh` when the page cannot be rendered from the cache (it now redirects): the
//!   runtime fetches it;
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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use http::{HeaderMap, Uri};
use keel_auth::{AuthState, Authenticator};
use keel_client::AuthState as LiveAuthState;
use keel_client::{
    ClientError, InProcessBackend, LiveClient, LiveConfig, QueryClient, QueryClientConfig, QueryKey,
};
use keel_values::Value;
use parking_lot::Mutex;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;

use crate::digest::cached_digest;
use crate::live_render::{PageRenderer, PushedRender, RenderFn, fingerprint};

/// Where page streams are served.
pub const LIVE_PATH: &str = "/_keel/live";

/// Most queries one page stream may list.
const MAX_QUERIES: usize = 64;
/// The longest page address a stream may name.
const MAX_PAGE_ADDRESS: usize = 2048;
/// How long a fetch for a live query may wait.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// How often an idle stream pings (also finds closed browsers).
const PING_EVERY: Duration = Duration::from_secs(15);
/// Events one page stream may have queued for the browser beyond the one being written. One:
/// a tab that reads slower than renders arrive is sent the newest render when it has room
/// again (with splices from the render it was sent last), not every render in between.
const STREAM_QUEUE: usize = 1;

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

/// A page's live address: its queries (`q`), the user it was rendered for (`u`) and its own
/// address (`p`, path and query), which the web tier re-renders.
pub(crate) fn live_url(queries: &[PageQuery], user_id: Option<&str>, page: &str) -> String {
    let q = serde_json::to_string(queries).unwrap_or_else(|_| "[]".to_owned());
    format!(
        "{LIVE_PATH}?q={}&u={}&p={}",
        encode_component(&q),
        encode_component(user_id.unwrap_or("")),
        encode_component(page)
    )
}

/// Decodes the `p` parameter: a path on this site (not the framework's own endpoints), with
/// its query string.
pub(crate) fn parse_page(p: &str) -> Result<Uri, String> {
    if p.len() > MAX_PAGE_ADDRESS {
        return Err(format!("`p` is longer than {MAX_PAGE_ADDRESS} bytes"));
    }
    if !p.starts_with('/') || p.starts_with("//") || p.contains('\\') || p.contains('#') {
        return Err("`p` must be a path on this site (`/posts?until=…`)".to_owned());
    }
    let uri: Uri = p
        .parse()
        .map_err(|e| format!("`p` is not a path and query: {e}"))?;
    if uri.path().starts_with("/_keel/") {
        return Err("`p` must be a page, not one of the framework's endpoints".to_owned());
    }
    Ok(uri)
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
    /// The renderers of the session's open pages, by address.
    renderers: Mutex<HashMap<String, Weak<PageRenderer>>>,
}

impl LiveSession {
    /// The renderer of page `uri` (started for `queries` if no tab of it is open).
    fn renderer(
        &self,
        tasks: &keel_tasks::Tasks,
        render: &RenderFn,
        page: (Uri, HeaderMap, AuthState),
        queries: &[(QueryKey, String)],
    ) -> Arc<PageRenderer> {
        let address = page.0.to_string();
        let mut renderers = self.renderers.lock();
        if let Some(renderer) = renderers.get(&address).and_then(Weak::upgrade) {
            return renderer;
        }
        renderers.retain(|_, r| r.strong_count() > 0);
        let renderer = PageRenderer::start(
            tasks,
            self.query_client.clone(),
            render.clone(),
            page,
            queries.iter().map(|(k, _)| k.clone()).collect(),
        );
        renderers.insert(address, Arc::downgrade(&renderer));
        renderer
    }
}

/// Every live session of the web tier.
pub(crate) struct LiveHub {
    backend_url: String,
    /// The backend when it runs in this process: sessions connect to it directly.
    in_process: Option<Arc<dyn InProcessBackend>>,
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
        in_process: Option<Arc<dyn InProcessBackend>>,
        authenticator: Option<Arc<dyn Authenticator>>,
        token_template: Option<String>,
        linger: Duration,
        tasks: keel_tasks::Tasks,
        metrics: &keel_metrics::Registry,
    ) -> LiveHub {
        LiveHub {
            backend_url,
            in_process,
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
        let config = LiveConfig::new(self.backend_url.clone());
        let live = match &self.in_process {
            Some(backend) => LiveClient::in_process(config, backend.clone()),
            None => LiveClient::with_config(config)?,
        };
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
            renderers: Mutex::new(HashMap::new()),
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

    /// The event stream of one page: `page` is its address and `queries` what it shows;
    /// changes are rendered with `render`.
    pub(crate) fn stream(
        self: &Arc<Self>,
        auth: &AuthState,
        page_user: Option<&str>,
        page: Option<(Uri, HeaderMap)>,
        queries: Vec<(QueryKey, String)>,
        render: RenderFn,
    ) -> Sse<impl Stream<Item = Result<Event, Infallible>> + use<>> {
        let (tx, rx) = mpsc::channel::<Event>(STREAM_QUEUE);
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
                    let auth = auth.clone();
                    self.tasks.spawn("live stream", async move {
                        hub.live_pages.add(&[], 1.0);
                        let guard = StreamGuard {
                            hub: hub.clone(),
                            session: session.clone(),
                        };
                        let renderer =
                            page.filter(|_| !queries.is_empty()).map(|(uri, headers)| {
                                session.renderer(
                                    &hub.tasks,
                                    &render,
                                    (uri, headers, auth),
                                    &queries,
                                )
                            });
                        tokio::select! {
                            () = run_stream(&session, renderer, queries, &tx) => {}
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

async fn send(tx: &mpsc::Sender<Event>, name: &str, data: String) -> bool {
    tx.send(Event::default().event(name).data(data))
        .await
        .is_ok()
}

/// Runs one page stream until the browser goes away or the session ends.
async fn run_stream(
    session: &LiveSession,
    renderer: Option<Arc<PageRenderer>>,
    queries: Vec<(QueryKey, String)>,
    tx: &mpsc::Sender<Event>,
) {
    let mut auth = session.live.watch_auth();
    let mut ended = session.ended.subscribe();
    // Every change the renderer publishes from now on reaches this stream.
    let mut renders = renderer.as_ref().map(|r| r.watch());
    let qc = &session.query_client;
    let fetches =
        futures::future::join_all(queries.iter().map(|(key, _)| qc.ensure_query_shared(key)));
    tokio::select! {
        _ = fetches => {}
        () = tx.closed() => return,
    }
    // A cached value that differs from what the page shows comes from a change since the
    // page's render, or from an older subscription whose results the page never showed (a
    // paginated query keeps the end of its first page while subscribed): subscribe those
    // afresh, so the page's renders continue from what a fetch reads now.
    let differing: Vec<&QueryKey> = queries
        .iter()
        .filter(|(key, digest)| cached_digest(qc, key) != *digest)
        .map(|(key, _)| key)
        .collect();
    if !differing.is_empty() {
        for key in &differing {
            qc.remove(key);
        }
        let fetches =
            futures::future::join_all(differing.iter().map(|k| qc.ensure_query_shared(k)));
        tokio::select! {
            _ = fetches => {}
            () = tx.closed() => return,
        }
    }
    // What the page shows, and whether the cache holds something newer: then the renderer
    // renders it for this tab (a render published before this tab joined is not sent: it
    // may show older values than the page).
    let mut shown = fingerprint(&queries);
    let stale = queries
        .iter()
        .any(|(key, digest)| cached_digest(qc, key) != *digest);
    if stale && let Some(renderer) = &renderer {
        renderer.want();
    }
    if !send(tx, "ready", "{}".to_owned()).await {
        return;
    }
    let mut last_sent: Option<Arc<PushedRender>> = None;
    let mut touch = tokio::time::interval(Duration::from_secs(60));
    loop {
        if *ended.borrow() || *auth.borrow() == LiveAuthState::SignedOut {
            let _ = send(tx, "signed-out", "{}".to_owned()).await;
            return;
        }
        tokio::select! {
            () = tx.closed() => return,
            changed = async { match &mut renders { Some(r) => r.changed().await, None => std::future::pending().await } } => {
                if changed.is_err() {
                    return;
                }
                let latest = renders.as_mut().and_then(|r| r.borrow_and_update().clone());
                if let Some(render) = latest
                    && render.fingerprint != shown
                {
                    if !push(tx, &render, last_sent.as_deref()).await {
                        return;
                    }
                    shown = render.fingerprint;
                    last_sent = Some(render);
                }
            }
            result = auth.changed() => {
                // The connection is gone (the session ended).
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
                let keys = renderer.as_ref().map(|r| r.deps()).unwrap_or_default();
                for key in queries.iter().map(|(k, _)| k).chain(&keys) {
                    let _ = qc.get_query_data(key);
                }
            }
        }
    }
}

/// Sends `render` to a tab that last got render `last_sent` (splices when they are smaller
/// than the body), or `refresh`.
async fn push(
    tx: &mpsc::Sender<Event>,
    render: &PushedRender,
    last_sent: Option<&PushedRender>,
) -> bool {
    match render.render_data(last_sent) {
        Some(data) => tx
            .send(Event::default().event("render").data(&*data))
            .await
            .is_ok(),
        None => {
            send(
                tx,
                "refresh",
                serde_json::json!({"seq": render.seq}).to_string(),
            )
            .await
        }
    }
}

/// The page's query list for its live address: the queries it read with the digests of what
/// it shows.
pub(crate) fn page_queries(read: &[(QueryKey, String)]) -> Vec<PageQuery> {
    read.iter()
        .map(|(key, digest)| PageQuery {
            path: key.path().to_owned(),
            args: keel_values::to_json(&Value::Object(key.args().clone())),
            digest: digest.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::digest;

    #[test]
    fn live_address_round_trips_and_bad_lists_are_refused() {
        let value = Value::from("hello");
        let queries = vec![PageQuery {
            path: "posts:get".to_owned(),
            args: serde_json::json!({"id": "a b&c", "n": {"$integer": "AQAAAAAAAAA="}}),
            digest: digest(Some(Ok(&value))),
        }];
        let url = live_url(&queries, Some("user_1"), "/posts?until=a b");
        assert!(url.starts_with("/_keel/live?q=%5B%7B%22p%22"), "{url}");
        assert!(
            url.ends_with("&u=user_1&p=%2Fposts%3Funtil%3Da%20b"),
            "{url}"
        );
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

    /// A tab that does not read its stream while renders arrive is sent, once it reads again,
    /// the render queued before it stopped, the one its stream was sending, and then the
    /// newest — not every render in between.
    #[tokio::test]
    async fn a_slow_tab_is_sent_the_newest_render_not_every_one() {
        use std::sync::atomic::AtomicU64;

        use crate::live_render::{RenderInput, RenderOutcome};

        const RENDERS: u64 = 20;
        let wait = Duration::from_secs(10);
        let tasks = keel_tasks::Tasks::new("live test");
        // The page reads no query, so the session's connection (to an address where nothing
        // listens) is never needed.
        let live = LiveClient::with_config(LiveConfig::new("http://127.0.0.1:9")).unwrap();
        let query_client = QueryClient::new(QueryClientConfig::default());
        let session = Arc::new(LiveSession {
            key: String::new(),
            live,
            query_client: query_client.clone(),
            ended: watch::channel(false).0,
            streams: AtomicUsize::new(1),
            renderers: Mutex::new(HashMap::new()),
        });
        let count = Arc::new(AtomicU64::new(0));
        let render: RenderFn = {
            let count = count.clone();
            Arc::new(move |_: RenderInput| {
                let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                Box::pin(async move {
                    RenderOutcome::Page {
                        title: None,
                        segments: vec![format!("<p>render {n}</p>")],
                        read: vec![(
                            QueryKey::new("posts:count", Default::default()),
                            format!("d{n}"),
                        )],
                    }
                })
            })
        };
        let page = (
            "/posts".parse().unwrap(),
            HeaderMap::new(),
            AuthState::signed_out(),
        );
        let renderer = PageRenderer::start(&tasks, query_client, render, page, Vec::new());
        let (tx, mut rx) = mpsc::channel::<Event>(STREAM_QUEUE);
        {
            let (session, renderer) = (session.clone(), renderer.clone());
            tasks.spawn("test stream", async move {
                run_stream(&session, Some(renderer), Vec::new(), &tx).await;
            });
        }
        let text = |event: &Event| format!("{event:?}");
        let ready = tokio::time::timeout(wait, rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(text(&ready).contains("event: ready"), "{ready:?}");

        // Renders 1..=20, each published before the next is asked for; the tab reads nothing.
        let mut published = renderer.watch();
        for n in 1..=RENDERS {
            renderer.want();
            tokio::time::timeout(
                wait,
                published.wait_for(|r| r.as_ref().is_some_and(|r| r.seq == n)),
            )
            .await
            .expect("the render in time")
            .unwrap();
        }

        let newest = format!("<p>render {RENDERS}</p>");
        let mut received = Vec::new();
        loop {
            let event = tokio::time::timeout(wait, rx.recv())
                .await
                .expect("the newest render in time")
                .expect("the stream is open");
            let event = text(&event);
            assert!(event.contains("event: render"), "{event}");
            received.push(event);
            if received.last().is_some_and(|e| e.contains(&newest)) {
                break;
            }
        }
        assert!(
            received.len() <= 3,
            "a slow tab got {} of {RENDERS} renders: {received:#?}",
            received.len()
        );
        assert!(rx.try_recv().is_err(), "nothing after the newest render");
        tasks.stop();
        session.live.close();
    }

    #[test]
    fn page_addresses_stay_on_the_site_and_off_the_framework() {
        let uri = parse_page("/posts?until=abc").unwrap();
        assert_eq!((uri.path(), uri.query()), ("/posts", Some("until=abc")));
        assert_eq!(parse_page("/").unwrap().path(), "/");
        for bad in [
            "",
            "posts",
            "//evil.example/posts",
            "/\\evil.example",
            "https://evil.example/",
            "/_keel/live?q=[]",
            "/_keel/fn/posts/create",
            "/posts#frag",
            "/a b",
        ] {
            assert!(parse_page(bad).is_err(), "{bad:?} was accepted");
        }
        let long = format!("/{}", "a".repeat(MAX_PAGE_ADDRESS));
        assert!(parse_page(&long).unwrap_err().contains("longer than"));
    }
}

//! Pages re-rendered on the server from a session's live cache and pushed down their event
//! streams (LiveView's in-memory render with Hotwire's morph).
//!
//! Per session and page address there is one [`PageRenderer`], shared by every open tab of
//! that page. It listens to the session cache's updates; when a query the page read changes,
//! it reads the page's queries from the cache at once (one timestamp), renders the page in
//! process through the app's route tree — no backend call — and publishes the result. At most
//! one render runs at a time and changes that arrive meanwhile coalesce into the next one, so
//! the newest state wins. A render that reads a query the cache does not hold yet subscribes
//! it and renders again.
//!
//! A published render carries its event data twice, prepared once for every tab: the whole
//! body, and splices against the previous render when they are smaller — one per segment of
//! the body (the page; the devtools panel when shown), each `[at, del, ins]` with `at`/`del`
//! in UTF-16 code units of the previous body, as the browser's strings count. A tab that
//! showed the previous render gets those splices; a tab that skipped renders while it was
//! busy (newest wins) gets splices computed from the render it showed; a tab that joined
//! gets the body.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash as _, Hasher as _};
use std::sync::{Arc, Weak};

use futures::future::BoxFuture;
use http::{HeaderMap, Uri};
use keel_auth::AuthState;
use keel_client::{ClientError, QueryClient, QueryKey};
use keel_values::Value;
use parking_lot::Mutex;
use tokio::sync::{broadcast, watch};

use crate::context::{LiveResult, LiveSnapshot};
use crate::digest::digest;

/// How often a render may find queries missing from the cache before the page is fetched by
/// the browser instead.
const MAX_ATTEMPTS: usize = 4;

/// What a pushed render is asked to render.
pub(crate) struct RenderInput {
    /// The page's address.
    pub(crate) uri: Uri,
    /// The headers of the stream that opened the renderer (the same browser session).
    pub(crate) headers: HeaderMap,
    /// The session's state (never another session's: renderers belong to one session).
    pub(crate) auth: AuthState,
    /// What the page's queries read.
    pub(crate) snapshot: Arc<LiveSnapshot>,
}

/// What a pushed render produced.
pub(crate) enum RenderOutcome {
    /// The page: its title, the inside of its `<body>` in segments (the page, then the
    /// devtools panel when shown), and the queries it read with the digests of their values.
    Page {
        title: Option<String>,
        segments: Vec<String>,
        read: Vec<(QueryKey, String)>,
    },
    /// The page now answers with a redirect (or cannot be rendered from the cache): the
    /// browser fetches it.
    Refetch,
}

/// Renders a page for a [`PageRenderer`] (the app's page pipeline, given by `start`).
pub(crate) type RenderFn =
    Arc<dyn Fn(RenderInput) -> BoxFuture<'static, RenderOutcome> + Send + Sync>;

/// One render as the page's tabs receive it.
pub(crate) struct PushedRender {
    /// 1, 2, … per renderer.
    pub(crate) seq: u64,
    /// [`fingerprint`] of what the render shows; a tab showing the same needs nothing.
    pub(crate) fingerprint: u64,
    /// The event to send.
    pub(crate) event: Pushed,
    /// The body's segments (empty for [`Pushed::Refetch`]), for splices from this render.
    segments: Arc<Vec<String>>,
    /// `seq` and `title`, the fields every `render` event starts with.
    head: serde_json::Value,
}

impl PushedRender {
    /// The `render` event data for a tab that shows `last`: the prepared splices when `last`
    /// is the render before this one, splices computed for this tab when it fell further
    /// behind (it skipped renders while busy), else the whole body.
    pub(crate) fn render_data(&self, last: Option<&PushedRender>) -> Option<Arc<str>> {
        let Pushed::Page { full, splice } = &self.event else {
            return None;
        };
        let Some(last) = last.filter(|l| !l.segments.is_empty()) else {
            return Some(full.clone());
        };
        if last.seq + 1 == self.seq
            && let Some(splice) = splice
        {
            return Some(splice.clone());
        }
        let body_len = self.segments.iter().map(String::len).sum();
        Some(
            splice_event(
                &self.head,
                last.seq,
                &last.segments,
                &self.segments,
                body_len,
            )
            .unwrap_or_else(|| full.clone()),
        )
    }
}

/// The `render` event with the splices from `before` (render `base`) to `after`, when they
/// are smaller than the whole body.
fn splice_event(
    head: &serde_json::Value,
    base: u64,
    before: &[String],
    after: &[String],
    body_len: usize,
) -> Option<Arc<str>> {
    let splices = segment_splices(before, after)?;
    let inserted: usize = splices.iter().map(|(_, _, ins)| ins.len()).sum();
    if inserted + 32 * splices.len() >= body_len {
        return None;
    }
    let list: Vec<serde_json::Value> = splices
        .into_iter()
        .map(|(at, del, ins)| serde_json::json!([at, del, ins]))
        .collect();
    Some(event_data(
        head,
        &[("base", base.into()), ("splices", list.into())],
    ))
}

/// The event data of a [`PushedRender`].
pub(crate) enum Pushed {
    /// `render` events: the whole body, and splices from render `seq - 1` when smaller.
    Page {
        full: Arc<str>,
        splice: Option<Arc<str>>,
    },
    /// A `refresh` event: the browser fetches the page.
    Refetch,
}

/// A fingerprint of a page's queries and the digests of their values.
pub(crate) fn fingerprint(read: &[(QueryKey, String)]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for (key, digest) in read {
        key.hash().hash(&mut hasher);
        digest.hash(&mut hasher);
    }
    hasher.finish()
}

/// The renderer of one page address in one session.
pub(crate) struct PageRenderer {
    /// The latest render; every tab of the page watches it.
    latest: watch::Sender<Option<Arc<PushedRender>>>,
    /// Bumped by a tab that opened showing older values than the cache holds.
    wanted: watch::Sender<u64>,
    /// The queries the page read last time, by hash.
    deps: Mutex<(Vec<QueryKey>, HashSet<String>)>,
}

impl PageRenderer {
    /// Starts the renderer of `uri` for `auth`'s session (whose cache is `cache`), reading
    /// `queries` first. It runs until the last tab drops it or `tasks` stop.
    pub(crate) fn start(
        tasks: &keel_tasks::Tasks,
        cache: QueryClient,
        render: RenderFn,
        input: (Uri, HeaderMap, AuthState),
        queries: Vec<QueryKey>,
    ) -> Arc<PageRenderer> {
        let hashes = queries.iter().map(|key| key.hash().to_owned()).collect();
        let renderer = Arc::new(PageRenderer {
            latest: watch::channel(None).0,
            wanted: watch::channel(0).0,
            deps: Mutex::new((queries, hashes)),
        });
        // Subscribed before any tab compares the cache with its page: no change is missed.
        let updates = cache.updates();
        let wanted = renderer.wanted.subscribe();
        let weak = Arc::downgrade(&renderer);
        let stopping = tasks.clone();
        tasks.spawn("live page renderer", async move {
            tokio::select! {
                () = run(weak, cache, render, input, updates, wanted) => {}
                () = stopping.stopping() => {}
            }
        });
        renderer
    }

    /// The renders, newest first.
    pub(crate) fn watch(&self) -> watch::Receiver<Option<Arc<PushedRender>>> {
        self.latest.subscribe()
    }

    /// Asks for a render (a tab shows older values than the cache).
    pub(crate) fn want(&self) {
        self.wanted.send_modify(|n| *n += 1);
    }

    /// The queries the page reads.
    pub(crate) fn deps(&self) -> Vec<QueryKey> {
        self.deps.lock().0.clone()
    }

    fn depends_on(&self, keys: &[String]) -> bool {
        let deps = self.deps.lock();
        keys.iter().any(|k| deps.1.contains(k))
    }
}

/// The renderer's loop: wait for a change to one of the page's queries (or a tab's request),
/// fold in everything that queued meanwhile, render once.
async fn run(
    weak: Weak<PageRenderer>,
    cache: QueryClient,
    render: RenderFn,
    (uri, headers, auth): (Uri, HeaderMap, AuthState),
    mut updates: broadcast::Receiver<keel_client::CacheUpdate>,
    mut wanted: watch::Receiver<u64>,
) {
    let mut seq = 0;
    let mut previous: Option<Arc<Vec<String>>> = None;
    let mut digests = Digests::default();
    loop {
        let dirty = tokio::select! {
            changed = wanted.changed() => {
                if changed.is_err() {
                    return; // the last tab is gone
                }
                true
            }
            update = updates.recv() => match update {
                Ok(update) => match weak.upgrade() {
                    Some(renderer) => renderer.depends_on(&update.keys),
                    None => return,
                },
                Err(broadcast::error::RecvError::Lagged(_)) => true,
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        if !dirty {
            continue;
        }
        // Coalesce: the render below reads the newest values anyway.
        while let Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) = updates.try_recv() {}
        let _ = wanted.borrow_and_update();
        let Some(renderer) = weak.upgrade() else {
            return;
        };
        let outcome = render_once(
            &renderer,
            &cache,
            &render,
            (&uri, &headers, &auth),
            &mut digests,
        )
        .await;
        seq += 1;
        let pushed = match outcome {
            RenderOutcome::Page {
                title,
                segments,
                read,
            } => {
                let fingerprint = fingerprint(&read);
                {
                    let mut deps = renderer.deps.lock();
                    let keys: Vec<QueryKey> = read.into_iter().map(|(k, _)| k).collect();
                    deps.1 = keys.iter().map(|key| key.hash().to_owned()).collect();
                    deps.0 = keys;
                }
                // No live address: the open stream stays, and a new stream (after a gap) is
                // opened from a fetched page.
                let head = serde_json::json!({
                    "seq": seq,
                    "title": title,
                });
                let body = segments.concat();
                let full = event_data(&head, &[("body", serde_json::Value::from(body.as_str()))]);
                let splice = previous.as_deref().and_then(|before: &Vec<String>| {
                    splice_event(&head, seq - 1, before, &segments, body.len())
                });
                let segments = Arc::new(segments);
                previous = Some(segments.clone());
                PushedRender {
                    seq,
                    fingerprint,
                    event: Pushed::Page { full, splice },
                    segments,
                    head,
                }
            }
            RenderOutcome::Refetch => {
                previous = None;
                PushedRender {
                    seq,
                    fingerprint: 0,
                    event: Pushed::Refetch,
                    segments: Arc::default(),
                    head: serde_json::Value::Null,
                }
            }
        };
        renderer.latest.send_replace(Some(Arc::new(pushed)));
    }
}

/// `head`'s fields and `more`, as one JSON object.
fn event_data(head: &serde_json::Value, more: &[(&str, serde_json::Value)]) -> Arc<str> {
    let mut object = head.as_object().cloned().unwrap_or_default();
    for (name, value) in more {
        object.insert((*name).to_owned(), value.clone());
    }
    serde_json::Value::Object(object).to_string().into()
}

/// Renders the page once from one read of the cache; queries it read that the cache does not
/// hold yet are subscribed and the page rendered again.
async fn render_once(
    renderer: &PageRenderer,
    cache: &QueryClient,
    render: &RenderFn,
    (uri, headers, auth): (&Uri, &HeaderMap, &AuthState),
    digests: &mut Digests,
) -> RenderOutcome {
    let mut extra: Vec<QueryKey> = Vec::new();
    for _ in 0..MAX_ATTEMPTS {
        let mut keys = renderer.deps();
        keys.extend(extra.iter().cloned());
        let (ts, entries) = cache.read_at_once(&keys);
        let results: HashMap<_, _> = keys
            .iter()
            .zip(entries)
            .filter_map(|(key, entry)| {
                let entry = entry?;
                let result = match (entry.error, entry.data) {
                    (Some(error), _) => Err(error),
                    (None, Some(value)) => Ok(value),
                    (None, None) => return None,
                };
                let digest = digests.of(key.hash(), &result);
                Some((key.hash().to_owned(), LiveResult { result, digest }))
            })
            .collect();
        digests.keep_only(&results);
        let snapshot = Arc::new(LiveSnapshot {
            ts,
            results,
            missing: Mutex::new(Vec::new()),
            cache: cache.clone(),
        });
        let outcome = render(RenderInput {
            uri: uri.clone(),
            headers: headers.clone(),
            auth: auth.clone(),
            snapshot: snapshot.clone(),
        })
        .await;
        let missing = std::mem::take(&mut *snapshot.missing.lock());
        if missing.is_empty() {
            return outcome;
        }
        tracing::debug!(
            count = missing.len(),
            "a pushed render subscribes more queries"
        );
        // Each waits for the live subscription's first result (bounded by the cache's fetch
        // timeout); a failure is then in the cache and renders as the page's error.
        futures::future::join_all(missing.iter().map(|key| cache.ensure_query_shared(key))).await;
        extra.extend(missing);
    }
    RenderOutcome::Refetch
}

/// The digests of the values a renderer read last, by query hash: while the cache holds the
/// same value (the same `Arc`), its digest is not computed again (a render after one query
/// changed hashes that query's value only).
#[derive(Default)]
struct Digests(HashMap<String, (Arc<Value>, String)>);

impl Digests {
    /// The [`digest`] of `result`, the value of query `hash`.
    fn of(&mut self, hash: &str, result: &Result<Arc<Value>, ClientError>) -> String {
        let value = match result {
            Ok(value) => value,
            Err(error) => return digest(Some(Err(error))),
        };
        if let Some((known, known_digest)) = self.0.get(hash)
            && Arc::ptr_eq(known, value)
        {
            return known_digest.clone();
        }
        let computed = crate::digest::shared_digest(value);
        self.0
            .insert(hash.to_owned(), (value.clone(), computed.clone()));
        computed
    }

    /// Forgets the values of queries the last read did not include.
    fn keep_only<T>(&mut self, read: &HashMap<String, T>) {
        self.0.retain(|hash, _| read.contains_key(hash));
    }
}

/// The changes from segments `before` to `after` as one splice per segment (in order, offsets
/// into the whole previous body), leaving out segments that did not change; `None` when the
/// segments do not line up.
pub(crate) fn segment_splices<'a>(
    before: &[String],
    after: &'a [String],
) -> Option<Vec<(usize, usize, &'a str)>> {
    if before.len() != after.len() {
        return None;
    }
    let mut offset = 0;
    let mut splices = Vec::new();
    for (b, a) in before.iter().zip(after) {
        if b != a {
            let (at, del, ins) = splice(b, a);
            splices.push((offset + at, del, ins));
        }
        offset += b.encode_utf16().count();
    }
    Some(splices)
}

/// The change from `before` to `after` as one splice: where it starts and how much of
/// `before` it removes (in UTF-16 code units), and what it inserts.
pub(crate) fn splice<'a>(before: &str, after: &'a str) -> (usize, usize, &'a str) {
    let mut prefix = before
        .bytes()
        .zip(after.bytes())
        .take_while(|(a, b)| a == b)
        .count();
    while !before.is_char_boundary(prefix) {
        prefix -= 1;
    }
    let room = before.len().min(after.len()) - prefix;
    let mut suffix = before
        .bytes()
        .rev()
        .zip(after.bytes().rev())
        .take(room)
        .take_while(|(a, b)| a == b)
        .count();
    while !before.is_char_boundary(before.len() - suffix) {
        suffix -= 1;
    }
    let at = before[..prefix].encode_utf16().count();
    let del = before[prefix..before.len() - suffix].encode_utf16().count();
    (at, del, &after[prefix..after.len() - suffix])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies a splice as the browser runtime does (UTF-16 offsets).
    fn apply(before: &str, (at, del, ins): (usize, usize, &str)) -> String {
        let units: Vec<u16> = before.encode_utf16().collect();
        let mut out: Vec<u16> = units[..at].to_vec();
        out.extend(ins.encode_utf16());
        out.extend(&units[at + del..]);
        String::from_utf16(&out).unwrap()
    }

    #[test]
    fn splices_rebuild_the_new_body_and_stay_small() {
        let cases = [
            ("<ul><li>b</li></ul>", "<ul><li>a</li><li>b</li></ul>"),
            ("<p>héllo wörld</p>", "<p>héllo wérld</p>"),
            ("<p>😀 x</p>", "<p>😁 x</p>"),
            ("same", "same"),
            ("", "all new"),
            ("all gone", ""),
            ("aaaa", "aa"),
            ("ab😀", "ab😀😀"),
        ];
        for (before, after) in cases {
            let s = splice(before, after);
            assert_eq!(apply(before, s), after, "{before:?} → {after:?}");
        }
        let (at, del, ins) = splice("<ul><li>b</li></ul>", "<ul><li>a</li><li>b</li></ul>");
        assert_eq!((at, del), (8, 0));
        assert_eq!(ins, "a</li><li>");
    }

    #[test]
    fn segment_splices_rebuild_the_whole_body() {
        let before = vec!["<ul><li>b</li></ul>".to_owned(), "<p>ts 1 é</p>".to_owned()];
        let after = vec![
            "<ul><li>a</li><li>b</li></ul>".to_owned(),
            "<p>ts 2 é</p>".to_owned(),
        ];
        let splices = segment_splices(&before, &after).unwrap();
        assert_eq!(splices.len(), 2);
        // Applied from the last to the first, as the runtime does.
        let mut body = before.concat();
        for &(at, del, ins) in splices.iter().rev() {
            body = apply(&body, (at, del, ins));
        }
        assert_eq!(body, after.concat());
        let unchanged = segment_splices(&before, &before).unwrap();
        assert!(unchanged.is_empty());
        assert!(segment_splices(&before, &after[..1]).is_none());
    }

    #[test]
    fn digests_are_kept_while_the_cache_holds_the_same_value() {
        let mut digests = Digests::default();
        let a = Arc::new(Value::from("a"));
        let expected = digest(Some(Ok(&Value::from("a"))));
        assert_eq!(digests.of("k", &Ok(a.clone())), expected);
        assert!(Arc::ptr_eq(&digests.0["k"].0, &a), "kept with its value");
        assert_eq!(digests.of("k", &Ok(a.clone())), expected);
        // A new value (even an equal one) is digested and kept instead.
        let b = Arc::new(Value::from("b"));
        assert_eq!(digests.of("k", &Ok(b.clone())), digest(Some(Ok(&*b))));
        assert!(Arc::ptr_eq(&digests.0["k"].0, &b));
        // Errors are not kept; queries no longer read are forgotten.
        let error = ClientError::Function {
            message: "nope".to_owned(),
        };
        assert_eq!(digests.of("e", &Err(error)), "e");
        assert!(!digests.0.contains_key("e"));
        digests.keep_only(&HashMap::<String, ()>::new());
        assert!(digests.0.is_empty());
    }

    #[test]
    fn fingerprints_follow_keys_and_digests() {
        let key = QueryKey::new("posts:list", Default::default());
        let a = fingerprint(&[(key.clone(), "d1".to_owned())]);
        assert_eq!(a, fingerprint(&[(key.clone(), "d1".to_owned())]));
        assert_ne!(a, fingerprint(&[(key, "d2".to_owned())]));
        assert_ne!(a, fingerprint(&[]));
    }
}

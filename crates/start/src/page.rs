//! A page rendered through the route tree: for a request (the document's parts, its queries
//! read from the backend), or as a live re-render pushed to the page's open tabs (its queries
//! read from the session's cache at one timestamp, no backend call).

use std::sync::Arc;

use http::{HeaderMap, StatusCode, Uri};
use keel_auth::AuthState;
use keel_client::QueryKey;
use maud::Markup;

use crate::app_state::AppState;
use crate::context::{Reads, RouteContext};
use crate::head::Head;
use crate::live::{live_url, page_queries};
use crate::live_render::{RenderFn, RenderInput, RenderOutcome};
use crate::render::{Outcome, run};

/// A rendered page, before the document shell.
pub(crate) struct RenderedPage {
    pub(crate) status: StatusCode,
    pub(crate) head: Head,
    /// The inside of `<body>`, without the devtools panel.
    pub(crate) body: Markup,
    /// The devtools panel, when enabled (after the body).
    pub(crate) panel: Option<Markup>,
    /// The page's live address, when it has queries or a signed-in visitor (not written for a
    /// pushed render: its tabs keep their streams).
    pub(crate) live: Option<String>,
    /// Who the page was rendered for.
    pub(crate) auth: AuthState,
    /// The timestamp the page's queries read at, when known.
    pub(crate) snapshot_ts: Option<u64>,
    /// The queries the page read, with digests of their values.
    pub(crate) read: Vec<(QueryKey, String)>,
}

/// What rendering a page gave.
pub(crate) enum Rendered {
    /// Send the browser elsewhere.
    Redirect { to: String, status: StatusCode },
    /// The page.
    Page(Box<RenderedPage>),
}

/// Renders the page at `uri` for a request by `auth`. When minting the backend token shows
/// that the session has ended, the page is rendered again, signed out (the cookies are still
/// valid for up to a minute after a sign-out elsewhere).
pub(crate) async fn render_document(
    app: &AppState,
    uri: Uri,
    headers: HeaderMap,
    auth: AuthState,
) -> Rendered {
    let context = app.base_context(uri.clone(), headers.clone(), auth);
    let rendered = render(app, &context).await;
    if context.request.auth.session_ended() {
        let context = app.base_context(uri, headers, AuthState::signed_out());
        return render(app, &context).await;
    }
    rendered
}

/// Renders pages for the live layer: from the snapshot of the session's cache it is given.
pub(crate) fn live_renderer(app: &Arc<AppState>) -> RenderFn {
    let app = app.clone();
    Arc::new(move |input: RenderInput| {
        let app = app.clone();
        Box::pin(async move {
            let context = app.context_reading(
                input.uri,
                input.headers,
                input.auth,
                Reads::Live(input.snapshot),
            );
            match render(&app, &context).await {
                Rendered::Page(page) => {
                    let page = *page;
                    // The panel changes on its own (timestamps, values): its own segment.
                    let segments = std::iter::once(page.body)
                        .chain(page.panel)
                        .map(Markup::into_string)
                        .collect();
                    RenderOutcome::Page {
                        title: page.head.title,
                        segments,
                        read: page.read,
                    }
                }
                Rendered::Redirect { .. } => RenderOutcome::Refetch,
            }
        })
    })
}

/// Runs the route tree for `base` and collects what the page read.
async fn render(app: &AppState, base: &RouteContext) -> Rendered {
    let (status, head, body, trace) = match run(&app.root, base.clone()).await {
        Outcome::Redirect { to, status } => return Rendered::Redirect { to, status },
        Outcome::Page {
            status,
            head,
            body,
            trace,
        } => (status, head, body, trace),
    };
    let request = &base.request;
    let used = request.used.lock().clone();
    let auth = base.auth();
    let (snapshot_ts, cache) = match &request.reads {
        Reads::Live(snapshot) => (Some(snapshot.ts), &snapshot.cache),
        Reads::Backend => {
            // Its own statement: the lock is released before the query client may take it.
            let ts = request.http.lock().snapshot_ts();
            (ts, request.query_client())
        }
    };
    let panel = app
        .devtools
        .then(|| crate::devtools::panel(&app.root, &trace, &auth, snapshot_ts, cache, &used));
    let read: Vec<(QueryKey, String)> = used
        .iter()
        .map(|key| (key.clone(), request.read_digest(key)))
        .collect();
    // A pushed render keeps its tabs' streams: it needs no live address.
    let pushed = matches!(request.reads, Reads::Live(_));
    let live = (!pushed && (!read.is_empty() || auth.is_signed_in())).then(|| {
        live_url(
            &page_queries(&read),
            auth.user_id.as_deref(),
            base.path_and_query(),
        )
    });
    Rendered::Page(Box::new(RenderedPage {
        status,
        head,
        body,
        panel,
        live,
        auth,
        snapshot_ts,
        read,
    }))
}

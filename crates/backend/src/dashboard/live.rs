//! What keeps a dashboard page live: `GET /dashboard/live`, a server-sent event (`commit`,
//! the new latest timestamp) each time the database commits, and the script
//! (`/dashboard/assets/dashboard.js`) that, on such an event, fetches the page again and swaps
//! in its `[data-live]` parts — the data browser, the tables' counts, the health figures, the
//! scheduler's jobs — and that follows the logs page's own stream.
//!
//! Commits that land while a refetch is in flight are folded into one more refetch, so a busy
//! database costs at most one page render in flight per open page.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use keel_backend_core::Backend;

use super::Dashboard;
use super::session::Operator;

/// The script, plain JavaScript (no build step).
const SCRIPT: &str = include_str!("dashboard.js");

/// `GET /dashboard/assets/dashboard.js`.
pub(crate) async fn script(_: Operator) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
}

/// `GET /dashboard/live`: one `commit` event per new latest commit, until the client goes
/// away or the backend closes its connections.
pub(crate) async fn commits(
    _: Operator,
    State(dashboard): State<Dashboard>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let backend = dashboard.backend.clone();
    let commits = backend.database().watch_commits();
    let events = futures::stream::unfold(
        (backend, commits),
        |(backend, mut commits): (Backend, tokio::sync::watch::Receiver<keel_db::Timestamp>)| async move {
            tokio::select! {
                () = backend.tasks().stopping() => None,
                changed = commits.changed() => {
                    changed.ok()?;
                    let ts = commits.borrow_and_update().0;
                    let event = Event::default().event("commit").data(ts.to_string());
                    Some((Ok(event), (backend, commits)))
                }
            }
        },
    );
    Sse::new(events).keep_alive(KeepAlive::default())
}

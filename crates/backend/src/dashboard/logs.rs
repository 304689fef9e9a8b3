//! The logs page: the execution log (path, kind, caller, duration, outcome, error, log
//! lines), newest first, filtered by path, caller (parts of them), kind and outcome; and its
//! live stream, `GET /dashboard/logs/stream?after=<cursor>&…filters` — server-sent events,
//! one `entry` event per new matching execution, its table row as HTML, which the script
//! puts on top of the table.

use std::convert::Infallible;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use keel_backend_core::{Backend, ExecutionEntry, ExecutionOutcome};
use maud::{Markup, html};
use serde::Deserialize;

use super::Dashboard;
use super::error::DashboardError;
use super::page::{Section, shell, time_ms};
use super::session::Operator;

/// How many of the latest executions the page searches.
const SEARCHED: u64 = 1000;
/// How many matching executions the page shows.
const SHOWN: usize = 200;

/// The filters (and, for the stream, the cursor).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogFilter {
    #[serde(default)]
    path: String,
    #[serde(default)]
    caller: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    after: Option<u64>,
}

impl LogFilter {
    fn matches(&self, entry: &ExecutionEntry) -> bool {
        let outcome = match entry.outcome {
            ExecutionOutcome::Success => "success",
            ExecutionOutcome::Failure => "failure",
        };
        entry.path.contains(self.path.trim())
            && entry.caller.contains(self.caller.trim())
            && (self.kind.is_empty() || self.kind == entry.kind.name())
            && (self.outcome.is_empty() || self.outcome == outcome)
    }

    /// The stream's URL for these filters, from `cursor`.
    fn stream_url(&self, cursor: u64) -> String {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("path", &self.path)
            .append_pair("caller", &self.caller)
            .append_pair("kind", &self.kind)
            .append_pair("outcome", &self.outcome)
            .append_pair("after", &cursor.to_string())
            .finish();
        format!("/dashboard/logs/stream?{query}")
    }
}

/// One execution's table row.
fn row(entry: &ExecutionEntry) -> Markup {
    let outcome = match entry.outcome {
        ExecutionOutcome::Success => "success",
        ExecutionOutcome::Failure => "failure",
    };
    html! {
        tr.execution data-id=(entry.id) {
            td { (time_ms(entry.started_at_ms as f64)) }
            td.path { code { (entry.path) } }
            td { (entry.kind.name()) }
            td.caller { (entry.caller) }
            td { (format!("{:.1} ms", entry.duration_ms)) }
            td class=(outcome) { (outcome) }
            td { @if let Some(error) = &entry.error { pre.error-text { (error) } } }
            td.log-lines {
                @for line in &entry.log_lines { code { (line.client_line()) } br; }
            }
        }
    }
}

fn select(name: &str, current: &str, options: &[(&str, &str)]) -> Markup {
    html! {
        select name=(name) {
            @for (value, label) in options {
                option value=(value) selected[*value == current] { (label) }
            }
        }
    }
}

/// `GET /dashboard/logs`.
pub(crate) async fn page(
    operator: Operator,
    State(dashboard): State<Dashboard>,
    filter: Result<Query<LogFilter>, axum::extract::rejection::QueryRejection>,
) -> Result<Markup, DashboardError> {
    let Query(filter) = filter.map_err(|e| DashboardError::BadForm(e.body_text()))?;
    let log = dashboard.backend.execution_log();
    let end = log.end();
    let page = log.read(end.saturating_sub(SEARCHED), SEARCHED as usize);
    let entries: Vec<&ExecutionEntry> = page
        .entries
        .iter()
        .rev()
        .filter(|e| filter.matches(e))
        .take(SHOWN)
        .collect();
    let body = html! {
        form #log-filter method="get" action="/dashboard/logs" {
            label { "Path contains " input name="path" value=(filter.path); }
            label { "Caller contains " input name="caller" value=(filter.caller); }
            label { "Kind " (select("kind", &filter.kind, &[("", "any"), ("query", "query"), ("mutation", "mutation"), ("action", "action"), ("httpAction", "HTTP action")])) }
            label { "Outcome " (select("outcome", &filter.outcome, &[("", "any"), ("success", "success"), ("failure", "failure")])) }
            button type="submit" { "Filter" }
        }
        table #executions data-stream=(filter.stream_url(page.cursor)) {
            thead {
                tr {
                    th { "started" } th { "path" } th { "kind" } th { "caller" }
                    th { "duration" } th { "outcome" } th { "error" } th { "log lines" }
                }
            }
            tbody { @for entry in &entries { (row(entry)) } }
        }
        p.hint { "New executions appear on top as they finish." }
    };
    Ok(shell("Logs", Section::Logs, &operator, body))
}

/// `GET /dashboard/logs/stream`: new matching executions as they finish, until the client
/// goes away or the backend closes its connections.
pub(crate) async fn stream(
    _: Operator,
    State(dashboard): State<Dashboard>,
    headers: axum::http::HeaderMap,
    filter: Result<Query<LogFilter>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, DashboardError> {
    let Query(filter) = filter.map_err(|e| DashboardError::BadForm(e.body_text()))?;
    let backend = dashboard.backend.clone();
    // A browser reconnecting says where it was (each event's id is the cursor after it), so
    // no row arrives twice.
    let resumed = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let cursor = resumed
        .or(filter.after)
        .unwrap_or_else(|| backend.execution_log().end());
    let events = futures::stream::unfold(
        (backend, filter, cursor),
        |(backend, filter, mut cursor): (Backend, LogFilter, u64)| async move {
            loop {
                tokio::select! {
                    () = backend.tasks().stopping() => return None,
                    () = backend.execution_log().wait_beyond(cursor) => {}
                }
                let page = backend.execution_log().read(cursor, 100);
                cursor = page.cursor;
                let rows: Vec<Markup> = page
                    .entries
                    .iter()
                    .filter(|e| filter.matches(e))
                    .map(row)
                    .collect();
                if rows.is_empty() {
                    continue;
                }
                let html = html! { @for row in &rows { (row) } };
                let event = Event::default()
                    .event("entries")
                    .id(cursor.to_string())
                    .data(html.into_string());
                return Some((Ok(event), (backend, filter, cursor)));
            }
        },
    );
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

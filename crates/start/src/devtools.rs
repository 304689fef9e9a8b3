//! The development-only devtools panel (like `TanStackRouterDevtools position="bottom-right"`):
//! a collapsed `<details>` in the page's corner listing the route tree with the matched
//! routes marked, the path parameters, which loaders produced data, the failure if any, who
//! is signed in and when their session token expires, the snapshot timestamp, every query the
//! page read (status, last update, whether it is live, cached value), and the state of the
//! page's live stream (kept current by the browser runtime). Styled by its own stylesheet
//! (no inline styles, which the content security policy forbids). Enabled by
//! [`StartConfig::devtools`](crate::StartConfig::devtools); the app turns it on in development
//! builds.

use keel_auth::AuthState;
use keel_client::{QueryClient, QueryKey};
use maud::{Markup, html};

use crate::assets::DEVTOOLS_STYLESHEET_PATH;
use crate::render::RenderTrace;
use crate::route::Route;

/// Longest value shown per query, in characters.
const MAX_VALUE_CHARS: usize = 2000;

/// The panel for one rendered page.
pub(crate) fn panel(
    root: &Route,
    trace: &RenderTrace,
    auth: &AuthState,
    snapshot_ts: Option<u64>,
    query_client: &QueryClient,
    used: &[QueryKey],
) -> Markup {
    html! {
        link rel="stylesheet" href=(DEVTOOLS_STYLESHEET_PATH);
        details id="keel-devtools" data-keel-devtools {
            summary { "Keel devtools" }
            h4 { "Routes" }
            ul { (tree(root, trace)) }
            h4 { "Match" }
            p {
                @if trace.matched.is_empty() { "no route matched" }
                @else { (trace.matched.join(" › ")) }
            }
            @if trace.params.iter().next().is_some() {
                p { "params: " @for (k, v) in trace.params.iter() { code { (k) "=" (v) } " " } }
            }
            p { "loaders with data: " (trace.loaded.iter().filter(|l| **l).count()) "/" (trace.loaded.len()) }
            @if let Some((route, code)) = &trace.failure { p { "failed: " code { (route) } " (" (code) ")" } }
            h4 { "Context" }
            p { "user: " (auth.user_id.as_deref().unwrap_or("signed out")) }
            @if let Some(expiry) = token_expiry(auth) { p { "session token expires: " (expiry) } }
            p { "snapshot ts: " (snapshot_ts.map_or_else(|| "none".to_owned(), |t| t.to_string())) }
            h4 { "Live stream" }
            p { "state: " span data-keel-devtools-live { "not connected" } }
            h4 { "Queries (" (used.len()) ")" }
            @for key in used {
                details {
                    summary {
                        code { (key.path()) " " (keel_values::to_json_string(&keel_values::Value::Object(key.args().clone()))) }
                        " " (entry_summary(query_client, key))
                    }
                    pre { (cached(query_client, key)) }
                }
            }
        }
    }
}

fn tree(route: &Route, trace: &RenderTrace) -> Markup {
    let active = trace.matched.contains(&route.id);
    html! {
        li {
            @if active { b { (route.id) } } @else { (route.id) }
            @if !route.children.is_empty() {
                ul { @for child in &route.children { (tree(child, trace)) } }
            }
        }
    }
}

/// `exp` of the session token, as a Unix time and how far away it is.
fn token_expiry(auth: &AuthState) -> Option<String> {
    let exp = auth.claims.as_ref()?.get("exp")?.as_i64()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    Some(format!("{exp} (in {} s)", exp - now))
}

/// Status, age of the last update and whether the entry is live, e.g. `[success, 2 s ago, live]`.
fn entry_summary(query_client: &QueryClient, key: &QueryKey) -> String {
    let Some(entry) = query_client.get_entry(key) else {
        return "[not cached]".to_owned();
    };
    let age = entry.updated_at.elapsed().map_or_else(
        |_| "just now".to_owned(),
        |d| format!("{} s ago", d.as_secs()),
    );
    let live = if entry.live { "live" } else { "not live" };
    format!("[{:?}, updated {age}, {live}]", entry.status).to_lowercase()
}

fn cached(query_client: &QueryClient, key: &QueryKey) -> String {
    let Some(entry) = query_client.get_entry(key) else {
        return "(not cached)".to_owned();
    };
    let text = match (&entry.error, &entry.data) {
        (Some(error), _) => format!("error: {error}"),
        (None, Some(value)) => serde_json::to_string_pretty(&keel_values::to_json(value))
            .unwrap_or_else(|_| "(unprintable)".to_owned()),
        (None, None) => "(pending)".to_owned(),
    };
    if text.chars().count() > MAX_VALUE_CHARS {
        let cut: String = text.chars().take(MAX_VALUE_CHARS).collect();
        format!("{cut}…")
    } else {
        text
    }
}

//! `/dashboard`: the node's health — its role in a cluster, its latest commit, the open sync
//! sessions and their subscriptions, the web tier's open live pages when it runs in this
//! process, the execution log's length. Live: the page follows the
//! commits.

use axum::extract::State;
use maud::{Markup, html};

use super::Dashboard;
use super::page::{Section, shell, time_ms};
use super::session::Operator;

/// `GET /dashboard`.
pub(crate) async fn page(operator: Operator, State(dashboard): State<Dashboard>) -> Markup {
    let backend = &dashboard.backend;
    let status = backend.node_status();
    let load = backend.sync_load();
    let latest = backend.latest_ts();
    let functions = backend.functions().len();
    let live_pages = dashboard
        .web_metrics
        .as_ref()
        .and_then(|metrics| metrics.gauge_value("keel_live_pages"));
    let body = html! {
        table #health data-live {
            tr { th { "node role" } td #role { (status.role) } }
            tr {
                th { "committer address" }
                td { (status.address.as_deref().unwrap_or("—")) }
            }
            tr {
                th { "latest timestamp" }
                td #latest-ts { (latest) " (" (time_ms(latest as f64 / 1e6)) ")" }
            }
            tr { th { "open sync sessions" } td #sessions { (load.sessions) } }
            tr { th { "subscribed queries" } td #subscriptions { (load.subscriptions) } }
            tr {
                th { "database subscriptions" }
                td { (backend.database().subscriptions().len()) }
            }
            tr {
                th { "live pages (web tier)" }
                td #live-pages {
                    @match live_pages {
                        Some(pages) => (pages),
                        None => "— (the web tier runs in another process: see its /metrics)",
                    }
                }
            }
            tr { th { "function executions logged" } td { (backend.execution_log().end()) } }
            tr { th { "functions" } td { (functions) } }
        }
        p.hint { "Metrics in Prometheus text format: " a href="/metrics" { "/metrics" } "." }
    };
    shell("Health", Section::Health, &operator, body)
}

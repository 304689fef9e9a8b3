//! `/dashboard`: the node's health — its role in a cluster, the cluster's members (each
//! node's role, address, latest timestamp, open sync sessions, live or gone), its latest
//! commit, the open sync sessions and their subscriptions, the web tier's open live pages when
//! it runs in this process, the execution log's length. Live: the page follows the commits,
//! and the members' table is fetched again every membership heartbeat as well, since a
//! member going away commits nothing.

use std::time::Duration;

use axum::extract::State;
use keel_backend_core::{ClusterMembers, MemberState};
use maud::{Markup, html};

use super::Dashboard;
use super::page::{Section, shell, time_ms};
use super::session::Operator;

/// How often the page fetches the members again off a cluster (nothing changes there).
const SINGLE_NODE_REFRESH: Duration = Duration::from_secs(30);

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
    let members = backend.cluster_members().await;
    let refresh = backend
        .cluster()
        .map_or(SINGLE_NODE_REFRESH, |c| c.heartbeat_interval());
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
        h2 { "Cluster members" }
        div #members data-live data-refresh-ms=(refresh.as_millis()) {
            @match &members {
                Ok(members) => (members_table(members)),
                Err(error) => p.error { "Cannot read the cluster's members: " (error) }
            }
        }
        p.hint {
            "As JSON (admin key): " code { "GET /api/keel/cluster/members" } ". "
            "Metrics in Prometheus text format: " a href="/metrics" { "/metrics" } "."
        }
    };
    shell("Health", Section::Health, &operator, body)
}

/// The members, one row each (every value escaped by maud).
fn members_table(members: &ClusterMembers) -> Markup {
    html! {
        p #members-live { (members.live()) " live of " (members.members.len()) " recorded" }
        table #members-table {
            tr {
                th { "node" } th { "role" } th { "address" } th { "state" } th { "last seen" }
                th { "started" } th { "latest timestamp" } th { "sync sessions" }
            }
            @for member in &members.members {
                tr.member data-node=(member.node_id) data-state=(member.state.name()) {
                    td {
                        code { (member.node_id) }
                        @if member.this_node { " (this node)" }
                    }
                    td { (member.role) }
                    td { (member.address.as_deref().unwrap_or("—")) }
                    td class=(match member.state {
                        MemberState::Live => "ok",
                        MemberState::Gone => "failure",
                    }) { (member.state.name()) }
                    td { (format!("{:.1}", member.last_seen_ms_ago as f64 / 1000.0)) " s ago" }
                    td { (time_ms(member.started_at as f64)) }
                    td { (member.latest_ts) }
                    td { (member.sync_sessions) }
                }
            }
        }
    }
}

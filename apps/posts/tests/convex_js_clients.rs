//! The official Convex JavaScript clients (ConvexHttpClient, ConvexClient over `ws`) against
//! `keel backend` and `keel idp` processes: see `tests/node/convex-interop.test.mjs` and
//! `tests/node/posts-pagination.test.mjs` (a live paginated list under concurrent writes).

#[allow(unreachable_pub)]
mod node_peers;

#[test]
fn official_convex_js_clients_work_against_keel() {
    node_peers::run_node_test("convex-interop.test.mjs");
}

#[test]
fn a_paginated_subscription_of_the_official_client_stays_whole_under_writes() {
    node_peers::run_node_test("posts-pagination.test.mjs");
}

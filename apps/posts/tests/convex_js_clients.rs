//! The official Convex JavaScript clients (ConvexHttpClient, ConvexClient over `ws`) against
//! `keel backend` and `keel idp` processes: see `tests/node/convex-interop.test.mjs`,
//! `tests/node/posts-pagination.test.mjs` (a live paginated list under concurrent writes), and
//! for file storage and HTTP actions `tests/node/storage-http-actions.test.mjs`.

#[allow(unreachable_pub)]
mod node_peers;

#[test]
fn official_convex_js_clients_work_against_keel() {
    node_peers::run_node_test("convex-interop.test.mjs", &[]);
}

#[test]
fn uploads_with_fetch_and_http_actions_work_for_the_official_js_client() {
    node_peers::run_node_test("storage-http-actions.test.mjs", &[]);
}

#[test]
fn a_scheduled_post_reaches_the_official_js_client_and_posts_publish_stays_internal() {
    node_peers::run_node_test("posts-scheduler.test.mjs", &[]);
}

#[test]
fn a_paginated_subscription_of_the_official_client_stays_whole_under_writes() {
    node_peers::run_node_test("posts-pagination.test.mjs", &[]);
}

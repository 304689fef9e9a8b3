//! The official Convex JavaScript clients (ConvexHttpClient, ConvexClient over `ws`) against
//! `keel backend` and `keel idp` processes: see `tests/node/convex-interop.test.mjs`.

#[allow(unreachable_pub)]
mod node_peers;

#[test]
fn official_convex_js_clients_work_against_keel() {
    node_peers::run_node_test("convex-interop.test.mjs");
}

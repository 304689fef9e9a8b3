//! The web tier in a real Chromium: see `tests/node/web-browser.test.mjs` (playwright-core
//! driving `/usr/bin/chromium` against the `keel` binary).

#[allow(unreachable_pub)]
mod node_peers;

#[test]
fn browser_runtime_works_in_chromium() {
    node_peers::run_node_test("web-browser.test.mjs");
}

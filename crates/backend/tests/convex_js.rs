//! The official Convex JavaScript clients (`convex@1.48.0` in `tests/node`) against a backend
//! serving the test functions: see `tests/node/backend-arguments.test.mjs`.

mod common;

use std::path::PathBuf;

use common::TestBackend;

/// Runs `node --test <file>` from `tests/node` with `KEEL_BACKEND_URL` set to `backend`; fails
/// with Node's output when any Node test fails.
async fn run_node_test(file: &str, backend: &TestBackend) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/node");
    assert!(
        dir.join("node_modules/convex").exists(),
        "tests/node/node_modules is missing: run `scripts/test` (it installs the npm test peers)"
    );
    let output = tokio::process::Command::new("node")
        .args(["--test", "--test-reporter=spec", file])
        .current_dir(&dir)
        .env("KEEL_BACKEND_URL", backend.url())
        .output()
        .await
        .expect("node is installed (scripts/test installs it)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("\u{2139} fail 0"),
        "node --test {file} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_js_clients_meet_convex_strict_arguments() {
    let backend = TestBackend::start().await;
    run_node_test("backend-arguments.test.mjs", &backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_js_clients_find_no_internal_function_and_call_through_public_ones() {
    let backend = TestBackend::start().await;
    run_node_test("backend-internal.test.mjs", &backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_js_clients_receive_function_log_lines() {
    let backend = TestBackend::start().await;
    run_node_test("function-logs.test.mjs", &backend).await;
}

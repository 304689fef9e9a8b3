//! Runs a Node test file from `tests/node` against the `keel` binary and fails when any Node test
//! fails. The Node scripts use the official clients (`convex@1.48.0`, `@clerk/backend`).

use std::path::PathBuf;
use std::process::Command;

/// Where the npm test peers live.
pub fn node_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/node")
}

/// Runs `node --test <file>` with `KEEL_BIN` and the variables of `env` set; panics with Node's
/// output on failure.
pub fn run_node_test(file: &str, env: &[(&str, &str)]) {
    let dir = node_dir();
    assert!(
        dir.join("node_modules/convex").exists(),
        "tests/node/node_modules is missing: run `scripts/test` (it installs the npm test peers)"
    );
    let output = Command::new("node")
        .arg("--test")
        .arg("--test-reporter=spec")
        .arg(file)
        .current_dir(&dir)
        .env("KEEL_BIN", env!("CARGO_BIN_EXE_keel"))
        .envs(env.iter().copied())
        .output()
        .expect("node is installed (scripts/test installs it)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "node --test {file} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        // TAP says `# fail 0`; the spec reporter says `ℹ fail 0`.
        stdout.contains("# fail 0") || stdout.contains("\u{2139} fail 0"),
        "no Node test summary:\n{stdout}\n{stderr}"
    );
}

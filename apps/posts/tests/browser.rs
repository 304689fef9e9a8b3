//! The web tier in a real Chromium: `tests/node/web-browser.test.mjs` (navigation, prefetch,
//! forms, modal sign-in, live updates, sign-out, not found) and
//! `tests/node/web-browser-expiry.test.mjs` (live updates across 5-second token expiries) and
//! `tests/node/web-browser-clerk.test.mjs` (real-Clerk mode: the page follows Clerk's session) and
//! `tests/node/web-browser-pagination.test.mjs` ("Load more" in place, kept live) and
//! `tests/node/web-browser-account.test.mjs` (verify by emailed code, manage account,
//! password reset), `tests/node/web-browser-totp.test.mjs` (two-step verification: set-up,
//! sign-in with the app's code or a backup code, turning it off),
//! `tests/node/web-browser-push.test.mjs` (an open page updated by renders pushed from the
//! server, with no page fetch) and
//! `tests/node/dashboard-browser.test.mjs` (the dashboard: sign in with the admin key, edit a
//! post and see an open /posts page follow, run `posts:list` as a user, logs arriving live),
//! all playwright-core driving `/usr/bin/chromium` against the `keel` binary. Screenshots of the
//! main states land in `test-artifacts/` at the workspace root.

use std::sync::Mutex;

#[allow(unreachable_pub)]
mod node_peers;

/// One Chromium at a time: the tests time live updates, and the machine has 2 cores.
static ONE_BROWSER: Mutex<()> = Mutex::new(());

#[test]
fn browser_runtime_works_in_chromium() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    node_peers::run_node_test("web-browser.test.mjs");
}

#[test]
fn clerk_mode_follows_clerks_session_in_chromium() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    node_peers::run_node_test("web-browser-clerk.test.mjs");
}

#[test]
fn clerk_handshake_renews_an_outdated_session_in_chromium() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    node_peers::run_node_test("web-browser-handshake.test.mjs");
}

#[test]
fn open_page_stays_live_across_token_expiries_in_chromium() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    node_peers::run_node_test("web-browser-expiry.test.mjs");
}

#[test]
fn load_more_loads_in_place_and_stays_live_in_chromium() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    node_peers::run_node_test("web-browser-pagination.test.mjs");
}

#[test]
fn account_flows_work_in_chromium() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    node_peers::run_node_test("web-browser-account.test.mjs");
}

#[test]
fn two_step_verification_works_in_chromium() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    node_peers::run_node_test("web-browser-totp.test.mjs");
}

#[test]
fn open_page_updates_from_pushed_renders_without_fetching_in_chromium() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    node_peers::run_node_test("web-browser-push.test.mjs");
}

#[test]
fn dashboard_works_in_chromium() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    node_peers::run_node_test("dashboard-browser.test.mjs");
}

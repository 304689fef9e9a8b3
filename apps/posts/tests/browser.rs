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
//!
//! Each runs in both deployment shapes: `one_process` (the `keel` binary running idp, backend
//! and web tier; the web tier calls the backend directly) and `separate_processes` (`keel idp`,
//! `keel backend`, `keel web`, over HTTP and WebSockets), chosen by `KEEL_TEST_SHAPE`. The
//! Clerk-mode tests start their own separate processes (the web tier in front of Clerk's API).

use std::sync::Mutex;

#[allow(unreachable_pub)]
mod node_peers;

/// One Chromium at a time: the tests time live updates, and the machine has 2 cores.
static ONE_BROWSER: Mutex<()> = Mutex::new(());

/// Runs `file` with the app started in `shape` (`one-process` or `processes`).
fn run_in_chromium(file: &str, shape: &str) {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    node_peers::run_node_test(file, &[("KEEL_TEST_SHAPE", shape)]);
}

/// A module `$name` with the test `$file` in both shapes: `one_process` and
/// `separate_processes`.
macro_rules! in_both_shapes {
    ($($name:ident => $file:literal,)*) => {$(
        mod $name {
            #[test]
            fn one_process() {
                super::run_in_chromium($file, "one-process");
            }

            #[test]
            fn separate_processes() {
                super::run_in_chromium($file, "processes");
            }
        }
    )*};
}

in_both_shapes! {
    browser_runtime_works_in_chromium => "web-browser.test.mjs",
    open_page_stays_live_across_token_expiries_in_chromium => "web-browser-expiry.test.mjs",
    load_more_loads_in_place_and_stays_live_in_chromium => "web-browser-pagination.test.mjs",
    account_flows_work_in_chromium => "web-browser-account.test.mjs",
    two_step_verification_works_in_chromium => "web-browser-totp.test.mjs",
    open_page_updates_from_pushed_renders_without_fetching_in_chromium => "web-browser-push.test.mjs",
    dashboard_works_in_chromium => "dashboard-browser.test.mjs",
}

#[test]
fn clerk_mode_follows_clerks_session_in_chromium() {
    run_in_chromium("web-browser-clerk.test.mjs", "processes");
}

#[test]
fn clerk_handshake_renews_an_outdated_session_in_chromium() {
    run_in_chromium("web-browser-handshake.test.mjs", "processes");
}

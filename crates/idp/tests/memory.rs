//! Memory under a burst of concurrent sign-ups (the test runs in its own process under
//! nextest, so `/proc/self/status` is the idp's memory): hashing is bounded by the worker pool,
//! so a burst adds little, and what it adds comes back.

mod common;

use std::time::Duration;

use common::{MIB, mib, start_in};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_sign_ups_keeps_memory_bounded_and_gives_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let r = start_in(dir.path(), |_| {}).await;
    // Warm-up: every hashing worker gets its argon2 block before the baseline.
    let warm = r.burst("warm", 4).await;
    assert_eq!(warm.created, 4, "{warm:?}");
    let baseline = common::settled_rss(Duration::from_secs(10)).await;

    common::reset_peak();
    let outcome = r.burst("burst", 200).await;
    let peak = common::peak_rss();
    let settled = common::settled_rss(Duration::from_secs(30)).await;
    let report = format!(
        "baseline {:.1} MiB, peak {:.1} MiB, settled {:.1} MiB, {outcome:?}",
        mib(baseline),
        mib(peak),
        mib(settled)
    );
    // Unbounded, each hash in flight held its own 19 MiB block (200 → ~3.8 GiB, kept).
    assert!(peak < baseline + 96 * MIB, "{report}");
    assert!(settled < baseline + 32 * MIB, "{report}");
    // Every sign-up was either created or refused with a Clerk-shaped 429 and Retry-After.
    assert_eq!(outcome.failed, 0, "{report}");
    assert!(outcome.created >= 2, "{report}");
    // The process keeps working: a sign-up and a sign-in right after the burst.
    let user = r.create_user("after@example.com").await;
    r.assert_signs_in("192.0.2.1", &user, "correct horse").await;
}

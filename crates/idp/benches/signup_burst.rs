//! Memory of the idp under a burst of concurrent sign-ups: resident memory before (the
//! baseline, after a few warm-up sign-ups), the peak during a burst of 200 concurrent
//! `POST /v1/users`, and what is left once the process is idle again — twice, to show that a
//! second burst does not add to the first. Ratios are to the baseline. Sign-ups the hashing
//! queue could not take in time are answered 429 with `Retry-After` ("refused").
//!
//! Run with `cargo bench -p keel-idp --bench signup_burst`. The idp runs in this process (so
//! `/proc/self/status` is its memory) on 127.0.0.1:0, on a 2-worker Tokio runtime.

#![allow(clippy::print_stdout)] // a bench reports on stdout

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

const BURST: usize = 200;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let target = common::start_in(dir.path(), |_| {}).await;
        // Warm-up: every hashing worker has its memory block before the baseline is taken.
        let warm = target.burst("warm", 4).await;
        assert_eq!(warm.created, 4, "{warm:?}");
        let baseline = common::settled_rss(Duration::from_secs(10)).await;
        println!("signup_burst: {BURST} concurrent POST /v1/users, idp in this process");
        println!(
            "{:<8} {:>10} {:>10} {:>7} {:>10} {:>8} {:>8} {:>8} {:>7}",
            "round", "baseline", "peak", "ratio", "settled", "ratio", "created", "refused", "time"
        );
        for round in ["first", "second"] {
            common::reset_peak();
            let outcome = target.burst(round, BURST).await;
            let peak = common::peak_rss();
            let settled = common::settled_rss(Duration::from_secs(30)).await;
            println!(
                "{round:<8} {:>6.1} MiB {:>6.1} MiB {:>6.2}x {:>6.1} MiB {:>7.2}x {:>8} {:>8} {:>6.1}s",
                common::mib(baseline),
                common::mib(peak),
                common::mib(peak) / common::mib(baseline),
                common::mib(settled),
                common::mib(settled) / common::mib(baseline),
                outcome.created,
                outcome.refused,
                outcome.elapsed.as_secs_f64(),
            );
            assert_eq!(outcome.failed, 0, "{outcome:?}");
        }
    });
}

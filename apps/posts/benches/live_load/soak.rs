//! `--soak SECONDS`: the same open pages kept for a long run at one steady write rate
//! (`--soak-rate`, default 20 posts/s), the web process's resident memory sampled every 10 s.
//!
//! Passes when nothing failed (no stream ended or broke, no write failed, every tab came to
//! show the last post) and memory stayed flat: the mean of the last minute's samples within
//! 10 % of the second minute's (the first minute is warm-up). Needs at least 180 s, so that
//! the two minutes do not overlap.

use super::{Counters, Shown, create_post, rss};

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How often resident memory is sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// How far the last minute's mean may be from the second minute's.
const FLAT_WITHIN: f64 = 0.10;

/// What the soak asks for.
pub(crate) struct Soak {
    pub(crate) seconds: u64,
    pub(crate) rate: f64,
}

/// Runs the soak against the open pages; prints the RSS series and the verdict, returns
/// whether it passed.
pub(crate) async fn run(
    soak: &Soak,
    pid: u32,
    web: &str,
    writer: &reqwest::Client,
    counters: &Counters,
    shown: &[Shown],
) -> bool {
    assert!(
        soak.seconds >= 180,
        "--soak needs at least 180 s (the second and the last minute are compared)"
    );
    println!(
        "soak: {} posts/s for {} s, RSS sampled every {} s",
        soak.rate,
        soak.seconds,
        SAMPLE_EVERY.as_secs()
    );
    println!("| t (s) | posts | web RSS (MiB) | stream errors | write errors |");
    println!("|---|---|---|---|---|");
    let errors_before = counters.errors.load(Ordering::Relaxed);
    let write_errors = Arc::new(AtomicUsize::new(0));
    let mut samples: Vec<(u64, u64)> = Vec::new();
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / soak.rate));
    let mut next_sample = started + SAMPLE_EVERY;
    let mut writes = Vec::new();
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(soak.seconds) {
        tick.tick().await;
        n += 1;
        let (writer, web, failed) = (writer.clone(), web.to_owned(), write_errors.clone());
        writes.push(tokio::spawn(async move {
            if !create_post(&writer, &web, n).await {
                failed.fetch_add(1, Ordering::Relaxed);
            }
        }));
        if Instant::now() >= next_sample {
            next_sample += SAMPLE_EVERY;
            let t = started.elapsed().as_secs();
            let bytes = rss(pid);
            samples.push((t, bytes));
            println!(
                "| {t} | {n} | {:.1} | {} | {} |",
                bytes as f64 / 1048576.0,
                counters.errors.load(Ordering::Relaxed) - errors_before,
                write_errors.load(Ordering::Relaxed)
            );
            // Finished writes need no handle.
            writes.retain(|w: &tokio::task::JoinHandle<()>| !w.is_finished());
        }
    }
    for write in writes {
        let _ = write.await;
    }
    let wrote_for = started.elapsed();
    // Every tab should come to show the last post.
    let deadline = Instant::now() + Duration::from_secs(30);
    let behind = || {
        shown
            .iter()
            .filter(|s| s.lock().last().is_none_or(|(m, _)| *m < n))
            .count()
    };
    while Instant::now() < deadline && behind() > 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let behind = behind();
    let stream_errors = counters.errors.load(Ordering::Relaxed) - errors_before;
    let errors = stream_errors + write_errors.load(Ordering::Relaxed) + behind;

    let mean = |from: u64, to: u64| {
        let window: Vec<f64> = samples
            .iter()
            .filter(|(t, _)| *t > from && *t <= to)
            .map(|(_, b)| *b as f64)
            .collect();
        window.iter().sum::<f64>() / window.len().max(1) as f64
    };
    let end = samples.last().map_or(0, |(t, _)| *t);
    let second_minute = mean(60, 120);
    let last_minute = mean(end.saturating_sub(60), end);
    let drift = (last_minute - second_minute) / second_minute;
    let flat = drift.abs() <= FLAT_WITHIN;
    let passed = flat && errors == 0;
    println!();
    println!(
        "soak verdict: {} — {n} posts in {:.0} s; RSS mean second minute {:.1} MiB, last minute {:.1} MiB ({:+.1} %, limit ±{:.0} %); {errors} errors ({stream_errors} streams ended or broke, {} writes failed, {behind} tabs not showing the last post 30 s after the writes)",
        if passed { "PASS" } else { "FAIL" },
        wrote_for.as_secs_f64(),
        second_minute / 1048576.0,
        last_minute / 1048576.0,
        drift * 100.0,
        FLAT_WITHIN * 100.0,
        write_errors.load(Ordering::Relaxed),
    );
    passed
}

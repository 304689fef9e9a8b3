//! `--soak SECONDS`: the same open pages kept for a long run at one steady write rate
//! (`--soak-rate`, default 20 posts/s), the web process's resident memory sampled every 10 s.
//!
//! Passes when nothing failed (no stream ended or broke, no write failed, every tab came to
//! show the last post) and memory stayed flat: the mean of the last minute's samples within
//! 10 % of the second minute's (the first minute is warm-up). Needs at least 180 s, so that
//! the two minutes do not overlap.
//!
//! Memory is the process's own (`RssAnon`: heap, stacks). Its resident total (`VmRSS`) also
//! counts file-backed pages (`RssFile`): the binary's code and the database file's pages that
//! SQLite reads through its memory map — the kernel's page cache, bounded by the map's size,
//! dropped by the kernel when memory is short, and not the process's to leak. All three are
//! printed, with the data directory's size beside them, and the verdict line gives the total's
//! drift too.

use super::{Counters, Shown, create_post, status_bytes, status_number};

use std::path::Path;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How often resident memory is sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// How far the last minute's mean may be from the second minute's.
const FLAT_WITHIN: f64 = 0.10;

/// One sample: seconds since the start, then bytes.
struct Sample {
    t: u64,
    rss: u64,
    anon: u64,
    file: u64,
    data: u64,
    threads: u64,
    /// Open connections to the backend's SQLite file (descriptors of `keel.sqlite3`).
    connections: usize,
}

impl Sample {
    fn take(t: u64, pid: u32, data_dir: &Path) -> Sample {
        Sample {
            t,
            rss: status_bytes(pid, "VmRSS:"),
            anon: status_bytes(pid, "RssAnon:"),
            file: status_bytes(pid, "RssFile:"),
            data: dir_bytes(data_dir),
            threads: status_number(pid, "Threads:"),
            connections: open_files(pid, "keel.sqlite3"),
        }
    }
}

/// The bytes of the files under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_bytes(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

/// How many of process `pid`'s descriptors are open on a file named `name`.
fn open_files(pid: u32, name: &str) -> usize {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    fds.flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter(|target| target.file_name().is_some_and(|n| n == name))
        .count()
}

const MIB: f64 = 1048576.0;

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
    data_dir: &Path,
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
    println!(
        "| t (s) | posts | own memory, RssAnon (MiB) | file-backed, RssFile (MiB) | VmRSS (MiB) | data dir (MiB) | threads | SQLite connections | stream errors | write errors |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let errors_before = counters.errors.load(Ordering::Relaxed);
    let write_errors = Arc::new(AtomicUsize::new(0));
    let mut samples: Vec<Sample> = Vec::new();
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
            let sample = Sample::take(t, pid, data_dir);
            println!(
                "| {t} | {n} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} |",
                sample.anon as f64 / MIB,
                sample.file as f64 / MIB,
                sample.rss as f64 / MIB,
                sample.data as f64 / MIB,
                sample.threads,
                sample.connections,
                counters.errors.load(Ordering::Relaxed) - errors_before,
                write_errors.load(Ordering::Relaxed)
            );
            samples.push(sample);
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

    let end = samples.last().map_or(0, |s| s.t);
    // The second and the last minute's means of one measure, and the drift between them.
    let drift = |measure: fn(&Sample) -> u64| {
        let mean = |from: u64, to: u64| {
            let window: Vec<f64> = samples
                .iter()
                .filter(|s| s.t > from && s.t <= to)
                .map(|s| measure(s) as f64)
                .collect();
            window.iter().sum::<f64>() / window.len().max(1) as f64
        };
        let (second, last) = (mean(60, 120), mean(end.saturating_sub(60), end));
        (second, last, (last - second) / second)
    };
    let (own_second, own_last, own_drift) = drift(|s| s.anon);
    let (rss_second, rss_last, rss_drift) = drift(|s| s.rss);
    let data = samples.last().map_or(0, |s| s.data);
    let flat = own_drift.abs() <= FLAT_WITHIN;
    let passed = flat && errors == 0;
    println!();
    println!(
        "soak verdict: {} — {n} posts in {:.0} s; own memory (RssAnon) mean second minute {:.1} MiB, last minute {:.1} MiB ({:+.1} %, limit ±{:.0} %); resident total (VmRSS, with file-backed pages; data directory {:.0} MiB) {:.1} → {:.1} MiB ({:+.1} %); {errors} errors ({stream_errors} streams ended or broke, {} writes failed, {behind} tabs not showing the last post 30 s after the writes)",
        if passed { "PASS" } else { "FAIL" },
        wrote_for.as_secs_f64(),
        own_second / MIB,
        own_last / MIB,
        own_drift * 100.0,
        FLAT_WITHIN * 100.0,
        data as f64 / MIB,
        rss_second / MIB,
        rss_last / MIB,
        rss_drift * 100.0,
        write_errors.load(Ordering::Relaxed),
    );
    passed
}

//! Live pages under load: the `keel` binary (idp + backend + web tier in one process, built
//! with the bench profile) on 127.0.0.1; `--sessions` signed-in users each with `--tabs` open
//! `/posts` pages, every page driven as the browser runtime drives it — its event stream open;
//! a pushed `render` applied to the page's body (whole, or spliced into the previous one); on
//! `refresh`, the page fetched again — while one more user creates posts at the `--phases`
//! rates (`posts/s:seconds`, in order).
//!
//! Reported per phase: the posts created and the writer's achieved rate; from a post's
//! creation request to *every* tab showing it, p50/p99/max; per tab, p50/p99; errors (streams
//! that ended or broke, failed writes, tabs that never showed the last post); page refetches;
//! events and bytes received; the web process's CPU time per post and per tab update. Before
//! the writes: the process's resident memory per open page (the growth from opening the pages,
//! divided by their number).
//!
//! Run with `cargo bench -p keel-posts --bench live_load` (1,000 pages: 50 sessions × 20 tabs;
//! 20 posts/s for 60 s, then 100/s for 30 s), or smaller:
//! `cargo bench -p keel-posts --bench live_load -- --sessions 10 --tabs 10 --phases 20:20`.
//! Under `cargo test` (no `--bench`) it makes a short smoke run (2 × 2 pages, 5 posts/s for 2 s).
//!
//! Soak (not in CI, bounded): `cargo bench -p keel-posts --bench live_load -- --soak 600` keeps
//! the same pages open at one steady rate (`--soak-rate`, default 20 posts/s) instead of the
//! phases, samples the web process's RSS every 10 s and prints the series and a verdict (memory
//! flat: the last minute's mean within 10 % of the second minute's; 0 errors); it exits
//! non-zero when the verdict is FAIL. See `live_load/soak.rs`.
//!
//! `KEEL_BENCH_BIN=<path>` runs another build of the `keel` binary instead of this one's (to
//! compare two builds with the same load generator).

#![allow(clippy::print_stdout)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use parking_lot::Mutex;

#[path = "live_load/soak.rs"]
mod soak;

/// The `keel` binary running all three services in a temp dir.
struct Keel {
    child: Child,
    web: String,
    dir: tempfile::TempDir,
}

impl Drop for Keel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_keel() -> Keel {
    let dir = tempfile::tempdir().expect("a temp dir");
    // `KEEL_BENCH_BIN` runs another build of the binary (a before/after comparison).
    let binary =
        std::env::var_os("KEEL_BENCH_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_keel").into());
    let mut child = Command::new(binary)
        .env("KEEL_SITE_ADDR", "127.0.0.1:0")
        .args(["--web-addr", "127.0.0.1:0", "--backend-addr", "127.0.0.1:0"])
        .args(["--idp-addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        // The load generator is a proxy for many visitors: sign-ups are throttled per
        // visitor address, which it names in `X-Forwarded-For`.
        .env("KEEL_TRUSTED_PROXIES", "127.0.0.1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the keel binary starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let web = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| line.strip_prefix("web: ").map(str::to_owned))
        .expect("keel printed its web address");
    // Keep draining stdout so the process never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Keel { child, web, dir }
}

/// Resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    status_bytes(pid, "VmRSS:")
}

/// One memory line of `/proc/<pid>/status` (`VmRSS:`, `RssAnon:`, `RssFile:`), in bytes.
fn status_bytes(pid: u32, field: &str) -> u64 {
    status_number(pid, field) * 1024
}

/// The number on one line of `/proc/<pid>/status` (`Threads:`; a memory line's is in KiB).
fn status_number(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
}

/// CPU time (user + system) process `pid` has used.
fn cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at the state, field 3.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // Clock ticks are 1/100 s on Linux.
    Duration::from_millis((ticks(14) + ticks(15)) * 10)
}

/// What the benchmark is asked to do.
struct Plan {
    sessions: usize,
    tabs: usize,
    /// (posts per second, seconds)
    phases: Vec<(f64, u64)>,
    /// `--soak SECONDS` (with `--soak-rate`): a soak instead of the phases.
    soak: Option<soak::Soak>,
}

fn plan() -> Plan {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let smoke = !args.iter().any(|a| a == "--bench");
    let (sessions, tabs, phases) = if smoke {
        (2, 2, "5:2".to_owned())
    } else {
        (50, 20, "20:60,100:30".to_owned())
    };
    let number = |name: &str, default: usize| {
        value(name).map_or(default, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} takes a number"))
        })
    };
    let phases = value("--phases")
        .unwrap_or(phases)
        .split(',')
        .map(|phase| {
            let (rate, seconds) = phase
                .split_once(':')
                .expect("--phases is posts/s:seconds,…");
            (
                rate.parse().expect("a rate"),
                seconds.parse().expect("seconds"),
            )
        })
        .collect();
    let soak = value("--soak").map(|seconds| soak::Soak {
        seconds: seconds.parse().expect("--soak takes seconds"),
        rate: value("--soak-rate").map_or(20.0, |r| r.parse().expect("--soak-rate takes posts/s")),
    });
    Plan {
        sessions: number("--sessions", sessions),
        tabs: number("--tabs", tabs),
        phases,
        soak,
    }
}

/// A signed-in user's HTTP client (cookies kept).
async fn sign_up(web: &str, email: &str, visitor: usize) -> reqwest::Client {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .pool_max_idle_per_host(64)
        .build()
        .expect("a client");
    let response = client
        .post(format!("{web}/_keel/auth/sign-up"))
        .header(
            "x-forwarded-for",
            format!("10.{}.{}.1", visitor / 250, visitor % 250),
        )
        .form(&[
            ("email", email),
            ("password", "correct horse battery"),
            ("first_name", "Load"),
            ("redirect_url", "/posts"),
        ])
        .send()
        .await
        .expect("sign-up");
    assert!(response.status().is_success(), "{}", response.status());
    assert!(
        !response
            .url()
            .query()
            .unwrap_or_default()
            .contains("error="),
        "sign-up refused: {}",
        response.url()
    );
    client
}

/// Creates post `Load <n>` as `writer` (the form's server function); whether it succeeded.
async fn create_post(writer: &reqwest::Client, web: &str, n: u64) -> bool {
    let title = format!("Load {n}");
    writer
        .post(format!("{web}/_keel/fn/posts/create"))
        .form(&[("title", title.as_str()), ("body", "x")])
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// `/posts` as `client` sees it: the body and the live address.
async fn fetch_posts(web: &str, client: &reqwest::Client) -> Result<(String, String), String> {
    let html = client
        .get(format!("{web}/posts"))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .text()
        .await
        .map_err(|e| e.to_string())?;
    let marker = r#"<meta name="keel-live" content=""#;
    let at = html.find(marker).ok_or("the page is not live")? + marker.len();
    let live = html[at..]
        .split('"')
        .next()
        .unwrap_or_default()
        .replace("&amp;", "&");
    let body = html
        .split_once("<body>")
        .and_then(|(_, b)| b.rsplit_once("</body>"))
        .map(|(b, _)| b.to_owned())
        .ok_or("no body")?;
    Ok((body, live))
}

/// The newest post a body shows: the largest `n` of its `Load <n>` titles (0 for none). Not
/// the first listed: concurrent creates may commit out of order, so the list's first post (the
/// latest commit) need not be the highest number.
fn newest(body: &str) -> u64 {
    body.split(">Load ")
        .skip(1)
        .filter_map(|rest| rest.split('<').next()?.parse().ok())
        .max()
        .unwrap_or(0)
}

/// Byte offset of UTF-16 offset `units` in `text`.
fn byte_offset(text: &str, units: usize) -> usize {
    if text.is_ascii() {
        return units.min(text.len());
    }
    let mut seen = 0;
    for (i, c) in text.char_indices() {
        if seen >= units {
            return i;
        }
        seen += c.len_utf16();
    }
    text.len()
}

/// What all tabs count together.
#[derive(Default)]
struct Counters {
    ready: AtomicUsize,
    errors: AtomicUsize,
    refetches: AtomicUsize,
    renders: AtomicUsize,
    splices: AtomicUsize,
    bytes: AtomicU64,
}

/// One tab: (newest post shown, when) after every change.
type Shown = Arc<Mutex<Vec<(u64, Instant)>>>;

/// Drives one tab as the runtime does until the stream ends.
async fn tab(
    web: String,
    client: reqwest::Client,
    counters: Arc<Counters>,
    shown: Shown,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut stop = stop;
    let Ok((mut body, mut live)) = fetch_posts(&web, &client).await else {
        counters.errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let mut ready_counted = false;
    'stream: loop {
        let response = match client.get(format!("{web}{live}")).send().await {
            Ok(r) if r.status().is_success() => r,
            _ => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        let mut bytes = response.bytes_stream();
        let mut buffer = String::new();
        let mut seq: Option<u64> = None;
        loop {
            let chunk = tokio::select! {
                chunk = bytes.next() => chunk,
                _ = stop.changed() => return,
            };
            let Some(Ok(chunk)) = chunk else {
                if !*stop.borrow() {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                }
                return;
            };
            counters
                .bytes
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let mut name = "";
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(n) = line.strip_prefix("event: ") {
                        name = n;
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data.push_str(d);
                    }
                }
                match name {
                    "ready" if !ready_counted => {
                        ready_counted = true;
                        counters.ready.fetch_add(1, Ordering::Relaxed);
                    }
                    "render" => {
                        counters.renders.fetch_add(1, Ordering::Relaxed);
                        let Ok(render) = serde_json::from_str::<serde_json::Value>(&data) else {
                            counters.errors.fetch_add(1, Ordering::Relaxed);
                            return;
                        };
                        if let Some(whole) = render["body"].as_str() {
                            body = whole.to_owned();
                        } else if render["base"].as_u64() == seq
                            && let Some(splices) = render["splices"].as_array()
                        {
                            counters.splices.fetch_add(1, Ordering::Relaxed);
                            // [at, del, ins] in UTF-16 units of the previous body, in order:
                            // applied from the last, as the runtime does.
                            for splice in splices.iter().rev() {
                                let at = splice[0].as_u64().unwrap_or(0) as usize;
                                let del = splice[1].as_u64().unwrap_or(0) as usize;
                                let ins = splice[2].as_str().unwrap_or_default();
                                let start = byte_offset(&body, at);
                                let end = start + byte_offset(&body[start..], del);
                                body.replace_range(start..end, ins);
                            }
                        } else {
                            // A splice of something this tab does not have: fetch, as the
                            // runtime does.
                            counters.refetches.fetch_add(1, Ordering::Relaxed);
                            match fetch_posts(&web, &client).await {
                                Ok((b, _)) => body = b,
                                Err(_) => {
                                    counters.errors.fetch_add(1, Ordering::Relaxed);
                                    return;
                                }
                            }
                        }
                        seq = render["seq"].as_u64();
                        shown.lock().push((newest(&body), Instant::now()));
                    }
                    "refresh" => {
                        counters.refetches.fetch_add(1, Ordering::Relaxed);
                        match fetch_posts(&web, &client).await {
                            Ok((b, l)) => {
                                body = b;
                                shown.lock().push((newest(&body), Instant::now()));
                                if l != live {
                                    live = l;
                                    continue 'stream; // the runtime reconnects to the new address
                                }
                            }
                            Err(_) => {
                                counters.errors.fetch_add(1, Ordering::Relaxed);
                                return;
                            }
                        }
                    }
                    "signed-out" => {
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    _ => {}
                }
            }
        }
    }
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let plan = plan();
    let pages = plan.sessions * plan.tabs;
    let keel = start_keel();
    let pid = keel.child.id();
    let web = keel.web.clone();
    println!(
        "live_load: {} sessions × {} tabs = {pages} open /posts pages; phases {:?} (posts/s, s)",
        plan.sessions, plan.tabs, plan.phases
    );

    let writer = sign_up(&web, "writer@example.com", 0).await;
    let mut users = Vec::new();
    for i in 0..plan.sessions {
        users.push(sign_up(&web, &format!("reader{i}@example.com"), i + 1).await);
    }
    // Warm the pages once per user before measuring memory.
    for user in &users {
        fetch_posts(&web, user).await.expect("a live /posts page");
    }
    let rss_before = rss(pid);

    let counters = Arc::new(Counters::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut shown: Vec<Shown> = Vec::new();
    let mut tasks = Vec::new();
    for user in &users {
        for _ in 0..plan.tabs {
            let s: Shown = Arc::default();
            shown.push(s.clone());
            tasks.push(tokio::spawn(tab(
                web.clone(),
                user.clone(),
                counters.clone(),
                s,
                stop_rx.clone(),
            )));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while counters.ready.load(Ordering::Relaxed) + counters.errors.load(Ordering::Relaxed) < pages {
        assert!(Instant::now() < deadline, "the pages never all opened");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let the sessions settle (sockets, subscriptions) before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_open = rss(pid);
    println!(
        "open pages: {} ready, {} errors; web process RSS {:.1} MiB → {:.1} MiB: {:.1} KiB per open page",
        counters.ready.load(Ordering::Relaxed),
        counters.errors.load(Ordering::Relaxed),
        rss_before as f64 / 1048576.0,
        rss_open as f64 / 1048576.0,
        (rss_open.saturating_sub(rss_before)) as f64 / 1024.0 / pages as f64
    );

    if let Some(soak) = &plan.soak {
        let passed = soak::run(soak, pid, keel.dir.path(), &web, &writer, &counters, &shown).await;
        stop_tx.send_replace(true);
        for task in tasks {
            let _ = task.await;
        }
        if !passed {
            drop(keel);
            std::process::exit(1);
        }
        return;
    }

    println!();
    println!(
        "| phase | posts (achieved/s) | commit → every tab p50 / p99 / max | per tab p50 / p99 | errors | refetches | renders received (splices) | KiB received per tab update | CPU per post | CPU per tab update | RSS after | load generator CPU |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut n = 0u64;
    for &(rate, seconds) in &plan.phases {
        let errors_before = counters.errors.load(Ordering::Relaxed);
        let refetches_before = counters.refetches.load(Ordering::Relaxed);
        let renders_before = counters.renders.load(Ordering::Relaxed);
        let splices_before = counters.splices.load(Ordering::Relaxed);
        let bytes_before = counters.bytes.load(Ordering::Relaxed);
        let cpu_before = cpu(pid);
        let own_cpu_before = cpu(std::process::id());
        let created: Arc<Mutex<Vec<(u64, Instant)>>> = Arc::default();
        let write_errors = Arc::new(AtomicUsize::new(0));
        let first = n + 1;
        let started = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        let mut writes = Vec::new();
        while started.elapsed() < Duration::from_secs(seconds) {
            tick.tick().await;
            n += 1;
            let (writer, web, created, write_errors) = (
                writer.clone(),
                web.clone(),
                created.clone(),
                write_errors.clone(),
            );
            writes.push(tokio::spawn(async move {
                let sent = Instant::now();
                created.lock().push((n, sent));
                if !create_post(&writer, &web, n).await {
                    write_errors.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        for write in writes {
            let _ = write.await;
        }
        let achieved = (n + 1 - first) as f64 / started.elapsed().as_secs_f64();
        // Every tab should come to show the phase's last post.
        let last = n;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline
            && shown
                .iter()
                .any(|s| s.lock().last().is_none_or(|(m, _)| *m < last))
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let cpu_used = cpu(pid).saturating_sub(cpu_before);
        let own_cpu = cpu(std::process::id()).saturating_sub(own_cpu_before);
        let phase_time = started.elapsed();
        let behind = shown
            .iter()
            .filter(|s| s.lock().last().is_none_or(|(m, _)| *m < last))
            .count();
        // Per post: when each tab first showed it (or something newer).
        let created = created.lock().clone();
        // Each tab's changes, and whether they come in order of post as well as of time (a
        // tab never goes back to an older post): then a binary search finds when it first
        // showed a post, else a scan.
        let tabs: Vec<(Vec<(u64, Instant)>, bool)> = shown
            .iter()
            .map(|s| {
                let s = s.lock().clone();
                let ordered = s.windows(2).all(|w| w[0].0 <= w[1].0);
                (s, ordered)
            })
            .collect();
        let mut every_tab = Vec::new();
        let mut per_tab = Vec::new();
        for &(post, sent) in &created {
            let mut worst = Duration::ZERO;
            let mut all = true;
            for (s, ordered) in &tabs {
                let shows = |(m, at): &(u64, Instant)| *m >= post && *at >= sent;
                let found = if *ordered {
                    s.get(s.partition_point(|e| !shows(e)))
                } else {
                    s.iter().find(|e| shows(e))
                };
                match found {
                    Some((_, at)) => {
                        let lag = at.duration_since(sent);
                        per_tab.push(lag);
                        worst = worst.max(lag);
                    }
                    None => all = false,
                }
            }
            if all {
                every_tab.push(worst);
            }
        }
        every_tab.sort();
        per_tab.sort();
        let errors = counters.errors.load(Ordering::Relaxed) - errors_before
            + write_errors.load(Ordering::Relaxed)
            + behind;
        let renders = counters.renders.load(Ordering::Relaxed) - renders_before;
        let splices = counters.splices.load(Ordering::Relaxed) - splices_before;
        let bytes = counters.bytes.load(Ordering::Relaxed) - bytes_before;
        let posts = created.len().max(1);
        println!(
            "| {rate}/s for {seconds} s | {} ({achieved:.1}/s) | {} / {} / {} | {} / {} | {errors} | {} | {renders} ({splices}) | {:.2} | {:.2} ms | {:.3} ms | {:.0} MiB | {:.2} cores |",
            created.len(),
            ms(percentile(&every_tab, 0.5)),
            ms(percentile(&every_tab, 0.99)),
            ms(every_tab.last().copied().unwrap_or_default()),
            ms(percentile(&per_tab, 0.5)),
            ms(percentile(&per_tab, 0.99)),
            counters.refetches.load(Ordering::Relaxed) - refetches_before,
            bytes as f64 / 1024.0 / renders.max(1) as f64,
            cpu_used.as_secs_f64() * 1e3 / posts as f64,
            cpu_used.as_secs_f64() * 1e3 / renders.max(1) as f64,
            rss(pid) as f64 / 1048576.0,
            own_cpu.as_secs_f64() / phase_time.as_secs_f64(),
        );
    }
    stop_tx.send_replace(true);
    for task in tasks {
        let _ = task.await;
    }
}

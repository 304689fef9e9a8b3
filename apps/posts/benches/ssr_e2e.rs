//! SSR end to end: the `keel` binary (idp + backend + web tier, built with the bench profile)
//! on 127.0.0.1, a user signed up through the form with 20 posts, then `GET /posts` with that
//! user's cookies — session check, `convex` token, consistent backend queries, render — at
//! concurrency 16 against static responses of the same web server: the stylesheet
//! (`/_keel/app.css`, a compiled-in file behind the same router and middleware) and the
//! signed-out home page (SSR with no backend call). Rounds alternate the routes; each figure is
//! the median of the rounds.
//!
//! Run with `cargo bench -p keel-posts --bench ssr_e2e` (`-- --quick` for one short round; under
//! `cargo test` it makes that short round as a smoke test).

#![allow(clippy::print_stdout)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const CONCURRENCY: usize = 16;
const POSTS: usize = 20;

/// The `keel` binary running all three services in a temp dir.
struct Keel {
    child: Child,
    web: String,
    _dir: tempfile::TempDir,
}

impl Drop for Keel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_keel() -> Keel {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
        // The site (HTTP actions) on a free port too, never the shared default.
        .env("KEEL_SITE_ADDR", "127.0.0.1:0")
        .args(["--web-addr", "127.0.0.1:0", "--backend-addr", "127.0.0.1:0"])
        .args(["--idp-addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the keel binary starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut web = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("keel's stdout");
        if let Some(url) = line.strip_prefix("web: ") {
            web = Some(url.to_owned());
            break;
        }
    }
    Keel {
        child,
        web: web.expect("keel printed its web address"),
        _dir: dir,
    }
}

/// One run's figures.
#[derive(Clone, Copy)]
struct Figures {
    p50: Duration,
    p99: Duration,
    per_second: f64,
}

/// `count` GETs of `url` by `CONCURRENCY` workers sharing `client`.
async fn run(client: &reqwest::Client, url: &str, count: usize, must_contain: &str) -> Figures {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let client = client.clone();
            let url = url.to_owned();
            let next = next.clone();
            let must_contain = must_contain.to_owned();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < count {
                    let t = Instant::now();
                    let response = client.get(&url).send().await.expect("a response");
                    assert!(
                        response.status().is_success(),
                        "{url}: {}",
                        response.status()
                    );
                    let body = response.text().await.expect("a body");
                    latencies.push(t.elapsed());
                    assert!(body.contains(&must_contain), "{url} lacks {must_contain:?}");
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(count);
    for worker in workers {
        latencies.extend(worker.await.expect("a worker"));
    }
    let wall = started.elapsed();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Figures {
        p50: at(0.50),
        p99: at(0.99),
        per_second: count as f64 / wall.as_secs_f64(),
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn summary(runs: &[Figures]) -> (f64, f64, f64) {
    (
        median(runs.iter().map(|f| f.p50.as_secs_f64() * 1e3).collect()),
        median(runs.iter().map(|f| f.p99.as_secs_f64() * 1e3).collect()),
        median(runs.iter().map(|f| f.per_second).collect()),
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not: a short smoke run.
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick") || !args.iter().any(|a| a == "--bench");
    let (rounds, count) = if quick { (1, 500) } else { (3, 3000) };
    let keel = start_keel();
    let url = |path: &str| format!("{}{path}", keel.web);
    let user = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("a client");
    let anonymous = reqwest::Client::new();

    let signed_up = user
        .post(url("/_keel/auth/sign-up"))
        .form(&[
            ("email", "bench@example.com"),
            ("password", "correct horse battery"),
            ("first_name", "Bench"),
            ("redirect_url", "/posts"),
        ])
        .send()
        .await
        .expect("sign-up");
    assert!(signed_up.status().is_success(), "{}", signed_up.status());
    for i in 0..POSTS {
        let title = format!("Seeded post {i}");
        let created = user
            .post(url("/_keel/fn/posts/create"))
            .form(&[("title", title.as_str()), ("body", "Some text.")])
            .send()
            .await
            .expect("create");
        assert!(created.status().is_success(), "{}", created.status());
    }
    let page = user
        .get(url("/posts"))
        .send()
        .await
        .expect("/posts")
        .text()
        .await
        .expect("a page");
    let shown = page.matches("<li data-post-id=").count();
    assert_eq!(shown, POSTS, "/posts shows the seeded posts");
    println!(
        "/posts for a signed-in user: {} bytes, {shown} posts; {count} requests per run, concurrency {CONCURRENCY}, {rounds} rounds",
        page.len()
    );

    let cases: [(&str, &reqwest::Client, &str, &str); 3] = [
        (
            "static file /_keel/app.css (baseline)",
            &anonymous,
            "/_keel/app.css",
            "keel-form",
        ),
        (
            "/ signed out (SSR, no backend call)",
            &anonymous,
            "/",
            "Welcome Home",
        ),
        (
            "/posts signed in (auth + token + queries + render)",
            &user,
            "/posts",
            "Seeded post 19",
        ),
    ];
    for (_, client, path, text) in &cases {
        run(client, &url(path), 200, text).await; // warm-up
    }
    let mut results: Vec<Vec<Figures>> = vec![Vec::new(); cases.len()];
    for _ in 0..rounds {
        for (i, (_, client, path, text)) in cases.iter().enumerate() {
            results[i].push(run(client, &url(path), count, text).await);
        }
    }

    let (base_p50, base_p99, base_rps) = summary(&results[0]);
    println!();
    println!(
        "| route | p50 | p99 | req/s | p50 ÷ baseline | p99 ÷ baseline | baseline req/s ÷ route req/s |"
    );
    println!("|---|---|---|---|---|---|---|");
    for ((name, ..), runs) in cases.iter().zip(&results) {
        let (p50, p99, rps) = summary(runs);
        println!(
            "| {name} | {p50:.2} ms | {p99:.2} ms | {rps:.0} | {:.2}× | {:.2}× | {:.2}× |",
            p50 / base_p50,
            p99 / base_p99,
            base_rps / rps
        );
    }
}

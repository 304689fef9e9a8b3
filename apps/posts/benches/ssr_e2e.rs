//! SSR end to end: the `keel` binary (built with the bench profile) on 127.0.0.1, a user signed
//! up through the form with 20 posts, then `GET /posts` (its first page: 10 posts) with that
//! user's cookies — session
//! check, `convex` token, consistent backend queries, render — at concurrency 16 against static
//! responses of the same web server: the stylesheet (`/_keel/app.css`, a compiled-in file behind
//! the same router and middleware) and the signed-out home page (SSR with no backend call).
//! Measured in both shapes: `keel` (idp + backend + web in one process, the web tier calling
//! the backend directly) and `keel idp` + `keel backend` + `keel web` (three processes, HTTP
//! between them), one after the other, each against its own static baseline. Rounds alternate
//! the routes; each figure is the median of the rounds.
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
/// Posts in the database.
const POSTS: usize = 20;
/// Posts on `/posts` (its first page, newest first, with a "Load more").
const FIRST_PAGE: usize = 10;

/// How the services run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// `keel`: idp, backend and web tier in one process (the web tier calls the backend
    /// directly).
    OneProcess,
    /// `keel idp`, `keel backend`, `keel web`: three processes talking HTTP.
    Separate,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::OneProcess => "one process",
            Shape::Separate => "separate processes",
        }
    }
}

/// The `keel` processes of one deployment, in a temp dir.
struct Keel {
    children: Vec<Child>,
    web: String,
    _dir: tempfile::TempDir,
}

impl Drop for Keel {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `keel` with `args` on `data_dir`; returns it with the values of the `name: value`
/// lines it printed, once each of `until` has been printed.
fn spawn(args: &[&str], data_dir: &std::path::Path, until: &[&str]) -> (Child, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
        // The site (HTTP actions) on a free port too, never the shared default.
        .env("KEEL_SITE_ADDR", "127.0.0.1:0")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the keel binary starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut values: Vec<Option<String>> = vec![None; until.len()];
    let mut lines = BufReader::new(stdout).lines();
    while values.iter().any(Option::is_none) {
        let line = lines
            .next()
            .expect("keel printed its lines before exiting")
            .expect("keel's stdout");
        for (name, value) in until.iter().zip(&mut values) {
            if let Some(rest) = line.strip_prefix(name) {
                *value = rest.split_whitespace().next().map(str::to_owned);
            }
        }
    }
    (child, values.into_iter().flatten().collect())
}

fn start_keel(shape: Shape) -> Keel {
    let dir = tempfile::tempdir().expect("a temp dir");
    match shape {
        Shape::OneProcess => {
            let args = [
                "--web-addr",
                "127.0.0.1:0",
                "--backend-addr",
                "127.0.0.1:0",
                "--idp-addr",
                "127.0.0.1:0",
            ];
            let (child, values) = spawn(&args, dir.path(), &["web: "]);
            Keel {
                children: vec![child],
                web: values[0].clone(),
                _dir: dir,
            }
        }
        Shape::Separate => {
            let (idp, values) = spawn(
                &["idp", "--idp-addr", "127.0.0.1:0"],
                &dir.path().join("idp"),
                &["idp: ", "idp secret key: "],
            );
            let (idp_url, secret_key) = (values[0].clone(), values[1].clone());
            let (backend, values) = spawn(
                &[
                    "backend",
                    "--backend-addr",
                    "127.0.0.1:0",
                    "--auth-issuer",
                    &idp_url,
                ],
                &dir.path().join("backend"),
                &["backend: "],
            );
            let backend_url = values[0].clone();
            let (web, values) = spawn(
                &[
                    "web",
                    "--web-addr",
                    "127.0.0.1:0",
                    "--backend-url",
                    &backend_url,
                    "--idp-url",
                    &idp_url,
                    "--idp-secret-key",
                    &secret_key,
                ],
                &dir.path().join("web"),
                &["web: "],
            );
            Keel {
                children: vec![idp, backend, web],
                web: values[0].clone(),
                _dir: dir,
            }
        }
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

/// The cases measured on one deployment: name, signed in, path, text the answer must contain.
const CASES: [(&str, bool, &str, &str); 3] = [
    (
        "static file `/_keel/app.css` (baseline)",
        false,
        "/_keel/app.css",
        "keel-form",
    ),
    (
        "`/` signed out (SSR, no backend call)",
        false,
        "/",
        "Welcome Home",
    ),
    (
        "`/posts` signed in (auth + token + queries + render)",
        true,
        "/posts",
        "Seeded post 19",
    ),
];

/// Seeds a deployment (a user with [`POSTS`] posts) and measures [`CASES`] on it: `rounds`
/// rounds of `count` requests per case, alternating; the figures of each run, per case.
async fn measure(shape: Shape, rounds: usize, count: usize) -> Vec<Vec<Figures>> {
    let keel = start_keel(shape);
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
    assert_eq!(
        shown, FIRST_PAGE,
        "/posts shows the first page of the seeded posts"
    );
    println!(
        "{}: /posts for a signed-in user: {} bytes, {shown} posts; {count} requests per run, concurrency {CONCURRENCY}, {rounds} rounds",
        shape.name(),
        page.len()
    );
    let client = |signed_in: bool| if signed_in { &user } else { &anonymous };
    for (_, signed_in, path, text) in &CASES {
        run(client(*signed_in), &url(path), 200, text).await; // warm-up
    }
    let mut results: Vec<Vec<Figures>> = vec![Vec::new(); CASES.len()];
    for _ in 0..rounds {
        for (i, (_, signed_in, path, text)) in CASES.iter().enumerate() {
            results[i].push(run(client(*signed_in), &url(path), count, text).await);
        }
    }
    results
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not: a short smoke run.
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick") || !args.iter().any(|a| a == "--bench");
    let (rounds, count) = if quick { (1, 500) } else { (3, 3000) };
    let mut tables = Vec::new();
    for shape in [Shape::OneProcess, Shape::Separate] {
        tables.push((shape, measure(shape, rounds, count).await));
    }
    println!();
    println!(
        "| shape | route | p50 | p99 | req/s | route req/s ÷ baseline req/s | p50 ÷ baseline | p99 ÷ baseline |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (shape, results) in &tables {
        let (base_p50, base_p99, base_rps) = summary(&results[0]);
        for ((name, ..), runs) in CASES.iter().zip(results) {
            let (p50, p99, rps) = summary(runs);
            println!(
                "| {} | {name} | {p50:.2} ms | {p99:.2} ms | {rps:.0} | {:.3}× | {:.2}× | {:.2}× |",
                shape.name(),
                rps / base_rps,
                p50 / base_p50,
                p99 / base_p99,
            );
        }
    }
}

//! Scheduler benchmarks, each next to a baseline measured in the same run.
//!
//! Run with `cargo bench -p keel-backend-core --bench scheduler` (about half a minute). Prints one
//! Markdown row per figure: the scheduler's number, the baseline's, and their ratio.
//! * Throughput: jobs scheduled to run at once, each a mutation inserting one document, run by
//!   the executor until every job is `success` — against the same mutations called directly with
//!   the same concurrency (the executor's 32 jobs at a time).
//! * Lateness: jobs due at spread-out times in the next seconds, each recording when it started;
//!   p50 and p99 of started − scheduled — against Tokio timers armed for the same instants.
#![allow(clippy::print_stdout, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use keel_backend_core::{
    Backend, BackendConfig, FunctionError, FunctionRegistry, Identity, MutationCtx,
};
use keel_db::{Database, Schema, SqlitePersistence, TableSchema};
use keel_values::{Object, Value};
use serde::Deserialize;

/// Jobs in the throughput run.
const JOBS: usize = 2_000;
/// Jobs scheduled per mutation (well within the 1,000 per call).
const PER_CALL: usize = 200;
/// The executor's concurrency, matched by the baseline.
const CONCURRENCY: usize = 32;
/// Jobs (and timers) in the lateness run, due 5 ms apart after a 500 ms lead.
const TIMED: usize = 400;

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

#[derive(Deserialize)]
struct Batch {
    n: f64,
    #[serde(rename = "firstMs")]
    first_ms: f64,
    #[serde(rename = "stepMs")]
    step_ms: f64,
}

#[derive(Deserialize)]
struct Work {
    due: f64,
}

fn functions() -> FunctionRegistry {
    let mut functions = FunctionRegistry::new();
    functions
        .internal_mutation("work:run", async |ctx: MutationCtx, work: Work| {
            let started = now_ms();
            let fields = Object::from([
                ("due".to_owned(), Value::from(work.due)),
                ("started".to_owned(), Value::from(started)),
            ]);
            ctx.db().insert("runs", fields).await.map(drop)
        })
        // The job's work as a public mutation, for the baseline.
        .mutation("work:direct", async |ctx: MutationCtx, work: Work| {
            let fields = Object::from([
                ("due".to_owned(), Value::from(work.due)),
                ("started".to_owned(), Value::from(now_ms())),
            ]);
            ctx.db().insert("runs", fields).await.map(drop)
        })
        .mutation("work:schedule", async |ctx: MutationCtx, batch: Batch| {
            for i in 0..batch.n as usize {
                let due = batch.first_ms + batch.step_ms * i as f64;
                let at = UNIX_EPOCH + Duration::from_secs_f64(due / 1e3);
                ctx.scheduler()
                    .run_at(at, "work:run", serde_json::json!({ "due": due }))
                    .await?;
            }
            Ok::<_, FunctionError>(())
        });
    functions
}

async fn backend(dir: &tempfile::TempDir) -> Backend {
    let persistence = SqlitePersistence::open(dir.path().join("db.sqlite3")).expect("sqlite");
    let schema = Schema::new().table("runs", TableSchema::new());
    let db = Database::open(Arc::new(persistence), schema)
        .await
        .expect("database");
    Backend::new(db, functions(), BackendConfig::default())
}

fn args(json: serde_json::Value) -> Object {
    match keel_values::from_json(&json) {
        Ok(Value::Object(object)) => object,
        other => panic!("arguments: {other:?}"),
    }
}

/// Every document of `runs`: (due, started).
async fn runs(backend: &Backend) -> Vec<(f64, f64)> {
    let mut tx = backend.database().begin();
    let docs = tx.query("runs").collect().await.expect("runs read");
    docs.iter()
        .map(|doc| {
            let field = |name: &str| doc.fields.get(name).and_then(Value::as_f64).unwrap_or(0.0);
            (field("due"), field("started"))
        })
        .collect()
}

/// Waits on commits until `runs` holds `n` documents.
async fn until_runs(backend: &Backend, n: usize) -> Vec<(f64, f64)> {
    let mut commits = backend.database().watch_commits();
    loop {
        let runs = runs(backend).await;
        if runs.len() >= n {
            return runs;
        }
        tokio::time::timeout(Duration::from_secs(60), commits.changed())
            .await
            .expect("the jobs progress")
            .expect("commits");
    }
}

async fn schedule(backend: &Backend, n: usize, first_ms: f64, step_ms: f64) {
    let path = keel_protocol::normalize_udf_path("work:schedule").expect("path");
    let json = serde_json::json!({ "n": n as f64, "firstMs": first_ms, "stepMs": step_ms });
    backend
        .run_mutation(&path, args(json), &Identity::Anonymous)
        .await
        .expect("scheduled");
}

/// Jobs per second through the scheduler.
async fn scheduler_throughput() -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = backend(&dir).await;
    let start = Instant::now();
    // Due in the past: each batch is runnable as soon as it commits.
    for _ in 0..JOBS / PER_CALL {
        schedule(&backend, PER_CALL, 0.0, 0.0).await;
    }
    until_runs(&backend, JOBS).await;
    let rate = JOBS as f64 / start.elapsed().as_secs_f64();
    backend.shutdown().await;
    rate
}

/// Mutations per second, the same work called directly with the executor's concurrency.
async fn direct_throughput() -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = backend(&dir).await;
    let path = keel_protocol::normalize_udf_path("work:direct").expect("path");
    let start = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (backend, path, next) = (backend.clone(), path.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < JOBS {
                let json = serde_json::json!({ "due": 0.0 });
                backend
                    .run_mutation(&path, args(json), &Identity::Anonymous)
                    .await
                    .expect("direct mutation");
            }
        }));
    }
    for worker in workers {
        worker.await.expect("worker");
    }
    let rate = JOBS as f64 / start.elapsed().as_secs_f64();
    backend.shutdown().await;
    rate
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) as f64 * p).round() as usize]
}

/// Lateness (ms) of scheduled jobs: p50 and p99 of started − due.
async fn scheduler_lateness() -> (f64, f64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = backend(&dir).await;
    schedule(&backend, TIMED, now_ms() + 500.0, 5.0).await;
    let runs = until_runs(&backend, TIMED).await;
    let mut late: Vec<f64> = runs.iter().map(|(due, started)| started - due).collect();
    backend.shutdown().await;
    (percentile(&mut late, 0.5), percentile(&mut late, 0.99))
}

/// Lateness (ms) of Tokio timers armed for the same instants: p50 and p99.
async fn timer_lateness() -> (f64, f64) {
    let first = now_ms() + 500.0;
    let timers: Vec<_> = (0..TIMED)
        .map(|i| {
            let due = first + 5.0 * i as f64;
            tokio::spawn(async move {
                let pause = Duration::from_secs_f64(((due - now_ms()) / 1e3).max(0.0));
                tokio::time::sleep(pause).await;
                now_ms() - due
            })
        })
        .collect();
    let mut late = Vec::new();
    for timer in timers {
        late.push(timer.await.expect("timer"));
    }
    (percentile(&mut late, 0.5), percentile(&mut late, 0.99))
}

fn row(name: &str, unit: &str, ours: f64, baseline: f64, baseline_name: &str) {
    println!(
        "| {name} | {ours:.1} {unit} | {baseline:.1} {unit} ({baseline_name}) | {:.2}× |",
        ours / baseline
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let direct = direct_throughput().await;
        let scheduled = scheduler_throughput().await;
        let (timer_p50, timer_p99) = timer_lateness().await;
        let (job_p50, job_p99) = scheduler_lateness().await;
        println!("| figure | scheduler | baseline | ratio |");
        println!("|---|---|---|---|");
        row(
            "throughput, jobs/s",
            "/s",
            scheduled,
            direct,
            "the same mutations called directly, 32 at a time",
        );
        row("lateness p50", "ms", job_p50, timer_p50, "Tokio timers");
        row("lateness p99", "ms", job_p99, timer_p99, "Tokio timers");
    });
}

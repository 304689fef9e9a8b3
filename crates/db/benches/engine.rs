//! Database engine benchmarks, each next to a baseline measured in the same run.
//!
//! Run with `cargo bench -p keel-db --bench engine` (about two and a half minutes, PostgreSQL
//! included). Prints one line per figure: the engine's number, the baseline's, and their ratio.
//! Baselines: the same read as a raw rusqlite query on an equivalent plain table; raw rusqlite
//! insert + commit with the same durability settings (WAL, `synchronous=FULL`); a brute-force
//! pass over every subscription. The engine's SQLite reads run on a runtime worker thread, as a
//! request handler's do (`mean_us_on_worker`).
//! The read and commit figures are repeated on PostgreSQL (the test server,
//! `KEEL_TEST_POSTGRES_URL`), against raw tokio-postgres statements: see `engine/postgres.rs`.
//!
//! `KEEL_BENCH_ONLY` (a comma-separated list of `reads`, `commits`, `postgres`, `invalidation`)
//! runs only those parts, e.g. to profile one path: `KEEL_BENCH_ONLY=reads perf record -g …`.
#![allow(clippy::print_stdout)]

/// The allocator of Keel's binaries (`keel`'s default feature `mimalloc`), for Keel and the
/// baselines alike: what is compared is what a deployment runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "engine/postgres.rs"]
mod postgres;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_db::{
    Database, IndexId, Interval, Order, ReadSet, Schema, SqlitePersistence, SubscriptionManager,
    TableSchema, Timestamp,
};
use keel_values::{DocumentId, Object, Value};
use rusqlite::{Connection, params};

const ROWS: usize = 20_000;
const AUTHORS: usize = 100;
const MEASURE: Duration = Duration::from_millis(700);
/// Engine and baseline measurements alternate this many times; medians are reported.
const ROUNDS: usize = 3;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn schema() -> Schema {
    Schema::new()
        .table("posts", TableSchema::new().index("by_author", &["author"]))
        .table("counters", TableSchema::new())
}

fn post(i: usize) -> Object {
    let mut o = Object::new();
    o.insert(
        "author".into(),
        Value::String(format!("author{:03}", i % AUTHORS)),
    );
    o.insert("title".into(), Value::String(format!("post number {i}")));
    o.insert("body".into(), Value::String("lorem ipsum ".repeat(8)));
    o.insert("likes".into(), Value::Int64(i as i64));
    o
}

struct Figure {
    name: &'static str,
    unit: &'static str,
    engine: f64,
    baseline: f64,
    baseline_name: &'static str,
    higher_is_better: bool,
}

impl Figure {
    fn print(&self) {
        let ratio = if self.higher_is_better {
            self.baseline / self.engine
        } else {
            self.engine / self.baseline
        };
        let ratio = if ratio >= 0.1 {
            format!("{ratio:.2}×")
        } else {
            format!("{ratio:.4}× ({:.0}× faster)", 1.0 / ratio)
        };
        println!(
            "| {} | {:.1} {} | {:.1} {} ({}) | {ratio} |",
            self.name, self.engine, self.unit, self.baseline, self.unit, self.baseline_name
        );
    }
}

/// The cost of one call: wall-clock and process CPU microseconds (means over `MEASURE`).
///
/// Why CPU time too: on a machine shared with other builds, a read waits for a core about as
/// long as it runs, so wall-clock figures swing by 2× between runs; the process's CPU time per
/// call (every thread, so blocking-pool hand-offs count) is what the read itself costs.
#[derive(Clone, Copy)]
struct Cost {
    wall: f64,
    cpu: f64,
}

/// The process's CPU time (user + system, all threads) in microseconds, from `/proc/self/stat`
/// (in USER_HZ = 100 ticks per second, so about ±1 % over `MEASURE`).
fn process_cpu_us() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line; 12 and 13 after the name.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) * 10_000.0
}

/// The mean cost of `$call` (with `$i` counting calls): 200 warm-up calls, then calls in
/// rounds of 64 until `MEASURE` has passed.
macro_rules! measure {
    ($i:ident => $call:expr) => {{
        for $i in 0..200 {
            $call;
        }
        let (start, cpu) = (Instant::now(), process_cpu_us());
        let mut n = 0;
        while start.elapsed() < MEASURE {
            for _ in 0..64 {
                let $i = n;
                $call;
                n += 1;
            }
        }
        Cost {
            wall: start.elapsed().as_secs_f64() * 1e6 / n as f64,
            cpu: (process_cpu_us() - cpu) / n as f64,
        }
    }};
}

/// Mean cost per call of an async operation, run repeatedly for `MEASURE`.
async fn mean_us<F: AsyncFnMut(usize)>(mut op: F) -> Cost {
    measure!(i => op(i).await)
}

/// [`mean_us`] on a runtime worker thread, where a request handler's reads run. The thread
/// blocking on the runtime measures some paths differently (a 100-row range read through the
/// blocking pool took 162 µs from there and 226–268 µs from a worker). `op` builds each call's future from
/// owned handles.
async fn mean_us_on_worker<F, Fut>(mut op: F) -> Cost
where
    F: FnMut(usize) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    tokio::spawn(async move { measure!(i => op(i).await) })
        .await
        .unwrap()
}

fn mean_us_sync(mut op: impl FnMut(usize)) -> Cost {
    measure!(i => op(i))
}

/// A raw connection with the engine's settings (WAL, full sync, the readers' cache and mmap).
fn raw_connection(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=10000;
         PRAGMA cache_size=-16384; PRAGMA mmap_size=268435456;",
    )
    .unwrap();
    conn
}

/// A plain SQLite table holding the same posts: the most direct layout for these reads.
fn raw_posts(path: &Path, ids: &[DocumentId]) -> Connection {
    let mut conn = raw_connection(path);
    conn.execute_batch(
        "CREATE TABLE posts (id BLOB PRIMARY KEY, author TEXT, ct REAL, value BLOB) WITHOUT ROWID;
         CREATE INDEX posts_by_author ON posts (author, ct, id);",
    )
    .unwrap();
    let tx = conn.transaction().unwrap();
    for (i, id) in ids.iter().enumerate() {
        let value = serde_json::to_vec(&format!("{:?}", post(i))).unwrap();
        tx.execute(
            "INSERT INTO posts VALUES (?1, ?2, ?3, ?4)",
            params![
                id.to_bytes(),
                format!("author{:03}", i % AUTHORS),
                i as f64,
                value
            ],
        )
        .unwrap();
    }
    tx.commit().unwrap();
    conn
}

/// Reads 100 of one author's posts (the `i`-th author, cycling) in `order` through the
/// `by_author` index.
async fn range_read(db: &Database, i: usize, order: Order) {
    let mut tx = db.begin();
    let author = format!("author{:03}", i % AUTHORS);
    let docs = tx
        .query("posts")
        .with_index("by_author", |r| r.eq("author", author))
        .order(order)
        .take(100)
        .await
        .unwrap();
    assert_eq!(docs.len(), 100);
}

/// The mean cost of a [`range_read`] on a runtime worker.
async fn range_read_cost(db: &Database, order: Order) -> Cost {
    mean_us_on_worker({
        let db = db.clone();
        move |i| {
            let db = db.clone();
            async move { range_read(&db, i, order).await }
        }
    })
    .await
}

async fn reads(dir: &Path) -> Vec<Figure> {
    let db = Database::open(
        Arc::new(SqlitePersistence::open(dir.join("reads.sqlite3")).unwrap()),
        schema(),
    )
    .await
    .unwrap();
    let mut ids = Vec::with_capacity(ROWS);
    for chunk in 0..ROWS / 1000 {
        let mut tx = db.begin();
        for i in chunk * 1000..(chunk + 1) * 1000 {
            ids.push(tx.insert("posts", post(i)).await.unwrap());
        }
        db.commit(tx).await.unwrap();
    }
    let raw = raw_posts(&dir.join("raw-reads.sqlite3"), &ids);
    let ids = Arc::new(ids);

    // Engine and baseline alternate, ROUNDS times; the median of each is reported (the machine
    // is shared, so a single run of each can land on a busy moment).
    let mut samples: [Vec<f64>; 5] = Default::default();
    let mut cpu_samples: [Vec<f64>; 5] = Default::default();
    for _ in 0..ROUNDS {
        let point_s = mean_us_on_worker({
            let (db, ids) = (db.clone(), ids.clone());
            move |i| {
                let mut tx = db.begin();
                let id = ids[(i * 7919) % ROWS];
                async move { assert!(tx.get(id).await.unwrap().is_some()) }
            }
        })
        .await;
        let point_raw_s = mean_us_sync(|i| {
            let mut stmt = raw
                .prepare_cached("SELECT value FROM posts WHERE id = ?1")
                .unwrap();
            let value: Vec<u8> = stmt
                .query_row([ids[(i * 7919) % ROWS].to_bytes()], |r| r.get(0))
                .unwrap();
            assert!(!value.is_empty());
        });
        let range_s = range_read_cost(&db, Order::Asc).await;
        let range_raw_s = mean_us_sync(|i| {
            let mut stmt = raw
                .prepare_cached(
                    "SELECT id, value FROM posts WHERE author = ?1 ORDER BY ct, id LIMIT 100",
                )
                .unwrap();
            let rows: Vec<(Vec<u8>, Vec<u8>)> = stmt
                .query_map([format!("author{:03}", i % AUTHORS)], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert_eq!(rows.len(), 100);
        });
        let desc_s = range_read_cost(&db, Order::Desc).await;
        let round = [point_s, point_raw_s, range_s, range_raw_s, desc_s];
        for ((slot, cpu_slot), cost) in samples.iter_mut().zip(&mut cpu_samples).zip(round) {
            slot.push(cost.wall);
            cpu_slot.push(cost.cpu);
        }
    }
    let [point, point_raw, range, range_raw, desc] = samples.map(median);
    let [point_cpu, point_raw_cpu, range_cpu, range_raw_cpu, desc_cpu] = cpu_samples.map(median);
    vec![
        Figure {
            name: "point read (`get` by id)",
            unit: "µs",
            engine: point,
            baseline: point_raw,
            baseline_name: "rusqlite primary-key SELECT",
            higher_is_better: false,
        },
        Figure {
            name: "100-row index range read (asc)",
            unit: "µs",
            engine: range,
            baseline: range_raw,
            baseline_name: "rusqlite index range SELECT … LIMIT 100",
            higher_is_better: false,
        },
        Figure {
            name: "100-row index range read (desc)",
            unit: "µs",
            engine: desc,
            baseline: range_raw,
            baseline_name: "same asc rusqlite SELECT",
            higher_is_better: false,
        },
        Figure {
            name: "point read, process CPU time",
            unit: "µs",
            engine: point_cpu,
            baseline: point_raw_cpu,
            baseline_name: "rusqlite primary-key SELECT",
            higher_is_better: false,
        },
        Figure {
            name: "100-row index range read (asc), process CPU time",
            unit: "µs",
            engine: range_cpu,
            baseline: range_raw_cpu,
            baseline_name: "rusqlite index range SELECT … LIMIT 100",
            higher_is_better: false,
        },
        Figure {
            name: "100-row index range read (desc), process CPU time",
            unit: "µs",
            engine: desc_cpu,
            baseline: range_raw_cpu,
            baseline_name: "same asc rusqlite SELECT",
            higher_is_better: false,
        },
    ]
}

/// What each transaction of [`commit_rate`] writes.
#[derive(Clone, Copy)]
pub(crate) enum Write {
    /// One new post.
    Insert,
    /// One new post plus the receipt of a fresh idempotency key, looked up first, as the
    /// backend does for every mutation a client session sends.
    KeyedInsert,
    /// Read and increment one shared counter (every writer conflicts).
    Increment(DocumentId),
}

/// Commits per second with `writers` concurrent tasks for `MEASURE`.
async fn commit_rate(db: &Database, writers: usize, write: Write) -> f64 {
    commit_run(db, writers, write).await.rate
}

/// What a [`commit_run`] achieved.
struct CommitRun {
    /// Commits per second.
    rate: f64,
    /// Transactions run per commit (1 when none conflicted): how much work conflicts waste.
    attempts_per_commit: f64,
}

/// [`commit_rate`], with the attempts each commit took.
async fn commit_run(db: &Database, writers: usize, write: Write) -> CommitRun {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            let mut attempt = 0u64;
            while start.elapsed() < MEASURE {
                attempt += 1;
                let mut tx = db.begin();
                match write {
                    Write::Increment(id) => {
                        let doc = tx.get(id).await.unwrap().unwrap();
                        let Some(Value::Int64(n)) = doc.fields.get("n") else {
                            panic!()
                        };
                        let mut o = Object::new();
                        o.insert("n".into(), Value::Int64(n + 1));
                        tx.patch(id, o, &[]).await.unwrap();
                    }
                    Write::Insert => {
                        tx.insert("posts", post(w)).await.unwrap();
                    }
                    Write::KeyedInsert => {
                        let key = format!("bench:{w}:{attempt}:{}", start.elapsed().as_nanos());
                        assert!(tx.receipt(&key).await.unwrap().is_none());
                        let id = tx.insert("posts", post(w)).await.unwrap();
                        tx.record_receipt(&key, &Value::String(id.to_string()))
                            .await
                            .unwrap();
                    }
                }
                match db.commit(tx).await {
                    Ok(_) => done += 1,
                    Err(e) if e.is_occ() => {}
                    Err(e) => panic!("{e}"),
                }
            }
            (done, attempt)
        }));
    }
    let (mut total, mut attempts) = (0, 0);
    for t in tasks {
        let (done, tried) = t.await.unwrap();
        total += done;
        attempts += tried;
    }
    CommitRun {
        rate: total as f64 / start.elapsed().as_secs_f64(),
        attempts_per_commit: attempts as f64 / total.max(1) as f64,
    }
}

/// Raw rusqlite commits per second: each thread its own connection, one transaction per write.
fn raw_commit_rate(path: &Path, writers: usize, conflicting: bool) -> f64 {
    {
        let conn = raw_connection(path);
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS posts (id INTEGER PRIMARY KEY, author TEXT, value BLOB);
             CREATE TABLE IF NOT EXISTS counters (id INTEGER PRIMARY KEY, n INTEGER);
             INSERT OR IGNORE INTO counters VALUES (1, 0);",
        )
        .unwrap();
    }
    let start = Instant::now();
    let threads: Vec<_> = (0..writers)
        .map(|_| {
            let path = path.to_path_buf();
            std::thread::spawn(move || {
                let mut conn = raw_connection(&path);
                let mut done = 0u64;
                while start.elapsed() < MEASURE {
                    let tx = conn
                        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                        .unwrap();
                    if conflicting {
                        let n: i64 = tx
                            .query_row("SELECT n FROM counters WHERE id = 1", [], |r| r.get(0))
                            .unwrap();
                        tx.execute("UPDATE counters SET n = ?1 WHERE id = 1", [n + 1])
                            .unwrap();
                    } else {
                        tx.execute(
                            "INSERT INTO posts (author, value) VALUES ('a', zeroblob(150))",
                            [],
                        )
                        .unwrap();
                    }
                    tx.commit().unwrap();
                    done += 1;
                }
                done
            })
        })
        .collect();
    let total: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    total as f64 / start.elapsed().as_secs_f64()
}

async fn commits(dir: &Path) -> Vec<Figure> {
    let db = Database::open(
        Arc::new(SqlitePersistence::open(dir.join("writes.sqlite3")).unwrap()),
        schema(),
    )
    .await
    .unwrap();
    let mut tx = db.begin();
    let mut o = Object::new();
    o.insert("n".into(), Value::Int64(0));
    let counter = tx.insert("counters", o).await.unwrap();
    db.commit(tx).await.unwrap();
    let mut samples: [Vec<f64>; 7] = Default::default();
    let mut attempts = Vec::new();
    for _ in 0..ROUNDS {
        let increments = commit_run(&db, 8, Write::Increment(counter)).await;
        attempts.push(increments.attempts_per_commit);
        let round = [
            commit_rate(&db, 1, Write::Insert).await,
            raw_commit_rate(&dir.join("raw-1.sqlite3"), 1, false),
            commit_rate(&db, 8, Write::Insert).await,
            raw_commit_rate(&dir.join("raw-8.sqlite3"), 8, false),
            increments.rate,
            raw_commit_rate(&dir.join("raw-c.sqlite3"), 8, true),
            commit_rate(&db, 1, Write::KeyedInsert).await,
        ];
        for (slot, value) in samples.iter_mut().zip(round) {
            slot.push(value);
        }
    }
    let attempts = median(attempts);
    let [
        one,
        one_raw,
        eight,
        eight_raw,
        conflicting,
        conflicting_raw,
        keyed,
    ] = samples.map(median);
    vec![
        Figure {
            name: "non-conflicting commits, 1 writer",
            unit: "commits/s",
            engine: one,
            baseline: one_raw,
            baseline_name: "rusqlite INSERT + COMMIT, 1 thread",
            higher_is_better: true,
        },
        Figure {
            name: "keyed commits (insert + receipt lookup and write), 1 writer",
            unit: "commits/s",
            engine: keyed,
            baseline: one,
            baseline_name: "the engine's plain insert commits above, 1 writer",
            higher_is_better: true,
        },
        Figure {
            name: "non-conflicting commits, 8 writers",
            unit: "commits/s",
            engine: eight,
            baseline: eight_raw,
            baseline_name: "rusqlite INSERT + COMMIT, 8 threads",
            higher_is_better: true,
        },
        Figure {
            name: "conflicting increments of one counter, 8 writers",
            unit: "commits/s",
            engine: conflicting,
            baseline: conflicting_raw,
            baseline_name: "rusqlite BEGIN IMMEDIATE read+UPDATE, 8 threads",
            higher_is_better: true,
        },
        Figure {
            name: "conflicting increments, 8 writers: transactions run per commit",
            unit: "runs",
            engine: attempts,
            baseline: 1.0,
            baseline_name: "rusqlite: the write lock serialises, every run commits",
            higher_is_better: false,
        },
    ]
}

fn invalidation(count: usize) -> Figure {
    let manager = SubscriptionManager::standalone(Timestamp(1));
    let index = IndexId(1);
    let key = |i: usize| format!("key{i:08}").into_bytes();
    let mut read_sets = Vec::with_capacity(count);
    let mut subs = Vec::with_capacity(count);
    for i in 0..count {
        let mut rs = ReadSet::new();
        rs.record(index, Interval::prefix(&key(i)));
        rs.record(IndexId(2), Interval::point(&key(i)));
        subs.push(manager.subscribe(rs.clone(), Timestamp(1)));
        read_sets.push(rs);
    }
    let mut ts = 2;
    let engine = mean_us_sync(|i| {
        let target = (i * 7919) % count;
        let written = key(target);
        let hits = manager.invalidate_keys(Timestamp(ts), &[(index, written)]);
        assert_eq!(hits, 1);
        subs[target] = manager.subscribe(read_sets[target].clone(), Timestamp(ts));
        ts += 1;
    })
    .wall;
    // Baseline: the same commit checked against every subscription's read set.
    let baseline = mean_us_sync(|i| {
        let written = key((i * 7919) % count);
        let hits = read_sets
            .iter()
            .filter(|rs| rs.contains(index, &written))
            .count();
        assert_eq!(hits, 1);
    })
    .wall;
    Figure {
        name: if count == 10_000 {
            "invalidation, 1-key commit, 10k subscriptions"
        } else {
            "invalidation, 1-key commit, 100k subscriptions"
        },
        unit: "µs",
        engine,
        baseline,
        baseline_name: "brute-force scan of all read sets",
        higher_is_better: false,
    }
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let only = std::env::var("KEEL_BENCH_ONLY").ok();
    let runs = |part: &str| {
        only.as_deref()
            .is_none_or(|list| list.split(',').any(|p| p.trim() == part))
    };
    println!("| benchmark | engine | baseline | ratio (engine cost / baseline cost) |");
    println!("|---|---|---|---|");
    if runs("reads") {
        for figure in runtime.block_on(reads(dir.path())) {
            figure.print();
        }
    }
    if runs("commits") {
        for figure in runtime.block_on(commits(dir.path())) {
            figure.print();
        }
    }
    if runs("postgres") {
        for figure in runtime.block_on(postgres::figures()) {
            figure.print();
        }
    }
    if runs("invalidation") {
        invalidation(10_000).print();
        invalidation(100_000).print();
    }
}

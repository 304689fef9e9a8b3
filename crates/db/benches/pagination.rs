//! Pagination against `take` of the same rows, measured in the same run.
//!
//! Run with `cargo bench -p keel-db --bench pagination` (about 15 seconds). Prints one line per
//! figure: the paginated page's cost, the same rows read with `take`, and their ratio. The two
//! are called in turn, one call each, so that both see the same load on a shared machine; each
//! figure is the median of three such runs. Each page
//! is what a paginated query reads: the first page, a page continuing from a cursor in the middle
//! of the range, and a page re-run up to its pinned end cursor (how a subscription re-reads it).
//! The `take` baseline reads the same 100 rows (for a continued page, with the range bound the
//! cursor stands for).
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_db::{Database, Order, PaginationOptions, Schema, SqlitePersistence, TableSchema};
use keel_values::{Object, Value};

const ROWS: usize = 20_000;
const AUTHORS: usize = 100;
const PAGE: usize = 100;
const MEASURE: Duration = Duration::from_millis(700);
/// Page and baseline measurements alternate this many times; medians are reported.
const ROUNDS: usize = 3;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
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

/// Mean microseconds per call of two async operations, called in turn (so that both see the
/// same load on a shared machine) for `MEASURE`.
async fn paired_us<A: AsyncFnMut(usize), B: AsyncFnMut(usize)>(mut a: A, mut b: B) -> (f64, f64) {
    for i in 0..100 {
        a(i).await;
        b(i).await;
    }
    let (mut spent_a, mut spent_b) = (Duration::ZERO, Duration::ZERO);
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < MEASURE {
        for _ in 0..16 {
            let t = Instant::now();
            a(n).await;
            spent_a += t.elapsed();
            let t = Instant::now();
            b(n).await;
            spent_b += t.elapsed();
            n += 1;
        }
    }
    (
        spent_a.as_secs_f64() * 1e6 / n as f64,
        spent_b.as_secs_f64() * 1e6 / n as f64,
    )
}

/// Where a page starts and ends, per author: the cursor after the author's 50th post (by
/// creation time, descending), that post's creation time, and the first page's end cursor.
struct Marks {
    middle_cursor: String,
    middle_time: f64,
    first_end: String,
}

/// One author's posts, newest first.
fn by_author(tx: &mut keel_db::Transaction, author: String) -> keel_db::Query<'_> {
    tx.query("posts")
        .with_index("by_author", |r| r.eq("author", author))
        .order(Order::Desc)
}

async fn figures() -> Vec<(&'static str, f64, f64)> {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(
        Arc::new(SqlitePersistence::open(dir.path().join("pages.sqlite3")).unwrap()),
        Schema::new().table("posts", TableSchema::new().index("by_author", &["author"])),
    )
    .await
    .unwrap();
    for chunk in 0..ROWS / 1000 {
        let mut tx = db.begin();
        for i in chunk * 1000..(chunk + 1) * 1000 {
            tx.insert("posts", post(i)).await.unwrap();
        }
        db.commit(tx).await.unwrap();
    }
    let author = |i: usize| format!("author{:03}", i % AUTHORS);
    let mut marks = Vec::new();
    for a in 0..AUTHORS {
        let mut tx = db.begin();
        let half = by_author(&mut tx, author(a))
            .paginate(PaginationOptions::first(50))
            .await
            .unwrap();
        let first = by_author(&mut tx, author(a))
            .paginate(PaginationOptions::first(PAGE))
            .await
            .unwrap();
        marks.push(Marks {
            middle_time: half.page.last().unwrap().creation_time,
            middle_cursor: half.continue_cursor,
            first_end: first.continue_cursor,
        });
    }
    let marks = Arc::new(marks);

    let first_page = async |i: usize| {
        let mut tx = db.begin();
        let page = by_author(&mut tx, author(i))
            .paginate(PaginationOptions::first(PAGE))
            .await
            .unwrap();
        assert_eq!(page.page.len(), PAGE);
    };
    let first_take = async |i: usize| {
        let mut tx = db.begin();
        let docs = by_author(&mut tx, author(i)).take(PAGE).await.unwrap();
        assert_eq!(docs.len(), PAGE);
    };
    let next_page = async |i: usize| {
        let mut tx = db.begin();
        let cursor = marks[i % AUTHORS].middle_cursor.clone();
        let page = by_author(&mut tx, author(i))
            .paginate(PaginationOptions::after(cursor, PAGE))
            .await
            .unwrap();
        assert_eq!(page.page.len(), PAGE);
    };
    let next_take = async |i: usize| {
        let mut tx = db.begin();
        let before = marks[i % AUTHORS].middle_time;
        let docs = tx
            .query("posts")
            .with_index("by_author", |r| {
                r.eq("author", author(i)).lt("_creationTime", before)
            })
            .order(Order::Desc)
            .take(PAGE)
            .await
            .unwrap();
        assert_eq!(docs.len(), PAGE);
    };
    let pinned_page = async |i: usize| {
        let mut tx = db.begin();
        let end = marks[i % AUTHORS].first_end.clone();
        let page = by_author(&mut tx, author(i))
            .paginate(PaginationOptions {
                num_items: PAGE,
                end_cursor: Some(end),
                ..PaginationOptions::default()
            })
            .await
            .unwrap();
        assert_eq!(page.page.len(), PAGE);
    };
    let mut samples: [Vec<f64>; 6] = Default::default();
    for _ in 0..ROUNDS {
        let measured = [
            paired_us(first_page, first_take).await,
            paired_us(next_page, next_take).await,
            paired_us(pinned_page, first_take).await,
        ];
        for (pair, (page, take)) in samples.chunks_mut(2).zip(measured) {
            pair[0].push(page);
            pair[1].push(take);
        }
    }
    let [
        first_page,
        first_take,
        next_page,
        next_take,
        pinned_page,
        pinned_take,
    ] = samples.map(median);
    vec![
        (
            "first page of 100 (`paginate`, no cursor)",
            first_page,
            first_take,
        ),
        ("page of 100 after a cursor", next_page, next_take),
        (
            "page of 100 re-run up to its end cursor (a subscription's re-run)",
            pinned_page,
            pinned_take,
        ),
    ]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("| benchmark | paginate | take of the same rows | ratio (paginate / take) |");
    println!("|---|---|---|---|");
    for (name, page, take) in runtime.block_on(figures()) {
        println!(
            "| {name} | {page:.1} µs | {take:.1} µs | {:.2}× |",
            page / take
        );
    }
}

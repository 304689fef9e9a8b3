//! The engine benchmarks on [`PostgresPersistence`], each next to the same operation as a raw
//! tokio-postgres statement on an equivalent plain table, in a fresh schema on the test server
//! (`KEEL_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/test`).

use std::sync::Arc;
use std::time::Instant;

use keel_db::persistence::PostgresTestSchema;
use keel_db::{Database, PostgresPersistence};
use keel_values::DocumentId;
use keel_values::{Object, Value};
use tokio_postgres::{Client, NoTls};

use super::{
    AUTHORS, Figure, MEASURE, ROUNDS, ROWS, Write, commit_rate, mean_us, median, post, schema,
};

async fn raw_client(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// A plain table holding the same posts, with the index the range read needs.
async fn raw_posts(client: &Client, s: &str, ids: &[DocumentId]) {
    client
        .batch_execute(&format!(
            "CREATE TABLE {s}.raw_posts (id BYTEA PRIMARY KEY, author TEXT, ct FLOAT8, value BYTEA);
             CREATE INDEX ON {s}.raw_posts (author, ct, id);"
        ))
        .await
        .unwrap();
    let ids: Vec<Vec<u8>> = ids.iter().map(DocumentId::to_bytes).collect();
    let authors: Vec<String> = (0..ROWS)
        .map(|i| format!("author{:03}", i % AUTHORS))
        .collect();
    let cts: Vec<f64> = (0..ROWS).map(|i| i as f64).collect();
    let values: Vec<Vec<u8>> = (0..ROWS)
        .map(|i| serde_json::to_vec(&format!("{:?}", post(i))).unwrap())
        .collect();
    client
        .execute(
            &format!(
                "INSERT INTO {s}.raw_posts SELECT * FROM UNNEST($1::bytea[], $2::text[], $3::float8[], $4::bytea[])"
            ),
            &[&ids, &authors, &cts, &values],
        )
        .await
        .unwrap();
    client
        .batch_execute(&format!("ANALYZE {s}.raw_posts"))
        .await
        .unwrap();
}

async fn reads(pg: &PostgresTestSchema, db: &Database) -> Vec<Figure> {
    let mut ids = Vec::with_capacity(ROWS);
    for chunk in 0..ROWS / 1000 {
        let mut tx = db.begin();
        for i in chunk * 1000..(chunk + 1) * 1000 {
            ids.push(tx.insert("posts", post(i)).await.unwrap());
        }
        db.commit(tx).await.unwrap();
    }
    let s = format!("\"{}\"", pg.name());
    let raw = raw_client(pg.url()).await;
    raw_posts(&raw, &s, &ids).await;
    raw.batch_execute(&format!(
        "ANALYZE {s}.keel_documents; ANALYZE {s}.keel_indexes"
    ))
    .await
    .unwrap();
    let ids = Arc::new(ids);

    let point_sql = raw
        .prepare(&format!("SELECT value FROM {s}.raw_posts WHERE id = $1"))
        .await
        .unwrap();
    let range_sql = raw
        .prepare(&format!(
            "SELECT id, value FROM {s}.raw_posts WHERE author = $1 ORDER BY ct, id LIMIT 100"
        ))
        .await
        .unwrap();
    // Engine and baseline alternate, ROUNDS times; medians are reported (as for SQLite).
    let mut samples: [Vec<f64>; 5] = Default::default();
    for _ in 0..ROUNDS {
        let round = [
            mean_us(async |i| {
                let mut tx = db.begin();
                assert!(tx.get(ids[(i * 7919) % ROWS]).await.unwrap().is_some());
            })
            .await,
            mean_us(async |i| {
                let id = ids[(i * 7919) % ROWS].to_bytes();
                let row = raw.query_one(&point_sql, &[&id]).await.unwrap();
                assert!(!row.get::<_, Vec<u8>>(0).is_empty());
            })
            .await,
            mean_us(async |i| super::range_read(db, i, keel_db::Order::Asc).await).await,
            mean_us(async |i| {
                let author = format!("author{:03}", i % AUTHORS);
                let rows = raw.query(&range_sql, &[&author]).await.unwrap();
                assert_eq!(rows.len(), 100);
            })
            .await,
            mean_us(async |i| super::range_read(db, i, keel_db::Order::Desc).await).await,
        ];
        for (slot, cost) in samples.iter_mut().zip(round) {
            slot.push(cost.wall);
        }
    }
    let [point, point_raw, range, range_raw, desc] = samples.map(median);
    vec![
        Figure {
            name: "PostgreSQL: point read (`get` by id)",
            unit: "µs",
            engine: point,
            baseline: point_raw,
            baseline_name: "tokio-postgres primary-key SELECT",
            higher_is_better: false,
        },
        Figure {
            name: "PostgreSQL: 100-row index range read (asc)",
            unit: "µs",
            engine: range,
            baseline: range_raw,
            baseline_name: "tokio-postgres index range SELECT … LIMIT 100",
            higher_is_better: false,
        },
        Figure {
            name: "PostgreSQL: 100-row index range read (desc)",
            unit: "µs",
            engine: desc,
            baseline: range_raw,
            baseline_name: "same asc tokio-postgres SELECT",
            higher_is_better: false,
        },
    ]
}

/// Raw commits per second: each task its own connection, one transaction per write.
async fn raw_commit_rate(pg: &PostgresTestSchema, writers: usize, conflicting: bool) -> f64 {
    let s = format!("\"{}\"", pg.name());
    raw_client(pg.url())
        .await
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {s}.raw_writes (id BIGSERIAL PRIMARY KEY, author TEXT, value BYTEA);
             CREATE TABLE IF NOT EXISTS {s}.raw_counter (id INT PRIMARY KEY, n BIGINT);
             INSERT INTO {s}.raw_counter VALUES (1, 0) ON CONFLICT DO NOTHING;"
        ))
        .await
        .unwrap();
    let mut clients = Vec::new();
    for _ in 0..writers {
        clients.push(raw_client(pg.url()).await);
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for mut client in clients {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            while start.elapsed() < MEASURE {
                let tx = client.transaction().await.unwrap();
                if conflicting {
                    let row = tx
                        .query_one(
                            &format!("SELECT n FROM {s}.raw_counter WHERE id = 1 FOR UPDATE"),
                            &[],
                        )
                        .await
                        .unwrap();
                    let n: i64 = row.get(0);
                    tx.execute(
                        &format!("UPDATE {s}.raw_counter SET n = $1 WHERE id = 1"),
                        &[&(n + 1)],
                    )
                    .await
                    .unwrap();
                } else {
                    tx.execute(
                        &format!("INSERT INTO {s}.raw_writes (author, value) VALUES ('a', $1)"),
                        &[&vec![0u8; 150]],
                    )
                    .await
                    .unwrap();
                }
                tx.commit().await.unwrap();
                done += 1;
            }
            done
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64()
}

async fn commits(pg: &PostgresTestSchema, db: &Database) -> Vec<Figure> {
    let mut tx = db.begin();
    let mut o = Object::new();
    o.insert("n".into(), Value::Int64(0));
    let counter = tx.insert("counters", o).await.unwrap();
    db.commit(tx).await.unwrap();
    let mut samples: [Vec<f64>; 6] = Default::default();
    for _ in 0..ROUNDS {
        let round = [
            commit_rate(db, 1, Write::Insert).await,
            raw_commit_rate(pg, 1, false).await,
            commit_rate(db, 8, Write::Insert).await,
            raw_commit_rate(pg, 8, false).await,
            commit_rate(db, 8, Write::Increment(counter)).await,
            raw_commit_rate(pg, 8, true).await,
        ];
        for (slot, value) in samples.iter_mut().zip(round) {
            slot.push(value);
        }
    }
    let [one, one_raw, eight, eight_raw, conflicting, conflicting_raw] = samples.map(median);
    vec![
        Figure {
            name: "PostgreSQL: non-conflicting commits, 1 writer",
            unit: "commits/s",
            engine: one,
            baseline: one_raw,
            baseline_name: "tokio-postgres BEGIN/INSERT/COMMIT, 1 connection",
            higher_is_better: true,
        },
        Figure {
            name: "PostgreSQL: non-conflicting commits, 8 writers",
            unit: "commits/s",
            engine: eight,
            baseline: eight_raw,
            baseline_name: "tokio-postgres BEGIN/INSERT/COMMIT, 8 connections",
            higher_is_better: true,
        },
        Figure {
            name: "PostgreSQL: conflicting increments of one counter, 8 writers",
            unit: "commits/s",
            engine: conflicting,
            baseline: conflicting_raw,
            baseline_name: "tokio-postgres SELECT … FOR UPDATE + UPDATE, 8 connections",
            higher_is_better: true,
        },
    ]
}

/// A database on a fresh schema of the test server, without TLS like the baseline's
/// connections (`NoTls`).
async fn open() -> (PostgresTestSchema, Database) {
    let pg = PostgresTestSchema::create()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let sep = if pg.url().contains('?') { '&' } else { '?' };
    let url = format!("{}{sep}sslmode=disable", pg.url());
    let persistence = PostgresPersistence::connect_with(&url, pg.options())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let db = Database::open(Arc::new(persistence), schema())
        .await
        .unwrap();
    (pg, db)
}

/// The PostgreSQL figures (reads and commits each on their own schema, dropped afterwards).
/// Panics, saying how to start it, when the server is unreachable.
pub(crate) async fn figures() -> Vec<Figure> {
    let (pg, db) = open().await;
    let mut figures = reads(&pg, &db).await;
    drop(db);
    pg.drop_schema().await;
    let (pg, db) = open().await;
    figures.extend(commits(&pg, &db).await);
    drop(db);
    pg.drop_schema().await;
    figures
}

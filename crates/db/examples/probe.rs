#![allow(missing_docs, clippy::print_stdout)]
use keel_db::*;
use keel_values::*;
use std::sync::Arc;
use std::time::Instant;
#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let p = Arc::new(SqlitePersistence::open(dir.path().join("x.sqlite3")).unwrap());
    let db = Database::open(
        p.clone(),
        Schema::new().table("posts", TableSchema::new().index("by_author", &["author"])),
    )
    .await
    .unwrap();
    let mut tx = db.begin();
    for i in 0..15000 {
        let mut o = Object::new();
        o.insert("author".into(), Value::String(format!("a{}", i % 100)));
        o.insert("body".into(), Value::String("x".repeat(100)));
        tx.insert("posts", o).await.unwrap();
    }
    db.commit(tx).await.unwrap();
    for _ in 0..3 {
        let t = Instant::now();
        for i in 0..200 {
            let mut tx = db.begin();
            let a = format!("a{}", i % 100);
            let d = tx
                .query("posts")
                .with_index("by_author", |r| r.eq("author", a))
                .take(100)
                .await
                .unwrap();
            assert_eq!(d.len(), 100);
        }
        println!("query: {:?}/op", t.elapsed() / 200);
        let t = Instant::now();
        for _ in 0..200 {
            let r = p
                .index_scan(
                    IndexId(3),
                    &Interval::all(),
                    db.latest_ts(),
                    Order::Asc,
                    100,
                )
                .await
                .unwrap();
            assert_eq!(r.len(), 100);
        }
        println!("scan by_creation: {:?}/op", t.elapsed() / 200);
        let t = Instant::now();
        for _ in 0..2000 {
            p.max_ts().await.unwrap();
        }
        println!("trivial read: {:?}/op", t.elapsed() / 2000);
        let c = rusqlite::Connection::open(dir.path().join("x.sqlite3")).unwrap();
        if std::env::var("CKPT").is_ok() {
            c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
        }
        let t = Instant::now();
        for i in 0..2000i64 {
            let mut s = c.prepare_cached("SELECT ts, value, prev_ts FROM documents WHERE table_num = ?1 AND internal = ?2 AND ts <= ?3 ORDER BY ts DESC LIMIT 1").unwrap();
            let _ = s.query_row(
                rusqlite::params![10001, &[i as u8; 16][..], i64::MAX],
                |r| r.get::<_, i64>(0),
            );
        }
        println!("raw doc lookup: {:?}/op", t.elapsed() / 2000);
        let t = Instant::now();
        let mut n = 0;
        for i in 0..200 {
            let mut s = c.prepare_cached("SELECT key, ts, table_num, internal FROM indexes WHERE index_id = ?1 AND key >= ?2 AND ts <= ?3 ORDER BY key ASC, ts ASC").unwrap();
            let mut rows = s
                .query(rusqlite::params![3, &[][..] as &[u8], i64::MAX])
                .unwrap();
            for _ in 0..100 {
                rows.next().unwrap();
                n += 1;
            }
            let _ = i;
        }
        println!("raw index rows x100: {:?}/op {n}", t.elapsed() / 200);
    }
}

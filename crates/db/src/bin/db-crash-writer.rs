//! Crash-test writer: commits in a loop and reports every acknowledged commit on stdout.
//!
//! Run with `db-crash-writer <sqlite file>` or `db-crash-writer <postgres url> <schema>`. Each commit inserts three documents of table
//! `crash` sharing one sequence number and patches the `head` document to that number, then
//! prints `ack <seq>` once the commit is acknowledged. `crates/db/tests/crash.rs` kills it with
//! SIGKILL at random moments and checks that every acknowledged commit survived whole.

use std::io::Write;
use std::sync::Arc;

use keel_db::persistence::PostgresOptions;
use keel_db::{
    Database, Order, Persistence, PostgresPersistence, Schema, SqlitePersistence, TableSchema,
};
use keel_values::{Object, Value};

/// The schema the writer and the crash test share.
fn schema() -> Schema {
    Schema::new()
        .table("crash", TableSchema::new().index("by_seq", &["seq"]))
        .table("head", TableSchema::new())
}

fn fields(pairs: &[(&str, Value)]) -> Object {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = || "usage: db-crash-writer <sqlite file> | <postgres url> <schema>";
    let location = args.next().ok_or_else(usage)?;
    let persistence: Arc<dyn Persistence> = if location.starts_with("postgres://") {
        let options = PostgresOptions {
            schema: args.next().ok_or_else(usage)?,
            ..PostgresOptions::default()
        };
        Arc::new(PostgresPersistence::connect_with(&location, options).await?)
    } else {
        Arc::new(SqlitePersistence::open(&location)?)
    };
    let db = Database::open(persistence, schema()).await?;
    let mut tx = db.begin();
    let last = tx
        .query("crash")
        .with_index("by_seq", |r| r)
        .order(Order::Desc)
        .first()
        .await?;
    let mut seq = match last.map(|d| d.fields.get("seq").cloned()) {
        Some(Some(Value::Int64(n))) => n + 1,
        _ => 0,
    };
    let head = match tx.query("head").first().await? {
        Some(head) => head.id,
        None => {
            let id = tx
                .insert("head", fields(&[("seq", Value::Int64(-1))]))
                .await?;
            db.commit(tx).await?;
            id
        }
    };
    let mut out = std::io::stdout().lock();
    loop {
        let mut tx = db.begin();
        for part in 0..3i64 {
            let body = Value::String("x".repeat(200));
            tx.insert(
                "crash",
                fields(&[
                    ("seq", Value::Int64(seq)),
                    ("part", Value::Int64(part)),
                    ("body", body),
                ]),
            )
            .await?;
        }
        tx.patch(head, fields(&[("seq", Value::Int64(seq))]), &[])
            .await?;
        db.commit(tx).await?;
        writeln!(out, "ack {seq}")?;
        out.flush()?;
        seq += 1;
    }
}

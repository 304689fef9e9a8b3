//! Serializability under concurrency: conflicting increments, a bank workload with audits, and a
//! property test of conflict detection against a brute-force overlap check — each on SQLite and
//! on PostgreSQL (a fresh schema on the test server, `KEEL_TEST_POSTGRES_URL`).

mod support;

use std::collections::HashMap;
use std::sync::Arc;

use keel_db::{DbError, Document, Order};
use keel_values::{DocumentId, Value, obj};
use parking_lot::Mutex;
use rand::Rng;
use support::{Store, fields, fresh_on};

/// Runs the body in fresh transactions (bound to `$tx`) until it commits without an OCC
/// conflict; evaluates to (the body's value, number of conflicts).
macro_rules! with_retries {
    ($db:expr, |$tx:ident| $body:block) => {{
        let mut conflicts = 0u32;
        loop {
            let mut $tx = $db.begin();
            let value = async { $body }.await;
            let value: Result<_, DbError> = value;
            let value = value.unwrap();
            match $db.commit($tx).await {
                Ok(_) => break (value, conflicts),
                Err(e) if e.is_occ() => conflicts += 1,
                Err(e) => panic!("unexpected error {e}"),
            }
        }
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conflicting_increments_count_exactly() {
    conflicting_increments(Store::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_conflicting_increments_count_exactly() {
    conflicting_increments(Store::Postgres).await;
}

async fn conflicting_increments(store: Store) {
    let t = fresh_on(store).await;
    let mut tx = t.db.begin();
    tx.insert("counters", fields(obj! { "name" => "c", "value" => 0i64 }))
        .await
        .unwrap();
    t.db.commit(tx).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let db = t.db.clone();
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0;
            for _ in 0..200 {
                let (_, c) = with_retries!(db, |tx| {
                    let doc = tx
                        .query("counters")
                        .with_index("by_name", |r| r.eq("name", "c"))
                        .unique()
                        .await?
                        .unwrap();
                    let Value::Int64(n) = doc.fields["value"] else {
                        panic!("not an int")
                    };
                    tx.patch(doc.id, fields(obj! { "value" => n + 1 }), &[])
                        .await
                });
                conflicts += c;
            }
            conflicts
        }));
    }
    let mut conflicts = 0;
    for task in tasks {
        conflicts += task.await.unwrap();
    }
    let mut tx = t.db.begin();
    let doc = tx.query("counters").first().await.unwrap().unwrap();
    assert_eq!(doc.fields["value"], Value::Int64(1600));
    assert!(conflicts > 0, "the workload should have produced conflicts");
}

#[tokio::test]
async fn occ_error_names_table_and_document() {
    occ_error_names(Store::Sqlite).await;
}

#[tokio::test]
async fn postgres_occ_error_names_table_and_document() {
    occ_error_names(Store::Postgres).await;
}

async fn occ_error_names(store: Store) {
    let t = fresh_on(store).await;
    let mut tx = t.db.begin();
    let id = tx
        .insert("counters", fields(obj! { "name" => "c", "value" => 0i64 }))
        .await
        .unwrap();
    t.db.commit(tx).await.unwrap();
    let mut slow = t.db.begin();
    slow.get(id).await.unwrap();
    slow.insert("posts", fields(obj! { "x" => 1i64 }))
        .await
        .unwrap();
    let mut fast = t.db.begin();
    fast.patch(id, fields(obj! { "value" => 1i64 }), &[])
        .await
        .unwrap();
    t.db.commit(fast).await.unwrap();
    let err = t.db.commit(slow).await.unwrap_err();
    assert!(err.is_occ());
    let text = err.to_string();
    assert!(text.contains("\"counters\" table"), "{text}");
    assert!(text.contains(&id.to_string()), "{text}");
}

const ACCOUNTS: usize = 20;
const INITIAL: i64 = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bank_transfers_keep_the_total() {
    bank_transfers(Store::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_bank_transfers_keep_the_total() {
    bank_transfers(Store::Postgres).await;
}

async fn bank_transfers(store: Store) {
    let t = fresh_on(store).await;
    let mut tx = t.db.begin();
    let mut ids = Vec::new();
    for i in 0..ACCOUNTS {
        ids.push(
            tx.insert(
                "accounts",
                fields(obj! { "n" => i as i64, "balance" => INITIAL }),
            )
            .await
            .unwrap(),
        );
    }
    t.db.commit(tx).await.unwrap();
    let ids = Arc::new(ids);
    let committed: Arc<Mutex<Vec<(usize, usize, i64)>>> = Arc::default();
    let mut tasks = Vec::new();
    for worker in 0..6 {
        let (db, ids, committed) = (t.db.clone(), ids.clone(), committed.clone());
        tasks.push(tokio::spawn(async move {
            let mut audits = 0;
            for round in 0..60 {
                if (worker + round) % 5 == 0 {
                    // Audit: read every account in one snapshot, alternating scan and gets.
                    let mut tx = db.begin();
                    let balances: Vec<i64> = if round % 2 == 0 {
                        tx.query("accounts")
                            .collect()
                            .await
                            .unwrap()
                            .iter()
                            .map(balance)
                            .collect()
                    } else {
                        let mut out = Vec::new();
                        for id in ids.iter() {
                            out.push(balance(&tx.get(*id).await.unwrap().unwrap()));
                        }
                        out
                    };
                    assert_eq!(
                        balances.iter().sum::<i64>(),
                        INITIAL * ACCOUNTS as i64,
                        "audit saw a torn state"
                    );
                    assert!(balances.iter().all(|b| *b >= 0));
                    audits += 1;
                    continue;
                }
                let (from, to, amount) = {
                    let mut rng = rand::rng();
                    let from = rng.random_range(0..ACCOUNTS);
                    let to = (from + rng.random_range(1..ACCOUNTS)) % ACCOUNTS;
                    (from, to, rng.random_range(1..300i64))
                };
                let (moved, _) = with_retries!(db, |tx| {
                    let a = tx.get(ids[from]).await?.unwrap();
                    let b = tx.get(ids[to]).await?.unwrap();
                    if balance(&a) < amount {
                        return Ok(false);
                    }
                    tx.patch(
                        a.id,
                        fields(obj! { "balance" => balance(&a) - amount }),
                        &[],
                    )
                    .await?;
                    tx.patch(
                        b.id,
                        fields(obj! { "balance" => balance(&b) + amount }),
                        &[],
                    )
                    .await?;
                    Ok(true)
                });
                if moved {
                    committed.lock().push((from, to, amount));
                }
            }
            audits
        }));
    }
    let mut audits = 0;
    for task in tasks {
        audits += task.await.unwrap();
    }
    assert!(audits > 0);
    let mut expected = vec![INITIAL; ACCOUNTS];
    for (from, to, amount) in committed.lock().iter() {
        expected[*from] -= amount;
        expected[*to] += amount;
    }
    let mut tx = t.db.begin();
    let docs = tx.query("accounts").collect().await.unwrap();
    let mut actual = vec![0; ACCOUNTS];
    for doc in &docs {
        let Value::Int64(n) = doc.fields["n"] else {
            panic!()
        };
        actual[n as usize] = balance(doc);
    }
    assert_eq!(
        actual, expected,
        "final balances are the sum of committed transfers"
    );
    assert!(!committed.lock().is_empty());
}

fn balance(doc: &Document) -> i64 {
    match doc.fields["balance"] {
        Value::Int64(b) => b,
        _ => panic!("balance is not an int"),
    }
}

/// One step of the property test's concurrent writer.
#[derive(Clone, Debug)]
enum Write {
    Insert(u8),
    Rename(usize, u8),
    Touch(usize),
    Delete(usize),
}

fn name(n: u8) -> String {
    format!("n{n:02}")
}

/// Sort tuple of a document in `by_name` (name, creation time bits in order, id bytes).
fn tuple(name: &str, doc: &Document) -> (String, f64, Vec<u8>) {
    (name.to_owned(), doc.creation_time, doc.id.to_bytes())
}

fn le(a: &(String, f64, Vec<u8>), b: &(String, f64, Vec<u8>)) -> bool {
    (a.0.as_bytes(), a.1, &a.2)
        .partial_cmp(&(b.0.as_bytes(), b.1, &b.2))
        .is_some_and(|o| o.is_le())
}

#[allow(clippy::too_many_arguments)]
async fn occ_case(
    store: Store,
    initial: Vec<u8>,
    lo: u8,
    hi: u8,
    take: usize,
    desc: bool,
    get: Option<usize>,
    writes: Vec<Write>,
) {
    let t = fresh_on(store).await;
    let mut tx = t.db.begin();
    let mut docs: Vec<DocumentId> = Vec::new();
    for n in &initial {
        docs.push(
            tx.insert(
                "counters",
                fields(obj! { "name" => name(*n), "value" => 0i64 }),
            )
            .await
            .unwrap(),
        );
    }
    t.db.commit(tx).await.unwrap();
    // The reader: one range query (and maybe one get), then a write elsewhere.
    let order = if desc { Order::Desc } else { Order::Asc };
    let mut reader = t.db.begin();
    let seen = reader
        .query("counters")
        .with_index("by_name", |r| r.gte("name", name(lo)).lt("name", name(hi)))
        .order(order)
        .take(take)
        .await
        .unwrap();
    let got_id = get
        .filter(|_| !docs.is_empty())
        .map(|i| docs[i % docs.len()]);
    if let Some(id) = got_id {
        reader.get(id).await.unwrap();
    }
    reader
        .insert("posts", fields(obj! { "x" => 1i64 }))
        .await
        .unwrap();
    // The concurrent writer commits first; remember every (before, after) state it wrote.
    let mut writer = t.db.begin();
    let mut touched: HashMap<DocumentId, (Option<Document>, Option<Document>)> = HashMap::new();
    for w in writes {
        let pick = |i: usize| (!docs.is_empty()).then(|| docs[i % docs.len()]);
        let id = match w {
            Write::Insert(n) => Some(
                writer
                    .insert(
                        "counters",
                        fields(obj! { "name" => name(n), "value" => 1i64 }),
                    )
                    .await
                    .unwrap(),
            ),
            Write::Rename(i, _) | Write::Touch(i) | Write::Delete(i) => pick(i),
        };
        let Some(id) = id else { continue };
        let before = match touched.get(&id) {
            Some((b, _)) => b.clone(),
            None => t.db.begin().get(id).await.unwrap(),
        };
        let wrote = match w {
            Write::Rename(_, n) => writer
                .patch(id, fields(obj! { "name" => name(n) }), &[])
                .await
                .is_ok(),
            Write::Touch(_) => writer
                .patch(id, fields(obj! { "value" => 7i64 }), &[])
                .await
                .is_ok(),
            Write::Delete(_) => writer.delete(id).await.is_ok(),
            Write::Insert(_) => true,
        };
        if wrote {
            let after = writer.get(id).await.unwrap();
            touched.insert(id, (before, after));
        }
    }
    let writer_committed = t.db.commit(writer).await.is_ok();
    // Brute force: the reader read [lo, hi) up to its last row (or all of it when exhausted).
    let exhausted = seen.len() < take;
    let in_read_range = |doc: &Document| {
        let Value::String(n) = &doc.fields["name"] else {
            return false;
        };
        if !(name(lo) <= *n && *n < name(hi)) {
            return false;
        }
        if exhausted {
            return true;
        }
        let last = seen.last().unwrap();
        let last_t = tuple(last.fields["name"].as_str().unwrap(), last);
        let t = tuple(n, doc);
        if desc {
            le(&last_t, &t)
        } else {
            le(&t, &last_t)
        }
    };
    let expect_conflict = writer_committed
        && touched.iter().any(|(id, (before, after))| {
            Some(*id) == got_id || before.iter().chain(after.iter()).any(&in_read_range)
        });
    let result = t.db.commit(reader).await;
    assert_eq!(result.is_err(), expect_conflict, "result {result:?}");
    if let Err(e) = result {
        assert!(e.is_occ(), "{e}");
    }
}

fn write_strategy() -> impl proptest::strategy::Strategy<Value = Write> {
    use proptest::prelude::*;
    prop_oneof![
        (0u8..20).prop_map(Write::Insert),
        (0usize..20, 0u8..20).prop_map(|(i, n)| Write::Rename(i, n)),
        (0usize..20).prop_map(Write::Touch),
        (0usize..20).prop_map(Write::Delete),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 48, ..Default::default() })]
    #[test]
    fn occ_matches_brute_force_overlap(
        initial in proptest::collection::vec(0u8..20, 0..10),
        lo in 0u8..20, span in 0u8..12, take in 1usize..6, desc in proptest::bool::ANY,
        get in proptest::option::of(0usize..20),
        writes in proptest::collection::vec(write_strategy(), 0..4),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(occ_case(Store::Sqlite, initial, lo, lo.saturating_add(span).min(20), take, desc, get, writes));
    }

    #[test]
    fn postgres_occ_matches_brute_force_overlap(
        initial in proptest::collection::vec(0u8..20, 0..10),
        lo in 0u8..20, span in 0u8..12, take in 1usize..6, desc in proptest::bool::ANY,
        get in proptest::option::of(0usize..20),
        writes in proptest::collection::vec(write_strategy(), 0..4),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(occ_case(Store::Postgres, initial, lo, lo.saturating_add(span).min(20), take, desc, get, writes));
    }
}

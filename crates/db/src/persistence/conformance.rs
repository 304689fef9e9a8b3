//! The conformance suite every [`Persistence`] implementation must pass.
//!
//! Each check is a public async function taking a fresh, empty persistence. The
//! [`persistence_conformance_tests!`](crate::persistence_conformance_tests) macro turns them into
//! one `#[tokio::test]` each for an implementation:
//!
//! ```ignore
//! async fn fresh() -> (std::sync::Arc<dyn keel_db::Persistence>, Box<dyn std::any::Any + Send>) {
//!     let dir = tempfile::tempdir().unwrap();
//!     let p = keel_db::SqlitePersistence::open(dir.path().join("db.sqlite3")).unwrap();
//!     (std::sync::Arc::new(p), Box::new(dir))
//! }
//! keel_db::persistence_conformance_tests!(fresh);
//! ```

use keel_values::{DocumentId, Object, TableNumber, Value};

use super::{ChangedDocument, CommitRecord, DocumentRevision, IndexEntry, IndexId, Persistence};
use crate::{Document, Interval, Order, Timestamp};

/// Expands to one `#[tokio::test]` per conformance check, each given a fresh persistence from
/// `$fresh`: an async fn returning `(Arc<dyn Persistence>, guard)` where the guard keeps the
/// storage alive (a temp dir, a database) until the test ends.
#[macro_export]
macro_rules! persistence_conformance_tests {
    ($fresh:path) => {
        $crate::persistence_conformance_tests!(@each $fresh,
            empty_storage, document_snapshots, index_snapshots_and_tombstones,
            index_scan_bounds_and_order, index_scan_limit_with_many_versions,
            batch_is_atomic, max_ts_and_globals, revisions_between_with_previous,
            prune_keeps_what_reads_after_the_horizon_see);
    };
    (@each $fresh:path, $($name:ident),*) => {
        $(
            #[tokio::test]
            async fn $name() {
                let (persistence, _guard) = $fresh().await;
                $crate::persistence::conformance::$name(persistence.as_ref()).await;
            }
        )*
    };
}

fn id(n: u8) -> DocumentId {
    DocumentId::new(TableNumber(10001), [n; 16])
}

fn doc(n: u8, version: i64) -> Document {
    let mut fields = Object::new();
    fields.insert("v".into(), Value::Int64(version));
    fields.insert("name".into(), Value::String(format!("doc {n}")));
    Document {
        id: id(n),
        creation_time: 1000.0 + f64::from(n),
        fields,
    }
}

fn revision(n: u8, version: i64, ts: u64, prev: Option<u64>) -> DocumentRevision {
    DocumentRevision {
        id: id(n),
        ts: Timestamp(ts),
        document: Some(doc(n, version)),
        prev_ts: prev.map(Timestamp),
    }
}

fn entry(index: u32, key: &[u8], ts: u64, doc: Option<u8>) -> IndexEntry {
    IndexEntry {
        index: IndexId(index),
        key: key.to_vec(),
        ts: Timestamp(ts),
        document: doc.map(id),
    }
}

fn commit(
    ts: u64,
    documents: Vec<DocumentRevision>,
    index_entries: Vec<IndexEntry>,
) -> CommitRecord {
    CommitRecord {
        ts: Timestamp(ts),
        documents,
        index_entries,
    }
}

async fn keys(
    p: &dyn Persistence,
    index: u32,
    interval: &Interval,
    ts: u64,
    order: Order,
    limit: usize,
) -> Vec<Vec<u8>> {
    let rows = p
        .index_scan(IndexId(index), interval, Timestamp(ts), order, limit)
        .await
        .unwrap();
    rows.into_iter().map(|r| r.key).collect()
}

/// Empty storage has no timestamp, documents or index rows.
pub async fn empty_storage(p: &dyn Persistence) {
    assert_eq!(p.max_ts().await.unwrap(), None);
    assert_eq!(
        p.document_at(id(1), Timestamp(u64::MAX >> 2))
            .await
            .unwrap(),
        None
    );
    assert!(
        keys(p, 1, &Interval::all(), 100, Order::Asc, 10)
            .await
            .is_empty()
    );
    assert_eq!(p.global("nothing").await.unwrap(), None);
}

/// A document read at `ts` is its newest revision at or before `ts`, tombstones included.
pub async fn document_snapshots(p: &dyn Persistence) {
    p.write(vec![commit(10, vec![revision(1, 1, 10, None)], vec![])])
        .await
        .unwrap();
    p.write(vec![commit(20, vec![revision(1, 2, 20, Some(10))], vec![])])
        .await
        .unwrap();
    let tombstone = DocumentRevision {
        id: id(1),
        ts: Timestamp(30),
        document: None,
        prev_ts: Some(Timestamp(20)),
    };
    p.write(vec![commit(30, vec![tombstone.clone()], vec![])])
        .await
        .unwrap();
    assert_eq!(p.document_at(id(1), Timestamp(9)).await.unwrap(), None);
    assert_eq!(
        p.document_at(id(1), Timestamp(10)).await.unwrap(),
        Some(revision(1, 1, 10, None))
    );
    assert_eq!(
        p.document_at(id(1), Timestamp(19)).await.unwrap(),
        Some(revision(1, 1, 10, None))
    );
    assert_eq!(
        p.document_at(id(1), Timestamp(25)).await.unwrap(),
        Some(revision(1, 2, 20, Some(10)))
    );
    assert_eq!(
        p.document_at(id(1), Timestamp(31)).await.unwrap(),
        Some(tombstone)
    );
    assert_eq!(p.document_at(id(2), Timestamp(31)).await.unwrap(), None);
}

/// Index reads see each key's newest entry at or before `ts`; tombstoned keys are skipped.
pub async fn index_snapshots_and_tombstones(p: &dyn Persistence) {
    // doc 1 at key a, then moved to key c at ts 20; doc 2 at key b, deleted at 30.
    p.write(vec![commit(
        10,
        vec![revision(1, 1, 10, None), revision(2, 1, 10, None)],
        vec![entry(7, b"a", 10, Some(1)), entry(7, b"b", 10, Some(2))],
    )])
    .await
    .unwrap();
    p.write(vec![commit(
        20,
        vec![revision(1, 2, 20, Some(10))],
        vec![entry(7, b"a", 20, None), entry(7, b"c", 20, Some(1))],
    )])
    .await
    .unwrap();
    let gone = DocumentRevision {
        id: id(2),
        ts: Timestamp(30),
        document: None,
        prev_ts: Some(Timestamp(10)),
    };
    p.write(vec![commit(30, vec![gone], vec![entry(7, b"b", 30, None)])])
        .await
        .unwrap();
    let all = Interval::all();
    assert_eq!(
        keys(p, 7, &all, 5, Order::Asc, 10).await,
        Vec::<Vec<u8>>::new()
    );
    assert_eq!(
        keys(p, 7, &all, 10, Order::Asc, 10).await,
        vec![b"a".to_vec(), b"b".to_vec()]
    );
    assert_eq!(
        keys(p, 7, &all, 20, Order::Asc, 10).await,
        vec![b"b".to_vec(), b"c".to_vec()]
    );
    assert_eq!(
        keys(p, 7, &all, 30, Order::Asc, 10).await,
        vec![b"c".to_vec()]
    );
    assert!(
        keys(p, 8, &all, 30, Order::Asc, 10).await.is_empty(),
        "other indexes are separate"
    );
    let rows = p
        .index_scan(IndexId(7), &all, Timestamp(20), Order::Asc, 10)
        .await
        .unwrap();
    assert_eq!(
        rows[1].document,
        doc(1, 2),
        "rows carry the document at the read timestamp"
    );
    assert_eq!(rows[1].ts, Timestamp(20));
    let rows = p
        .index_scan(IndexId(7), &all, Timestamp(15), Order::Asc, 10)
        .await
        .unwrap();
    assert_eq!(rows[0].document, doc(1, 1));
}

/// Start bounds are inclusive, end bounds exclusive, `None` is unbounded; both orders work.
pub async fn index_scan_bounds_and_order(p: &dyn Persistence) {
    let docs: Vec<_> = (1..=5).map(|n| revision(n, 1, 10, None)).collect();
    let entries = (1..=5u8)
        .map(|n| entry(3, &[n, 0xFF], 10, Some(n)))
        .collect();
    p.write(vec![commit(10, docs, entries)]).await.unwrap();
    let k = |n: u8| vec![n, 0xFF];
    let range = Interval {
        start: k(2),
        end: Some(k(4)),
    };
    assert_eq!(
        keys(p, 3, &range, 10, Order::Asc, 10).await,
        vec![k(2), k(3)]
    );
    assert_eq!(
        keys(p, 3, &range, 10, Order::Desc, 10).await,
        vec![k(3), k(2)]
    );
    let open = Interval {
        start: vec![3],
        end: None,
    };
    assert_eq!(
        keys(p, 3, &open, 10, Order::Asc, 10).await,
        vec![k(3), k(4), k(5)]
    );
    assert_eq!(
        keys(p, 3, &open, 10, Order::Desc, 2).await,
        vec![k(5), k(4)]
    );
    assert_eq!(
        keys(p, 3, &Interval::prefix(&[4]), 10, Order::Asc, 10).await,
        vec![k(4)]
    );
    let empty = Interval {
        start: k(4),
        end: Some(k(2)),
    };
    assert!(keys(p, 3, &empty, 10, Order::Asc, 10).await.is_empty());
}

/// The limit counts live keys, even when keys have many versions and tombstones.
pub async fn index_scan_limit_with_many_versions(p: &dyn Persistence) {
    for (ts, round) in (100u64..).zip(0..5i64) {
        let mut docs = Vec::new();
        let mut entries = Vec::new();
        for n in 1..=20u8 {
            docs.push(revision(n, round, ts, (round > 0).then_some(ts - 1)));
            // Odd documents flip between live and tombstoned keys; even ones stay.
            let live = n % 2 == 0 || round % 2 == 0;
            entries.push(entry(9, &[n], ts, live.then_some(n)));
        }
        p.write(vec![commit(ts, docs, entries)]).await.unwrap();
    }
    let at = |t| async move { keys(p, 9, &Interval::all(), t, Order::Asc, 7).await };
    // Last round (4) is even: everything live.
    assert_eq!(
        at(104).await,
        (1..=7u8).map(|n| vec![n]).collect::<Vec<_>>()
    );
    // Round 3 is odd: only even documents.
    assert_eq!(
        at(103).await,
        [2u8, 4, 6, 8, 10, 12, 14]
            .iter()
            .map(|n| vec![*n])
            .collect::<Vec<_>>()
    );
    let desc = keys(p, 9, &Interval::all(), 103, Order::Desc, 3).await;
    assert_eq!(desc, vec![vec![20], vec![18], vec![16]]);
}

/// A batch with a duplicate (document, ts) fails as a whole and leaves nothing behind.
pub async fn batch_is_atomic(p: &dyn Persistence) {
    p.write(vec![commit(10, vec![revision(1, 1, 10, None)], vec![])])
        .await
        .unwrap();
    let bad = vec![
        commit(
            20,
            vec![revision(2, 1, 20, None)],
            vec![entry(1, b"x", 20, Some(2))],
        ),
        commit(10, vec![revision(1, 9, 10, None)], vec![]),
    ];
    assert!(p.write(bad).await.is_err());
    assert_eq!(p.document_at(id(2), Timestamp(50)).await.unwrap(), None);
    assert!(
        keys(p, 1, &Interval::all(), 50, Order::Asc, 10)
            .await
            .is_empty()
    );
    assert_eq!(
        p.document_at(id(1), Timestamp(50)).await.unwrap(),
        Some(revision(1, 1, 10, None))
    );
    assert_eq!(p.max_ts().await.unwrap(), Some(Timestamp(10)));
}

/// `max_ts` is the largest timestamp ever written; globals round-trip and overwrite.
pub async fn max_ts_and_globals(p: &dyn Persistence) {
    p.write(vec![
        commit(5, vec![revision(1, 1, 5, None)], vec![]),
        commit(7, vec![revision(2, 1, 7, None)], vec![]),
    ])
    .await
    .unwrap();
    assert_eq!(p.max_ts().await.unwrap(), Some(Timestamp(7)));
    p.set_global("catalog", b"one".to_vec()).await.unwrap();
    p.set_global("catalog", b"two".to_vec()).await.unwrap();
    assert_eq!(p.global("catalog").await.unwrap(), Some(b"two".to_vec()));
    let big = u64::MAX >> 2;
    p.write(vec![commit(big, vec![revision(3, 1, big, None)], vec![])])
        .await
        .unwrap();
    assert_eq!(p.max_ts().await.unwrap(), Some(Timestamp(big)));
}

/// `revisions_between(after, until)` lists the revisions committed in `(after, until]` in
/// timestamp order, each with the document before it (none for an insert).
pub async fn revisions_between_with_previous(p: &dyn Persistence) {
    p.write(vec![
        commit(10, vec![revision(1, 1, 10, None)], vec![]),
        commit(20, vec![revision(2, 1, 20, None)], vec![]),
    ])
    .await
    .unwrap();
    p.write(vec![commit(
        30,
        vec![
            revision(1, 2, 30, Some(10)),
            DocumentRevision {
                id: id(2),
                ts: Timestamp(30),
                document: None,
                prev_ts: Some(Timestamp(20)),
            },
        ],
        vec![],
    )])
    .await
    .unwrap();
    let changed = |after: u64, until: u64| async move {
        let mut found = p
            .revisions_between(Timestamp(after), Timestamp(until))
            .await
            .unwrap();
        // Within one timestamp the order is unspecified.
        found.sort_by_key(|c| (c.revision.ts, c.revision.id));
        found
    };
    assert_eq!(changed(30, 100).await, Vec::new());
    assert_eq!(
        changed(0, 10).await,
        vec![ChangedDocument {
            revision: revision(1, 1, 10, None),
            previous: None
        }]
    );
    let later = changed(10, 30).await;
    assert_eq!(
        later.iter().map(|c| c.revision.ts.0).collect::<Vec<_>>(),
        [20, 30, 30]
    );
    assert_eq!(later[1].revision, revision(1, 2, 30, Some(10)));
    assert_eq!(later[1].previous, Some(doc(1, 1)));
    assert_eq!(later[2].revision.document, None);
    assert_eq!(later[2].previous, Some(doc(2, 1)));
}

/// Everything reads at `ts` see: each live document of ids 1..=3 (a tombstone and no revision
/// read alike: no document) and the live keys of index 1.
async fn visible(p: &dyn Persistence, ts: u64) -> (Vec<Option<Document>>, Vec<Vec<u8>>) {
    let mut docs = Vec::new();
    for n in 1..=3 {
        let revision = p.document_at(id(n), Timestamp(ts)).await.unwrap();
        docs.push(revision.and_then(|r| r.document));
    }
    (
        docs,
        keys(p, 1, &Interval::all(), ts, Order::Asc, 100).await,
    )
}

/// `prune(horizon)` deletes superseded history before the horizon and nothing any read at or
/// after the horizon sees.
pub async fn prune_keeps_what_reads_after_the_horizon_see(p: &dyn Persistence) {
    let tombstone = |n: u8, ts: u64, prev: u64| DocumentRevision {
        id: id(n),
        ts: Timestamp(ts),
        document: None,
        prev_ts: Some(Timestamp(prev)),
    };
    // doc 1: 10, 20, deleted at 30; doc 2: 10, 40; doc 3: 25.
    // index 1: key a live 10, gone 20, live 35; key b live 10; key c live 10, gone 15.
    p.write(vec![
        commit(
            10,
            vec![revision(1, 1, 10, None), revision(2, 1, 10, None)],
            vec![
                entry(1, b"a", 10, Some(1)),
                entry(1, b"b", 10, Some(2)),
                entry(1, b"c", 10, Some(1)),
            ],
        ),
        commit(15, vec![], vec![entry(1, b"c", 15, None)]),
        commit(
            20,
            vec![revision(1, 2, 20, Some(10))],
            vec![entry(1, b"a", 20, None)],
        ),
        commit(25, vec![revision(3, 1, 25, None)], vec![]),
        commit(30, vec![tombstone(1, 30, 20)], vec![]),
        commit(35, vec![], vec![entry(1, b"a", 35, Some(2))]),
        commit(40, vec![revision(2, 2, 40, Some(10))], vec![]),
    ])
    .await
    .unwrap();
    let checked = [25, 29, 30, 35, 40, 100];
    let mut before = Vec::new();
    for ts in checked {
        before.push(visible(p, ts).await);
    }
    let mut deleted = 0;
    loop {
        let n = p.prune(Timestamp(25), 1).await.unwrap();
        if n == 0 {
            break;
        }
        deleted += n;
    }
    // Gone: doc 1 @10 (superseded at 20); key a @10 (superseded at 20), then its tombstone @20
    // (nothing older left; reads in [25, 35) see no key a either way); key c @10 and @15 alike.
    assert_eq!(deleted, 5);
    assert_eq!(p.document_at(id(1), Timestamp(10)).await.unwrap(), None);
    for (ts, seen) in checked.iter().zip(&before) {
        assert_eq!(&visible(p, *ts).await, seen, "reads at {ts} changed");
    }
    // Pruning everything up to 100: doc 1 disappears entirely, doc 2 keeps its newest revision.
    while p.prune(Timestamp(100), 1000).await.unwrap() > 0 {}
    assert_eq!(&visible(p, 100).await, &before[5]);
    assert_eq!(p.document_at(id(1), Timestamp(25)).await.unwrap(), None);
    assert_eq!(p.document_at(id(2), Timestamp(10)).await.unwrap(), None);
    assert_eq!(
        p.document_at(id(2), Timestamp(100)).await.unwrap(),
        Some(revision(2, 2, 40, Some(10)))
    );
}

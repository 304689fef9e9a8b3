//! Tables, indexes, queries, writes and errors through the public API, on real SQLite files.

mod support;

use std::time::Duration;

use keel_db::{DbError, Order, PaginationOptions};
use keel_values::{Value, obj};
use support::{fields, fresh, open};

#[tokio::test]
async fn insert_get_patch_replace_delete() {
    let t = fresh().await;
    let mut tx = t.db.begin();
    let id = tx
        .insert(
            "posts",
            fields(obj! { "author" => "ann", "title" => "a", "likes" => 1i64 }),
        )
        .await
        .unwrap();
    assert!(id.table.0 >= 10001, "user tables are numbered from 10001");
    let own = tx.get(id).await.unwrap().unwrap();
    assert_eq!(
        own.fields["title"],
        Value::from("a"),
        "a transaction reads its own writes"
    );
    t.db.commit(tx).await.unwrap();

    let mut tx = t.db.begin();
    tx.patch(id, fields(obj! { "title" => "b" }), &["likes"])
        .await
        .unwrap();
    let doc = tx.get(id).await.unwrap().unwrap();
    assert_eq!(
        doc.fields,
        fields(obj! { "author" => "ann", "title" => "b" })
    );
    t.db.commit(tx).await.unwrap();

    let mut tx = t.db.begin();
    tx.replace(id, fields(obj! { "author" => "bob" }))
        .await
        .unwrap();
    t.db.commit(tx).await.unwrap();
    let mut tx = t.db.begin();
    let doc = tx.get(id).await.unwrap().unwrap();
    assert_eq!(doc.fields, fields(obj! { "author" => "bob" }));
    assert_eq!(
        doc.to_value().as_object().unwrap()["_id"],
        Value::String(id.to_string())
    );
    tx.delete(id).await.unwrap();
    assert!(tx.get(id).await.unwrap().is_none());
    t.db.commit(tx).await.unwrap();
    let mut tx = t.db.begin();
    assert!(tx.get(id).await.unwrap().is_none());
    assert!(matches!(
        tx.delete(id).await,
        Err(DbError::DocumentNotFound(_))
    ));
}

#[tokio::test]
async fn system_fields_limits_and_validation_are_enforced() {
    let t = fresh().await;
    let mut tx = t.db.begin();
    let err = tx
        .insert("posts", fields(obj! { "_id" => "x" }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "SystemFieldWrite");
    let big = "x".repeat(1 << 20);
    let err = tx
        .insert("posts", fields(obj! { "body" => big }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "DocumentTooLarge");
    let err = tx
        .insert("users", fields(obj! { "name" => 5i64 }))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DbError::Validation { path, .. } if path == ".name"),
        "{err}"
    );
    let id = tx
        .insert("users", fields(obj! { "name" => "ann" }))
        .await
        .unwrap();
    let err = tx
        .patch(id, fields(obj! { "age" => "old" }), &[])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DbError::Validation { path, .. } if path == ".age"),
        "{err}"
    );
    let err = tx
        .patch(id, fields(obj! { "_creationTime" => 1.0 }), &[])
        .await
        .unwrap_err();
    assert_eq!(err.code(), "SystemFieldWrite");
    let err = tx
        .query("posts")
        .with_index("nope", |r| r)
        .collect()
        .await
        .unwrap_err();
    assert_eq!(err.code(), "IndexNotFound");
    let err = tx
        .query("posts")
        .with_index("by_author_likes", |r| r.eq("likes", 1i64))
        .collect()
        .await
        .unwrap_err();
    assert_eq!(err.code(), "InvalidIndexRange");
}

#[tokio::test]
async fn creation_times_are_unique_and_increasing() {
    let t = fresh().await;
    let mut tx = t.db.begin();
    let mut ids = Vec::new();
    for i in 0..50i64 {
        ids.push(tx.insert("posts", fields(obj! { "n" => i })).await.unwrap());
    }
    t.db.commit(tx).await.unwrap();
    let mut tx = t.db.begin();
    let docs = tx.query("posts").collect().await.unwrap();
    assert_eq!(
        docs.iter().map(|d| d.id).collect::<Vec<_>>(),
        ids,
        "full scan is in creation order"
    );
    assert!(
        docs.windows(2)
            .all(|w| w[0].creation_time < w[1].creation_time)
    );
    let desc = tx.query("posts").order(Order::Desc).take(3).await.unwrap();
    assert_eq!(
        desc.iter().map(|d| d.id).collect::<Vec<_>>(),
        ids.iter().rev().take(3).copied().collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn index_ranges_first_unique_and_own_writes() {
    let t = fresh().await;
    let mut tx = t.db.begin();
    for (author, likes) in [
        ("ann", 1i64),
        ("ann", 5),
        ("ann", 9),
        ("bob", 3),
        ("cat", 7),
    ] {
        tx.insert(
            "posts",
            fields(obj! { "author" => author, "likes" => likes }),
        )
        .await
        .unwrap();
    }
    t.db.commit(tx).await.unwrap();
    let mut tx = t.db.begin();
    let likes = |docs: Vec<keel_db::Document>| {
        docs.iter()
            .map(|d| d.fields["likes"].clone())
            .collect::<Vec<_>>()
    };
    let got = tx
        .query("posts")
        .with_index("by_author_likes", |r| {
            r.eq("author", "ann").gt("likes", 1i64).lte("likes", 9i64)
        })
        .collect()
        .await
        .unwrap();
    assert_eq!(likes(got), vec![Value::Int64(5), Value::Int64(9)]);
    let got = tx
        .query("posts")
        .with_index("by_author_likes", |r| r.eq("author", "ann"))
        .order(Order::Desc)
        .first()
        .await
        .unwrap();
    assert_eq!(got.unwrap().fields["likes"], Value::Int64(9));
    let err = tx
        .query("posts")
        .with_index("by_author", |r| r.eq("author", "ann"))
        .unique()
        .await
        .unwrap_err();
    assert_eq!(err.code(), "UniqueMoreThanOne");
    let bob = tx
        .query("posts")
        .with_index("by_author", |r| r.eq("author", "bob"))
        .unique()
        .await
        .unwrap()
        .unwrap();
    assert!(
        tx.query("posts")
            .with_index("by_author", |r| r.eq("author", "zed"))
            .unique()
            .await
            .unwrap()
            .is_none()
    );
    // Own writes: a new "ann" post, bob moved to ann, one ann post deleted.
    tx.insert("posts", fields(obj! { "author" => "ann", "likes" => 6i64 }))
        .await
        .unwrap();
    tx.patch(bob.id, fields(obj! { "author" => "ann" }), &[])
        .await
        .unwrap();
    let first_ann = tx
        .query("posts")
        .with_index("by_author_likes", |r| r.eq("author", "ann"))
        .first()
        .await
        .unwrap()
        .unwrap();
    tx.delete(first_ann.id).await.unwrap();
    let got = tx
        .query("posts")
        .with_index("by_author_likes", |r| r.eq("author", "ann"))
        .collect()
        .await
        .unwrap();
    assert_eq!(likes(got), [3i64, 5, 6, 9].map(Value::Int64).to_vec());
    let by_id = tx
        .query("posts")
        .with_index("by_id", |r| r.eq("_id", bob.id.to_string()))
        .unique()
        .await
        .unwrap();
    assert_eq!(by_id.unwrap().id, bob.id);
}

#[tokio::test]
async fn pagination_walks_everything_and_rejects_foreign_cursors() {
    let t = fresh().await;
    let mut tx = t.db.begin();
    for i in 0..23i64 {
        tx.insert("posts", fields(obj! { "author" => "ann", "likes" => i }))
            .await
            .unwrap();
    }
    tx.insert("posts", fields(obj! { "author" => "bob", "likes" => 0i64 }))
        .await
        .unwrap();
    t.db.commit(tx).await.unwrap();
    for order in [Order::Asc, Order::Desc] {
        let mut tx = t.db.begin();
        let mut cursor = None;
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let page = tx
                .query("posts")
                .with_index("by_author_likes", |r| r.eq("author", "ann"))
                .order(order)
                .paginate(PaginationOptions {
                    num_items: 5,
                    cursor: cursor.clone(),
                    end_cursor: None,
                    ..Default::default()
                })
                .await
                .unwrap();
            pages += 1;
            seen.extend(page.page.iter().map(|d| d.fields["likes"].clone()));
            if page.is_done {
                break;
            }
            cursor = Some(page.continue_cursor);
        }
        let mut want: Vec<Value> = (0..23i64).map(Value::Int64).collect();
        if order == Order::Desc {
            want.reverse();
        }
        assert_eq!(seen, want);
        assert!(pages >= 5);
    }
    let mut tx = t.db.begin();
    let page = tx
        .query("posts")
        .with_index("by_author", |r| r.eq("author", "ann"))
        .paginate(PaginationOptions {
            num_items: 2,
            cursor: None,
            end_cursor: None,
            ..Default::default()
        })
        .await
        .unwrap();
    let err = tx
        .query("posts")
        .with_index("by_author", |r| r.eq("author", "bob"))
        .paginate(PaginationOptions {
            num_items: 2,
            cursor: Some(page.continue_cursor.clone()),
            end_cursor: None,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, DbError::InvalidCursor));
    assert!(
        err.to_string()
            .contains("this cursor is from a different query")
    );
    // Re-running a page up to its end cursor gives the same page.
    let again = tx
        .query("posts")
        .with_index("by_author", |r| r.eq("author", "ann"))
        .paginate(PaginationOptions {
            num_items: 100,
            cursor: None,
            end_cursor: Some(page.continue_cursor.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(again.page, page.page);
}

#[tokio::test]
async fn table_numbers_ids_and_timestamps_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (id, ts, extra_id) = {
        let db = open(&dir).await;
        let mut tx = db.begin();
        let id = tx
            .insert("users", fields(obj! { "name" => "ann" }))
            .await
            .unwrap();
        let extra_id = tx
            .insert("undeclared", fields(obj! { "x" => 1i64 }))
            .await
            .unwrap();
        (id, db.commit(tx).await.unwrap(), extra_id)
    };
    let db = open(&dir).await;
    assert_eq!(db.latest_ts(), ts);
    let mut tx = db.begin();
    assert_eq!(tx.table_name(&id).as_deref(), Some("users"));
    assert_eq!(tx.table_name(&extra_id).as_deref(), Some("undeclared"));
    assert_eq!(
        tx.get(id).await.unwrap().unwrap().fields["name"],
        Value::from("ann")
    );
    let found = tx
        .query("users")
        .with_index("by_name", |r| r.eq("name", "ann"))
        .unique()
        .await
        .unwrap();
    assert_eq!(found.unwrap().id, id);
    tx.insert("posts", fields(obj! { "author" => "x" }))
        .await
        .unwrap();
    assert!(
        db.commit(tx).await.unwrap() > ts,
        "timestamps keep increasing after a restart"
    );
}

#[tokio::test]
async fn snapshots_and_begin_at() {
    let t = fresh().await;
    // The snapshot of the empty database, before any commit …
    let empty = t.db.latest_ts();
    assert_eq!(empty, keel_db::Timestamp::MIN);
    t.db.begin_at(empty).unwrap();
    let mut tx = t.db.begin();
    let id = tx
        .insert("posts", fields(obj! { "v" => 1i64 }))
        .await
        .unwrap();
    let ts1 = t.db.commit(tx).await.unwrap();
    let mut tx = t.db.begin();
    tx.patch(id, fields(obj! { "v" => 2i64 }), &[])
        .await
        .unwrap();
    let ts2 = t.db.commit(tx).await.unwrap();
    let mut old = t.db.begin_at(ts1).unwrap();
    assert_eq!(
        old.get(id).await.unwrap().unwrap().fields["v"],
        Value::Int64(1)
    );
    let mut new = t.db.begin_at(ts2).unwrap();
    assert_eq!(
        new.get(id).await.unwrap().unwrap().fields["v"],
        Value::Int64(2)
    );
    assert_eq!(
        t.db.begin_at(keel_db::Timestamp(ts2.0 + 1))
            .err()
            .unwrap()
            .code(),
        "OutOfRetention"
    );
    assert_eq!(
        t.db.commit(old).await.unwrap(),
        ts1,
        "read-only commit returns the snapshot"
    );
    // … stays readable after commits (empty), unlike any other timestamp older than the window.
    let mut before = t.db.begin_at(empty).unwrap();
    assert!(before.get(id).await.unwrap().is_none());
    assert!(before.query("posts").collect().await.unwrap().is_empty());
    assert_eq!(
        t.db.begin_at(keel_db::Timestamp(1)).err().unwrap().code(),
        "OutOfRetention"
    );
}

#[tokio::test]
async fn new_and_changed_indexes_are_backfilled_on_open() {
    use std::sync::Arc;

    use keel_db::{Database, Schema, SqlitePersistence, TableSchema};
    let dir = tempfile::tempdir().unwrap();
    let open_with = |schema: Schema| {
        let path = dir.path().join("backfill.sqlite3");
        async move {
            Database::open(Arc::new(SqlitePersistence::open(path).unwrap()), schema)
                .await
                .unwrap()
        }
    };
    let db =
        open_with(Schema::new().table("notes", TableSchema::new().index("by_tag", &["tag"]))).await;
    let mut tx = db.begin();
    for (tag, rank) in [("a", 3i64), ("b", 1), ("a", 2)] {
        tx.insert("notes", fields(obj! { "tag" => tag, "rank" => rank }))
            .await
            .unwrap();
    }
    let before = db.commit(tx).await.unwrap();
    drop(db);
    // Reopen: a new index, and by_tag redefined over other fields.
    let schema = Schema::new().table(
        "notes",
        TableSchema::new()
            .index("by_rank", &["rank"])
            .index("by_tag", &["tag", "rank"]),
    );
    let db = open_with(schema).await;
    assert!(
        db.latest_ts() > before,
        "the backfill is a commit of its own"
    );
    let mut tx = db.begin();
    let ranks = tx
        .query("notes")
        .with_index("by_rank", |r| r.gte("rank", 2i64))
        .collect()
        .await
        .unwrap();
    assert_eq!(
        ranks
            .iter()
            .map(|d| d.fields["rank"].clone())
            .collect::<Vec<_>>(),
        vec![Value::Int64(2), Value::Int64(3)]
    );
    let a = tx
        .query("notes")
        .with_index("by_tag", |r| r.eq("tag", "a").lt("rank", 3i64))
        .collect()
        .await
        .unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].fields["rank"], Value::Int64(2));
    // Writes after the backfill keep the new indexes up to date.
    tx.insert("notes", fields(obj! { "tag" => "a", "rank" => 0i64 }))
        .await
        .unwrap();
    db.commit(tx).await.unwrap();
    let mut tx = db.begin();
    let first = tx
        .query("notes")
        .with_index("by_rank", |r| r)
        .first()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.fields["rank"], Value::Int64(0));
}

#[tokio::test]
async fn read_and_write_limits_stop_runaway_transactions() {
    let t = fresh().await;
    // 32,001 small documents: a scan of them all is refused, a bounded one is not.
    for batch in 0..3 {
        let mut tx = t.db.begin();
        for i in 0..10_667 {
            tx.insert(
                "counters",
                fields(obj! { "name" => format!("{batch}-{i}") }),
            )
            .await
            .unwrap();
        }
        t.db.commit(tx).await.unwrap();
    }
    let mut tx = t.db.begin();
    assert_eq!(tx.query("counters").take(100).await.unwrap().len(), 100);
    let err = tx.query("counters").collect().await.unwrap_err();
    assert_eq!(err.code(), "TooManyReads", "{err}");
    assert!(err.to_string().contains("32000 documents"), "{err}");

    // 4,097 separate point reads are refused (the 4,096-range limit).
    let mut tx = t.db.begin();
    let some = tx.query("counters").first().await.unwrap().unwrap().id;
    let table = some.table;
    let mut err = None;
    for n in 0..4_200u32 {
        let mut internal = [0u8; 16];
        internal[..4].copy_from_slice(&n.to_be_bytes());
        internal[4] = 1;
        let id = keel_values::DocumentId::new(table, internal);
        if let Err(e) = tx.get(id).await {
            err = Some(e);
            break;
        }
    }
    let err = err.expect("the range limit applies");
    assert_eq!(err.code(), "TooManyReads");
    assert!(err.to_string().contains("4096"), "{err}");

    // Documents of about 1 MB: 17 in one transaction are more than 16 MiB to write; written in
    // two transactions, reading them all back is more than 16 MiB to read.
    let body = "x".repeat(1_000_000);
    let mut tx = t.db.begin();
    for _ in 0..17 {
        tx.insert("posts", fields(obj! { "body" => body.clone() }))
            .await
            .unwrap();
    }
    let err = t.db.commit(tx).await.unwrap_err();
    assert_eq!(err.code(), "TooManyWrites", "{err}");
    for _ in 0..2 {
        let mut tx = t.db.begin();
        for _ in 0..9 {
            tx.insert("posts", fields(obj! { "body" => body.clone() }))
                .await
                .unwrap();
        }
        t.db.commit(tx).await.unwrap();
    }
    let mut tx = t.db.begin();
    assert_eq!(tx.query("posts").take(16).await.unwrap().len(), 16);
    let mut tx = t.db.begin();
    let err = tx.query("posts").collect().await.unwrap_err();
    assert_eq!(err.code(), "TooManyReads");
    assert!(err.to_string().contains("16 MiB"), "{err}");
}

#[tokio::test]
async fn receipts_record_outcomes_once_and_stay_hidden_from_users() {
    let t = fresh().await;
    let mut tx = t.db.begin();
    assert_eq!(tx.receipt("s:1").await.unwrap(), None);
    tx.insert("counters", fields(obj! { "name" => "a" }))
        .await
        .unwrap();
    tx.record_receipt("s:1", &Value::Int64(7)).await.unwrap();
    // Own writes are visible: a second lookup in the same transaction finds it.
    assert!(tx.receipt("s:1").await.unwrap().is_some());
    t.db.commit(tx).await.unwrap();

    let mut tx = t.db.begin();
    let receipt = tx.receipt("s:1").await.unwrap().unwrap();
    assert_eq!(receipt.result, Some(Value::Int64(7)));
    assert_eq!(tx.receipt("s:2").await.unwrap(), None);

    // Two transactions racing to record one key: the second conflicts.
    let mut first = t.db.begin();
    let mut second = t.db.begin();
    for tx in [&mut first, &mut second] {
        assert_eq!(tx.receipt("s:3").await.unwrap(), None);
        tx.record_receipt("s:3", &Value::Null).await.unwrap();
    }
    t.db.commit(first).await.unwrap();
    assert!(t.db.commit(second).await.unwrap_err().is_occ());

    // A result too large to keep leaves a receipt without it.
    let mut tx = t.db.begin();
    tx.record_receipt("s:4", &Value::String("x".repeat(600_000)))
        .await
        .unwrap();
    t.db.commit(tx).await.unwrap();
    let mut tx = t.db.begin();
    assert_eq!(tx.receipt("s:4").await.unwrap().unwrap().result, None);

    // Functions never see the system table.
    let mut tx = t.db.begin();
    let err = tx.query("_receipts").collect().await.unwrap_err();
    assert_eq!(err.code(), "TableNotFound", "{err}");
    let err = tx
        .insert("_receipts", fields(obj! { "key" => "forged" }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "TableNotFound", "{err}");

    // Collection deletes old receipts (here: all of them).
    assert_eq!(t.db.collect_receipts(Duration::ZERO).await.unwrap(), 3);
    let mut tx = t.db.begin();
    assert_eq!(tx.receipt("s:1").await.unwrap(), None);
    assert_eq!(
        t.db.collect_receipts(keel_db::RECEIPT_RETENTION)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn pruned_history_leaves_current_reads_unchanged() {
    let t = fresh().await;
    let mut tx = t.db.begin();
    let kept = tx
        .insert("posts", fields(obj! { "author" => "ann", "likes" => 0i64 }))
        .await
        .unwrap();
    let gone = tx
        .insert("posts", fields(obj! { "author" => "bob", "likes" => 0i64 }))
        .await
        .unwrap();
    t.db.commit(tx).await.unwrap();
    for likes in 1..=40i64 {
        let mut tx = t.db.begin();
        tx.patch(kept, fields(obj! { "likes" => likes }), &[])
            .await
            .unwrap();
        t.db.commit(tx).await.unwrap();
    }
    let mut tx = t.db.begin();
    tx.delete(gone).await.unwrap();
    t.db.commit(tx).await.unwrap();

    let read = async || {
        let mut tx = t.db.begin();
        let all = tx.query("posts").collect().await.unwrap();
        let by_author = tx
            .query("posts")
            .with_index("by_author_likes", |r| {
                r.eq("author", "ann").gte("likes", 10i64)
            })
            .collect()
            .await
            .unwrap();
        (all, by_author, tx.get(gone).await.unwrap())
    };
    let before = read().await;
    assert_eq!(before.0.len(), 1);
    // Everything up to now: 40 superseded revisions of `kept`, the deleted one's revision and
    // tombstone, and their superseded index entries.
    let deleted = t.db.prune_history(Duration::ZERO).await.unwrap();
    assert!(deleted >= 40 + 2 + 40, "{deleted}");
    assert_eq!(read().await, before);
    assert_eq!(t.db.prune_history(Duration::ZERO).await.unwrap(), 0);
    // Writing on top of pruned history works as before.
    let mut tx = t.db.begin();
    tx.patch(kept, fields(obj! { "likes" => 41i64 }), &[])
        .await
        .unwrap();
    t.db.commit(tx).await.unwrap();
    let mut tx = t.db.begin();
    let doc = tx.get(kept).await.unwrap().unwrap();
    assert_eq!(doc.fields.get("likes"), Some(&Value::Int64(41)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_writes_the_commits_it_holds_and_refuses_later_ones() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    // Commits racing the shutdown: each is either acknowledged (and then durable) or refused.
    let commits: Vec<_> = (0..200i64)
        .map(|n| {
            let db = db.clone();
            tokio::spawn(async move {
                let mut tx = db.begin();
                tx.insert("posts", fields(obj! { "n" => n })).await.unwrap();
                db.commit(tx).await.map(|_| n)
            })
        })
        .collect();
    tokio::time::timeout(Duration::from_secs(30), db.shutdown())
        .await
        .expect("the shutdown finishes");
    let mut acknowledged = Vec::new();
    for commit in commits {
        match commit.await.unwrap() {
            Ok(n) => acknowledged.push(n),
            Err(DbError::Storage(message)) => {
                assert!(message.contains("shutting down"), "{message}");
            }
            Err(other) => panic!("unexpected error {other}"),
        }
    }
    let mut tx = db.begin();
    let error = tx.insert("posts", fields(obj! { "n" => -1i64 })).await;
    assert!(error.is_ok());
    let refused = db.commit(tx).await.unwrap_err().to_string();
    assert!(refused.contains("shutting down"), "{refused}");
    drop(db);

    let db = open(&dir).await;
    let mut stored: Vec<i64> = db
        .begin()
        .query("posts")
        .collect()
        .await
        .unwrap()
        .iter()
        .map(|doc| match doc.fields["n"] {
            Value::Int64(n) => n,
            ref other => panic!("{other:?}"),
        })
        .collect();
    stored.sort_unstable();
    acknowledged.sort_unstable();
    assert_eq!(
        stored, acknowledged,
        "exactly the acknowledged commits are stored"
    );
}

/// Eight increments of one counter from one snapshot, handed to the committer together: one
/// commits, and each loser hears of its conflict only once the winner is published, so that its
/// re-run reads the winner's write (a loser told earlier would re-run at the old snapshot and
/// conflict a second time). Every re-run, done one after another, commits at its first try.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_loser_reruns_on_the_winners_write() {
    let t = fresh().await;
    let mut tx = t.db.begin();
    let id = tx
        .insert("counters", fields(obj! { "name" => "c", "n" => 0i64 }))
        .await
        .unwrap();
    t.db.commit(tx).await.unwrap();
    let increment = |mut tx: keel_db::Transaction| async move {
        let n = match tx.get(id).await.unwrap().unwrap().fields.get("n") {
            Some(Value::Int64(n)) => *n,
            other => panic!("counter holds {other:?}"),
        };
        tx.patch(id, fields(obj! { "n" => n + 1 }), &[])
            .await
            .unwrap();
        tx
    };
    let mut expected = 0;
    for _ in 0..10 {
        let mut txs = Vec::new();
        for _ in 0..8 {
            txs.push(increment(t.db.begin()).await);
        }
        let outcomes = futures::future::join_all(txs.into_iter().map(|tx| async {
            let outcome = t.db.commit(tx).await;
            // What a re-run begun right now would read.
            (outcome, t.db.latest_ts())
        }))
        .await;
        let winners: Vec<_> = outcomes
            .iter()
            .filter_map(|(outcome, _)| outcome.as_ref().ok().copied())
            .collect();
        assert_eq!(winners.len(), 1, "one snapshot, one counter: one commit");
        expected += 1;
        for (outcome, latest) in &outcomes {
            let Err(error) = outcome else { continue };
            assert!(error.is_occ(), "{error}");
            assert!(
                *latest >= winners[0],
                "the loser was told before the winner ({}) was published (latest {latest})",
                winners[0]
            );
            let rerun = increment(t.db.begin()).await;
            t.db.commit(rerun).await.unwrap();
            expected += 1;
        }
    }
    let mut tx = t.db.begin();
    assert_eq!(
        tx.get(id).await.unwrap().unwrap().fields["n"],
        Value::Int64(expected)
    );
}

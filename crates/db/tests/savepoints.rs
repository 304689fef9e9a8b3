//! Savepoints: the writes made since one are undone (or kept) as a whole, nested savepoints
//! included, while reads stay in the read set; on real SQLite files.

mod support;

use keel_db::{Order, Transaction};
use keel_values::{Value, obj};
use support::{fields, fresh};

/// The titles of the posts by `author`, as the transaction sees them (its own writes included).
async fn titles(tx: &mut Transaction, author: &str) -> Vec<String> {
    let author = author.to_owned();
    tx.query("posts")
        .with_index("by_author", move |r| r.eq("author", author.as_str()))
        .order(Order::Asc)
        .collect()
        .await
        .unwrap()
        .into_iter()
        .map(|d| match &d.fields["title"] {
            Value::String(title) => title.clone(),
            other => panic!("a title is a string, not {other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn a_rollback_undoes_only_the_writes_made_since_its_savepoint() {
    let t = fresh().await;
    let mut tx = t.db.begin();
    let committed = tx
        .insert(
            "posts",
            fields(obj! { "author" => "ann", "title" => "old" }),
        )
        .await
        .unwrap();
    t.db.commit(tx).await.unwrap();

    let mut tx = t.db.begin();
    let before = tx
        .insert(
            "posts",
            fields(obj! { "author" => "ann", "title" => "before" }),
        )
        .await
        .unwrap();
    let savepoint = tx.savepoint();
    let inside = tx
        .insert(
            "posts",
            fields(obj! { "author" => "ann", "title" => "inside" }),
        )
        .await
        .unwrap();
    tx.patch(before, fields(obj! { "title" => "patched" }), &[])
        .await
        .unwrap();
    tx.delete(committed).await.unwrap();
    let reads_inside = tx.read_set().interval_count();
    assert_eq!(titles(&mut tx, "ann").await, ["patched", "inside"]);
    tx.rollback_to(savepoint);

    assert!(
        tx.get(inside).await.unwrap().is_none(),
        "the insert is undone"
    );
    assert_eq!(
        titles(&mut tx, "ann").await,
        ["old", "before"],
        "the patch and the delete are undone, the write before the savepoint stays"
    );
    assert!(
        tx.read_set().interval_count() >= reads_inside,
        "what was read inside the savepoint stays in the read set"
    );
    t.db.commit(tx).await.unwrap();

    let mut tx = t.db.begin();
    assert_eq!(titles(&mut tx, "ann").await, ["old", "before"]);
}

#[tokio::test]
async fn nested_savepoints_release_into_their_parent_and_roll_back_with_it() {
    let t = fresh().await;
    let mut tx = t.db.begin();
    let outer = tx.savepoint();
    tx.insert("posts", fields(obj! { "author" => "bob", "title" => "a" }))
        .await
        .unwrap();
    let inner = tx.savepoint();
    let b = tx
        .insert("posts", fields(obj! { "author" => "bob", "title" => "b" }))
        .await
        .unwrap();
    tx.release(inner);
    assert_eq!(titles(&mut tx, "bob").await, ["a", "b"], "a release keeps");

    let failed = tx.savepoint();
    tx.patch(b, fields(obj! { "title" => "b2" }), &[])
        .await
        .unwrap();
    tx.rollback_to(failed);
    assert_eq!(titles(&mut tx, "bob").await, ["a", "b"]);

    tx.rollback_to(outer);
    assert!(
        titles(&mut tx, "bob").await.is_empty(),
        "rolling the outer savepoint back undoes what the released inner one kept"
    );
    assert!(!tx.has_writes());

    // Ending a savepoint ends those opened after it; ending one already ended does nothing.
    let first = tx.savepoint();
    tx.insert(
        "posts",
        fields(obj! { "author" => "cy", "title" => "kept" }),
    )
    .await
    .unwrap();
    let second = tx.savepoint();
    tx.insert(
        "posts",
        fields(obj! { "author" => "cy", "title" => "also kept" }),
    )
    .await
    .unwrap();
    tx.release(first);
    tx.rollback_to(second);
    assert_eq!(titles(&mut tx, "cy").await, ["kept", "also kept"]);
    t.db.commit(tx).await.unwrap();
    let mut tx = t.db.begin();
    assert_eq!(titles(&mut tx, "cy").await, ["kept", "also kept"]);
}

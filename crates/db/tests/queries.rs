//! Index queries merged with a transaction's own writes, against a brute-force model.

mod support;

use std::collections::BTreeMap;

use keel_db::{Document, Order, PaginationOptions};
use keel_values::{DocumentId, Value, obj};
use proptest::prelude::*;
use support::{fields, fresh};

/// An operation inside the querying transaction.
#[derive(Clone, Debug)]
enum Op {
    Insert(u8, i64),
    Patch(usize, u8, i64),
    Delete(usize),
}

fn author(n: u8) -> String {
    format!("a{n}")
}

/// The model's sort key of a document in `by_author_likes`.
fn model_key(doc: &Document) -> (Vec<u8>, i64, u64, Vec<u8>) {
    let Value::String(a) = &doc.fields["author"] else {
        panic!()
    };
    let Value::Int64(l) = doc.fields["likes"] else {
        panic!()
    };
    (
        a.as_bytes().to_vec(),
        l,
        doc.creation_time.to_bits(),
        doc.id.to_bytes(),
    )
}

#[allow(clippy::too_many_arguments)]
async fn case(
    initial: Vec<(u8, i64)>,
    ops: Vec<Op>,
    a: u8,
    lo: Option<i64>,
    hi: Option<i64>,
    desc: bool,
    take: usize,
    page: usize,
) {
    let t = fresh().await;
    let mut tx = t.db.begin();
    for (n, likes) in &initial {
        tx.insert(
            "posts",
            fields(obj! { "author" => author(*n), "likes" => *likes }),
        )
        .await
        .unwrap();
    }
    t.db.commit(tx).await.unwrap();
    let mut tx = t.db.begin();
    let mut model: BTreeMap<DocumentId, Document> = BTreeMap::new();
    for doc in tx.query("posts").collect().await.unwrap() {
        model.insert(doc.id, doc);
    }
    for op in ops {
        let ids: Vec<DocumentId> = model.keys().copied().collect();
        match op {
            Op::Insert(n, likes) => {
                let id = tx
                    .insert(
                        "posts",
                        fields(obj! { "author" => author(n), "likes" => likes }),
                    )
                    .await
                    .unwrap();
                model.insert(id, tx.get(id).await.unwrap().unwrap());
            }
            Op::Patch(i, n, likes) if !ids.is_empty() => {
                let id = ids[i % ids.len()];
                tx.patch(
                    id,
                    fields(obj! { "author" => author(n), "likes" => likes }),
                    &[],
                )
                .await
                .unwrap();
                model.insert(id, tx.get(id).await.unwrap().unwrap());
            }
            Op::Delete(i) if !ids.is_empty() => {
                let id = ids[i % ids.len()];
                tx.delete(id).await.unwrap();
                model.remove(&id);
            }
            Op::Patch(..) | Op::Delete(_) => {}
        }
    }
    let mut expected: Vec<&Document> = model
        .values()
        .filter(|d| d.fields["author"] == Value::String(author(a)))
        .filter(|d| {
            let Value::Int64(l) = d.fields["likes"] else {
                panic!()
            };
            lo.is_none_or(|lo| l >= lo) && hi.is_none_or(|hi| l < hi)
        })
        .collect();
    expected.sort_by_key(|d| model_key(d));
    if desc {
        expected.reverse();
    }
    let order = if desc { Order::Desc } else { Order::Asc };
    let range = |r: keel_db::IndexRange| {
        let mut r = r.eq("author", author(a));
        if let Some(lo) = lo {
            r = r.gte("likes", lo);
        }
        if let Some(hi) = hi {
            r = r.lt("likes", hi);
        }
        r
    };
    let got = tx
        .query("posts")
        .with_index("by_author_likes", range)
        .order(order)
        .take(take)
        .await
        .unwrap();
    let want: Vec<DocumentId> = expected.iter().take(take).map(|d| d.id).collect();
    assert_eq!(
        got.iter().map(|d| d.id).collect::<Vec<_>>(),
        want,
        "take({take})"
    );
    // Paginating the same query visits exactly the expected documents, in order.
    let mut cursor = None;
    let mut walked = Vec::new();
    for _ in 0..100 {
        let result = tx
            .query("posts")
            .with_index("by_author_likes", range)
            .order(order)
            .paginate(PaginationOptions {
                num_items: page,
                cursor: cursor.clone(),
                end_cursor: None,
                ..Default::default()
            })
            .await
            .unwrap();
        walked.extend(result.page.iter().map(|d| d.id));
        if result.is_done {
            break;
        }
        cursor = Some(result.continue_cursor);
    }
    assert_eq!(
        walked,
        expected.iter().map(|d| d.id).collect::<Vec<_>>(),
        "pages of {page}"
    );
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..3, 0i64..6).prop_map(|(n, l)| Op::Insert(n, l)),
        (0usize..30, 0u8..3, 0i64..6).prop_map(|(i, n, l)| Op::Patch(i, n, l)),
        (0usize..30).prop_map(Op::Delete),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..Default::default() })]
    #[test]
    fn queries_with_own_writes_match_the_model(
        initial in proptest::collection::vec((0u8..3, 0i64..6), 0..14),
        ops in proptest::collection::vec(op(), 0..8),
        a in 0u8..3,
        lo in proptest::option::of(0i64..6),
        hi in proptest::option::of(0i64..7),
        desc in any::<bool>(),
        take in 1usize..8,
        page in 1usize..4,
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(case(initial, ops, a, lo, hi, desc, take, page));
    }
}

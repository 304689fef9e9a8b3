//! Pagination as Convex does it: cursors, pages pinned to their end cursor while other
//! transactions insert and delete (a live list neither duplicates nor skips), split cursors,
//! read limits and the errors of bad options.

mod support;

use std::collections::HashSet;

use keel_db::{
    Database, DbError, Document, Order, PageStatus, PaginationOptions, PaginationResult,
    Subscription,
};
use keel_values::{DocumentId, Value, obj};
use support::{fields, fresh};

/// Inserts a post by `author` with `likes`.
async fn insert(db: &Database, author: &str, likes: i64) -> DocumentId {
    let mut tx = db.begin();
    let id = tx
        .insert(
            "posts",
            fields(obj! { "author" => author, "likes" => likes, "text" => "x".repeat(100) }),
        )
        .await
        .unwrap();
    db.commit(tx).await.unwrap();
    id
}

/// One page of ann's posts by likes, highest first (the order of a "top posts" list), with the
/// subscription of the transaction that read it.
async fn page(
    db: &Database,
    options: PaginationOptions,
) -> (PaginationResult<Document>, Subscription) {
    let mut tx = db.begin();
    let result = tx
        .query("posts")
        .with_index("by_author_likes", |r| r.eq("author", "ann"))
        .order(Order::Desc)
        .paginate(options)
        .await
        .unwrap();
    let subscription = db.subscribe(tx.read_set().clone(), tx.snapshot_ts());
    (result, subscription)
}

/// Every one of ann's posts, in the list's order.
async fn all(db: &Database) -> Vec<DocumentId> {
    let mut tx = db.begin();
    let docs = tx
        .query("posts")
        .with_index("by_author_likes", |r| r.eq("author", "ann"))
        .order(Order::Desc)
        .collect()
        .await
        .unwrap();
    docs.iter().map(|d| d.id).collect()
}

fn ids(page: &[Document]) -> Vec<DocumentId> {
    page.iter().map(|d| d.id).collect()
}

/// A deterministic pseudo-random sequence (no dependency, same run every time).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// A page of a live list as a subscribing client holds it: where it starts, where its first run
/// ended (the journal's end cursor), what it shows and its subscription.
struct LivePage {
    cursor: Option<String>,
    end: String,
    shown: Vec<DocumentId>,
    subscription: Subscription,
}

#[tokio::test]
async fn a_live_list_neither_duplicates_nor_skips_under_inserts_and_deletes() {
    let t = fresh().await;
    let mut rng = Lcg(7);
    for _ in 0..20 {
        insert(&t.db, "ann", rng.below(1000) as i64).await;
    }
    insert(&t.db, "bob", 5).await;
    // Three pages of five, each continuing where the last ended.
    let mut pages: Vec<LivePage> = Vec::new();
    for _ in 0..3 {
        let cursor = pages.last().map(|p| p.end.clone());
        let (result, subscription) = page(
            &t.db,
            PaginationOptions {
                num_items: 5,
                cursor: cursor.clone(),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(result.page.len(), 5);
        assert!(!result.is_done);
        pages.push(LivePage {
            cursor,
            end: result.continue_cursor,
            shown: ids(&result.page),
            subscription,
        });
    }
    let mut inserted = 0;
    let mut deleted = 0;
    for step in 0..60 {
        // Another transaction inserts a post anywhere in the order (before, inside or after the
        // loaded pages) or deletes one.
        let existing = all(&t.db).await;
        if rng.below(3) == 0 && existing.len() > 5 {
            let victim = existing[rng.below(existing.len() as u64) as usize];
            let mut tx = t.db.begin();
            tx.delete(victim).await.unwrap();
            t.db.commit(tx).await.unwrap();
            deleted += 1;
        } else {
            insert(&t.db, "ann", rng.below(1000) as i64).await;
            inserted += 1;
        }
        // A commit elsewhere in the table (another author) leaves every page valid.
        if step % 10 == 0 {
            insert(&t.db, "bob", step).await;
        }
        // The pages whose subscription fired re-run up to their pinned end; the others must
        // still be exact.
        for p in &mut pages {
            let (result, subscription) = page(
                &t.db,
                PaginationOptions {
                    num_items: 5,
                    cursor: p.cursor.clone(),
                    end_cursor: Some(p.end.clone()),
                    ..Default::default()
                },
            )
            .await;
            assert_eq!(result.continue_cursor, p.end, "the end stays pinned");
            if p.subscription.invalidated_at().is_none() {
                assert_eq!(
                    ids(&result.page),
                    p.shown,
                    "a page whose subscription did not fire is unchanged"
                );
            }
            p.shown = ids(&result.page);
            p.subscription = subscription;
        }
        // Together the pages show exactly the list up to the last page's end: no document twice,
        // none missing between two pages.
        let shown: Vec<DocumentId> = pages.iter().flat_map(|p| p.shown.clone()).collect();
        let unique: HashSet<&DocumentId> = shown.iter().collect();
        assert_eq!(unique.len(), shown.len(), "no duplicates at step {step}");
        let (whole, _) = page(
            &t.db,
            PaginationOptions {
                num_items: 1,
                end_cursor: Some(pages[2].end.clone()),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(shown, ids(&whole.page), "no gaps at step {step}");
        let everything = all(&t.db).await;
        assert_eq!(shown[..], everything[..shown.len()], "a prefix of the list");
    }
    assert!(
        inserted > 20 && deleted > 10,
        "{inserted} inserts, {deleted} deletes"
    );
}

#[tokio::test]
async fn the_last_page_grows_with_what_is_inserted_after_it() {
    let t = fresh().await;
    for likes in [10, 20, 30] {
        insert(&t.db, "ann", likes).await;
    }
    let (first, subscription) = page(&t.db, PaginationOptions::first(5)).await;
    assert!(first.is_done);
    assert_eq!(first.page.len(), 3);
    // The end cursor of a finished list is its end: paging on from it gives nothing more.
    let (after_end, _) = page(
        &t.db,
        PaginationOptions::after(first.continue_cursor.clone(), 5),
    )
    .await;
    assert!(after_end.is_done && after_end.page.is_empty());
    // A post ranked after all the others lands on the last page, which re-runs to the end.
    insert(&t.db, "ann", 1).await;
    assert!(subscription.invalidated_at().is_some());
    let (again, _) = page(
        &t.db,
        PaginationOptions {
            num_items: 5,
            end_cursor: Some(first.continue_cursor.clone()),
            ..Default::default()
        },
    )
    .await;
    assert!(again.is_done);
    assert_eq!(again.page.len(), 4);
}

#[tokio::test]
async fn a_grown_page_splits_into_two_that_cover_it() {
    let t = fresh().await;
    for likes in 0..4 {
        insert(&t.db, "ann", likes * 100).await;
    }
    let (first, _) = page(&t.db, PaginationOptions::first(3)).await;
    assert!(first.split_cursor.is_some(), "a page of three has a middle");
    for likes in 0..10 {
        insert(&t.db, "ann", 150 + likes).await;
    }
    let end = first.continue_cursor.clone();
    let (grown, _) = page(
        &t.db,
        PaginationOptions {
            num_items: 3,
            end_cursor: Some(end.clone()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(grown.page.len(), 13);
    let split = grown.split_cursor.clone().expect("a split cursor");
    let (left, _) = page(
        &t.db,
        PaginationOptions {
            num_items: 3,
            end_cursor: Some(split.clone()),
            ..Default::default()
        },
    )
    .await;
    let (right, _) = page(
        &t.db,
        PaginationOptions {
            num_items: 3,
            cursor: Some(split),
            end_cursor: Some(end.clone()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        left.page.len(),
        7,
        "the split cursor is after the middle document"
    );
    assert_eq!(right.continue_cursor, end);
    let joined: Vec<DocumentId> = ids(&left.page)
        .into_iter()
        .chain(ids(&right.page))
        .collect();
    assert_eq!(joined, ids(&grown.page));
}

#[tokio::test]
async fn read_limits_end_a_page_early_unless_it_has_an_end_cursor() {
    let t = fresh().await;
    for likes in 0..10 {
        insert(&t.db, "ann", likes).await;
    }
    // maximumRowsRead stops the page early: SplitRequired, and the next page goes on from there.
    let (limited, _) = page(
        &t.db,
        PaginationOptions {
            num_items: 8,
            maximum_rows_read: Some(3),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(limited.page.len(), 3);
    assert_eq!(limited.page_status, Some(PageStatus::SplitRequired));
    assert!(!limited.is_done);
    let (rest, _) = page(
        &t.db,
        PaginationOptions::after(limited.continue_cursor.clone(), 100),
    )
    .await;
    assert_eq!(rest.page.len(), 7);
    assert!(rest.is_done);
    assert_eq!(rest.page_status, None);
    // A limit reached exactly at the end of the list is no reason to split.
    let (exact, _) = page(
        &t.db,
        PaginationOptions {
            num_items: 20,
            maximum_rows_read: Some(10),
            ..Default::default()
        },
    )
    .await;
    assert_eq!((exact.page.len(), exact.is_done), (10, true));
    assert_eq!(
        exact.page_status,
        Some(PageStatus::SplitRecommended),
        "10 rows > 3/4 of 10"
    );
    // More than three quarters of the row limit read: SplitRecommended.
    let (near, _) = page(
        &t.db,
        PaginationOptions {
            num_items: 4,
            maximum_rows_read: Some(5),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(near.page_status, Some(PageStatus::SplitRecommended));
    let (far, _) = page(
        &t.db,
        PaginationOptions {
            num_items: 3,
            maximum_rows_read: Some(5),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(far.page_status, None);
    // maximumBytesRead: each post is over 100 bytes; the page still holds at least one.
    let (bytes, _) = page(
        &t.db,
        PaginationOptions {
            num_items: 8,
            maximum_bytes_read: Some(1),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(bytes.page.len(), 1);
    assert_eq!(bytes.page_status, Some(PageStatus::SplitRequired));
    // With an end cursor the whole range is read, limits or not: a page short of its end would
    // leave a gap.
    let (pinned, _) = page(
        &t.db,
        PaginationOptions {
            num_items: 1,
            end_cursor: Some(rest.continue_cursor.clone()),
            maximum_rows_read: Some(2),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(pinned.page.len(), 10);
    assert_ne!(pinned.page_status, Some(PageStatus::SplitRequired));
}

#[tokio::test]
async fn bad_options_and_cursors_are_refused_with_their_codes() {
    let t = fresh().await;
    insert(&t.db, "ann", 1).await;
    let run = |options: PaginationOptions| {
        let db = t.db.clone();
        async move {
            let mut tx = db.begin();
            tx.query("posts")
                .with_index("by_author_likes", |r| r.eq("author", "ann"))
                .paginate(options)
                .await
        }
    };
    let code = |r: Result<PaginationResult<Document>, DbError>| r.unwrap_err().code();
    assert_eq!(
        code(run(PaginationOptions::first(0)).await),
        "NoDocumentsForPagination"
    );
    for options in [
        PaginationOptions {
            num_items: 5,
            maximum_rows_read: Some(0),
            ..Default::default()
        },
        PaginationOptions {
            num_items: 5,
            maximum_bytes_read: Some(0),
            ..Default::default()
        },
    ] {
        assert_eq!(code(run(options).await), "InvalidPaginationLimit");
    }
    let valid = run(PaginationOptions::first(1))
        .await
        .unwrap()
        .continue_cursor;
    let mut truncated = valid.clone();
    truncated.truncate(20);
    for cursor in [
        "",
        "zz",
        "0",
        "ffffffff",
        truncated.as_str(),
        "ü",
        &"ab".repeat(5000),
    ] {
        assert_eq!(
            code(run(PaginationOptions::after(cursor, 5)).await),
            "InvalidCursor",
            "{cursor:?}"
        );
        let end = PaginationOptions {
            num_items: 5,
            end_cursor: Some(cursor.to_owned()),
            ..Default::default()
        };
        assert_eq!(code(run(end).await), "InvalidCursor");
    }
    // A cursor of another query (same table, other order) is refused too.
    let mut tx = t.db.begin();
    let other = tx
        .query("posts")
        .with_index("by_author_likes", |r| r.eq("author", "ann"))
        .order(Order::Desc)
        .paginate(PaginationOptions::after(valid, 5))
        .await;
    assert_eq!(code(other), "InvalidCursor");
    // The page values encode as Convex's PaginationResult.
    let result = run(PaginationOptions::first(5)).await.unwrap();
    let value = keel_values::to_value(&result).unwrap();
    let object = value.as_object().unwrap();
    let keys: Vec<&str> = object.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "continueCursor",
            "isDone",
            "page",
            "pageStatus",
            "splitCursor"
        ]
    );
    assert_eq!(object["isDone"], Value::Boolean(true));
    let Value::Array(page) = &object["page"] else {
        panic!("a page is an array: {value:?}")
    };
    assert_eq!(page[0].as_object().unwrap()["likes"], Value::Int64(1));
}

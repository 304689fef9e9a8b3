//! The official Rust client (`convex` crate) subscribed to two consecutive pages of `posts:page`
//! while posts are inserted and deleted: each page keeps its end (the server re-runs it with its
//! journal), so the two pages together show every post once — none repeated, none skipped.

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use convex::{ConvexClient, FunctionResult, QuerySubscription, Value};
use futures::StreamExt;
use support::{Deployment, Mode};

/// A page as the client sees it: the titles and the continue cursor.
fn page_of(result: FunctionResult) -> (Vec<String>, String) {
    let FunctionResult::Value(Value::Object(page)) = result else {
        panic!("a PaginationResult: {result:?}")
    };
    let Value::Array(posts) = &page["page"] else {
        panic!("a page array: {page:?}")
    };
    let titles = posts
        .iter()
        .map(|post| match post {
            Value::Object(fields) => match &fields["title"] {
                Value::String(title) => title.clone(),
                other => panic!("a title: {other:?}"),
            },
            other => panic!("a post: {other:?}"),
        })
        .collect();
    let Value::String(cursor) = &page["continueCursor"] else {
        panic!("a continueCursor: {page:?}")
    };
    (titles, cursor.clone())
}

/// The subscription's next page, within 10 s.
async fn next_page(subscription: &mut QuerySubscription) -> (Vec<String>, String) {
    let result = tokio::time::timeout(Duration::from_secs(10), subscription.next())
        .await
        .expect("an update within 10 s")
        .expect("the subscription is open");
    page_of(result)
}

fn page_args(num_items: f64, cursor: Option<String>) -> BTreeMap<String, Value> {
    let opts = BTreeMap::from([
        ("numItems".to_owned(), Value::Float64(num_items)),
        (
            "cursor".to_owned(),
            cursor.map_or(Value::Null, Value::String),
        ),
    ]);
    BTreeMap::from([("paginationOpts".to_owned(), Value::Object(opts))])
}

async fn create(client: &mut ConvexClient, title: &str) -> String {
    let args = BTreeMap::from([
        ("title".to_owned(), Value::String(title.to_owned())),
        ("body".to_owned(), Value::String(String::new())),
    ]);
    match client.mutation("posts:create", args).await.unwrap() {
        FunctionResult::Value(Value::String(id)) => id,
        other => panic!("an id: {other:?}"),
    }
}

#[tokio::test]
async fn two_subscribed_pages_stay_whole_under_inserts_and_deletes() {
    let keel = Deployment::start(Mode::OneProcess);
    let token = keel.backend_token("rust@example.com").await;
    let mut client = ConvexClient::new(&keel.backend).await.unwrap();
    client.set_auth(Some(token)).await;
    let mut ids = BTreeMap::new();
    for n in 1..=5 {
        ids.insert(n, create(&mut client, &format!("Post {n}")).await);
    }

    let mut first = client
        .subscribe("posts:page", page_args(2.0, None))
        .await
        .unwrap();
    let (titles, end) = next_page(&mut first).await;
    assert_eq!(titles, ["Post 5", "Post 4"]);
    let mut second = client
        .subscribe("posts:page", page_args(2.0, Some(end.clone())))
        .await
        .unwrap();
    assert_eq!(next_page(&mut second).await.0, ["Post 3", "Post 2"]);

    // A new post lands on the first page, which keeps its end: three posts now, none pushed
    // onto the second page.
    create(&mut client, "Post 6").await;
    let (titles, again) = next_page(&mut first).await;
    assert_eq!(titles, ["Post 6", "Post 5", "Post 4"]);
    assert_eq!(again, end, "the first page ends where it ended");

    // A post deleted inside the second page: it shrinks rather than taking Post 1 in, and the
    // first page is untouched.
    let args = BTreeMap::from([("id".to_owned(), Value::String(ids[&3].clone()))]);
    client.mutation("posts:remove", args).await.unwrap();
    assert_eq!(next_page(&mut second).await.0, ["Post 2"]);
    // Post 1 is on the page after the second: everything is listed once.
    let args = BTreeMap::from([("id".to_owned(), Value::String(ids[&4].clone()))]);
    client.mutation("posts:remove", args).await.unwrap();
    assert_eq!(next_page(&mut first).await.0, ["Post 6", "Post 5"]);
}

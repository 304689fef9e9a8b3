//! The official Rust client (`convex` crate) against the backend platform of the reference app:
//! a post scheduled with `posts:publishLater` arrives on a live `posts:list` subscription, the
//! internal `posts:publish` is unknown to it, and an image uploaded to the URL that
//! `files:generateUploadUrl` gives (the crate has no upload call: a plain POST, as `fetch` does in
//! JavaScript) comes back from the post's `imageUrl` byte for byte, and goes when its post does.

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use convex::{ConvexClient, FunctionResult, Value};
use futures::StreamExt;
use support::{Deployment, Mode};

fn args(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn titles(result: &FunctionResult) -> Vec<String> {
    let FunctionResult::Value(Value::Array(posts)) = result else {
        panic!("a list of posts: {result:?}")
    };
    posts
        .iter()
        .map(|post| match post {
            Value::Object(fields) => match &fields["title"] {
                Value::String(title) => title.clone(),
                other => panic!("a title: {other:?}"),
            },
            other => panic!("a post: {other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn a_scheduled_post_arrives_and_the_internal_function_stays_hidden() {
    let keel = Deployment::start(Mode::OneProcess);
    let token = keel.backend_token("later@example.com").await;
    let mut client = ConvexClient::new(&keel.backend).await.unwrap();
    client.set_auth(Some(token)).await;
    let mut list = client
        .subscribe("posts:list", BTreeMap::new())
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), list.next())
        .await
        .expect("a first result")
        .expect("open");
    assert!(titles(&first).is_empty(), "{first:?}");

    let scheduled = client
        .mutation(
            "posts:publishLater",
            args(&[
                ("title", Value::String("Later".into())),
                ("body", Value::String(String::new())),
                ("delayMs", Value::Float64(300.0)),
            ]),
        )
        .await
        .unwrap();
    assert!(
        matches!(&scheduled, FunctionResult::Value(Value::String(id)) if !id.is_empty()),
        "the scheduled function's id: {scheduled:?}"
    );
    // The post arrives on the subscription once the job has run (deadline, not a sleep).
    let arrived = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let update = list.next().await.expect("open");
            if titles(&update) == ["Later"] {
                return update;
            }
        }
    })
    .await
    .expect("the scheduled post within 20 s");
    assert_eq!(titles(&arrived), ["Later"]);

    let refused = client
        .mutation(
            "posts:publish",
            args(&[
                ("title", Value::String("Forged".into())),
                ("body", Value::String(String::new())),
            ]),
        )
        .await
        .unwrap();
    assert!(
        matches!(&refused, FunctionResult::ErrorMessage(m)
            if m.contains("Could not find public function for 'posts:publish'")),
        "{refused:?}"
    );
}

#[tokio::test]
async fn an_uploaded_image_is_served_from_its_posts_image_url() {
    let keel = Deployment::start(Mode::OneProcess);
    let token = keel.backend_token("pictures@example.com").await;
    let mut client = ConvexClient::new(&keel.backend).await.unwrap();
    client.set_auth(Some(token)).await;
    let FunctionResult::Value(Value::String(upload_url)) = client
        .mutation("files:generateUploadUrl", BTreeMap::new())
        .await
        .unwrap()
    else {
        panic!("an upload URL")
    };
    let image: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let http = reqwest::Client::new();
    let stored: serde_json::Value = http
        .post(&upload_url)
        .header("content-type", "image/png")
        .body(image.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let storage_id = stored["storageId"]
        .as_str()
        .expect("a storageId")
        .to_owned();
    let FunctionResult::Value(Value::String(post_id)) = client
        .mutation(
            "posts:create",
            args(&[
                ("title", Value::String("Picture".into())),
                ("body", Value::String(String::new())),
                ("imageId", Value::String(storage_id)),
            ]),
        )
        .await
        .unwrap()
    else {
        panic!("a post id")
    };
    let post = client
        .query("posts:get", args(&[("id", Value::String(post_id.clone()))]))
        .await
        .unwrap();
    let FunctionResult::Value(Value::Object(post)) = post else {
        panic!("a post: {post:?}")
    };
    let Value::String(image_url) = &post["imageUrl"] else {
        panic!("an imageUrl: {post:?}")
    };
    let served = http.get(image_url).send().await.unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.headers()["content-type"], "image/png");
    assert_eq!(served.bytes().await.unwrap().as_ref(), image.as_slice());
    // The URL was single-use.
    let again = http.post(&upload_url).body("x").send().await.unwrap();
    assert!(again.status().is_client_error(), "{}", again.status());

    // Removing the post removes its image: the URL answers 404 from then on.
    let removed = client
        .mutation("posts:remove", args(&[("id", Value::String(post_id))]))
        .await
        .unwrap();
    assert_eq!(removed, FunctionResult::Value(Value::Null));
    let gone = http.get(image_url).send().await.unwrap();
    assert_eq!(gone.status(), 404, "the image left with its post");
}

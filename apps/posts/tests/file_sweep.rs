//! `files:sweep`, the app's daily clean-up of stored files: a file no post shows is deleted once
//! it is older than the grace period; a file a post shows, or a fresh upload still waiting for its
//! `posts:create`, is kept. The function is internal (clients cannot call it), so this test serves
//! the app's functions in-process with one public wrapper around it.

use keel_backend::{FunctionRegistry, MutationCtx};
use keel_posts::functions::{self, files};
use keel_testing::{ServedBackend, TestIdp};
use serde_json::{Value as Json, json};

/// One call over the HTTP API as `token`; Convex's JSON answer.
async fn call(backend: &ServedBackend, kind: &str, token: &str, path: &str, args: Json) -> Json {
    reqwest::Client::new()
        .post(format!("{}/api/{kind}", backend.url()))
        .bearer_auth(token)
        .json(&json!({ "path": path, "args": args, "format": "json" }))
        .send()
        .await
        .expect("the backend answers")
        .json()
        .await
        .expect("JSON")
}

async fn upload(backend: &ServedBackend, token: &str, bytes: &'static [u8]) -> String {
    let url = call(
        backend,
        "mutation",
        token,
        "files:generateUploadUrl",
        json!({}),
    )
    .await;
    let url = url["value"]
        .as_str()
        .unwrap_or_else(|| panic!("an upload URL: {url}"))
        .to_owned();
    let stored: Json = reqwest::Client::new()
        .post(url)
        .header("content-type", "image/png")
        .body(bytes)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    stored["storageId"]
        .as_str()
        .expect("a storage id")
        .to_owned()
}

async fn status_of(backend: &ServedBackend, storage_id: &str) -> u16 {
    reqwest::get(format!("{}/api/storage/{storage_id}", backend.url()))
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_no_post_shows_are_swept_after_their_grace_period() {
    let mut registry: FunctionRegistry = functions::functions();
    registry.mutation(
        "test:sweep",
        |ctx: MutationCtx, args: files::SweepArgs| async move { files::sweep(ctx, args).await },
    );
    assert!(
        registry.contains("files:sweep"),
        "the daily cron's function exists"
    );
    let idp = TestIdp::start().await;
    let backend = ServedBackend::sqlite(functions::schema(), registry, idp.backend_config()).await;
    let (_, token) = idp.user_token("sweeper@example.com").await;

    let shown = upload(&backend, &token, b"\x89PNG shown").await;
    let orphan = upload(&backend, &token, b"\x89PNG never attached").await;
    let created = call(
        &backend,
        "mutation",
        &token,
        "posts:create",
        json!({ "title": "With a picture", "body": "", "imageId": shown }),
    )
    .await;
    assert_eq!(created["status"], "success", "{created}");

    // Within the grace period nothing goes: the orphan may still be waiting for its post.
    let grace = files::UNSHOWN_FILE_GRACE.as_millis() as f64;
    let swept = call(
        &backend,
        "mutation",
        &token,
        "test:sweep",
        json!({ "olderThanMs": grace }),
    )
    .await;
    assert_eq!(swept["value"], 0.0, "{swept}");
    assert_eq!(status_of(&backend, &orphan).await, 200);

    // Past it (a grace of 0 here), the file no post shows is deleted and the shown one kept.
    let swept = call(
        &backend,
        "mutation",
        &token,
        "test:sweep",
        json!({ "olderThanMs": 0.0 }),
    )
    .await;
    assert_eq!(swept["value"], 1.0, "{swept}");
    assert_eq!(status_of(&backend, &orphan).await, 404);
    assert_eq!(status_of(&backend, &shown).await, 200);

    // Clients cannot reach the internal function itself.
    let refused = call(
        &backend,
        "mutation",
        &token,
        "files:sweep",
        json!({ "olderThanMs": 0.0 }),
    )
    .await;
    let message = refused["errorMessage"].as_str().unwrap_or_default();
    assert!(
        message.contains("Could not find public function"),
        "{refused}"
    );
}

//! The scheduler in the `keel` process on SQLite: `posts:publishLater` schedules the internal
//! `posts:publish` (which clients cannot call); a post due while the process was killed
//! (SIGKILL) is published once when it starts again.

mod support;

use std::time::{Duration, Instant};

use support::{Deployment, Mode};

/// How long any one wait may take.
const WAIT: Duration = Duration::from_secs(30);

/// One mutation over the backend's HTTP API as `token`: Convex's JSON answer.
async fn mutation(
    deployment: &Deployment,
    token: &str,
    path: &str,
    args: serde_json::Value,
) -> serde_json::Value {
    reqwest::Client::new()
        .post(format!("{}/api/mutation", deployment.backend))
        .bearer_auth(token)
        .json(&serde_json::json!({ "path": path, "args": args, "format": "json" }))
        .send()
        .await
        .expect("the backend answers")
        .json()
        .await
        .expect("JSON")
}

/// The titles of the posts, newest first.
async fn titles(deployment: &Deployment, token: &str) -> Vec<String> {
    let answer = deployment
        .query("posts:list", serde_json::json!({}), Some(token))
        .await;
    assert_eq!(answer["status"], "success", "{answer}");
    answer["value"]
        .as_array()
        .map(|posts| {
            posts
                .iter()
                .filter_map(|post| post["title"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_post_due_while_the_process_was_killed_is_published_once_at_start() {
    let mut deployment = Deployment::start(Mode::OneProcess);
    let token = deployment.backend_token("ada@example.com").await;
    let answer = mutation(
        &deployment,
        &token,
        "posts:publishLater",
        serde_json::json!({ "title": "Later", "body": "scheduled", "delayMs": 1500.0 }),
    )
    .await;
    assert_eq!(answer["status"], "success", "{answer}");
    let scheduled_at = Instant::now();
    let job = answer["value"]
        .as_str()
        .expect("the scheduled function's id");
    assert!(!job.is_empty());

    // A client cannot run the internal mutation itself.
    let refused = mutation(
        &deployment,
        &token,
        "posts:publish",
        serde_json::json!({ "title": "Now", "body": "", "authorId": "x", "authorName": "x" }),
    )
    .await;
    assert_eq!(refused["status"], "error", "{refused}");
    let message = refused["errorMessage"].as_str().unwrap_or_default();
    assert!(
        message.contains("Could not find public function for 'posts:publish'"),
        "{message}"
    );
    assert!(
        !message.contains("publish,") && !message.contains("publish."),
        "{message}"
    );

    // Killed before the post is due, started again after.
    let keel = &mut deployment.processes[0].child;
    keel.kill().expect("SIGKILL");
    keel.wait().expect("the process ends");
    while scheduled_at.elapsed() < Duration::from_millis(1600) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    deployment.restart(&[]);
    // The idp listens on a new port now: a token of the new process.
    let token = deployment.backend_token("grace@example.com").await;
    let published = loop {
        let titles = titles(&deployment, &token).await;
        if !titles.is_empty() {
            break titles;
        }
        assert!(
            scheduled_at.elapsed() < WAIT,
            "the post was never published"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(published, ["Later"]);
}

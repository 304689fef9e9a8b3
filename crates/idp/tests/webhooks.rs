//! Webhooks from the idp to a real HTTP receiver on 127.0.0.1: Clerk's events in Clerk's
//! payload shape, Svix signatures that `keel_auth::webhooks` verifies with the secret the idp
//! stored, retries after a 500 (same `svix-id`), the delivery log, and sign-up that does not
//! wait for a receiver that hangs.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use common::start_in;
use keel_auth::webhooks::WebhookVerifier;
use keel_idp::{NewUser, WebhookRetry};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::{Notify, Semaphore};

/// What the receiver saw: headers and body of each request, in order.
#[derive(Default)]
struct Received {
    requests: Mutex<Vec<(HeaderMap, String)>>,
    arrived: Notify,
}

/// How the receiver answers the `n`th request (0-based).
type Answer = fn(usize) -> StatusCode;

async fn receiver(answer: Answer, gate: Arc<Semaphore>) -> (String, Arc<Received>) {
    let received = Arc::new(Received::default());
    let state = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let state = state.clone();
            let gate = gate.clone();
            async move {
                // Held until the test lets it go (a receiver that hangs).
                let _permit = gate.acquire().await.unwrap();
                let n = {
                    let mut requests = state.requests.lock();
                    requests.push((headers, body));
                    requests.len() - 1
                };
                state.arrived.notify_waiters();
                answer(n)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

impl Received {
    /// Waits (up to 20 s) until `count` requests have arrived; returns them.
    async fn wait_for(&self, count: usize) -> Vec<(HeaderMap, String)> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let notified = self.arrived.notified();
            {
                let requests = self.requests.lock();
                if requests.len() >= count {
                    return requests.clone();
                }
            }
            tokio::time::timeout_at(deadline, notified)
                .await
                .unwrap_or_else(|_| panic!("{count} webhooks did not arrive in 20 s"));
        }
    }
}

fn fast_retry() -> WebhookRetry {
    WebhookRetry {
        max_attempts: 3,
        first_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(200),
    }
}

#[tokio::test]
async fn events_arrive_signed_in_clerks_shape_and_failures_are_retried() {
    let open = Arc::new(Semaphore::new(Semaphore::MAX_PERMITS));
    // The first delivery fails with a 500; every later one succeeds.
    let (url, received) = receiver(
        |n| {
            if n == 0 {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::OK
            }
        },
        open,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let r = start_in(dir.path(), |c| {
        c.webhook_urls = vec![url.clone()];
        c.webhook_retry = fast_retry();
    })
    .await;
    let secret = std::fs::read_to_string(dir.path().join("idp/webhook_secret")).unwrap();
    assert_eq!(secret.trim(), r.idp.webhook_secret());
    assert!(secret.starts_with("whsec_"));

    let user = r.create_user("hook@example.com").await;
    // user.created, failed once, then retried.
    let first = received.wait_for(2).await;
    assert_eq!(
        first[0].0["svix-id"], first[1].0["svix-id"],
        "a retry is the same message"
    );
    assert_eq!(first[0].1, first[1].1);
    let (_, session) = r
        .call("POST", "/v1/sessions", Some(json!({ "user_id": user })))
        .await;
    let sid = session["id"].as_str().unwrap().to_owned();
    r.call(
        "PATCH",
        &format!("/v1/users/{user}/metadata"),
        Some(json!({ "public_metadata": { "role": "admin" } })),
    )
    .await;
    r.call("POST", &format!("/v1/sessions/{sid}/revoke"), None)
        .await;
    let (_, second) = r
        .call("POST", "/v1/sessions", Some(json!({ "user_id": user })))
        .await;
    r.call("DELETE", &format!("/v1/users/{user}"), None).await;

    let all = received.wait_for(8).await;
    let verifier = WebhookVerifier::new(r.idp.webhook_secret()).unwrap();
    let mut events: Vec<Value> = Vec::new();
    for (i, (headers, body)) in all.iter().enumerate().skip(1) {
        let event = verifier
            .verify(headers, body.as_bytes())
            .unwrap_or_else(|e| panic!("delivery {i} does not verify: {e}"));
        let full: Value = serde_json::from_str(body).unwrap();
        assert_eq!(full["object"], "event");
        assert!(full["instance_id"].as_str().unwrap().starts_with("ins_"));
        assert!(full["timestamp"].as_i64().unwrap() > 1_600_000_000_000);
        assert_eq!(full["type"], event.event_type.as_str());
        events.push(full);
    }
    // Deliveries run side by side, so they may arrive in any order (as with Svix).
    let mut types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    types.sort_unstable();
    assert_eq!(
        types,
        [
            "session.created",
            "session.created",
            "session.ended",
            "session.revoked",
            "user.created",
            "user.deleted",
            "user.updated",
        ]
    );
    let find = |kind: &str, id: &str| {
        events
            .iter()
            .find(|e| e["type"] == kind && e["data"]["id"] == id)
            .unwrap_or_else(|| panic!("no {kind} for {id}: {events:?}"))
    };
    let created = &find("user.created", &user)["data"];
    assert_eq!(created["object"], "user");
    assert_eq!(
        created["email_addresses"][0]["email_address"],
        "hook@example.com"
    );
    assert_eq!(find("session.created", &sid)["data"]["object"], "session");
    assert_eq!(
        find("session.created", &sid)["data"]["user_id"],
        user.as_str()
    );
    assert_eq!(
        find("user.updated", &user)["data"]["public_metadata"]["role"],
        "admin"
    );
    assert_eq!(find("session.revoked", &sid)["data"]["status"], "revoked");
    let second = second["id"].as_str().unwrap();
    assert_eq!(find("session.ended", second)["data"]["status"], "ended");
    assert_eq!(
        find("user.deleted", &user)["data"],
        json!({ "deleted": true, "id": user, "object": "user" })
    );

    // The log, newest first, shows the failed attempt and its retry. An attempt is logged once
    // its answer is read, which may be just after the receiver saw it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let log = loop {
        let (status, log) = r.call("GET", "/v1/webhooks/deliveries", None).await;
        assert_eq!(status, StatusCode::OK);
        if log["total_count"] == 8 {
            break log;
        }
        assert!(tokio::time::Instant::now() < deadline, "{log}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let data = log["data"].as_array().unwrap();
    let failed = data.last().unwrap();
    assert_eq!(
        (
            failed["status"].as_str(),
            failed["response_status"].as_u64(),
            failed["attempt"].as_u64()
        ),
        (Some("failed"), Some(500), Some(1)),
        "{log}"
    );
    assert!(failed["next_attempt_at"].is_i64());
    let retried = data
        .iter()
        .find(|d| d["message_id"] == failed["message_id"] && d["attempt"] == 2)
        .unwrap_or_else(|| panic!("no second attempt: {log}"));
    assert_eq!(
        (
            retried["status"].as_str(),
            retried["attempt"].as_u64(),
            &retried["message_id"]
        ),
        (Some("delivered"), Some(2), &failed["message_id"])
    );
    assert_eq!(log["total_count"], 8);
    let (status, _) = r
        .call_as("GET", "/v1/webhooks/deliveries", None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn retries_stop_after_the_last_attempt() {
    let (url, received) = receiver(
        |_| StatusCode::SERVICE_UNAVAILABLE,
        Arc::new(Semaphore::new(Semaphore::MAX_PERMITS)),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let r = start_in(dir.path(), |c| {
        c.webhook_urls = vec![url];
        c.webhook_retry = fast_retry();
    })
    .await;
    r.create_user("down@example.com").await;
    received.wait_for(3).await;
    // The third attempt was the last: the log says so, with no next attempt.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let log = r.idp.webhook_deliveries();
        if log.len() == 3 {
            assert!(
                matches!(
                    log[0].outcome,
                    keel_idp::DeliveryOutcome::Failed {
                        status: Some(503),
                        retry_at: None,
                        ..
                    }
                ),
                "{log:?}"
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{log:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(received.requests.lock().len(), 3);
}

#[tokio::test]
async fn sign_up_and_sign_in_do_not_wait_for_a_hanging_receiver() {
    // The receiver holds every request until the test releases it.
    let gate = Arc::new(Semaphore::new(0));
    let (url, received) = receiver(|_| StatusCode::OK, gate.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let r = start_in(dir.path(), |c| c.webhook_urls = vec![url]).await;
    let user = r
        .idp
        .create_user(NewUser {
            email_addresses: vec!["wait@example.com".into()],
            ..NewUser::default()
        })
        .await
        .unwrap();
    let session = r.idp.create_session(&user.id).unwrap();
    r.idp.session_token(&session.id, None).unwrap();
    // Both returned while their webhooks are still held by the receiver.
    assert!(received.requests.lock().is_empty());
    gate.add_permits(Semaphore::MAX_PERMITS / 2);
    received.wait_for(2).await;
}

#[tokio::test]
async fn bad_webhook_urls_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["ftp://example.com/x", "no url", "http://"] {
        let mut config = keel_idp::IdpConfig::new(dir.path());
        config.webhook_urls = vec![bad.to_owned()];
        let error = keel_idp::Idp::open(config, "127.0.0.1:9".parse().unwrap())
            .err()
            .unwrap_or_else(|| panic!("{bad} accepted"));
        assert_eq!(error.code(), "IdpConfig", "{error}");
    }
}

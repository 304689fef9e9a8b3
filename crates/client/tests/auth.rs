//! `LiveClient` auth against a real backend and idp: refresh of 3-second tokens on the open
//! socket, retries after `AuthError`, signing out.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{TestIdp, WAIT, backend_with_idp, wait_until};
use futures::FutureExt;
use keel_client::{AuthState, LiveClient, LiveConfig};
use keel_values::Value;
use parking_lot::Mutex;
use serde_json::json;
use tokio::time::Instant;

/// Records every auth state the client goes through.
fn record_states(live: &LiveClient) -> Arc<Mutex<Vec<AuthState>>> {
    let states = Arc::new(Mutex::new(vec![live.auth_state()]));
    let mut watch = live.watch_auth();
    let seen = states.clone();
    tokio::spawn(async move {
        while watch.changed().await.is_ok() {
            let state = *watch.borrow_and_update();
            seen.lock().push(state);
        }
    });
    states
}

/// A fetcher handing out the session's tokens, recording each call's `force_refresh`.
fn session_fetcher(live: &LiveClient, idp: &Arc<TestIdp>, session: &str) -> Arc<Mutex<Vec<bool>>> {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let (idp, session, log) = (idp.clone(), session.to_owned(), calls.clone());
    live.set_auth_fetcher(move |force| {
        log.lock().push(force);
        let token = idp.token(&session);
        async move { token }
    })
    .unwrap();
    calls
}

#[tokio::test]
async fn three_second_tokens_refresh_on_the_open_socket() {
    let (backend, idp) = backend_with_idp(Duration::from_secs(3)).await;
    let idp = Arc::new(idp);
    let (user_id, session) = idp.user_session("refresh@example.com").await;
    let mut config = LiveConfig::new(backend.url());
    config.refresh_leeway = Duration::from_secs(1);
    let live = LiveClient::with_config(config).unwrap();
    let states = record_states(&live);
    let calls = session_fetcher(&live, &idp, &session);

    let mut counter = live.subscribe("private:counter", json!({})).unwrap();
    let first = tokio::time::timeout(WAIT, counter.next_update())
        .await
        .unwrap()
        .unwrap();
    let first = first.result.expect("the signed-in query succeeds");
    assert_eq!(
        first.as_object().unwrap()["who"],
        Value::from(user_id.as_str())
    );
    assert_eq!(live.auth_state(), AuthState::Authenticated);

    // A mutation every ~300 ms and a one-shot query each time, across ≥ 10 refreshes.
    let started = Instant::now();
    let mut observed = Vec::new();
    let mut mutations = 0u32;
    while live.stats().authenticates < 11 {
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "refreshes too slow: {:?}",
            live.stats()
        );
        let n: u32 = live
            .mutation("private:increment", json!({}))
            .await
            .expect("no failed mutation");
        mutations += 1;
        assert_eq!(n, mutations);
        // Read-your-writes: the update is delivered before the mutation resolves.
        while let Some(Some(update)) = counter.next_update().now_or_never() {
            let value = update.result.expect("no failed query result");
            let fields = value.as_object().unwrap();
            assert_eq!(fields["who"], Value::from(user_id.as_str()));
            observed.push(fields["n"].as_f64().unwrap() as u32);
        }
        assert_eq!(
            observed.last(),
            Some(&mutations),
            "update for mutation {mutations} delivered"
        );
        let who: String = live
            .query("auth:whoami", json!({}))
            .await
            .expect("no failed query");
        assert_eq!(who, user_id);
        tokio::time::sleep(Duration::from_millis(300)).await; // the workload's pace
    }
    // Every value exactly once, in order: nothing dropped, nothing re-delivered from scratch.
    assert_eq!(observed, (1..=mutations).collect::<Vec<_>>());
    let stats = live.stats();
    assert_eq!(stats.connects, 1, "never reconnected: {stats:?}");
    assert_eq!(stats.auth_errors, 0, "{stats:?}");
    assert_eq!(
        stats.query_adds,
        1 + u64::from(mutations),
        "the subscription was added once (plus one per one-shot query): {stats:?}"
    );
    let calls = calls.lock().clone();
    assert!(!calls[0], "the first fetch may use a cached token");
    assert!(calls.iter().filter(|f| **f).count() >= 10, "{calls:?}");
    let states = states.lock().clone();
    assert!(!states.contains(&AuthState::SignedOut), "{states:?}");
    // (A watch may coalesce quick changes, so only presence is checked; the fetcher calls
    // above count the refreshes exactly.)
    assert!(states.contains(&AuthState::Refreshing), "{states:?}");
    // The last check may land while a refresh is under way: it ends authenticated.
    wait_until("authenticated after the last refresh", WAIT, || {
        live.auth_state() == AuthState::Authenticated
    })
    .await;
}

#[tokio::test]
async fn rejected_tokens_are_retried_twice_then_signed_out() {
    let (backend, _idp) = backend_with_idp(Duration::from_secs(60)).await;
    let mut config = LiveConfig::new(backend.url());
    config.max_backoff = Duration::from_millis(300);
    let live = LiveClient::with_config(config).unwrap();
    let states = record_states(&live);
    let calls = Arc::new(Mutex::new(Vec::new()));
    let log = calls.clone();
    live.set_auth_fetcher(move |force| {
        log.lock().push(force);
        async { Some("garbage".to_owned()) }
    })
    .unwrap();
    let mut watch = live.watch_auth();
    tokio::time::timeout(WAIT, watch.wait_for(|s| *s == AuthState::SignedOut))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(*calls.lock(), [false, true, true]);
    assert_eq!(live.stats().auth_errors, 3);
    assert!(!states.lock().contains(&AuthState::Authenticated));
    // The owner learns it is signed out; calls continue anonymously.
    assert_eq!(
        live.query_value("auth:whoami", Default::default())
            .await
            .unwrap(),
        Value::Null
    );
    assert_eq!(live.auth_state(), AuthState::SignedOut);
}

#[tokio::test]
async fn no_token_means_signed_out() {
    let (backend, _idp) = backend_with_idp(Duration::from_secs(60)).await;
    let live = LiveClient::new(&backend.url()).unwrap();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let log = calls.clone();
    live.set_auth_fetcher(move |force| {
        log.lock().push(force);
        async { None }
    })
    .unwrap();
    // The query waits for the fetch, then runs anonymously.
    assert_eq!(
        live.query_value("auth:whoami", Default::default())
            .await
            .unwrap(),
        Value::Null
    );
    assert_eq!(live.auth_state(), AuthState::SignedOut);
    assert_eq!(*calls.lock(), [false, true]);
    assert_eq!(live.stats().authenticates, 0);
}

#[tokio::test]
async fn one_rejection_then_a_good_token_recovers() {
    let (backend, idp) = backend_with_idp(Duration::from_secs(60)).await;
    let (user_id, session) = idp.user_session("retry@example.com").await;
    let live = LiveClient::new(&backend.url()).unwrap();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let log = calls.clone();
    let idp = Arc::new(idp);
    let fetch_idp = idp.clone();
    live.set_auth_fetcher(move |force| {
        log.lock().push(force);
        let token = if force {
            fetch_idp.token(&session)
        } else {
            Some("stale".to_owned())
        };
        async move { token }
    })
    .unwrap();
    let who: String = live.query("auth:whoami", json!({})).await.unwrap();
    assert_eq!(who, user_id);
    assert_eq!(live.auth_state(), AuthState::Authenticated);
    assert_eq!(*calls.lock(), [false, true]);
    assert_eq!(live.stats().auth_errors, 1);
}

#[tokio::test]
async fn a_revoked_session_signs_out_at_the_next_refresh() {
    let (backend, idp) = backend_with_idp(Duration::from_secs(3)).await;
    let idp = Arc::new(idp);
    let (user_id, session) = idp.user_session("revoked@example.com").await;
    let mut config = LiveConfig::new(backend.url());
    config.refresh_leeway = Duration::from_secs(1);
    let live = LiveClient::with_config(config).unwrap();
    let states = record_states(&live);
    session_fetcher(&live, &idp, &session);
    let mut whoami = live.subscribe("auth:whoami", json!({})).unwrap();
    let first = tokio::time::timeout(WAIT, whoami.next_update())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.result.unwrap(), Value::from(user_id.as_str()));
    idp.idp.revoke_session(&session).unwrap();
    let next = tokio::time::timeout(WAIT, whoami.next_update())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        next.result.unwrap(),
        Value::Null,
        "the identity is dropped on the socket"
    );
    wait_until("signed out", WAIT, || {
        live.auth_state() == AuthState::SignedOut
    })
    .await;
    let states = states.lock().clone();
    // In this order (a watch may skip quick intermediate states, never reorder them).
    let order = [
        AuthState::Authenticated,
        AuthState::Refreshing,
        AuthState::SignedOut,
    ];
    let mut rest = states.iter();
    for state in order {
        assert!(
            rest.any(|s| *s == state),
            "{state:?} missing or out of order in {states:?}"
        );
    }
    assert_eq!(states.last(), Some(&AuthState::SignedOut));
    assert_eq!(live.stats().connects, 1);
}

#[tokio::test]
async fn a_reconnect_authenticates_the_new_socket_first() {
    let (backend, idp) = backend_with_idp(Duration::from_secs(60)).await;
    let idp = Arc::new(idp);
    let (user_id, session) = idp.user_session("reconnect@example.com").await;
    let proxy = common::Proxy::start(backend.addr).await;
    let live = LiveClient::new(&proxy.url()).unwrap();
    session_fetcher(&live, &idp, &session);
    let mut counter = live.subscribe("private:counter", json!({})).unwrap();
    let first = tokio::time::timeout(WAIT, counter.next_update())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        first.result.unwrap().as_object().unwrap()["n"],
        Value::Float64(0.0)
    );
    proxy.cut();
    wait_until("the client reconnected", WAIT, || {
        live.stats().connects == 2
    })
    .await;
    // The signed-in query was re-added after `Authenticate`: it still succeeds, as the user.
    let n: u32 = live.mutation("private:increment", json!({})).await.unwrap();
    assert_eq!(n, 1);
    let update = counter
        .next_update()
        .now_or_never()
        .flatten()
        .expect("delivered");
    let value = update.result.expect("the re-added query runs signed in");
    assert_eq!(
        value.as_object().unwrap()["who"],
        Value::from(user_id.as_str())
    );
    let stats = live.stats();
    assert_eq!(
        stats.authenticates, 2,
        "one Authenticate per socket: {stats:?}"
    );
    assert_eq!(stats.auth_errors, 0);
    assert_eq!(live.auth_state(), AuthState::Authenticated);
}

#[tokio::test]
async fn an_identity_that_lapses_on_the_server_ends_in_signed_out() {
    // The fetcher keeps returning the same 3-second token: the backend ends the session when
    // it lapses (AuthError without an Authenticate), the forced refetches bring nothing new.
    let (backend, idp) = backend_with_idp(Duration::from_secs(3)).await;
    let (_, session) = idp.user_session("lapse@example.com").await;
    let token = idp.token(&session).unwrap();
    let mut config = LiveConfig::new(backend.url());
    config.refresh_leeway = Duration::from_secs(1);
    config.max_backoff = Duration::from_millis(300);
    let live = LiveClient::with_config(config).unwrap();
    live.set_auth_fetcher(move |_| {
        let token = token.clone();
        async move { Some(token) }
    })
    .unwrap();
    let mut whoami = live.subscribe("auth:whoami", json!({})).unwrap();
    let first = tokio::time::timeout(WAIT, whoami.next_update())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(first.result, Ok(Value::String(_))));
    let mut watch = live.watch_auth();
    tokio::time::timeout(
        Duration::from_secs(20),
        watch.wait_for(|s| *s == AuthState::SignedOut),
    )
    .await
    .expect("signed out in time")
    .unwrap();
    // Three rejections in a row; one more when the lapsed token was still accepted once
    // within the verifier's clock-skew leeway (second granularity) and then expired again.
    let errors = live.stats().auth_errors;
    assert!((3..=4).contains(&errors), "{errors}");
    // Anonymous from now on.
    let next = tokio::time::timeout(WAIT, whoami.next_update())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.result.unwrap(), Value::Null);
}

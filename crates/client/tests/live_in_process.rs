//! `LiveClient` in both modes against one real backend: over a WebSocket and in the backend's
//! process (`LiveClient::in_process` over `keel_backend::InProcess`). Subscriptions, mutations,
//! actions, token refresh, refused and revoked tokens behave the same; the backend's raw
//! answers to refused tokens and broken messages are the same message in both; the in-process
//! client opens no socket (the backend's `keel_sync_sessions_opened_total` by transport).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{TestBackend, WAIT, backend_with_idp, wait_until};
use futures::FutureExt;
use keel_backend::InProcess;
use keel_client::{AuthState, LiveClient, LiveConfig, Subscription};
use keel_protocol::{InProcessBackend, InProcessSync, ProtocolError};
use keel_testing::sync::{SyncClient, random_session_id};
use keel_values::{Object, Value};
use serde_json::{Value as Json, json};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    WebSocket,
    InProcess,
}

const MODES: [Mode; 2] = [Mode::WebSocket, Mode::InProcess];

fn connect(backend: &TestBackend, config: LiveConfig, mode: Mode) -> LiveClient {
    let live = match mode {
        Mode::WebSocket => LiveClient::with_config(config).unwrap(),
        Mode::InProcess => {
            LiveClient::in_process(config, InProcess::shared(backend.backend.clone()))
        }
    };
    assert_eq!(live.is_in_process(), mode == Mode::InProcess);
    live
}

/// Sync sessions the backend opened so far over `transport` (`websocket`, `in_process`).
fn sessions_opened(backend: &TestBackend, transport: &str) -> f64 {
    let metrics = keel_testing::prometheus::parse(&backend.backend.metrics().render()).unwrap();
    metrics.sum(
        "keel_sync_sessions_opened_total",
        &[("transport", transport)],
    )
}

async fn next_value(sub: &mut Subscription) -> Value {
    let update = tokio::time::timeout(WAIT, sub.next_update())
        .await
        .expect("an update in time")
        .expect("the client is open");
    update.result.expect("a value")
}

#[tokio::test]
async fn both_modes_follow_mutations_and_only_one_opens_a_socket() {
    let backend = TestBackend::start().await;
    for (round, mode) in MODES.into_iter().enumerate() {
        let sockets = sessions_opened(&backend, "websocket");
        let direct = sessions_opened(&backend, "in_process");
        let live = connect(&backend, LiveConfig::new(backend.url()), mode);
        let mut counter = live.subscribe("counter:get", json!({})).unwrap();
        let base = (round * 4) as f64;
        assert_eq!(
            next_value(&mut counter).await,
            Value::Float64(base),
            "{mode:?}"
        );
        for step in 1..=3 {
            let (value, ts) = live
                .mutation_with_ts("counter:increment", Object::new())
                .await
                .unwrap();
            assert_eq!(value, Value::Float64(base + f64::from(step)), "{mode:?}");
            // Read-your-writes: delivered before the mutation resolved.
            assert!(live.latest_ts() >= ts);
            let update = counter.next_update().now_or_never().flatten().unwrap();
            assert_eq!(update.result.unwrap(), value, "{mode:?}");
        }
        let bumped: f64 = live.action("actions:bump", json!({})).await.unwrap();
        assert_eq!(bumped, base + 4.0, "{mode:?}");
        assert_eq!(next_value(&mut counter).await, Value::Float64(base + 4.0));
        let failed = live
            .query_value("errors:fail", Object::new())
            .await
            .unwrap_err();
        assert!(
            failed.to_string().contains("Not allowed"),
            "{mode:?}: {failed}"
        );
        assert_eq!(live.stats().connects, 1, "{mode:?}");
        let (opened_sockets, opened_direct) = match mode {
            Mode::WebSocket => (1.0, 0.0),
            Mode::InProcess => (0.0, 1.0),
        };
        assert_eq!(
            sessions_opened(&backend, "websocket") - sockets,
            opened_sockets
        );
        assert_eq!(
            sessions_opened(&backend, "in_process") - direct,
            opened_direct
        );
        live.close();
        tokio::time::timeout(WAIT, live.closed()).await.unwrap();
    }
    // Every session ended with its client.
    wait_until("sessions closed", WAIT, || {
        backend.backend.sync_load().sessions == 0
    })
    .await;
}

#[tokio::test]
async fn rejected_tokens_are_retried_twice_then_signed_out_in_both_modes() {
    let (backend, _idp) = backend_with_idp(Duration::from_secs(60)).await;
    for mode in MODES {
        let mut config = LiveConfig::new(backend.url());
        config.max_backoff = Duration::from_millis(300);
        let live = connect(&backend, config, mode);
        let calls = Arc::new(parking_lot::Mutex::new(Vec::new()));
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
        assert_eq!(*calls.lock(), [false, true, true], "{mode:?}");
        assert_eq!(live.stats().auth_errors, 3, "{mode:?}");
        // Calls continue anonymously.
        let who = live
            .query_value("auth:whoami", Object::new())
            .await
            .unwrap();
        assert_eq!(who, Value::Null, "{mode:?}");
    }
}

#[tokio::test]
async fn tokens_refresh_on_the_open_connection_and_a_revoked_session_signs_out_in_both_modes() {
    let (backend, idp) = backend_with_idp(Duration::from_secs(3)).await;
    let idp = Arc::new(idp);
    for mode in MODES {
        let (user_id, session) = idp.user_session(&format!("{mode:?}@example.com")).await;
        let mut config = LiveConfig::new(backend.url());
        config.refresh_leeway = Duration::from_secs(1);
        let live = connect(&backend, config, mode);
        let (tokens, sid) = (idp.clone(), session.clone());
        live.set_auth_fetcher(move |_force| {
            let token = tokens.token(&sid);
            async move { token }
        })
        .unwrap();
        let mut whoami = live.subscribe("auth:whoami", json!({})).unwrap();
        assert_eq!(next_value(&mut whoami).await, Value::from(user_id.as_str()));
        // Two refreshes of the 3-second token on the same connection.
        // The count rises when a refresh is sent, before the backend confirms it: wait for
        // the confirmation too.
        wait_until("two refreshes, confirmed", WAIT, || {
            live.stats().authenticates >= 3 && live.auth_state() == AuthState::Authenticated
        })
        .await;
        let private: Value = live
            .mutation_value("private:increment", Object::new())
            .await
            .unwrap();
        assert!(private.as_f64().is_some(), "{mode:?}");
        // Revoked: the next refresh finds no token, the identity is dropped.
        idp.idp.revoke_session(&session).unwrap();
        assert_eq!(next_value(&mut whoami).await, Value::Null, "{mode:?}");
        wait_until("signed out", WAIT, || {
            live.auth_state() == AuthState::SignedOut
        })
        .await;
        let stats = live.stats();
        assert_eq!(stats.connects, 1, "{mode:?}: {stats:?}");
    }
}

/// A raw in-process session speaking the protocol's JSON shapes (to compare with a socket's).
struct RawSession(InProcessSync);

impl RawSession {
    fn open(backend: &TestBackend) -> RawSession {
        RawSession(InProcess::new(backend.backend.clone()).open_sync().unwrap())
    }

    async fn send(&mut self, message: Json) {
        let message = keel_protocol::client_message_from_json(message);
        self.send_formed(message).await;
    }

    async fn send_formed(&mut self, message: Result<keel_protocol::ClientMessage, ProtocolError>) {
        self.0.to_backend.send(message).await.unwrap();
    }

    /// Every message (as its JSON) until the backend ends the session; `Ping`s left out.
    async fn until_closed(&mut self) -> Vec<Json> {
        let mut seen = Vec::new();
        loop {
            let message = tokio::time::timeout(WAIT, self.0.from_backend.recv())
                .await
                .expect("a message or the end in time");
            match message {
                Some(keel_protocol::ServerMessage::Ping) => {}
                Some(message) => seen.push(
                    serde_json::from_str(&keel_protocol::encode_server_message(
                        keel_protocol::map_server_message(message, std::sync::Arc::unwrap_or_clone),
                    ))
                    .unwrap(),
                ),
                None => return seen,
            }
        }
    }
}

fn connect_message(session_id: &str) -> Json {
    json!({"type": "Connect", "sessionId": session_id, "connectionCount": 0, "lastCloseReason": "InitialConnect", "clientTs": 0})
}

/// The messages a socket gets for `messages` until the backend closes it.
async fn over_socket(backend: &TestBackend, messages: &[Json]) -> Vec<Json> {
    let mut socket = SyncClient::connect_session(&backend.ws_url("/api/sync")).await;
    for message in messages {
        socket.send(message).await;
    }
    without_pings(socket.until_closed().await)
}

/// The messages an in-process session gets for `messages` until the backend ends it.
async fn in_process(backend: &TestBackend, messages: &[Json]) -> Vec<Json> {
    let mut raw = RawSession::open(backend);
    raw.send(connect_message(&random_session_id())).await;
    for message in messages {
        raw.send(message.clone()).await;
    }
    raw.until_closed().await
}

fn without_pings(messages: Vec<Json>) -> Vec<Json> {
    messages
        .into_iter()
        .filter(|m| m["type"] != "Ping")
        .collect()
}

#[tokio::test]
async fn refused_tokens_and_broken_messages_get_the_same_answer_in_process() {
    let (backend, idp) = backend_with_idp(Duration::from_secs(60)).await;
    let (_, token) = idp.user_token("hostile@example.com").await;
    let mut tampered = token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    // A signed-in client in process that must not notice any of it.
    let bystander = connect(&backend, LiveConfig::new(backend.url()), Mode::InProcess);
    let mut counter = bystander.subscribe("counter:get", json!({})).unwrap();
    let mut expected = next_value(&mut counter).await.as_f64().unwrap();

    let cases: Vec<(&str, Vec<Json>)> = vec![
        (
            "garbage token",
            vec![
                json!({"type": "Authenticate", "tokenType": "User", "value": "garbage", "baseVersion": 0}),
            ],
        ),
        (
            "tampered token",
            vec![
                json!({"type": "Authenticate", "tokenType": "User", "value": tampered, "baseVersion": 0}),
            ],
        ),
        (
            "wrong identity version",
            vec![
                json!({"type": "Authenticate", "tokenType": "User", "value": token, "baseVersion": 7}),
            ],
        ),
        (
            "wrong query-set version",
            vec![
                json!({"type": "ModifyQuerySet", "baseVersion": 3, "newVersion": 4, "modifications": []}),
            ],
        ),
        (
            "removing a query never added",
            vec![
                json!({"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": [{"type": "Remove", "queryId": 9}]}),
            ],
        ),
        (
            "a malformed function path",
            vec![
                json!({"type": "Mutation", "requestId": 0, "udfPath": "no colon here!", "args": [{}]}),
            ],
        ),
    ];
    for (case, messages) in cases {
        let socket = over_socket(&backend, &messages).await;
        let direct = in_process(&backend, &messages).await;
        assert!(!socket.is_empty(), "{case}: the socket was told why");
        let last = &socket[socket.len() - 1];
        assert!(
            last["type"] == "AuthError" || last["type"] == "FatalError",
            "{case}: {socket:?}"
        );
        assert_eq!(direct, socket, "{case}: the same answer in process");
        // The bystander still follows commits.
        backend.increment().await;
        expected += 1.0;
        assert_eq!(
            next_value(&mut counter).await,
            Value::Float64(expected),
            "{case}"
        );
    }
    assert_eq!(bystander.stats().connects, 1);
    assert_eq!(bystander.auth_state(), AuthState::Unauthenticated);
}

#[tokio::test]
async fn an_in_process_client_that_stops_reading_is_disconnected() {
    let backend = TestBackend::start().await;
    let mut raw = RawSession::open(&backend);
    raw.send(connect_message(&random_session_id())).await;
    raw.send(
        json!({"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": [
            {"type": "Add", "queryId": 0, "udfPath": "counter:get", "args": [{}]}
        ]}),
    )
    .await;
    wait_until("the session subscribed", WAIT, || {
        let load = backend.backend.sync_load();
        load.sessions == 1 && load.subscriptions == 1
    })
    .await;
    // Nothing is read while commits keep changing the subscribed result (each commit is at
    // most one transition; the session may fold several into one).
    let capacity = keel_protocol::SYNC_CHANNEL_CAPACITY;
    let mut commits = 0;
    while backend.backend.sync_load().sessions > 0 {
        assert!(
            commits < 20 * capacity,
            "still connected after {commits} commits"
        );
        backend.increment().await;
        commits += 1;
    }
    assert!(commits >= capacity, "ended after only {commits} commits");
    let seen = raw.until_closed().await;
    assert!(seen.len() <= capacity, "{} messages queued", seen.len());
    // Sending now fails: the session is gone.
    assert!(
        raw.0
            .to_backend
            .send(keel_protocol::client_message_from_json(connect_message(
                "x"
            )))
            .await
            .is_err()
    );
}

/// In process, a result reaches the session's query cache without a copy: the cache entry holds
/// the backend's own execution's value (the same allocation), before and after a commit changes
/// it. Over a socket the value is parsed from text (another allocation), as a contrast.
#[tokio::test]
async fn in_process_results_reach_the_cache_as_the_backends_own_value() {
    let backend = TestBackend::start().await;
    let path = keel_protocol::normalize_udf_path("messages:list").unwrap();
    for mode in MODES {
        let live = connect(&backend, LiveConfig::new(backend.url()), mode);
        let cache = keel_client::QueryClient::new(keel_client::QueryClientConfig {
            http: None,
            consistent: false,
            ..keel_client::QueryClientConfig::default()
        });
        cache.connect(&live).unwrap();
        let key = keel_client::QueryKey::new("messages:list", Object::new());
        for body in ["one", "two"] {
            let (_, ts) = live
                .mutation_with_ts("messages:send", object(json!({"body": body})))
                .await
                .unwrap();
            cache.ensure_query_shared(&key).await.unwrap();
            cache.wait_for_ts(ts, WAIT).await.unwrap();
            let cached = cache.get_entry(&key).unwrap().data.expect("a value");
            let shared = backend
                .backend
                .run_query_shared(
                    &path,
                    &Object::new(),
                    &keel_backend::Identity::Anonymous,
                    None,
                )
                .await;
            let execution = shared.result().expect("a value");
            assert_eq!(**execution, *cached, "{mode:?}");
            assert_eq!(
                Arc::ptr_eq(execution, &cached),
                mode == Mode::InProcess,
                "{mode:?}: after {body:?}"
            );
        }
        live.close();
        live.closed().await;
    }
}

fn object(json: Json) -> Object {
    match keel_values::from_json(&json).unwrap() {
        Value::Object(object) => object,
        other => panic!("not an object: {other:?}"),
    }
}
